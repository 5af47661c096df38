//! Raw Reddit calls: the token endpoint on `www` (form body, HTTP Basic with the client id and
//! secret), and the API on `oauth` with `Authorization: bearer <token>`, `raw_json=1` on reads
//! (bodies without HTML entities) and `api_type=json` on writes (errors as JSON). Every call
//! carries the configured User-Agent (set on the HTTP client), as Reddit requires
//! (<https://github.com/reddit-archive/reddit/wiki/API>).
//!
//! Every answer's `X-Ratelimit-Remaining` / `X-Ratelimit-Reset` (seconds to the end of the
//! window) is reported against the per-client budget, which every account of the client shares.

use std::{fmt, sync::Arc, time::Duration};

use http::{HeaderMap, StatusCode};
use inbox_core::{BudgetCall, Error, PlatformKind, Pushback, RateBudgets, Result};
use inbox_http::{
    HttpFailure, Meter, RetryConfig, RetryError, Snapshot, header_number, send_metered, unavailable,
};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::{
    RedditConfig,
    wire::{ErrorBody, TokenResponse},
};

const PLATFORM: PlatformKind = PlatformKind::Reddit;

/// Reads Reddit's usage headers. `X-Ratelimit-Remaining` is a float (`"599.0"`) and
/// `X-Ratelimit-Reset` the seconds left in the window.
pub(crate) fn usage(headers: &HeaderMap) -> Option<Pushback> {
    Some(Pushback::Remaining {
        remaining: header_number(headers, "x-ratelimit-remaining")?.floor() as u64,
        reset_after: Duration::from_secs_f64(header_number(headers, "x-ratelimit-reset")?),
    })
}

/// A failed call, before it is mapped for the operation at hand.
#[derive(Debug)]
pub(crate) enum CallError {
    /// An error status, with Reddit's `{"message", "error"}` body when it sent one.
    Status { status: StatusCode, message: String },
    /// No answer (URL removed).
    Transport(reqwest::Error),
    /// A success that is not what the endpoint returns.
    Decode(String),
    /// Throttling or 5xx that outlasted the retry budget.
    Exhausted {
        retry_after: Option<Duration>,
        what: String,
    },
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Status { status, message } => write!(f, "{message} (HTTP {status})"),
            CallError::Transport(error) => write!(f, "no answer: {error}"),
            CallError::Decode(message) => f.write_str(message),
            CallError::Exhausted { what, .. } => f.write_str(what),
        }
    }
}

fn status_error(snapshot: &Snapshot) -> CallError {
    let body: ErrorBody = serde_json::from_slice(&snapshot.body).unwrap_or_default();
    let message = body
        .message
        .or_else(|| body.error.map(|e| e.to_string()))
        .unwrap_or_else(|| {
            snapshot
                .status
                .canonical_reason()
                .unwrap_or("error")
                .to_owned()
        });
    CallError::Status {
        status: snapshot.status,
        message,
    }
}

impl From<RetryError<HttpFailure>> for CallError {
    fn from(error: RetryError<HttpFailure>) -> Self {
        match error {
            RetryError::Permanent(HttpFailure::Transport(error)) => CallError::Transport(error),
            RetryError::Permanent(HttpFailure::Status(snapshot)) => status_error(&snapshot),
            RetryError::Exhausted {
                error, retry_after, ..
            } => CallError::Exhausted {
                retry_after,
                what: match &error {
                    HttpFailure::Status(snapshot) => status_error(snapshot).to_string(),
                    HttpFailure::Transport(error) => format!("no answer: {error}"),
                },
            },
        }
    }
}

/// Maps failures every operation treats alike.
pub(crate) fn to_core(error: CallError) -> Error {
    match error {
        CallError::Status { status, message } if status == StatusCode::UNAUTHORIZED => {
            Error::ReauthRequired {
                platform: PLATFORM,
                message: format!("Reddit rejected the access token ({message})"),
            }
        }
        // The reports of `/message/*` redirecting to the login page since the 2025 chat
        // migration (PRAW issues #2077, #2081) surface here rather than as silence.
        CallError::Status { status, .. } if status.is_redirection() => Error::Platform {
            platform: PLATFORM,
            code: status.as_u16().to_string(),
            message: "Reddit redirected to its login page: the message endpoints refused this \
                      token"
                .into(),
        },
        CallError::Status { status, message } => Error::Platform {
            platform: PLATFORM,
            code: status.as_u16().to_string(),
            message,
        },
        CallError::Transport(error) => Error::Unavailable {
            message: format!("Reddit did not answer: {error}"),
            retry_after: None,
        },
        CallError::Decode(message) => Error::Platform {
            platform: PLATFORM,
            code: "malformed_response".into(),
            message: format!("Reddit answered something unexpected: {message}"),
        },
        CallError::Exhausted { retry_after, what } => unavailable(PLATFORM, what, retry_after),
    }
}

/// The HTTP side of the adapter.
pub(crate) struct Api {
    http: reqwest::Client,
    api_base: String,
    www_base: String,
    retry: RetryConfig,
    budgets: Arc<dyn RateBudgets>,
    client_id: String,
    client_secret: Option<SecretString>,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("api_base", &self.api_base)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The budget a call's usage headers are reported against, with the call's identities.
pub(crate) type Metered<'a> = Option<BudgetCall<'a>>;

impl Api {
    pub(crate) fn new(config: &RedditConfig) -> Result<Self> {
        Ok(Self {
            http: config.http().build()?,
            api_base: config.api_base().to_owned(),
            www_base: config.www_base().to_owned(),
            retry: config.retry().clone(),
            budgets: config.budgets().clone(),
            client_id: config.client_id().to_owned(),
            client_secret: config.client_secret().cloned(),
        })
    }

    /// One API call: `GET` with `raw_json=1`, or `POST` with a form carrying `api_type=json`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        params: &[(&str, String)],
        idempotent: bool,
        metered: Metered<'_>,
    ) -> std::result::Result<Snapshot, CallError> {
        let mut url = url::Url::parse(&format!("{}{path}", self.api_base))
            .map_err(|err| CallError::Decode(format!("{path} is not a valid URL: {err}")))?;
        let mut form: Vec<(&str, &str)> = Vec::new();
        if method == Method::GET {
            url.query_pairs_mut()
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
                .append_pair("raw_json", "1");
        } else {
            form.extend(params.iter().map(|(k, v)| (*k, v.as_str())));
            form.push(("api_type", "json"));
        }
        let meter = metered.map(|call| Meter {
            budgets: self.budgets.as_ref(),
            call,
            budget: Some(crate::REQUESTS),
            usage,
        });
        let snapshot = send_metered(&self.retry, idempotent, meter.as_ref(), |_| {
            let request = self
                .http
                .request(method.clone(), url.clone())
                .header(http::header::AUTHORIZATION, format!("bearer {token}"));
            if form.is_empty() {
                request
            } else {
                request.form(&form)
            }
        })
        .await?;
        if snapshot.status.is_success() {
            Ok(snapshot)
        } else {
            Err(status_error(&snapshot))
        }
    }

    /// `GET {api}{path}?…&raw_json=1`, decoded as `T`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        query: &[(&str, String)],
        metered: Metered<'_>,
    ) -> std::result::Result<T, CallError> {
        let snapshot = self
            .call(Method::GET, path, token, query, true, metered)
            .await?;
        serde_json::from_slice(&snapshot.body)
            .map_err(|err| CallError::Decode(format!("{path}: {err}")))
    }

    /// `POST {api}{path}` with a form (plus `api_type=json`), decoded as `T`.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        form: &[(&str, String)],
        metered: Metered<'_>,
    ) -> std::result::Result<T, CallError> {
        let snapshot = self
            .call(Method::POST, path, token, form, false, metered)
            .await?;
        serde_json::from_slice(&snapshot.body)
            .map_err(|err| CallError::Decode(format!("{path}: {err}")))
    }

    /// `POST {www}/api/v1/access_token` with `form`, authenticated as the OAuth client.
    pub(crate) async fn token(
        &self,
        form: &[(&str, &str)],
    ) -> std::result::Result<(StatusCode, TokenResponse), CallError> {
        let url = format!("{}/api/v1/access_token", self.www_base);
        let secret = self
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned())
            .unwrap_or_default();
        // Not retried on timeouts: Reddit rotates refresh tokens, so a lost answer may have
        // spent the one sent.
        let snapshot = send_metered(&self.retry, false, None, |_| {
            self.http
                .post(&url)
                .basic_auth(&self.client_id, Some(&secret))
                .form(form)
        })
        .await?;
        let body: TokenResponse = serde_json::from_slice(&snapshot.body).unwrap_or_default();
        if snapshot.status.is_success() || body.error.is_some() {
            Ok((snapshot.status, body))
        } else {
            Err(status_error(&snapshot))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_headers_are_floats_and_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-used", "1".parse().unwrap());
        headers.insert("x-ratelimit-remaining", "599.0".parse().unwrap());
        headers.insert("x-ratelimit-reset", "347".parse().unwrap());
        assert_eq!(
            usage(&headers),
            Some(Pushback::Remaining {
                remaining: 599,
                reset_after: Duration::from_secs(347)
            })
        );
    }
}
