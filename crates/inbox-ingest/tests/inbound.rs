//! Inbound end to end inside one process: the real Telegram adapter against the fake Bot API,
//! the real SQLite store, and the ingest routes served on a loopback port. Covers webhook
//! verification, group commit, processing, dedupe of redeliveries, edits, ignored updates,
//! polling with a persisted cursor across restarts, and revoked tokens.

use std::{future::Future, sync::Arc, time::Duration};

use inbox_core::{
    Account, AccountStatus, EventType, InboundMode, Page, PageRequest, PlatformKind,
    PlatformRegistry, WorkspaceId,
};
use inbox_ingest::{Inbound, InboundConfig};
use inbox_platform_telegram::{Telegram, TelegramConfig};
use inbox_store::{
    Cipher, ConversationFilter, Delivery, NewAccount, NewEndpoint, SortOrder, Store, StoreConfig,
};
use inbox_testkit::fakes::telegram::{FakeTelegram, Pushed, SECRET_HEADER};
use secrecy::SecretString;
use serde_json::json;

const TOKEN: &str = "123456:TEST-token";
const USER: i64 = 111_222_333;

struct Harness {
    store: Arc<dyn Store>,
    fake: FakeTelegram,
    platforms: Arc<PlatformRegistry>,
    workspace: WorkspaceId,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            url: format!("sqlite://{}", dir.path().join("inbox.db").display()),
            cipher: Cipher::from_base64_key(&Cipher::generate_key()).unwrap(),
            max_connections: 4,
        };
        let store = inbox_store::open_and_migrate(&config).await.unwrap();
        let fake = FakeTelegram::start().await;
        fake.add_bot(TOKEN, 123_456, "Support", "support_bot");
        fake.add_user(USER, "Alice", Some("Smith"), Some("alice"));
        let telegram = TelegramConfig::builder(fake.base_url())
            .long_poll_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let mut platforms = PlatformRegistry::new();
        platforms.register(Arc::new(Telegram::new(telegram).unwrap()));
        let workspace = store.ensure_workspace("acme").await.unwrap().id;
        Harness {
            store,
            fake,
            platforms: Arc::new(platforms),
            workspace,
            _dir: dir,
        }
    }

    /// Starts inbound; with `public` the routes are served and used as `INBOX_PUBLIC_URL`.
    async fn inbound(&self, public: bool, owner: &str) -> (Inbound, Option<String>) {
        let (listener, url) = if public {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            (Some(listener), Some(url))
        } else {
            (None, None)
        };
        let mut config = InboundConfig::new(url.clone(), owner);
        config.processor.idle_poll = Duration::from_millis(50);
        config.pollers.lease = Duration::from_secs(5);
        config.pollers.standby_interval = Duration::from_millis(200);
        config.pollers.backoff_min = Duration::from_millis(50);
        let inbound = Inbound::start(self.store.clone(), self.platforms.clone(), config);
        if let Some(listener) = listener {
            let router = inbound.router();
            tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        }
        (inbound, url)
    }

    async fn connect_bot(&self) -> Account {
        let platform = self.platforms.get(PlatformKind::Telegram).unwrap();
        let connected = platform
            .connect(&json!({ "botToken": TOKEN }))
            .await
            .unwrap();
        self.store
            .connect_account(NewAccount {
                workspace_id: self.workspace.clone(),
                platform: PlatformKind::Telegram,
                platform_account_id: connected.platform_account_id,
                name: connected.name,
                username: connected.username,
                credentials: connected.credentials,
                inbound_secret: Some(SecretString::from("s3cret_Secret-token")),
                credentials_expire_at: None,
                refresh_due_at: None,
            })
            .await
            .unwrap()
            .account
    }

    /// An endpoint subscribed to everything, so deliveries count the events recorded from now
    /// on (create it after connecting, or `account.connected` is counted too).
    async fn endpoint(&self) -> inbox_core::EndpointId {
        self.store
            .create_endpoint(
                &self.workspace,
                NewEndpoint {
                    url: "https://app.example.com/hooks".into(),
                    events: vec![],
                    description: String::new(),
                    enabled: true,
                    secret: SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn event_types(&self, endpoint: &inbox_core::EndpointId) -> Vec<EventType> {
        let page: Page<Delivery> = self
            .store
            .list_deliveries(
                &self.workspace,
                endpoint,
                &PageRequest {
                    limit: 100,
                    after: None,
                },
            )
            .await
            .unwrap();
        let mut types: Vec<_> = page.data.into_iter().map(|d| d.event_type).collect();
        types.reverse(); // the list is newest first
        types
    }

    async fn messages(&self) -> Vec<inbox_core::Message> {
        let conversations = self
            .store
            .list_conversations(
                &self.workspace,
                &ConversationFilter::default(),
                &PageRequest::first(),
            )
            .await
            .unwrap();
        let mut all = Vec::new();
        for conversation in conversations.data {
            let page = self
                .store
                .list_messages(
                    &self.workspace,
                    &conversation.id,
                    SortOrder::Asc,
                    &PageRequest {
                        limit: 100,
                        after: None,
                    },
                )
                .await
                .unwrap();
            all.extend(page.data);
        }
        all
    }
}

/// Polls `check` until it holds; panics after 20 s with `what`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn webhook_push_is_verified_stored_and_becomes_a_message_with_events() {
    let h = Harness::new().await;
    let (inbound, url) = h.inbound(true, "replica-a").await;
    let account = h.connect_bot().await;
    let endpoint = h.endpoint().await;
    assert_eq!(
        inbound.activate(&account).await.unwrap(),
        InboundMode::WebhookPerAccount
    );

    let info = h.fake.webhook_info(TOKEN);
    assert_eq!(
        info.url,
        format!("{}/webhooks/telegram/{}", url.unwrap(), account.id)
    );
    assert_eq!(info.secret_token.as_deref(), Some("s3cret_Secret-token"));

    let (_, pushed) = h.fake.message(TOKEN, USER).text("hello bot").push().await;
    assert!(
        matches!(pushed, Pushed::Webhook(ref d) if d.delivered && d.statuses == [Some(200)]),
        "{pushed:?}"
    );

    eventually("the message is stored", || async {
        h.messages().await.len() == 1
    })
    .await;
    let message = &h.messages().await[0];
    assert_eq!(message.text, "hello bot");
    assert_eq!(message.sender.name, "Alice Smith");
    assert_eq!(message.sender.id, USER.to_string());
    eventually("both events are queued", || async {
        h.event_types(&endpoint).await.len() == 2
    })
    .await;
    assert_eq!(
        h.event_types(&endpoint).await,
        [EventType::ConversationStarted, EventType::MessageReceived]
    );
    inbound.shutdown().await;
}

#[tokio::test]
async fn wrong_or_missing_secret_is_rejected_and_stores_nothing() {
    let h = Harness::new().await;
    let (inbound, url) = h.inbound(true, "replica-a").await;
    let account = h.connect_bot().await;
    inbound.activate(&account).await.unwrap();
    let target = format!("{}/webhooks/telegram/{}", url.unwrap(), account.id);
    let update = h.fake.message(TOKEN, USER).text("forged").build();
    let client = reqwest::Client::new();

    let missing = client.post(&target).json(&update).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let wrong = client
        .post(&target)
        .header(SECRET_HEADER, "not-the-secret")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let unknown = client
        .post(format!(
            "{}/webhooks/telegram/acc_01jd3k5n8q2w4e6r8t0y2u4i6o",
            h_base(&target)
        ))
        .header(SECRET_HEADER, "s3cret_Secret-token")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    inbound.shutdown().await;
    // Nothing reached the raw table: there is nothing to claim, and no message exists.
    let claimed = h
        .store
        .claim_raw_events("probe", 10, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(claimed.is_empty(), "{claimed:?}");
    assert!(h.messages().await.is_empty());
}

fn h_base(target: &str) -> &str {
    target.split("/webhooks/").next().unwrap()
}

#[tokio::test]
async fn redelivered_update_yields_one_message_and_one_event() {
    let h = Harness::new().await;
    let (inbound, _) = h.inbound(true, "replica-a").await;
    let account = h.connect_bot().await;
    let endpoint = h.endpoint().await;
    inbound.activate(&account).await.unwrap();

    let (update, _) = h.fake.message(TOKEN, USER).text("once").push().await;
    let update_id = update["update_id"].as_i64().unwrap();
    h.fake.redeliver(TOKEN, update_id).await;
    h.fake.redeliver(TOKEN, update_id).await;

    eventually("three raw events processed", || async {
        h.store
            .claim_raw_events("probe", 10, Duration::from_millis(1))
            .await
            .unwrap()
            .is_empty()
            && h.messages().await.len() == 1
    })
    .await;
    // Give the processor the chance to (wrongly) apply the redeliveries, then count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.messages().await.len(), 1);
    assert_eq!(
        h.event_types(&endpoint).await,
        [EventType::ConversationStarted, EventType::MessageReceived]
    );
    inbound.shutdown().await;
}

#[tokio::test]
async fn edit_emits_message_edited_and_a_repeated_edit_nothing() {
    let h = Harness::new().await;
    let (inbound, _) = h.inbound(true, "replica-a").await;
    let account = h.connect_bot().await;
    let endpoint = h.endpoint().await;
    inbound.activate(&account).await.unwrap();

    let (update, _) = h.fake.message(TOKEN, USER).text("helo").push().await;
    let edit = h.fake.edited(TOKEN, &update, "hello");
    h.fake.push_update(TOKEN, edit.clone()).await;
    h.fake
        .redeliver(TOKEN, edit["update_id"].as_i64().unwrap())
        .await;

    eventually("the edit is applied", || async {
        h.messages()
            .await
            .first()
            .is_some_and(|m| m.text == "hello" && m.is_edited)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.event_types(&endpoint).await,
        [
            EventType::ConversationStarted,
            EventType::MessageReceived,
            EventType::MessageEdited
        ]
    );
    inbound.shutdown().await;
}

#[tokio::test]
async fn group_updates_are_kept_raw_but_not_turned_into_messages() {
    let h = Harness::new().await;
    let (inbound, _) = h.inbound(true, "replica-a").await;
    let account = h.connect_bot().await;
    inbound.activate(&account).await.unwrap();
    h.fake.add_group(-100_123, "Team");

    let (_, pushed) = h
        .fake
        .message(TOKEN, USER)
        .in_group(-100_123)
        .text("hi all")
        .push()
        .await;
    assert!(matches!(pushed, Pushed::Webhook(ref d) if d.delivered));
    h.fake.message(TOKEN, USER).text("direct").push().await;

    eventually("the direct message is stored", || async {
        h.messages().await.len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = h.messages().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text, "direct");
    inbound.shutdown().await;
}

#[tokio::test]
async fn polling_persists_the_cursor_so_a_restart_neither_loses_nor_repeats() {
    let h = Harness::new().await;
    let (first, _) = h.inbound(false, "replica-a").await;
    let account = h.connect_bot().await;
    assert_eq!(
        first.activate(&account).await.unwrap(),
        InboundMode::Polling
    );
    assert!(h.fake.requests_for("deleteWebhook").len() == 1);

    for text in ["one", "two", "three"] {
        h.fake.message(TOKEN, USER).text(text).push().await;
    }
    eventually("three messages", || async { h.messages().await.len() == 3 }).await;
    first.shutdown().await;

    // While the gateway is down, two more arrive; Telegram keeps them unconfirmed.
    for text in ["four", "five"] {
        h.fake.message(TOKEN, USER).text(text).push().await;
    }
    let (second, _) = h.inbound(false, "replica-b").await;
    second.resume_all();
    eventually("five messages", || async { h.messages().await.len() == 5 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts: Vec<_> = h.messages().await.into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["one", "two", "three", "four", "five"]);
    let cursor = h.store.poll_cursor(&account.id).await.unwrap().unwrap();
    let last = h.fake.last_update(TOKEN).unwrap()["update_id"]
        .as_i64()
        .unwrap();
    assert_eq!(cursor, (last + 1).to_string());
    second.shutdown().await;
}

#[tokio::test]
async fn revoked_token_while_polling_marks_reauth_required_once_and_stops() {
    let h = Harness::new().await;
    let (inbound, _) = h.inbound(false, "replica-a").await;
    let account = h.connect_bot().await;
    let endpoint = h.endpoint().await;
    inbound.activate(&account).await.unwrap();
    eventually("the poller runs", || async {
        !h.fake.requests_for("getUpdates").is_empty()
    })
    .await;

    h.fake.revoke_token(TOKEN);
    eventually("the account needs reauthorisation", || async {
        h.store
            .find_account(&account.id)
            .await
            .unwrap()
            .unwrap()
            .status
            == AccountStatus::ReauthRequired
    })
    .await;
    eventually("the poller stops", || async {
        !inbound.pollers().is_running(&account.id)
    })
    .await;
    let types = h.event_types(&endpoint).await;
    assert_eq!(types, [EventType::AccountDisconnected]);
    inbound.shutdown().await;
}

#[tokio::test]
async fn deactivate_unregisters_the_webhook_and_stops_the_poller() {
    let h = Harness::new().await;
    let (webhooks, _) = h.inbound(true, "replica-a").await;
    let account = h.connect_bot().await;
    webhooks.activate(&account).await.unwrap();
    assert!(!h.fake.webhook_info(TOKEN).url.is_empty());
    webhooks.deactivate(&account).await.unwrap();
    assert!(h.fake.webhook_info(TOKEN).url.is_empty());
    webhooks.shutdown().await;

    let (polling, _) = h.inbound(false, "replica-b").await;
    polling.activate(&account).await.unwrap();
    assert!(polling.pollers().is_running(&account.id));
    polling.deactivate(&account).await.unwrap();
    assert!(!polling.pollers().is_running(&account.id));
    polling.shutdown().await;
}
