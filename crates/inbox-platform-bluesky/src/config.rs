//! `BlueskyConfig`: the default PDS entryway accounts log in at, the chat service the PDS
//! proxies to, and how patiently to talk to them. Built once by the server from
//! `INBOX_BLUESKY_SERVICE`; library code reads no environment.

use std::{sync::Arc, time::Duration};

use inbox_core::{Error, RateBudgets, Result, Unlimited};
use inbox_http::{ClientOptions, RetryConfig};

/// Where accounts log in unless their credentials name a `service`.
pub const DEFAULT_SERVICE: &str = "https://bsky.social";

/// The `atproto-proxy` header value that routes `chat.bsky.*` calls from the PDS to Bluesky's
/// chat service (<https://docs.bsky.app/docs/advanced-guides/api-directory>).
pub const CHAT_PROXY: &str = "did:web:api.bsky.chat#bsky_chat";

/// Validated configuration of the Bluesky adapter.
#[derive(Debug, Clone)]
pub struct BlueskyConfig {
    service: String,
    chat_proxy: String,
    retry: RetryConfig,
    http: ClientOptions,
    budgets: Arc<dyn RateBudgets>,
    refresh_lead: Duration,
}

impl BlueskyConfig {
    /// Starts a configuration whose accounts log in at `service` by default
    /// (`https://bsky.social` in production, a fake PDS in tests).
    pub fn builder(service: impl Into<String>) -> BlueskyConfigBuilder {
        BlueskyConfigBuilder {
            config: BlueskyConfig {
                service: service.into(),
                chat_proxy: CHAT_PROXY.to_owned(),
                retry: RetryConfig::default(),
                http: ClientOptions::default(),
                budgets: Arc::new(Unlimited),
                refresh_lead: Duration::from_secs(15 * 60),
            },
        }
    }

    /// The default service, without a trailing slash.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The `atproto-proxy` value of chat calls.
    pub fn chat_proxy(&self) -> &str {
        &self.chat_proxy
    }

    /// How calls are retried.
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// HTTP client options.
    pub fn http(&self) -> &ClientOptions {
        &self.http
    }

    /// Where throttling is reported.
    pub fn budgets(&self) -> &Arc<dyn RateBudgets> {
        &self.budgets
    }

    /// How long before the access JWT's `exp` the session is refreshed.
    pub fn refresh_lead(&self) -> Duration {
        self.refresh_lead
    }
}

/// Builds a [`BlueskyConfig`]; see [`BlueskyConfig::builder`].
#[derive(Debug, Clone)]
pub struct BlueskyConfigBuilder {
    config: BlueskyConfig,
}

impl BlueskyConfigBuilder {
    /// The chat service proxy value (default `did:web:api.bsky.chat#bsky_chat`).
    pub fn chat_proxy(mut self, proxy: impl Into<String>) -> Self {
        self.config.chat_proxy = proxy.into();
        self
    }

    /// The whole retry configuration (default: 20 s budget).
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.config.retry = retry;
        self
    }

    /// HTTP client options.
    pub fn http(mut self, http: ClientOptions) -> Self {
        self.config.http = http;
        self
    }

    /// The rate budgets throttling is reported to (default: none).
    pub fn budgets(mut self, budgets: Arc<dyn RateBudgets>) -> Self {
        self.config.budgets = budgets;
        self
    }

    /// How long before expiry sessions are refreshed (default 15 minutes, as the official
    /// Python SDK does).
    pub fn refresh_lead(mut self, lead: Duration) -> Self {
        self.config.refresh_lead = lead;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `InvalidInput` naming the setting: a service that is not an http(s) URL, or a proxy
    /// value that is not `did:…#service`.
    pub fn build(mut self) -> Result<BlueskyConfig> {
        self.config.service = service_url("bluesky.service", &self.config.service)?;
        let proxy = self.config.chat_proxy.trim();
        if !proxy.starts_with("did:") || !proxy.contains('#') {
            return Err(Error::invalid(
                "bluesky.chat_proxy",
                "the chat proxy is `did:…#service`, such as did:web:api.bsky.chat#bsky_chat",
            ));
        }
        self.config.chat_proxy = proxy.to_owned();
        Ok(self.config)
    }
}

/// An http(s) service URL without a trailing slash (shared with per-account `service`).
pub(crate) fn service_url(param: &str, raw: &str) -> Result<String> {
    let text = raw.trim().trim_end_matches('/').to_owned();
    let parsed = url::Url::parse(&text)
        .map_err(|err| Error::invalid(param, format!("`{text}` is not a URL: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(Error::invalid(
            param,
            format!("`{text}` must be an http(s) URL such as https://bsky.social"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_setting() {
        let config = BlueskyConfig::builder("https://bsky.social/")
            .build()
            .unwrap();
        assert_eq!(config.service(), "https://bsky.social");
        assert_eq!(config.chat_proxy(), CHAT_PROXY);
        let param = |builder: BlueskyConfigBuilder| match builder.build() {
            Err(Error::InvalidInput { param, .. }) => param.unwrap(),
            other => panic!("expected InvalidInput, got {other:?}"),
        };
        assert_eq!(
            param(BlueskyConfig::builder("bsky.social")),
            "bluesky.service"
        );
        assert_eq!(
            param(BlueskyConfig::builder("https://bsky.social").chat_proxy("api.bsky.chat")),
            "bluesky.chat_proxy"
        );
    }
}
