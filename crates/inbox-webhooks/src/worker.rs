//! The durable delivery worker: claims due deliveries from the store, sends them concurrently,
//! records every attempt and schedules the next one.
//!
//! Durability comes from the store, not from this process: a delivery row exists from the moment
//! its event was recorded (the outbox), a claim is a lease, and an attempt is recorded together
//! with what follows it. A worker that dies mid-attempt leaves a claim that expires, and another
//! worker (or this one after a restart) claims the delivery again — at-least-once, which is why
//! receivers deduplicate on `webhook-id`. Several workers, in one process or many replicas, share
//! one store safely: a claim belongs to one owner, and `record_attempt` from an owner whose claim
//! was taken over is ignored.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use inbox_core::{DeliveryId, Error, Timestamp};
use inbox_store::{ClaimedDelivery, DeliveryNext, NewAttempt, Store};
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    schedule::RetrySchedule,
    sender::{DEFAULT_TIMEOUT, OutgoingWebhook, SendOutcome, SenderConfig, WebhookSender},
};

/// Counter of attempts, labelled `outcome="success"|"failure"`.
pub const METRIC_ATTEMPTS: &str = "inbox_webhook_attempts_total";
/// Histogram of attempt durations in seconds.
pub const METRIC_ATTEMPT_DURATION: &str = "inbox_webhook_attempt_duration_seconds";
/// Gauge of deliveries being sent right now.
pub const METRIC_IN_FLIGHT: &str = "inbox_webhook_deliveries_in_flight";

/// Registers descriptions of the worker's metrics with the installed recorder (call once, after
/// installing the Prometheus exporter).
pub fn describe_metrics() {
    metrics::describe_counter!(METRIC_ATTEMPTS, "Webhook delivery attempts, by outcome.");
    metrics::describe_histogram!(
        METRIC_ATTEMPT_DURATION,
        metrics::Unit::Seconds,
        "Duration of one webhook delivery attempt, connect to response."
    );
    metrics::describe_gauge!(METRIC_IN_FLIGHT, "Webhook deliveries being sent right now.");
}

/// How a [`DeliveryWorker`] runs.
#[derive(Debug, Clone)]
pub struct DeliveryWorkerConfig {
    /// Who holds the claims this worker makes; unique per worker. The default is
    /// `webhooks-<pid>-<random>`.
    pub owner: String,
    /// Most deliveries claimed per store round trip. Default 32.
    pub batch_size: u32,
    /// Most deliveries in flight at once. Default 64.
    pub concurrency: usize,
    /// How long a claim lasts. It must exceed `timeout`, or a slow attempt's delivery is claimed
    /// again by another worker while still in flight. Default 60 s.
    pub lease: Duration,
    /// How often the store is asked for due deliveries when nothing wakes the worker earlier
    /// (retries come due by time, and other replicas' new deliveries notify only their own
    /// process). Default 1 s.
    pub poll_interval: Duration,
    /// The request timeout. Default 15 s.
    pub timeout: Duration,
    /// How long shutdown waits for in-flight deliveries before abandoning them to their leases.
    /// Default 30 s.
    pub shutdown_grace: Duration,
    /// The retry schedule. Default: SPEC.md's.
    pub schedule: RetrySchedule,
    /// `INBOX_WEBHOOK_ALLOW_PRIVATE`: deliver to loopback and private addresses. Default `false`.
    pub allow_private: bool,
}

impl Default for DeliveryWorkerConfig {
    fn default() -> Self {
        DeliveryWorkerConfig {
            owner: format!(
                "webhooks-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
            batch_size: 32,
            concurrency: 64,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            timeout: DEFAULT_TIMEOUT,
            shutdown_grace: Duration::from_secs(30),
            schedule: RetrySchedule::default(),
            allow_private: false,
        }
    }
}

impl DeliveryWorkerConfig {
    /// Checks the whole configuration, as the server does at start-up.
    ///
    /// # Errors
    /// `Error::InvalidInput` naming the field: an empty owner, a zero batch size, concurrency,
    /// poll interval or timeout, or a lease that does not exceed the timeout.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_runnable()?;
        if self.lease <= self.timeout {
            return Err(Error::invalid(
                "lease",
                format!(
                    "the delivery claim lease ({:?}) must exceed the request timeout ({:?}), or slow deliveries are sent twice",
                    self.lease, self.timeout
                ),
            ));
        }
        Ok(())
    }

    /// The checks without which the loop cannot run at all.
    fn validate_runnable(&self) -> Result<(), Error> {
        let zero = |field: &str, what: &str| {
            Err(Error::invalid(
                field,
                format!("the delivery worker's {what} must be positive"),
            ))
        };
        if self.owner.trim().is_empty() {
            return Err(Error::invalid(
                "owner",
                "the delivery worker needs an owner id",
            ));
        }
        if self.batch_size == 0 {
            return zero("batch_size", "batch size");
        }
        if self.concurrency == 0 {
            return zero("concurrency", "concurrency");
        }
        if self.poll_interval.is_zero() {
            return zero("poll_interval", "poll interval");
        }
        if self.timeout.is_zero() {
            return zero("timeout", "request timeout");
        }
        if self.lease.is_zero() {
            return zero("lease", "claim lease");
        }
        Ok(())
    }
}

/// What every delivery task needs.
#[derive(Debug)]
struct Shared {
    store: Arc<dyn Store>,
    sender: WebhookSender,
    schedule: RetrySchedule,
    owner: String,
    /// Deliveries this worker is sending right now. A claim of one of them (its lease ran out
    /// while the request was still going, so the store handed it out again, here) is not sent
    /// twice: the new claim just extends the lease of the attempt in flight.
    in_flight: Mutex<HashSet<DeliveryId>>,
}

/// Claims and sends due deliveries until told to stop. See the module docs.
///
/// ```no_run
/// # async fn example(store: std::sync::Arc<dyn inbox_store::Store>) -> Result<(), inbox_core::Error> {
/// use inbox_webhooks::{DeliveryWorker, DeliveryWorkerConfig};
/// use tokio_util::sync::CancellationToken;
///
/// let config = DeliveryWorkerConfig { allow_private: false, ..Default::default() };
/// config.validate()?;
/// let shutdown = CancellationToken::new();
/// let worker = tokio::spawn(DeliveryWorker::new(store, config)?.run(shutdown.clone()));
/// // … on SIGTERM:
/// shutdown.cancel();
/// worker.await.expect("the worker does not panic");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DeliveryWorker {
    shared: Arc<Shared>,
    config: DeliveryWorkerConfig,
}

impl DeliveryWorker {
    /// A worker over `store`.
    ///
    /// A lease that does not exceed the timeout is accepted with a warning (tests use it to
    /// provoke expired claims); [`DeliveryWorkerConfig::validate`] refuses it.
    ///
    /// # Errors
    /// `Error::InvalidInput` for a configuration the loop cannot run with (zero batch size,
    /// concurrency, poll interval, timeout or lease; empty owner); `Error::Internal` when the
    /// HTTP client cannot be built.
    pub fn new(store: Arc<dyn Store>, config: DeliveryWorkerConfig) -> Result<Self, Error> {
        config.validate_runnable()?;
        if let Err(err) = config.validate() {
            tracing::warn!(owner = %config.owner, "{err}");
        }
        let sender = WebhookSender::new(SenderConfig {
            timeout: config.timeout,
            allow_private: config.allow_private,
            ..SenderConfig::default()
        })?;
        let shared = Arc::new(Shared {
            store,
            sender,
            schedule: config.schedule.clone(),
            owner: config.owner.clone(),
            in_flight: Mutex::new(HashSet::new()),
        });
        Ok(DeliveryWorker { shared, config })
    }

    /// The owner id its claims carry.
    pub fn owner(&self) -> &str {
        &self.config.owner
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, waits up to `shutdown_grace`
    /// for in-flight deliveries and returns. Deliveries still in flight after the grace period
    /// are abandoned; their claims expire and they are sent again (at-least-once).
    pub async fn run(self, shutdown: CancellationToken) {
        let config = &self.config;
        let notify = self.shared.store.deliveries_notify();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut consecutive_errors: u32 = 0;
        tracing::info!(owner = %config.owner, concurrency = config.concurrency, "webhook delivery worker started");

        loop {
            while let Some(joined) = tasks.try_join_next() {
                log_task_end(joined);
            }
            if shutdown.is_cancelled() {
                break;
            }
            let capacity = config.concurrency.saturating_sub(tasks.len());
            if capacity == 0 {
                // Full: claim nothing more until a delivery finishes.
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    Some(joined) = tasks.join_next() => log_task_end(joined),
                }
                continue;
            }

            // Registered before claiming, so a commit that lands between the claim and the wait
            // still wakes the worker, whichever of `notify_one`/`notify_waiters` the store uses.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let limit = u32::try_from(capacity)
                .unwrap_or(u32::MAX)
                .min(config.batch_size);
            let wait = match self
                .shared
                .store
                .claim_deliveries(&config.owner, limit, config.lease)
                .await
            {
                Ok(batch) => {
                    consecutive_errors = 0;
                    let full = batch.len() >= limit as usize;
                    for claimed in batch {
                        match InFlight::start(&self.shared, &claimed.delivery_id) {
                            Some(guard) => {
                                tasks.spawn(deliver(Arc::clone(&self.shared), claimed, guard));
                            }
                            None => tracing::debug!(
                                delivery_id = %claimed.delivery_id,
                                "claimed a delivery already in flight here; its lease is extended, it is not sent twice"
                            ),
                        }
                    }
                    if full {
                        // More may be due right now.
                        continue;
                    }
                    config.poll_interval
                }
                Err(err) => {
                    consecutive_errors = consecutive_errors.saturating_add(1);
                    let backoff = error_backoff(config.poll_interval, consecutive_errors);
                    tracing::warn!(owner = %config.owner, error = %err, retry_in_ms = backoff.as_millis() as u64, "claiming webhook deliveries failed");
                    backoff
                }
            };

            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = &mut notified => {}
                () = tokio::time::sleep(wait) => {}
            }
        }

        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(owner = %config.owner, in_flight, "webhook delivery worker stopping; waiting for in-flight deliveries");
        }
        let drained = tokio::time::timeout(config.shutdown_grace, async {
            while let Some(joined) = tasks.join_next().await {
                log_task_end(joined);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                owner = %config.owner,
                abandoned = tasks.len(),
                "webhook deliveries still in flight after the shutdown grace period; their claims will expire and they will be sent again"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        tracing::info!(owner = %config.owner, "webhook delivery worker stopped");
    }
}

/// Doubling from the poll interval up to 30 s while the store keeps failing.
fn error_backoff(poll_interval: Duration, consecutive_errors: u32) -> Duration {
    let factor = 1u32 << consecutive_errors.saturating_sub(1).min(5);
    poll_interval
        .saturating_mul(factor)
        .min(Duration::from_secs(30))
        .max(poll_interval)
}

fn log_task_end(joined: Result<(), JoinError>) {
    if let Err(err) = joined
        && err.is_panic()
    {
        // The claim expires and the delivery is tried again; the panic itself is a bug.
        tracing::error!(error = %err, "a webhook delivery task panicked");
    }
}

/// Marks a delivery in flight in this worker (and in the gauge) until its task ends, however it
/// ends, aborted included.
struct InFlight {
    shared: Arc<Shared>,
    id: DeliveryId,
}

impl InFlight {
    /// `None` when the delivery is already in flight here.
    fn start(shared: &Arc<Shared>, id: &DeliveryId) -> Option<Self> {
        if !shared
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.clone())
        {
            return None;
        }
        metrics::gauge!(METRIC_IN_FLIGHT).increment(1.0);
        Some(InFlight {
            shared: Arc::clone(shared),
            id: id.clone(),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.id);
        metrics::gauge!(METRIC_IN_FLIGHT).decrement(1.0);
    }
}

/// One attempt: send, decide what follows, record.
async fn deliver(shared: Arc<Shared>, claimed: ClaimedDelivery, in_flight: InFlight) {
    let attempt_number = claimed.previous_attempts.saturating_add(1);
    let span = tracing::info_span!(
        "webhook_delivery",
        delivery_id = %claimed.delivery_id,
        endpoint_id = %claimed.endpoint_id,
        event_id = %claimed.event_id,
        event_type = %claimed.event_type,
        attempt = attempt_number,
    );
    async move {
        let _in_flight = in_flight;
        let attempted_at = Timestamp::now();
        let started = Instant::now();
        let outcome = shared
            .sender
            .send(OutgoingWebhook {
                url: &claimed.url,
                secrets: &claimed.secrets,
                event_id: claimed.event_id.as_str(),
                payload: &claimed.payload,
            })
            .await;
        let elapsed = started.elapsed();

        let label = if outcome.is_success() {
            "success"
        } else {
            "failure"
        };
        metrics::counter!(METRIC_ATTEMPTS, "outcome" => label).increment(1);
        metrics::histogram!(METRIC_ATTEMPT_DURATION).record(elapsed.as_secs_f64());

        let next = next_step(&shared.schedule, &claimed, attempt_number, &outcome);
        log_outcome(&outcome, next, elapsed);
        let attempt = NewAttempt {
            attempted_at,
            status_code: outcome.status,
            error: outcome.error.as_ref().map(ToString::to_string),
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            response_body: outcome.response_body,
        };
        record(&shared, &claimed, &attempt, next).await;
    }
    .instrument(span)
    .await;
}

/// What follows an attempt.
fn next_step(
    schedule: &RetrySchedule,
    claimed: &ClaimedDelivery,
    attempt_number: u32,
    outcome: &SendOutcome,
) -> DeliveryNext {
    if outcome.is_success() {
        return DeliveryNext::Succeeded;
    }
    match schedule.next_after_failure(attempt_number, outcome.retry_after, claimed.one_shot) {
        Some(delay) => DeliveryNext::RetryAt(Timestamp::now() + delay),
        None => DeliveryNext::Failed,
    }
}

fn log_outcome(outcome: &SendOutcome, next: DeliveryNext, elapsed: Duration) {
    let duration_ms = elapsed.as_millis() as u64;
    let status = outcome.status;
    match (&outcome.error, next) {
        (None, _) => tracing::info!(?status, duration_ms, "webhook delivered"),
        (Some(error), DeliveryNext::RetryAt(at)) => {
            tracing::info!(?status, duration_ms, %error, next_attempt_at = %at, "webhook attempt failed; will retry")
        }
        (Some(error), _) => {
            tracing::warn!(?status, duration_ms, %error, "webhook attempt failed; no attempts left, delivery failed")
        }
    }
}

/// Records the attempt, retrying briefly when the store errors. Giving up is safe: the claim
/// expires and the delivery is sent again.
async fn record(
    shared: &Shared,
    claimed: &ClaimedDelivery,
    attempt: &NewAttempt,
    next: DeliveryNext,
) {
    const TRIES: u32 = 4;
    for try_number in 1..=TRIES {
        match shared
            .store
            .record_attempt(&claimed.delivery_id, &shared.owner, attempt, next)
            .await
        {
            Ok(true) => return,
            Ok(false) => {
                // Our claim expired and another worker took the delivery over; its attempt is
                // the one that counts.
                tracing::info!(
                    "claim expired before the attempt was recorded; another worker owns the delivery now"
                );
                return;
            }
            Err(err) if try_number < TRIES => {
                tracing::warn!(error = %err, try_number, "recording the webhook attempt failed; retrying");
                tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(try_number - 1)).await;
            }
            Err(err) => {
                tracing::error!(error = %err, "recording the webhook attempt failed; the delivery will be sent again when its claim expires");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_owners_differ() {
        let a = DeliveryWorkerConfig::default();
        a.validate().unwrap();
        assert_ne!(a.owner, DeliveryWorkerConfig::default().owner);
        assert_eq!(a.concurrency, 64);
        assert_eq!(a.lease, Duration::from_secs(60));
    }

    #[test]
    fn a_lease_not_exceeding_the_timeout_is_refused_by_validate() {
        let config = DeliveryWorkerConfig {
            lease: Duration::from_secs(15),
            ..Default::default()
        };
        let err = config.validate().unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput { param: Some(p), .. } if p == "lease"),
            "{err}"
        );
        config.validate_runnable().unwrap();
        let zero = DeliveryWorkerConfig {
            concurrency: 0,
            ..Default::default()
        };
        assert!(zero.validate_runnable().is_err());
    }

    #[test]
    fn store_errors_back_off_up_to_thirty_seconds() {
        let poll = Duration::from_secs(1);
        assert_eq!(error_backoff(poll, 1), poll);
        assert_eq!(error_backoff(poll, 2), Duration::from_secs(2));
        assert_eq!(error_backoff(poll, 40), Duration::from_secs(30));
    }
}
