//! The [`RateLimiter`] trait every backend implements — Redis, in process, and the fallback
//! between them — and the types it speaks: a [`Bucket`] (key and quota) in, a
//! [`Decision`] out.

use std::{fmt::Debug, time::Duration};

use async_trait::async_trait;

use crate::{Decision, Quota};

/// One bucket to check: its key (see [`crate::key`]) and its quota. Quotas travel with every
/// call rather than being registered, so a changed budget applies at once and a key never
/// needs set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket<'a> {
    /// The bucket's key.
    pub key: &'a str,
    /// Its shape.
    pub quota: Quota,
}

impl<'a> Bucket<'a> {
    /// A bucket.
    pub fn new(key: &'a str, quota: Quota) -> Self {
        Bucket { key, quota }
    }
}

/// Which store a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Redis, shared by every replica.
    Redis,
    /// This process's memory (governor).
    Local,
}

impl Backend {
    /// `redis` or `local`, as metrics and logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Redis => "redis",
            Backend::Local => "local",
        }
    }
}

/// Why a limiter could not decide. Never a reason to let a call through: callers either fall
/// back to another backend or refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A call was checked against no bucket at all.
    #[error("no bucket to check")]
    NoBuckets,
    /// A cost of zero, or more than a bucket's burst (it could never be allowed).
    #[error("a cost of {cost} cannot be charged to `{key}` (burst {burst})")]
    Cost {
        /// The bucket.
        key: String,
        /// The cost asked for.
        cost: u32,
        /// The bucket's burst.
        burst: u32,
    },
    /// Redis failed: no connection, an error reply, a timeout.
    #[error("Redis: {0}")]
    Redis(String),
    /// Redis answered, but not what the script returns: treated exactly like Redis being down.
    #[error("Redis answered something unexpected: {0}")]
    Malformed(String),
}

impl LimitError {
    /// Whether the error says Redis is unusable (as opposed to a mistake of the caller's).
    pub fn is_backend_failure(&self) -> bool {
        matches!(self, LimitError::Redis(_) | LimitError::Malformed(_))
    }
}

/// A rate limiter: check-and-consume against one or more GCRA buckets, and penalties for
/// platform pushback. Object safe; shared as `Arc<dyn RateLimiter>`.
///
/// # Contract
///
/// * **All or nothing.** [`check`](RateLimiter::check) counts the call in every bucket only
///   when every bucket allows it; a refused call leaves every bucket as it was (Redis does this
///   atomically in one script; in process a bucket charged before a later one refused is
///   refunded at once).
/// * **Time is the store's.** Redis reads its own clock (`TIME`) so replicas with skewed
///   clocks share one timeline; the in-process limiter uses a monotonic clock.
/// * **Errors are never "allowed".** A limiter that cannot decide returns an error; the
///   [fallback](crate::FallbackLimiter) answers from process memory instead.
#[async_trait]
pub trait RateLimiter: Debug + Send + Sync + 'static {
    /// Checks a call of `cost` cells against every bucket, counting it in all of them when all
    /// allow it. The decision is the [combination](Decision::combine) of the buckets'.
    ///
    /// # Errors
    /// [`LimitError::NoBuckets`] for an empty list, [`LimitError::Cost`] for a cost of 0 or
    /// above a burst, and backend failures.
    async fn check(&self, buckets: &[Bucket<'_>], cost: u32) -> Result<Decision, LimitError>;

    /// Checks one bucket; see [`check`](RateLimiter::check).
    ///
    /// # Errors
    /// As [`check`](RateLimiter::check).
    async fn check_key(&self, key: &str, quota: Quota, cost: u32) -> Result<Decision, LimitError> {
        self.check(&[Bucket::new(key, quota)], cost).await
    }

    /// Blocks `bucket` so that its next call is allowed no sooner than `block` from now (the
    /// platform's reset), keeping a longer block already in place.
    ///
    /// # Errors
    /// Backend failures.
    async fn penalize(&self, bucket: &Bucket<'_>, block: Duration) -> Result<(), LimitError>;

    /// The backend that answers now (the fallback switches between two).
    fn backend(&self) -> Backend;
}

/// The checks every backend makes before deciding.
pub(crate) fn validate(buckets: &[Bucket<'_>], cost: u32) -> Result<(), LimitError> {
    if buckets.is_empty() {
        return Err(LimitError::NoBuckets);
    }
    for bucket in buckets {
        if cost == 0 || cost > bucket.quota.burst() {
            return Err(LimitError::Cost {
                key: bucket.key.to_owned(),
                cost,
                burst: bucket.quota.burst(),
            });
        }
    }
    Ok(())
}
