//! The in-process limiter: governor's GCRA over this crate's own key store, one governor
//! limiter per distinct quota (governor limiters have one quota each; a gateway has a handful
//! of quotas and any number of keys).
//!
//! The store is ours, not governor's `DashMapStateStore`, for two reasons: platform pushback
//! must be able to *raise* a bucket's TAT (governor has no call for that), and a call refused
//! by its second bucket must hand back what its first bucket charged (all or nothing, as the
//! Redis script does). Both are plain atomic operations on the same TAT governor reads.
//!
//! Memory: keys per chat or recipient are unbounded, so every few thousand decisions the
//! limiter checks the clock and, once a minute, drops every key whose bucket is full again
//! (`retain_recent`: indistinguishable from a key never seen).

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use dashmap::DashMap;
use governor::{
    clock::{Clock, QuantaClock, QuantaInstant, Reference},
    middleware::StateInformationMiddleware,
    nanos::Nanos,
    state::{StateStore, keyed::ShrinkableKeyedStateStore},
};

use crate::{
    Backend, Bucket, Decision, LimitError, Quota, RateLimiter, limiter::validate,
    metrics::DecisionCounters,
};

/// How often stale keys are dropped.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(60);
/// Decisions between two looks at the clock for the cleanup (a power of two minus one, as a
/// mask).
const CLEANUP_CHECK_MASK: u64 = 4095;

/// Each key's TAT in nanoseconds since its limiter started; 0 means "never used", as in
/// governor's own stores.
#[derive(Debug, Clone, Default)]
struct Tats(Arc<DashMap<String, AtomicU64>>);

/// Governor's compare-and-swap loop over one TAT.
fn measure_and_replace_one<T, E>(
    cell: &AtomicU64,
    f: impl Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
) -> Result<T, E> {
    let mut prev = cell.load(Ordering::Acquire);
    loop {
        let current = (prev != 0).then(|| Nanos::from(prev));
        let (result, next) = f(current)?;
        match cell.compare_exchange_weak(prev, next.as_u64(), Ordering::Release, Ordering::Acquire)
        {
            Ok(_) => return Ok(result),
            Err(actual) => prev = actual,
        }
    }
}

impl StateStore for Tats {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(cell) = self.0.get(key) {
            return measure_and_replace_one(&cell, f);
        }
        let cell = self.0.entry(key.clone()).or_default();
        measure_and_replace_one(&cell, f)
    }
}

impl ShrinkableKeyedStateStore<String> for Tats {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = drop_below.as_u64();
        self.0
            .retain(|_, tat| tat.load(Ordering::Relaxed) > drop_below);
    }

    fn shrink_to_fit(&self) {
        self.0.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Tats {
    /// Raises a TAT to at least `floor` (a penalty).
    fn raise(&self, key: &str, floor: u64) {
        if let Some(cell) = self.0.get(key) {
            cell.fetch_max(floor, Ordering::AcqRel);
            return;
        }
        self.0
            .entry(key.to_owned())
            .or_default()
            .fetch_max(floor, Ordering::AcqRel);
    }

    /// Takes `amount` back off a TAT: undoes a charge. GCRA charges add to the TAT, so
    /// subtracting ours is exact even if other calls charged the bucket meanwhile.
    fn refund(&self, key: &str, amount: u64) {
        if let Some(cell) = self.0.get(key) {
            let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(tat.saturating_sub(amount))
            });
        }
    }
}

type Governor = governor::RateLimiter<String, Tats, QuantaClock, StateInformationMiddleware>;

/// Governor's limiter for one quota, with a handle on its store.
#[derive(Debug)]
struct QuotaLimiter {
    governor: Governor,
    tats: Tats,
    clock: QuantaClock,
    /// Taken just before governor took its own start, so TATs computed here are at most a
    /// few nanoseconds later than governor's: a penalty is never shorter than asked.
    start: QuantaInstant,
    quota: Quota,
}

impl QuotaLimiter {
    fn new(quota: Quota, clock: &QuantaClock) -> Self {
        let tats = Tats::default();
        let start = clock.now();
        let governor_quota = governor::Quota::with_period(quota.emission_interval())
            .expect("a quota's emission interval is at least 1 µs")
            .allow_burst(NonZeroU32::new(quota.burst()).expect("a quota's burst is at least 1"));
        let governor: Governor =
            governor::RateLimiter::new(governor_quota, tats.clone(), clock.clone());
        QuotaLimiter {
            governor,
            tats,
            clock: clock.clone(),
            start,
            quota,
        }
    }

    fn emission_nanos(&self) -> u64 {
        self.quota.emission_micros().saturating_mul(1_000)
    }

    /// One bucket's decision; the key is charged when allowed.
    fn check(&self, key: &String, cost: NonZeroU32) -> Decision {
        let t = self.quota.emission_interval();
        let burst = self.quota.burst();
        match self.governor.check_key_n(key, cost) {
            Ok(Ok(snapshot)) => {
                let remaining = snapshot.remaining_burst_capacity().min(burst);
                Decision {
                    allowed: true,
                    limit: burst,
                    remaining,
                    retry_after: Duration::ZERO,
                    // Governor does not show the new TAT; this bound is at most one interval
                    // above it.
                    reset_after: t.saturating_mul(burst - remaining),
                }
            }
            Ok(Err(not_until)) => {
                let retry_after = not_until
                    .wait_time_from(self.clock.now())
                    .max(Duration::from_micros(1));
                Decision {
                    allowed: false,
                    limit: burst,
                    remaining: 0,
                    retry_after,
                    reset_after: retry_after + t.saturating_mul(burst - cost.get()),
                }
            }
            // `validate` refuses costs above the burst before we get here.
            Err(_insufficient) => Decision {
                allowed: false,
                limit: burst,
                remaining: 0,
                retry_after: self.quota.refill_time(),
                reset_after: self.quota.refill_time(),
            },
        }
    }

    fn refund(&self, key: &str, cost: u32) {
        self.tats
            .refund(key, self.emission_nanos().saturating_mul(u64::from(cost)));
    }

    fn penalize(&self, key: &str, block: Duration) {
        let now = self.clock.now().duration_since(self.start).as_u64();
        let block = u64::try_from(block.as_nanos()).unwrap_or(u64::MAX);
        let tolerance = self
            .emission_nanos()
            .saturating_mul(u64::from(self.quota.burst() - 1));
        self.tats
            .raise(key, now.saturating_add(block).saturating_add(tolerance));
    }

    fn cleanup(&self) {
        self.governor.retain_recent();
        self.governor.shrink_to_fit();
    }
}

/// The in-process limiter. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct LocalLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limiters: RwLock<HashMap<Quota, Arc<QuotaLimiter>>>,
    clock: QuantaClock,
    decisions: AtomicU64,
    last_cleanup: Mutex<QuantaInstant>,
    counters: DecisionCounters,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        LocalLimiter::new()
    }
}

impl LocalLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        let clock = QuantaClock::default();
        let now = clock.now();
        LocalLimiter {
            inner: Arc::new(Inner {
                limiters: RwLock::default(),
                clock,
                decisions: AtomicU64::new(0),
                last_cleanup: Mutex::new(now),
                counters: DecisionCounters::new(Backend::Local),
            }),
        }
    }

    /// How many keys the limiter holds state for (buckets not yet full again).
    pub fn key_count(&self) -> usize {
        self.read_limiters()
            .values()
            .map(|limiter| limiter.governor.len())
            .sum()
    }

    /// Drops the state of every bucket that is full again. Runs by itself about once a minute
    /// while the limiter is used.
    pub fn cleanup(&self) {
        let limiters: Vec<_> = self.read_limiters().values().cloned().collect();
        for limiter in limiters {
            limiter.cleanup();
        }
    }

    fn read_limiters(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Quota, Arc<QuotaLimiter>>> {
        // A panic while holding the lock cannot leave the map half-changed (inserts are
        // single calls), so a poisoned lock is still good.
        self.inner
            .limiters
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn limiter_for(&self, quota: Quota) -> Arc<QuotaLimiter> {
        if let Some(limiter) = self.read_limiters().get(&quota) {
            return limiter.clone();
        }
        let mut limiters = self
            .inner
            .limiters
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        limiters
            .entry(quota)
            .or_insert_with(|| Arc::new(QuotaLimiter::new(quota, &self.inner.clock)))
            .clone()
    }

    fn maybe_cleanup(&self) {
        let count = self.inner.decisions.fetch_add(1, Ordering::Relaxed);
        if count & CLEANUP_CHECK_MASK != 0 {
            return;
        }
        let now = self.inner.clock.now();
        // One caller cleans; the others carry on.
        let Ok(mut last) = self.inner.last_cleanup.try_lock() else {
            return;
        };
        if Duration::from(now.duration_since(*last)) < CLEANUP_INTERVAL {
            return;
        }
        *last = now;
        drop(last);
        self.cleanup();
    }

    /// The decision, synchronously: the in-process limiter never waits.
    ///
    /// # Errors
    /// As [`RateLimiter::check`], without backend failures.
    pub fn decide(&self, buckets: &[Bucket<'_>], cost: u32) -> Result<Decision, LimitError> {
        validate(buckets, cost)?;
        self.maybe_cleanup();
        let n = NonZeroU32::new(cost).expect("validate refuses a zero cost");
        let decision = if let [bucket] = buckets {
            self.limiter_for(bucket.quota)
                .check(&bucket.key.to_owned(), n)
        } else {
            self.decide_all(buckets, n)
        };
        self.inner.counters.record(decision.allowed);
        Ok(decision)
    }

    fn decide_all(&self, buckets: &[Bucket<'_>], cost: NonZeroU32) -> Decision {
        let mut decisions = Vec::with_capacity(buckets.len());
        let mut charged = Vec::with_capacity(buckets.len());
        for bucket in buckets {
            let limiter = self.limiter_for(bucket.quota);
            let decision = limiter.check(&bucket.key.to_owned(), cost);
            decisions.push(decision);
            if !decision.allowed {
                // All or nothing: hand back what the earlier buckets charged.
                for (limiter, key) in charged {
                    let limiter: Arc<QuotaLimiter> = limiter;
                    limiter.refund(key, cost.get());
                }
                return Decision::combine(&decisions);
            }
            charged.push((limiter, bucket.key));
        }
        Decision::combine(&decisions)
    }

    /// Blocks a bucket for `block`, synchronously.
    pub fn block(&self, bucket: &Bucket<'_>, block: Duration) {
        self.limiter_for(bucket.quota)
            .penalize(bucket.key, block.min(crate::MAX_PERIOD));
    }
}

#[async_trait]
impl RateLimiter for LocalLimiter {
    async fn check(&self, buckets: &[Bucket<'_>], cost: u32) -> Result<Decision, LimitError> {
        self.decide(buckets, cost)
    }

    async fn penalize(&self, bucket: &Bucket<'_>, block: Duration) -> Result<(), LimitError> {
        self.block(bucket, block);
        Ok(())
    }

    fn backend(&self) -> Backend {
        Backend::Local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hourly(count: u32) -> Quota {
        // Long periods keep the real clock from refilling anything during a test.
        Quota::per_period(count, Duration::from_secs(3_600)).unwrap()
    }

    #[test]
    fn burst_then_refusal_with_the_wait() {
        let limiter = LocalLimiter::new();
        let quota = hourly(3);
        let bucket = [Bucket::new("k", quota)];
        let remaining: Vec<u32> = (0..3)
            .map(|_| limiter.decide(&bucket, 1).unwrap())
            .inspect(|d| assert!(d.allowed))
            .map(|d| d.remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limiter.decide(&bucket, 1).unwrap();
        assert!(!refused.allowed);
        // One interval (20 min) minus the microseconds the test took.
        assert!(refused.retry_after <= Duration::from_secs(1_200));
        assert!(refused.retry_after > Duration::from_secs(1_199));
        assert!(refused.reset_after > Duration::from_secs(3_599));
        assert_eq!((refused.limit, refused.remaining), (3, 0));
    }

    #[test]
    fn a_refused_call_charges_no_bucket() {
        let limiter = LocalLimiter::new();
        let wide = Bucket::new("bot", hourly(10));
        let narrow = Bucket::new("chat", hourly(1));
        assert!(limiter.decide(&[wide, narrow], 1).unwrap().allowed);
        // The chat is spent; the bot's bucket must not pay for refused calls.
        for _ in 0..5 {
            assert!(!limiter.decide(&[wide, narrow], 1).unwrap().allowed);
        }
        let bot = limiter.decide(&[wide], 1).unwrap();
        assert_eq!(bot.remaining, 8, "only the one allowed call was charged");
    }

    #[test]
    fn a_penalty_blocks_until_its_end_and_keeps_the_longer_block() {
        let limiter = LocalLimiter::new();
        let bucket = Bucket::new("k", Quota::per_period(100, Duration::from_secs(1)).unwrap());
        limiter.block(&bucket, Duration::from_secs(600));
        limiter.block(&bucket, Duration::from_secs(5));
        let refused = limiter.decide(&[bucket], 1).unwrap();
        assert!(!refused.allowed);
        assert!(refused.retry_after > Duration::from_secs(599));
        assert!(refused.retry_after <= Duration::from_secs(600));
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let limiter = LocalLimiter::new();
        let quick = Quota::from_parts(Duration::from_micros(1), 1).unwrap();
        for chat in 0..1_000 {
            let key = format!("chat-{chat}");
            limiter.decide(&[Bucket::new(&key, quick)], 1).unwrap();
        }
        let slow = Bucket::new("held", hourly(2));
        limiter.decide(&[slow], 1).unwrap();
        assert_eq!(limiter.key_count(), 1_001);
        std::thread::sleep(Duration::from_millis(2));
        limiter.cleanup();
        // The 1 µs buckets refilled long ago; the hourly one is still half spent.
        assert_eq!(limiter.key_count(), 1);
        assert_eq!(limiter.decide(&[slow], 1).unwrap().remaining, 0);
    }

    #[test]
    fn bad_calls_are_errors_not_decisions() {
        let limiter = LocalLimiter::new();
        assert_eq!(limiter.decide(&[], 1), Err(LimitError::NoBuckets));
        let bucket = Bucket::new("k", hourly(2));
        assert!(matches!(
            limiter.decide(&[bucket], 3),
            Err(LimitError::Cost {
                cost: 3,
                burst: 2,
                ..
            })
        ));
        assert!(matches!(
            limiter.decide(&[bucket], 0),
            Err(LimitError::Cost { cost: 0, .. })
        ));
    }
}
