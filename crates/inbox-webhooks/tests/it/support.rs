//! Shared helpers: signed headers, a migrated store (SQLite in a temporary directory, or a
//! fresh PostgreSQL database) with one endpoint, recording events, and waiting for deliveries
//! to settle.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use http::{HeaderMap, HeaderValue};
use inbox_core::{Event, EventType, PageRequest, WorkspaceId};
use inbox_store::{
    Cipher, Delivery, DeliveryState, Endpoint, NewEndpoint, Store, StoreConfig, open,
    open_and_migrate,
};
use inbox_testkit::services::PostgresServer;
use inbox_webhooks::{DeliveryWorkerConfig, RetrySchedule, sign};
use secrecy::SecretString;
use serde_json::json;
use tempfile::TempDir;

/// Generous bound for anything a test waits on; reaching it is a failure, never a measurement.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Standard Webhooks headers for `body`, signed now; also returns the timestamp.
pub fn signed_headers(secrets: &[SecretString], id: &str, body: &str) -> (HeaderMap, i64) {
    let timestamp = chrono_now();
    let signature = sign(secrets, id, timestamp, body.as_bytes()).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", HeaderValue::from_str(id).unwrap());
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
    headers.insert(
        "webhook-signature",
        HeaderValue::from_str(&signature).unwrap(),
    );
    (headers, timestamp)
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// Which database a worker test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated store, one workspace, and one endpoint at `url`.
pub struct Fixture {
    _dir: Option<TempDir>,
    config: StoreConfig,
    pub store: Arc<dyn Store>,
    pub workspace: WorkspaceId,
    pub endpoint: Endpoint,
}

impl Fixture {
    /// `None` when the backend is PostgreSQL and it is not installed (reported by the testkit,
    /// a failure with `CI=true`).
    pub async fn new(backend: Backend, url: &str, secret: SecretString) -> Option<Self> {
        let (dir, database_url) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("inbox.db").display());
                (Some(dir), url)
            }
            Backend::Postgres => {
                // One server per test process; each test gets its own database.
                static SERVER: OnceLock<Option<PostgresServer>> = OnceLock::new();
                let server = SERVER.get_or_init(PostgresServer::start).as_ref()?;
                (None, server.create_database())
            }
        };
        let config = StoreConfig {
            url: database_url,
            cipher: Cipher::from_base64_key(&Cipher::generate_key()).unwrap(),
            max_connections: 4,
        };
        let store = open_and_migrate(&config).await.unwrap();
        let workspace = store.ensure_workspace("webhooks-test").await.unwrap().id;
        let endpoint = store
            .create_endpoint(
                &workspace,
                NewEndpoint {
                    url: url.to_owned(),
                    events: vec![],
                    description: "test receiver".into(),
                    enabled: true,
                    secret,
                },
            )
            .await
            .unwrap();
        Some(Fixture {
            _dir: dir,
            config,
            store,
            workspace,
            endpoint,
        })
    }

    /// Another store instance on the same database, as another replica would open it (its own
    /// pools, its own in-process notifications).
    pub async fn replica(&self) -> Arc<dyn Store> {
        open(&self.config).await.unwrap()
    }

    /// Records `n` `message.received` events (unicode text) and returns their ids in order.
    pub async fn record_events(&self, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            let event = Event::new(
                self.workspace.clone(),
                None,
                EventType::MessageReceived,
                json!({"accountId": null, "platform": "telegram", "text": format!("héllo 👋 #{i}")}),
            );
            assert_eq!(self.store.record_event(&event).await.unwrap(), 1);
            ids.push(event.id.to_string());
        }
        ids
    }

    /// Every delivery of the endpoint, oldest first.
    pub async fn deliveries(&self) -> Vec<Delivery> {
        let mut page = PageRequest::from_query(Some(100), None).unwrap();
        let mut all = Vec::new();
        loop {
            let result = self
                .store
                .list_deliveries(&self.workspace, &self.endpoint.id, &page)
                .await
                .unwrap();
            all.extend(result.data);
            match result.next_cursor {
                Some(cursor) => page = PageRequest::from_query(Some(100), Some(&cursor)).unwrap(),
                None => break,
            }
        }
        all.reverse();
        all
    }

    /// Waits until `done` holds for the endpoint's deliveries; panics after [`PATIENCE`].
    pub async fn wait_until(
        &self,
        what: &str,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let deliveries = self.deliveries().await;
            if done(&deliveries) {
                return deliveries;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("gave up waiting for {what}; deliveries: {deliveries:#?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until every delivery is succeeded or failed.
    pub async fn wait_settled(&self, n: usize) -> Vec<Delivery> {
        self.wait_until(&format!("{n} settled deliveries"), |deliveries| {
            deliveries.len() == n
                && deliveries
                    .iter()
                    .all(|d| d.status != DeliveryState::Pending)
        })
        .await
    }
}

/// A worker configuration for loopback receivers: private addresses allowed, quick polling, a
/// short schedule without jitter.
pub fn worker_config(retry_delays_ms: &[u64]) -> DeliveryWorkerConfig {
    DeliveryWorkerConfig {
        poll_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(10),
        lease: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(30),
        schedule: RetrySchedule::new(
            retry_delays_ms
                .iter()
                .copied()
                .map(Duration::from_millis)
                .collect(),
        )
        .with_jitter(0.0),
        allow_private: true,
        ..DeliveryWorkerConfig::default()
    }
}
