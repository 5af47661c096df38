//! The delivery worker against the real store, SQLite and PostgreSQL, and a real receiver:
//! success, retries with their attempt log, exhaustion, manual one-shot retries, concurrency,
//! graceful shutdown, two replicas sharing a database, and claims that expire under a hung or
//! killed worker.

use std::{collections::HashSet, sync::Arc, time::Duration};

use inbox_store::DeliveryState;
use inbox_testkit::receiver::{Reply, WebhookReceiver};
use inbox_webhooks::{DeliveryWorker, DeliveryWorkerConfig, generate_secret};
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use inbox_store::Store;

use crate::support::{Backend, Fixture, PATIENCE, worker_config};

/// A running worker and the token that stops it.
struct Running {
    shutdown: CancellationToken,
    handle: JoinHandle<()>,
}

impl Running {
    fn start(fixture: &Fixture, config: DeliveryWorkerConfig) -> Self {
        Self::start_on(Arc::clone(&fixture.store), config)
    }

    /// On a given store instance (a replica's).
    fn start_on(store: Arc<dyn Store>, config: DeliveryWorkerConfig) -> Self {
        let worker = DeliveryWorker::new(store, config).unwrap();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        Running { shutdown, handle }
    }

    /// Cancels and waits for `run` to return.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.handle)
            .await
            .expect("the worker stops within the grace period")
            .expect("the worker does not panic");
    }
}

/// A receiver and a store whose one endpoint points at it; `None` when the backend is missing
/// (a skip, or a failure with `CI=true`).
async fn setup(backend: Backend) -> Option<(WebhookReceiver, Fixture)> {
    let secret = generate_secret();
    let receiver = WebhookReceiver::start(secret.expose_secret()).await;
    let fixture = Fixture::new(backend, &receiver.url(), secret).await?;
    Some((receiver, fixture))
}

/// Expands each scenario into one test per backend: `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_every_backend!(
    delivers_on_the_first_try,
    fails_twice_then_succeeds_with_three_attempts_logged,
    an_exhausted_schedule_fails_the_delivery_and_a_manual_retry_is_one_shot,
    delivers_concurrently_within_the_limit,
    shutdown_finishes_in_flight_deliveries,
    a_stopped_worker_claims_nothing_more,
    two_replicas_on_one_database_never_send_one_attempt_twice,
    an_expired_claim_is_taken_over_and_the_late_attempt_is_ignored,
    a_killed_workers_delivery_is_claimed_again_after_its_lease,
    a_worker_without_allow_private_refuses_loopback_endpoints,
);

async fn delivers_on_the_first_try(backend: Backend) {
    let Some((receiver, fixture)) = setup(backend).await else {
        return;
    };
    let worker = Running::start(&fixture, worker_config(&[100, 100]));
    let ids = fixture.record_events(1).await;

    let deliveries = fixture.wait_settled(1).await;
    let delivery = &deliveries[0];
    assert_eq!(delivery.status, DeliveryState::Succeeded);
    assert_eq!(delivery.attempt_count, 1);
    assert_eq!(delivery.attempts.len(), 1);
    assert_eq!(delivery.attempts[0].attempt_number, 1);
    assert_eq!(delivery.attempts[0].status_code, Some(200));
    assert_eq!(delivery.attempts[0].error, None);
    assert_eq!(delivery.next_attempt_at, None);

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].verified, "{:?}", received[0].verification_error);
    assert_eq!(received[0].webhook_id(), Some(ids[0].as_str()));
    let event = &receiver.verified_events()[0];
    assert_eq!(event["id"], ids[0].as_str());
    assert_eq!(event["event"], "message.received");
    assert_eq!(event["data"]["text"], "héllo 👋 #0");
    worker.stop().await;
}

async fn fails_twice_then_succeeds_with_three_attempts_logged(backend: Backend) {
    let Some((receiver, fixture)) = setup(backend).await else {
        return;
    };
    receiver.respond_with(Reply::status(500).body("database down").times(2));
    let worker = Running::start(&fixture, worker_config(&[100, 100, 100]));
    let ids = fixture.record_events(1).await;

    let deliveries = fixture.wait_settled(1).await;
    let delivery = &deliveries[0];
    assert_eq!(delivery.status, DeliveryState::Succeeded);
    let statuses: Vec<_> = delivery.attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
    let numbers: Vec<_> = delivery.attempts.iter().map(|a| a.attempt_number).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(delivery.attempts[0].error.as_deref(), Some("HTTP 500"));
    assert_eq!(
        delivery.attempts[0].response_body.as_deref(),
        Some("database down")
    );
    assert_eq!(delivery.attempts[2].error, None);

    // Every retry carries the same webhook-id (the receiver's idempotency key), signed anew.
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(
        received
            .iter()
            .all(|r| r.verified && r.webhook_id() == Some(ids[0].as_str()))
    );
    worker.stop().await;
}

async fn an_exhausted_schedule_fails_the_delivery_and_a_manual_retry_is_one_shot(backend: Backend) {
    let Some((receiver, fixture)) = setup(backend).await else {
        return;
    };
    receiver.set_default(Reply::status(503));
    let worker = Running::start(&fixture, worker_config(&[50, 50]));
    fixture.record_events(1).await;

    let deliveries = fixture.wait_settled(1).await;
    let delivery = &deliveries[0];
    assert_eq!(delivery.status, DeliveryState::Failed);
    assert_eq!(
        delivery.attempts.len(),
        3,
        "one attempt plus one per scheduled retry"
    );
    assert!(delivery.attempts.iter().all(|a| a.status_code == Some(503)));
    assert_eq!(delivery.next_attempt_at, None);

    // A manual retry of a failed delivery gets exactly one more attempt, not a new schedule.
    fixture
        .store
        .retry_delivery(&fixture.workspace, &fixture.endpoint.id, &delivery.id)
        .await
        .unwrap();
    let deliveries = fixture
        .wait_until("the manual retry's attempt", |d| {
            d[0].attempts.len() == 4 && d[0].status != DeliveryState::Pending
        })
        .await;
    assert_eq!(deliveries[0].status, DeliveryState::Failed);
    assert_eq!(deliveries[0].attempts[3].attempt_number, 4);
    worker.stop().await;
    assert_eq!(
        receiver.received().len(),
        4,
        "nothing was scheduled after the one-shot attempt"
    );
}

async fn delivers_concurrently_within_the_limit(backend: Backend) {
    let Some((receiver, fixture)) = setup(backend).await else {
        return;
    };
    // Slow answers keep requests in flight together, so the limit is what bounds them.
    receiver.set_default(Reply::ok().delayed(Duration::from_millis(200)));
    let config = DeliveryWorkerConfig {
        concurrency: 4,
        batch_size: 3,
        ..worker_config(&[100])
    };
    let ids = fixture.record_events(20).await;
    let worker = Running::start(&fixture, config);

    let deliveries = fixture.wait_settled(20).await;
    assert!(
        deliveries
            .iter()
            .all(|d| d.status == DeliveryState::Succeeded && d.attempts.len() == 1)
    );
    let received: HashSet<String> = receiver
        .received()
        .iter()
        .map(|r| r.webhook_id().unwrap().to_owned())
        .collect();
    assert_eq!(received, ids.into_iter().collect::<HashSet<_>>());
    assert!(receiver.max_in_flight() > 1, "deliveries overlapped");
    assert!(
        receiver.max_in_flight() <= 4,
        "never more than the limit: {}",
        receiver.max_in_flight()
    );
    worker.stop().await;
}

async fn shutdown_finishes_in_flight_deliveries(backend: Backend) {
    let Some((receiver, fixture)) = setup(backend).await else {
        return;
    };
    receiver.respond_with([Reply::ok().delayed(Duration::from_secs(1))]);
    let worker = Running::start(&fixture, worker_config(&[100]));
    fixture.record_events(1).await;

    receiver.wait_for(1, PATIENCE).await;
    // The request is in flight (the receiver holds it for a second) when shutdown starts.
    worker.stop().await;

    // `run` returned only after the attempt was sent, answered and recorded.
    let deliveries = fixture.deliveries().await;
    assert_eq!(deliveries[0].status, DeliveryState::Succeeded);
    assert_eq!(deliveries[0].attempts.len(), 1);
    assert_eq!(deliveries[0].attempts[0].status_code, Some(200));
}

async fn a_stopped_worker_claims_nothing_more(backend: Backend) {
    let Some((receiver, fixture)) = setup(backend).await else {
        return;
    };
    let worker = Running::start(&fixture, worker_config(&[100]));
    worker.stop().await;
    fixture.record_events(2).await;
    // A worker started now delivers both, so they were left for it rather than lost.
    let next = Running::start(&fixture, worker_config(&[100]));
    fixture.wait_settled(2).await;
    next.stop().await;
    assert_eq!(receiver.received().len(), 2);
}

async fn two_replicas_on_one_database_never_send_one_attempt_twice(backend: Backend) {
    let Some((receiver, fixture)) = setup(backend).await else {
        return;
    };
    receiver.set_default(Reply::ok().delayed(Duration::from_millis(20)));
    let ids = fixture.record_events(40).await;
    let config = || DeliveryWorkerConfig {
        concurrency: 4,
        batch_size: 2,
        ..worker_config(&[100])
    };
    let (a, b) = (config(), config());
    assert_ne!(a.owner, b.owner);
    // Each replica opens its own store: no shared pool, no shared notification, only the
    // database's claims keep them apart.
    let first = Running::start(&fixture, a);
    let second = Running::start_on(fixture.replica().await, b);

    let deliveries = fixture.wait_settled(40).await;
    first.stop().await;
    second.stop().await;
    assert!(
        deliveries
            .iter()
            .all(|d| d.status == DeliveryState::Succeeded && d.attempts.len() == 1)
    );
    let received: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.webhook_id().unwrap().to_owned())
        .collect();
    assert_eq!(received.len(), 40, "each event was sent exactly once");
    assert_eq!(
        received.into_iter().collect::<HashSet<_>>(),
        ids.into_iter().collect::<HashSet<_>>()
    );
}

async fn an_expired_claim_is_taken_over_and_the_late_attempt_is_ignored(backend: Backend) {
    let Some((receiver, fixture)) = setup(backend).await else {
        return;
    };
    receiver.respond_with([Reply::hang()]);
    // A lease far shorter than the timeout: the claim expires while the request hangs.
    // It polls rarely, so it does not win the expired claim back before the healthy worker.
    let slow = DeliveryWorkerConfig {
        lease: Duration::from_millis(300),
        timeout: Duration::from_secs(3),
        poll_interval: Duration::from_secs(60),
        ..worker_config(&[100])
    };
    let hung = Running::start(&fixture, slow);
    fixture.record_events(1).await;
    receiver.wait_for(1, PATIENCE).await;

    let healthy = Running::start_on(fixture.replica().await, worker_config(&[100]));
    let deliveries = fixture.wait_settled(1).await;
    assert_eq!(deliveries[0].status, DeliveryState::Succeeded);
    assert_eq!(
        deliveries[0].attempts.len(),
        1,
        "only the worker holding the claim recorded"
    );
    assert_eq!(deliveries[0].attempts[0].status_code, Some(200));

    // The hung worker's request times out and its record is refused; stopping waits for it.
    hung.stop().await;
    healthy.stop().await;
    let deliveries = fixture.deliveries().await;
    assert_eq!(
        deliveries[0].status,
        DeliveryState::Succeeded,
        "the late timeout changed nothing"
    );
    assert_eq!(deliveries[0].attempts.len(), 1);
    let received = receiver.received();
    assert_eq!(received.len(), 2, "at-least-once: the event was sent twice");
    assert_eq!(
        received[0].webhook_id(),
        received[1].webhook_id(),
        "with one webhook-id to dedupe on"
    );
}

async fn a_killed_workers_delivery_is_claimed_again_after_its_lease(backend: Backend) {
    let Some((receiver, fixture)) = setup(backend).await else {
        return;
    };
    receiver.respond_with([Reply::hang()]);
    let doomed = Running::start(
        &fixture,
        DeliveryWorkerConfig {
            lease: Duration::from_secs(4),
            timeout: Duration::from_secs(3),
            ..worker_config(&[100])
        },
    );
    fixture.record_events(1).await;
    receiver.wait_for(1, PATIENCE).await;
    // Killed mid-request: the task and its in-flight delivery are dropped, nothing is recorded.
    doomed.handle.abort();
    assert!(doomed.handle.await.unwrap_err().is_cancelled());
    assert!(fixture.deliveries().await[0].attempts.is_empty());

    // The restarted process opens the database anew.
    let survivor = Running::start_on(fixture.replica().await, worker_config(&[100]));
    let deliveries = fixture.wait_settled(1).await;
    survivor.stop().await;
    assert_eq!(deliveries[0].status, DeliveryState::Succeeded);
    assert_eq!(deliveries[0].attempts.len(), 1);
    assert_eq!(receiver.received().len(), 2);
}

async fn a_worker_without_allow_private_refuses_loopback_endpoints(backend: Backend) {
    let Some((receiver, fixture)) = setup(backend).await else {
        return;
    };
    let worker = Running::start(
        &fixture,
        DeliveryWorkerConfig {
            allow_private: false,
            ..worker_config(&[])
        },
    );
    fixture.record_events(1).await;
    let deliveries = fixture.wait_settled(1).await;
    worker.stop().await;
    assert_eq!(deliveries[0].status, DeliveryState::Failed);
    let error = deliveries[0].attempts[0].error.as_deref().unwrap();
    assert!(
        error.starts_with("blocked: 127.0.0.1 is a private address"),
        "{error}"
    );
    assert_eq!(deliveries[0].attempts[0].status_code, None);
    assert!(receiver.received().is_empty());
}
