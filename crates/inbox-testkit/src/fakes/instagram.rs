//! `FakeInstagram`: a stateful fake of the Instagram API with Instagram Login
//! (`graph.instagram.com` and `api.instagram.com`, served from one address) for the Instagram
//! adapter and end-to-end tests of the real binary.
//!
//! Real paths and JSON: `GET /{version}/me?fields=user_id,username,…`, the Send API on
//! `POST /{version}/me/messages` (and `/{ig-id}/messages`) with the 24-hour and 7-day
//! (`HUMAN_AGENT`) windows and a 1000-byte text limit, `sender_action`, profiles on
//! `GET /{version}/{IGSID}` (code 230 before the person wrote), `subscribed_apps`, the OAuth
//! authorize page (consents at once and redirects with a code), the code exchange
//! (`POST /oauth/access_token`, answered flat or wrapped in `data` as configured, since which
//! one Instagram uses is UNCONFIRMED), `ig_exchange_token` on `/access_token` and
//! `ig_refresh_token` on `/refresh_access_token` (unversioned, as documented; versioned paths
//! are accepted too, UNCONFIRMED), with token lifetimes, the 24-hour minimum age for a
//! refresh, expiry and revocation (code 190). Webhooks (object `instagram`) go to the app's
//! callback signed with the Instagram app secret, or with another secret when told to (which
//! secret Meta uses is UNCONFIRMED); every accepted send is echoed as Instagram does.
//!
//! Where Instagram's refusal of an exchange or too-early refresh is not documented, the fake
//! answers code 100 with a descriptive message (UNCONFIRMED wording).
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

/// The fake Instagram app's id (`INBOX_INSTAGRAM_APP_ID`).
pub const APP_ID: &str = "9876543210987654";
/// The fake Instagram app's secret (`INBOX_INSTAGRAM_APP_SECRET`).
pub const APP_SECRET: &str = "fake-instagram-app-secret";
/// The webhook object.
pub const OBJECT: &str = "instagram";

const DAY_MS: i64 = 86_400_000;

const INSTAGRAM: SendRules = SendRules {
    text_limit: 1000,
    bytes: true,
    window_subcode: 2_534_022,
    not_found_subcode: 2_534_014,
    requires_messaging_type: false,
    mid_prefix: "aWdfZAG1faXRlbToxOklH",
};

/// An Instagram user token the fake issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The professional account it acts for.
    pub account: String,
    /// Long-lived (60 days) or short-lived (1 hour).
    pub long_lived: bool,
    /// When it was issued (epoch ms).
    pub issued_ms: i64,
    /// When it expires (epoch ms).
    pub expires_ms: i64,
    /// Revoked (user removed the app, changed password).
    pub revoked: bool,
}

#[derive(Debug)]
struct World {
    core: Core,
    callback: Option<String>,
    signing_secret: String,
    accounts: BTreeMap<String, Business>,
    tokens: HashMap<String, TokenInfo>,
    codes: HashMap<String, (String, String)>,
    login_as: Option<String>,
    oauth_wrapped: bool,
    long_lived: Duration,
    last_push: HashMap<String, Value>,
    echoes_off: bool,
    issued_age: Duration,
}

impl World {
    fn token(&self, token: Option<&str>) -> Result<(String, TokenInfo), Response> {
        let Some(token) = token else {
            return Err(graph_error(
                400,
                2500,
                None,
                "An active access token must be used.",
                None,
            ));
        };
        match self.tokens.get(token) {
            None => Err(invalid_token(None)),
            Some(info) if info.revoked => Err(invalid_token(Some(460))),
            Some(info) if info.expires_ms <= now_ms() => Err(graph_error(
                401,
                190,
                Some(463),
                "Error validating access token: Session has expired.",
                None,
            )),
            Some(info) => Ok((token.to_owned(), info.clone())),
        }
    }

    fn issue(&mut self, account: &str, long_lived: bool) -> String {
        let n = self.core.next();
        let token = if long_lived {
            format!("IGAAlong{account}x{n:06}")
        } else {
            format!("IGQVshort{account}x{n:06}")
        };
        let now = now_ms();
        let lifetime = if long_lived {
            self.long_lived.as_millis() as i64
        } else {
            3_600_000
        };
        self.tokens.insert(
            token.clone(),
            TokenInfo {
                account: account.to_owned(),
                long_lived,
                issued_ms: now - self.issued_age.as_millis() as i64,
                expires_ms: now + lifetime,
                revoked: false,
            },
        );
        token
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

    async fn push(&self, account: Option<&str>, body: Value) -> Option<Delivery> {
        let (url, secret) = {
            let mut world = self.lock();
            if let Some(account) = account {
                world.last_push.insert(account.to_owned(), body.clone());
            }
            (world.callback.clone()?, world.signing_secret.clone())
        };
        let delivery = deliver(&self.http, &url, &secret, meta_json(&body)).await;
        self.lock().core.deliveries.push(delivery.clone());
        Some(delivery)
    }
}

/// The fake Instagram server and its control handle. Cheap to clone.
#[derive(Clone)]
pub struct FakeInstagram {
    shared: Arc<Shared>,
    _server: Arc<ServerTask>,
}

impl fmt::Debug for FakeInstagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeInstagram")
            .field("base_url", &self.shared.base_url)
            .finish()
    }
}

impl FakeInstagram {
    /// Starts the server on `127.0.0.1` on a free port.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Self {
        let Listener {
            listener,
            base_url,
            http,
        } = listen("FakeInstagram").await;
        let shared = Arc::new(Shared {
            base_url,
            state: Mutex::new(World {
                core: Core::default(),
                callback: None,
                signing_secret: APP_SECRET.to_owned(),
                accounts: BTreeMap::new(),
                tokens: HashMap::new(),
                codes: HashMap::new(),
                login_as: None,
                oauth_wrapped: false,
                long_lived: Duration::from_secs(60 * 86_400),
                last_push: HashMap::new(),
                echoes_off: false,
                issued_age: Duration::ZERO,
            }),
            http,
        });
        let app = Router::new().fallback(route).with_state(shared.clone());
        FakeInstagram {
            shared,
            _server: serve(listener, app),
        }
    }

    /// `http://127.0.0.1:<port>`: both `INBOX_INSTAGRAM_API_BASE` and
    /// `INBOX_INSTAGRAM_OAUTH_BASE`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.shared.lock()
    }

    /// Sets the app's webhook callback (App Dashboard → Instagram → Webhooks).
    pub fn subscribe_app(&self, callback_url: &str) {
        self.lock().callback = Some(callback_url.to_owned());
    }

    /// Signs webhooks with `secret` instead of the Instagram app secret (e.g. the Meta app
    /// secret, as Instagram reached through a Page does).
    pub fn sign_with(&self, secret: &str) {
        self.lock().signing_secret = secret.to_owned();
    }

    /// Adds a professional account and returns a long-lived token issued now.
    pub fn add_account(&self, ig_id: &str, username: &str, name: &str) -> String {
        let mut world = self.lock();
        world
            .accounts
            .insert(ig_id.to_owned(), Business::new(ig_id, name, Some(username)));
        world.login_as = Some(ig_id.to_owned());
        world.issue(ig_id, true)
    }

    /// Issues another token for the account.
    pub fn issue_token(&self, ig_id: &str, long_lived: bool) -> String {
        self.lock().issue(ig_id, long_lived)
    }

    /// Makes a token older by `by`, keeping its expiry (so it may be refreshed sooner).
    pub fn age_token(&self, token: &str, by: Duration) {
        if let Some(info) = self.lock().tokens.get_mut(token) {
            info.issued_ms -= by.as_millis() as i64;
        }
    }

    /// Issues every later token as if it were already `age` old (same lifetime from now), so
    /// tests can refresh without waiting Instagram's 24 hours.
    pub fn set_issued_age(&self, age: Duration) {
        self.lock().issued_age = age;
    }

    /// Makes a token expired now.
    pub fn expire_token(&self, token: &str) {
        if let Some(info) = self.lock().tokens.get_mut(token) {
            info.expires_ms = now_ms() - 1;
        }
    }

    /// Revokes a token (code 190 from now on).
    pub fn revoke_token(&self, token: &str) {
        if let Some(info) = self.lock().tokens.get_mut(token) {
            info.revoked = true;
        }
    }

    /// Revokes every token of the account (the user removed the app).
    pub fn revoke_account(&self, ig_id: &str) {
        for info in self.lock().tokens.values_mut() {
            if info.account == ig_id {
                info.revoked = true;
            }
        }
    }

    /// What the fake knows about a token.
    pub fn token_info(&self, token: &str) -> Option<TokenInfo> {
        self.lock().tokens.get(token).cloned()
    }

    /// Every token issued for the account, with what the fake knows of it.
    pub fn tokens_of(&self, ig_id: &str) -> Vec<(String, TokenInfo)> {
        let mut tokens: Vec<_> = self
            .lock()
            .tokens
            .iter()
            .filter(|(_, info)| info.account == ig_id)
            .map(|(token, info)| (token.clone(), info.clone()))
            .collect();
        tokens.sort_by_key(|(_, info)| info.issued_ms);
        tokens
    }

    /// How long long-lived tokens last (60 days by default).
    pub fn set_long_lived_lifetime(&self, lifetime: Duration) {
        self.lock().long_lived = lifetime;
    }

    /// Answers the OAuth code exchange wrapped in `{"data": [...]}` instead of flat.
    pub fn set_oauth_wrapped(&self, wrapped: bool) {
        self.lock().oauth_wrapped = wrapped;
    }

    /// Chooses which account consents on the authorize page (default: the last added).
    pub fn login_as(&self, ig_id: &str) {
        self.lock().login_as = Some(ig_id.to_owned());
    }

    /// Adds a person who can write to the account (their IGSID is account-scoped).
    pub fn add_user(&self, ig_id: &str, igsid: &str, name: &str, username: &str) -> FakeUser {
        let user = FakeUser {
            id: igsid.to_owned(),
            first_name: name.to_owned(),
            last_name: None,
            username: Some(username.to_owned()),
        };
        self.lock()
            .accounts
            .get_mut(ig_id)
            .expect("FakeInstagram: no such account")
            .users
            .insert(igsid.to_owned(), user.clone());
        user
    }

    /// Sets when the person last wrote.
    pub fn set_last_inbound(&self, ig_id: &str, igsid: &str, at_ms: i64) {
        if let Some(account) = self.lock().accounts.get_mut(ig_id) {
            account.last_inbound.insert(igsid.to_owned(), at_ms);
        }
    }

    /// The person blocked the account.
    pub fn block(&self, ig_id: &str, igsid: &str) {
        if let Some(account) = self.lock().accounts.get_mut(ig_id) {
            account.blocked.insert(igsid.to_owned());
        }
    }

    /// The messages the account sent, oldest first.
    pub fn sent(&self, ig_id: &str) -> Vec<Value> {
        self.lock()
            .accounts
            .get(ig_id)
            .map(|a| a.sent.clone())
            .unwrap_or_default()
    }

    /// The account's `subscribed_apps` fields, if subscribed.
    pub fn subscription(&self, ig_id: &str) -> Option<String> {
        self.lock()
            .accounts
            .get(ig_id)
            .and_then(|a| a.subscribed_fields.clone())
    }

    /// Turns the echoes of accepted sends on (the default) or off.
    pub fn set_echoes(&self, on: bool) {
        self.lock().echoes_off = !on;
    }

    /// Serves `bytes` at `{base}/_media/{name}` (the CDN).
    pub fn host_media(&self, name: &str, bytes: Vec<u8>, mime: &str) -> String {
        self.lock()
            .core
            .hosted
            .insert(name.to_owned(), (Bytes::from(bytes), mime.to_owned()));
        format!("{}/_media/{name}", self.shared.base_url)
    }

    /// A text message event from `igsid` (which opens the window); returns `(mid, event)`.
    pub fn text(
        &self,
        ig_id: &str,
        igsid: &str,
        text: &str,
        at_ms: Option<i64>,
    ) -> (String, Value) {
        let at = at_ms.unwrap_or_else(now_ms);
        let mut world = self.lock();
        let n = world.core.next();
        if let Some(account) = world.accounts.get_mut(ig_id) {
            account.last_inbound.insert(igsid.to_owned(), at);
        }
        let mid = format!("aWdfZAG1faXRlbToxOklHTWVz{n:012}");
        (
            mid.clone(),
            user_event(
                ig_id,
                igsid,
                at,
                "message",
                json!({"mid": mid, "text": text}),
            ),
        )
    }

    /// An image from `igsid` (bytes on the CDN) and, for a caption, a separate text event.
    pub fn image(
        &self,
        ig_id: &str,
        igsid: &str,
        bytes: Vec<u8>,
        mime: &str,
        caption: Option<&str>,
    ) -> Vec<Value> {
        let n = self.lock().core.next();
        let url = self.host_media(&format!("ig_cdn_{n}.png"), bytes, mime);
        let at = now_ms();
        self.set_last_inbound(ig_id, igsid, at);
        let mids = (
            format!("aWdfZAG1fImage{n:012}"),
            format!("aWdfZAG1fCaption{n:012}"),
        );
        image_events(ig_id, igsid, &url, at, mids, caption)
    }

    /// Delivers one `instagram` webhook with an entry per `(account id, events)`.
    pub async fn deliver(&self, entries: Vec<(String, Vec<Value>)>) -> Option<Delivery> {
        let account = entries.first().map(|(id, _)| id.clone());
        let body = messaging_body(OBJECT, entries);
        self.shared.push(account.as_deref(), body).await
    }

    /// Delivers any body, signed.
    pub async fn deliver_raw(&self, body: Value) -> Option<Delivery> {
        self.shared.push(None, body).await
    }

    /// Delivers the account's last webhook once more.
    pub async fn redeliver_last(&self, ig_id: &str) -> Option<Delivery> {
        let body = self.lock().last_push.get(ig_id).cloned()?;
        self.shared.push(Some(ig_id), body).await
    }

    /// Makes the next `times` calls of `op` answer `answer`.
    pub fn inject(&self, op: MetaOp, times: u32, answer: Injected) {
        self.lock().core.inject(op, times, answer);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().core.requests.clone()
    }

    /// How many calls of `op` were answered.
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
    let (response, op, echo) = answer(&shared, &incoming);
    let status = response.status().as_u16();
    shared
        .lock()
        .core
        .requests
        .push(incoming.record(op, status));
    if let Some((account, body)) = echo {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            shared.push(Some(&account), body).await;
        });
    }
    response
}

type Echo = Option<(String, Value)>;

fn answer(shared: &Shared, incoming: &Incoming) -> (Response, Option<MetaOp>, Echo) {
    let segments: Vec<&str> = incoming.segments.iter().map(String::as_str).collect();
    // The token endpoints are documented unversioned; a versioned path is accepted too.
    let unversioned: &[&str] = if incoming.version().is_some() {
        &segments[1..]
    } else {
        &segments
    };
    let method = incoming.method.as_str();
    match (method, segments.as_slice(), unversioned) {
        ("GET", ["_media", name], _) => return (hosted(shared, name), None, None),
        ("GET", ["oauth", "authorize"], _) => return (authorize(shared, incoming), None, None),
        ("POST", ["oauth", "access_token"], _) => {
            return with_op(shared, MetaOp::TokenExchange, || {
                code_exchange(shared, incoming)
            });
        }
        ("GET", _, ["access_token"]) => {
            return with_op(shared, MetaOp::TokenExchange, || exchange(shared, incoming));
        }
        ("GET", _, ["refresh_access_token"]) => {
            return with_op(shared, MetaOp::TokenRefresh, || refresh(shared, incoming));
        }
        _ => {}
    }
    if incoming.version().is_none() {
        let message = format!("Unknown path components: {}", incoming.path);
        return (graph_error(400, 2500, None, &message, None), None, None);
    }
    let account = {
        let world = shared.lock();
        match world.token(incoming.token().as_deref()) {
            Ok((_, info)) => info.account,
            Err(response) => {
                let op = match (method, &segments[1..]) {
                    ("GET", ["me"]) => Some(MetaOp::Connect),
                    ("POST", [_, "messages"]) => Some(MetaOp::Send),
                    ("GET", [_]) => Some(MetaOp::Profile),
                    _ => None,
                };
                return (response, op, None);
            }
        }
    };
    match (method, &segments[1..]) {
        ("GET", ["me"]) => {
            let (response, op, _) =
                with_op(shared, MetaOp::Connect, || me(shared, incoming, &account));
            (response, op, None)
        }
        ("POST", [who, "messages"]) if *who == "me" || *who == account => {
            send(shared, incoming, &account)
        }
        (_, ["me", "subscribed_apps"]) => {
            let (response, op, _) = with_op(shared, MetaOp::Subscribe, || {
                subscribe(shared, incoming, &account)
            });
            (response, op, None)
        }
        ("GET", [igsid]) => {
            let (response, op, _) = with_op(shared, MetaOp::Profile, || {
                user_profile(shared, incoming, &account, igsid)
            });
            (response, op, None)
        }
        _ => (
            graph_error(
                400,
                100,
                None,
                &format!("Unsupported {method} request."),
                None,
            ),
            None,
            None,
        ),
    }
}

fn with_op(
    shared: &Shared,
    op: MetaOp,
    handler: impl FnOnce() -> Response,
) -> (Response, Option<MetaOp>, Echo) {
    if let Some(injected) = shared.lock().core.take_injection(op) {
        return (injected.response(), Some(op), None);
    }
    (handler(), Some(op), None)
}

fn hosted(shared: &Shared, name: &str) -> Response {
    match shared.lock().core.hosted.get(name) {
        Some((bytes, mime)) => {
            ([(header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Instagram's OAuth host answers errors in its own shape, not Graph's.
fn oauth_error(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error_type": "OAuthException", "code": 400, "error_message": message})),
    )
        .into_response()
}

fn authorize(shared: &Shared, incoming: &Incoming) -> Response {
    let mut world = shared.lock();
    if incoming.param("client_id").as_deref() != Some(APP_ID) {
        return oauth_error("Invalid platform app");
    }
    if incoming.param("response_type").as_deref() != Some("code") {
        return oauth_error("response_type must be code");
    }
    let (Some(redirect), Some(account)) = (incoming.param("redirect_uri"), world.login_as.clone())
    else {
        return oauth_error("redirect_uri is required");
    };
    let n = world.core.next();
    let code = format!("AQBfakeIGcode{n:08}");
    world
        .codes
        .insert(code.clone(), (account, redirect.clone()));
    let Ok(mut url) = url::Url::parse(&redirect) else {
        return oauth_error("Invalid redirect_uri");
    };
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = incoming.param("state") {
        url.query_pairs_mut().append_pair("state", &state);
    }
    // Instagram appends `#_` to the redirect.
    url.set_fragment(Some("_"));
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn code_exchange(shared: &Shared, incoming: &Incoming) -> Response {
    let mut world = shared.lock();
    let calls = world.core.requests.len();
    if incoming.param("client_id").as_deref() != Some(APP_ID)
        || incoming.param("client_secret").as_deref() != Some(APP_SECRET)
    {
        return oauth_error("Invalid Client Secret");
    }
    if incoming.param("grant_type").as_deref() != Some("authorization_code") {
        return oauth_error("Invalid grant_type");
    }
    let Some((account, redirect)) = incoming.param("code").and_then(|c| world.codes.remove(&c))
    else {
        return oauth_error("Invalid authorization code");
    };
    if incoming.param("redirect_uri").as_deref() != Some(redirect.as_str()) {
        return oauth_error(
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        );
    }
    let token = world.issue(&account, false);
    let inner = json!({"access_token": token, "user_id": account.parse::<u64>().map_or(json!(account), |n| json!(n)),
                       "permissions": "instagram_business_basic,instagram_business_manage_messages"});
    let body = if world.oauth_wrapped {
        json!({"data": [inner]})
    } else {
        inner
    };
    ok_json(body, calls)
}

fn exchange(shared: &Shared, incoming: &Incoming) -> Response {
    let mut world = shared.lock();
    let calls = world.core.requests.len();
    if incoming.param("grant_type").as_deref() != Some("ig_exchange_token") {
        return graph_error(
            400,
            100,
            None,
            "(#100) grant_type must be ig_exchange_token",
            None,
        );
    }
    if incoming.param("client_secret").as_deref() != Some(APP_SECRET) {
        return graph_error(
            400,
            101,
            None,
            "Error validating application. Invalid application secret.",
            None,
        );
    }
    let (_, info) = match world.token(incoming.param("access_token").as_deref()) {
        Ok(found) => found,
        Err(response) => return response,
    };
    if info.long_lived {
        return graph_error(
            400,
            100,
            None,
            "(#100) Only short-lived access tokens can be exchanged",
            None,
        );
    }
    let token = world.issue(&info.account, true);
    let expires_in = world.long_lived.as_secs();
    ok_json(
        json!({"access_token": token, "token_type": "bearer", "expires_in": expires_in}),
        calls,
    )
}

fn refresh(shared: &Shared, incoming: &Incoming) -> Response {
    let mut world = shared.lock();
    let calls = world.core.requests.len();
    if incoming.param("grant_type").as_deref() != Some("ig_refresh_token") {
        return graph_error(
            400,
            100,
            None,
            "(#100) grant_type must be ig_refresh_token",
            None,
        );
    }
    let (_, info) = match world.token(incoming.param("access_token").as_deref()) {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !info.long_lived {
        return graph_error(
            400,
            100,
            None,
            "(#100) Only long-lived access tokens can be refreshed",
            None,
        );
    }
    if now_ms() - info.issued_ms < DAY_MS {
        return graph_error(
            400,
            100,
            None,
            "(#100) The access token must be at least 24 hours old to be refreshed",
            None,
        );
    }
    let token = world.issue(&info.account, true);
    let expires_in = world.long_lived.as_secs();
    ok_json(
        json!({"access_token": token, "token_type": "bearer", "expires_in": expires_in}),
        calls,
    )
}

fn me(shared: &Shared, incoming: &Incoming, account: &str) -> Response {
    let world = shared.lock();
    let calls = world.core.requests.len();
    let Some(business) = world.accounts.get(account) else {
        return invalid_token(None);
    };
    let fields = incoming
        .param("fields")
        .unwrap_or_else(|| "id,username".into());
    // `id` is an app-scoped id; `user_id` is the one webhooks use.
    let mut out = json!({"id": format!("{}0001", &account[..account.len().min(8)])});
    for field in fields.split(',').map(str::trim) {
        let value = match field {
            "user_id" => json!(account),
            "username" => json!(business.username),
            "name" => json!(business.name),
            "account_type" => json!("BUSINESS"),
            "profile_picture_url" => {
                json!(format!("{}/_media/avatar_{account}.jpg", shared.base_url))
            }
            _ => continue,
        };
        out[field] = value;
    }
    ok_json(out, calls)
}

fn send(shared: &Shared, incoming: &Incoming, account: &str) -> (Response, Option<MetaOp>, Echo) {
    let op = if incoming.body.get("sender_action").is_some() {
        MetaOp::MarkRead
    } else {
        MetaOp::Send
    };
    let mut world = shared.lock();
    if let Some(injected) = world.core.take_injection(op) {
        return (injected.response(), Some(op), None);
    }
    let calls = world.core.requests.len();
    let seq = world.core.next();
    let echoes = !world.echoes_off;
    let Some(business) = world.accounts.get_mut(account) else {
        return (invalid_token(None), Some(op), None);
    };
    match messenger_send(business, &incoming.body, INSTAGRAM, seq) {
        Ok((answer, echo)) => {
            let echo = echo.filter(|_| echoes).map(|event| {
                (
                    account.to_owned(),
                    messaging_body(OBJECT, vec![(account.to_owned(), vec![event])]),
                )
            });
            (ok_json(answer, calls), Some(op), echo)
        }
        Err(response) => (response, Some(op), None),
    }
}

fn subscribe(shared: &Shared, incoming: &Incoming, account: &str) -> Response {
    let mut world = shared.lock();
    let calls = world.core.requests.len();
    let business = world
        .accounts
        .get_mut(account)
        .expect("a token's account exists");
    match incoming.method.as_str() {
        "POST" => match incoming.param("subscribed_fields") {
            Some(fields) => {
                business.subscribed_fields = Some(fields);
                ok_json(json!({"success": true}), calls)
            }
            None => graph_error(
                400,
                100,
                None,
                "(#100) The parameter subscribed_fields is required",
                None,
            ),
        },
        "DELETE" => {
            business.subscribed_fields = None;
            ok_json(json!({"success": true}), calls)
        }
        _ => ok_json(
            json!({"data": business.subscribed_fields.iter().map(|f| json!({"subscribed_fields": f.split(',').collect::<Vec<_>>()})).collect::<Vec<_>>()}),
            calls,
        ),
    }
}

fn user_profile(shared: &Shared, incoming: &Incoming, account: &str, igsid: &str) -> Response {
    let world = shared.lock();
    let calls = world.core.requests.len();
    let business = &world.accounts[account];
    match business.users.get(igsid) {
        Some(user) if business.last_inbound.contains_key(igsid) => {
            let fields = incoming
                .param("fields")
                .unwrap_or_else(|| "name,username".into());
            ok_json(profile(user, &fields, &shared.base_url), calls)
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
            &format!("Unsupported get request. Object with ID '{igsid}' does not exist"),
            None,
        ),
    }
}

mod control;
#[cfg(test)]
mod tests;
