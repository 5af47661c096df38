//! `FakeGraph`: a stateful fake of `graph.facebook.com` for the Facebook Messenger and
//! WhatsApp Cloud API adapters, end-to-end tests of the real binary, and fidelity checks with
//! pywa (the WhatsApp SDK).
//!
//! It speaks the real wire format on the real paths, under any `/v{major}.{minor}` version:
//!
//! * Pages: `GET /{page-id}?fields=…`, `POST /{page-id}/messages` (the Send API with
//!   `messaging_type`, tags, the 24-hour and 7-day windows, `sender_action`), `GET /{PSID}`
//!   profiles, `POST|DELETE|GET /{page-id}/subscribed_apps`; every accepted send is echoed to
//!   the app's webhook as Meta does (`message_echoes`), unless turned off.
//! * Facebook Login: `GET /{version}/dialog/oauth` (consents at once as the chosen user and
//!   redirects with a code), `GET /oauth/access_token` (code exchange and `fb_exchange_token`),
//!   `GET /me/accounts` (each granted Page with its token and tasks).
//! * WhatsApp: `GET /{phone-number-id}`, `POST /{phone-number-id}/messages` (text, media by
//!   link, templates, `status: read`; a free-form message outside the 24-hour window is
//!   accepted and then reported `failed` with 131047 in a status webhook, as the Cloud API
//!   does), `GET /{media-id}` and the media bytes behind it (with the same token),
//!   `POST /{waba-id}/subscribed_apps`.
//! * Errors: the Graph envelope with Meta's codes (190 for bad tokens, 10/2018278 for the
//!   window, 551/1545041 for blocked users, 100 for bad parameters and lengths), usage
//!   headers on every answer, and injectable failures and throttling ([`MetaOp`]).
//! * Webhooks to the app's callback per object (`page`, `whatsapp_business_account`), signed
//!   with the app secret over Meta's escaped-unicode JSON, several entries per batch.
//!
//! Deliberate simplifications: one app; any well-formed version is served; media links in
//! sends are not fetched; webhook retries take milliseconds.
// Handlers return ready-made axum `Response`s as errors; their size is irrelevant in a
// test server.
#![allow(clippy::result_large_err)]

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::meta::{
    Business, Core, Incoming, Listener, SendRules, ServerTask, deliver, graph_error, image_events,
    invalid_token, listen, messaging_body, messenger_send, meta_json, now_ms, ok_json, profile,
    serve, user_event,
};
pub use super::meta::{Delivery, FakeUser, Injected, MetaOp, RecordedRequest};

/// The fake Meta app's id.
pub const APP_ID: &str = "1234567890123456";
/// The fake Meta app's secret (signs webhooks).
pub const APP_SECRET: &str = "fake-meta-app-secret";
/// The webhook object of Pages.
pub const PAGE_OBJECT: &str = "page";
/// The webhook object of WhatsApp Business Accounts.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

const MESSENGER: SendRules = SendRules {
    text_limit: 2000,
    bytes: false,
    window_subcode: 2_018_278,
    not_found_subcode: 2_018_001,
    requires_messaging_type: true,
    mid_prefix: "m_",
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    Page(String),
    /// A system-user token with access to these phone numbers.
    Business(Vec<String>),
    /// A Facebook Login user token.
    User {
        user: String,
        long_lived: bool,
    },
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    revoked: bool,
}

/// A WhatsApp user the fake knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsAppContact {
    /// The phone-number id (`wa_id`); `None` for users who hide their number.
    pub wa_id: Option<String>,
    /// The business-scoped user id.
    pub user_id: Option<String>,
    /// The profile name.
    pub name: String,
}

impl WhatsAppContact {
    /// The id the business knows the user by.
    pub fn id(&self) -> String {
        self.wa_id
            .clone()
            .or_else(|| self.user_id.clone())
            .unwrap_or_default()
    }

    /// The business-scoped user id: the given one, else one derived from the wa_id (since
    /// 2026 every contact has one, and SDKs such as pywa 4.5 require it).
    pub fn bsuid(&self) -> String {
        self.user_id
            .clone()
            .unwrap_or_else(|| format!("US.{:0>20}", self.wa_id.as_deref().unwrap_or("0")))
    }

    /// The `contacts[]` item webhooks carry for this user.
    fn json(&self) -> Value {
        let mut contact = json!({"profile": {"name": self.name}, "user_id": self.bsuid()});
        if let Some(wa_id) = &self.wa_id {
            contact["wa_id"] = json!(wa_id);
        }
        contact
    }
}

impl PhoneNumber {
    /// The contact a message went to (known or not).
    fn contact(&self, id: &str) -> WhatsAppContact {
        self.contacts.get(id).cloned().unwrap_or_else(|| {
            let phone = id.bytes().all(|b| b.is_ascii_digit());
            WhatsAppContact {
                wa_id: phone.then(|| id.to_owned()),
                user_id: (!phone).then(|| id.to_owned()),
                name: id.to_owned(),
            }
        })
    }
}

#[derive(Debug, Clone)]
struct PhoneNumber {
    id: String,
    display: String,
    verified_name: String,
    waba: String,
    contacts: BTreeMap<String, WhatsAppContact>,
    /// When each contact last wrote (epoch seconds).
    last_inbound: HashMap<String, i64>,
    blocked: Vec<String>,
    templates: Vec<String>,
    /// Accepted message bodies, with `id` added.
    sent: Vec<Value>,
    /// `status: read` calls.
    read: Vec<String>,
}

#[derive(Debug, Clone)]
struct LoginUser {
    name: String,
    /// The Pages the user grants, with their tasks.
    pages: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Default)]
struct World {
    core: Core,
    callbacks: HashMap<String, String>,
    tokens: HashMap<String, Token>,
    pages: BTreeMap<String, Business>,
    page_tokens: HashMap<String, String>,
    phones: BTreeMap<String, PhoneNumber>,
    waba_subscriptions: HashMap<String, bool>,
    media: HashMap<String, (Bytes, String)>,
    users: BTreeMap<String, LoginUser>,
    login_as: Option<String>,
    codes: HashMap<String, (String, String)>,
    /// Last webhook body per account (Page or phone-number id), for redelivery.
    last_push: HashMap<String, (String, Value)>,
    echoes_off: bool,
    auto_statuses: bool,
}

impl World {
    fn token(&self, token: Option<&str>) -> Result<(String, TokenKind), Response> {
        let Some(token) = token else {
            return Err(graph_error(
                400,
                2500,
                None,
                "An active access token must be used to query information about the current user.",
                None,
            ));
        };
        match self.tokens.get(token) {
            Some(info) if !info.revoked => Ok((token.to_owned(), info.kind.clone())),
            Some(_) => Err(invalid_token(Some(460))),
            None => Err(invalid_token(None)),
        }
    }
}

struct Shared {
    base_url: String,
    state: Mutex<World>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, World> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn push(&self, object: &str, account: Option<&str>, body: Value) -> Option<Delivery> {
        let url = {
            let mut world = self.lock();
            if let Some(account) = account {
                world
                    .last_push
                    .insert(account.to_owned(), (object.to_owned(), body.clone()));
            }
            world.callbacks.get(object).cloned()
        }?;
        let delivery = deliver(&self.http, &url, APP_SECRET, meta_json(&body)).await;
        self.lock().core.deliveries.push(delivery.clone());
        Some(delivery)
    }
}

/// The fake Graph API server and its control handle. Cheap to clone; the server stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct FakeGraph {
    shared: Arc<Shared>,
    _server: Arc<ServerTask>,
}

impl fmt::Debug for FakeGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeGraph")
            .field("base_url", &self.shared.base_url)
            .finish()
    }
}

impl FakeGraph {
    /// Starts the server on `127.0.0.1` on a free port.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Self {
        let Listener {
            listener,
            base_url,
            http,
        } = listen("FakeGraph").await;
        let shared = Arc::new(Shared {
            base_url,
            state: Mutex::new(World::default()),
            http,
        });
        let app = Router::new().fallback(route).with_state(shared.clone());
        FakeGraph {
            shared,
            _server: serve(listener, app),
        }
    }

    /// `http://127.0.0.1:<port>`: `INBOX_GRAPH_API_BASE` (and `INBOX_FACEBOOK_OAUTH_BASE`).
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.shared.lock()
    }

    /// Sets the app's webhook callback for `object` (`page` or `whatsapp_business_account`),
    /// as the App Dashboard does.
    pub fn subscribe_app(&self, object: &str, callback_url: &str) {
        self.lock()
            .callbacks
            .insert(object.to_owned(), callback_url.to_owned());
    }

    /// Serves `bytes` at `{base}/_media/{name}` without credentials (CDN URLs, media to send
    /// by URL).
    pub fn host_media(&self, name: &str, bytes: Vec<u8>, mime: &str) -> String {
        self.lock()
            .core
            .hosted
            .insert(name.to_owned(), (Bytes::from(bytes), mime.to_owned()));
        format!("{}/_media/{name}", self.shared.base_url)
    }

    // ----- Pages -----------------------------------------------------------------------

    /// Adds a Page and returns its Page access token.
    pub fn add_page(&self, id: &str, name: &str, username: Option<&str>) -> String {
        let token = format!("EAAPage{id}Token");
        let mut world = self.lock();
        world
            .pages
            .insert(id.to_owned(), Business::new(id, name, username));
        world.page_tokens.insert(id.to_owned(), token.clone());
        world.tokens.insert(
            token.clone(),
            Token {
                kind: TokenKind::Page(id.to_owned()),
                revoked: false,
            },
        );
        token
    }

    /// Adds a person who can write to `page` (their PSID is Page-scoped).
    pub fn add_psid(
        &self,
        page: &str,
        psid: &str,
        first_name: &str,
        last_name: Option<&str>,
    ) -> FakeUser {
        let user = FakeUser {
            id: psid.to_owned(),
            first_name: first_name.to_owned(),
            last_name: last_name.map(str::to_owned),
            username: None,
        };
        self.lock()
            .pages
            .get_mut(page)
            .expect("FakeGraph: no such Page")
            .users
            .insert(psid.to_owned(), user.clone());
        user
    }

    /// The Page's access token.
    pub fn page_token(&self, page: &str) -> String {
        self.lock()
            .page_tokens
            .get(page)
            .cloned()
            .expect("FakeGraph: no such Page")
    }

    /// Revokes an access token: calls with it answer 190.
    pub fn revoke_token(&self, token: &str) {
        if let Some(info) = self.lock().tokens.get_mut(token) {
            info.revoked = true;
        }
    }

    /// The person blocked the Page: sends answer 551/1545041.
    pub fn block(&self, page: &str, psid: &str) {
        if let Some(business) = self.lock().pages.get_mut(page) {
            business.blocked.insert(psid.to_owned());
        }
    }

    /// Sets when the person last wrote (opens or closes the window).
    pub fn set_last_inbound(&self, page: &str, psid: &str, at_ms: i64) {
        if let Some(business) = self.lock().pages.get_mut(page) {
            business.last_inbound.insert(psid.to_owned(), at_ms);
        }
    }

    /// The messages the Page sent, oldest first: `{mid, recipient, text, attachment_type,
    /// attachment_url, tag, messaging_type, at}`.
    pub fn page_sent(&self, page: &str) -> Vec<Value> {
        self.lock()
            .pages
            .get(page)
            .map(|b| b.sent.clone())
            .unwrap_or_default()
    }

    /// The Page's `subscribed_apps` fields, if the app is subscribed.
    pub fn page_subscription(&self, page: &str) -> Option<String> {
        self.lock()
            .pages
            .get(page)
            .and_then(|b| b.subscribed_fields.clone())
    }

    /// Turns the echoes of accepted sends on (the default) or off.
    pub fn set_echoes(&self, on: bool) {
        self.lock().echoes_off = !on;
    }

    /// A text message event from `psid` to `page` at `at_ms` (now when `None`), which also
    /// opens the window; returns `(mid, event)`.
    pub fn page_text(
        &self,
        page: &str,
        psid: &str,
        text: &str,
        at_ms: Option<i64>,
    ) -> (String, Value) {
        let at = at_ms.unwrap_or_else(now_ms);
        let mut world = self.lock();
        let n = world.core.next();
        let business = world.pages.get_mut(page).expect("FakeGraph: no such Page");
        business.last_inbound.insert(psid.to_owned(), at);
        let mid = format!("m_in{n:012}");
        let event = user_event(page, psid, at, "message", json!({"mid": mid, "text": text}));
        (mid, event)
    }

    /// An image message event from `psid` to `page` (the bytes served from a CDN URL), and,
    /// when there is a caption, a separate text event (Messenger sends text and media as two
    /// messages).
    pub fn page_image(
        &self,
        page: &str,
        psid: &str,
        bytes: Vec<u8>,
        mime: &str,
        caption: Option<&str>,
    ) -> Vec<Value> {
        let n = self.lock().core.next();
        let url = self.host_media(&format!("cdn_{n}.png"), bytes, mime);
        let at = now_ms();
        self.set_last_inbound(page, psid, at);
        let mids = (format!("m_img{n:012}"), format!("m_cap{n:012}"));
        image_events(page, psid, &url, at, mids, caption)
    }

    /// Delivers one `page` webhook with an entry per `(page id, events)`.
    pub async fn deliver_pages(&self, entries: Vec<(String, Vec<Value>)>) -> Option<Delivery> {
        let account = entries.first().map(|(id, _)| id.clone());
        let body = messaging_body(PAGE_OBJECT, entries);
        self.shared
            .push(PAGE_OBJECT, account.as_deref(), body)
            .await
    }

    // ----- Facebook Login --------------------------------------------------------------

    /// Adds a Facebook user who grants `pages` (with their tasks, e.g. `["MESSAGING"]`) when
    /// they log in; the dialog consents as the last user added or [`FakeGraph::login_as`].
    pub fn add_login_user(&self, id: &str, name: &str, pages: &[(&str, &[&str])]) {
        let mut world = self.lock();
        world.users.insert(
            id.to_owned(),
            LoginUser {
                name: name.to_owned(),
                pages: pages
                    .iter()
                    .map(|(page, tasks)| {
                        (
                            (*page).to_owned(),
                            tasks.iter().map(|t| (*t).to_owned()).collect(),
                        )
                    })
                    .collect(),
            },
        );
        world.login_as = Some(id.to_owned());
    }

    /// Chooses who consents in the dialog.
    pub fn login_as(&self, user: &str) {
        self.lock().login_as = Some(user.to_owned());
    }

    // ----- WhatsApp --------------------------------------------------------------------

    /// Adds a business phone number of WhatsApp Business Account `waba` and returns a
    /// system-user token for it. The `hello_world` template is approved.
    pub fn add_phone_number(
        &self,
        id: &str,
        display: &str,
        verified_name: &str,
        waba: &str,
    ) -> String {
        let token = format!("EAAGSystem{id}Token");
        let mut world = self.lock();
        world.phones.insert(
            id.to_owned(),
            PhoneNumber {
                id: id.to_owned(),
                display: display.to_owned(),
                verified_name: verified_name.to_owned(),
                waba: waba.to_owned(),
                contacts: BTreeMap::new(),
                last_inbound: HashMap::new(),
                blocked: Vec::new(),
                templates: vec!["hello_world".to_owned()],
                sent: Vec::new(),
                read: Vec::new(),
            },
        );
        world.tokens.insert(
            token.clone(),
            Token {
                kind: TokenKind::Business(vec![id.to_owned()]),
                revoked: false,
            },
        );
        token
    }

    /// Adds a WhatsApp user who can write to the number.
    pub fn add_contact(&self, phone: &str, contact: WhatsAppContact) {
        self.lock()
            .phones
            .get_mut(phone)
            .expect("FakeGraph: no such phone number")
            .contacts
            .insert(contact.id(), contact);
    }

    /// Records that the contact wrote now (opens the 24-hour window) without a webhook.
    pub fn open_window(&self, phone: &str, contact: &str) {
        if let Some(number) = self.lock().phones.get_mut(phone) {
            number
                .last_inbound
                .insert(contact.to_owned(), now_ms() / 1000);
        }
    }

    /// Approves a template name on the number.
    pub fn add_template(&self, phone: &str, name: &str) {
        if let Some(number) = self.lock().phones.get_mut(phone) {
            number.templates.push(name.to_owned());
        }
    }

    /// Sends to this user answer 131026 (undeliverable).
    pub fn block_contact(&self, phone: &str, contact: &str) {
        if let Some(number) = self.lock().phones.get_mut(phone) {
            number.blocked.push(contact.to_owned());
        }
    }

    /// The message bodies the number sent, each with its `id`, oldest first.
    pub fn whatsapp_sent(&self, phone: &str) -> Vec<Value> {
        self.lock()
            .phones
            .get(phone)
            .map(|p| p.sent.clone())
            .unwrap_or_default()
    }

    /// The message ids marked read, oldest first.
    pub fn whatsapp_read(&self, phone: &str) -> Vec<String> {
        self.lock()
            .phones
            .get(phone)
            .map(|p| p.read.clone())
            .unwrap_or_default()
    }

    /// Whether the app is subscribed to the WhatsApp Business Account.
    pub fn waba_subscribed(&self, waba: &str) -> bool {
        self.lock()
            .waba_subscriptions
            .get(waba)
            .copied()
            .unwrap_or(false)
    }

    /// Sends `sent`/`delivered` statuses for every accepted message by themselves (off by
    /// default, so tests choose which statuses arrive).
    pub fn set_auto_statuses(&self, on: bool) {
        self.lock().auto_statuses = on;
    }

    /// Stores media as WhatsApp does for an inbound message; returns its media id.
    pub fn upload_media(&self, bytes: Vec<u8>, mime: &str) -> String {
        let mut world = self.lock();
        let id = format!("{}", 1_013_859_600_000_000 + world.core.next());
        world
            .media
            .insert(id.clone(), (Bytes::from(bytes), mime.to_owned()));
        id
    }

    /// A `messages` change value with one message from `contact` (which also opens the
    /// window): `message` is the type-specific part, e.g. `{"type":"text","text":{"body":"hi"}}`.
    /// Returns `(wamid, value)`.
    pub fn whatsapp_message(
        &self,
        phone: &str,
        contact: &str,
        message: Value,
        at_s: Option<i64>,
    ) -> (String, Value) {
        let at = at_s.unwrap_or_else(|| now_ms() / 1000);
        let mut world = self.lock();
        let n = world.core.next();
        let number = world
            .phones
            .get_mut(phone)
            .expect("FakeGraph: no such phone number");
        let known = number
            .contacts
            .get(contact)
            .cloned()
            .unwrap_or(WhatsAppContact {
                wa_id: Some(contact.to_owned()),
                user_id: None,
                name: contact.to_owned(),
            });
        number.last_inbound.insert(contact.to_owned(), at);
        let wamid = format!("wamid.HBgL{n:014}AAA=");
        let mut item = json!({"id": wamid, "timestamp": at.to_string()});
        match &known.wa_id {
            Some(wa_id) => item["from"] = json!(wa_id),
            None => item["from_user_id"] = json!(known.user_id),
        }
        if let Value::Object(fields) = message {
            for (key, value) in fields {
                item[key] = value;
            }
        }
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": number.display, "phone_number_id": number.id},
            "contacts": [known.json()],
            "messages": [item],
        });
        (wamid, value)
    }

    /// A `messages` change value with one status of an outgoing message; `error` is
    /// `(code, title, details)` for `failed`.
    pub fn whatsapp_status(
        &self,
        phone: &str,
        wamid: &str,
        status: &str,
        error: Option<(i64, &str, &str)>,
    ) -> Value {
        let world = self.lock();
        let number = world
            .phones
            .get(phone)
            .expect("FakeGraph: no such phone number");
        let recipient = number
            .sent
            .iter()
            .find(|m| m["id"] == wamid)
            .and_then(|m| {
                m.get("to")
                    .or_else(|| m.get("recipient"))
                    .and_then(Value::as_str)
            })
            .unwrap_or_default()
            .to_owned();
        let contact = number.contact(&recipient);
        let mut item = json!({
            "id": wamid, "status": status, "timestamp": (now_ms() / 1000).to_string(),
            "recipient_id": contact.wa_id, "recipient_user_id": contact.bsuid(),
            "pricing": {"billable": true, "pricing_model": "PMP", "category": "service", "type": "regular"},
        });
        if let Some((code, title, details)) = error {
            item["errors"] = json!([{"code": code, "title": title, "message": title,
                                      "error_data": {"details": details},
                                      "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]);
        }
        json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": number.display, "phone_number_id": number.id},
            "contacts": [contact.json()],
            "statuses": [item],
        })
    }

    /// Delivers one `whatsapp_business_account` webhook: an entry per value, each with one
    /// `messages` change, grouped under the number's WhatsApp Business Account id.
    pub async fn deliver_whatsapp(&self, values: Vec<Value>) -> Option<Delivery> {
        let (entries, account) = {
            let world = self.lock();
            let account = values
                .first()
                .and_then(|v| v.pointer("/metadata/phone_number_id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let entries: Vec<Value> = values
                .into_iter()
                .map(|value| {
                    let waba = value
                        .pointer("/metadata/phone_number_id")
                        .and_then(Value::as_str)
                        .and_then(|id| world.phones.get(id))
                        .map_or_else(|| "0".to_owned(), |p| p.waba.clone());
                    json!({"id": waba, "changes": [{"field": "messages", "value": value}]})
                })
                .collect();
            (entries, account)
        };
        let body = json!({"object": WHATSAPP_OBJECT, "entry": entries});
        self.shared
            .push(WHATSAPP_OBJECT, account.as_deref(), body)
            .await
    }

    /// Delivers any body to the callback of `object`, signed (unknown objects and fields).
    pub async fn deliver_raw(&self, object: &str, body: Value) -> Option<Delivery> {
        self.shared.push(object, None, body).await
    }

    /// Delivers the last webhook of `account` (Page or phone-number id) once more.
    pub async fn redeliver_last(&self, account: &str) -> Option<Delivery> {
        let (object, body) = self.lock().last_push.get(account).cloned()?;
        self.shared.push(&object, Some(account), body).await
    }

    // ----- common ----------------------------------------------------------------------

    /// Makes the next `times` calls of `op` answer `answer`.
    pub fn inject(&self, op: MetaOp, times: u32, answer: Injected) {
        self.lock().core.inject(op, times, answer);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().core.requests.clone()
    }

    /// How many calls of `op` were answered (retries included).
    pub fn calls(&self, op: MetaOp) -> usize {
        self.lock().core.calls(op)
    }

    /// Every webhook delivery so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().core.deliveries.clone()
    }
}

async fn route(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let incoming = Incoming::read(request).await;
    let (response, op, followups) = answer(&shared, &incoming);
    let status = response.status().as_u16();
    shared
        .lock()
        .core
        .requests
        .push(incoming.record(op, status));
    for (object, account, body) in followups {
        let shared = shared.clone();
        // After the answer, as Meta does: the echo or status follows the send.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            shared.push(&object, account.as_deref(), body).await;
        });
    }
    response
}

type Followup = (String, Option<String>, Value);

fn answer(shared: &Shared, incoming: &Incoming) -> (Response, Option<MetaOp>, Vec<Followup>) {
    let segments: Vec<&str> = incoming.segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["_media", name] => return (hosted(shared, name), None, Vec::new()),
        ["_wa_media", id] => return media_bytes(shared, incoming, id),
        _ => {}
    }
    if incoming.version().is_none() {
        let message = format!("Unknown path components: {}", incoming.path);
        return (
            graph_error(400, 2500, None, &message, None),
            None,
            Vec::new(),
        );
    }
    let method = incoming.method.as_str();
    match (method, &segments[1..]) {
        ("GET", ["dialog", "oauth"]) => (dialog(shared, incoming), None, Vec::new()),
        ("GET", ["oauth", "access_token"]) => with_op(shared, MetaOp::TokenExchange, || {
            oauth_token(shared, incoming)
        }),
        ("GET", ["me", "accounts"]) => (me_accounts(shared, incoming), None, Vec::new()),
        ("GET", [id]) => read_object(shared, incoming, id),
        ("POST", [id, "messages"]) => post_messages(shared, incoming, id),
        (_, [id, "subscribed_apps"]) => with_op(shared, MetaOp::Subscribe, || {
            subscribed_apps(shared, incoming, id)
        }),
        _ => (
            graph_error(
                400,
                100,
                None,
                &format!("Unsupported {method} request."),
                None,
            ),
            None,
            Vec::new(),
        ),
    }
}

/// Runs `handler` as `op` unless a failure is injected for it.
fn with_op(
    shared: &Shared,
    op: MetaOp,
    handler: impl FnOnce() -> Response,
) -> (Response, Option<MetaOp>, Vec<Followup>) {
    if let Some(injected) = shared.lock().core.take_injection(op) {
        return (injected.response(), Some(op), Vec::new());
    }
    (handler(), Some(op), Vec::new())
}

fn hosted(shared: &Shared, name: &str) -> Response {
    match shared.lock().core.hosted.get(name) {
        Some((bytes, mime)) => {
            ([(header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn media_bytes(
    shared: &Shared,
    incoming: &Incoming,
    id: &str,
) -> (Response, Option<MetaOp>, Vec<Followup>) {
    let op = Some(MetaOp::MediaDownload);
    let mut world = shared.lock();
    if let Some(injected) = world.core.take_injection(MetaOp::MediaDownload) {
        return (injected.response(), op, Vec::new());
    }
    // Lookaside URLs need the same token as the Graph call that gave them.
    if let Err(response) = world.token(incoming.token().as_deref()) {
        return (response, op, Vec::new());
    }
    let response = match world.media.get(id) {
        Some((bytes, mime)) => {
            ([(header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    };
    (response, op, Vec::new())
}

fn dialog(shared: &Shared, incoming: &Incoming) -> Response {
    let mut world = shared.lock();
    if incoming.param("client_id").as_deref() != Some(APP_ID) {
        return (StatusCode::BAD_REQUEST, "Invalid App ID").into_response();
    }
    let (Some(redirect), Some(user)) = (incoming.param("redirect_uri"), world.login_as.clone())
    else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri missing or nobody to log in",
        )
            .into_response();
    };
    let n = world.core.next();
    let code = format!("AQfakecode{n:08}");
    world.codes.insert(code.clone(), (user, redirect.clone()));
    let Ok(mut url) = url::Url::parse(&redirect) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
    };
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = incoming.param("state") {
        url.query_pairs_mut().append_pair("state", &state);
    }
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn oauth_token(shared: &Shared, incoming: &Incoming) -> Response {
    let mut world = shared.lock();
    let calls = world.core.requests.len();
    if incoming.param("client_id").as_deref() != Some(APP_ID)
        || incoming.param("client_secret").as_deref() != Some(APP_SECRET)
    {
        return graph_error(400, 1, None, "Error validating client secret.", None);
    }
    let (user, long_lived) = if incoming.param("grant_type").as_deref() == Some("fb_exchange_token")
    {
        match incoming
            .param("fb_exchange_token")
            .and_then(|t| world.tokens.get(&t).cloned())
        {
            Some(Token {
                kind: TokenKind::User { user, .. },
                revoked: false,
            }) => (user, true),
            _ => return invalid_token(None),
        }
    } else {
        let Some((user, redirect)) = incoming.param("code").and_then(|c| world.codes.remove(&c))
        else {
            return graph_error(
                400,
                100,
                Some(36009),
                "This authorization code has been used.",
                None,
            );
        };
        if incoming.param("redirect_uri").as_deref() != Some(redirect.as_str()) {
            return graph_error(
                400,
                100,
                Some(36008),
                "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
                None,
            );
        }
        (user, false)
    };
    let n = world.core.next();
    let token = format!("EAAUser{}{n:06}", if long_lived { "Long" } else { "Short" });
    world.tokens.insert(
        token.clone(),
        Token {
            kind: TokenKind::User { user, long_lived },
            revoked: false,
        },
    );
    let expires = if long_lived { 5_183_944 } else { 5_400 };
    ok_json(
        json!({"access_token": token, "token_type": "bearer", "expires_in": expires}),
        calls,
    )
}

fn me_accounts(shared: &Shared, incoming: &Incoming) -> Response {
    let world = shared.lock();
    let calls = world.core.requests.len();
    let user = match world.token(incoming.token().as_deref()) {
        Ok((_, TokenKind::User { user, .. })) => user,
        Ok(_) => {
            return graph_error(
                400,
                100,
                None,
                "(#100) Tried accessing nonexisting field (accounts)",
                None,
            );
        }
        Err(response) => return response,
    };
    let Some(login) = world.users.get(&user) else {
        return ok_json(json!({"data": []}), calls);
    };
    let data: Vec<Value> = login
        .pages
        .iter()
        .filter_map(|(page, tasks)| {
            let business = world.pages.get(page)?;
            Some(json!({
                "id": business.id, "name": business.name, "username": business.username,
                "access_token": world.page_tokens.get(page), "category": "Shopping & retail",
                "tasks": tasks,
            }))
        })
        .collect();
    let _ = &login.name;
    ok_json(
        json!({"data": data, "paging": {"cursors": {"before": "a", "after": "b"}}}),
        calls,
    )
}

fn read_object(
    shared: &Shared,
    incoming: &Incoming,
    id: &str,
) -> (Response, Option<MetaOp>, Vec<Followup>) {
    let kind = {
        let world = shared.lock();
        match world.token(incoming.token().as_deref()) {
            Ok((_, kind)) => kind,
            // Reading an object with a bad token is how connecting fails.
            Err(response) => return (response, Some(MetaOp::Connect), Vec::new()),
        }
    };
    let base = shared.base_url.clone();
    match kind {
        TokenKind::Page(page) if page == id => with_op(shared, MetaOp::Connect, || {
            let world = shared.lock();
            let business = &world.pages[&page];
            ok_json(
                json!({"id": business.id, "name": business.name, "username": business.username}),
                world.core.requests.len(),
            )
        }),
        TokenKind::Page(page) => with_op(shared, MetaOp::Profile, || {
            let world = shared.lock();
            let business = &world.pages[&page];
            match business.users.get(id) {
                // Profiles are readable once the person wrote to the Page (consent).
                Some(user) if business.last_inbound.contains_key(id) => {
                    let fields = incoming
                        .param("fields")
                        .unwrap_or_else(|| "first_name,last_name".into());
                    ok_json(profile(user, &fields, &base), world.core.requests.len())
                }
                Some(_) => graph_error(
                    400,
                    230,
                    None,
                    "(#230) User consent is required to access user profile",
                    None,
                ),
                None => graph_error(
                    400,
                    100,
                    Some(33),
                    &format!(
                        "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
                    ),
                    None,
                ),
            }
        }),
        TokenKind::Business(phones) if phones.iter().any(|p| p == id) => {
            with_op(shared, MetaOp::Connect, || {
                let world = shared.lock();
                let number = &world.phones[id];
                ok_json(
                    json!({"id": number.id, "display_phone_number": number.display, "verified_name": number.verified_name,
                       "quality_rating": "GREEN", "code_verification_status": "VERIFIED"}),
                    world.core.requests.len(),
                )
            })
        }
        TokenKind::Business(_) => with_op(shared, MetaOp::MediaInfo, || {
            let world = shared.lock();
            match world.media.get(id) {
                Some((bytes, mime)) => ok_json(
                    json!({"url": format!("{base}/_wa_media/{id}"), "mime_type": mime,
                           "sha256": "0000", "file_size": bytes.len(), "id": id,
                           "messaging_product": "whatsapp"}),
                    world.core.requests.len(),
                ),
                None => unknown_object(id),
            }
        }),
        TokenKind::User { .. } => (unknown_object(id), None, Vec::new()),
    }
}

fn unknown_object(id: &str) -> Response {
    graph_error(
        400,
        100,
        Some(33),
        &format!(
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
        ),
        None,
    )
}

fn subscribed_apps(shared: &Shared, incoming: &Incoming, id: &str) -> Response {
    let mut world = shared.lock();
    let calls = world.core.requests.len();
    let kind = match world.token(incoming.token().as_deref()) {
        Ok((_, kind)) => kind,
        Err(response) => return response,
    };
    match kind {
        TokenKind::Page(page) if page == id => {
            let business = world
                .pages
                .get_mut(&page)
                .expect("a Page token has its Page");
            match incoming.method.as_str() {
                "POST" => {
                    let Some(fields) = incoming.param("subscribed_fields") else {
                        return graph_error(
                            400,
                            100,
                            None,
                            "(#100) The parameter subscribed_fields is required",
                            None,
                        );
                    };
                    business.subscribed_fields = Some(fields);
                    ok_json(json!({"success": true}), calls)
                }
                "DELETE" => {
                    business.subscribed_fields = None;
                    ok_json(json!({"success": true}), calls)
                }
                _ => {
                    let data: Vec<Value> = business
                        .subscribed_fields
                        .iter()
                        .map(|fields| json!({"id": APP_ID, "subscribed_fields": fields.split(',').collect::<Vec<_>>()}))
                        .collect();
                    ok_json(json!({"data": data}), calls)
                }
            }
        }
        TokenKind::Business(phones) => {
            let owns = phones
                .iter()
                .any(|p| world.phones.get(p).is_some_and(|n| n.waba == id));
            if !owns {
                return graph_error(403, 200, None, "(#200) Permissions error", None);
            }
            let on = incoming.method != "DELETE";
            world.waba_subscriptions.insert(id.to_owned(), on);
            ok_json(json!({"success": true}), calls)
        }
        _ => graph_error(403, 200, None, "(#200) Permissions error", None),
    }
}

fn post_messages(
    shared: &Shared,
    incoming: &Incoming,
    id: &str,
) -> (Response, Option<MetaOp>, Vec<Followup>) {
    let body = &incoming.body;
    let op = if body.get("sender_action").is_some()
        || body.get("status").and_then(Value::as_str) == Some("read")
    {
        MetaOp::MarkRead
    } else {
        MetaOp::Send
    };
    let mut world = shared.lock();
    if let Some(injected) = world.core.take_injection(op) {
        return (injected.response(), Some(op), Vec::new());
    }
    let calls = world.core.requests.len();
    let kind = match world.token(incoming.token().as_deref()) {
        Ok((_, kind)) => kind,
        Err(response) => return (response, Some(op), Vec::new()),
    };
    match kind {
        TokenKind::Page(page) if page == id => {
            let seq = world.core.next();
            let echoes = !world.echoes_off;
            let business = world
                .pages
                .get_mut(&page)
                .expect("a Page token has its Page");
            match messenger_send(business, body, MESSENGER, seq) {
                Ok((answer, echo)) => {
                    let followups = echo
                        .filter(|_| echoes)
                        .map(|echo| {
                            let body =
                                messaging_body(PAGE_OBJECT, vec![(page.clone(), vec![echo])]);
                            (PAGE_OBJECT.to_owned(), Some(page.clone()), body)
                        })
                        .into_iter()
                        .collect();
                    (ok_json(answer, calls), Some(op), followups)
                }
                Err(response) => (response, Some(op), Vec::new()),
            }
        }
        TokenKind::Business(phones) if phones.iter().any(|p| p == id) => {
            let seq = world.core.next();
            let auto = world.auto_statuses;
            let number = world
                .phones
                .get_mut(id)
                .expect("a token's phone number exists");
            match whatsapp_send(number, body, seq, auto) {
                Ok((answer, statuses)) => {
                    let followups = statuses
                        .into_iter()
                        .map(|value| {
                            let body = json!({"object": WHATSAPP_OBJECT, "entry": [{"id": number.waba, "changes": [{"field": "messages", "value": value}]}]});
                            (WHATSAPP_OBJECT.to_owned(), Some(id.to_owned()), body)
                        })
                        .collect();
                    (ok_json(answer, calls), Some(op), followups)
                }
                Err(response) => (response, Some(op), Vec::new()),
            }
        }
        _ => (
            graph_error(403, 200, None, "(#200) Permissions error", None),
            Some(op),
            Vec::new(),
        ),
    }
}

fn wa_error(status: u16, code: i64, title: &str, details: &str) -> Response {
    graph_error(
        status,
        code,
        None,
        &format!("(#{code}) {title}"),
        Some(json!({"error_data": {"messaging_product": "whatsapp", "details": details}})),
    )
}

/// `POST /{phone-number-id}/messages`: the answer and the status values to push after it.
fn whatsapp_send(
    number: &mut PhoneNumber,
    body: &Value,
    seq: u64,
    auto: bool,
) -> Result<(Value, Vec<Value>), Response> {
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err(wa_error(
            400,
            100,
            "Invalid parameter",
            "The parameter messaging_product is required.",
        ));
    }
    if body.get("status").and_then(Value::as_str) == Some("read") {
        let Some(id) = body.get("message_id").and_then(Value::as_str) else {
            return Err(wa_error(
                400,
                100,
                "Invalid parameter",
                "message_id is required",
            ));
        };
        number.read.push(id.to_owned());
        return Ok((json!({"success": true}), Vec::new()));
    }
    let to = body.get("to").and_then(Value::as_str).map(str::to_owned);
    let recipient = body
        .get("recipient")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(target) = to.clone().or(recipient.clone()) else {
        return Err(wa_error(
            400,
            100,
            "Invalid parameter",
            "The parameter to is required.",
        ));
    };
    if to
        .as_deref()
        .is_some_and(|t| !t.bytes().all(|b| b.is_ascii_digit() || b == b'+'))
    {
        return Err(wa_error(
            400,
            100,
            "Invalid parameter",
            "Param to must be a phone number.",
        ));
    }
    if number.blocked.contains(&target) {
        return Err(wa_error(
            400,
            131_026,
            "Message Undeliverable.",
            "Message Undeliverable.",
        ));
    }
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("text");
    match kind {
        "text" => {
            let text = body
                .pointer("/text/body")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if text.is_empty() {
                return Err(wa_error(
                    400,
                    100,
                    "Invalid parameter",
                    "Param text['body'] is required.",
                ));
            }
            if text.chars().count() > 4096 {
                return Err(wa_error(
                    400,
                    100,
                    "Invalid parameter",
                    "Param text['body'] must be at most 4096 characters long.",
                ));
            }
        }
        "image" | "video" | "audio" | "document" | "sticker" => {
            let media = &body[kind];
            if media.get("link").and_then(Value::as_str).is_none() && media.get("id").is_none() {
                return Err(wa_error(
                    400,
                    100,
                    "Invalid parameter",
                    &format!("Param {kind}['link'] or {kind}['id'] is required."),
                ));
            }
            if media
                .get("caption")
                .and_then(Value::as_str)
                .is_some_and(|c| c.chars().count() > 1024)
            {
                return Err(wa_error(
                    400,
                    100,
                    "Invalid parameter",
                    &format!("Param {kind}['caption'] must be at most 1024 characters long."),
                ));
            }
        }
        "template" => {
            let name = body
                .pointer("/template/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !number.templates.iter().any(|t| t == name) {
                return Err(wa_error(
                    404,
                    132_001,
                    "Template name does not exist in the translation",
                    &format!("template name ({name}) does not exist in en_US"),
                ));
            }
            if body
                .pointer("/template/language/code")
                .and_then(Value::as_str)
                .is_none()
            {
                return Err(wa_error(
                    400,
                    100,
                    "Invalid parameter",
                    "Param template['language']['code'] is required.",
                ));
            }
        }
        other => {
            return Err(wa_error(
                400,
                131_051,
                "Unsupported message type",
                &format!("Message type {other} is not supported."),
            ));
        }
    }
    let wamid = format!("wamid.HBgLOut{seq:014}=");
    let mut stored = body.clone();
    stored["id"] = json!(wamid);
    number.sent.push(stored);
    let wa_id = to
        .clone()
        .or_else(|| number.contacts.get(&target).and_then(|c| c.wa_id.clone()));
    let contact = match (&wa_id, &recipient) {
        (Some(wa_id), _) => json!({"input": target, "wa_id": wa_id}),
        (None, Some(user_id)) => json!({"input": target, "user_id": user_id}),
        _ => json!({"input": target}),
    };
    let answer = json!({"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]});
    let contact = number.contact(&target);
    let status = |name: &str, errors: Option<Value>| {
        let mut item = json!({"id": wamid, "status": name, "timestamp": (now_ms() / 1000).to_string(),
                              "recipient_id": contact.wa_id, "recipient_user_id": contact.bsuid()});
        if let Some(errors) = errors {
            item["errors"] = errors;
        }
        json!({"messaging_product": "whatsapp",
               "metadata": {"display_phone_number": number.display, "phone_number_id": number.id},
               "contacts": [contact.json()],
               "statuses": [item]})
    };
    // Outside the customer-service window only templates are delivered; the Cloud API
    // accepts the send and reports the failure as a status (131047).
    let last = number.last_inbound.get(&target).copied();
    let window_open = last.is_some_and(|at| now_ms() / 1000 - at <= 86_400);
    let mut statuses = Vec::new();
    if kind != "template" && !window_open {
        statuses.push(status(
            "failed",
            Some(json!([{"code": 131_047, "title": "Re-engagement message", "message": "Re-engagement message",
                          "error_data": {"details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."}}])),
        ));
    } else if auto {
        statuses.push(status("sent", None));
        statuses.push(status("delivered", None));
    }
    Ok((answer, statuses))
}

mod control;
#[cfg(test)]
mod tests;

pub(crate) use control::attachment_kind;
pub use control::{FakeMessenger, FakeWhatsApp};
