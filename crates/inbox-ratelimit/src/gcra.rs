//! The GCRA arithmetic every backend follows, as pure functions over microseconds: the Redis
//! scripts (`src/lua/check.lua`, `src/lua/penalize.lua`) mirror [`step`] and
//! [`penalized_tat`], and governor, the in-process backend, implements the same algorithm.
//! Tests and the crate documentation use these functions as the reference.
//!
//! GCRA ("generic cell rate algorithm") keeps one number per bucket, the *theoretical arrival
//! time* (TAT): when the bucket would be empty again had every call arrived exactly on
//! schedule. With emission interval `T` (one call's worth of time) and a burst of `B` calls:
//!
//! ```text
//! new_tat  = max(tat, now) + T × cost
//! allow_at = new_tat − T × B
//! now < allow_at  → refused, retry after (allow_at − now); nothing stored
//! otherwise       → allowed, store new_tat (expiring at new_tat),
//!                   remaining = ⌊(now − allow_at) / T⌋, full again after (new_tat − now)
//! ```
//!
//! No background refill, O(1) per decision, one key per bucket (brandur.org/rate-limiting).

use std::time::Duration;

/// Microseconds in a second: every backend counts time in whole microseconds, the resolution
/// of Redis's `TIME`.
pub const MICROS_PER_SECOND: u64 = 1_000_000;

/// The longest period a quota may have: a year keeps every product of the arithmetic far
/// below 2^53 µs, the largest integer Lua's numbers (doubles) hold exactly.
pub const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// A bucket's shape: one call every [`emission_interval`](Quota::emission_interval), up to
/// [`burst`](Quota::burst) calls at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    emission_us: u64,
    burst: u32,
}

/// Why a quota cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// A count of zero calls.
    #[error("the count must be at least 1")]
    ZeroCount,
    /// A period of zero, or more than [`MAX_PERIOD`].
    #[error("the period must be between 1 µs and one year")]
    Period,
    /// A burst of zero or above the count.
    #[error("the burst must be between 1 and the count ({count})")]
    Burst {
        /// The count the burst must not exceed.
        count: u32,
    },
    /// More than one call per microsecond.
    #[error("{count} calls per {period:?} is more than one call per microsecond")]
    TooFine {
        /// The count.
        count: u32,
        /// The period.
        period: Duration,
    },
}

fn period_micros(period: Duration) -> Result<u64, QuotaError> {
    if period.is_zero() || period > MAX_PERIOD {
        return Err(QuotaError::Period);
    }
    // Round up: a period of 1.5 µs is 2 µs, never less than asked.
    Ok(u64::try_from(period.as_nanos().div_ceil(1_000)).unwrap_or(u64::MAX))
}

impl Quota {
    /// A token bucket: `count` calls at once, refilled at `count` per `period` (the API keys'
    /// "600 requests per minute": 600 at once, then one every 100 ms).
    ///
    /// # Errors
    /// A [`QuotaError`] for a zero count, a zero or over-long period, or more than one call
    /// per microsecond.
    pub fn per_period(count: u32, period: Duration) -> Result<Quota, QuotaError> {
        Quota::within_window_inner(count, period, count, count)
    }

    /// At most `count` calls in *any* window of `period`, `burst` of them at once: the shape of
    /// a platform's published limit. The emission interval is `period / (count − burst + 1)`,
    /// so a full burst followed by calls at the sustained rate still fits in every window
    /// (`burst` 1 spaces calls exactly `period / count` apart).
    ///
    /// # Errors
    /// A [`QuotaError`] for a zero count, a burst outside `1..=count`, a zero or over-long
    /// period, or more than one call per microsecond.
    pub fn within_window(count: u32, period: Duration, burst: u32) -> Result<Quota, QuotaError> {
        if count == 0 {
            return Err(QuotaError::ZeroCount);
        }
        if burst == 0 || burst > count {
            return Err(QuotaError::Burst { count });
        }
        Quota::within_window_inner(count, period, count - burst + 1, burst)
    }

    fn within_window_inner(
        count: u32,
        period: Duration,
        slots: u32,
        burst: u32,
    ) -> Result<Quota, QuotaError> {
        if count == 0 {
            return Err(QuotaError::ZeroCount);
        }
        let period_us = period_micros(period)?;
        // Round the interval up: calls come never faster than the platform allows.
        let emission_us = period_us.div_ceil(u64::from(slots));
        if period_us < u64::from(slots) {
            return Err(QuotaError::TooFine { count, period });
        }
        Ok(Quota { emission_us, burst })
    }

    /// A quota from its GCRA parameters directly.
    ///
    /// # Errors
    /// [`QuotaError::Period`] for an interval under 1 µs or over [`MAX_PERIOD`],
    /// [`QuotaError::Burst`] for a zero burst.
    pub fn from_parts(emission_interval: Duration, burst: u32) -> Result<Quota, QuotaError> {
        let emission_us = period_micros(emission_interval)?;
        if burst == 0 {
            return Err(QuotaError::Burst { count: 0 });
        }
        Ok(Quota { emission_us, burst })
    }

    /// The time one call is worth (`T`).
    pub fn emission_interval(&self) -> Duration {
        Duration::from_micros(self.emission_us)
    }

    /// `T` in microseconds, as the Redis script takes it.
    pub fn emission_micros(&self) -> u64 {
        self.emission_us
    }

    /// How many calls may go at once (`B`), which is also the limit a decision reports.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// How long an empty bucket takes to fill up again: `T × B`.
    pub fn refill_time(&self) -> Duration {
        Duration::from_micros(self.tolerance_micros())
    }

    fn tolerance_micros(&self) -> u64 {
        self.emission_us.saturating_mul(u64::from(self.burst))
    }
}

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the call may go (and was counted).
    pub allowed: bool,
    /// The bucket's burst: the most calls that can go at once (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Calls that could still go right now after this one (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// When refused: how long until the call would be allowed (`Retry-After`); zero when
    /// allowed.
    pub retry_after: Duration,
    /// How long until the bucket is full again (`RateLimit-Reset`).
    pub reset_after: Duration,
}

impl Decision {
    /// One decision for a call that had to pass several buckets (an account's and a chat's):
    /// allowed only when every bucket allowed; then the bucket with the fewest calls left
    /// speaks for `limit` and `remaining`. When refused, the longest wait wins. `reset_after`
    /// is the longest of all.
    ///
    /// # Panics
    /// Never; an empty list gives an allowed decision with limit and remaining `u32::MAX`.
    pub fn combine(decisions: &[Decision]) -> Decision {
        let reset_after = decisions
            .iter()
            .map(|d| d.reset_after)
            .max()
            .unwrap_or_default();
        let refused = decisions
            .iter()
            .filter(|d| !d.allowed)
            .max_by_key(|d| d.retry_after);
        if let Some(refused) = refused {
            return Decision {
                allowed: false,
                limit: refused.limit,
                remaining: 0,
                retry_after: refused.retry_after,
                reset_after,
            };
        }
        let tightest = decisions.iter().min_by_key(|d| d.remaining);
        Decision {
            allowed: true,
            limit: tightest.map_or(u32::MAX, |d| d.limit),
            remaining: tightest.map_or(u32::MAX, |d| d.remaining),
            retry_after: Duration::ZERO,
            reset_after,
        }
    }
}

/// One GCRA step at `now` (µs, on any clock that only moves forward) for a bucket whose stored
/// TAT is `tat` (`None` for a bucket never used or expired). Returns the decision and, when
/// allowed, the TAT to store. `cost` must be between 1 and the quota's burst.
pub fn step(now: u64, tat: Option<u64>, quota: Quota, cost: u32) -> (Decision, Option<u64>) {
    let t = quota.emission_us;
    let base = tat.map_or(now, |tat| tat.max(now));
    let new_tat = base.saturating_add(t.saturating_mul(u64::from(cost)));
    // `allow_at = new_tat − T·B` may lie before the clock's zero, so compare `now + T·B`
    // with `new_tat` instead of subtracting.
    let horizon = now.saturating_add(quota.tolerance_micros());
    if horizon < new_tat {
        let decision = Decision {
            allowed: false,
            limit: quota.burst,
            remaining: 0,
            retry_after: Duration::from_micros(new_tat - horizon),
            reset_after: Duration::from_micros(base - now),
        };
        return (decision, None);
    }
    let remaining = u32::try_from((horizon - new_tat) / t).unwrap_or(u32::MAX);
    let decision = Decision {
        allowed: true,
        limit: quota.burst,
        remaining: remaining.min(quota.burst),
        retry_after: Duration::ZERO,
        reset_after: Duration::from_micros(new_tat - now),
    };
    (decision, Some(new_tat))
}

/// The TAT that blocks a bucket for `block` from `now`: the next call of cost 1 is allowed
/// exactly at `now + block` (and the bucket refills from there), or later if the bucket was
/// already further behind. This is how platform pushback ("come back in 30 s") is recorded.
pub fn penalized_tat(now: u64, tat: Option<u64>, quota: Quota, block: Duration) -> u64 {
    let block_us = u64::try_from(block.as_micros()).unwrap_or(u64::MAX);
    let floor = now
        .saturating_add(block_us)
        .saturating_add(quota.emission_us * u64::from(quota.burst - 1));
    tat.map_or(floor, |tat| tat.max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = MICROS_PER_SECOND;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Runs calls of cost 1 at the given times (seconds), returning which were allowed.
    fn run(quota: Quota, times: &[f64]) -> Vec<bool> {
        let mut tat = None;
        times
            .iter()
            .map(|&at| {
                let now = (at * S as f64) as u64;
                let (decision, new_tat) = step(now, tat, quota, 1);
                if let Some(new_tat) = new_tat {
                    tat = Some(new_tat);
                }
                decision.allowed
            })
            .collect()
    }

    #[test]
    fn a_token_bucket_allows_its_burst_then_its_rate() {
        // 10 per second: 10 at once, then one every 100 ms.
        let quota = Quota::per_period(10, Duration::from_secs(1)).unwrap();
        assert_eq!(quota.emission_interval(), Duration::from_millis(100));
        assert_eq!(quota.burst(), 10);
        let now = 1_000 * S;
        let mut tat = None;
        for expected_remaining in (0..10).rev() {
            let (decision, new_tat) = step(now, tat, quota, 1);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
            assert_eq!(decision.limit, 10);
            tat = new_tat;
        }
        // The 11th at the same instant waits one interval; the bucket is full after 1 s.
        let (refused, stored) = step(now, tat, quota, 1);
        assert!(!refused.allowed);
        assert_eq!(stored, None);
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        assert_eq!(refused.reset_after, Duration::from_secs(1));
        assert_eq!(refused.remaining, 0);
        // One interval later exactly one more goes.
        let (later, _) = step(now + S / 10, tat, quota, 1);
        assert!(later.allowed);
        assert_eq!(later.remaining, 0);
        assert_eq!(later.reset_after, Duration::from_secs(1));
    }

    #[test]
    fn a_fresh_bucket_reports_a_full_burst_and_its_reset() {
        let quota = Quota::per_period(600, Duration::from_secs(60)).unwrap();
        let (decision, tat) = step(5 * S, None, quota, 1);
        assert!(decision.allowed);
        assert_eq!((decision.limit, decision.remaining), (600, 599));
        assert_eq!(decision.reset_after, Duration::from_millis(100));
        assert_eq!(tat, Some(5 * S + 100_000));
    }

    #[test]
    fn within_window_never_exceeds_the_count_in_any_window() {
        // 2 per 10 s with a burst of 2: two at once, then one every 10 s.
        let quota = Quota::within_window(2, Duration::from_secs(10), 2).unwrap();
        assert_eq!(quota.emission_interval(), Duration::from_secs(10));
        let times: Vec<f64> = (0..200).map(|i| f64::from(i) * 0.25).collect();
        let allowed: Vec<f64> = times
            .iter()
            .zip(run(quota, &times))
            .filter(|(_, ok)| *ok)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(allowed[..3], [0.0, 0.25, 10.0]);
        for (i, start) in allowed.iter().enumerate() {
            let in_window = allowed[i..].iter().filter(|t| **t < start + 10.0).count();
            assert!(in_window <= 2, "window from {start}: {in_window} calls");
        }
        // A burst of 1 spaces 15 calls per 15 minutes one minute apart (X's DM lookups).
        let x = Quota::within_window(15, Duration::from_secs(900), 1).unwrap();
        assert_eq!(x.emission_interval(), Duration::from_secs(60));
        assert_eq!(run(x, &[0.0, 30.0, 60.0, 61.0]), [true, false, true, false]);
    }

    #[test]
    fn within_window_with_a_burst_lowers_the_sustained_rate() {
        // 30 per second, 5 at once: after the burst one every 1/26 s.
        let quota = Quota::within_window(30, Duration::from_secs(1), 5).unwrap();
        assert_eq!(quota.emission_micros(), S.div_ceil(26));
        assert_eq!(quota.burst(), 5);
    }

    #[test]
    fn a_cost_takes_several_cells() {
        let quota = Quota::per_period(10, Duration::from_secs(10)).unwrap();
        let (first, tat) = step(0, None, quota, 4);
        assert!(first.allowed);
        assert_eq!(first.remaining, 6);
        let (second, tat) = step(0, tat, quota, 6);
        assert!(second.allowed);
        assert_eq!(second.remaining, 0);
        let (third, _) = step(0, tat, quota, 3);
        assert!(!third.allowed);
        assert_eq!(third.retry_after, secs(3.0));
    }

    #[test]
    fn an_idle_bucket_forgets_its_past() {
        let quota = Quota::per_period(2, Duration::from_secs(2)).unwrap();
        let (_, tat) = step(0, None, quota, 2);
        // Long after the TAT the bucket is as new.
        let (decision, _) = step(100 * S, tat, quota, 1);
        assert_eq!(decision.remaining, 1);
        assert_eq!(step(100 * S, tat, quota, 1), step(100 * S, None, quota, 1));
    }

    #[test]
    fn a_penalty_blocks_until_the_platforms_reset() {
        let quota = Quota::per_period(10, Duration::from_secs(1)).unwrap();
        let now = 50 * S;
        let tat = penalized_tat(now, None, quota, Duration::from_secs(30));
        let (before, _) = step(now + 29 * S, Some(tat), quota, 1);
        assert!(!before.allowed);
        assert_eq!(before.retry_after, Duration::from_secs(1));
        // Exactly at the reset one call goes, then the bucket refills at its rate.
        let (at_reset, tat_after) = step(now + 30 * S, Some(tat), quota, 1);
        assert!(at_reset.allowed);
        assert_eq!(at_reset.remaining, 0);
        let (next, _) = step(now + 30 * S, tat_after, quota, 1);
        assert!(!next.allowed);
        // A shorter penalty never shortens a longer block.
        assert_eq!(
            penalized_tat(now, Some(tat), quota, Duration::from_secs(1)),
            tat
        );
    }

    #[test]
    fn combined_decisions_take_the_tightest_bucket() {
        let allowed = |remaining, reset| Decision {
            allowed: true,
            limit: 10,
            remaining,
            retry_after: Duration::ZERO,
            reset_after: secs(reset),
        };
        let refused = |retry, reset| Decision {
            allowed: false,
            limit: 1,
            remaining: 0,
            retry_after: secs(retry),
            reset_after: secs(reset),
        };
        let both = Decision::combine(&[allowed(5, 1.0), allowed(2, 3.0)]);
        assert!(both.allowed);
        assert_eq!((both.remaining, both.reset_after), (2, secs(3.0)));
        let one_refused =
            Decision::combine(&[allowed(5, 1.0), refused(0.5, 1.0), refused(2.0, 4.0)]);
        assert!(!one_refused.allowed);
        assert_eq!(one_refused.retry_after, secs(2.0));
        assert_eq!(one_refused.reset_after, secs(4.0));
        assert_eq!(one_refused.limit, 1);
    }

    #[test]
    fn invalid_quotas_are_refused() {
        let second = Duration::from_secs(1);
        assert_eq!(Quota::per_period(0, second), Err(QuotaError::ZeroCount));
        assert_eq!(
            Quota::per_period(1, Duration::ZERO),
            Err(QuotaError::Period)
        );
        assert_eq!(
            Quota::per_period(1, Duration::from_secs(400 * 86_400)),
            Err(QuotaError::Period)
        );
        assert_eq!(
            Quota::within_window(5, second, 6),
            Err(QuotaError::Burst { count: 5 })
        );
        assert_eq!(
            Quota::within_window(5, second, 0),
            Err(QuotaError::Burst { count: 5 })
        );
        assert!(matches!(
            Quota::per_period(10, Duration::from_nanos(5_000)),
            Err(QuotaError::TooFine { .. })
        ));
        assert_eq!(
            Quota::from_parts(Duration::from_millis(5), 3)
                .unwrap()
                .refill_time(),
            Duration::from_millis(15)
        );
    }
}
