//! `FakeX`: a stateful fake of the X API v2 direct-message endpoints and the OAuth 2.0 token
//! endpoint, for adapter tests, end-to-end tests of the real binary, and fidelity checks with
//! X's official Python SDK (`xdk`).
//!
//! It speaks X's wire format: `GET /2/users/me`, `/2/users/{id}`, `/2/users/by/username/{u}`
//! (a missing user is a `200` with `errors`), `GET /2/dm_events` (newest first, `max_results`,
//! `pagination_token`, `dm_event.fields`, `expansions`, `user.fields`, `media.fields`, the
//! `data`/`includes`/`meta` envelope), `POST /2/dm_conversations/{id}/messages` and
//! `/with/{participant_id}/messages` (`201` with `dm_conversation_id` and `dm_event_id`), DM
//! media downloads, v2 problem bodies, `x-rate-limit-*` headers on every answer with a real
//! per-user window (15 lookups and 15 sends per 15 minutes unless changed), and the OAuth 2.0
//! endpoints: `GET /i/oauth2/authorize` (consent is given at once as the chosen user, then a
//! `302` to the redirect URI) and `POST /2/oauth2/token` with PKCE S256 checks, confidential
//! (HTTP Basic) or public (`client_id`) clients, access tokens that expire, and **refresh
//! tokens that rotate on every use**: a spent refresh token is refused like X does
//! (`400 invalid_request`, "Value passed for the token was invalid.").
//!
//! When an account's pushes are routed to a URL, DMs it receives and sends are POSTed there as
//! Account Activity payloads signed with the consumer secret (`x-twitter-webhooks-signature`).
//!
//! Simplifications: one-to-one conversations only; no group DMs; rate windows are per user
//! and endpoint group; injected `429`s also carry `retry-after` (X documents only
//! `x-rate-limit-reset`) so tests see exact hints.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    sync::Arc,
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, response::Response};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::common::{
    Injection, Locked, Recorded, ServerTask, Shared, basic, bearer, body_bytes, form, respond,
    rfc3339_millis, serve, take_injection, token, unix_millis, unix_now,
};

/// X's DM text limit, in characters.
pub const TEXT_LIMIT: usize = 10_000;

/// The header X signs webhook deliveries with.
pub const SIGNATURE_HEADER: &str = "x-twitter-webhooks-signature";

/// The endpoint groups failures can be injected into and requests counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XEndpoint {
    /// `POST /2/oauth2/token`.
    Token,
    /// `GET /2/users/me`.
    Me,
    /// `GET /2/users/{id}` and `/2/users/by/username/{u}`.
    Users,
    /// `GET /2/dm_events`.
    DmEvents,
    /// `POST /2/dm_conversations/…/messages`.
    Send,
    /// `GET /2/dm_conversations/media/…`.
    Media,
}

/// A user the fake knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XUser {
    /// Numeric id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Handle, without `@`.
    pub username: String,
    /// Avatar URL.
    pub profile_image_url: Option<String>,
}

/// A DM event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XDm {
    /// Event id (a snowflake: later events have larger ids).
    pub id: u64,
    /// `"{smaller}-{larger}"`.
    pub conversation_id: String,
    /// Who sent it.
    pub sender_id: String,
    /// Who got it.
    pub recipient_id: String,
    /// The text.
    pub text: String,
    /// Unix milliseconds.
    pub created_ms: u64,
    /// The attached media's key.
    pub media_key: Option<String>,
}

/// A refresh-token use, as the token endpoint saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshUse {
    /// The user the token belonged to, if it was ever issued.
    pub user: Option<String>,
    /// Whether it was accepted (`false`: reused, revoked or unknown).
    pub accepted: bool,
}

#[derive(Debug, Clone)]
struct StoredMedia {
    bytes: Bytes,
    mime: String,
    resource: String,
}

#[derive(Debug)]
struct World {
    base_url: String,
    client_id: String,
    client_secret: Option<String>,
    consumer_secret: String,
    users: BTreeMap<String, XUser>,
    access: HashMap<String, (String, u64)>,
    refresh: HashMap<String, String>,
    issued_refresh: HashMap<String, String>,
    refresh_uses: Vec<RefreshUse>,
    codes: HashMap<String, (String, String, String)>,
    consenting: Option<String>,
    dms: Vec<XDm>,
    media: HashMap<String, StoredMedia>,
    hosted: HashMap<String, (Bytes, String)>,
    blocked: HashSet<(String, String)>,
    injections: Vec<Injection<XEndpoint>>,
    requests: Vec<(XEndpoint, Recorded)>,
    other_requests: Vec<Recorded>,
    webhooks: HashMap<String, String>,
    last_push: HashMap<String, (String, Vec<u8>)>,
    windows: HashMap<(String, &'static str), (u64, u32)>,
    window_limit: u32,
    window_secs: u64,
    access_lifetime: u64,
    next_id: u64,
    next_seed: u64,
}

impl World {
    fn new(client_id: &str, client_secret: Option<&str>, consumer_secret: &str) -> Self {
        World {
            base_url: String::new(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.map(str::to_owned),
            consumer_secret: consumer_secret.to_owned(),
            users: BTreeMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            issued_refresh: HashMap::new(),
            refresh_uses: Vec::new(),
            codes: HashMap::new(),
            consenting: None,
            dms: Vec::new(),
            media: HashMap::new(),
            hosted: HashMap::new(),
            blocked: HashSet::new(),
            injections: Vec::new(),
            requests: Vec::new(),
            other_requests: Vec::new(),
            webhooks: HashMap::new(),
            last_push: HashMap::new(),
            windows: HashMap::new(),
            window_limit: 15,
            window_secs: 900,
            access_lifetime: 7200,
            next_id: 1_900_000_000_000_000_000,
            next_seed: 0,
        }
    }

    fn seq(&mut self) -> u64 {
        self.next_seed += 1;
        self.next_seed
    }

    fn issue(&mut self, user: &str) -> (String, String) {
        let n = self.seq();
        let access = token("xat-", n);
        let refresh = token("xrt-", n);
        self.access.insert(
            access.clone(),
            (user.to_owned(), unix_now() + self.access_lifetime),
        );
        self.refresh.insert(refresh.clone(), user.to_owned());
        self.issued_refresh.insert(refresh.clone(), user.to_owned());
        (access, refresh)
    }

    fn user_json(&self, id: &str) -> Value {
        match self.users.get(id) {
            Some(user) => {
                let mut value =
                    json!({"id": user.id, "name": user.name, "username": user.username});
                if let Some(url) = &user.profile_image_url {
                    value["profile_image_url"] = json!(url);
                }
                value
            }
            None => json!({"id": id, "name": id, "username": id}),
        }
    }

    /// The rate-limit headers of one more call in `group` by `user` (and whether it is over).
    fn window(&mut self, user: &str, group: &'static str) -> (Vec<(String, String)>, bool) {
        let now = unix_now();
        let limit = self.window_limit;
        let secs = self.window_secs;
        let entry = self
            .windows
            .entry((user.to_owned(), group))
            .or_insert((now + secs, 0));
        if now >= entry.0 {
            *entry = (now + secs, 0);
        }
        entry.1 += 1;
        let over = entry.1 > limit;
        let headers = vec![
            ("x-rate-limit-limit".to_owned(), limit.to_string()),
            (
                "x-rate-limit-remaining".to_owned(),
                limit.saturating_sub(entry.1).to_string(),
            ),
            ("x-rate-limit-reset".to_owned(), entry.0.to_string()),
        ];
        (headers, over)
    }
}

fn one_to_one(a: &str, b: &str) -> String {
    let key = |id: &str| (id.len(), id.to_owned());
    if key(a) <= key(b) {
        format!("{a}-{b}")
    } else {
        format!("{b}-{a}")
    }
}

fn problem(status: u16, title: &str, detail: &str) -> String {
    json!({"title": title, "detail": detail, "type": "about:blank", "status": status}).to_string()
}

fn unauthorized() -> Response {
    respond(401, problem(401, "Unauthorized", "Unauthorized"), &[])
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The fake X API and its control handle. Cheap to clone; the server stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct FakeX {
    shared: Shared<World>,
    base_url: String,
    http: reqwest::Client,
    _server: Arc<ServerTask>,
}

impl fmt::Debug for FakeX {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeX")
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// The OAuth client id the fake knows unless told otherwise.
pub const CLIENT_ID: &str = "fake-x-client";
/// Its client secret (a confidential client).
pub const CLIENT_SECRET: &str = "fake-x-client-secret";
/// The app's consumer secret, which signs webhooks.
pub const CONSUMER_SECRET: &str = "fake-x-consumer-secret";

impl FakeX {
    /// Starts the server for the confidential client [`CLIENT_ID`] / [`CLIENT_SECRET`].
    pub async fn start() -> Self {
        Self::start_with(CLIENT_ID, Some(CLIENT_SECRET), CONSUMER_SECRET).await
    }

    /// Starts the server for the given OAuth client (`client_secret` `None`: a public client)
    /// and consumer secret.
    pub async fn start_with(
        client_id: &str,
        client_secret: Option<&str>,
        consumer_secret: &str,
    ) -> Self {
        let shared: Shared<World> = Arc::new(Locked::new(World::new(
            client_id,
            client_secret,
            consumer_secret,
        )));
        let app = Router::new().fallback(route).with_state(shared.clone());
        let (base_url, task) = serve(app, "FakeX").await;
        shared.lock().base_url = base_url.clone();
        FakeX {
            shared,
            base_url,
            http: reqwest::Client::builder()
                .timeout(super::common::PUSH_TIMEOUT)
                .build()
                .expect("FakeX: HTTP client"),
            _server: Arc::new(task),
        }
    }

    /// `http://127.0.0.1:<port>`: the API base (`INBOX_X_API_BASE`, xdk's `base_url`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The authorization page (`INBOX_X_AUTHORIZE_URL`).
    pub fn authorize_url(&self) -> String {
        format!("{}/i/oauth2/authorize", self.base_url)
    }

    /// Registers a user.
    pub fn add_user(&self, id: &str, name: &str, username: &str) -> XUser {
        let user = XUser {
            id: id.to_owned(),
            name: name.to_owned(),
            username: username.to_owned(),
            profile_image_url: Some(format!("https://pbs.twimg.com/profile_images/{id}.jpg")),
        };
        self.shared.lock().users.insert(id.to_owned(), user.clone());
        user
    }

    /// Issues a token pair for `user` (as if they had completed the OAuth flow).
    pub fn issue_tokens(&self, user: &str) -> (String, String) {
        self.shared.lock().issue(user)
    }

    /// Whom the authorization page consents as.
    pub fn consent_as(&self, user: &str) {
        self.shared.lock().consenting = Some(user.to_owned());
    }

    /// How long access tokens live from now on (default 2 h).
    pub fn set_access_lifetime(&self, lifetime: Duration) {
        self.shared.lock().access_lifetime = lifetime.as_secs();
    }

    /// Makes every access token of `user` expired (as after 2 h).
    pub fn expire_access_tokens(&self, user: &str) {
        for (owner, expires) in self.shared.lock().access.values_mut() {
            if owner == user {
                *expires = 0;
            }
        }
    }

    /// The per-user rate window of lookups and sends (default 15 per 900 s).
    pub fn set_rate_window(&self, limit: u32, window: Duration) {
        let mut world = self.shared.lock();
        world.window_limit = limit;
        world.window_secs = window.as_secs().max(1);
        world.windows.clear();
    }

    /// Revokes every token of `user`: calls answer `401`, refreshes `400`.
    pub fn revoke_user(&self, user: &str) {
        let mut world = self.shared.lock();
        world.access.retain(|_, (owner, _)| owner != user);
        world.refresh.retain(|_, owner| owner != user);
    }

    /// `recipient` blocks DMs from `sender`: sends answer `403`.
    pub fn block(&self, recipient: &str, sender: &str) {
        self.shared
            .lock()
            .blocked
            .insert((recipient.to_owned(), sender.to_owned()));
    }

    /// `from` writes `text` to `to`; pushed to `to`'s webhook when one is routed. Returns the
    /// event id.
    pub async fn dm(&self, from: &str, to: &str, text: &str) -> u64 {
        self.dm_with_media(from, to, text, None).await
    }

    /// As [`dm`](Self::dm), with an image attached.
    pub async fn dm_with_media(
        &self,
        from: &str,
        to: &str,
        text: &str,
        image: Option<(Vec<u8>, &str)>,
    ) -> u64 {
        let dm = {
            let mut world = self.shared.lock();
            let id = world.next_id;
            world.next_id += 1 + world.seq() % 7;
            let media_key = image.map(|(bytes, mime)| {
                let media_id = id + 3;
                let key = format!("3_{media_id}");
                world.media.insert(
                    key.clone(),
                    StoredMedia {
                        bytes: Bytes::from(bytes),
                        mime: mime.to_owned(),
                        resource: format!("img{media_id}.png"),
                    },
                );
                key
            });
            let dm = XDm {
                id,
                conversation_id: one_to_one(from, to),
                sender_id: from.to_owned(),
                recipient_id: to.to_owned(),
                text: text.to_owned(),
                created_ms: unix_millis(),
                media_key,
            };
            world.dms.push(dm.clone());
            dm
        };
        self.push_dm(&dm).await;
        dm.id
    }

    /// Posts a DM event to the webhooks routed for its sender and recipient.
    async fn push_dm(&self, dm: &XDm) {
        for user in [&dm.recipient_id, &dm.sender_id] {
            let (url, payload) = {
                let world = self.shared.lock();
                let Some(url) = world.webhooks.get(user).cloned() else {
                    continue;
                };
                (url, account_activity(&world, user, dm))
            };
            let body = payload.to_string().into_bytes();
            self.shared
                .lock()
                .last_push
                .insert(user.clone(), (url.clone(), body.clone()));
            self.post_signed(&url, body).await;
        }
    }

    async fn post_signed(&self, url: &str, body: Vec<u8>) {
        let signature = sign(&self.shared.lock().consumer_secret, &body);
        let _ = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
    }

    /// Delivers DM `id` once more to `user`'s webhook, as Account Activity does for the DMs a
    /// user sends (echoes) and when it saw no timely `200` (redeliveries).
    pub async fn push_existing(&self, user: &str, id: u64) {
        let (url, body) = {
            let world = self.shared.lock();
            let Some(url) = world.webhooks.get(user).cloned() else {
                return;
            };
            let Some(dm) = world.dms.iter().find(|dm| dm.id == id) else {
                return;
            };
            (
                url,
                account_activity(&world, user, dm).to_string().into_bytes(),
            )
        };
        self.shared
            .lock()
            .last_push
            .insert(user.to_owned(), (url.clone(), body.clone()));
        self.post_signed(&url, body).await;
    }

    /// The last Account Activity body pushed for `user`, POSTed once more.
    pub async fn redeliver_last(&self, user: &str) {
        let last = self.shared.lock().last_push.get(user).cloned();
        if let Some((url, body)) = last {
            self.post_signed(&url, body).await;
        }
    }

    /// Routes `user`'s Account Activity deliveries to `url`.
    pub fn route_webhook(&self, user: &str, url: &str) {
        self.shared
            .lock()
            .webhooks
            .insert(user.to_owned(), url.to_owned());
    }

    /// Makes the next `times` calls to `endpoint` answer `status` with `body` (and headers).
    pub fn inject(
        &self,
        endpoint: XEndpoint,
        times: u32,
        status: u16,
        body: &str,
        headers: &[(&str, &str)],
    ) {
        self.shared.lock().injections.push(Injection {
            op: endpoint,
            remaining: times,
            status,
            body: body.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
    }

    /// Makes the next call to `endpoint` answer `429` with a reset `after` from now.
    pub fn rate_limit_next(&self, endpoint: XEndpoint, after: Duration) {
        let reset = (unix_now() + after.as_secs()).to_string();
        let secs = after.as_secs().to_string();
        self.inject(
            endpoint,
            1,
            429,
            &problem(429, "Too Many Requests", "Too Many Requests"),
            &[
                ("x-rate-limit-limit", "15"),
                ("x-rate-limit-remaining", "0"),
                ("x-rate-limit-reset", &reset),
                ("retry-after", &secs),
            ],
        );
    }

    /// Every request to `endpoint`, oldest first, with the user it acted as.
    pub fn requests(&self, endpoint: XEndpoint) -> Vec<Recorded> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|(e, _)| *e == endpoint)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// How many `GET /2/dm_events` calls acted as `user`.
    pub fn polls_by(&self, user: &str) -> usize {
        self.requests(XEndpoint::DmEvents)
            .iter()
            .filter(|r| r.account.as_deref() == Some(user))
            .count()
    }

    /// Every refresh-token use, oldest first.
    pub fn refresh_uses(&self) -> Vec<RefreshUse> {
        self.shared.lock().refresh_uses.clone()
    }

    /// The DMs `user` sent, oldest first.
    pub fn sent_by(&self, user: &str) -> Vec<XDm> {
        self.shared
            .lock()
            .dms
            .iter()
            .filter(|dm| dm.sender_id == user)
            .cloned()
            .collect()
    }

    /// Serves `bytes` at `{base_url}/_media/{name}`.
    pub fn host_media(&self, name: &str, bytes: Vec<u8>, mime: &str) -> String {
        self.shared
            .lock()
            .hosted
            .insert(name.to_owned(), (Bytes::from(bytes), mime.to_owned()));
        format!("{}/_media/{name}", self.base_url)
    }
}

/// An Account Activity delivery of one DM for `user`.
fn account_activity(world: &World, user: &str, dm: &XDm) -> Value {
    let mut message_data = json!({"text": dm.text, "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []}});
    if let Some(key) = &dm.media_key
        && let Some(media) = world.media.get(key)
    {
        let media_id = key.trim_start_matches("3_");
        message_data["attachment"] = json!({"type": "media", "media": {
            "id_str": media_id, "type": "photo",
            "media_url_https": format!("https://ton.twitter.com/1.1/ton/data/dm/{}/{media_id}/{}", dm.id, media.resource)
        }});
    }
    let legacy = |id: &str| {
        let user = world.user_json(id);
        json!({"id": id, "name": user["name"], "screen_name": user["username"],
               "profile_image_url_https": user.get("profile_image_url")})
    };
    json!({
        "for_user_id": user,
        "direct_message_events": [{
            "type": "message_create",
            "id": dm.id.to_string(),
            "created_timestamp": dm.created_ms.to_string(),
            "message_create": {
                "target": {"recipient_id": dm.recipient_id},
                "sender_id": dm.sender_id,
                "message_data": message_data,
            }
        }],
        "users": {dm.sender_id.clone(): legacy(&dm.sender_id), dm.recipient_id.clone(): legacy(&dm.recipient_id)},
    })
}

struct Request {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

async fn route(State(shared): State<Shared<World>>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let request = Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: body_bytes(body).await,
    };
    let segments: Vec<String> = request
        .path
        .trim_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let endpoint = match (request.method.as_str(), segs.as_slice()) {
        ("POST", ["2", "oauth2", "token"]) => Some(XEndpoint::Token),
        ("GET", ["2", "users", "me"]) => Some(XEndpoint::Me),
        ("GET", ["2", "users", _]) | ("GET", ["2", "users", "by", "username", _]) => {
            Some(XEndpoint::Users)
        }
        ("GET", ["2", "dm_events"]) => Some(XEndpoint::DmEvents),
        ("POST", ["2", "dm_conversations", ..]) => Some(XEndpoint::Send),
        ("GET", ["2", "dm_conversations", "media", _, _, _]) => Some(XEndpoint::Media),
        _ => None,
    };
    let mut world = shared.lock();
    let account =
        bearer(&request.headers).and_then(|t| world.access.get(&t).map(|(user, _)| user.clone()));
    let response = match endpoint {
        Some(endpoint) => match take_injection(&mut world.injections, &endpoint) {
            Some(injection) => respond(injection.status, injection.body, &injection.headers),
            None if endpoint == XEndpoint::Token => token_endpoint(&mut world, &request),
            None => handle(&mut world, endpoint, &request, &segs),
        },
        None => match (request.method.as_str(), segs.as_slice()) {
            ("GET", ["i", "oauth2", "authorize"]) => authorize(&mut world, &request),
            ("GET", ["_media", name]) => match world.hosted.get(*name) {
                Some((bytes, mime)) => {
                    let mut response = Response::new(axum::body::Body::from(bytes.clone()));
                    if let Ok(value) = mime.parse() {
                        response
                            .headers_mut()
                            .insert(axum::http::header::CONTENT_TYPE, value);
                    }
                    response
                }
                None => respond(404, problem(404, "Not Found", "no such media"), &[]),
            },
            _ => respond(
                404,
                problem(404, "Not Found Error", "Sorry, that page does not exist."),
                &[],
            ),
        },
    };
    let recorded = Recorded {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        headers: request.headers.clone(),
        body: request.body.clone(),
        account,
        status: response.status().as_u16(),
    };
    match endpoint {
        Some(endpoint) => world.requests.push((endpoint, recorded)),
        None => world.other_requests.push(recorded),
    }
    response
}

fn authorize(world: &mut World, request: &Request) -> Response {
    let query = form(request.query.as_deref().unwrap_or_default().as_bytes());
    let get = |key: &str| query.get(key).cloned().unwrap_or_default();
    if get("client_id") != world.client_id
        || get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
        || !get("scope").split(' ').any(|s| s == "offline.access")
    {
        return respond(
            400,
            json!({"error": "invalid_request", "error_description": "Something is wrong with the authorization request."}).to_string(),
            &[],
        );
    }
    let Some(user) = world.consenting.clone() else {
        return respond(
            400,
            json!({"error": "access_denied", "error_description": "nobody consents (FakeX::consent_as)"}).to_string(),
            &[],
        );
    };
    let n = world.seq();
    let code = token("xcode-", n);
    world.codes.insert(
        code.clone(),
        (user, get("redirect_uri"), get("code_challenge")),
    );
    let mut location = url::Url::parse(&get("redirect_uri"))
        .unwrap_or_else(|_| url::Url::parse("http://invalid.example/").expect("static URL"));
    location
        .query_pairs_mut()
        .append_pair("state", &get("state"))
        .append_pair("code", &code);
    respond(
        302,
        String::new(),
        &[("location".to_owned(), location.into())],
    )
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    respond(
        status,
        json!({"error": error, "error_description": description}).to_string(),
        &[],
    )
}

fn token_endpoint(world: &mut World, request: &Request) -> Response {
    let fields = form(&request.body);
    // Confidential clients authenticate with HTTP Basic; public ones name themselves.
    let client_ok = match &world.client_secret {
        Some(secret) => basic(&request.headers) == Some((world.client_id.clone(), secret.clone())),
        None => fields.get("client_id") == Some(&world.client_id),
    };
    if !client_ok {
        return oauth_error(
            401,
            "unauthorized_client",
            "Missing valid authorization header",
        );
    }
    let user = match fields.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = fields.get("code").cloned().unwrap_or_default();
            let Some((user, redirect, challenge)) = world.codes.remove(&code) else {
                return oauth_error(
                    400,
                    "invalid_request",
                    "Value passed for the authorization code was invalid.",
                );
            };
            let verifier = fields.get("code_verifier").cloned().unwrap_or_default();
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if fields.get("redirect_uri") != Some(&redirect) || computed != challenge {
                return oauth_error(
                    400,
                    "invalid_request",
                    "Value passed for the authorization code was invalid.",
                );
            }
            user
        }
        Some("refresh_token") => {
            let presented = fields.get("refresh_token").cloned().unwrap_or_default();
            // Single use: the token is spent whether or not this answer ever arrives.
            match world.refresh.remove(&presented) {
                Some(user) => {
                    world.refresh_uses.push(RefreshUse {
                        user: Some(user.clone()),
                        accepted: true,
                    });
                    user
                }
                None => {
                    let user = world.issued_refresh.get(&presented).cloned();
                    world.refresh_uses.push(RefreshUse {
                        user,
                        accepted: false,
                    });
                    return oauth_error(
                        400,
                        "invalid_request",
                        "Value passed for the token was invalid.",
                    );
                }
            }
        }
        _ => return oauth_error(400, "unsupported_grant_type", "Unsupported grant type."),
    };
    let (access, refresh) = world.issue(&user);
    respond(
        200,
        json!({"token_type": "bearer", "expires_in": world.access_lifetime, "access_token": access,
               "scope": "dm.read dm.write tweet.read users.read offline.access", "refresh_token": refresh})
        .to_string(),
        &[],
    )
}

fn handle(world: &mut World, endpoint: XEndpoint, request: &Request, segs: &[&str]) -> Response {
    let Some(me) = bearer(&request.headers).and_then(|t| {
        world
            .access
            .get(&t)
            .filter(|(_, expires)| *expires > unix_now())
            .map(|(user, _)| user.clone())
    }) else {
        return unauthorized();
    };
    match endpoint {
        XEndpoint::Token | XEndpoint::Me => {
            respond(200, json!({"data": world.user_json(&me)}).to_string(), &[])
        }
        XEndpoint::Users => {
            let found = match segs {
                ["2", "users", "by", "username", name] => world
                    .users
                    .values()
                    .find(|u| u.username.eq_ignore_ascii_case(name))
                    .map(|u| u.id.clone()),
                ["2", "users", id] => world.users.contains_key(*id).then(|| (*id).to_owned()),
                _ => None,
            };
            match found {
                Some(id) => respond(200, json!({"data": world.user_json(&id)}).to_string(), &[]),
                // X answers a missing user with 200 and `errors`.
                None => respond(
                    200,
                    json!({"errors": [{"value": segs.last(), "detail": format!("Could not find user with username: [{}].", segs.last().unwrap_or(&"")),
                                       "title": "Not Found Error", "resource_type": "user",
                                       "type": "https://api.twitter.com/2/problems/resource-not-found"}]})
                    .to_string(),
                    &[],
                ),
            }
        }
        XEndpoint::DmEvents => dm_events(world, &me, request),
        XEndpoint::Send => send(world, &me, request, segs),
        XEndpoint::Media => {
            let [_, _, _, dm_id, media_id, resource] = segs else {
                return respond(404, problem(404, "Not Found", "no such media"), &[]);
            };
            let found = world.dms.iter().find(|dm| {
                dm.id.to_string() == *dm_id && (dm.sender_id == me || dm.recipient_id == me)
            });
            let media = found
                .and_then(|dm| dm.media_key.as_ref())
                .filter(|key| key.trim_start_matches("3_") == *media_id)
                .and_then(|key| world.media.get(key))
                .filter(|m| m.resource == *resource);
            match media {
                Some(media) => {
                    let mut response = Response::new(axum::body::Body::from(media.bytes.clone()));
                    if let Ok(value) = media.mime.parse() {
                        response
                            .headers_mut()
                            .insert(axum::http::header::CONTENT_TYPE, value);
                    }
                    response
                }
                None => respond(404, problem(404, "Not Found", "no such media"), &[]),
            }
        }
    }
}

fn dm_events(world: &mut World, me: &str, request: &Request) -> Response {
    let (headers, over) = world.window(me, "lookup");
    if over {
        return respond(
            429,
            problem(429, "Too Many Requests", "Too Many Requests"),
            &headers,
        );
    }
    let query = form(request.query.as_deref().unwrap_or_default().as_bytes());
    let max = query
        .get("max_results")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    let offset = match query.get("pagination_token") {
        None => 0,
        Some(token) => match usize::from_str_radix(token, 16) {
            Ok(offset) if token.len() >= 16 => offset,
            _ => {
                return respond(
                    400,
                    json!({"errors": [{"parameters": {"pagination_token": [token]}, "message": "The `pagination_token` query parameter value is not valid"}],
                           "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                           "type": "https://api.twitter.com/2/problems/invalid-request"}).to_string(),
                    &headers,
                );
            }
        },
    };
    let list = |key: &str| -> HashSet<String> {
        query
            .get(key)
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let fields = list("dm_event.fields");
    let expansions = list("expansions");
    let media_fields = list("media.fields");
    let mut mine: Vec<&XDm> = world
        .dms
        .iter()
        .filter(|dm| dm.sender_id == me || dm.recipient_id == me)
        .collect();
    mine.sort_by_key(|dm| std::cmp::Reverse(dm.id));
    let page: Vec<&XDm> = mine.iter().skip(offset).take(max).copied().collect();
    let mut users: Vec<String> = Vec::new();
    let mut media: Vec<Value> = Vec::new();
    let data: Vec<Value> = page
        .iter()
        .map(|dm| {
            let mut event = Map::new();
            event.insert("id".into(), json!(dm.id.to_string()));
            event.insert("event_type".into(), json!("MessageCreate"));
            event.insert("text".into(), json!(dm.text));
            let mut put = |name: &str, value: Value| {
                if fields.contains(name) {
                    event.insert(name.into(), value);
                }
            };
            put("sender_id", json!(dm.sender_id));
            put("dm_conversation_id", json!(dm.conversation_id));
            put("created_at", json!(rfc3339_millis(dm.created_ms)));
            if let Some(key) = &dm.media_key {
                put("attachments", json!({"media_keys": [key]}));
                if expansions.contains("attachments.media_keys")
                    && let Some(stored) = world.media.get(key)
                {
                    let mut item = Map::new();
                    item.insert("media_key".into(), json!(key));
                    item.insert("type".into(), json!("photo"));
                    if media_fields.contains("url") {
                        let media_id = key.trim_start_matches("3_");
                        item.insert(
                            "url".into(),
                            json!(format!(
                                "https://ton.twitter.com/1.1/ton/data/dm/{}/{media_id}/{}",
                                dm.id, stored.resource
                            )),
                        );
                    }
                    media.push(Value::Object(item));
                }
            }
            for id in [&dm.sender_id, &dm.recipient_id] {
                let wanted = (id == &dm.sender_id && expansions.contains("sender_id"))
                    || expansions.contains("participant_ids");
                if wanted && !users.contains(id) {
                    users.push(id.clone());
                }
            }
            Value::Object(event)
        })
        .collect();
    let mut body = Map::new();
    let mut meta = json!({"result_count": data.len()});
    if offset + page.len() < mine.len() {
        meta["next_token"] = json!(format!("{:016X}", offset + page.len()));
    }
    if offset > 0 {
        meta["previous_token"] = json!(format!("{:016X}", offset.saturating_sub(max)));
    }
    if !data.is_empty() {
        body.insert("data".into(), Value::Array(data));
        let mut includes = Map::new();
        if !users.is_empty() {
            includes.insert(
                "users".into(),
                Value::Array(users.iter().map(|id| world.user_json(id)).collect()),
            );
        }
        if !media.is_empty() {
            includes.insert("media".into(), Value::Array(media));
        }
        if !includes.is_empty() {
            body.insert("includes".into(), Value::Object(includes));
        }
    }
    body.insert("meta".into(), meta);
    respond(200, Value::Object(body).to_string(), &headers)
}

fn send(world: &mut World, me: &str, request: &Request, segs: &[&str]) -> Response {
    let other = match segs {
        ["2", "dm_conversations", "with", participant, "messages"] => {
            Some((*participant).to_owned())
        }
        ["2", "dm_conversations", conversation, "messages"] => {
            conversation.split_once('-').and_then(|(a, b)| {
                if a == me {
                    Some(b.to_owned())
                } else if b == me {
                    Some(a.to_owned())
                } else {
                    None
                }
            })
        }
        _ => None,
    };
    let Some(other) = other.filter(|id| world.users.contains_key(id)) else {
        return respond(
            404,
            json!({"title": "Not Found Error", "detail": "Could not find the conversation.", "type": "https://api.twitter.com/2/problems/resource-not-found", "status": 404}).to_string(),
            &[],
        );
    };
    let (headers, over) = world.window(me, "send");
    if over {
        return respond(
            429,
            problem(429, "Too Many Requests", "Too Many Requests"),
            &headers,
        );
    }
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
    let invalid = |message: &str| {
        respond(
            400,
            json!({"errors": [{"parameters": {"text": [text.chars().take(20).collect::<String>()]}, "message": message}],
                   "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                   "type": "https://api.twitter.com/2/problems/invalid-request"}).to_string(),
            &headers,
        )
    };
    if text.is_empty() && body.get("attachments").is_none() {
        return invalid("text: must contain at least 1 character");
    }
    if text.chars().count() > TEXT_LIMIT {
        return invalid("text: must be at most 10000 characters long");
    }
    if world.blocked.contains(&(other.clone(), me.to_owned())) {
        return respond(
            403,
            problem(
                403,
                "Forbidden",
                "You are not allowed to create a Direct Message with this user.",
            ),
            &headers,
        );
    }
    let id = world.next_id;
    world.next_id += 1 + world.seq() % 7;
    let dm = XDm {
        id,
        conversation_id: one_to_one(me, &other),
        sender_id: me.to_owned(),
        recipient_id: other,
        text: text.to_owned(),
        created_ms: unix_millis(),
        media_key: None,
    };
    world.dms.push(dm.clone());
    respond(
        201,
        json!({"data": {"dm_conversation_id": dm.conversation_id, "dm_event_id": dm.id.to_string()}})
            .to_string(),
        &headers,
    )
}

mod control;
