//! When a failed delivery is tried again: the retry schedule, its jitter, and how a receiver's
//! `Retry-After` bends it.
//!
//! SPEC.md's schedule is the Standard Webhooks / Svix one: the first attempt immediately, then
//! 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after each failure — 8 attempts over about
//! 27.6 hours — then the delivery is failed. Every delay is spread by ±20 % so that endpoints
//! which failed together (an outage) are not hit together again. A receiver answering 429 or 503
//! may say when to come back with `Retry-After`; like Svix, the gateway honours it only within
//! [scheduled delay, 2 × scheduled delay], so a receiver can slow retries down but can neither
//! make the gateway hammer it nor park a delivery for days.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// The spread applied to every retry delay: ±20 %.
pub const DEFAULT_JITTER: f64 = 0.2;

/// The delays between attempts, and their jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: f64,
}

impl Default for RetrySchedule {
    /// SPEC.md's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the immediate first
    /// attempt, with ±20 % jitter.
    fn default() -> Self {
        const MIN: u64 = 60;
        const HOUR: u64 = 60 * MIN;
        RetrySchedule::new(
            [
                5,
                5 * MIN,
                30 * MIN,
                2 * HOUR,
                5 * HOUR,
                10 * HOUR,
                10 * HOUR,
            ]
            .into_iter()
            .map(Duration::from_secs)
            .collect(),
        )
    }
}

impl RetrySchedule {
    /// A schedule from the delays that follow each failed attempt: the first attempt is always
    /// immediate, then `delays[0]` after it fails, `delays[1]` after the second, and so on, for
    /// `delays.len() + 1` attempts in all. An empty list means one attempt and no retries.
    /// Jitter is ±20 %; see [`RetrySchedule::with_jitter`].
    pub fn new(delays: Vec<Duration>) -> Self {
        RetrySchedule {
            delays,
            jitter: DEFAULT_JITTER,
        }
    }

    /// The same schedule with another jitter fraction (clamped to `0.0..=1.0`); `0.0` makes
    /// delays exact, which tests rely on.
    pub fn with_jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            DEFAULT_JITTER
        };
        self
    }

    /// The delays between attempts, without jitter.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The jitter fraction.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Attempts in all, the first one included.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// The scheduled (unjittered) delay after attempt `attempt_number` (1-based) failed, or
    /// `None` when it was the last one.
    pub fn base_delay_after(&self, attempt_number: u32) -> Option<Duration> {
        let index = usize::try_from(attempt_number.checked_sub(1)?).ok()?;
        self.delays.get(index).copied()
    }

    /// How long to wait after attempt `attempt_number` (1-based) failed, or `None` to give up.
    ///
    /// `retry_after` is the receiver's `Retry-After` (the sender passes it for 429 and 503
    /// only); it replaces the jittered delay, clamped by [`clamp_retry_after`]. A `one_shot`
    /// attempt (a manual retry of a finished delivery) never schedules another.
    pub fn next_after_failure(
        &self,
        attempt_number: u32,
        retry_after: Option<Duration>,
        one_shot: bool,
    ) -> Option<Duration> {
        if one_shot {
            return None;
        }
        let base = self.base_delay_after(attempt_number)?;
        Some(match retry_after {
            Some(requested) => clamp_retry_after(base, requested),
            None => self.jittered(base, rand::rng().random_range(-1.0..=1.0)),
        })
    }

    /// `base` spread by `unit × jitter`, where `unit` is in `[-1, 1]`.
    fn jittered(&self, base: Duration, unit: f64) -> Duration {
        base.mul_f64((1.0 + unit.clamp(-1.0, 1.0) * self.jitter).max(0.0))
    }
}

/// A receiver's `Retry-After` limited to `[scheduled, 2 × scheduled]` (Svix's rule): honoured
/// when it asks for a longer wait, up to double the schedule; never shorter than the schedule.
pub fn clamp_retry_after(scheduled: Duration, requested: Duration) -> Duration {
    requested.clamp(scheduled, scheduled.saturating_mul(2))
}

/// Parses a `Retry-After` value, delay-seconds or an HTTP date
/// (<https://www.rfc-editor.org/rfc/rfc9110#field.retry-after>), as a delay from `now`. A date in
/// the past is a zero delay; anything unparseable is `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) is a subset of RFC 2822.
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn default_schedule_is_specs_eight_attempts() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.max_attempts(), 8);
        assert_eq!(
            schedule.delays(),
            [
                secs(5),
                secs(300),
                secs(1800),
                secs(7200),
                secs(18000),
                secs(36000),
                secs(36000)
            ]
        );
        assert_eq!(schedule.base_delay_after(1), Some(secs(5)));
        assert_eq!(schedule.base_delay_after(7), Some(secs(36000)));
        assert_eq!(
            schedule.base_delay_after(8),
            None,
            "the 8th failure is final"
        );
        assert_eq!(schedule.base_delay_after(0), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let schedule = RetrySchedule::default();
        for attempt in 1..8 {
            let base = schedule.base_delay_after(attempt).unwrap();
            for _ in 0..200 {
                let delay = schedule.next_after_failure(attempt, None, false).unwrap();
                assert!(
                    delay >= base.mul_f64(0.8) && delay <= base.mul_f64(1.2),
                    "{delay:?} vs {base:?}"
                );
            }
        }
        assert_eq!(schedule.jittered(secs(100), -1.0), secs(80));
        assert_eq!(schedule.jittered(secs(100), 1.0), secs(120));
        assert_eq!(
            schedule
                .clone()
                .with_jitter(0.0)
                .next_after_failure(2, None, false),
            Some(secs(300))
        );
    }

    #[test]
    fn exhausted_and_one_shot_schedule_nothing() {
        let schedule = RetrySchedule::new(vec![secs(1), secs(2)]);
        assert_eq!(schedule.max_attempts(), 3);
        assert_eq!(schedule.next_after_failure(3, None, false), None);
        assert_eq!(schedule.next_after_failure(9, Some(secs(5)), false), None);
        assert_eq!(schedule.next_after_failure(1, None, true), None);
        assert_eq!(
            RetrySchedule::new(vec![]).next_after_failure(1, None, false),
            None
        );
    }

    #[test]
    fn retry_after_is_clamped_to_between_the_schedule_and_twice_it() {
        assert_eq!(
            clamp_retry_after(secs(300), secs(1)),
            secs(300),
            "never sooner than scheduled"
        );
        assert_eq!(
            clamp_retry_after(secs(300), secs(450)),
            secs(450),
            "honoured within bounds"
        );
        assert_eq!(
            clamp_retry_after(secs(300), secs(86_400)),
            secs(600),
            "at most twice"
        );
        let schedule = RetrySchedule::default();
        assert_eq!(
            schedule.next_after_failure(2, Some(secs(10_000)), false),
            Some(secs(600))
        );
        assert_eq!(
            schedule.next_after_failure(2, Some(secs(420)), false),
            Some(secs(420))
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2025-01-15T10:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(secs(0)));
        assert_eq!(
            parse_retry_after("Wed, 15 Jan 2025 10:32:00 GMT", now),
            Some(secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 15 Jan 2025 10:00:00 GMT", now),
            Some(secs(0))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
