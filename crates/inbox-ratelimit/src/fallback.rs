//! Redis first, process memory when Redis is away.
//!
//! When a Redis call fails (no connection, a timeout, an error or malformed reply) the
//! [`FallbackLimiter`] answers that call and every later one from its in-process limiter, logs
//! the switch once (warn), counts it, and flips the `inbox_ratelimit_backend` gauge. A
//! background probe then tries Redis (`PING` and `SCRIPT LOAD`) every second and switches back
//! when it answers, logging that once (info). The gateway keeps serving throughout; while
//! degraded each replica enforces every budget on its own, so replicas together may exceed a
//! budget by up to their number — the price of staying up, which `/readyz` and `/metrics`
//! make visible.

use std::{
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use metrics::counter;

use crate::{
    Backend, Bucket, Decision, LimitError, LocalLimiter, RateLimiter, RedisLimiter,
    metrics::{FALLBACKS, set_backend_gauge},
};

/// How often the probe tries Redis while degraded.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Redis's state as the fallback sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisHealth {
    /// Redis answers; decisions come from it.
    Up,
    /// Redis failed; decisions come from process memory.
    Degraded {
        /// When the fallback switched.
        since: SystemTime,
        /// The failure that made it switch.
        reason: String,
    },
}

/// The limiter a scaled-out gateway uses: [`RedisLimiter`] with a [`LocalLimiter`] behind it.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct FallbackLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    redis: RedisLimiter,
    local: LocalLimiter,
    degraded: AtomicBool,
    health: Mutex<RedisHealth>,
    probing: AtomicBool,
    probe_interval: Duration,
}

impl FallbackLimiter {
    /// A fallback that starts on Redis (without checking it; see
    /// [`start`](FallbackLimiter::start)).
    pub fn new(redis: RedisLimiter, local: LocalLimiter, probe_interval: Duration) -> Self {
        set_backend_gauge(Backend::Redis);
        FallbackLimiter {
            inner: Arc::new(Inner {
                redis,
                local,
                degraded: AtomicBool::new(false),
                health: Mutex::new(RedisHealth::Up),
                probing: AtomicBool::new(false),
                probe_interval,
            }),
        }
    }

    /// A fallback that has probed Redis once: when Redis is unreachable at start-up the
    /// gateway starts anyway, on the in-process limiter, and switches to Redis when it
    /// answers.
    pub async fn start(redis: RedisLimiter, local: LocalLimiter, probe_interval: Duration) -> Self {
        let limiter = FallbackLimiter::new(redis, local, probe_interval);
        if let Err(err) = limiter.inner.redis.probe().await {
            limiter.mark_down(&err);
        } else {
            tracing::info!(
                redis = limiter.inner.redis.url(),
                "rate limits are kept in Redis"
            );
        }
        limiter
    }

    /// Whether decisions currently come from process memory.
    pub fn is_degraded(&self) -> bool {
        self.inner.degraded.load(Ordering::Acquire)
    }

    /// Redis's state.
    pub fn health(&self) -> RedisHealth {
        self.inner
            .health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The Redis limiter behind the fallback.
    pub fn redis(&self) -> &RedisLimiter {
        &self.inner.redis
    }

    /// For `/readyz`: `Ok` while Redis answers (probing it when it was last seen up, so a
    /// Redis that died while idle is noticed); otherwise since when and why it is down. A
    /// failed probe switches to the in-process limiter like a failed decision does.
    ///
    /// # Errors
    /// The text to show operators.
    pub async fn readiness(&self) -> Result<(), String> {
        if !self.is_degraded()
            && let Err(err) = self.inner.redis.probe().await
        {
            self.mark_down(&err);
        }
        match self.health() {
            RedisHealth::Up => Ok(()),
            RedisHealth::Degraded { since, reason } => {
                let secs = SystemTime::now()
                    .duration_since(since)
                    .unwrap_or_default()
                    .as_secs();
                Err(format!(
                    "Redis is unreachable ({reason}) for {secs} s; rate limits are enforced per replica in process until it answers"
                ))
            }
        }
    }

    fn mark_down(&self, err: &LimitError) {
        {
            let mut health = self
                .inner
                .health
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if self.inner.degraded.swap(true, Ordering::AcqRel) {
                return;
            }
            *health = RedisHealth::Degraded {
                since: SystemTime::now(),
                reason: err.to_string(),
            };
        }
        tracing::warn!(
            redis = self.inner.redis.url(),
            error = %err,
            "Redis is unreachable: rate limits fall back to this process until it answers"
        );
        counter!(FALLBACKS).increment(1);
        set_backend_gauge(Backend::Local);
        self.spawn_probe();
    }

    fn mark_up(&self) {
        let mut health = self
            .inner
            .health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !self.inner.degraded.swap(false, Ordering::AcqRel) {
            return;
        }
        *health = RedisHealth::Up;
        drop(health);
        tracing::info!(
            redis = self.inner.redis.url(),
            "Redis answers again: rate limits are shared through it"
        );
        set_backend_gauge(Backend::Redis);
    }

    /// One probe loop at a time; it ends when Redis answers or the limiter is dropped.
    fn spawn_probe(&self) {
        if self.inner.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Without a runtime (a synchronous caller) nothing can probe; the next decision
            // made inside one will.
            self.inner.probing.store(false, Ordering::Release);
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let interval = self.inner.probe_interval;
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let limiter = FallbackLimiter { inner };
                if limiter.inner.redis.probe().await.is_ok() {
                    limiter.inner.probing.store(false, Ordering::Release);
                    limiter.mark_up();
                    return;
                }
            }
        });
    }
}

#[async_trait]
impl RateLimiter for FallbackLimiter {
    async fn check(&self, buckets: &[Bucket<'_>], cost: u32) -> Result<Decision, LimitError> {
        if !self.is_degraded() {
            match self.inner.redis.check(buckets, cost).await {
                Ok(decision) => return Ok(decision),
                Err(err) if err.is_backend_failure() => self.mark_down(&err),
                Err(err) => return Err(err),
            }
        }
        self.inner.local.decide(buckets, cost)
    }

    async fn penalize(&self, bucket: &Bucket<'_>, block: Duration) -> Result<(), LimitError> {
        if !self.is_degraded() {
            match self.inner.redis.penalize(bucket, block).await {
                Ok(()) => return Ok(()),
                Err(err) if err.is_backend_failure() => self.mark_down(&err),
                Err(err) => return Err(err),
            }
        }
        self.inner.local.block(bucket, block);
        Ok(())
    }

    fn backend(&self) -> Backend {
        if self.is_degraded() {
            Backend::Local
        } else {
            Backend::Redis
        }
    }
}
