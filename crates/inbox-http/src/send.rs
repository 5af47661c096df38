//! The common retry loop for plain HTTP calls: rebuild and send the request each attempt,
//! classify the status or transport failure, and hand back the final response.

use std::{fmt, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use inbox_core::{Error, PlatformKind};

use crate::{Attempt, AttemptContext, RetryConfig, RetryError, retry, retry_after};

/// Whether and how to retry an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    /// Final: hand it to the caller.
    Permanent,
    /// Retry after exactly this long (the platform said so).
    RetryAfter(Duration),
    /// Retry with exponential backoff.
    Backoff,
}

/// Classifies a response status.
///
/// `429`, `408` and `5xx` (except `501 Not Implemented` and `505`) are transient; a
/// `Retry-After` header on them is honoured. Everything else is final, including every other
/// `4xx`, which the adapter maps with the platform's own error body.
pub fn classify_status(status: StatusCode, headers: &HeaderMap) -> Transience {
    let transient = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED);
    if !transient {
        return Transience::Permanent;
    }
    retry_after(headers).map_or(Transience::Backoff, Transience::RetryAfter)
}

/// Classifies a transport failure.
///
/// A failure to connect is always retried: nothing reached the platform. A timeout or a broken
/// response is retried only for idempotent requests, because a send that timed out may have
/// been delivered, and sending it again would duplicate the message.
pub fn classify_transport(error: &reqwest::Error, idempotent: bool) -> Transience {
    if error.is_builder() {
        Transience::Permanent
    } else if error.is_connect() || idempotent {
        Transience::Backoff
    } else {
        Transience::Permanent
    }
}

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Snapshot {
    /// Reads a response to the end.
    ///
    /// # Errors
    /// The transport error when the body breaks off (URL removed, since it may hold a token).
    pub async fn read(response: reqwest::Response) -> Result<Self, reqwest::Error> {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(reqwest::Error::without_url)?;
        Ok(Self {
            status,
            headers,
            body,
        })
    }
}

/// A failed HTTP call, as the retry loop left it.
#[derive(Debug)]
pub enum HttpFailure {
    /// A transient status (`429`, `5xx`) that was still there when retries ran out.
    Status(Snapshot),
    /// The request could not be made or its response not read. The URL is removed from the
    /// error: platform URLs can carry credentials (Telegram's `/bot<token>/`).
    Transport(reqwest::Error),
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpFailure::Status(snapshot) => write!(f, "HTTP {}", snapshot.status),
            HttpFailure::Transport(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for HttpFailure {}

/// Sends the request `build` makes, again on every transient failure, within `config`.
///
/// `build` runs once per attempt (a `reqwest::RequestBuilder` is consumed by sending); it can
/// bound the attempt's timeout with [`AttemptContext::remaining`]. Every status that
/// [`classify_status`] calls final, success or not, comes back as `Ok` for the adapter to read
/// its platform's error body.
///
/// # Errors
/// [`RetryError::Exhausted`] with the last transient status or transport failure and the last
/// `Retry-After` hint; [`RetryError::Permanent`] for a transport failure that must not be
/// retried (see [`classify_transport`]).
pub async fn send_with_retry<F>(
    config: &RetryConfig,
    idempotent: bool,
    mut build: F,
) -> Result<Snapshot, RetryError<HttpFailure>>
where
    F: FnMut(AttemptContext) -> reqwest::RequestBuilder,
{
    retry(config, |ctx| {
        let request = build(ctx);
        async move {
            let outcome = match request.send().await {
                Ok(response) => Snapshot::read(response).await,
                Err(error) => Err(error.without_url()),
            };
            match outcome {
                Ok(snapshot) => match classify_status(snapshot.status, &snapshot.headers) {
                    Transience::Permanent => Attempt::Done(Ok(snapshot)),
                    Transience::RetryAfter(after) => Attempt::RetryAfter {
                        error: HttpFailure::Status(snapshot),
                        after,
                    },
                    Transience::Backoff => Attempt::Backoff(HttpFailure::Status(snapshot)),
                },
                Err(error) => match classify_transport(&error, idempotent) {
                    Transience::Permanent => Attempt::Done(Err(HttpFailure::Transport(error))),
                    Transience::RetryAfter(after) => Attempt::RetryAfter {
                        error: HttpFailure::Transport(error),
                        after,
                    },
                    Transience::Backoff => Attempt::Backoff(HttpFailure::Transport(error)),
                },
            }
        }
    })
    .await
}

/// The core error for a platform that stayed unavailable or kept throttling after retries:
/// `Error::Unavailable` with the last hint, which the API turns into `503` (with `Retry-After`
/// when known).
pub fn unavailable(
    platform: PlatformKind,
    what: impl fmt::Display,
    retry_after: Option<Duration>,
) -> Error {
    Error::Unavailable {
        message: format!("{platform} is unavailable: {what}"),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, header::RETRY_AFTER};

    use super::*;
    use crate::{BackoffConfig, ClientOptions, scripted::ScriptedServer};

    fn quick(max_attempts: u32) -> RetryConfig {
        RetryConfig {
            budget: Duration::from_secs(5),
            max_attempts,
            backoff: BackoffConfig {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(5),
                multiplier: 2.0,
                jitter: true,
            },
        }
    }

    fn client() -> reqwest::Client {
        ClientOptions::default().build().unwrap()
    }

    #[tokio::test]
    async fn server_errors_are_retried_until_success() {
        let server = ScriptedServer::start().await;
        server.push(503, &[], "unavailable");
        server.push(502, &[], "bad gateway");
        server.push(200, &[], "ok");
        let client = client();
        let snapshot = send_with_retry(&quick(5), false, |_| client.get(server.url("/x")))
            .await
            .unwrap();
        assert_eq!(snapshot.status, StatusCode::OK);
        assert_eq!(&snapshot.body[..], b"ok");
        assert_eq!(server.hits(), 3);
    }

    #[tokio::test]
    async fn retry_after_headers_are_honoured() {
        let server = ScriptedServer::start().await;
        server.push(429, &[("retry-after", "0")], "slow down");
        server.push(200, &[], "ok");
        let client = client();
        let snapshot = send_with_retry(&quick(5), false, |_| client.post(server.url("/send")))
            .await
            .unwrap();
        assert_eq!(snapshot.status, StatusCode::OK);
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn a_hint_beyond_the_budget_ends_the_loop_with_that_hint() {
        let server = ScriptedServer::start().await;
        server.push(429, &[("retry-after", "120")], "slow down");
        let client = client();
        let err = send_with_retry(&quick(5), false, |_| client.post(server.url("/send")))
            .await
            .unwrap_err();
        match err {
            RetryError::Exhausted {
                error: HttpFailure::Status(snapshot),
                retry_after,
                attempts,
            } => {
                assert_eq!(snapshot.status, StatusCode::TOO_MANY_REQUESTS);
                assert_eq!(&snapshot.body[..], b"slow down");
                assert_eq!(retry_after, Some(Duration::from_secs(120)));
                assert_eq!(attempts, 1);
            }
            other => panic!("expected Exhausted with a status, got {other:?}"),
        }
        assert_eq!(server.hits(), 1);
    }

    #[tokio::test]
    async fn client_errors_come_back_at_once() {
        let server = ScriptedServer::start().await;
        server.push(404, &[], r#"{"error":"no such thing"}"#);
        let client = client();
        let snapshot = send_with_retry(&quick(5), true, |_| client.get(server.url("/x")))
            .await
            .unwrap();
        assert_eq!(snapshot.status, StatusCode::NOT_FOUND);
        assert_eq!(server.hits(), 1);
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let server = ScriptedServer::start().await;
        server.push(302, &[("location", "http://127.0.0.1:9/elsewhere")], "");
        let client = client();
        let snapshot = send_with_retry(&quick(5), true, |_| client.get(server.url("/x")))
            .await
            .unwrap();
        assert_eq!(snapshot.status, StatusCode::FOUND);
        assert_eq!(server.hits(), 1);
    }

    #[tokio::test]
    async fn refused_connections_are_retried_then_reported() {
        let url = ScriptedServer::closed_url().await;
        let client = client();
        let err = send_with_retry(&quick(3), false, |_| client.post(&url))
            .await
            .unwrap_err();
        match &err {
            RetryError::Exhausted {
                error: HttpFailure::Transport(error),
                attempts,
                ..
            } => {
                assert!(error.is_connect(), "{error}");
                assert!(error.url().is_none(), "the URL must be stripped");
                assert_eq!(*attempts, 3);
            }
            other => panic!("expected Exhausted with a transport error, got {other:?}"),
        }
        let error = unavailable(PlatformKind::Telegram, err.inner(), None);
        assert!(matches!(
            error,
            Error::Unavailable {
                retry_after: None,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn timeouts_are_retried_only_when_idempotent() {
        let server = ScriptedServer::start().await;
        server.push_delayed(Duration::from_secs(30), 200, "late");
        server.push_delayed(Duration::from_secs(30), 200, "late");
        server.push(200, &[], "ok");
        let client = client();
        let short = |_| {
            client
                .post(server.url("/send"))
                .timeout(Duration::from_millis(500))
        };

        let err = send_with_retry(&quick(5), false, short).await.unwrap_err();
        assert!(
            matches!(&err, RetryError::Permanent(HttpFailure::Transport(e)) if e.is_timeout()),
            "{err:?}"
        );
        assert_eq!(server.hits(), 1);

        let snapshot = send_with_retry(&quick(5), true, short).await.unwrap();
        assert_eq!(&snapshot.body[..], b"ok");
        assert_eq!(server.hits(), 3);
    }

    #[test]
    fn statuses_are_classified() {
        let mut hinted = HeaderMap::new();
        hinted.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        let none = HeaderMap::new();
        let cases = [
            (200, &none, Transience::Permanent),
            (400, &none, Transience::Permanent),
            (401, &none, Transience::Permanent),
            (408, &none, Transience::Backoff),
            (429, &none, Transience::Backoff),
            (429, &hinted, Transience::RetryAfter(Duration::from_secs(3))),
            (500, &none, Transience::Backoff),
            (501, &none, Transience::Permanent),
            (503, &hinted, Transience::RetryAfter(Duration::from_secs(3))),
        ];
        for (status, headers, expected) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(classify_status(status, headers), expected, "{status}");
        }
    }
}
