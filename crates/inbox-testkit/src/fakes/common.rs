//! What the X, Reddit and Bluesky fakes share: the server task that stops with the last handle,
//! recorded requests, injected failures, and small helpers for bearer tokens and form bodies.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use tokio::task::JoinHandle;

/// Aborts the server when the last handle to the fake is dropped.
#[derive(Debug)]
pub(crate) struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Binds `127.0.0.1:0` and serves `app`; returns the base URL and the task.
pub(crate) async fn serve(app: Router, name: &str) -> (String, ServerTask) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|err| panic!("{name}: cannot bind 127.0.0.1:0: {err}"));
    let base = format!("http://{}", listener.local_addr().expect("bound address"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, ServerTask(task))
}

/// One request a fake answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string.
    pub query: Option<String>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// The account the request acted as (user id, username or DID), when its credentials
    /// named one.
    pub account: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
}

impl Recorded {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The query parameters.
    pub fn query_pairs(&self) -> HashMap<String, String> {
        form(self.query.as_deref().unwrap_or_default().as_bytes())
    }

    /// The form-encoded body's fields.
    pub fn form(&self) -> HashMap<String, String> {
        form(&self.body)
    }
}

/// A failure to answer instead of the real one, `remaining` more times.
#[derive(Debug, Clone)]
pub(crate) struct Injection<Op> {
    pub(crate) op: Op,
    pub(crate) remaining: u32,
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) headers: Vec<(String, String)>,
}

/// Takes the next injection for `op`, if any.
pub(crate) fn take_injection<Op: PartialEq + Clone>(
    injections: &mut Vec<Injection<Op>>,
    op: &Op,
) -> Option<Injection<Op>> {
    let index = injections.iter().position(|i| &i.op == op)?;
    let injection = injections[index].clone();
    injections[index].remaining -= 1;
    if injections[index].remaining == 0 {
        injections.remove(index);
    }
    Some(injection)
}

/// A response with a status, JSON body and extra headers.
pub(crate) fn respond(status: u16, body: String, headers: &[(String, String)]) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The bearer token of a request (`Authorization: Bearer …`, any case of the scheme).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// HTTP Basic credentials of a request.
pub(crate) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Decodes `application/x-www-form-urlencoded` (or a query string).
pub(crate) fn form(bytes: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix milliseconds now.
pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// RFC 3339 of unix milliseconds, UTC, with milliseconds (`2026-01-02T03:04:05.678Z`).
pub(crate) fn rfc3339_millis(millis: u64) -> String {
    let secs = (millis / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        millis % 1000
    )
}

/// A random-looking token with a prefix (unique per fake, not secret).
pub(crate) fn token(prefix: &str, n: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}{n:06}{nanos:09x}")
}

/// A mutex whose poisoning (a panicking test thread) never wedges later calls.
#[derive(Debug, Default)]
pub(crate) struct Locked<T>(Mutex<T>);

impl<T> Locked<T> {
    pub(crate) fn new(value: T) -> Self {
        Locked(Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The body of a request, up to 16 MiB.
pub(crate) async fn body_bytes(body: axum::body::Body) -> Bytes {
    axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default()
}

/// How long the fakes wait before giving up on a webhook receiver.
pub(crate) const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared handle type of a fake's state.
pub(crate) type Shared<T> = Arc<Locked<T>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_767_323_045_678),
            "2026-01-02T03:04:05.678Z"
        );
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
