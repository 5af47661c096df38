//! The SSRF-safe HTTP sender: one signed POST per attempt, and a description of what happened
//! that is fit for the customer-visible attempt log.
//!
//! The client never follows redirects (a 3xx is a failed attempt, as Standard Webhooks says:
//! following one would let a public URL bounce the gateway to a private one), ignores proxy
//! environment variables (a proxy would resolve names where the guard cannot see them), resolves
//! names through [`GuardedResolver`], and checks literal-IP URLs itself because the connector
//! does not resolve those.

use std::{error::Error as StdError, fmt, io, time::Duration};

use chrono::Utc;
use inbox_core::Error;
use reqwest::{StatusCode, header, redirect};
use secrecy::SecretString;
use url::Host;

use crate::{
    guard::{BlockedAddress, GuardedResolver, check_ip, parse_webhook_url},
    schedule::parse_retry_after,
    signer::{InvalidSecret, sign},
};

/// The most of a response body kept for the attempt log.
pub const MAX_RESPONSE_BODY: usize = 2048;

/// The default request timeout (Standard Webhooks suggests 15–30 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// How the sender behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderConfig {
    /// The whole request, connect to last body byte. Default 15 s.
    pub timeout: Duration,
    /// Allow loopback, private, link-local and other non-public addresses
    /// (`INBOX_WEBHOOK_ALLOW_PRIVATE`). Default `false`.
    pub allow_private: bool,
    /// The `user-agent` header. Default `inboxgw-webhooks/<version>`.
    pub user_agent: String,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            timeout: DEFAULT_TIMEOUT,
            allow_private: false,
            user_agent: concat!("inboxgw-webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// One request to send.
#[derive(Clone, Copy)]
pub struct OutgoingWebhook<'a> {
    /// The endpoint URL.
    pub url: &'a str,
    /// The endpoint's valid secrets, current first.
    pub secrets: &'a [SecretString],
    /// The event id, sent as `webhook-id`.
    pub event_id: &'a str,
    /// The exact JSON body.
    pub payload: &'a str,
}

impl fmt::Debug for OutgoingWebhook<'_> {
    // Neither the secrets nor the body (message text) belong in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingWebhook")
            .field("url", &self.url)
            .field("event_id", &self.event_id)
            .finish_non_exhaustive()
    }
}

/// Why an attempt failed, worded for the attempt log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The stored URL is not a usable webhook URL.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The URL leads to an address the SSRF guard refuses.
    #[error("{0}")]
    Blocked(BlockedAddress),
    /// An endpoint secret cannot sign.
    #[error("{0}")]
    Signing(InvalidSecret),
    /// No complete response within the timeout.
    #[error("timed out after {}", describe_duration(*.0))]
    Timeout(Duration),
    /// Nothing listens at the address.
    #[error("connection refused")]
    ConnectionRefused,
    /// The host name did not resolve.
    #[error("could not resolve host: {0}")]
    Dns(String),
    /// Connecting failed otherwise (TLS, reset, unreachable, …).
    #[error("connection failed: {0}")]
    Connect(String),
    /// The endpoint answered with a redirect, which is never followed.
    #[error("redirect ({0}) not followed")]
    Redirect(u16),
    /// The endpoint answered with a non-2xx, non-3xx status.
    #[error("HTTP {0}")]
    Status(u16),
    /// Anything else that went wrong with the request.
    #[error("request failed: {0}")]
    Other(String),
}

/// `15s`, or `250ms` below a second.
fn describe_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// What one attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    /// The `webhook-timestamp` sent (unix seconds of this attempt).
    pub timestamp: i64,
    /// The endpoint's status, if it answered.
    pub status: Option<u16>,
    /// Why it failed; `None` on a 2xx.
    pub error: Option<SendError>,
    /// The start of the response body, at most [`MAX_RESPONSE_BODY`] bytes, lossily decoded.
    pub response_body: Option<String>,
    /// The endpoint's `Retry-After`, read on 429 and 503 only.
    pub retry_after: Option<Duration>,
}

impl SendOutcome {
    /// Whether the endpoint accepted the webhook (answered 2xx).
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    fn failed(timestamp: i64, error: SendError) -> Self {
        SendOutcome {
            timestamp,
            status: None,
            error: Some(error),
            response_body: None,
            retry_after: None,
        }
    }
}

/// Sends signed webhooks. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    config: SenderConfig,
}

impl WebhookSender {
    /// A sender with its own connection pool.
    ///
    /// # Errors
    /// `Error::Internal` when the HTTP client cannot be built (no TLS roots, …).
    pub fn new(config: SenderConfig) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .redirect(redirect::Policy::none())
            .timeout(config.timeout)
            .no_proxy()
            .dns_resolver(GuardedResolver {
                allow_private: config.allow_private,
            })
            .build()
            .map_err(|err| Error::internal("building the webhook HTTP client failed", err))?;
        Ok(WebhookSender { client, config })
    }

    /// The configuration.
    pub fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// Signs and POSTs one webhook; never fails, the outcome says what happened.
    pub async fn send(&self, webhook: OutgoingWebhook<'_>) -> SendOutcome {
        let timestamp = Utc::now().timestamp();
        let url = match parse_webhook_url(webhook.url) {
            Ok(url) => url,
            Err(err) => {
                return SendOutcome::failed(timestamp, SendError::InvalidUrl(err.to_string()));
            }
        };
        if !self.config.allow_private {
            let literal = match url.host() {
                Some(Host::Ipv4(ip)) => Some(ip.into()),
                Some(Host::Ipv6(ip)) => Some(ip.into()),
                _ => None,
            };
            if let Some(Err(blocked)) = literal.map(|ip| check_ip(None, ip)) {
                return SendOutcome::failed(timestamp, SendError::Blocked(blocked));
            }
        }
        let signature = match sign(
            webhook.secrets,
            webhook.event_id,
            timestamp,
            webhook.payload.as_bytes(),
        ) {
            Ok(signature) => signature,
            Err(err) => return SendOutcome::failed(timestamp, SendError::Signing(err)),
        };

        let request = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("webhook-id", webhook.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(webhook.payload.to_owned());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(err) => return SendOutcome::failed(timestamp, self.describe(&err)),
        };

        let status = response.status();
        let retry_after = if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, Utc::now()))
        } else {
            None
        };
        let error = if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(SendError::Redirect(status.as_u16()))
        } else {
            Some(SendError::Status(status.as_u16()))
        };

        // Only the start of the body is kept; a body that errors or times out after the status
        // arrived does not change the outcome, the endpoint already answered.
        let mut body = Vec::new();
        while body.len() < MAX_RESPONSE_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }

        SendOutcome {
            timestamp,
            status: Some(status.as_u16()),
            error,
            response_body: truncate_body(&body),
            retry_after,
        }
    }

    /// Turns a reqwest error into the attempt log's wording, looking through its sources for
    /// the guard's refusal and the OS error.
    fn describe(&self, err: &reqwest::Error) -> SendError {
        let sources = || error_sources(err);
        if let Some(blocked) = sources().find_map(|source| source.downcast_ref::<BlockedAddress>())
        {
            return SendError::Blocked(blocked.clone());
        }
        if err.is_timeout() {
            return SendError::Timeout(self.config.timeout);
        }
        let io_kind = sources()
            .find_map(|source| source.downcast_ref::<io::Error>())
            .map(io::Error::kind);
        if io_kind == Some(io::ErrorKind::ConnectionRefused) {
            return SendError::ConnectionRefused;
        }
        // The innermost message is the specific one ("tls handshake eof", "No route to host");
        // the outer ones add only "error sending request" and, in reqwest's, the URL, which may
        // carry a customer's token in its query and stays out of the log.
        let innermost = sources()
            .last()
            .map(ToString::to_string)
            .unwrap_or_else(|| message_without_url(err));
        let chain = sources()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ");
        if chain.contains("dns error") || chain.contains("failed to lookup address") {
            SendError::Dns(innermost)
        } else if err.is_connect() {
            SendError::Connect(innermost)
        } else {
            SendError::Other(innermost)
        }
    }
}

/// The sources below `err`, outermost first.
fn error_sources<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut next = err.source();
    std::iter::from_fn(move || {
        let current = next?;
        next = current.source();
        Some(current)
    })
}

/// reqwest's own message without the URL it appends.
fn message_without_url(err: &reqwest::Error) -> String {
    let message = err.to_string();
    match err.url() {
        Some(url) => message.replace(&format!(" for url ({url})"), ""),
        None => message,
    }
}

/// The first [`MAX_RESPONSE_BODY`] bytes of `body` as text, cut at a character boundary;
/// `None` when empty.
fn truncate_body(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_RESPONSE_BODY)]);
    let mut end = text.len().min(MAX_RESPONSE_BODY);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_cut_to_two_kib_at_a_character_boundary() {
        assert_eq!(truncate_body(b""), None);
        assert_eq!(truncate_body(b"ok").as_deref(), Some("ok"));
        let long = "é".repeat(MAX_RESPONSE_BODY);
        let cut = truncate_body(long.as_bytes()).unwrap();
        assert!(cut.len() <= MAX_RESPONSE_BODY && cut.chars().all(|c| c == 'é'));
        assert_eq!(cut.len(), MAX_RESPONSE_BODY);
    }

    #[test]
    fn errors_read_as_the_attempt_log_shows_them() {
        assert_eq!(
            SendError::Timeout(Duration::from_secs(15)).to_string(),
            "timed out after 15s"
        );
        assert_eq!(
            SendError::Timeout(Duration::from_millis(250)).to_string(),
            "timed out after 250ms"
        );
        assert_eq!(
            SendError::Redirect(301).to_string(),
            "redirect (301) not followed"
        );
        assert_eq!(SendError::Status(500).to_string(), "HTTP 500");
        assert_eq!(
            SendError::ConnectionRefused.to_string(),
            "connection refused"
        );
    }
}
