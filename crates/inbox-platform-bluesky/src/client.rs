//! Raw XRPC calls to the account's PDS: `GET|POST {pds}/xrpc/{nsid}` with `Authorization:
//! Bearer <accessJwt>`, chat methods with the `atproto-proxy` header that makes the PDS forward
//! them to the chat service (<https://docs.bsky.app/docs/advanced-guides/api-directory>), and
//! the XRPC error body `{"error", "message"}` (<https://atproto.com/specs/xrpc>).
//!
//! Expired tokens answer `400 ExpiredToken` (not 401); both mean "refresh the session", and
//! are reported as `ReauthRequired` so the gateway refreshes and retries once. Throttling
//! (`429` with `ratelimit-reset`, unix seconds) is retried and reported.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::{HeaderMap, StatusCode};
use inbox_core::{BudgetCall, Error, PlatformKind, Pushback, RateBudgets, Result};
use inbox_http::{
    HttpFailure, Meter, RetryConfig, RetryError, Snapshot, send_metered, unavailable,
};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{BlueskyConfig, wire::XrpcError};

const PLATFORM: PlatformKind = PlatformKind::Bluesky;

/// Reads the `ratelimit-remaining` / `ratelimit-reset` (unix seconds) headers the PDS sends.
pub(crate) fn usage(headers: &HeaderMap) -> Option<Pushback> {
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let remaining = number("ratelimit-remaining")?;
    let reset = number("ratelimit-reset")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Some(Pushback::Remaining {
        remaining,
        reset_after: Duration::from_secs(reset.saturating_sub(now)),
    })
}

/// A failed call, before it is mapped for the operation at hand.
#[derive(Debug)]
pub(crate) enum CallError {
    /// An XRPC error: status, the error name and its message.
    Xrpc {
        status: StatusCode,
        error: String,
        message: String,
    },
    /// No answer (URL removed).
    Transport(reqwest::Error),
    /// A success that is not what the method returns.
    Decode(String),
    /// Throttling or 5xx that outlasted the retry budget.
    Exhausted {
        retry_after: Option<Duration>,
        what: String,
    },
}

impl CallError {
    /// The XRPC error name (`ExpiredToken`, `InvalidConvo`, …).
    pub(crate) fn name(&self) -> Option<&str> {
        match self {
            CallError::Xrpc { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Xrpc {
                status,
                error,
                message,
            } => write!(f, "{error}: {message} (HTTP {status})"),
            CallError::Transport(error) => write!(f, "no answer: {error}"),
            CallError::Decode(message) => f.write_str(message),
            CallError::Exhausted { what, .. } => f.write_str(what),
        }
    }
}

fn xrpc_error(snapshot: &Snapshot) -> CallError {
    // Load balancers may answer with HTML; the status then stands for the error.
    let body: XrpcError = serde_json::from_slice(&snapshot.body).unwrap_or_default();
    CallError::Xrpc {
        status: snapshot.status,
        error: body.error.unwrap_or_else(|| {
            snapshot
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .replace(' ', "")
        }),
        message: body.message.unwrap_or_default(),
    }
}

impl From<RetryError<HttpFailure>> for CallError {
    fn from(error: RetryError<HttpFailure>) -> Self {
        match error {
            RetryError::Permanent(HttpFailure::Transport(error)) => CallError::Transport(error),
            RetryError::Permanent(HttpFailure::Status(snapshot)) => xrpc_error(&snapshot),
            RetryError::Exhausted {
                error, retry_after, ..
            } => CallError::Exhausted {
                retry_after,
                what: match &error {
                    HttpFailure::Status(snapshot) => xrpc_error(snapshot).to_string(),
                    HttpFailure::Transport(error) => format!("no answer: {error}"),
                },
            },
        }
    }
}

/// Whether the error means the session's tokens no longer work.
pub(crate) fn is_auth_failure(error: &CallError) -> bool {
    match error {
        CallError::Xrpc { status, error, .. } => {
            *status == StatusCode::UNAUTHORIZED
                || matches!(
                    error.as_str(),
                    "ExpiredToken"
                        | "InvalidToken"
                        | "AuthMissing"
                        | "AuthenticationRequired"
                        | "AccountTakedown"
                        | "AccountDeactivated"
                )
        }
        _ => false,
    }
}

/// Maps failures every operation treats alike.
pub(crate) fn to_core(error: CallError) -> Error {
    if is_auth_failure(&error) {
        return Error::ReauthRequired {
            platform: PLATFORM,
            message: format!("Bluesky refused the session ({error})"),
        };
    }
    match error {
        CallError::Xrpc { error, message, .. } => Error::Platform {
            platform: PLATFORM,
            code: error,
            message,
        },
        CallError::Transport(error) => Error::Unavailable {
            message: format!("Bluesky did not answer: {error}"),
            retry_after: None,
        },
        CallError::Decode(message) => Error::Platform {
            platform: PLATFORM,
            code: "malformed_response".into(),
            message: format!("Bluesky answered something unexpected: {message}"),
        },
        CallError::Exhausted { retry_after, what } => unavailable(PLATFORM, what, retry_after),
    }
}

/// How one call is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    /// Whether to route it to the chat service (`atproto-proxy`).
    pub(crate) chat: bool,
    /// Whether repeating it is harmless.
    pub(crate) idempotent: bool,
    /// The call, as the budgets know it, for throttling reports.
    pub(crate) budget: Option<BudgetCall<'a>>,
}

/// The HTTP side of the adapter.
pub(crate) struct Api {
    http: reqwest::Client,
    retry: RetryConfig,
    budgets: Arc<dyn RateBudgets>,
    chat_proxy: String,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("chat_proxy", &self.chat_proxy)
            .finish_non_exhaustive()
    }
}

impl Api {
    pub(crate) fn new(config: &BlueskyConfig) -> Result<Self> {
        Ok(Self {
            http: config.http().build()?,
            retry: config.retry().clone(),
            budgets: config.budgets().clone(),
            chat_proxy: config.chat_proxy().to_owned(),
        })
    }

    /// One XRPC call; `token` may be absent (`createSession`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn xrpc<T: DeserializeOwned>(
        &self,
        pds: &str,
        method: Method,
        nsid: &str,
        token: Option<&str>,
        query: &[(&str, String)],
        body: Option<&Value>,
        call: Call<'_>,
    ) -> std::result::Result<T, CallError> {
        let mut url = url::Url::parse(&format!("{pds}/xrpc/{nsid}"))
            .map_err(|err| CallError::Decode(format!("{nsid}: not a valid URL: {err}")))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let meter = call.budget.map(|budget| Meter {
            budgets: self.budgets.as_ref(),
            call: budget,
            budget: None,
            usage,
        });
        let snapshot = send_metered(&self.retry, call.idempotent, meter.as_ref(), |_| {
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if call.chat {
                request = request.header("atproto-proxy", &self.chat_proxy);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            request
        })
        .await?;
        if !snapshot.status.is_success() {
            return Err(xrpc_error(&snapshot));
        }
        serde_json::from_slice(&snapshot.body)
            .map_err(|err| CallError::Decode(format!("{nsid}: {err}")))
    }
}
