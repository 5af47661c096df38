//! Fixtures for the store conformance suite: a fresh migrated store per test on either
//! backend, and small builders for workspaces, accounts, inbound messages and endpoints.

use std::{
    path::PathBuf,
    sync::{Arc, OnceLock},
};

use inbox_core::{
    Account, AccountId, Attachment, AttachmentKind, Credentials, Direction, EventType, InboundKind,
    InboundMessage, MessageId, Page, PageRequest, Participant, PlatformKind, RawEventId, Timestamp,
    WorkspaceId,
};
use inbox_store::{
    AppliedInbound, Cipher, Delivery, Endpoint, NewAccount, NewEndpoint, NewRawEvent, Store,
    StoreConfig, open, open_and_migrate,
};
use inbox_testkit::services::PostgresServer;
use secrecy::SecretString;
use tempfile::TempDir;

/// One test's database: the store, and what it takes to open it again or read it raw.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub config: StoreConfig,
    _dir: Option<TempDir>,
}

impl TestDb {
    /// Another store on the same database with a different encryption key.
    pub async fn reopen_with_another_key(&self) -> Arc<dyn Store> {
        let config = StoreConfig {
            cipher: Cipher::from_base64_key(&Cipher::generate_key()).unwrap(),
            ..self.config.clone()
        };
        open(&config).await.unwrap()
    }

    /// Every value of one text column, read around the store (to check what is at rest).
    pub async fn raw_texts(&self, query: &'static str) -> Vec<String> {
        if self.config.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.config.url).await.unwrap();
            let rows: Vec<(Option<String>,)> =
                sqlx::query_as(query).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows.into_iter().filter_map(|(text,)| text).collect()
        } else {
            let pool = sqlx::PgPool::connect(&self.config.url).await.unwrap();
            let rows: Vec<(Option<String>,)> =
                sqlx::query_as(query).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows.into_iter().filter_map(|(text,)| text).collect()
        }
    }
}

fn config(url: String) -> StoreConfig {
    StoreConfig {
        url,
        cipher: Cipher::from_base64_key(&Cipher::generate_key()).unwrap(),
        max_connections: 8,
    }
}

/// A migrated store in a fresh SQLite file (whose directory does not exist yet, to check it
/// is created).
pub async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("nested").join("inbox.db");
    let config = config(format!("sqlite://{}", path.display()));
    let store = open_and_migrate(&config).await.unwrap();
    TestDb {
        store,
        config,
        _dir: Some(dir),
    }
}

/// A migrated store in a fresh database of this process's PostgreSQL server, or `None` when
/// PostgreSQL is not installed (reported by the testkit).
pub async fn postgres_db() -> Option<TestDb> {
    static SERVER: OnceLock<Option<PostgresServer>> = OnceLock::new();
    let server = SERVER.get_or_init(PostgresServer::start).as_ref()?;
    let config = config(server.create_database());
    let store = open_and_migrate(&config).await.unwrap();
    Some(TestDb {
        store,
        config,
        _dir: None,
    })
}

pub fn person(id: &str, name: &str) -> Participant {
    Participant {
        id: id.into(),
        name: name.into(),
        username: None,
        picture: None,
    }
}

pub async fn workspace(store: &Arc<dyn Store>, name: &str) -> WorkspaceId {
    store.ensure_workspace(name).await.unwrap().id
}

pub fn new_account(
    workspace: &WorkspaceId,
    platform: PlatformKind,
    platform_id: &str,
) -> NewAccount {
    NewAccount {
        workspace_id: workspace.clone(),
        platform,
        platform_account_id: platform_id.into(),
        name: format!("Account {platform_id}"),
        username: Some(format!("user_{platform_id}")),
        credentials: Credentials::from_json_text(format!(
            "{{\"botToken\":\"token-{platform_id}\"}}"
        )),
        inbound_secret: Some(SecretString::from(format!("inbound-{platform_id}"))),
        credentials_expire_at: None,
        refresh_due_at: None,
    }
}

pub async fn account(
    store: &Arc<dyn Store>,
    workspace: &WorkspaceId,
    platform_id: &str,
) -> Account {
    store
        .connect_account(new_account(workspace, PlatformKind::Telegram, platform_id))
        .await
        .unwrap()
        .account
}

pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_736_937_000 + seconds)
}

/// An inbound message in thread `thread` from participant `thread` (or an echo to them).
pub fn message(
    thread: &str,
    platform_id: &str,
    direction: Direction,
    text: &str,
    seconds: i64,
) -> InboundMessage {
    let participant = person(&format!("user-{thread}"), &format!("User {thread}"));
    let business = person("bot", "The Business");
    InboundMessage {
        platform_conversation_id: thread.into(),
        platform_message_id: platform_id.into(),
        direction,
        sender: if direction == Direction::Incoming {
            participant.clone()
        } else {
            business
        },
        participant,
        text: text.into(),
        attachments: vec![],
        timestamp: at(seconds),
        reply_to_platform_message_id: None,
    }
}

pub fn incoming(thread: &str, platform_id: &str, text: &str, seconds: i64) -> InboundKind {
    InboundKind::Message(message(
        thread,
        platform_id,
        Direction::Incoming,
        text,
        seconds,
    ))
}

pub fn image() -> Attachment {
    Attachment {
        kind: AttachmentKind::Image,
        url: "https://cdn.example/p.png".into(),
        mime_type: None,
        name: None,
    }
}

/// Stores a raw event for `account` and applies `events` against it.
pub async fn apply(
    store: &Arc<dyn Store>,
    account: &Account,
    events: Vec<InboundKind>,
) -> AppliedInbound {
    let raw = raw_event(store, account).await;
    store.apply_inbound(&raw, account, events).await.unwrap()
}

pub async fn raw_event(store: &Arc<dyn Store>, account: &Account) -> RawEventId {
    store
        .insert_raw_events(vec![NewRawEvent {
            platform: account.platform,
            account_id: Some(account.id.clone()),
            payload: b"{}".to_vec(),
            received_at: Timestamp::now(),
        }])
        .await
        .unwrap()
        .remove(0)
}

pub fn new_endpoint(events: Vec<EventType>, enabled: bool, secret: &str) -> NewEndpoint {
    NewEndpoint {
        url: "https://hooks.example/inbox".into(),
        events,
        description: "test endpoint".into(),
        enabled,
        secret: SecretString::from(secret.to_owned()),
    }
}

/// An enabled endpoint subscribed to every event type.
pub async fn catch_all(store: &Arc<dyn Store>, workspace: &WorkspaceId) -> Endpoint {
    store
        .create_endpoint(workspace, new_endpoint(vec![], true, "whsec_catchall"))
        .await
        .unwrap()
}

/// Every delivery of an endpoint, oldest first, walking all pages.
pub async fn all_deliveries(
    store: &Arc<dyn Store>,
    workspace: &WorkspaceId,
    endpoint: &Endpoint,
) -> Vec<Delivery> {
    let mut all = Vec::new();
    let mut page = PageRequest {
        limit: 100,
        after: None,
    };
    loop {
        let Page { data, next_cursor } = store
            .list_deliveries(workspace, &endpoint.id, &page)
            .await
            .unwrap();
        all.extend(data);
        match next_cursor {
            Some(cursor) => page.after = Some(inbox_core::Cursor::decode(&cursor).unwrap()),
            None => break,
        }
    }
    all.reverse();
    all
}

/// The event types an endpoint was sent, oldest first.
pub async fn event_types(
    store: &Arc<dyn Store>,
    workspace: &WorkspaceId,
    endpoint: &Endpoint,
) -> Vec<EventType> {
    all_deliveries(store, workspace, endpoint)
        .await
        .into_iter()
        .map(|d| d.event_type)
        .collect()
}

/// Every page of a paginated list, by `fetch(page)`.
pub async fn collect_pages<T, F, Fut>(limit: u32, mut fetch: F) -> Vec<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Page<T>>,
{
    let mut pages = Vec::new();
    let mut request = PageRequest { limit, after: None };
    loop {
        let page = fetch(request.clone()).await;
        pages.push(page.data);
        match page.next_cursor {
            Some(cursor) => request.after = Some(inbox_core::Cursor::decode(&cursor).unwrap()),
            None => return pages,
        }
        assert!(pages.len() < 100, "pagination does not end");
    }
}

/// A cursor this API never produced but which decodes: a position before everything.
pub fn far_cursor(limit: u32, sort_key: i64) -> PageRequest {
    PageRequest {
        limit,
        after: Some(inbox_core::Cursor {
            sort_key,
            id: "zzz_not_an_id".into(),
        }),
    }
}

pub fn unknown_account() -> AccountId {
    AccountId::new()
}

pub fn unknown_message() -> MessageId {
    MessageId::new()
}

/// Claims every due delivery for `owner` (a generous lease), as a worker would.
pub async fn claim_all(store: &Arc<dyn Store>, owner: &str) -> Vec<inbox_store::ClaimedDelivery> {
    store
        .claim_deliveries(owner, 100, std::time::Duration::from_secs(60))
        .await
        .unwrap()
}
