//! `XConfig`: where the X API lives, which OAuth 2.0 client the gateway is, and whether X
//! pushes DMs to the gateway (a consumer secret configured) or the gateway polls them. Built
//! once by the server from `INBOX_X_*`; library code reads no environment.

use std::{sync::Arc, time::Duration};

use inbox_core::{Error, RateBudgets, Result, Unlimited};
use inbox_http::{ClientOptions, RetryConfig};
use secrecy::SecretString;

/// The X API (`INBOX_X_API_BASE`): REST v2 and the OAuth 2.0 token endpoint.
pub const DEFAULT_API_BASE: &str = "https://api.x.com";

/// Where users grant access. The docs and X's own SDK (`xdk`) use `x.com/i/oauth2/authorize`
/// (<https://docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code>).
pub const DEFAULT_AUTHORIZE_URL: &str = "https://x.com/i/oauth2/authorize";

/// The scopes the gateway asks for: read and write DMs, the user lookups DMs need, and
/// `offline.access`, without which X issues no refresh token.
pub const SCOPES: &str = "dm.read dm.write tweet.read users.read offline.access";

/// Validated configuration of the X adapter.
#[derive(Debug, Clone)]
pub struct XConfig {
    api_base: String,
    authorize_url: String,
    client_id: String,
    client_secret: Option<SecretString>,
    consumer_secret: Option<SecretString>,
    retry: RetryConfig,
    http: ClientOptions,
    budgets: Arc<dyn RateBudgets>,
    refresh_lead: Duration,
    max_pages: u32,
}

impl XConfig {
    /// Starts a configuration for the OAuth 2.0 client `client_id` against the X API at
    /// `api_base` (`https://api.x.com` in production, a fake server in tests).
    pub fn builder(api_base: impl Into<String>, client_id: impl Into<String>) -> XConfigBuilder {
        XConfigBuilder {
            api_base: api_base.into(),
            authorize_url: DEFAULT_AUTHORIZE_URL.to_owned(),
            client_id: client_id.into(),
            client_secret: None,
            consumer_secret: None,
            retry: RetryConfig::default(),
            http: ClientOptions::default(),
            budgets: Arc::new(Unlimited),
            refresh_lead: Duration::from_secs(15 * 60),
            max_pages: 5,
        }
    }

    /// The API base URL, without a trailing slash.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// The authorization page of the OAuth connect flow.
    pub fn authorize_url(&self) -> &str {
        &self.authorize_url
    }

    /// The OAuth 2.0 client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The OAuth 2.0 client secret of a confidential client; `None` for a public client.
    pub fn client_secret(&self) -> Option<&SecretString> {
        self.client_secret.as_ref()
    }

    /// The app's consumer secret, which signs webhooks; `None` means X DMs are polled.
    pub fn consumer_secret(&self) -> Option<&SecretString> {
        self.consumer_secret.as_ref()
    }

    /// How calls are retried.
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// HTTP client options.
    pub fn http(&self) -> &ClientOptions {
        &self.http
    }

    /// Where X's usage headers and throttling are reported.
    pub fn budgets(&self) -> &Arc<dyn RateBudgets> {
        &self.budgets
    }

    /// How long before an access token lapses the gateway renews it.
    pub fn refresh_lead(&self) -> Duration {
        self.refresh_lead
    }

    /// The most `GET /2/dm_events` pages one poll reads.
    pub fn max_pages(&self) -> u32 {
        self.max_pages
    }
}

/// Builds an [`XConfig`]; see [`XConfig::builder`].
#[derive(Debug, Clone)]
pub struct XConfigBuilder {
    api_base: String,
    authorize_url: String,
    client_id: String,
    client_secret: Option<SecretString>,
    consumer_secret: Option<SecretString>,
    retry: RetryConfig,
    http: ClientOptions,
    budgets: Arc<dyn RateBudgets>,
    refresh_lead: Duration,
    max_pages: u32,
}

impl XConfigBuilder {
    /// The authorization page (default `https://x.com/i/oauth2/authorize`).
    pub fn authorize_url(mut self, url: impl Into<String>) -> Self {
        self.authorize_url = url.into();
        self
    }

    /// The client secret, for a confidential client (token calls then use HTTP Basic auth).
    pub fn client_secret(mut self, secret: Option<SecretString>) -> Self {
        self.client_secret = secret;
        self
    }

    /// The consumer (API) secret: turns on webhook mode (CRC and signature checks on
    /// `/webhooks/x`) instead of polling.
    pub fn consumer_secret(mut self, secret: Option<SecretString>) -> Self {
        self.consumer_secret = secret;
        self
    }

    /// The whole retry configuration (default: 20 s budget).
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// HTTP client options.
    pub fn http(mut self, http: ClientOptions) -> Self {
        self.http = http;
        self
    }

    /// The rate budgets usage headers and throttling are reported to (default: none).
    pub fn budgets(mut self, budgets: Arc<dyn RateBudgets>) -> Self {
        self.budgets = budgets;
        self
    }

    /// How long before expiry access tokens are renewed (default 15 minutes of their 2 h).
    pub fn refresh_lead(mut self, lead: Duration) -> Self {
        self.refresh_lead = lead;
        self
    }

    /// The most pages of 100 DM events one poll reads before it continues in the next poll
    /// (default 5).
    pub fn max_pages(mut self, pages: u32) -> Self {
        self.max_pages = pages;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `InvalidInput` naming the setting: a base or authorize URL that is not an http(s) URL,
    /// a blank client id, or zero pages.
    pub fn build(self) -> Result<XConfig> {
        let api_base = check_url("x.api_base", &self.api_base)?;
        let authorize_url = check_url("x.authorize_url", &self.authorize_url)?;
        let client_id = self.client_id.trim().to_owned();
        if client_id.is_empty() {
            return Err(Error::invalid("x.client_id", "the client id is blank"));
        }
        if self.max_pages == 0 {
            return Err(Error::invalid("x.max_pages", "read at least one page"));
        }
        Ok(XConfig {
            api_base,
            authorize_url,
            client_id,
            client_secret: self.client_secret,
            consumer_secret: self.consumer_secret,
            retry: self.retry,
            http: self.http,
            budgets: self.budgets,
            refresh_lead: self.refresh_lead,
            max_pages: self.max_pages,
        })
    }
}

/// An http(s) URL with a host and no query, without a trailing slash.
fn check_url(param: &str, raw: &str) -> Result<String> {
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
            format!("`{text}` must be an http(s) URL without a query"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let config = XConfig::builder("https://api.x.com/", "client")
            .build()
            .unwrap();
        assert_eq!(config.api_base(), "https://api.x.com");
        assert_eq!(config.authorize_url(), DEFAULT_AUTHORIZE_URL);
        assert!(config.consumer_secret().is_none());
        let param = |builder: XConfigBuilder| match builder.build() {
            Err(Error::InvalidInput { param, .. }) => param.unwrap(),
            other => panic!("expected InvalidInput, got {other:?}"),
        };
        assert_eq!(param(XConfig::builder("api.x.com", "c")), "x.api_base");
        assert_eq!(param(XConfig::builder("https://x", " ")), "x.client_id");
        assert_eq!(
            param(XConfig::builder("https://x", "c").authorize_url("ftp://x")),
            "x.authorize_url"
        );
        assert_eq!(
            param(XConfig::builder("https://x", "c").max_pages(0)),
            "x.max_pages"
        );
    }
}
