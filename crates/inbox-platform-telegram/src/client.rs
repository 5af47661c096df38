//! Raw Bot API calls: `POST {base}/bot{token}/{method}` with a JSON body, the `{ok, result}`
//! envelope, and retries of flood control (`429` with `parameters.retry_after`) and `5xx`
//! within the configured budget (<https://core.telegram.org/bots/api#making-requests>).
//!
//! The token is part of every URL, so URLs never leave this module: transport errors have it
//! removed (`reqwest::Error::without_url`) and logs name only the method.

use std::{fmt, sync::Arc, time::Duration};

use http::StatusCode;
use inbox_core::{BudgetCall, BudgetReport, Error, Pushback, RateBudgets, Result};
use inbox_http::{
    Attempt, HttpFailure, RetryConfig, RetryError, Snapshot, Transience, classify_status,
    classify_transport, retry, retry_after, send_with_retry,
};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::{TelegramConfig, wire};

/// The shortest timeout an attempt gets even when the budget is nearly spent, so that a last
/// attempt is not doomed from the start.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// A bot token, shaped like `123456:ABC-DEF…`.
#[derive(Clone)]
pub(crate) struct BotToken(SecretString);

impl BotToken {
    /// Accepts `<digits>:<A-Za-z0-9_->`; the strict charset also keeps the token from altering
    /// the request path it is pasted into.
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        let (id, secret) = raw.split_once(':')?;
        let id_ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
        let secret_ok = !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        (id_ok && secret_ok).then(|| BotToken(SecretString::from(raw.to_owned())))
    }

    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BotToken([REDACTED])")
    }
}

/// A failed Bot API call, before it is mapped to the core error for the operation at hand.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Telegram answered `{"ok": false, …}`.
    Api { code: i64, description: String },
    /// No answer: connection refused, timeout, broken body. URL removed.
    Transport(reqwest::Error),
    /// An HTTP error without a Bot API body (a proxy's page, a wrong base URL).
    Http(StatusCode),
    /// `ok: true`, but the result is not what the method returns.
    Decode(String),
    /// Flood control or 5xx that outlasted the retry budget.
    Exhausted {
        last: Box<CallError>,
        retry_after: Option<Duration>,
    },
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Api { code, description } => write!(f, "{description} ({code})"),
            CallError::Transport(error) => write!(f, "no answer: {error}"),
            CallError::Http(status) => write!(f, "HTTP {status} without a Bot API answer"),
            CallError::Decode(message) => write!(f, "unexpected result: {message}"),
            CallError::Exhausted { last, .. } => write!(f, "{last}"),
        }
    }
}

impl From<RetryError<CallError>> for CallError {
    fn from(error: RetryError<CallError>) -> Self {
        match error {
            RetryError::Permanent(error) => error,
            RetryError::Exhausted {
                error, retry_after, ..
            } => CallError::Exhausted {
                last: Box::new(error),
                retry_after,
            },
        }
    }
}

/// How one method is called.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    /// Whether repeating the call is harmless, so that timeouts may be retried. Sends are not:
    /// a send that timed out may have been delivered.
    pub(crate) idempotent: bool,
    /// A fixed request timeout (long polls); otherwise the client's, bounded by the budget.
    pub(crate) timeout: Option<Duration>,
    /// The rate budget flood control on this call is reported against, with the call's
    /// identities (bot and chat).
    pub(crate) budget: Option<(BudgetCall<'a>, &'static str)>,
}

impl Call<'_> {
    pub(crate) const IDEMPOTENT: Call<'static> = Call {
        idempotent: true,
        timeout: None,
        budget: None,
    };
    pub(crate) const SEND: Call<'static> = Call {
        idempotent: false,
        timeout: None,
        budget: None,
    };
}

/// The HTTP side of the adapter.
#[derive(Debug)]
pub(crate) struct BotApi {
    http: reqwest::Client,
    base: String,
    retry: RetryConfig,
    request_timeout: Duration,
    budgets: Arc<dyn RateBudgets>,
}

impl BotApi {
    pub(crate) fn new(config: &TelegramConfig) -> Result<Self> {
        Ok(Self {
            http: config.http().build()?,
            base: config.api_base().to_owned(),
            retry: config.retry().clone(),
            request_timeout: config.http().request_timeout,
            budgets: config.budgets().clone(),
        })
    }

    /// Calls `method` with JSON `params` and decodes its `result`.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        token: &BotToken,
        method: &'static str,
        params: &serde_json::Value,
        call: Call<'_>,
    ) -> std::result::Result<T, CallError> {
        let url = format!("{}/bot{}/{method}", self.base, token.expose());
        let result = retry(&self.retry, |ctx| {
            let timeout = call.timeout.unwrap_or_else(|| {
                self.request_timeout
                    .min(ctx.remaining().max(MIN_ATTEMPT_TIMEOUT))
            });
            let request = self.http.post(&url).json(params).timeout(timeout);
            async move {
                let outcome = match request.send().await {
                    Ok(response) => Snapshot::read(response).await,
                    Err(error) => Err(error.without_url()),
                };
                let attempt = match outcome {
                    Ok(snapshot) => classify(snapshot),
                    Err(error) => match classify_transport(&error, call.idempotent) {
                        Transience::Permanent => Attempt::Done(Err(CallError::Transport(error))),
                        _ => Attempt::Backoff(CallError::Transport(error)),
                    },
                };
                if let Attempt::Done(Err(error))
                | Attempt::Backoff(error)
                | Attempt::RetryAfter { error, .. } = &attempt
                {
                    tracing::debug!(method, attempt = ctx.number, %error, "Telegram call failed");
                }
                // Told before waiting, so every other sender to this chat (on any replica)
                // holds back until Telegram takes messages again.
                if let (Attempt::RetryAfter { after, .. }, Some((budget_call, budget))) =
                    (&attempt, call.budget)
                {
                    self.budgets
                        .report(&BudgetReport {
                            call: budget_call,
                            budget: Some(budget),
                            pushback: Pushback::Exhausted {
                                retry_after: *after,
                            },
                        })
                        .await;
                }
                attempt
            }
        })
        .await
        .map_err(CallError::from)?;
        serde_json::from_value(result).map_err(|err| CallError::Decode(format!("{method}: {err}")))
    }

    /// Downloads `file_path` (from `getFile`) from `{base}/file/bot{token}/{file_path}`.
    pub(crate) async fn download(
        &self,
        token: &BotToken,
        file_path: &str,
    ) -> std::result::Result<Snapshot, CallError> {
        let url = format!("{}/file/bot{}/{file_path}", self.base, token.expose());
        let snapshot = send_with_retry(&self.retry, true, |_| self.http.get(&url))
            .await
            .map_err(|error| match error {
                RetryError::Permanent(failure) => failure_to_call_error(failure),
                RetryError::Exhausted {
                    error, retry_after, ..
                } => CallError::Exhausted {
                    last: Box::new(failure_to_call_error(error)),
                    retry_after,
                },
            })?;
        if snapshot.status.is_success() {
            return Ok(snapshot);
        }
        // The file server answers errors with the usual envelope.
        Err(
            match serde_json::from_slice::<wire::Envelope>(&snapshot.body) {
                Ok(envelope) => CallError::Api {
                    code: envelope
                        .error_code
                        .unwrap_or(i64::from(snapshot.status.as_u16())),
                    description: envelope
                        .description
                        .unwrap_or_else(|| snapshot.status.to_string()),
                },
                Err(_) => CallError::Http(snapshot.status),
            },
        )
    }
}

fn failure_to_call_error(failure: HttpFailure) -> CallError {
    match failure {
        HttpFailure::Status(snapshot) => CallError::Http(snapshot.status),
        HttpFailure::Transport(error) => CallError::Transport(error),
    }
}

/// What one answer means for the retry loop.
fn classify(snapshot: Snapshot) -> Attempt<serde_json::Value, CallError> {
    let status = snapshot.status;
    let envelope = match serde_json::from_slice::<wire::Envelope>(&snapshot.body) {
        Ok(envelope) => envelope,
        Err(err) => {
            return match classify_status(status, &snapshot.headers) {
                Transience::Permanent if status.is_success() => Attempt::Done(Err(
                    CallError::Decode(format!("the body is not JSON: {err}")),
                )),
                Transience::Permanent => Attempt::Done(Err(CallError::Http(status))),
                Transience::RetryAfter(after) => Attempt::RetryAfter {
                    error: CallError::Http(status),
                    after,
                },
                Transience::Backoff => Attempt::Backoff(CallError::Http(status)),
            };
        }
    };
    if envelope.ok {
        return Attempt::Done(Ok(envelope.result.unwrap_or(serde_json::Value::Null)));
    }
    // `error_code` mirrors the HTTP status; the body's value wins because Telegram documents
    // that one (<https://core.telegram.org/bots/api#making-requests>).
    let code = envelope.error_code.unwrap_or(i64::from(status.as_u16()));
    let hint = envelope
        .parameters
        .and_then(|parameters| parameters.retry_after)
        .map(Duration::from_secs)
        .or_else(|| retry_after(&snapshot.headers));
    let error = CallError::Api {
        code,
        description: envelope
            .description
            .unwrap_or_else(|| format!("error {code}")),
    };
    let transient = code == 429 || (500..600).contains(&code);
    match (transient, hint) {
        (false, _) => Attempt::Done(Err(error)),
        (true, Some(after)) => Attempt::RetryAfter { error, after },
        (true, None) => Attempt::Backoff(error),
    }
}

/// Maps call failures every operation treats alike.
pub(crate) fn to_core(error: CallError) -> Error {
    use inbox_core::PlatformKind::Telegram;
    match error {
        CallError::Api {
            code: 401,
            description,
        } => Error::ReauthRequired {
            platform: Telegram,
            message: format!(
                "Telegram rejected the bot token ({description}); it was revoked or replaced in @BotFather"
            ),
        },
        // 409: a webhook is set while polling, or another process polls the same bot.
        CallError::Api {
            code: 409,
            description,
        } => Error::Unavailable {
            message: format!("Telegram: {description}"),
            retry_after: None,
        },
        CallError::Api { code, description } => Error::Platform {
            platform: Telegram,
            code: code.to_string(),
            message: description,
        },
        CallError::Exhausted { last, retry_after } => {
            inbox_http::unavailable(Telegram, last, retry_after)
        }
        CallError::Transport(error) => Error::Unavailable {
            message: format!("Telegram did not answer: {error}"),
            retry_after: None,
        },
        CallError::Http(status) => Error::Platform {
            platform: Telegram,
            code: status.as_u16().to_string(),
            message: format!(
                "HTTP {status} without a Bot API answer; check the Telegram API base URL"
            ),
        },
        CallError::Decode(message) => {
            Error::internal_msg(format!("Telegram answered something unexpected: {message}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shapes() {
        assert!(BotToken::parse("123456:ABC-DEF_ghi").is_some());
        for bad in [
            "", "123456", ":abc", "abc:def", "123:", "123:a/b", "123:a?b", "123:a b",
        ] {
            assert!(BotToken::parse(bad).is_none(), "{bad:?}");
        }
        let token = BotToken::parse("1:secret").unwrap();
        assert_eq!(format!("{token:?}"), "BotToken([REDACTED])");
    }

    fn snapshot(status: u16, body: &str) -> Snapshot {
        Snapshot {
            status: StatusCode::from_u16(status).unwrap(),
            headers: http::HeaderMap::new(),
            body: body.to_owned().into_bytes().into(),
        }
    }

    #[test]
    fn flood_control_hints_come_from_parameters() {
        let attempt = classify(snapshot(
            429,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#,
        ));
        assert!(
            matches!(attempt, Attempt::RetryAfter { after, .. } if after == Duration::from_secs(3))
        );
    }

    #[test]
    fn server_errors_back_off_and_client_errors_end() {
        assert!(matches!(
            classify(snapshot(502, "<html>bad gateway</html>")),
            Attempt::Backoff(_)
        ));
        assert!(matches!(
            classify(snapshot(
                500,
                r#"{"ok":false,"error_code":500,"description":"Internal Server Error"}"#
            )),
            Attempt::Backoff(CallError::Api { code: 500, .. })
        ));
        assert!(matches!(
            classify(snapshot(
                403,
                r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#
            )),
            Attempt::Done(Err(CallError::Api { code: 403, .. }))
        ));
        assert!(matches!(
            classify(snapshot(404, "nope")),
            Attempt::Done(Err(CallError::Http(_)))
        ));
        assert!(matches!(
            classify(snapshot(200, "nope")),
            Attempt::Done(Err(CallError::Decode(_)))
        ));
        assert!(matches!(
            classify(snapshot(200, r#"{"ok":true,"result":true}"#)),
            Attempt::Done(Ok(_))
        ));
    }
}
