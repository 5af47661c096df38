//! `TestApp`: the whole API in process — the real router and common layers over a temporary
//! SQLite store and `MemoryPlatform`s — driven with `tower::ServiceExt::oneshot`, plus helpers
//! to seed inbound messages and to snapshot everything a workspace can see, so a test can
//! assert that a refused request wrote nothing.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use axum::{
    Router,
    body::{Body, to_bytes},
    http::{HeaderMap, Method, Request, StatusCode},
};
use inbox_api::{AccountHooks, ApiConfig, AppState, ReadinessCheck, create_api_key, router};
use inbox_core::{
    Account, AccountId, Attachment, EventType, InboundKind, PageRequest, Platform, PlatformKind,
    PlatformRegistry, Timestamp, WorkspaceId,
};
use inbox_store::{
    AccountFilter, Cipher, ConversationFilter, NewEndpoint, NewRawEvent, SortOrder, Store,
    StoreConfig, open_and_migrate,
};
use inbox_testkit::memory_platform::MemoryPlatform;
use secrecy::SecretString;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

/// Account hooks that record their calls and can be told to fail.
#[derive(Debug, Default)]
pub struct RecordingHooks {
    pub connected: Mutex<Vec<AccountId>>,
    pub disconnecting: Mutex<Vec<AccountId>>,
    pub fail_connected: Mutex<bool>,
    pub fail_disconnecting: Mutex<bool>,
    pub refreshed: Mutex<Vec<AccountId>>,
}

#[async_trait]
impl AccountHooks for RecordingHooks {
    async fn connected(&self, account: &Account) -> Result<(), inbox_core::Error> {
        self.connected.lock().unwrap().push(account.id.clone());
        if *self.fail_connected.lock().unwrap() {
            return Err(inbox_core::Error::Unavailable {
                message: "webhook registration failed".into(),
                retry_after: None,
            });
        }
        Ok(())
    }

    async fn disconnecting(&self, account: &Account) -> Result<(), inbox_core::Error> {
        self.disconnecting.lock().unwrap().push(account.id.clone());
        if *self.fail_disconnecting.lock().unwrap() {
            return Err(inbox_core::Error::Platform {
                platform: account.platform,
                code: "401".into(),
                message: "token revoked".into(),
            });
        }
        Ok(())
    }

    /// Records the refresh; the platform's scripted failures decide whether the retried call
    /// then succeeds.
    async fn refresh_credentials(&self, account: &Account) -> Result<(), inbox_core::Error> {
        self.refreshed.lock().unwrap().push(account.id.clone());
        Ok(())
    }
}

/// A readiness check that always fails.
#[derive(Debug)]
pub struct FailingCheck;

#[async_trait]
impl ReadinessCheck for FailingCheck {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> Result<(), String> {
        Err("connection refused".into())
    }
}

/// A non-critical readiness check that always fails, as Redis does when it is away.
#[derive(Debug)]
pub struct DegradedCheck;

#[async_trait]
impl ReadinessCheck for DegradedCheck {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> Result<(), String> {
        Err("Redis is unreachable; rate limits are enforced per replica".into())
    }

    fn critical(&self) -> bool {
        false
    }
}

/// Builds a [`TestApp`].
#[derive(Default)]
pub struct TestAppBuilder {
    config: Option<ApiConfig>,
    refuse_private_webhooks: bool,
    failing_readiness: bool,
    degraded_readiness: bool,
    telegram_budgets: Option<Vec<inbox_core::RateBudget>>,
    api_rate_limit: Option<u32>,
}

impl TestAppBuilder {
    /// Overrides the API configuration.
    pub fn config(mut self, change: impl FnOnce(&mut ApiConfig)) -> Self {
        let mut config = self.config.take().unwrap_or_default();
        change(&mut config);
        self.config = Some(config);
        self
    }

    /// Uses a URL guard that refuses private addresses (the production default).
    pub fn refuse_private_webhooks(mut self) -> Self {
        self.refuse_private_webhooks = true;
        self
    }

    /// Adds a readiness check that fails.
    pub fn failing_readiness(mut self) -> Self {
        self.failing_readiness = true;
        self
    }

    /// Adds a non-critical readiness check that fails (Redis away, rate limits in process).
    pub fn degraded_readiness(mut self) -> Self {
        self.degraded_readiness = true;
        self
    }

    /// Gives the Telegram platform these rate budgets (it declares none by default).
    pub fn telegram_budgets(mut self, budgets: Vec<inbox_core::RateBudget>) -> Self {
        self.telegram_budgets = Some(budgets);
        self
    }

    /// Sets the per-API-key limit (requests per minute; the default is 600).
    pub fn api_rate_limit(mut self, per_minute: u32) -> Self {
        self.api_rate_limit = Some(per_minute);
        self
    }

    pub async fn build(self) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let cipher = Cipher::from_base64_key(&Cipher::generate_key()).unwrap();
        let url = format!("sqlite://{}", dir.path().join("inbox.db").display());
        let store = open_and_migrate(&StoreConfig {
            url,
            cipher,
            max_connections: 4,
        })
        .await
        .unwrap();

        let telegram = Arc::new(match self.telegram_budgets {
            Some(budgets) => MemoryPlatform::new(PlatformKind::Telegram)
                .configure(|caps| caps.rate_budgets = budgets),
            None => MemoryPlatform::new(PlatformKind::Telegram),
        });
        let instagram = Arc::new(MemoryPlatform::meta_like(PlatformKind::Instagram));
        let whatsapp = Arc::new(MemoryPlatform::whatsapp_like());
        // X as the real one: OAuth with PKCE, and 2-hour tokens renewed 10 minutes early.
        let x = Arc::new(
            MemoryPlatform::open_dm(PlatformKind::X)
                .with_oauth(true)
                .with_credential_refresh(
                    inbox_core::RefreshPolicy {
                        lead_time: Duration::from_secs(600),
                        min_age: Duration::ZERO,
                    },
                    Duration::from_secs(7200),
                ),
        );
        // A Facebook-like platform: OAuth without PKCE, one account per page granted.
        let facebook =
            Arc::new(MemoryPlatform::meta_like(PlatformKind::Facebook).with_oauth(false));
        let mut registry = PlatformRegistry::new();
        for platform in [&telegram, &instagram, &whatsapp, &x, &facebook] {
            registry.register(platform.clone() as Arc<dyn Platform>);
        }

        let hooks = Arc::new(RecordingHooks::default());
        let guard = inbox_webhooks::UrlGuard::new(!self.refuse_private_webhooks);
        let mut state = AppState::new(
            store.clone(),
            Arc::new(registry),
            hooks.clone(),
            Arc::new(guard),
        )
        .with_config(self.config.unwrap_or_default())
        .with_metrics(|| "# TYPE inbox_test_total counter\ninbox_test_total 7\n".into());
        if let Some(per_minute) = self.api_rate_limit {
            let limiter = Arc::new(inbox_ratelimit::LocalLimiter::new());
            let limits = inbox_api::ApiKeyLimits::new(limiter, per_minute).unwrap();
            state = state
                .clone()
                .with_rate_limits(state.budgets.clone(), limits);
        }
        if self.degraded_readiness {
            state = state.with_readiness_check(DegradedCheck);
        }
        if self.failing_readiness {
            state = state.with_readiness_check(FailingCheck);
        }

        let (key, record) = create_api_key(store.as_ref(), "acme").await.unwrap();
        let (other_key, other) = create_api_key(store.as_ref(), "globex").await.unwrap();
        // A catch-all endpoint per workspace: every event becomes a visible delivery, so
        // `snapshot` also shows whether a request emitted events.
        for workspace in [&record.workspace_id, &other.workspace_id] {
            store
                .create_endpoint(
                    workspace,
                    NewEndpoint {
                        url: "http://127.0.0.1:9/catch-all".into(),
                        events: vec![],
                        description: "catch-all".into(),
                        enabled: true,
                        secret: SecretString::from("whsec_dGVzdHRlc3R0ZXN0dGVzdA=="),
                    },
                )
                .await
                .unwrap();
        }

        TestApp {
            router: inbox_api::with_common_layers(router(state)),
            store,
            telegram,
            instagram,
            whatsapp,
            x,
            facebook,
            hooks,
            key,
            other_key,
            workspace: record.workspace_id,
            other_workspace: other.workspace_id,
            _dir: dir,
        }
    }
}

/// The API in process.
pub struct TestApp {
    pub router: Router,
    pub store: Arc<dyn Store>,
    pub telegram: Arc<MemoryPlatform>,
    pub instagram: Arc<MemoryPlatform>,
    pub whatsapp: Arc<MemoryPlatform>,
    pub x: Arc<MemoryPlatform>,
    pub facebook: Arc<MemoryPlatform>,
    pub hooks: Arc<RecordingHooks>,
    /// The API key of workspace `acme`.
    pub key: String,
    /// The API key of workspace `globex`.
    pub other_key: String,
    pub workspace: WorkspaceId,
    pub other_workspace: WorkspaceId,
    _dir: TempDir,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Asserts a problem document with this status and code, and returns it.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "not a problem document: {}",
            self.text
        );
        assert_eq!(self.json["code"], code, "{}", self.text);
        assert_eq!(self.json["status"], status);
        assert_eq!(self.json["error"], self.json["detail"]);
        assert_eq!(self.json["type"], format!("urn:inboxgw:problem:{code}"));
        assert!(self.json["title"].is_string());
        assert_eq!(self.json["requestId"].as_str(), self.header("x-request-id"));
        &self.json
    }

    /// Asserts an `invalid_request` naming `param`.
    #[track_caller]
    pub fn invalid(&self, param: &str) -> &Value {
        let problem = self.problem(400, "invalid_request");
        assert_eq!(problem["param"], param, "{}", self.text);
        problem
    }

    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        &self.json
    }
}

/// Reads a response whole.
pub async fn read(response: axum::response::Response) -> Resp {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        bytes: bytes.to_vec(),
        text,
        json,
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::builder().build().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// Sends a request. `key` is the bearer key (none when `None`); `body` is sent as is.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let request = Self::request(method, path, key, body, headers);
        read(self.router.clone().oneshot(request).await.unwrap()).await
    }

    /// Builds a request. `key` is the bearer key (none when `None`); `body` is sent as is.
    pub fn request(
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Request<Body> {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, Some(&self.key), None, &[])
            .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, Some(&self.key), None, &[])
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(
            Method::POST,
            path,
            Some(&self.key),
            Some(body.to_string()),
            &[],
        )
        .await
    }

    pub async fn post_empty(&self, path: &str) -> Resp {
        self.call(Method::POST, path, Some(&self.key), None, &[])
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call(
            Method::PATCH,
            path,
            Some(&self.key),
            Some(body.to_string()),
            &[],
        )
        .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.call(
            Method::PUT,
            path,
            Some(&self.key),
            Some(body.to_string()),
            &[],
        )
        .await
    }

    /// Connects an account of `platform` through the API; returns its id.
    pub async fn connect(&self, platform: &str, token: &str) -> String {
        let response = self
            .post(
                "/api/v1/accounts",
                json!({"platform": platform, "credentials": {"token": token}}),
            )
            .await;
        response.ok(201)["id"].as_str().unwrap().to_owned()
    }

    /// Connects an account with the other workspace's key; returns its id.
    pub async fn connect_other(&self, platform: &str, token: &str) -> String {
        let body = json!({"platform": platform, "credentials": {"token": token}});
        let response = self
            .call(
                Method::POST,
                "/api/v1/accounts",
                Some(&self.other_key),
                Some(body.to_string()),
                &[],
            )
            .await;
        response.ok(201)["id"].as_str().unwrap().to_owned()
    }

    /// Records an incoming message the way the ingest pipeline does; returns the
    /// conversation's id.
    pub async fn receive(&self, account_id: &str, chat: &str, text: &str, at: Timestamp) -> String {
        let message = MemoryPlatform::text_message(chat, &format!("user-{chat}"), text, at);
        self.receive_message(account_id, message).await
    }

    /// Records an incoming message with attachments.
    pub async fn receive_with_attachments(
        &self,
        account_id: &str,
        chat: &str,
        attachments: Vec<Attachment>,
    ) -> String {
        let mut message =
            MemoryPlatform::text_message(chat, &format!("user-{chat}"), "", Timestamp::now());
        message.attachments = attachments;
        self.receive_message(account_id, message).await
    }

    async fn receive_message(
        &self,
        account_id: &str,
        message: inbox_core::InboundMessage,
    ) -> String {
        let account = self
            .store
            .find_account(&AccountId::parse(account_id).unwrap())
            .await
            .unwrap()
            .expect("the account exists");
        let chat = message.platform_conversation_id.clone();
        let raw = self
            .store
            .insert_raw_events(vec![NewRawEvent {
                platform: account.platform,
                account_id: Some(account.id.clone()),
                payload: MemoryPlatform::payload(std::slice::from_ref(&message)),
                received_at: Timestamp::now(),
            }])
            .await
            .unwrap();
        self.store
            .apply_inbound(&raw[0], &account, vec![InboundKind::Message(message)])
            .await
            .unwrap();
        let filter = ConversationFilter {
            account_id: Some(account.id.clone()),
            ..Default::default()
        };
        let page = PageRequest {
            limit: 100,
            after: None,
        };
        let conversations = self
            .store
            .list_conversations(&account.workspace_id, &filter, &page)
            .await
            .unwrap();
        conversations
            .data
            .into_iter()
            .find(|conversation| conversation.platform_conversation_id == chat)
            .expect("the conversation was recorded")
            .id
            .to_string()
    }

    /// Everything workspace `workspace` can see — accounts, conversations, messages,
    /// endpoints and deliveries (so also every event) — to compare before and after a refused
    /// request.
    pub async fn snapshot_of(&self, workspace: &WorkspaceId) -> Value {
        let page = PageRequest {
            limit: 100,
            after: None,
        };
        let store = &self.store;
        let accounts = store
            .list_accounts(workspace, &AccountFilter::default(), &page)
            .await
            .unwrap();
        let conversations = store
            .list_conversations(workspace, &ConversationFilter::default(), &page)
            .await
            .unwrap();
        let mut messages = Vec::new();
        for conversation in &conversations.data {
            let page = store
                .list_messages(workspace, &conversation.id, SortOrder::Asc, &page)
                .await
                .unwrap();
            messages.push(serde_json::to_value(&page.data).unwrap());
        }
        let endpoints = store.list_endpoints(workspace, &page).await.unwrap();
        let mut deliveries = Vec::new();
        for endpoint in &endpoints.data {
            let page = store
                .list_deliveries(workspace, &endpoint.id, &page)
                .await
                .unwrap();
            deliveries.push(serde_json::to_value(&page.data).unwrap());
        }
        json!({
            "accounts": accounts.data,
            "conversations": conversations.data,
            "messages": messages,
            "endpoints": endpoints.data,
            "deliveries": deliveries,
        })
    }

    pub async fn snapshot(&self) -> Value {
        self.snapshot_of(&self.workspace).await
    }

    /// Event types of every delivery to the catch-all endpoint, oldest first.
    pub async fn events(&self) -> Vec<EventType> {
        let page = PageRequest {
            limit: 100,
            after: None,
        };
        let endpoints = self
            .store
            .list_endpoints(&self.workspace, &page)
            .await
            .unwrap();
        let catch_all = &endpoints.data[0];
        let deliveries = self
            .store
            .list_deliveries(&self.workspace, &catch_all.id, &page)
            .await
            .unwrap();
        deliveries
            .data
            .iter()
            .rev()
            .map(|delivery| delivery.event_type)
            .collect()
    }
}

/// `now - hours`.
pub fn hours_ago(hours: u64) -> Timestamp {
    Timestamp::from_unix_millis(
        Timestamp::now().unix_millis() - i64::try_from(hours * 3_600_000).unwrap(),
    )
}

/// A short deadline for tests of the send deadline.
pub const SHORT_DEADLINE: Duration = Duration::from_millis(100);
