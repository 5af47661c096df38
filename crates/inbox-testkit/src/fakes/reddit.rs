//! `FakeReddit`: a stateful fake of Reddit's OAuth token endpoint (`www`) and the private-
//! message parts of its API (`oauth`), for adapter tests, end-to-end tests of the real binary,
//! and fidelity checks with PRAW (`praw.Reddit(oauth_url=…, reddit_url=…)`).
//!
//! One server plays both hosts (their paths do not overlap): `POST /api/v1/access_token` (HTTP
//! Basic client auth, `grant_type=refresh_token|authorization_code`, `expires_in`, and
//! `{"error": "invalid_grant"}` for a dead token), `GET /api/v1/authorize` (consent at once as
//! the chosen user, then a `302`), `GET /api/v1/me`, `GET /api/v1/me/prefs` (PRAW asks for
//! nothing else at start), `GET /message/{inbox,unread,sent,messages}` (Listings newest first
//! with `limit`, `after`, `before`, `mark`; `mark=true` marks read), `POST /api/comment`,
//! `/api/compose`, `/api/read_message`, `/api/unread_message`, `api_type=json` error lists
//! (`TOO_LONG`, `USER_DOESNT_EXIST`, `NOT_WHITELISTED_BY_USER_MESSAGE`), HTTP errors as
//! `{"message", "error"}`, and `X-Ratelimit-Used/Remaining/Reset` on every API answer, counted
//! per OAuth client over a 10-minute window as Reddit does.
//!
//! It records every request with its User-Agent and the user it acted as, so tests can check
//! that every call identified itself and that reading the inbox never marked anything read.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    sync::Arc,
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, response::Response};
use serde_json::{Value, json};

use super::common::{
    Injection, Locked, Recorded, ServerTask, Shared, basic, bearer, body_bytes, form, respond,
    serve, take_injection, token, unix_now,
};

/// Reddit's limit on a message body.
pub const TEXT_LIMIT: usize = 10_000;
/// The OAuth client id the fake knows unless told otherwise.
pub const CLIENT_ID: &str = "fake-reddit-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "fake-reddit-secret";

/// The endpoint groups failures can be injected into and requests counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedditEndpoint {
    /// `POST /api/v1/access_token`.
    Token,
    /// `GET /api/v1/me` (and `/prefs`).
    Me,
    /// `GET /message/…`.
    Listing,
    /// `POST /api/comment` and `/api/compose`.
    Send,
    /// `POST /api/read_message` and `/api/unread_message`.
    Read,
}

/// A private message.
#[derive(Debug, Clone, PartialEq)]
pub struct RedditMessage {
    /// The base-36 id (`name` is `t4_` + id).
    pub id: String,
    /// The author's username.
    pub author: String,
    /// The recipient's username.
    pub dest: String,
    /// The subject.
    pub subject: String,
    /// The markdown body.
    pub body: String,
    /// Unix seconds.
    pub created_utc: f64,
    /// The thread root's fullname (`None` on the root).
    pub first_message_name: Option<String>,
    /// The fullname of the message replied to.
    pub parent_id: Option<String>,
    /// Whether the recipient has not read it.
    pub new: bool,
}

impl RedditMessage {
    /// `t4_{id}`.
    pub fn name(&self) -> String {
        format!("t4_{}", self.id)
    }
}

#[derive(Debug)]
struct World {
    client_id: String,
    client_secret: String,
    users: BTreeMap<String, String>,
    refresh: HashMap<String, String>,
    access: HashMap<String, (String, u64)>,
    codes: HashMap<String, (String, String)>,
    consenting: Option<String>,
    messages: Vec<RedditMessage>,
    comments: Vec<Value>,
    blocked: HashSet<(String, String)>,
    injections: Vec<Injection<RedditEndpoint>>,
    requests: Vec<(RedditEndpoint, Recorded)>,
    other_requests: Vec<Recorded>,
    window: (u64, u32),
    window_limit: u32,
    expires_in: u64,
    next_id: u64,
    next_seed: u64,
    last_created: f64,
}

fn to_base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

impl World {
    fn seq(&mut self) -> u64 {
        self.next_seed += 1;
        self.next_seed
    }

    /// Now, in Reddit's float seconds, strictly later than anything created before, so the
    /// listings' date order is the creation order.
    fn created_now(&mut self) -> f64 {
        let now = (super::common::unix_millis() as f64 / 1000.0).max(self.last_created + 0.001);
        self.last_created = now;
        now
    }

    fn message_json(&self, message: &RedditMessage) -> Value {
        let first = message
            .first_message_name
            .as_ref()
            .and_then(|name| u64::from_str_radix(name.trim_start_matches("t4_"), 36).ok());
        json!({"kind": "t4", "data": {
            "id": message.id, "name": message.name(), "author": message.author,
            "author_fullname": format!("t2_{}", message.author.len()), "dest": message.dest,
            "subject": message.subject, "body": message.body,
            "body_html": format!("&lt;div class=\"md\"&gt;&lt;p&gt;{}&lt;/p&gt;&lt;/div&gt;", message.body),
            "created": message.created_utc, "created_utc": message.created_utc,
            "first_message": first, "first_message_name": message.first_message_name,
            "parent_id": message.parent_id, "new": message.new, "was_comment": false,
            "type": "unknown", "context": "", "subreddit": null, "subreddit_name_prefixed": null,
            "distinguished": null, "replies": "", "likes": null, "score": 0, "num_comments": null,
            "associated_awarding_id": null
        }})
    }

    fn add_message(
        &mut self,
        author: &str,
        dest: &str,
        subject: &str,
        body: &str,
        parent: Option<&RedditMessage>,
    ) -> RedditMessage {
        self.next_id += 1 + self.seq() % 5;
        let message = RedditMessage {
            id: to_base36(self.next_id),
            author: author.to_owned(),
            dest: dest.to_owned(),
            subject: subject.to_owned(),
            body: body.to_owned(),
            created_utc: self.created_now(),
            first_message_name: parent
                .map(|p| p.first_message_name.clone().unwrap_or_else(|| p.name())),
            parent_id: parent.map(RedditMessage::name),
            new: true,
        };
        self.messages.push(message.clone());
        message
    }

    /// The usage headers of one more API call by this client.
    fn usage(&mut self) -> Vec<(String, String)> {
        let now = unix_now();
        if now >= self.window.0 {
            self.window = (now + 600, 0);
        }
        self.window.1 += 1;
        vec![
            ("x-ratelimit-used".into(), self.window.1.to_string()),
            (
                "x-ratelimit-remaining".into(),
                format!(
                    "{:.1}",
                    self.window_limit.saturating_sub(self.window.1) as f64
                ),
            ),
            (
                "x-ratelimit-reset".into(),
                self.window.0.saturating_sub(now).to_string(),
            ),
        ]
    }
}

/// The fake Reddit and its control handle. Cheap to clone; the server stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct FakeReddit {
    shared: Shared<World>,
    base_url: String,
    _server: Arc<ServerTask>,
}

impl fmt::Debug for FakeReddit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeReddit")
            .field("base_url", &self.base_url)
            .finish()
    }
}

fn http_error(status: u16, message: &str) -> Response {
    respond(
        status,
        json!({"message": message, "error": status}).to_string(),
        &[],
    )
}

fn api_errors(errors: Value, headers: &[(String, String)]) -> Response {
    respond(
        200,
        json!({"json": {"errors": errors}}).to_string(),
        headers,
    )
}

struct Request {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl FakeReddit {
    /// Starts the server for the client [`CLIENT_ID`] / [`CLIENT_SECRET`].
    pub async fn start() -> Self {
        Self::start_with(CLIENT_ID, CLIENT_SECRET).await
    }

    /// Starts the server for the given OAuth client (an empty secret: an installed app).
    pub async fn start_with(client_id: &str, client_secret: &str) -> Self {
        let shared: Shared<World> = Arc::new(Locked::new(World {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            users: BTreeMap::new(),
            refresh: HashMap::new(),
            access: HashMap::new(),
            codes: HashMap::new(),
            consenting: None,
            messages: Vec::new(),
            comments: Vec::new(),
            blocked: HashSet::new(),
            injections: Vec::new(),
            requests: Vec::new(),
            other_requests: Vec::new(),
            window: (0, 0),
            window_limit: 1000,
            expires_in: 86_400,
            next_id: 5_988_173_000,
            next_seed: 0,
            last_created: 0.0,
        }));
        let app = Router::new().fallback(route).with_state(shared.clone());
        let (base_url, task) = serve(app, "FakeReddit").await;
        FakeReddit {
            shared,
            base_url,
            _server: Arc::new(task),
        }
    }

    /// `http://127.0.0.1:<port>`: both `INBOX_REDDIT_WWW_BASE` and `INBOX_REDDIT_API_BASE`
    /// (PRAW's `reddit_url` and `oauth_url`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Registers a user with a display name and returns a refresh token of theirs (as a
    /// `duration=permanent` grant would).
    pub fn add_user(&self, username: &str, display_name: &str) -> String {
        let mut world = self.shared.lock();
        world
            .users
            .insert(username.to_owned(), display_name.to_owned());
        let n = world.seq();
        let refresh = token("rrt-", n);
        world.refresh.insert(refresh.clone(), username.to_owned());
        refresh
    }

    /// Whom the authorization page consents as.
    pub fn consent_as(&self, username: &str) {
        self.shared.lock().consenting = Some(username.to_owned());
    }

    /// The `expires_in` of new access tokens (default 86400, as observed in 2025–2026).
    pub fn set_expires_in(&self, secs: u64) {
        self.shared.lock().expires_in = secs;
    }

    /// Makes every access token of `user` expired.
    pub fn expire_access_tokens(&self, user: &str) {
        for (owner, expires) in self.shared.lock().access.values_mut() {
            if owner == user {
                *expires = 0;
            }
        }
    }

    /// Revokes every token of `user`: API calls answer `401`, refreshes `invalid_grant`.
    pub fn revoke_user(&self, user: &str) {
        let mut world = self.shared.lock();
        world.access.retain(|_, (owner, _)| owner != user);
        world.refresh.retain(|_, owner| owner != user);
    }

    /// `recipient` refuses messages from `sender`.
    pub fn block(&self, recipient: &str, sender: &str) {
        self.shared
            .lock()
            .blocked
            .insert((recipient.to_owned(), sender.to_owned()));
    }

    /// `from` starts a thread with `to`.
    pub fn compose(&self, from: &str, to: &str, subject: &str, body: &str) -> RedditMessage {
        self.shared
            .lock()
            .add_message(from, to, subject, body, None)
    }

    /// `from` replies to the message `parent` (a fullname), in its thread.
    ///
    /// # Panics
    /// When there is no such message.
    pub fn reply(&self, from: &str, parent: &str, body: &str) -> RedditMessage {
        let mut world = self.shared.lock();
        let parent = world
            .messages
            .iter()
            .find(|m| m.name() == parent)
            .cloned()
            .unwrap_or_else(|| panic!("FakeReddit: no message {parent}"));
        let to = if parent.author == from {
            parent.dest.clone()
        } else {
            parent.author.clone()
        };
        let subject = format!("re: {}", parent.subject.trim_start_matches("re: "));
        world.add_message(from, &to, &subject, body, Some(&parent))
    }

    /// A comment reply (`t1`) in `to`'s inbox, which is not a private message.
    pub fn comment_reply(&self, from: &str, to: &str, body: &str) {
        let mut world = self.shared.lock();
        let n = world.seq();
        let now = world.created_now();
        world.comments.push(json!({"kind": "t1", "data": {
            "id": format!("c{n}"), "name": format!("t1_c{n}"), "author": from, "dest": to,
            "body": body, "created_utc": now, "was_comment": true, "subreddit": "rust",
            "context": format!("/r/rust/comments/x/y/c{n}/"), "new": true}}));
    }

    /// Every message, oldest first.
    pub fn messages(&self) -> Vec<RedditMessage> {
        self.shared.lock().messages.clone()
    }

    /// Makes the next `times` calls to `endpoint` answer `status` with `body` and headers.
    pub fn inject(
        &self,
        endpoint: RedditEndpoint,
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

    /// Makes the next call to `endpoint` answer `429`, its window resetting `after` from now.
    pub fn rate_limit_next(&self, endpoint: RedditEndpoint, after: Duration) {
        let secs = after.as_secs().to_string();
        self.inject(
            endpoint,
            1,
            429,
            &json!({"message": "Too Many Requests", "error": 429}).to_string(),
            &[
                ("x-ratelimit-used", "1000"),
                ("x-ratelimit-remaining", "0.0"),
                ("x-ratelimit-reset", &secs),
            ],
        );
    }

    /// Every request to `endpoint`, oldest first.
    pub fn requests(&self, endpoint: RedditEndpoint) -> Vec<Recorded> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|(e, _)| *e == endpoint)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Every request of any kind, oldest first.
    pub fn all_requests(&self) -> Vec<Recorded> {
        let world = self.shared.lock();
        world
            .requests
            .iter()
            .map(|(_, r)| r.clone())
            .chain(world.other_requests.iter().cloned())
            .collect()
    }

    /// How many inbox listings acted as `user`.
    pub fn polls_by(&self, user: &str) -> usize {
        self.requests(RedditEndpoint::Listing)
            .iter()
            .filter(|r| r.account.as_deref() == Some(user) && r.path == "/message/inbox")
            .count()
    }
}

async fn route(State(shared): State<Shared<World>>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let request = Request {
        method: parts.method.to_string(),
        path: parts.uri.path().trim_end_matches('/').to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: body_bytes(body).await,
    };
    let endpoint = match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/api/v1/access_token") => Some(RedditEndpoint::Token),
        ("GET", "/api/v1/me" | "/api/v1/me/prefs") => Some(RedditEndpoint::Me),
        ("GET", path) if path.starts_with("/message/") => Some(RedditEndpoint::Listing),
        ("POST", "/api/comment" | "/api/compose") => Some(RedditEndpoint::Send),
        ("POST", "/api/read_message" | "/api/unread_message") => Some(RedditEndpoint::Read),
        _ => None,
    };
    let mut world = shared.lock();
    let account = bearer(&request.headers).and_then(|t| {
        world
            .access
            .get(&t)
            .filter(|(_, expires)| *expires > unix_now())
            .map(|(u, _)| u.clone())
    });
    let response = match endpoint {
        Some(endpoint) => match take_injection(&mut world.injections, &endpoint) {
            Some(injection) => respond(injection.status, injection.body, &injection.headers),
            None if endpoint == RedditEndpoint::Token => token_endpoint(&mut world, &request),
            None => match &account {
                None => http_error(401, "Unauthorized"),
                Some(user) => {
                    let user = user.clone();
                    let usage = world.usage();
                    api(&mut world, endpoint, &user, &request, usage)
                }
            },
        },
        None if request.method == "GET" && request.path == "/api/v1/authorize" => {
            authorize(&mut world, &request)
        }
        None => http_error(404, "Not Found"),
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
    let (Some(user), true) = (
        world.consenting.clone(),
        get("client_id") == world.client_id && get("response_type") == "code",
    ) else {
        return http_error(400, "invalid request to /api/v1/authorize");
    };
    let n = world.seq();
    let code = token("rcode-", n);
    world
        .codes
        .insert(code.clone(), (user, get("redirect_uri")));
    let mut location = url::Url::parse(&get("redirect_uri"))
        .unwrap_or_else(|_| url::Url::parse("http://invalid.example/").expect("static URL"));
    location
        .query_pairs_mut()
        .append_pair("state", &get("state"))
        .append_pair("code", &code);
    respond(302, String::new(), &[("location".into(), location.into())])
}

fn token_endpoint(world: &mut World, request: &Request) -> Response {
    if basic(&request.headers) != Some((world.client_id.clone(), world.client_secret.clone())) {
        return http_error(401, "Unauthorized");
    }
    let fields = form(&request.body);
    let (user, refresh) = match fields.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            let presented = fields.get("refresh_token").cloned().unwrap_or_default();
            match world.refresh.get(&presented) {
                Some(user) => (user.clone(), None),
                // Reddit answers a dead refresh token with 200 and an error member.
                None => return respond(200, json!({"error": "invalid_grant"}).to_string(), &[]),
            }
        }
        Some("authorization_code") => {
            let code = fields.get("code").cloned().unwrap_or_default();
            match world.codes.remove(&code) {
                Some((user, redirect)) if fields.get("redirect_uri") == Some(&redirect) => {
                    let n = world.seq();
                    let refresh = token("rrt-", n);
                    world.refresh.insert(refresh.clone(), user.clone());
                    (user, Some(refresh))
                }
                _ => return respond(200, json!({"error": "invalid_grant"}).to_string(), &[]),
            }
        }
        _ => {
            return respond(
                200,
                json!({"error": "unsupported_grant_type"}).to_string(),
                &[],
            );
        }
    };
    let n = world.seq();
    let access = token("rat-", n);
    let expires = world.expires_in;
    world
        .access
        .insert(access.clone(), (user, unix_now() + expires));
    let mut answer = json!({"access_token": access, "token_type": "bearer", "expires_in": expires,
                            "scope": "identity privatemessages"});
    if let Some(refresh) = refresh {
        answer["refresh_token"] = json!(refresh);
    }
    respond(200, answer.to_string(), &[])
}

fn api(
    world: &mut World,
    endpoint: RedditEndpoint,
    user: &str,
    request: &Request,
    usage: Vec<(String, String)>,
) -> Response {
    let ok = |body: Value, usage: &[(String, String)]| respond(200, body.to_string(), usage);
    match endpoint {
        RedditEndpoint::Token => http_error(500, "unexpected"),
        RedditEndpoint::Me if request.path.ends_with("/prefs") => ok(json!({}), &usage),
        RedditEndpoint::Me => {
            let title = world.users.get(user).cloned().unwrap_or_default();
            ok(
                json!({"name": user, "id": format!("u{}", user.len()), "icon_img": "",
                       "subreddit": {"title": title, "display_name": format!("u_{user}")},
                       "has_mail": false, "inbox_count": 0, "created_utc": 1_400_000_000.0}),
                &usage,
            )
        }
        RedditEndpoint::Listing => listing(world, user, request, usage),
        RedditEndpoint::Send => {
            let fields = form(&request.body);
            let text = fields.get("text").cloned().unwrap_or_default();
            if text.chars().count() > TEXT_LIMIT {
                return api_errors(
                    json!([[
                        "TOO_LONG",
                        format!("this is too long (max: {TEXT_LIMIT})"),
                        "text"
                    ]]),
                    &usage,
                );
            }
            if text.trim().is_empty() {
                return api_errors(
                    json!([["NO_TEXT", "we need something here", "text"]]),
                    &usage,
                );
            }
            if request.path == "/api/compose" {
                let to = fields.get("to").cloned().unwrap_or_default();
                let subject = fields.get("subject").cloned().unwrap_or_default();
                if !world.users.contains_key(&to) {
                    return api_errors(
                        json!([["USER_DOESNT_EXIST", "that user doesn't exist", "to"]]),
                        &usage,
                    );
                }
                if subject.is_empty() || subject.chars().count() > 100 {
                    return api_errors(
                        json!([["NO_SUBJECT", "please enter a subject", "subject"]]),
                        &usage,
                    );
                }
                if world.blocked.contains(&(to.clone(), user.to_owned())) {
                    return api_errors(
                        json!([[
                            "NOT_WHITELISTED_BY_USER_MESSAGE",
                            "You can't send a message to that user.",
                            "to"
                        ]]),
                        &usage,
                    );
                }
                world.add_message(user, &to, &subject, &text, None);
                return ok(json!({"json": {"errors": []}}), &usage);
            }
            let thing = fields.get("thing_id").cloned().unwrap_or_default();
            let Some(parent) = world
                .messages
                .iter()
                .find(|m| m.name() == thing && (m.author == user || m.dest == user))
                .cloned()
            else {
                return api_errors(
                    json!([["INVALID_ID", "that message doesn't exist", "thing_id"]]),
                    &usage,
                );
            };
            let to = if parent.author == user {
                parent.dest.clone()
            } else {
                parent.author.clone()
            };
            if world.blocked.contains(&(to.clone(), user.to_owned())) {
                return api_errors(
                    json!([[
                        "NOT_WHITELISTED_BY_USER_MESSAGE",
                        "You can't send a message to that user.",
                        "parent"
                    ]]),
                    &usage,
                );
            }
            let subject = format!("re: {}", parent.subject.trim_start_matches("re: "));
            let mut reply = world.add_message(user, &to, &subject, &text, Some(&parent));
            reply.new = false;
            let thing = world.message_json(&reply);
            ok(
                json!({"json": {"errors": [], "data": {"things": [thing]}}}),
                &usage,
            )
        }
        RedditEndpoint::Read => {
            let fields = form(&request.body);
            let unread = request.path.ends_with("unread_message");
            let ids: Vec<String> = fields
                .get("id")
                .map(|ids| ids.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            for message in &mut world.messages {
                if message.dest == user && ids.contains(&message.name()) {
                    message.new = unread;
                }
            }
            ok(json!({}), &usage)
        }
    }
}

fn listing(
    world: &mut World,
    user: &str,
    request: &Request,
    usage: Vec<(String, String)>,
) -> Response {
    let query = form(request.query.as_deref().unwrap_or_default().as_bytes());
    let which = request.path.trim_start_matches("/message/");
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 100);
    let mut items: Vec<(f64, String, Value)> = Vec::new();
    for message in &world.messages {
        let include = match which {
            "inbox" | "messages" => message.dest == user,
            "unread" => message.dest == user && message.new,
            "sent" => message.author == user,
            _ => return http_error(404, "Not Found"),
        };
        if include {
            items.push((
                message.created_utc,
                message.name(),
                world.message_json(message),
            ));
        }
    }
    if matches!(which, "inbox" | "unread") {
        for comment in &world.comments {
            let data = &comment["data"];
            if data["dest"] == user && (which == "inbox" || data["new"] == true) {
                items.push((
                    data["created_utc"].as_f64().unwrap_or_default(),
                    data["name"].as_str().unwrap_or_default().to_owned(),
                    comment.clone(),
                ));
            }
        }
    }
    // Newest first, ties by id (later ids are newer).
    items.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| b.1.len().cmp(&a.1.len()).then_with(|| b.1.cmp(&a.1)))
    });
    let start = match query.get("after") {
        Some(after) => match items.iter().position(|(_, name, _)| name == after) {
            Some(index) => index + 1,
            None => items.len(),
        },
        None => 0,
    };
    let end = match query.get("before") {
        Some(before) => items
            .iter()
            .position(|(_, name, _)| name == before)
            .unwrap_or(0),
        None => items.len(),
    };
    let (from, to) = if query.contains_key("before") {
        (end.saturating_sub(limit), end)
    } else {
        (start, (start + limit).min(items.len()))
    };
    let page: Vec<(f64, String, Value)> = items[from.min(to)..to].to_vec();
    let after = (to < items.len() && !page.is_empty()).then(|| page.last().map(|p| p.1.clone()));
    let before = (from > 0 && !page.is_empty()).then(|| page.first().map(|p| p.1.clone()));
    if query.get("mark").map(String::as_str) == Some("true") {
        let names: HashSet<String> = page.iter().map(|p| p.1.clone()).collect();
        for message in &mut world.messages {
            if names.contains(&message.name()) {
                message.new = false;
            }
        }
    }
    let children: Vec<Value> = page.into_iter().map(|p| p.2).collect();
    respond(
        200,
        json!({"kind": "Listing", "data": {"after": after.flatten(), "before": before.flatten(),
               "dist": children.len(), "modhash": null, "geo_filter": "", "children": children}})
        .to_string(),
        &usage,
    )
}

mod control;
