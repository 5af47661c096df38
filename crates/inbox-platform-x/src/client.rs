//! Raw X API calls: v2 JSON with `Authorization: Bearer <user access token>`, the OAuth 2.0
//! token endpoint (form-encoded; HTTP Basic for confidential clients, `client_id` in the body
//! for public ones), and the mapping of X's error shapes onto the core error.
//!
//! Every answer's `x-rate-limit-remaining` / `x-rate-limit-reset` (unix seconds) is reported to
//! the rate budgets, and a `429` is retried after `x-rate-limit-reset`
//! (<https://docs.x.com/x-api/fundamentals/rate-limits>). Tokens never appear in URLs here, so
//! errors and logs cannot leak them.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::{HeaderMap, StatusCode};
use inbox_core::{BudgetCall, Error, PlatformKind, Pushback, RateBudgets, Result};
use inbox_http::{
    HttpFailure, Meter, RetryConfig, RetryError, Snapshot, header_number, send_metered, unavailable,
};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    XConfig,
    wire::{ErrorBody, TokenResponse},
};

const PLATFORM: PlatformKind = PlatformKind::X;

/// Reads X's usage headers: calls left and the unix second the window resets.
pub(crate) fn usage(headers: &HeaderMap) -> Option<Pushback> {
    let number = |name: &str| header_number(headers, name).map(|n| n as u64);
    let remaining = number("x-rate-limit-remaining")?;
    let reset = number("x-rate-limit-reset")?;
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
    /// X answered with an error status and (usually) one of its error bodies.
    Status { status: StatusCode, body: ErrorBody },
    /// No answer: connection refused, timeout, broken body (URL removed).
    Transport(reqwest::Error),
    /// The answer was a success but not what the endpoint returns.
    Decode(String),
    /// Throttling or 5xx that outlasted the retry budget.
    Exhausted {
        retry_after: Option<Duration>,
        what: String,
    },
}

impl CallError {
    /// The OAuth `error` code or the v2 problem's type, for matching specific refusals.
    pub(crate) fn oauth_error(&self) -> Option<&str> {
        match self {
            CallError::Status { body, .. } => body.error.as_deref(),
            _ => None,
        }
    }

    /// X's own text for the failure.
    pub(crate) fn message(&self) -> String {
        match self {
            CallError::Status { status, body } => describe(*status, body),
            CallError::Transport(error) => format!("no answer: {error}"),
            CallError::Decode(message) => message.clone(),
            CallError::Exhausted { what, .. } => what.clone(),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// The most specific text an error body carries.
fn describe(status: StatusCode, body: &ErrorBody) -> String {
    body.errors
        .iter()
        .find_map(|e| e.message.clone().or_else(|| e.detail.clone()))
        .or_else(|| body.detail.clone())
        .or_else(|| body.error_description.clone())
        .or_else(|| body.title.clone())
        .or_else(|| body.error.clone())
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// X's code for a refusal: a legacy numeric code when there is one, else the HTTP status.
fn code(status: StatusCode, body: &ErrorBody) -> String {
    body.errors
        .iter()
        .find_map(|e| match &e.code {
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| status.as_u16().to_string())
}

impl From<RetryError<HttpFailure>> for CallError {
    fn from(error: RetryError<HttpFailure>) -> Self {
        match error {
            RetryError::Permanent(HttpFailure::Transport(error)) => CallError::Transport(error),
            RetryError::Permanent(HttpFailure::Status(snapshot)) => CallError::Status {
                status: snapshot.status,
                body: serde_json::from_slice(&snapshot.body).unwrap_or_default(),
            },
            RetryError::Exhausted {
                error, retry_after, ..
            } => {
                let what = match &error {
                    HttpFailure::Status(snapshot) => describe(
                        snapshot.status,
                        &serde_json::from_slice(&snapshot.body).unwrap_or_default(),
                    ),
                    HttpFailure::Transport(error) => format!("no answer: {error}"),
                };
                CallError::Exhausted { retry_after, what }
            }
        }
    }
}

/// Maps failures every operation treats alike.
pub(crate) fn to_core(error: CallError) -> Error {
    match error {
        CallError::Status { status, body } if status == StatusCode::UNAUTHORIZED => {
            Error::ReauthRequired {
                platform: PLATFORM,
                message: format!(
                    "X rejected the access token ({}); it expired or the grant was revoked",
                    describe(status, &body)
                ),
            }
        }
        CallError::Status { status, body } => Error::Platform {
            platform: PLATFORM,
            code: code(status, &body),
            message: describe(status, &body),
        },
        CallError::Transport(error) => Error::Unavailable {
            message: format!("X did not answer: {error}"),
            retry_after: None,
        },
        CallError::Decode(message) => Error::Platform {
            platform: PLATFORM,
            code: "malformed_response".into(),
            message: format!("X answered something unexpected: {message}"),
        },
        CallError::Exhausted {
            retry_after, what, ..
        } => unavailable(PLATFORM, what, retry_after),
    }
}

/// How one call is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    /// Whether repeating it is harmless (sends are not: a timed-out send may have gone out).
    pub(crate) idempotent: bool,
    /// The budget its usage headers are reported against.
    pub(crate) budget: Option<(BudgetCall<'a>, &'static str)>,
}

/// The HTTP side of the adapter.
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    retry: RetryConfig,
    budgets: Arc<dyn RateBudgets>,
    client_id: String,
    client_secret: Option<SecretString>,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Api {
    pub(crate) fn new(config: &XConfig) -> Result<Self> {
        Ok(Self {
            http: config.http().build()?,
            base: config.api_base().to_owned(),
            retry: config.retry().clone(),
            budgets: config.budgets().clone(),
            client_id: config.client_id().to_owned(),
            client_secret: config.client_secret().cloned(),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        call: Call<'_>,
    ) -> std::result::Result<Snapshot, CallError> {
        let mut url = url::Url::parse(&format!("{}{path}", self.base))
            .map_err(|err| CallError::Decode(format!("{path} is not a valid URL: {err}")))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let meter = call.budget.map(|(budget_call, name)| Meter {
            budgets: self.budgets.as_ref(),
            call: budget_call,
            budget: Some(name),
            usage,
        });
        let snapshot = send_metered(&self.retry, call.idempotent, meter.as_ref(), |_| {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token);
            if let Some(body) = body {
                request = request.json(body);
            }
            request
        })
        .await?;
        if snapshot.status.is_success() {
            Ok(snapshot)
        } else {
            Err(CallError::Status {
                status: snapshot.status,
                body: serde_json::from_slice(&snapshot.body).unwrap_or_default(),
            })
        }
    }

    /// `GET {base}{path}` decoded as `T`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        query: &[(&str, String)],
        call: Call<'_>,
    ) -> std::result::Result<T, CallError> {
        let snapshot = self
            .send(Method::GET, path, token, query, None, call)
            .await?;
        serde_json::from_slice(&snapshot.body)
            .map_err(|err| CallError::Decode(format!("{path}: {err}")))
    }

    /// `POST {base}{path}` with a JSON body, decoded as `T`.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &Value,
        call: Call<'_>,
    ) -> std::result::Result<T, CallError> {
        let snapshot = self
            .send(Method::POST, path, token, &[], Some(body), call)
            .await?;
        serde_json::from_slice(&snapshot.body)
            .map_err(|err| CallError::Decode(format!("{path}: {err}")))
    }

    /// `GET {base}{path}`, the raw answer (media downloads).
    pub(crate) async fn download(
        &self,
        path: &str,
        token: &str,
    ) -> std::result::Result<Snapshot, CallError> {
        self.send(
            Method::GET,
            path,
            token,
            &[],
            None,
            Call {
                idempotent: true,
                budget: None,
            },
        )
        .await
    }

    /// `POST {base}/2/oauth2/token` with `form`, as this OAuth client.
    pub(crate) async fn token(
        &self,
        form: &[(&str, &str)],
    ) -> std::result::Result<TokenResponse, CallError> {
        let url = format!("{}/2/oauth2/token", self.base);
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        if self.client_secret.is_none() {
            // Public clients identify themselves in the body.
            fields.push(("client_id", &self.client_id));
        }
        // A refresh token is single-use: a refresh that timed out may have been spent, so
        // only failures to connect are retried (nothing reached X).
        let snapshot = send_metered(&self.retry, false, None, |_| {
            let request = self.http.post(&url).form(&fields);
            match &self.client_secret {
                Some(secret) => request.basic_auth(&self.client_id, Some(secret.expose_secret())),
                None => request,
            }
        })
        .await?;
        if !snapshot.status.is_success() {
            return Err(CallError::Status {
                status: snapshot.status,
                body: serde_json::from_slice(&snapshot.body).unwrap_or_default(),
            });
        }
        serde_json::from_slice(&snapshot.body)
            .map_err(|err| CallError::Decode(format!("token endpoint: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_headers_become_remaining_calls() {
        let mut headers = HeaderMap::new();
        assert_eq!(usage(&headers), None);
        headers.insert("x-rate-limit-remaining", "14".parse().unwrap());
        headers.insert("x-rate-limit-reset", "1".parse().unwrap());
        assert_eq!(
            usage(&headers),
            Some(Pushback::Remaining {
                remaining: 14,
                reset_after: Duration::ZERO
            })
        );
    }

    #[test]
    fn error_bodies_give_code_and_text() {
        let problem: ErrorBody = serde_json::from_str(
            r#"{"title":"Forbidden","detail":"You are not allowed to send to this user.","type":"about:blank","status":403}"#,
        )
        .unwrap();
        assert_eq!(code(StatusCode::FORBIDDEN, &problem), "403");
        assert_eq!(
            describe(StatusCode::FORBIDDEN, &problem),
            "You are not allowed to send to this user."
        );
        let legacy: ErrorBody =
            serde_json::from_str(r#"{"errors":[{"code":88,"message":"Rate limit exceeded"}]}"#)
                .unwrap();
        assert_eq!(code(StatusCode::TOO_MANY_REQUESTS, &legacy), "88");
        assert_eq!(
            describe(StatusCode::TOO_MANY_REQUESTS, &legacy),
            "Rate limit exceeded"
        );
        let oauth: ErrorBody = serde_json::from_str(
            r#"{"error":"invalid_request","error_description":"Value passed for the token was invalid."}"#,
        )
        .unwrap();
        assert_eq!(
            describe(StatusCode::BAD_REQUEST, &oauth),
            "Value passed for the token was invalid."
        );
    }
}
