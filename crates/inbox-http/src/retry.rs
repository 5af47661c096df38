//! Bounded retries: run an attempt, let the adapter classify the outcome, wait (for the
//! platform's hint or an exponential backoff with jitter), and stop before the total time budget
//! would be exceeded.
//!
//! The budget exists because a synchronous send must answer within 25 s (SPEC.md: Zernio's SDK
//! times out at 30 s and never retries a POST). So the rule is "never *start* a wait that would
//! end past the budget": a platform asking for 60 s is answered at once with that hint instead of
//! being waited for.

use std::{fmt, future::Future, time::Duration};

use rand::Rng;
use tokio::time::Instant;

/// Exponential backoff between attempts that failed without a platform hint.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// The first wait.
    pub initial: Duration,
    /// The largest wait.
    pub max: Duration,
    /// The factor each further wait grows by.
    pub multiplier: f64,
    /// Randomise each wait within `[delay / 2, delay]` ("equal jitter"), so that many clients
    /// failing together do not retry in lockstep.
    pub jitter: bool,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(8),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl BackoffConfig {
    /// The wait before retry number `step` (0 for the first retry).
    pub fn delay(&self, step: u32) -> Duration {
        let exponent = i32::try_from(step).unwrap_or(i32::MAX);
        let grown = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        let capped = grown.min(self.max.as_secs_f64());
        let delay = Duration::from_secs_f64(if capped.is_finite() {
            capped.max(0.0)
        } else {
            0.0
        });
        if self.jitter && !delay.is_zero() {
            let half = delay / 2;
            rand::rng().random_range(half..=delay)
        } else {
            delay
        }
    }
}

/// How hard to try before giving up.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// The total time attempts and waits may take. A wait that would end past it is not
    /// started. Default 20 s, which keeps a synchronous send inside 25 s.
    pub budget: Duration,
    /// The most attempts, the first included. Default 8.
    pub max_attempts: u32,
    /// Waits for failures without a platform hint.
    pub backoff: BackoffConfig,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(20),
            max_attempts: 8,
            backoff: BackoffConfig::default(),
        }
    }
}

impl RetryConfig {
    /// No retries at all: one attempt, whatever its outcome.
    pub fn never() -> Self {
        Self {
            budget: Duration::ZERO,
            max_attempts: 1,
            backoff: BackoffConfig::default(),
        }
    }

    /// The default configuration with another total budget.
    pub fn with_budget(budget: Duration) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }
}

/// What the adapter made of one attempt.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// Finished: a success, or a failure that retrying will not fix.
    Done(Result<T, E>),
    /// The platform said when to come back (`Retry-After`, Telegram `retry_after`).
    RetryAfter {
        /// What went wrong this time.
        error: E,
        /// The platform's hint.
        after: Duration,
    },
    /// Transient without a hint (5xx, connection refused): retry with backoff.
    Backoff(E),
}

/// Why [`retry`] gave up.
#[derive(Debug)]
pub enum RetryError<E> {
    /// An attempt was classified [`Attempt::Done`] with an error.
    Permanent(E),
    /// Every attempt failed transiently and the budget or the attempt limit ran out.
    Exhausted {
        /// The last attempt's error.
        error: E,
        /// The last attempt's platform hint, if it had one: when a retry may succeed.
        retry_after: Option<Duration>,
        /// How many attempts were made.
        attempts: u32,
    },
}

impl<E> RetryError<E> {
    /// The underlying error, whichever way it ended.
    pub fn into_inner(self) -> E {
        match self {
            RetryError::Permanent(error) | RetryError::Exhausted { error, .. } => error,
        }
    }

    /// The underlying error.
    pub fn inner(&self) -> &E {
        match self {
            RetryError::Permanent(error) | RetryError::Exhausted { error, .. } => error,
        }
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::Permanent(error) => error.fmt(f),
            RetryError::Exhausted {
                error, attempts, ..
            } => {
                write!(f, "{error} (gave up after {attempts} attempts)")
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for RetryError<E> {}

/// What an attempt knows about its place in the sequence.
#[derive(Debug, Clone, Copy)]
pub struct AttemptContext {
    /// 1 for the first attempt.
    pub number: u32,
    deadline: Instant,
}

impl AttemptContext {
    /// The time left in the budget. An adapter can bound its request timeout by it so the
    /// whole sequence stays inside the budget.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Runs `attempt` until it is [`Attempt::Done`], the attempt limit is reached, or the next wait
/// would end past [`RetryConfig::budget`].
///
/// Waits honour [`Attempt::RetryAfter`] hints exactly and use [`BackoffConfig`] otherwise. Uses
/// tokio's clock, so tests can run it under `tokio::time::pause()`.
///
/// # Errors
/// [`RetryError::Permanent`] for a final failure, [`RetryError::Exhausted`] with the last error
/// and hint when retrying stopped.
pub async fn retry<T, E, F, Fut>(config: &RetryConfig, mut attempt: F) -> Result<T, RetryError<E>>
where
    F: FnMut(AttemptContext) -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    let started = Instant::now();
    let deadline = started + config.budget;
    let mut backoff_step = 0;
    let mut number = 0;
    loop {
        number += 1;
        let (error, wait, hint) = match attempt(AttemptContext { number, deadline }).await {
            Attempt::Done(Ok(value)) => return Ok(value),
            Attempt::Done(Err(error)) => return Err(RetryError::Permanent(error)),
            Attempt::RetryAfter { error, after } => (error, after, Some(after)),
            Attempt::Backoff(error) => {
                let wait = config.backoff.delay(backoff_step);
                backoff_step += 1;
                (error, wait, None)
            }
        };
        let wait_ends = Instant::now() + wait;
        if number >= config.max_attempts.max(1) || wait_ends > deadline {
            return Err(RetryError::Exhausted {
                error,
                retry_after: hint,
                attempts: number,
            });
        }
        tracing::debug!(
            attempt = number,
            wait_ms = wait.as_millis() as u64,
            "retrying"
        );
        tokio::time::sleep_until(wait_ends).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn no_jitter(initial_ms: u64, max_ms: u64) -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            multiplier: 2.0,
            jitter: false,
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let backoff = no_jitter(100, 1000);
        let delays: Vec<u64> = (0..6)
            .map(|step| backoff.delay(step).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_within_half_and_full_delay() {
        let backoff = BackoffConfig {
            jitter: true,
            ..no_jitter(100, 1000)
        };
        for step in 0..8 {
            let full = no_jitter(100, 1000).delay(step);
            let delay = backoff.delay(step);
            assert!(
                delay >= full / 2 && delay <= full,
                "step {step}: {delay:?} vs {full:?}"
            );
        }
    }

    type Outcome = Attempt<&'static str, &'static str>;
    type Times = Arc<Mutex<Vec<Duration>>>;

    /// Replays scripted outcomes and records the tokio time of each attempt.
    fn scripted(
        outcomes: Vec<Outcome>,
    ) -> (
        impl FnMut(AttemptContext) -> std::future::Ready<Outcome>,
        Times,
    ) {
        let start = Instant::now();
        let times = Times::default();
        let seen = times.clone();
        let mut outcomes = outcomes.into_iter();
        let attempt = move |_ctx: AttemptContext| {
            seen.lock().unwrap().push(start.elapsed());
            std::future::ready(outcomes.next().expect("no more scripted outcomes"))
        };
        (attempt, times)
    }

    #[tokio::test(start_paused = true)]
    async fn hints_are_waited_for_exactly() {
        let (attempt, times) = scripted(vec![
            Attempt::RetryAfter {
                error: "429",
                after: Duration::from_secs(3),
            },
            Attempt::RetryAfter {
                error: "429",
                after: Duration::from_secs(5),
            },
            Attempt::Done(Ok("sent")),
        ]);
        let result = retry(&RetryConfig::default(), attempt).await;
        assert_eq!(result.unwrap(), "sent");
        let times = times.lock().unwrap().clone();
        assert_eq!(
            times,
            [
                Duration::ZERO,
                Duration::from_secs(3),
                Duration::from_secs(8)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hint_past_the_budget_is_returned_without_waiting() {
        let (attempt, times) = scripted(vec![
            Attempt::RetryAfter {
                error: "429",
                after: Duration::from_secs(5),
            },
            Attempt::RetryAfter {
                error: "still 429",
                after: Duration::from_secs(30),
            },
        ]);
        let err = retry(&RetryConfig::default(), attempt).await.unwrap_err();
        match err {
            RetryError::Exhausted {
                error,
                retry_after,
                attempts,
            } => {
                assert_eq!(error, "still 429");
                assert_eq!(retry_after, Some(Duration::from_secs(30)));
                assert_eq!(attempts, 2);
            }
            other => panic!("expected Exhausted, got {other:?}"),
        }
        // The second attempt happened after the 5 s wait; the 30 s wait was never started.
        assert_eq!(times.lock().unwrap().last(), Some(&Duration::from_secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_failures_stop_at_the_budget_without_a_hint() {
        let config = RetryConfig {
            budget: Duration::from_millis(1000),
            max_attempts: 100,
            backoff: no_jitter(100, 10_000),
        };
        let (attempt, times) = scripted((0..100).map(|_| Attempt::Backoff("503")).collect());
        let err = retry(&config, attempt).await.unwrap_err();
        // Waits 100 + 200 + 400 = 700 ms; the next (800 ms) would end at 1500 ms > 1000 ms.
        match err {
            RetryError::Exhausted {
                retry_after,
                attempts,
                ..
            } => {
                assert_eq!(retry_after, None);
                assert_eq!(attempts, 4);
            }
            other => panic!("expected Exhausted, got {other:?}"),
        }
        assert_eq!(
            times.lock().unwrap().last(),
            Some(&Duration::from_millis(700))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_attempt_limit_applies() {
        let config = RetryConfig {
            max_attempts: 3,
            backoff: no_jitter(1, 1),
            ..Default::default()
        };
        let (attempt, times) = scripted((0..10).map(|_| Attempt::Backoff("503")).collect());
        let err = retry(&config, attempt).await.unwrap_err();
        assert!(
            matches!(err, RetryError::Exhausted { attempts: 3, .. }),
            "{err:?}"
        );
        assert_eq!(times.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        let (attempt, times) = scripted(vec![Attempt::Done(Err("400"))]);
        let err = retry(&RetryConfig::default(), attempt).await.unwrap_err();
        assert!(matches!(err, RetryError::Permanent("400")));
        assert_eq!(err.to_string(), "400");
        assert_eq!(times.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn never_makes_exactly_one_attempt() {
        let (attempt, _) = scripted(vec![Attempt::Backoff("503")]);
        let err = retry(&RetryConfig::never(), attempt).await.unwrap_err();
        assert!(matches!(err, RetryError::Exhausted { attempts: 1, .. }));
        assert_eq!(err.into_inner(), "503");
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_see_the_remaining_budget_shrink() {
        let remaining = Arc::new(Mutex::new(Vec::new()));
        let seen = remaining.clone();
        let config = RetryConfig {
            backoff: no_jitter(2000, 2000),
            ..Default::default()
        };
        let mut calls = 0;
        let result: Result<(), RetryError<()>> = retry(&config, |ctx| {
            seen.lock().unwrap().push((ctx.number, ctx.remaining()));
            calls += 1;
            std::future::ready(if calls < 3 {
                Attempt::Backoff(())
            } else {
                Attempt::Done(Ok(()))
            })
        })
        .await;
        assert!(result.is_ok());
        let remaining = remaining.lock().unwrap().clone();
        assert_eq!(
            remaining,
            [
                (1, Duration::from_secs(20)),
                (2, Duration::from_secs(18)),
                (3, Duration::from_secs(16))
            ]
        );
    }
}
