//! Retried HTTP calls that keep the gateway's rate budgets informed: every answer's usage
//! headers (X `x-rate-limit-*`, Reddit `X-Ratelimit-*`, Bluesky `ratelimit-*`) are reported as
//! [`Pushback::Remaining`], and every throttled answer as [`Pushback::Exhausted`] *before* the
//! retry waits, so other requests and other replicas hold back at once (see
//! `inbox_core::budget`).
//!
//! Platforms that throttle without a `Retry-After` header but with a usage reset (X answers
//! `429` with `x-rate-limit-reset`) get that reset as the retry hint.

use std::time::Duration;

use http::HeaderMap;
use inbox_core::{BudgetCall, BudgetReport, Pushback, RateBudgets};

use crate::{
    Attempt, HttpFailure, RetryConfig, RetryError, Snapshot, Transience, classify_status,
    classify_transport, retry,
};

/// Reads a platform's usage headers, if the answer carries them.
pub type UsageReader = fn(&HeaderMap) -> Option<Pushback>;

/// Where a call's platform signals are reported.
#[derive(Debug, Clone, Copy)]
pub struct Meter<'a> {
    /// The budgets to report to.
    pub budgets: &'a dyn RateBudgets,
    /// The call, as the budgets know it.
    pub call: BudgetCall<'a>,
    /// The budget the signals are about (`None`: every budget that counts the call).
    pub budget: Option<&'a str>,
    /// How to read the platform's usage headers.
    pub usage: UsageReader,
}

impl Meter<'_> {
    async fn report(&self, pushback: Pushback) {
        self.budgets
            .report(&BudgetReport {
                call: self.call,
                budget: self.budget,
                pushback,
            })
            .await;
    }
}

/// The hint of a throttled answer: `Retry-After`, else the usage reset when nothing remains.
fn throttle_hint(snapshot: &Snapshot, usage: Option<UsageReader>) -> Option<Duration> {
    crate::retry_after(&snapshot.headers).or_else(|| {
        match usage.and_then(|read| read(&snapshot.headers)) {
            Some(Pushback::Remaining {
                remaining: 0,
                reset_after,
            }) => Some(reset_after),
            Some(Pushback::Exhausted { retry_after }) => Some(retry_after),
            _ => None,
        }
    })
}

/// Sends the request `build` makes, again on every transient failure, within `config`,
/// reporting usage and throttling to `meter` as the answers come.
///
/// Like [`send_with_retry`](crate::send_with_retry): every status that [`classify_status`]
/// calls final, success or not, comes back as `Ok` for the adapter to read the platform's
/// error body. A `429` without `Retry-After` is retried after the usage reset the headers name
/// (when nothing remains), else with backoff.
///
/// # Errors
/// As [`send_with_retry`](crate::send_with_retry).
pub async fn send_metered<F>(
    config: &RetryConfig,
    idempotent: bool,
    meter: Option<&Meter<'_>>,
    mut build: F,
) -> Result<Snapshot, RetryError<HttpFailure>>
where
    F: FnMut(crate::AttemptContext) -> reqwest::RequestBuilder,
{
    retry(config, |ctx| {
        let request = build(ctx);
        async move {
            let outcome = match request.send().await {
                Ok(response) => Snapshot::read(response).await,
                Err(error) => Err(error.without_url()),
            };
            let snapshot = match outcome {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    return match classify_transport(&error, idempotent) {
                        Transience::Permanent => Attempt::Done(Err(HttpFailure::Transport(error))),
                        _ => Attempt::Backoff(HttpFailure::Transport(error)),
                    };
                }
            };
            let usage = meter.map(|m| m.usage);
            let attempt = match classify_status(snapshot.status, &snapshot.headers) {
                Transience::Permanent => Attempt::Done(Ok(snapshot)),
                Transience::RetryAfter(after) => Attempt::RetryAfter {
                    error: HttpFailure::Status(snapshot),
                    after,
                },
                Transience::Backoff => match throttle_hint(&snapshot, usage) {
                    Some(after) if snapshot.status == http::StatusCode::TOO_MANY_REQUESTS => {
                        Attempt::RetryAfter {
                            error: HttpFailure::Status(snapshot),
                            after,
                        }
                    }
                    _ => Attempt::Backoff(HttpFailure::Status(snapshot)),
                },
            };
            if let Some(meter) = meter {
                match &attempt {
                    Attempt::RetryAfter {
                        error: HttpFailure::Status(snapshot),
                        after,
                    } if snapshot.status == http::StatusCode::TOO_MANY_REQUESTS => {
                        meter
                            .report(Pushback::Exhausted {
                                retry_after: *after,
                            })
                            .await;
                    }
                    Attempt::Done(Ok(snapshot)) => {
                        if let Some(pushback) = (meter.usage)(&snapshot.headers) {
                            meter.report(pushback).await;
                        }
                    }
                    _ => {}
                }
            }
            attempt
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use inbox_core::{BudgetOperation, PlatformKind};

    use super::*;
    use crate::{BackoffConfig, ClientOptions, scripted::ScriptedServer};

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<Pushback>>);

    #[async_trait]
    impl RateBudgets for Recorder {
        async fn acquire(&self, _call: &BudgetCall<'_>) -> inbox_core::Result<()> {
            Ok(())
        }
        async fn report(&self, report: &BudgetReport<'_>) {
            self.0.lock().unwrap().push(report.pushback);
        }
    }

    fn usage(headers: &HeaderMap) -> Option<Pushback> {
        let remaining = headers.get("x-remaining")?.to_str().ok()?.parse().ok()?;
        let reset = headers.get("x-reset")?.to_str().ok()?.parse().ok()?;
        Some(Pushback::Remaining {
            remaining,
            reset_after: Duration::from_secs(reset),
        })
    }

    fn quick() -> RetryConfig {
        RetryConfig {
            budget: Duration::from_secs(5),
            max_attempts: 4,
            backoff: BackoffConfig {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(5),
                multiplier: 2.0,
                jitter: true,
            },
        }
    }

    #[tokio::test]
    async fn usage_is_reported_and_a_429_waits_for_the_usage_reset() {
        let server = ScriptedServer::start().await;
        server.push(429, &[("x-remaining", "0"), ("x-reset", "0")], "slow down");
        server.push(200, &[("x-remaining", "7"), ("x-reset", "60")], "ok");
        let recorder = Arc::new(Recorder::default());
        let meter = Meter {
            budgets: recorder.as_ref(),
            call: BudgetCall::new(PlatformKind::X, BudgetOperation::Read, "42"),
            budget: Some("dm_lookups"),
            usage,
        };
        let client = ClientOptions::default().build().unwrap();
        let snapshot = send_metered(&quick(), true, Some(&meter), |_| {
            client.get(server.url("/x"))
        })
        .await
        .unwrap();
        assert_eq!(snapshot.status, http::StatusCode::OK);
        assert_eq!(server.hits(), 2);
        assert_eq!(
            *recorder.0.lock().unwrap(),
            [
                Pushback::Exhausted {
                    retry_after: Duration::ZERO
                },
                Pushback::Remaining {
                    remaining: 7,
                    reset_after: Duration::from_secs(60)
                }
            ]
        );
    }

    #[tokio::test]
    async fn a_reset_beyond_the_budget_ends_with_that_hint() {
        let server = ScriptedServer::start().await;
        server.push(
            429,
            &[("x-remaining", "0"), ("x-reset", "900")],
            "slow down",
        );
        let recorder = Recorder::default();
        let meter = Meter {
            budgets: &recorder,
            call: BudgetCall::new(PlatformKind::X, BudgetOperation::Read, "42"),
            budget: None,
            usage,
        };
        let client = ClientOptions::default().build().unwrap();
        let err = send_metered(&quick(), true, Some(&meter), |_| {
            client.get(server.url("/x"))
        })
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            RetryError::Exhausted { retry_after: Some(after), .. } if after == Duration::from_secs(900)
        ));
        assert_eq!(server.hits(), 1);
    }
}
