//! What the fake Meta servers ([`FakeGraph`](super::graph::FakeGraph) for Facebook and
//! WhatsApp, [`FakeInstagram`](super::instagram::FakeInstagram)) share: reading requests the
//! way Graph does (token in `Authorization: Bearer` or `access_token`, parameters in the query,
//! a JSON body or a form), the Graph error envelope, usage headers, injected failures and
//! throttling, signed webhook deliveries with Meta's escaped-unicode bodies, and the
//! Messenger-Platform business (a Page or an Instagram account) that Instagram and Messenger
//! have in common: its users, its 24-hour window, its Send API and its webhook events.
//!
//! The wire formats follow `shared/reference/platforms-meta.md`; where a fact is UNCONFIRMED
//! there, the fake picks one plausible form and says so.
// Handlers return ready-made axum `Response`s as errors; their size is irrelevant in a
// test server.
#![allow(clippy::result_large_err)]

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt::Write as _,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Bytes,
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// Webhook delivery attempts before a delivery is given up (Meta retries for hours; tests
/// need an answer in milliseconds).
const DELIVERY_ATTEMPTS: u32 = 3;

/// A fake's loopback listener, its base URL, and the client its webhooks go out with.
pub(crate) struct Listener {
    pub(crate) listener: tokio::net::TcpListener,
    pub(crate) base_url: String,
    pub(crate) http: reqwest::Client,
}

/// Binds `127.0.0.1:0` for the fake called `name`.
pub(crate) async fn listen(name: &str) -> Listener {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|err| panic!("{name}: cannot bind 127.0.0.1:0: {err}"));
    let base_url = format!("http://{}", listener.local_addr().expect("bound address"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the fake's HTTP client");
    Listener {
        listener,
        base_url,
        http,
    }
}

/// A fake's server task, stopped when the last handle of the fake is dropped.
pub(crate) struct ServerTask(tokio::task::JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `app` on `listener` until the returned task is dropped.
pub(crate) fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> std::sync::Arc<ServerTask> {
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    std::sync::Arc::new(ServerTask(task))
}

/// The conformance suite's operations as the Meta fakes count them.
pub(crate) fn meta_op(op: crate::conformance::Operation) -> Option<MetaOp> {
    use crate::conformance::Operation;
    match op {
        Operation::Connect => Some(MetaOp::Connect),
        Operation::Send => Some(MetaOp::Send),
        Operation::FetchAttachment => Some(MetaOp::MediaInfo),
        Operation::Poll => None,
    }
}

/// The error the suite's `fail_next` injects: Graph's code 2 (temporary) for server errors,
/// 100 otherwise.
pub(crate) fn injected_failure(status: u16, message: &str) -> Injected {
    Injected::Error {
        status,
        code: if status >= 500 { 2 } else { 100 },
        subcode: None,
        message: message.to_owned(),
    }
}

/// The current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The `X-Hub-Signature-256` value of `body` signed with `secret`.
pub fn hub_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    let mut out = String::from("sha256=");
    for byte in mac.finalize().into_bytes() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Serialises JSON the way Meta sends webhooks: every non-ASCII character as a `\uXXXX`
/// escape (surrogate pairs beyond the BMP), which is also what Meta signs.
pub fn meta_json(value: &Value) -> Vec<u8> {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out.into_bytes()
}

/// A Graph error answer: `{"error": {message, type, code, error_subcode?, is_transient,
/// fbtrace_id}}` plus `extra` fields (WhatsApp's `error_data`).
pub fn graph_error(
    status: u16,
    code: i64,
    subcode: Option<i64>,
    message: &str,
    extra: Option<Value>,
) -> Response {
    let mut error = json!({
        "message": message,
        "type": if code == 190 { "OAuthException" } else { "GraphMethodException" },
        "code": code,
        "is_transient": status >= 500,
        "fbtrace_id": "AFakeTrace",
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    if let Some(Value::Object(extra)) = extra {
        for (key, value) in extra {
            error[key] = value;
        }
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, axum::Json(json!({"error": error}))).into_response();
    // Graph answers errors with this header too (and clients use it to spot Graph errors).
    response.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_static("OAuth \"Facebook Platform\""),
    );
    response
}

/// The answer to a call without a valid token.
pub fn invalid_token(subcode: Option<i64>) -> Response {
    graph_error(
        401,
        190,
        subcode,
        "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.",
        None,
    )
}

/// A JSON success with the usage headers Meta adds once an app has made calls.
pub fn ok_json(value: Value, calls: usize) -> Response {
    let mut response = axum::Json(value).into_response();
    let pct = (calls % 50) as u64;
    if let Ok(usage) = HeaderValue::from_str(&format!(
        r#"{{"call_count":{pct},"total_cputime":1,"total_time":1}}"#
    )) {
        response.headers_mut().insert("x-app-usage", usage);
    }
    response
}

/// The calls failures can be injected into and counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaOp {
    /// Reading the account (`GET /me`, `GET /{page-id}`, `GET /{phone-number-id}`).
    Connect,
    /// Sending a message.
    Send,
    /// `sender_action: mark_seen` / WhatsApp `status: read`.
    MarkRead,
    /// Profile lookups (`GET /{PSID|IGSID}`).
    Profile,
    /// `subscribed_apps`.
    Subscribe,
    /// `GET /{media-id}` (WhatsApp).
    MediaInfo,
    /// Downloading media bytes.
    MediaDownload,
    /// Token exchanges (`ig_exchange_token`, `fb_exchange_token`, the OAuth code exchange).
    TokenExchange,
    /// `ig_refresh_token`.
    TokenRefresh,
}

/// What an injected failure answers.
#[derive(Debug, Clone)]
pub enum Injected {
    /// A Graph error with this HTTP status, code, subcode and message.
    Error {
        /// HTTP status.
        status: u16,
        /// Graph code.
        code: i64,
        /// Graph subcode.
        subcode: Option<i64>,
        /// Message.
        message: String,
    },
    /// A throttling error (`code`, e.g. 4, 613, 80006, 130429) with `Retry-After` and the
    /// business-use-case usage header's `estimated_time_to_regain_access` (minutes, rounded
    /// up): Meta documents the header; whether it also sends `Retry-After` is UNCONFIRMED.
    Throttle {
        /// Graph code.
        code: i64,
        /// When calls succeed again.
        retry_after: Duration,
    },
}

impl Injected {
    /// The answer.
    pub fn response(&self) -> Response {
        match self {
            Injected::Error {
                status,
                code,
                subcode,
                message,
            } => graph_error(*status, *code, *subcode, message, None),
            Injected::Throttle { code, retry_after } => {
                let status = if *code == 130_429 || *code == 131_056 {
                    429
                } else {
                    400
                };
                let mut response = graph_error(
                    status,
                    *code,
                    None,
                    &format!("({code}) Application request limit reached"),
                    None,
                );
                let seconds = retry_after.as_secs();
                let minutes = seconds.div_ceil(60).max(1);
                let usage = format!(
                    r#"{{"0":[{{"type":"messenger","call_count":100,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":{minutes}}}]}}"#
                );
                let headers = response.headers_mut();
                if let Ok(value) = HeaderValue::from_str(&usage) {
                    headers.insert("x-business-use-case-usage", value);
                }
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                response
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Injection {
    op: MetaOp,
    remaining: u32,
    answer: Injected,
}

/// One request a fake answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// The path, e.g. `/v24.0/104857600000001/messages`.
    pub path: String,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// The JSON or form body as JSON (`Null` when empty).
    pub body: Value,
    /// Headers.
    pub headers: HeaderMap,
    /// The operation it was counted as.
    pub op: Option<MetaOp>,
    /// The HTTP status answered.
    pub status: u16,
}

/// One webhook delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Where it was POSTed.
    pub url: String,
    /// The exact body bytes (signed).
    pub body: Vec<u8>,
    /// The `X-Hub-Signature-256` header sent.
    pub signature: String,
    /// Each attempt's status; `None` when no HTTP answer came.
    pub statuses: Vec<Option<u16>>,
}

impl Delivery {
    /// Whether an attempt got a 2xx.
    pub fn delivered(&self) -> bool {
        self.statuses
            .iter()
            .flatten()
            .any(|s| (200..300).contains(s))
    }
}

/// State every Meta fake keeps.
#[derive(Debug, Default)]
pub(crate) struct Core {
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) injections: Vec<Injection>,
    pub(crate) deliveries: Vec<Delivery>,
    pub(crate) hosted: HashMap<String, (Bytes, String)>,
    pub(crate) seq: u64,
}

impl Core {
    pub(crate) fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(crate) fn inject(&mut self, op: MetaOp, times: u32, answer: Injected) {
        if times > 0 {
            self.injections.push(Injection {
                op,
                remaining: times,
                answer,
            });
        }
    }

    pub(crate) fn take_injection(&mut self, op: MetaOp) -> Option<Injected> {
        let index = self.injections.iter().position(|i| i.op == op)?;
        let answer = self.injections[index].answer.clone();
        self.injections[index].remaining -= 1;
        if self.injections[index].remaining == 0 {
            self.injections.remove(index);
        }
        Some(answer)
    }

    pub(crate) fn calls(&self, op: MetaOp) -> usize {
        self.requests.iter().filter(|r| r.op == Some(op)).count()
    }
}

/// A request as the fakes read it.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) method: String,
    pub(crate) path: String,
    /// Path segments after the leading slash.
    pub(crate) segments: Vec<String>,
    pub(crate) query: BTreeMap<String, String>,
    /// Query and body parameters merged (body wins).
    pub(crate) params: Map<String, Value>,
    /// The body as JSON (`Null` when empty; forms become objects of strings).
    pub(crate) body: Value,
    pub(crate) headers: HeaderMap,
}

impl Incoming {
    pub(crate) async fn read(request: Request) -> Incoming {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, 32 * 1024 * 1024)
            .await
            .unwrap_or_default();
        let query: BTreeMap<String, String> = parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let body = if bytes.is_empty() {
            Value::Null
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            Value::Object(
                url::form_urlencoded::parse(&bytes)
                    .into_owned()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            )
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        let mut params: Map<String, Value> = query
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        if let Value::Object(map) = &body {
            for (key, value) in map {
                params.insert(key.clone(), value.clone());
            }
        }
        let path = parts.uri.path().to_owned();
        Incoming {
            method: parts.method.as_str().to_owned(),
            segments: path
                .trim_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            path,
            query,
            params,
            body,
            headers: parts.headers,
        }
    }

    /// A parameter as text.
    pub(crate) fn param(&self, name: &str) -> Option<String> {
        match self.params.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// The access token: `Authorization: Bearer`, else `access_token`.
    pub(crate) fn token(&self) -> Option<String> {
        self.headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("OAuth "))
            })
            .map(|t| t.trim().to_owned())
            .or_else(|| self.param("access_token"))
            .filter(|t| !t.is_empty())
    }

    /// The Graph version segment, when the path starts with one (`v24.0`).
    pub(crate) fn version(&self) -> Option<&str> {
        let first = self.segments.first()?;
        let rest = first.strip_prefix('v')?;
        let (major, minor) = rest.split_once('.')?;
        (!major.is_empty()
            && major.bytes().all(|b| b.is_ascii_digit())
            && minor.bytes().all(|b| b.is_ascii_digit()))
        .then_some(first.as_str())
    }

    pub(crate) fn record(&self, op: Option<MetaOp>, status: u16) -> RecordedRequest {
        RecordedRequest {
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            body: self.body.clone(),
            headers: self.headers.clone(),
            op,
            status,
        }
    }
}

/// POSTs a signed body to `url` as Meta does, retrying a few times on anything but a 2xx.
pub(crate) async fn deliver(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    body: Vec<u8>,
) -> Delivery {
    let signature = hub_signature(secret, &body);
    let mut statuses = Vec::new();
    for _ in 0..DELIVERY_ATTEMPTS {
        let answer = http
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-hub-signature-256", &signature)
            .body(body.clone())
            .send()
            .await;
        let status = answer.ok().map(|r| r.status().as_u16());
        statuses.push(status);
        if status.is_some_and(|s| (200..300).contains(&s)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Delivery {
        url: url.to_owned(),
        body,
        signature,
        statuses,
    }
}

/// Forgeries of a genuine Meta push that verification must reject.
pub(crate) fn forgeries(
    push: &crate::conformance::CapturedPush,
) -> Vec<(String, crate::conformance::CapturedPush)> {
    let genuine = push
        .headers
        .get("x-hub-signature-256")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let with = |signature: Option<String>, body: Option<Bytes>| {
        let mut forged = push.clone();
        forged.headers.remove("x-hub-signature-256");
        if let Some(signature) = signature {
            forged.headers.insert(
                "x-hub-signature-256",
                HeaderValue::from_str(&signature).expect("a header value"),
            );
        }
        if let Some(body) = body {
            forged.body = body;
        }
        forged
    };
    let mut tampered = push.body.to_vec();
    tampered.extend_from_slice(b" ");
    vec![
        ("signature missing".to_owned(), with(None, None)),
        (
            "signed with another secret".to_owned(),
            with(Some(hub_signature("not-the-app-secret", &push.body)), None),
        ),
        (
            "body changed after signing".to_owned(),
            with(Some(genuine.clone()), Some(Bytes::from(tampered))),
        ),
        (
            "signature truncated".to_owned(),
            with(
                Some(genuine[..genuine.len().saturating_sub(2)].to_owned()),
                None,
            ),
        ),
        (
            "legacy sha1 header only".to_owned(),
            with(
                Some(format!("sha1={}", &genuine.get(7..47).unwrap_or_default())),
                None,
            ),
        ),
    ]
}

/// A person who can write to a business: a PSID on Messenger, an IGSID on Instagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    /// The scoped id.
    pub id: String,
    /// First name (Messenger) or display name (Instagram).
    pub first_name: String,
    /// Last name (Messenger only).
    pub last_name: Option<String>,
    /// Instagram username.
    pub username: Option<String>,
}

impl FakeUser {
    /// The full name as a profile lookup reports it.
    pub fn full_name(&self) -> String {
        match &self.last_name {
            Some(last) => format!("{} {last}", self.first_name),
            None => self.first_name.clone(),
        }
    }
}

/// How a Messenger-shaped platform checks sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendRules {
    /// The text limit.
    pub(crate) text_limit: usize,
    /// Whether it counts UTF-8 bytes (Instagram) or characters (Messenger).
    pub(crate) bytes: bool,
    /// The window refusal's subcode (2018278 Messenger, 2534022 Instagram).
    pub(crate) window_subcode: i64,
    /// The "user not found" subcode (2018001 Messenger, 2534014 Instagram).
    pub(crate) not_found_subcode: i64,
    /// Whether `messaging_type` is required (Messenger).
    pub(crate) requires_messaging_type: bool,
    /// The prefix of message ids.
    pub(crate) mid_prefix: &'static str,
}

/// A Page or an Instagram professional account.
#[derive(Debug, Clone)]
pub(crate) struct Business {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) username: Option<String>,
    pub(crate) users: BTreeMap<String, FakeUser>,
    /// When each user last wrote (ms); opens the window and the profile consent.
    pub(crate) last_inbound: HashMap<String, i64>,
    pub(crate) blocked: HashSet<String>,
    /// Accepted sends: `{mid, recipient, text, attachment_type, tag, at}`.
    pub(crate) sent: Vec<Value>,
    /// The Page-level subscription (`subscribed_apps`), if any.
    pub(crate) subscribed_fields: Option<String>,
}

impl Business {
    pub(crate) fn new(id: &str, name: &str, username: Option<&str>) -> Self {
        Business {
            id: id.to_owned(),
            name: name.to_owned(),
            username: username.map(str::to_owned),
            users: BTreeMap::new(),
            last_inbound: HashMap::new(),
            blocked: HashSet::new(),
            sent: Vec::new(),
            subscribed_fields: None,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// The Send API (`POST /{id}/messages`) of a Messenger-shaped business. `Ok` is the answer
/// body; `Err` a Graph error answer.
pub(crate) fn messenger_send(
    business: &mut Business,
    body: &Value,
    rules: SendRules,
    seq: u64,
) -> Result<(Value, Option<Value>), Response> {
    let Some(recipient) = body.pointer("/recipient/id").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }) else {
        return Err(graph_error(
            400,
            100,
            None,
            "(#100) The parameter recipient is required",
            None,
        ));
    };
    if !business.users.contains_key(&recipient) {
        return Err(graph_error(
            400,
            100,
            Some(rules.not_found_subcode),
            "(#100) No matching user found",
            None,
        ));
    }
    if let Some(action) = body.get("sender_action").and_then(Value::as_str) {
        return match action {
            "mark_seen" | "typing_on" | "typing_off" => {
                Ok((json!({"recipient_id": recipient}), None))
            }
            other => Err(graph_error(
                400,
                100,
                None,
                &format!("(#100) Invalid sender_action {other}"),
                None,
            )),
        };
    }
    if business.blocked.contains(&recipient) {
        return Err(graph_error(
            400,
            551,
            Some(1_545_041),
            "(#551) This person isn't available right now.",
            None,
        ));
    }
    let messaging_type = body.get("messaging_type").and_then(Value::as_str);
    if rules.requires_messaging_type && messaging_type.is_none() {
        return Err(graph_error(
            400,
            100,
            None,
            "(#100) param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}",
            None,
        ));
    }
    let tag = body.get("tag").and_then(Value::as_str);
    let window = match (messaging_type, tag) {
        (Some("MESSAGE_TAG"), Some("HUMAN_AGENT")) => 7 * DAY_MS,
        (Some("MESSAGE_TAG"), _) => {
            return Err(graph_error(
                400,
                100,
                None,
                "(#100) Unsupported message tag",
                None,
            ));
        }
        _ => DAY_MS,
    };
    let last = business.last_inbound.get(&recipient).copied();
    if last.is_none_or(|at| now_ms() - at > window) {
        return Err(graph_error(
            400,
            10,
            Some(rules.window_subcode),
            "(#10) This message is sent outside of allowed window.",
            None,
        ));
    }
    let message = body.get("message").cloned().unwrap_or(Value::Null);
    let text = message.get("text").and_then(Value::as_str);
    let attachment = message.get("attachment");
    if text.is_some() == attachment.is_some() {
        return Err(graph_error(
            400,
            100,
            None,
            "(#100) Exactly one of message[text] or message[attachment] must be set",
            None,
        ));
    }
    if let Some(text) = text {
        let length = if rules.bytes {
            text.len()
        } else {
            text.chars().count()
        };
        if length > rules.text_limit {
            return Err(graph_error(
                400,
                100,
                None,
                &format!(
                    "(#100) Length of param message[text] must be less than or equal to {}",
                    rules.text_limit
                ),
                None,
            ));
        }
    }
    let attachment_type = attachment
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(kind) = &attachment_type {
        let url = attachment
            .and_then(|a| a.pointer("/payload/url"))
            .and_then(Value::as_str);
        if !matches!(kind.as_str(), "image" | "video" | "audio" | "file") || url.is_none() {
            return Err(graph_error(
                400,
                100,
                None,
                "(#100) Invalid attachment",
                None,
            ));
        }
    }
    let mid = format!("{}{seq:016}", rules.mid_prefix);
    let at = now_ms();
    let record = json!({
        "mid": mid, "recipient": recipient, "text": text, "attachment_type": attachment_type,
        "attachment_url": attachment.and_then(|a| a.pointer("/payload/url")).cloned(),
        "tag": tag, "messaging_type": messaging_type, "at": at,
    });
    business.sent.push(record);
    // The echo the platform sends for every message the business sent.
    let mut echo_message =
        json!({"mid": mid, "is_echo": true, "app_id": 1_517_776_481_860_111_u64});
    match (text, attachment) {
        (Some(text), _) => echo_message["text"] = json!(text),
        (None, Some(attachment)) => echo_message["attachments"] = json!([attachment]),
        _ => {}
    }
    let echo = json!({
        "sender": {"id": business.id}, "recipient": {"id": recipient}, "timestamp": at,
        "message": echo_message,
    });
    Ok((
        json!({"recipient_id": recipient, "message_id": mid}),
        Some(echo),
    ))
}

/// A messaging event from `user` to `business`.
pub(crate) fn user_event(business: &str, user: &str, at: i64, key: &str, value: Value) -> Value {
    let mut event = json!({"sender": {"id": user}, "recipient": {"id": business}, "timestamp": at});
    event[key] = value;
    event
}

/// An image from `user` (at `url`) and, for a caption, a separate text event: Instagram and
/// Messenger send text and media as two messages.
pub(crate) fn image_events(
    business: &str,
    user: &str,
    url: &str,
    at: i64,
    mids: (String, String),
    caption: Option<&str>,
) -> Vec<Value> {
    let (image_mid, caption_mid) = mids;
    let image =
        json!({"mid": image_mid, "attachments": [{"type": "image", "payload": {"url": url}}]});
    let mut events = vec![user_event(business, user, at, "message", image)];
    if let Some(caption) = caption {
        events.push(user_event(
            business,
            user,
            at + 1,
            "message",
            json!({"mid": caption_mid, "text": caption}),
        ));
    }
    events
}

/// A webhook body of `object` with one entry per `(business id, events)`.
pub(crate) fn messaging_body(object: &str, entries: Vec<(String, Vec<Value>)>) -> Value {
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|(id, events)| json!({"id": id, "time": now_ms(), "messaging": events}))
        .collect();
    json!({"object": object, "entry": entries})
}

/// The profile of `user` as the profile API answers it, for the requested `fields`.
pub(crate) fn profile(user: &FakeUser, fields: &str, base_url: &str) -> Value {
    let mut out = json!({"id": user.id});
    for field in fields.split(',').map(str::trim) {
        let value = match field {
            "name" => json!(user.full_name()),
            "first_name" => json!(user.first_name),
            "last_name" => json!(user.last_name),
            "username" => json!(user.username),
            "profile_pic" => json!(format!("{base_url}/_media/profile_{}.jpg", user.id)),
            _ => continue,
        };
        out[field] = value;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_json_escapes_non_ascii_as_meta_signs_it() {
        let body = meta_json(&json!({"text": "grüße 👋"}));
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"text":"gr\u00fc\u00dfe \ud83d\udc4b"}"#
        );
    }

    #[test]
    fn signatures_match_the_published_vector() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"264937493375603","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550953877","phone_number_id":"277321005464405"},"contacts":[{"profile":{"name":"PyWa Tests"},"wa_id":"972544401243"}],"messages":[{"from":"972544401243","id":"wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA","timestamp":"1730231903","text":{"body":"Hey there! I am using PyWa."},"type":"text"}]},"field":"messages"}]}]}"#;
        assert_eq!(
            hub_signature("1222e786b144d0e85b9f365372d93676", body.as_bytes()),
            "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441"
        );
    }
}
