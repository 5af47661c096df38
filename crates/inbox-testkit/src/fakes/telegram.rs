//! `FakeTelegram`: a stateful fake of the Telegram Bot API (<https://core.telegram.org/bots/api>)
//! for adapter tests, end-to-end tests of the real binary, and fidelity checks with
//! python-telegram-bot.
//!
//! It speaks the real wire format: `/bot<token>/<method>` (method names case-insensitive, `GET`
//! or `POST`, parameters from the query string, JSON, `application/x-www-form-urlencoded` as
//! python-telegram-bot sends, or `multipart/form-data` uploads), the `{"ok":true,"result":…}`
//! envelope, and Telegram's error envelope and wording (`401 Unauthorized`, `429` with
//! `parameters.retry_after`, the two `409` conflicts, `404 Not Found` for unknown methods).
//! Files are served from `/file/bot<token>/<file_path>`.
//!
//! Implemented methods: `getMe`, `setWebhook`, `deleteWebhook`, `getWebhookInfo`, `getUpdates`
//! (offsets confirm and drop updates, long polls wait for new ones, a newer poll ends an older
//! one with a 409), `sendMessage`, `sendPhoto`, `sendDocument` (by `file_id`, by URL, which the
//! fake fetches as Telegram does, or by upload) and `getFile`.
//!
//! Deliberate simplifications: users and group chats are shared by every bot; webhook URLs may
//! be `http://` on any port (Telegram demands HTTPS on 443, 80, 88 or 8443); failed webhook
//! deliveries are retried a few times within milliseconds rather than over hours, then kept
//! pending; photos are not re-encoded (every size but the largest gets placeholder bytes).
//!
//! ```no_run
//! # async fn demo() {
//! use inbox_testkit::fakes::telegram::FakeTelegram;
//!
//! let fake = FakeTelegram::start().await;
//! fake.add_bot("123456:TEST-token", 123456, "Support", "support_bot");
//! fake.add_user(111, "Alice", Some("Smith"), Some("alice"));
//! // Point the adapter (or INBOX_TELEGRAM_API_BASE) at fake.base_url(), then:
//! fake.message("123456:TEST-token", 111).text("hello").push().await;
//! # }
//! ```

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{FromRequest, Multipart, Request, State},
    http::{HeaderMap, StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use tokio::{sync::Notify, task::JoinHandle};

/// Telegram's text limit, in UTF-16 code units.
pub const TEXT_LIMIT: usize = 4096;
/// Telegram's caption limit, in UTF-16 code units.
pub const CAPTION_LIMIT: usize = 1024;
/// The longest long poll Telegram honours.
const MAX_LONG_POLL_SECS: u64 = 50;
/// Webhook delivery attempts per update before it is left pending.
const WEBHOOK_ATTEMPTS: u32 = 3;
/// The secret-token header Telegram adds to webhook requests.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// A bot the fake knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeBot {
    /// The bot's user id (the number before the colon of its token).
    pub id: i64,
    /// Its display name.
    pub first_name: String,
    /// Its `@username`, without the `@`.
    pub username: String,
}

/// A Telegram user who can write to bots; their private chat has the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    /// User id, also the private chat id.
    pub id: i64,
    /// First name.
    pub first_name: String,
    /// Last name, if any.
    pub last_name: Option<String>,
    /// Username, if any.
    pub username: Option<String>,
}

/// One request the fake answered (or is answering: long polls get their status when they end).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The bot token from the path.
    pub token: String,
    /// The method name as requested (case preserved).
    pub method: String,
    /// `GET`, `POST`, …
    pub http_method: String,
    /// Parameters merged from the query string and the body. Form and multipart values are
    /// strings, as they arrived; uploaded files appear as `"<upload: file name>"`.
    pub params: Map<String, Value>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The HTTP status answered; `None` while a long poll is still waiting.
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// Whether this is a call of `method`, compared case-insensitively as Telegram does.
    pub fn is(&self, method: &str) -> bool {
        self.method.eq_ignore_ascii_case(method)
    }
}

/// A bot's webhook settings, as `getWebhookInfo` and the control API report them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookInfo {
    /// The webhook URL; empty when none is set.
    pub url: String,
    /// The `secret_token` given to `setWebhook`.
    pub secret_token: Option<String>,
    /// The update types requested; empty means Telegram's default.
    pub allowed_updates: Vec<String>,
    /// Updates waiting for delivery or for `getUpdates`.
    pub pending_update_count: usize,
    /// The last delivery failure, as Telegram words it.
    pub last_error_message: Option<String>,
}

/// One update's delivery to a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The bot token.
    pub token: String,
    /// The update delivered.
    pub update_id: i64,
    /// Where it was POSTed.
    pub url: String,
    /// Each attempt's HTTP status; `None` when no HTTP answer came (connection refused).
    pub statuses: Vec<Option<u16>>,
    /// Whether an attempt got a 2xx.
    pub delivered: bool,
}

/// What [`FakeTelegram::push_update`] did with an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// No webhook is set: queued for `getUpdates`.
    Queued,
    /// POSTed to the webhook.
    Webhook(WebhookDelivery),
    /// Dropped because the bot's `allowed_updates` exclude its type.
    Filtered,
}

/// A file the fake stores (photos, documents, uploads, files fetched from URLs).
#[derive(Debug, Clone)]
struct StoredFile {
    file_id: String,
    unique_id: String,
    path: String,
    bytes: Bytes,
}

#[derive(Debug, Clone)]
struct Injection {
    methods: Vec<String>,
    remaining: u32,
    status: u16,
    description: String,
    retry_after: Option<u64>,
}

#[derive(Debug)]
struct BotState {
    bot: FakeBot,
    webhook: Option<WebhookInfo>,
    allowed_updates: Vec<String>,
    pending: VecDeque<Value>,
    history: Vec<Value>,
    next_update_id: i64,
    poll_generation: u64,
    last_error: Option<(i64, String)>,
    last_message_id: HashMap<i64, i64>,
    messages: HashMap<(i64, i64), Value>,
    sent: Vec<Value>,
    notify: Arc<Notify>,
}

#[derive(Debug, Default)]
struct World {
    bots: HashMap<String, BotState>,
    users: BTreeMap<i64, FakeUser>,
    groups: BTreeMap<i64, String>,
    revoked: HashSet<String>,
    blocked: HashSet<i64>,
    injections: Vec<Injection>,
    requests: Vec<RecordedRequest>,
    files: HashMap<String, StoredFile>,
    media: HashMap<String, (Bytes, String)>,
    deliveries: Vec<WebhookDelivery>,
    next_file: u64,
    next_seed: i64,
}

impl World {
    fn bot(&mut self, token: &str) -> &mut BotState {
        self.bots
            .get_mut(token)
            .unwrap_or_else(|| panic!("FakeTelegram: no bot with token {token}"))
    }

    fn chat_json(&self, chat_id: i64) -> Option<Value> {
        if let Some(user) = self.users.get(&chat_id) {
            let mut chat = json!({"id": user.id, "type": "private", "first_name": user.first_name});
            if let Some(last) = &user.last_name {
                chat["last_name"] = json!(last);
            }
            if let Some(username) = &user.username {
                chat["username"] = json!(username);
            }
            return Some(chat);
        }
        self.groups
            .get(&chat_id)
            .map(|title| json!({"id": chat_id, "type": "supergroup", "title": title}))
    }

    fn store_file(
        &mut self,
        prefix: &str,
        folder: &str,
        extension: &str,
        bytes: Bytes,
    ) -> StoredFile {
        self.next_file += 1;
        let n = self.next_file;
        let file = StoredFile {
            file_id: format!("{prefix}AAxkBAAI{n:08}"),
            unique_id: format!("AQAD{n:06}"),
            path: format!("{folder}/file_{n}.{extension}"),
            bytes,
        };
        self.files.insert(file.file_id.clone(), file.clone());
        file
    }

    /// Three sizes of one photo, smallest first, the largest carrying the original bytes.
    fn store_photo(&mut self, bytes: Bytes) -> Value {
        let mut sizes = Vec::new();
        for (width, height) in [(90, 67), (320, 240)] {
            let placeholder = Bytes::from(format!("placeholder {width}x{height}"));
            let file = self.store_file("AgACAgIAAx", "photos", "jpg", placeholder);
            sizes.push(photo_size(&file, width, height));
        }
        let file = self.store_file("AgACAgIAAx", "photos", "jpg", bytes);
        sizes.push(photo_size(&file, 1280, 960));
        Value::Array(sizes)
    }

    fn next_message_id(&mut self, token: &str, chat_id: i64) -> i64 {
        let counter = self.bot(token).last_message_id.entry(chat_id).or_insert(0);
        *counter += 1;
        *counter
    }

    fn record(&mut self, request: RecordedRequest) -> usize {
        self.requests.push(request);
        self.requests.len() - 1
    }

    /// Takes the next injected failure for `method`, if any.
    fn take_injection(&mut self, method: &str) -> Option<Injection> {
        let index = self
            .injections
            .iter()
            .position(|i| i.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))?;
        let injection = self.injections[index].clone();
        self.injections[index].remaining -= 1;
        if self.injections[index].remaining == 0 {
            self.injections.remove(index);
        }
        Some(injection)
    }
}

fn photo_size(file: &StoredFile, width: u32, height: u32) -> Value {
    json!({"file_id": file.file_id, "file_unique_id": file.unique_id, "width": width,
           "height": height, "file_size": file.bytes.len()})
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The update type of an Update object: its first key other than `update_id`.
fn update_type(update: &Value) -> Option<String> {
    update
        .as_object()?
        .keys()
        .find(|key| *key != "update_id")
        .cloned()
}

fn allowed(allowed_updates: &[String], update: &Value) -> bool {
    // An empty list is Telegram's default: everything but a few reaction/member types.
    allowed_updates.is_empty()
        || update_type(update).is_some_and(|kind| allowed_updates.contains(&kind))
}

struct Shared {
    base_url: String,
    state: Mutex<World>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, World> {
        // A panicking test thread must not wedge every later call.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The fake Bot API server and its control handle. Cheap to clone; the server stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct FakeTelegram {
    shared: Arc<Shared>,
    _server: Arc<ServerTask>,
}

impl fmt::Debug for FakeTelegram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeTelegram")
            .field("base_url", &self.shared.base_url)
            .finish()
    }
}

impl FakeTelegram {
    /// Starts the server on `127.0.0.1` on a free port.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("FakeTelegram: cannot bind 127.0.0.1:0");
        let base_url = format!("http://{}", listener.local_addr().expect("bound address"));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("FakeTelegram: HTTP client");
        let shared = Arc::new(Shared {
            base_url,
            state: Mutex::new(World::default()),
            http,
        });
        let app = Router::new().fallback(route).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            shared,
            _server: Arc::new(ServerTask(task)),
        }
    }

    /// `http://127.0.0.1:<port>`: the API base (`INBOX_TELEGRAM_API_BASE`). python-telegram-bot
    /// takes `base_url = base + "/bot"` and `base_file_url = base + "/file/bot"`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// Registers a bot. `token` must look like `<id>:<secret>`.
    pub fn add_bot(&self, token: &str, id: i64, first_name: &str, username: &str) -> FakeBot {
        let bot = FakeBot {
            id,
            first_name: first_name.to_owned(),
            username: username.to_owned(),
        };
        self.shared.lock().bots.insert(
            token.to_owned(),
            BotState {
                bot: bot.clone(),
                webhook: None,
                allowed_updates: Vec::new(),
                pending: VecDeque::new(),
                history: Vec::new(),
                next_update_id: 100_000_001,
                poll_generation: 0,
                last_error: None,
                last_message_id: HashMap::new(),
                messages: HashMap::new(),
                sent: Vec::new(),
                notify: Arc::new(Notify::new()),
            },
        );
        bot
    }

    /// Registers a user (and so their private chat, with the same id).
    pub fn add_user(
        &self,
        id: i64,
        first_name: &str,
        last_name: Option<&str>,
        username: Option<&str>,
    ) -> FakeUser {
        let user = FakeUser {
            id,
            first_name: first_name.to_owned(),
            last_name: last_name.map(str::to_owned),
            username: username.map(str::to_owned),
        };
        self.shared.lock().users.insert(id, user.clone());
        user
    }

    /// Registers a supergroup chat (ids of supergroups are negative, e.g. `-1001234567890`).
    pub fn add_group(&self, chat_id: i64, title: &str) {
        self.shared.lock().groups.insert(chat_id, title.to_owned());
    }

    /// Starts building an inbound message from `user_id` to the bot with `token`, in their
    /// private chat unless [`MessageBuilder::in_group`] says otherwise.
    pub fn message(&self, token: &str, user_id: i64) -> MessageBuilder<'_> {
        MessageBuilder {
            fake: self,
            token: token.to_owned(),
            user_id,
            chat_id: user_id,
            text: None,
            caption: None,
            media: None,
            reply_to: None,
            date: None,
        }
    }

    /// An `edited_message` update for the message inside `update` (a `message` update this fake
    /// built), with new text and `edit_date` now.
    ///
    /// # Panics
    /// When `update` carries no `message`.
    pub fn edited(&self, token: &str, update: &Value, new_text: &str) -> Value {
        let mut message = update
            .get("message")
            .cloned()
            .expect("FakeTelegram::edited needs a `message` update");
        let edit_date = now().max(message["date"].as_i64().unwrap_or(0) + 1);
        message["edit_date"] = json!(edit_date);
        if message.get("caption").is_some() {
            message["caption"] = json!(new_text);
        } else {
            message["text"] = json!(new_text);
        }
        let mut state = self.shared.lock();
        let bot = state.bot(token);
        let chat = message["chat"]["id"].as_i64().unwrap_or_default();
        let id = message["message_id"].as_i64().unwrap_or_default();
        bot.messages.insert((chat, id), message.clone());
        let update_id = bot.next_update_id;
        bot.next_update_id += 1;
        json!({"update_id": update_id, "edited_message": message})
    }

    /// Delivers an Update: POSTs it to the bot's webhook when one is set (retrying non-2xx
    /// answers a few times quickly, then leaving it pending as Telegram would), otherwise
    /// queues it for `getUpdates` and wakes waiting long polls.
    pub async fn push_update(&self, token: &str, update: Value) -> Pushed {
        let webhook = {
            let mut state = self.shared.lock();
            let bot = state.bot(token);
            bot.history.push(update.clone());
            if let Some(id) = update["update_id"].as_i64() {
                bot.next_update_id = bot.next_update_id.max(id + 1);
            }
            let allowed_updates = match &bot.webhook {
                Some(webhook) => webhook.allowed_updates.clone(),
                None => bot.allowed_updates.clone(),
            };
            if !allowed(&allowed_updates, &update) {
                return Pushed::Filtered;
            }
            if bot.webhook.is_none() {
                bot.pending.push_back(update);
                bot.notify.notify_waiters();
                return Pushed::Queued;
            }
            bot.webhook.clone()
        };
        match webhook {
            Some(_) => Pushed::Webhook(deliver(&self.shared, token, update).await),
            None => Pushed::Queued,
        }
    }

    /// Delivers an update pushed before (by `update_id`) once more, as Telegram does when it
    /// did not see a 2xx in time.
    ///
    /// # Panics
    /// When no update with that id was pushed to the bot.
    pub async fn redeliver(&self, token: &str, update_id: i64) -> Pushed {
        let update = {
            let mut state = self.shared.lock();
            state
                .bot(token)
                .history
                .iter()
                .find(|u| u["update_id"].as_i64() == Some(update_id))
                .cloned()
                .unwrap_or_else(|| panic!("FakeTelegram: update {update_id} was never pushed"))
        };
        self.push_update(token, update).await
    }

    /// The last update pushed to the bot.
    pub fn last_update(&self, token: &str) -> Option<Value> {
        self.shared.lock().bot(token).history.last().cloned()
    }

    /// Makes the next call of `method` fail with `status` and `description` (Telegram's
    /// envelope, e.g. `500, "Internal Server Error"`).
    pub fn fail_next(&self, method: &str, status: u16, description: &str) {
        self.fail_times(&[method], 1, status, description);
    }

    /// Makes the next `times` calls of any of `methods` fail.
    pub fn fail_times(&self, methods: &[&str], times: u32, status: u16, description: &str) {
        self.inject(methods, times, status, description.to_owned(), None);
    }

    /// Makes the next call of `method` answer flood control: `429 Too Many Requests: retry
    /// after N` with `parameters.retry_after`.
    pub fn rate_limit_next(&self, method: &str, retry_after: u64) {
        self.rate_limit_times(&[method], 1, retry_after);
    }

    /// Makes the next `times` calls of any of `methods` answer flood control.
    pub fn rate_limit_times(&self, methods: &[&str], times: u32, retry_after: u64) {
        let description = format!("Too Many Requests: retry after {retry_after}");
        self.inject(methods, times, 429, description, Some(retry_after));
    }

    fn inject(
        &self,
        methods: &[&str],
        times: u32,
        status: u16,
        description: String,
        retry_after: Option<u64>,
    ) {
        if times == 0 {
            return;
        }
        self.shared.lock().injections.push(Injection {
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            remaining: times,
            status,
            description,
            retry_after,
        });
    }

    /// Revokes a token: every later call with it answers `401 Unauthorized`.
    pub fn revoke_token(&self, token: &str) {
        self.shared.lock().revoked.insert(token.to_owned());
    }

    /// The user blocked the bot: sends to the chat answer `403 Forbidden: bot was blocked by
    /// the user`.
    pub fn block_user(&self, chat_id: i64) {
        self.shared.lock().blocked.insert(chat_id);
    }

    /// Undoes [`block_user`](Self::block_user).
    pub fn unblock_user(&self, chat_id: i64) {
        self.shared.lock().blocked.remove(&chat_id);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The requests for one method (case-insensitive).
    pub fn requests_for(&self, method: &str) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.is(method))
            .cloned()
            .collect()
    }

    /// The bot's webhook settings (an empty `url` when none is set).
    pub fn webhook_info(&self, token: &str) -> WebhookInfo {
        let mut state = self.shared.lock();
        let bot = state.bot(token);
        let mut info = bot.webhook.clone().unwrap_or_default();
        info.pending_update_count = bot.pending.len();
        info.last_error_message = bot.last_error.as_ref().map(|(_, message)| message.clone());
        info
    }

    /// Updates waiting for `getUpdates` (or for a webhook that failed).
    pub fn pending_updates(&self, token: &str) -> Vec<Value> {
        self.shared
            .lock()
            .bot(token)
            .pending
            .iter()
            .cloned()
            .collect()
    }

    /// Every webhook delivery so far, oldest first.
    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.shared.lock().deliveries.clone()
    }

    /// The Message objects the bot sent, oldest first.
    pub fn sent_messages(&self, token: &str) -> Vec<Value> {
        self.shared.lock().bot(token).sent.clone()
    }

    /// The bytes of a stored file, by `file_id`.
    pub fn file_bytes(&self, file_id: &str) -> Option<Vec<u8>> {
        self.shared
            .lock()
            .files
            .get(file_id)
            .map(|file| file.bytes.to_vec())
    }

    /// Serves `bytes` at `{base_url}/_media/{name}`, for "send by URL" tests: Telegram fetches
    /// such URLs itself, and so does this fake.
    pub fn host_media(&self, name: &str, bytes: Vec<u8>, mime: &str) -> String {
        self.shared
            .lock()
            .media
            .insert(name.to_owned(), (Bytes::from(bytes), mime.to_owned()));
        format!("{}/_media/{name}", self.shared.base_url)
    }
}

/// What kind of media an inbound message carries.
#[derive(Debug, Clone)]
enum Media {
    Photo(Vec<u8>),
    Document {
        bytes: Vec<u8>,
        name: String,
        mime: String,
    },
    Voice(Vec<u8>),
}

/// Builds a realistic `message` Update from a user to a bot; see [`FakeTelegram::message`].
#[derive(Debug)]
pub struct MessageBuilder<'a> {
    fake: &'a FakeTelegram,
    token: String,
    user_id: i64,
    chat_id: i64,
    text: Option<String>,
    caption: Option<String>,
    media: Option<Media>,
    reply_to: Option<i64>,
    date: Option<i64>,
}

impl MessageBuilder<'_> {
    /// The message text.
    pub fn text(mut self, text: &str) -> Self {
        self.text = Some(text.to_owned());
        self
    }

    /// A caption (for media).
    pub fn caption(mut self, caption: &str) -> Self {
        self.caption = Some(caption.to_owned());
        self
    }

    /// A photo: Telegram lists three sizes, smallest first; the largest carries `bytes`.
    pub fn photo(mut self, bytes: Vec<u8>) -> Self {
        self.media = Some(Media::Photo(bytes));
        self
    }

    /// A document with a file name and MIME type.
    pub fn document(mut self, bytes: Vec<u8>, name: &str, mime: &str) -> Self {
        self.media = Some(Media::Document {
            bytes,
            name: name.to_owned(),
            mime: mime.to_owned(),
        });
        self
    }

    /// A voice note (OGG/Opus).
    pub fn voice(mut self, bytes: Vec<u8>) -> Self {
        self.media = Some(Media::Voice(bytes));
        self
    }

    /// A reply to `message_id` of the same chat (the replied-to message is embedded whole, as
    /// Telegram does, when the fake knows it).
    pub fn reply_to(mut self, message_id: i64) -> Self {
        self.reply_to = Some(message_id);
        self
    }

    /// Sends it in a group chat registered with [`FakeTelegram::add_group`].
    pub fn in_group(mut self, chat_id: i64) -> Self {
        self.chat_id = chat_id;
        self
    }

    /// The `date` (unix seconds); now by default.
    pub fn date(mut self, unix_seconds: i64) -> Self {
        self.date = Some(unix_seconds);
        self
    }

    /// The Update object, with fresh `update_id` and `message_id`.
    ///
    /// # Panics
    /// When the bot, the user or the chat is unknown.
    pub fn build(self) -> Value {
        let mut state = self.fake.shared.lock();
        let user = state
            .users
            .get(&self.user_id)
            .cloned()
            .unwrap_or_else(|| panic!("FakeTelegram: no user {}", self.user_id));
        let chat = state
            .chat_json(self.chat_id)
            .unwrap_or_else(|| panic!("FakeTelegram: no chat {}", self.chat_id));
        let message_id = state.next_message_id(&self.token, self.chat_id);
        let mut from = json!({"id": user.id, "is_bot": false, "first_name": user.first_name,
                              "language_code": "en"});
        if let Some(last) = &user.last_name {
            from["last_name"] = json!(last);
        }
        if let Some(username) = &user.username {
            from["username"] = json!(username);
        }
        let mut message = json!({"message_id": message_id, "from": from, "chat": chat,
                                 "date": self.date.unwrap_or_else(now)});
        if let Some(text) = &self.text {
            message["text"] = json!(text);
            if text.starts_with('/') {
                let length = text
                    .split(' ')
                    .next()
                    .map_or(0, |c| c.encode_utf16().count());
                message["entities"] =
                    json!([{"type": "bot_command", "offset": 0, "length": length}]);
            }
        }
        if let Some(caption) = &self.caption {
            message["caption"] = json!(caption);
        }
        match self.media {
            Some(Media::Photo(bytes)) => message["photo"] = state.store_photo(bytes.into()),
            Some(Media::Document { bytes, name, mime }) => {
                let extension = name.rsplit_once('.').map_or("bin", |(_, e)| e).to_owned();
                let file = state.store_file("BQACAgIAAx", "documents", &extension, bytes.into());
                message["document"] = json!({"file_name": name, "mime_type": mime,
                    "file_id": file.file_id, "file_unique_id": file.unique_id,
                    "file_size": file.bytes.len()});
            }
            Some(Media::Voice(bytes)) => {
                let file = state.store_file("AwACAgIAAx", "voice", "oga", bytes.into());
                message["voice"] = json!({"duration": 1, "mime_type": "audio/ogg",
                    "file_id": file.file_id, "file_unique_id": file.unique_id,
                    "file_size": file.bytes.len()});
            }
            None => {}
        }
        let bot = state.bot(&self.token);
        if let Some(reply_to) = self.reply_to {
            let replied = bot
                .messages
                .get(&(self.chat_id, reply_to))
                .cloned()
                .unwrap_or_else(
                    || json!({"message_id": reply_to, "date": 0, "chat": message["chat"].clone()}),
                );
            message["reply_to_message"] = without_reply(replied);
        }
        bot.messages
            .insert((self.chat_id, message_id), message.clone());
        let update_id = bot.next_update_id;
        bot.next_update_id += 1;
        json!({"update_id": update_id, "message": message})
    }

    /// Builds the update and pushes it (see [`FakeTelegram::push_update`]); returns the update
    /// with what happened to it.
    pub async fn push(self) -> (Value, Pushed) {
        let fake = self.fake;
        let token = self.token.clone();
        let update = self.build();
        let pushed = fake.push_update(&token, update.clone()).await;
        (update, pushed)
    }
}

/// Telegram nests replies one level only: a replied-to message carries no `reply_to_message`.
fn without_reply(mut message: Value) -> Value {
    if let Some(object) = message.as_object_mut() {
        object.remove("reply_to_message");
    }
    message
}

/// POSTs one update to the bot's webhook, retrying quickly, and records the outcome.
async fn deliver(shared: &Arc<Shared>, token: &str, update: Value) -> WebhookDelivery {
    let webhook = shared.lock().bot(token).webhook.clone().unwrap_or_default();
    let mut delivery = WebhookDelivery {
        token: token.to_owned(),
        update_id: update["update_id"].as_i64().unwrap_or_default(),
        url: webhook.url.clone(),
        statuses: Vec::new(),
        delivered: false,
    };
    let mut last_error = String::new();
    for attempt in 0..WEBHOOK_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
        }
        let mut request = shared.http.post(&webhook.url).json(&update);
        if let Some(secret) = &webhook.secret_token {
            request = request.header(SECRET_HEADER, secret);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                delivery.statuses.push(Some(status.as_u16()));
                if status.is_success() {
                    delivery.delivered = true;
                    break;
                }
                // Telegram's wording in getWebhookInfo.last_error_message.
                last_error = format!("Wrong response from the webhook: {status}");
            }
            Err(error) => {
                delivery.statuses.push(None);
                last_error = if error.is_connect() {
                    "Connection refused".to_owned()
                } else {
                    format!("Failed to deliver: {error}")
                };
            }
        }
    }
    let mut state = shared.lock();
    let bot = state.bot(token);
    if !delivery.delivered {
        bot.last_error = Some((now(), last_error));
        bot.pending.push_back(update);
    }
    state.deliveries.push(delivery.clone());
    delivery
}

/// An answer in Telegram's envelope.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn ok(result: Value) -> Self {
        Answer {
            status: 200,
            body: json!({"ok": true, "result": result}),
        }
    }

    fn ok_described(result: Value, description: &str) -> Self {
        Answer {
            status: 200,
            body: json!({"ok": true, "result": result, "description": description}),
        }
    }

    fn error(status: u16, description: &str) -> Self {
        Answer {
            status,
            body: json!({"ok": false, "error_code": status, "description": description}),
        }
    }

    fn bad_request(description: &str) -> Self {
        Answer::error(400, &format!("Bad Request: {description}"))
    }

    fn flood(retry_after: u64) -> Self {
        Answer {
            status: 429,
            body: json!({"ok": false, "error_code": 429,
                         "description": format!("Too Many Requests: retry after {retry_after}"),
                         "parameters": {"retry_after": retry_after}}),
        }
    }

    fn not_found() -> Self {
        Answer::error(404, "Not Found")
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body)).into_response()
    }
}

/// An uploaded multipart file.
#[derive(Debug, Clone)]
struct Upload {
    file_name: String,
    bytes: Bytes,
}

/// Request parameters, however they were sent.
struct Params {
    values: Map<String, Value>,
    uploads: HashMap<String, Upload>,
}

impl Params {
    fn str(&self, name: &str) -> Option<String> {
        match self.values.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn i64(&self, name: &str) -> Option<i64> {
        match self.values.get(name)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn bool(&self, name: &str) -> bool {
        match self.values.get(name) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.as_str(), "true" | "True" | "1"),
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            _ => false,
        }
    }

    /// A structured parameter: a JSON value, or a string holding JSON (form and query
    /// requests send arrays and objects JSON-encoded).
    fn json(&self, name: &str) -> Option<Value> {
        match self.values.get(name)? {
            Value::String(s) => serde_json::from_str(s).ok(),
            Value::Null => None,
            other => Some(other.clone()),
        }
    }
}

async fn read_params(request: Request) -> Result<Params, Answer> {
    let mut values = Map::new();
    if let Some(query) = request.uri().query() {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| Answer::bad_request("can't parse query string"))?;
        for (key, value) in pairs {
            values.insert(key, Value::String(value));
        }
    }
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut uploads = HashMap::new();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|_| Answer::bad_request("can't parse multipart body"))?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|_| Answer::bad_request("bad multipart body"))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let bytes = field
                .bytes()
                .await
                .map_err(|_| Answer::bad_request("bad multipart body"))?;
            match file_name {
                Some(file_name) => {
                    values.insert(
                        name.clone(),
                        Value::String(format!("<upload: {file_name}>")),
                    );
                    uploads.insert(name, Upload { file_name, bytes });
                }
                None => {
                    values.insert(
                        name,
                        Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                    );
                }
            }
        }
        return Ok(Params { values, uploads });
    }
    let body = axum::body::to_bytes(request.into_body(), 60 * 1024 * 1024)
        .await
        .map_err(|_| Answer::bad_request("can't read the request body"))?;
    if body.is_empty() {
        return Ok(Params { values, uploads });
    }
    if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(object)) => values.extend(object),
            _ => return Err(Answer::bad_request("can't parse JSON object")),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|_| Answer::bad_request("can't parse form body"))?;
        for (key, value) in pairs {
            values.insert(key, Value::String(value));
        }
    }
    Ok(Params { values, uploads })
}

fn token_is_well_formed(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// Routes by hand: `/bot<token>/<method>`, `/file/bot<token>/<path>`, `/_media/<name>`.
async fn route(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    // Clients may percent-encode the token's colon: python-telegram-bot quotes file download
    // paths (`/file/bot123%3AABC/...`), and Telegram's server decodes them.
    let path = percent_decode(request.uri().path());
    if let Some(name) = path.strip_prefix("/_media/") {
        let media = shared.lock().media.get(name).cloned();
        return match media {
            Some((bytes, mime)) => ([(CONTENT_TYPE, mime)], bytes).into_response(),
            None => (StatusCode::NOT_FOUND, "no such media").into_response(),
        };
    }
    if let Some(rest) = path.strip_prefix("/file/bot") {
        return download(&shared, rest).into_response();
    }
    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Answer::not_found().into_response();
    };
    let (token, method) = (token.to_owned(), method.to_owned());
    if !token_is_well_formed(&token) || method.is_empty() || method.contains('/') {
        return Answer::not_found().into_response();
    }
    let http_method = request.method().to_string();
    let headers = request.headers().clone();
    let params = match read_params(request).await {
        Ok(params) => params,
        Err(answer) => return answer.into_response(),
    };
    let index = shared.lock().record(RecordedRequest {
        token: token.clone(),
        method: method.clone(),
        http_method,
        params: params.values.clone(),
        headers,
        status: None,
    });
    let answer = answer(&shared, &token, &method, params).await;
    shared.lock().requests[index].status = Some(answer.status);
    answer.into_response()
}

/// Decodes `%XX` escapes of a URL path (invalid escapes stay as they are).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves `/file/bot<token>/<file_path>`.
fn download(shared: &Shared, rest: &str) -> Response {
    let Some((token, file_path)) = rest.split_once('/') else {
        return Answer::not_found().into_response();
    };
    let state = shared.lock();
    if !token_is_well_formed(token) {
        return Answer::not_found().into_response();
    }
    if !state.bots.contains_key(token) || state.revoked.contains(token) {
        return Answer::error(401, "Unauthorized").into_response();
    }
    match state.files.values().find(|file| file.path == file_path) {
        // Telegram's file server labels everything as a binary stream.
        Some(file) => (
            [(CONTENT_TYPE, "application/octet-stream")],
            Body::from(file.bytes.clone()),
        )
            .into_response(),
        None => Answer::not_found().into_response(),
    }
}

/// Answers one Bot API call.
async fn answer(shared: &Arc<Shared>, token: &str, method: &str, params: Params) -> Answer {
    let method = method.to_ascii_lowercase();
    {
        let mut state = shared.lock();
        if !state.bots.contains_key(token) || state.revoked.contains(token) {
            return Answer::error(401, "Unauthorized");
        }
        if let Some(injection) = state.take_injection(&method) {
            return match injection.retry_after {
                Some(retry_after) => Answer::flood(retry_after),
                None => Answer::error(injection.status, &injection.description),
            };
        }
    }
    match method.as_str() {
        "getme" => {
            let mut state = shared.lock();
            let bot = &state.bot(token).bot;
            Answer::ok(
                json!({"id": bot.id, "is_bot": true, "first_name": bot.first_name,
                "username": bot.username, "can_join_groups": true,
                "can_read_all_group_messages": false, "supports_inline_queries": false,
                "can_connect_to_business": false, "has_main_web_app": false}),
            )
        }
        "setwebhook" => set_webhook(shared, token, &params),
        "deletewebhook" => {
            let mut state = shared.lock();
            let bot = state.bot(token);
            if params.bool("drop_pending_updates") {
                bot.pending.clear();
            }
            match bot.webhook.take() {
                Some(_) => Answer::ok_described(json!(true), "Webhook was deleted"),
                None => Answer::ok_described(json!(true), "Webhook is already deleted"),
            }
        }
        "getwebhookinfo" => {
            let mut state = shared.lock();
            let bot = state.bot(token);
            let mut info = json!({"url": "", "has_custom_certificate": false,
                                  "pending_update_count": bot.pending.len()});
            if let Some(webhook) = &bot.webhook {
                info["url"] = json!(webhook.url);
                info["max_connections"] = json!(40);
                info["ip_address"] = json!("127.0.0.1");
                if !webhook.allowed_updates.is_empty() {
                    info["allowed_updates"] = json!(webhook.allowed_updates);
                }
            }
            if let Some((date, message)) = &bot.last_error {
                info["last_error_date"] = json!(date);
                info["last_error_message"] = json!(message);
            }
            Answer::ok(info)
        }
        "getupdates" => get_updates(shared, token, &params).await,
        "sendmessage" => send_message(shared, token, &params),
        "sendphoto" => send_media(shared, token, &params, MediaKind::Photo).await,
        "senddocument" => send_media(shared, token, &params, MediaKind::Document).await,
        "getfile" => {
            let state = shared.lock();
            let file = params
                .str("file_id")
                .and_then(|id| state.files.get(&id).cloned());
            match file {
                Some(file) => Answer::ok(json!({"file_id": file.file_id,
                    "file_unique_id": file.unique_id, "file_size": file.bytes.len(),
                    "file_path": file.path})),
                None => Answer::bad_request("invalid file_id"),
            }
        }
        _ => Answer::not_found(),
    }
}

fn set_webhook(shared: &Arc<Shared>, token: &str, params: &Params) -> Answer {
    let url = params.str("url").unwrap_or_default();
    let secret = params.str("secret_token").filter(|s| !s.is_empty());
    if let Some(secret) = &secret
        && (secret.len() > 256
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    {
        return Answer::bad_request("secret token contains unallowed characters");
    }
    let allowed_updates = match params.json("allowed_updates") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect::<Vec<_>>(),
        ),
        Some(_) => return Answer::bad_request("can't parse allowed updates"),
    };
    let mut state = shared.lock();
    let bot = state.bot(token);
    if params.bool("drop_pending_updates") {
        bot.pending.clear();
    }
    if url.is_empty() {
        return match bot.webhook.take() {
            Some(_) => Answer::ok_described(json!(true), "Webhook was deleted"),
            None => Answer::ok_described(json!(true), "Webhook is already deleted"),
        };
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Answer::bad_request("bad webhook: An HTTPS URL must be provided for webhook");
    }
    // allowed_updates, when omitted, keeps the previous setting (as documented).
    let allowed_updates = allowed_updates.unwrap_or_else(|| bot.allowed_updates.clone());
    bot.allowed_updates = allowed_updates.clone();
    let already = bot.webhook.as_ref().is_some_and(|w| w.url == url);
    bot.webhook = Some(WebhookInfo {
        url,
        secret_token: secret,
        allowed_updates,
        pending_update_count: 0,
        last_error_message: None,
    });
    // Updates that waited for getUpdates now go to the webhook, in order.
    let pending: Vec<Value> = bot.pending.drain(..).collect();
    // Polls waiting now answer the 409 a webhook causes.
    bot.notify.notify_waiters();
    drop(state);
    if !pending.is_empty() {
        let shared = shared.clone();
        let token = token.to_owned();
        tokio::spawn(async move {
            for update in pending {
                deliver(&shared, &token, update).await;
            }
        });
    }
    Answer::ok_described(
        json!(true),
        if already {
            "Webhook is already set"
        } else {
            "Webhook was set"
        },
    )
}

async fn get_updates(shared: &Arc<Shared>, token: &str, params: &Params) -> Answer {
    let offset = params.i64("offset").unwrap_or(0);
    let limit = params.i64("limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = params
        .i64("timeout")
        .unwrap_or(0)
        .clamp(0, MAX_LONG_POLL_SECS as i64) as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let generation = {
        let mut state = shared.lock();
        let bot = state.bot(token);
        if let Some(Value::Array(items)) = params.json("allowed_updates") {
            bot.allowed_updates = items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect();
        }
        bot.poll_generation += 1;
        // A newer poll ends an older one that is still waiting.
        bot.notify.notify_waiters();
        bot.poll_generation
    };
    loop {
        let notify = {
            let mut state = shared.lock();
            let bot = state.bot(token);
            if bot.webhook.is_some() {
                return Answer::error(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                );
            }
            if bot.poll_generation != generation {
                return Answer::error(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                );
            }
            // Updates below a positive offset are confirmed and forgotten; a negative offset
            // keeps only the last -offset updates.
            if offset > 0 {
                bot.pending
                    .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            } else if offset < 0 {
                let keep = offset.unsigned_abs() as usize;
                while bot.pending.len() > keep {
                    bot.pending.pop_front();
                }
            }
            let updates: Vec<Value> = bot.pending.iter().take(limit).cloned().collect();
            if !updates.is_empty() || tokio::time::Instant::now() >= deadline {
                return Answer::ok(Value::Array(updates));
            }
            bot.notify.clone()
        };
        let notified = notify.notified();
        tokio::pin!(notified);
        // Registered before re-checking, so a push between the check and the wait is not lost.
        notified.as_mut().enable();
        let has_news = {
            let mut state = shared.lock();
            let bot = state.bot(token);
            bot.webhook.is_some()
                || bot.poll_generation != generation
                || bot
                    .pending
                    .iter()
                    .any(|u| u["update_id"].as_i64().unwrap_or(0) >= offset)
        };
        if !has_news {
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// Resolves `chat_id` (an id, or `@username`) to a known chat.
fn resolve_chat(state: &World, params: &Params) -> Result<i64, Answer> {
    let Some(raw) = params.str("chat_id") else {
        return Err(Answer::bad_request("chat_id is empty"));
    };
    let id = match raw.strip_prefix('@') {
        Some(username) => state
            .users
            .values()
            .find(|u| u.username.as_deref() == Some(username))
            .map(|u| u.id),
        None => raw.trim().parse::<i64>().ok(),
    };
    match id {
        Some(id) if state.chat_json(id).is_some() => Ok(id),
        _ => Err(Answer::bad_request("chat not found")),
    }
}

/// `reply_parameters` (or the older `reply_to_message_id`) resolved to the replied-to message.
fn reply_target(bot: &BotState, chat_id: i64, params: &Params) -> Result<Option<Value>, Answer> {
    let (message_id, lenient) = match params.json("reply_parameters") {
        Some(reply) => (
            reply["message_id"].as_i64(),
            reply["allow_sending_without_reply"]
                .as_bool()
                .unwrap_or(false),
        ),
        None => (
            params.i64("reply_to_message_id"),
            params.bool("allow_sending_without_reply"),
        ),
    };
    let Some(message_id) = message_id else {
        return Ok(None);
    };
    match bot.messages.get(&(chat_id, message_id)) {
        Some(message) => Ok(Some(without_reply(message.clone()))),
        None if lenient => Ok(None),
        None => Err(Answer::bad_request("message to be replied not found")),
    }
}

/// The checks every send makes before anything else: chat exists, bot not blocked.
fn check_recipient(state: &World, params: &Params) -> Result<i64, Answer> {
    let chat_id = resolve_chat(state, params)?;
    if state.blocked.contains(&chat_id) {
        return Err(Answer::error(403, "Forbidden: bot was blocked by the user"));
    }
    Ok(chat_id)
}

/// Stores a message the bot sent and returns it.
fn commit_sent(
    state: &mut World,
    token: &str,
    chat_id: i64,
    params: &Params,
    fill: impl FnOnce(&mut Value),
) -> Answer {
    let chat = state.chat_json(chat_id).unwrap_or(Value::Null);
    let reply = match reply_target(state.bot(token), chat_id, params) {
        Ok(reply) => reply,
        Err(answer) => return answer,
    };
    let message_id = state.next_message_id(token, chat_id);
    let bot = state.bot(token);
    let mut message = json!({"message_id": message_id,
        "from": {"id": bot.bot.id, "is_bot": true, "first_name": bot.bot.first_name,
                 "username": bot.bot.username},
        "chat": chat, "date": now()});
    if let Some(reply) = reply {
        message["reply_to_message"] = reply;
    }
    fill(&mut message);
    bot.messages.insert((chat_id, message_id), message.clone());
    bot.sent.push(message.clone());
    Answer::ok(message)
}

fn send_message(shared: &Arc<Shared>, token: &str, params: &Params) -> Answer {
    let mut state = shared.lock();
    let chat_id = match check_recipient(&state, params) {
        Ok(chat_id) => chat_id,
        Err(answer) => return answer,
    };
    let text = params.str("text").unwrap_or_default();
    if text.trim().is_empty() {
        return Answer::bad_request("message text is empty");
    }
    // Telegram counts UTF-16 code units, like JavaScript.
    if text.encode_utf16().count() > TEXT_LIMIT {
        return Answer::bad_request("message is too long");
    }
    commit_sent(&mut state, token, chat_id, params, |message| {
        message["text"] = json!(text);
    })
}

#[derive(Debug, Clone, Copy)]
enum MediaKind {
    Photo,
    Document,
}

/// A file to send: already stored, or fresh bytes with a name and type.
enum Source {
    Stored(StoredFile),
    Fresh {
        bytes: Bytes,
        name: String,
        mime: String,
    },
}

async fn send_media(shared: &Arc<Shared>, token: &str, params: &Params, kind: MediaKind) -> Answer {
    let field = match kind {
        MediaKind::Photo => "photo",
        MediaKind::Document => "document",
    };
    {
        let state = shared.lock();
        if let Err(answer) = check_recipient(&state, params) {
            return answer;
        }
    }
    let caption = params.str("caption").unwrap_or_default();
    if caption.encode_utf16().count() > CAPTION_LIMIT {
        return Answer::bad_request("message caption is too long");
    }
    let source = match (params.uploads.get(field), params.str(field)) {
        (Some(upload), _) => Source::Fresh {
            bytes: upload.bytes.clone(),
            name: upload.file_name.clone(),
            mime: mime_for(&upload.file_name).to_owned(),
        },
        (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
            // Telegram downloads the URL itself; so does the fake.
            let fetched = async {
                let response = shared.http.get(&url).send().await.ok()?;
                if !response.status().is_success() {
                    return None;
                }
                let mime = response
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Some((response.bytes().await.ok()?, mime))
            }
            .await;
            let Some((bytes, mime)) = fetched else {
                return Answer::bad_request("failed to get HTTP URL content");
            };
            let name = url
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("file")
                .to_owned();
            let mime = mime.unwrap_or_else(|| mime_for(&name).to_owned());
            Source::Fresh { bytes, name, mime }
        }
        (None, Some(file_id)) => match shared.lock().files.get(&file_id).cloned() {
            Some(file) => Source::Stored(file),
            None => return Answer::bad_request("wrong file identifier/HTTP URL specified"),
        },
        (None, None) => return Answer::bad_request(&format!("there is no {field} in the request")),
    };
    let mut state = shared.lock();
    // The recipient is checked again: the state may have changed during the fetch.
    let chat_id = match check_recipient(&state, params) {
        Ok(chat_id) => chat_id,
        Err(answer) => return answer,
    };
    let media = match (kind, source) {
        (MediaKind::Photo, Source::Stored(file)) => {
            json!([photo_size(&file, 1280, 960)])
        }
        (MediaKind::Photo, Source::Fresh { bytes, .. }) => state.store_photo(bytes),
        (MediaKind::Document, Source::Stored(file)) => {
            json!({"file_name": file.path.rsplit('/').next(), "mime_type": mime_for(&file.path),
                   "file_id": file.file_id, "file_unique_id": file.unique_id,
                   "file_size": file.bytes.len()})
        }
        (MediaKind::Document, Source::Fresh { bytes, name, mime }) => {
            let extension = name.rsplit_once('.').map_or("bin", |(_, e)| e).to_owned();
            let file = state.store_file("BQACAgIAAx", "documents", &extension, bytes);
            json!({"file_name": name, "mime_type": mime, "file_id": file.file_id,
                   "file_unique_id": file.unique_id, "file_size": file.bytes.len()})
        }
    };
    commit_sent(&mut state, token, chat_id, params, |message| {
        message[field] = media;
        if !caption.is_empty() {
            message["caption"] = json!(caption);
        }
    })
}

fn mime_for(name: &str) -> &'static str {
    match name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("mp4") => "video/mp4",
        Some("oga" | "ogg") => "audio/ogg",
        _ => "application/octet-stream",
    }
}

mod control;
#[cfg(test)]
mod tests;
