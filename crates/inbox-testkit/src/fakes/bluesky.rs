//! `FakeBluesky`: a stateful fake of a Bluesky PDS with the chat proxy, for adapter tests,
//! end-to-end tests of the real binary, and fidelity checks with the `atproto` Python SDK
//! (`Client(base_url=…)`).
//!
//! It speaks XRPC (`/xrpc/{nsid}`, errors as `{"error", "message"}`):
//! `com.atproto.server.createSession` (app passwords with or without DM access; every login is
//! counted and limited to 30 per 5 minutes per account, as Bluesky does), `refreshSession`
//! (rotating refresh JWTs, the old one valid for a grace period: 2 h by default, as the
//! reference PDS), `com.atproto.identity.resolveHandle`, `app.bsky.actor.getProfile`, and the
//! chat methods `chat.bsky.convo.getLog`, `getConvo`, `getConvoForMembers`, `sendMessage`,
//! `updateRead`, `listConvos` — only with `atproto-proxy: did:web:api.bsky.chat#bsky_chat`
//! (else `400 InvalidRequest`, "No service configured for …", as the PDS answers) and only for
//! sessions of an app password with DM access (else `400 InvalidToken`, "Bad token method").
//! Access JWTs are real three-part JWTs with an `exp` claim (unsigned: the signature part is a
//! placeholder); an expired one answers `400 ExpiredToken`.
//!
//! Log entries are `#logBeginConvo`, `#logCreateMessage` (with `relatedProfiles`) and
//! `#logDeleteMessage`, with revs that sort as strings; any other entry can be appended with
//! [`FakeBluesky::push_log`] to test lenient decoding.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    sync::Arc,
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, response::Response};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::common::{
    Injection, Locked, Recorded, ServerTask, Shared, bearer, body_bytes, form, respond,
    rfc3339_millis, serve, take_injection, token, unix_millis, unix_now,
};

/// The proxy header value the chat methods need.
pub const CHAT_PROXY: &str = "did:web:api.bsky.chat#bsky_chat";
/// The most graphemes a message may have.
pub const GRAPHEME_LIMIT: usize = 1000;
/// The most UTF-8 bytes a message may have.
pub const BYTE_LIMIT: usize = 10_000;

/// The methods failures can be injected into and requests counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlueskyMethod {
    /// `com.atproto.server.createSession`.
    CreateSession,
    /// `com.atproto.server.refreshSession`.
    RefreshSession,
    /// `chat.bsky.convo.getLog`.
    GetLog,
    /// `chat.bsky.convo.sendMessage`.
    SendMessage,
    /// Every other method.
    Other,
}

impl BlueskyMethod {
    fn of(nsid: &str) -> Self {
        match nsid {
            "com.atproto.server.createSession" => BlueskyMethod::CreateSession,
            "com.atproto.server.refreshSession" => BlueskyMethod::RefreshSession,
            "chat.bsky.convo.getLog" => BlueskyMethod::GetLog,
            "chat.bsky.convo.sendMessage" => BlueskyMethod::SendMessage,
            _ => BlueskyMethod::Other,
        }
    }
}

/// An account or user of the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BskyActor {
    /// `did:plc:…`.
    pub did: String,
    /// `alice.bsky.social`.
    pub handle: String,
    /// Display name (may be empty).
    pub display_name: String,
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BskyMessage {
    /// Message id.
    pub id: String,
    /// Its conversation.
    pub convo_id: String,
    /// The sender's DID.
    pub sender: String,
    /// The text.
    pub text: String,
    /// The message replied to.
    pub reply_to: Option<String>,
    /// When, unix milliseconds.
    pub sent_ms: u64,
}

#[derive(Debug, Clone)]
struct Convo {
    id: String,
    members: Vec<String>,
    read_up_to: HashMap<String, Option<String>>,
}

#[derive(Debug)]
struct World {
    actors: BTreeMap<String, BskyActor>,
    passwords: HashMap<String, (String, bool)>,
    access: HashMap<String, (String, u64, bool)>,
    refresh: HashMap<String, (String, Option<u64>, bool)>,
    logins: Vec<(String, u64)>,
    convos: Vec<Convo>,
    messages: Vec<BskyMessage>,
    logs: HashMap<String, Vec<Value>>,
    locked: HashSet<String>,
    injections: Vec<Injection<BlueskyMethod>>,
    requests: Vec<(BlueskyMethod, String, Recorded)>,
    access_lifetime: u64,
    refresh_grace: u64,
    next_rev: u64,
    next_seed: u64,
}

const TID_ALPHABET: &[u8] = b"234567abcdefghijklmnopqrstuvwxyz";

/// A 13-character TID-shaped string of `n` that sorts like `n`.
fn tid(mut n: u64) -> String {
    let mut out = [b'2'; 13];
    for slot in out.iter_mut().rev() {
        *slot = TID_ALPHABET[(n % 32) as usize];
        n /= 32;
    }
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

fn jwt(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"at+jwt","alg":"ES256K"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.ZmFrZS1zaWduYXR1cmU")
}

fn xrpc_error(status: u16, error: &str, message: &str) -> Response {
    respond(
        status,
        json!({"error": error, "message": message}).to_string(),
        &[],
    )
}

impl World {
    fn seq(&mut self) -> u64 {
        self.next_seed += 1;
        self.next_seed
    }

    fn rev(&mut self) -> String {
        self.next_rev += 1;
        tid(self.next_rev)
    }

    fn profile(&self, did: &str) -> Value {
        match self.actors.get(did) {
            Some(actor) => {
                let mut profile = json!({"did": actor.did, "handle": actor.handle});
                if !actor.display_name.is_empty() {
                    profile["displayName"] = json!(actor.display_name);
                }
                profile
            }
            None => json!({"did": did, "handle": "handle.invalid"}),
        }
    }

    fn session(&mut self, did: &str, dm: bool) -> Value {
        let n = self.seq();
        let exp = unix_now() + self.access_lifetime;
        let scope = if dm {
            "com.atproto.appPassPrivileged"
        } else {
            "com.atproto.appPass"
        };
        let access = jwt(
            &json!({"scope": scope, "sub": did, "iat": unix_now(), "exp": exp,
                                 "aud": "did:web:fake.pds", "jti": token("at", n)}),
        );
        let refresh = jwt(
            &json!({"scope": "com.atproto.refresh", "sub": did, "iat": unix_now(),
                                  "exp": unix_now() + 90 * 86_400, "jti": token("rt", n)}),
        );
        self.access
            .insert(access.clone(), (did.to_owned(), exp, dm));
        self.refresh
            .insert(refresh.clone(), (did.to_owned(), None, dm));
        let actor = self.actors.get(did).cloned();
        json!({"accessJwt": access, "refreshJwt": refresh, "did": did,
               "handle": actor.map(|a| a.handle).unwrap_or_default(),
               "email": format!("{}@example.com", did.rsplit(':').next().unwrap_or("x")),
               "emailConfirmed": true, "active": true})
    }

    fn convo_json(&self, convo: &Convo, viewer: &str) -> Value {
        let last = self.messages.iter().rev().find(|m| m.convo_id == convo.id);
        let unread = self
            .messages
            .iter()
            .filter(|m| m.convo_id == convo.id && m.sender != viewer)
            .filter(|m| {
                convo
                    .read_up_to
                    .get(viewer)
                    .and_then(Option::as_ref)
                    .is_none_or(|read| m.id > *read)
            })
            .count();
        let mut view = json!({
            "id": convo.id, "rev": tid(self.next_rev), "muted": false, "status": "accepted",
            "unreadCount": unread,
            "members": convo.members.iter().map(|did| self.profile(did)).collect::<Vec<_>>(),
        });
        if let Some(last) = last {
            view["lastMessage"] = self.message_view(last);
        }
        view
    }

    fn message_view(&self, message: &BskyMessage) -> Value {
        let mut view = json!({"$type": "chat.bsky.convo.defs#messageView", "id": message.id,
                              "rev": message.id, "text": message.text,
                              "sender": {"did": message.sender}, "sentAt": rfc3339_millis(message.sent_ms)});
        if let Some(reply) = &message.reply_to {
            view["replyTo"] = json!({"messageId": reply});
        }
        view
    }

    fn log_for_members(&mut self, convo: &str, entry: impl Fn(&str) -> Value) {
        let members = self
            .convos
            .iter()
            .find(|c| c.id == convo)
            .map(|c| c.members.clone())
            .unwrap_or_default();
        for did in members {
            let entry = entry(&did);
            self.logs.entry(did).or_default().push(entry);
        }
    }

    fn send_message(
        &mut self,
        convo: &str,
        sender: &str,
        text: &str,
        reply_to: Option<String>,
    ) -> BskyMessage {
        let rev = self.rev();
        let message = BskyMessage {
            id: rev.clone(),
            convo_id: convo.to_owned(),
            sender: sender.to_owned(),
            text: text.to_owned(),
            reply_to,
            sent_ms: unix_millis(),
        };
        self.messages.push(message.clone());
        let view = self.message_view(&message);
        let related: Vec<Value> = self
            .convos
            .iter()
            .find(|c| c.id == convo)
            .map(|c| c.members.iter().map(|did| self.profile(did)).collect())
            .unwrap_or_default();
        self.log_for_members(convo, |_| {
            json!({"$type": "chat.bsky.convo.defs#logCreateMessage", "rev": rev, "convoId": convo,
                   "message": view, "relatedProfiles": related})
        });
        message
    }

    fn convo_between(&mut self, a: &str, b: &str, log: bool) -> String {
        if let Some(convo) = self.convos.iter().find(|c| {
            c.members.len() == 2
                && c.members.contains(&a.to_owned())
                && c.members.contains(&b.to_owned())
        }) {
            return convo.id.clone();
        }
        let id = format!("3kconvo{}", tid(1_000_000 + self.seq()));
        self.convos.push(Convo {
            id: id.clone(),
            members: vec![a.to_owned(), b.to_owned()],
            read_up_to: HashMap::new(),
        });
        if log {
            let rev = self.rev();
            let convo = id.clone();
            self.log_for_members(&id, |_| {
                json!({"$type": "chat.bsky.convo.defs#logBeginConvo", "rev": rev, "convoId": convo})
            });
        }
        id
    }
}

/// The fake PDS and its control handle. Cheap to clone; the server stops when the last clone
/// is dropped.
#[derive(Clone)]
pub struct FakeBluesky {
    shared: Shared<World>,
    base_url: String,
    _server: Arc<ServerTask>,
}

impl fmt::Debug for FakeBluesky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeBluesky")
            .field("base_url", &self.base_url)
            .finish()
    }
}

struct Request {
    method: String,
    nsid: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl FakeBluesky {
    /// Starts the server.
    pub async fn start() -> Self {
        let shared: Shared<World> = Arc::new(Locked::new(World {
            actors: BTreeMap::new(),
            passwords: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            logins: Vec::new(),
            convos: Vec::new(),
            messages: Vec::new(),
            logs: HashMap::new(),
            locked: HashSet::new(),
            injections: Vec::new(),
            requests: Vec::new(),
            access_lifetime: 7200,
            refresh_grace: 7200,
            next_rev: 1_000_000_000,
            next_seed: 0,
        }));
        let app = Router::new().fallback(route).with_state(shared.clone());
        let (base_url, task) = serve(app, "FakeBluesky").await;
        FakeBluesky {
            shared,
            base_url,
            _server: Arc::new(task),
        }
    }

    /// `http://127.0.0.1:<port>`: the service (`INBOX_BLUESKY_SERVICE`, the SDK's `base_url`
    /// without `/xrpc`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Registers an account that logs in with `app_password`; `dm_access` says whether that
    /// app password may use chat. Returns its DID.
    pub fn add_account(
        &self,
        handle: &str,
        display_name: &str,
        app_password: &str,
        dm_access: bool,
    ) -> String {
        let did = self.add_user(handle, display_name);
        self.shared
            .lock()
            .passwords
            .insert(did.clone(), (app_password.to_owned(), dm_access));
        did
    }

    /// Registers a user (who can chat, but not log in here). Returns their DID.
    pub fn add_user(&self, handle: &str, display_name: &str) -> String {
        let mut world = self.shared.lock();
        let n = world.seq();
        let did = format!("did:plc:fake{n:06}{}", handle.len());
        world.actors.insert(
            did.clone(),
            BskyActor {
                did: did.clone(),
                handle: handle.to_owned(),
                display_name: display_name.to_owned(),
            },
        );
        did
    }

    /// How long new access JWTs live (default 2 h).
    pub fn set_access_lifetime(&self, lifetime: Duration) {
        self.shared.lock().access_lifetime = lifetime.as_secs();
    }

    /// How long a rotated-out refresh JWT keeps working (default 2 h, as the reference PDS).
    pub fn set_refresh_grace(&self, grace: Duration) {
        self.shared.lock().refresh_grace = grace.as_secs();
    }

    /// Expires every access JWT of `did` at once.
    pub fn expire_access_tokens(&self, did: &str) {
        for (owner, exp, _) in self.shared.lock().access.values_mut() {
            if owner == did {
                *exp = 0;
            }
        }
    }

    /// Revokes every session of `did` (the app password was deleted).
    pub fn revoke_sessions(&self, did: &str) {
        let mut world = self.shared.lock();
        world.access.retain(|_, (owner, _, _)| owner != did);
        world.refresh.retain(|_, (owner, _, _)| owner != did);
        world.passwords.remove(did);
    }

    /// Gets or creates the one-to-one conversation of `a` and `b` (logging its beginning).
    pub fn convo(&self, a: &str, b: &str) -> String {
        self.shared.lock().convo_between(a, b, true)
    }

    /// `from` writes `text` to `to` (in their conversation, created if new).
    pub fn message(&self, from: &str, to: &str, text: &str) -> BskyMessage {
        let mut world = self.shared.lock();
        let convo = world.convo_between(from, to, true);
        world.send_message(&convo, from, text, None)
    }

    /// `did` deletes message `id` for themselves (a `#logDeleteMessage` in their log).
    pub fn delete_for_self(&self, did: &str, id: &str) {
        let mut world = self.shared.lock();
        let Some(message) = world.messages.iter().find(|m| m.id == id).cloned() else {
            return;
        };
        let rev = world.rev();
        let entry = json!({"$type": "chat.bsky.convo.defs#logDeleteMessage", "rev": rev,
                           "convoId": message.convo_id,
                           "message": {"$type": "chat.bsky.convo.defs#deletedMessageView", "id": id,
                                       "rev": rev, "sender": {"did": message.sender},
                                       "sentAt": rfc3339_millis(message.sent_ms)}});
        world.logs.entry(did.to_owned()).or_default().push(entry);
    }

    /// Appends any entry to `did`'s log (its `rev` is set), e.g. a `$type` from the future.
    pub fn push_log(&self, did: &str, mut entry: Value) {
        let mut world = self.shared.lock();
        let rev = world.rev();
        entry["rev"] = json!(rev);
        world.logs.entry(did.to_owned()).or_default().push(entry);
    }

    /// Locks a conversation: sends into it answer `400 ConvoLocked`.
    pub fn lock_convo(&self, convo: &str) {
        self.shared.lock().locked.insert(convo.to_owned());
    }

    /// Every message, oldest first.
    pub fn messages(&self) -> Vec<BskyMessage> {
        self.shared.lock().messages.clone()
    }

    /// How many times `did` logged in (`createSession`).
    pub fn logins(&self, did: &str) -> usize {
        self.shared
            .lock()
            .logins
            .iter()
            .filter(|(who, _)| who == did)
            .count()
    }

    /// Makes the next `times` calls of `method` answer `status` with `body` and headers.
    pub fn inject(
        &self,
        method: BlueskyMethod,
        times: u32,
        status: u16,
        body: &str,
        headers: &[(&str, &str)],
    ) {
        self.shared.lock().injections.push(Injection {
            op: method,
            remaining: times,
            status,
            body: body.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
    }

    /// Makes the next call of `method` answer `429 RateLimitExceeded`, resetting `after` from
    /// now (`ratelimit-reset` and `retry-after`).
    pub fn rate_limit_next(&self, method: BlueskyMethod, after: Duration) {
        let reset = (unix_now() + after.as_secs()).to_string();
        let secs = after.as_secs().to_string();
        self.inject(
            method,
            1,
            429,
            &json!({"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}).to_string(),
            &[
                ("ratelimit-limit", "3000"),
                ("ratelimit-remaining", "0"),
                ("ratelimit-reset", &reset),
                ("retry-after", &secs),
            ],
        );
    }

    /// Every request of `method`, oldest first, with the DID it acted as.
    pub fn requests(&self, method: BlueskyMethod) -> Vec<Recorded> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|(m, _, _)| *m == method)
            .map(|(_, _, r)| r.clone())
            .collect()
    }

    /// Every request to `nsid`, oldest first.
    pub fn requests_to(&self, nsid: &str) -> Vec<Recorded> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|(_, n, _)| n == nsid)
            .map(|(_, _, r)| r.clone())
            .collect()
    }

    /// How many `getLog` calls acted as `did`.
    pub fn polls_by(&self, did: &str) -> usize {
        self.requests(BlueskyMethod::GetLog)
            .iter()
            .filter(|r| r.account.as_deref() == Some(did))
            .count()
    }
}

async fn route(State(shared): State<Shared<World>>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(nsid) = parts.uri.path().strip_prefix("/xrpc/").map(str::to_owned) else {
        return xrpc_error(404, "NotFound", "not an XRPC path");
    };
    let request = Request {
        method: parts.method.to_string(),
        nsid,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: body_bytes(body).await,
    };
    let method = BlueskyMethod::of(&request.nsid);
    let mut world = shared.lock();
    let account = bearer(&request.headers).and_then(|t| {
        world
            .access
            .get(&t)
            .map(|(did, _, _)| did.clone())
            .or_else(|| world.refresh.get(&t).map(|(did, _, _)| did.clone()))
    });
    let response = match take_injection(&mut world.injections, &method) {
        Some(injection) => respond(injection.status, injection.body, &injection.headers),
        None => handle(&mut world, &request),
    };
    let recorded = Recorded {
        method: request.method.clone(),
        path: format!("/xrpc/{}", request.nsid),
        query: request.query.clone(),
        headers: request.headers.clone(),
        body: request.body.clone(),
        account,
        status: response.status().as_u16(),
    };
    world
        .requests
        .push((method, request.nsid.clone(), recorded));
    response
}

fn handle(world: &mut World, request: &Request) -> Response {
    let query = form(request.query.as_deref().unwrap_or_default().as_bytes());
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    match request.nsid.as_str() {
        "com.atproto.server.createSession" => create_session(world, &body),
        "com.atproto.server.refreshSession" => refresh_session(world, request),
        _ => {
            let Some(token) = bearer(&request.headers) else {
                return xrpc_error(401, "AuthMissing", "Authentication Required");
            };
            let Some((did, exp, dm)) = world.access.get(&token).cloned() else {
                return xrpc_error(400, "InvalidToken", "Token could not be verified");
            };
            if exp <= unix_now() {
                return xrpc_error(400, "ExpiredToken", "Token has expired");
            }
            if request.nsid.starts_with("chat.bsky.") {
                if request
                    .headers
                    .get("atproto-proxy")
                    .and_then(|v| v.to_str().ok())
                    != Some(CHAT_PROXY)
                {
                    return xrpc_error(
                        400,
                        "InvalidRequest",
                        &format!("No service configured for {}", request.nsid),
                    );
                }
                if !dm {
                    return xrpc_error(400, "InvalidToken", "Bad token method");
                }
                return chat(world, &did, &request.nsid, &query, &body);
            }
            match request.nsid.as_str() {
                "app.bsky.actor.getProfile" => {
                    let actor = query.get("actor").cloned().unwrap_or_default();
                    let found = world
                        .actors
                        .values()
                        .find(|a| a.did == actor || a.handle == actor)
                        .map(|a| a.did.clone());
                    match found {
                        Some(did) => {
                            let mut profile = world.profile(&did);
                            profile["followersCount"] = json!(0);
                            profile["followsCount"] = json!(0);
                            profile["postsCount"] = json!(0);
                            respond(200, profile.to_string(), &[])
                        }
                        None => xrpc_error(400, "InvalidRequest", "Profile not found"),
                    }
                }
                "com.atproto.identity.resolveHandle" => {
                    let handle = query.get("handle").cloned().unwrap_or_default();
                    match world.actors.values().find(|a| a.handle == handle) {
                        Some(actor) => respond(200, json!({"did": actor.did}).to_string(), &[]),
                        None => xrpc_error(400, "InvalidRequest", "Unable to resolve handle"),
                    }
                }
                _ => xrpc_error(501, "MethodNotImplemented", "Method Not Implemented"),
            }
        }
    }
}

fn create_session(world: &mut World, body: &Value) -> Response {
    let identifier = body
        .get("identifier")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let password = body
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if identifier.is_empty() || password.is_empty() {
        return xrpc_error(
            400,
            "InvalidRequest",
            "Input must have the property \"identifier\"",
        );
    }
    let found = world
        .actors
        .values()
        .find(|a| a.did == identifier || a.handle == identifier)
        .map(|a| a.did.clone());
    let Some((did, dm)) = found.and_then(|did| {
        world
            .passwords
            .get(&did)
            .filter(|(expected, _)| expected == password)
            .map(|(_, dm)| (did.clone(), *dm))
    }) else {
        return xrpc_error(
            401,
            "AuthenticationRequired",
            "Invalid identifier or password",
        );
    };
    // 30 logins per 5 minutes per account (https://docs.bsky.app/docs/advanced-guides/rate-limits).
    let now = unix_now();
    let recent = world
        .logins
        .iter()
        .filter(|(who, at)| *who == did && at + 300 > now)
        .count();
    if recent >= 30 {
        return xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded");
    }
    world.logins.push((did.clone(), now));
    let session = world.session(&did, dm);
    respond(200, session.to_string(), &[])
}

fn refresh_session(world: &mut World, request: &Request) -> Response {
    let Some(token) = bearer(&request.headers) else {
        return xrpc_error(401, "AuthMissing", "Authentication Required");
    };
    let now = unix_now();
    let Some((did, rotated_at, dm)) = world.refresh.get(&token).cloned() else {
        return xrpc_error(400, "ExpiredToken", "Token has been revoked");
    };
    if rotated_at.is_some_and(|at| at + world.refresh_grace <= now) {
        return xrpc_error(400, "ExpiredToken", "Token has been revoked");
    }
    world.refresh.insert(token, (did.clone(), Some(now), dm));
    let session = world.session(&did, dm);
    respond(200, session.to_string(), &[])
}

fn chat(
    world: &mut World,
    did: &str,
    nsid: &str,
    query: &HashMap<String, String>,
    body: &Value,
) -> Response {
    match nsid {
        "chat.bsky.convo.getLog" => {
            let log = world.logs.get(did).cloned().unwrap_or_default();
            let latest = log
                .last()
                .and_then(|e| e["rev"].as_str())
                .map(str::to_owned);
            let entries: Vec<Value> = match query.get("cursor") {
                // Without a cursor: the newest entries and the current position.
                None => log.iter().rev().take(10).rev().cloned().collect(),
                Some(cursor) => log
                    .into_iter()
                    .filter(|e| e["rev"].as_str().is_some_and(|rev| rev > cursor.as_str()))
                    .take(100)
                    .collect(),
            };
            let cursor = entries
                .last()
                .and_then(|e| e["rev"].as_str())
                .map(str::to_owned)
                .or(latest)
                .or_else(|| query.get("cursor").cloned());
            let mut answer = json!({"logs": entries});
            if let Some(cursor) = cursor {
                answer["cursor"] = json!(cursor);
            }
            respond(200, answer.to_string(), &[])
        }
        "chat.bsky.convo.getConvo" => {
            let id = query.get("convoId").cloned().unwrap_or_default();
            match world
                .convos
                .iter()
                .find(|c| c.id == id && c.members.contains(&did.to_owned()))
            {
                Some(convo) => respond(
                    200,
                    json!({"convo": world.convo_json(convo, did)}).to_string(),
                    &[],
                ),
                None => xrpc_error(400, "InvalidConvo", "Convo not found"),
            }
        }
        "chat.bsky.convo.getConvoForMembers" => {
            let member = query.get("members").cloned().unwrap_or_default();
            if !world.actors.contains_key(&member) {
                return xrpc_error(400, "RecipientNotFound", "recipient not found");
            }
            let id = world.convo_between(did, &member, true);
            let convo = world
                .convos
                .iter()
                .find(|c| c.id == id)
                .cloned()
                .expect("created");
            respond(
                200,
                json!({"convo": world.convo_json(&convo, did)}).to_string(),
                &[],
            )
        }
        "chat.bsky.convo.listConvos" => {
            let convos: Vec<Value> = world
                .convos
                .iter()
                .filter(|c| c.members.contains(&did.to_owned()))
                .map(|c| world.convo_json(c, did))
                .collect();
            respond(200, json!({"convos": convos}).to_string(), &[])
        }
        "chat.bsky.convo.sendMessage" => {
            let convo = body
                .get("convoId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let text = body
                .pointer("/message/text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !world
                .convos
                .iter()
                .any(|c| c.id == convo && c.members.contains(&did.to_owned()))
            {
                return xrpc_error(400, "InvalidConvo", "Convo not found");
            }
            let graphemes = unicode_graphemes(text);
            if graphemes > GRAPHEME_LIMIT {
                return xrpc_error(
                    400,
                    "InvalidRequest",
                    &format!(
                        "Input/message/text must not be longer than {GRAPHEME_LIMIT} graphemes"
                    ),
                );
            }
            if text.len() > BYTE_LIMIT {
                return xrpc_error(
                    400,
                    "InvalidRequest",
                    &format!("Input/message/text must not be longer than {BYTE_LIMIT} characters"),
                );
            }
            if world.locked.contains(&convo) {
                return xrpc_error(400, "ConvoLocked", "convo is locked");
            }
            let reply_to = body
                .pointer("/message/replyTo/messageId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let message = world.send_message(&convo, did, text, reply_to);
            let mut view = world.message_view(&message);
            if let Some(object) = view.as_object_mut() {
                object.remove("$type");
            }
            respond(200, view.to_string(), &[])
        }
        "chat.bsky.convo.updateRead" => {
            let id = body
                .get("convoId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let up_to = body
                .get("messageId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let Some(index) = world
                .convos
                .iter()
                .position(|c| c.id == id && c.members.contains(&did.to_owned()))
            else {
                return xrpc_error(400, "InvalidConvo", "Convo not found");
            };
            let latest = world
                .messages
                .iter()
                .rev()
                .find(|m| m.convo_id == id)
                .map(|m| m.id.clone());
            world.convos[index]
                .read_up_to
                .insert(did.to_owned(), up_to.or(latest));
            let convo = world.convos[index].clone();
            respond(
                200,
                json!({"convo": world.convo_json(&convo, did)}).to_string(),
                &[],
            )
        }
        _ => xrpc_error(501, "MethodNotImplemented", "Method Not Implemented"),
    }
}

/// Grapheme clusters, as the lexicon's `maxGraphemes` counts them.
fn unicode_graphemes(text: &str) -> usize {
    unicode_segmentation::UnicodeSegmentation::graphemes(text, true).count()
}

mod control;
