//! `RedditConfig`: the two Reddit hosts (`www` for OAuth tokens, `oauth` for the API), the
//! OAuth client the gateway is, and the User-Agent Reddit requires on every call. Built once by
//! the server from `INBOX_REDDIT_*`; library code reads no environment.

use std::{sync::Arc, time::Duration};

use inbox_core::{Error, RateBudgets, Result, Unlimited};
use inbox_http::{ClientOptions, RetryConfig};
use secrecy::SecretString;

/// The API host (`INBOX_REDDIT_API_BASE`).
pub const DEFAULT_API_BASE: &str = "https://oauth.reddit.com";

/// The host of the authorization page and the token endpoint (`INBOX_REDDIT_WWW_BASE`).
pub const DEFAULT_WWW_BASE: &str = "https://www.reddit.com";

/// The scopes the gateway asks for: private messages (read, send, mark read) and identity.
pub const SCOPES: &str = "identity privatemessages";

/// Validated configuration of the Reddit adapter.
#[derive(Debug, Clone)]
pub struct RedditConfig {
    api_base: String,
    www_base: String,
    client_id: String,
    client_secret: Option<SecretString>,
    retry: RetryConfig,
    http: ClientOptions,
    budgets: Arc<dyn RateBudgets>,
    refresh_lead: Duration,
    max_pages: u32,
}

impl RedditConfig {
    /// Starts a configuration for the OAuth client `client_id`, identifying itself with
    /// `user_agent` (Reddit's rule: `<platform>:<app ID>:<version> (by /u/<username>)`,
    /// <https://github.com/reddit-archive/reddit/wiki/API>).
    pub fn builder(
        client_id: impl Into<String>,
        user_agent: impl Into<String>,
    ) -> RedditConfigBuilder {
        let http = ClientOptions {
            user_agent: user_agent.into(),
            ..ClientOptions::default()
        };
        RedditConfigBuilder {
            config: RedditConfig {
                api_base: DEFAULT_API_BASE.to_owned(),
                www_base: DEFAULT_WWW_BASE.to_owned(),
                client_id: client_id.into(),
                client_secret: None,
                retry: RetryConfig::default(),
                http,
                budgets: Arc::new(Unlimited),
                refresh_lead: Duration::from_secs(10 * 60),
                max_pages: 5,
            },
        }
    }

    /// The API base URL, without a trailing slash.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// The `www` base URL, without a trailing slash.
    pub fn www_base(&self) -> &str {
        &self.www_base
    }

    /// The OAuth client id (also the key of the shared per-client budget).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The OAuth client secret; `None` for an installed app (empty secret).
    pub fn client_secret(&self) -> Option<&SecretString> {
        self.client_secret.as_ref()
    }

    /// The User-Agent every call carries.
    pub fn user_agent(&self) -> &str {
        &self.http.user_agent
    }

    /// How calls are retried.
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// HTTP client options (the User-Agent among them).
    pub fn http(&self) -> &ClientOptions {
        &self.http
    }

    /// Where Reddit's usage headers and throttling are reported.
    pub fn budgets(&self) -> &Arc<dyn RateBudgets> {
        &self.budgets
    }

    /// How long before an access token lapses the gateway renews it.
    pub fn refresh_lead(&self) -> Duration {
        self.refresh_lead
    }

    /// The most inbox pages one poll reads.
    pub fn max_pages(&self) -> u32 {
        self.max_pages
    }
}

/// Builds a [`RedditConfig`]; see [`RedditConfig::builder`].
#[derive(Debug, Clone)]
pub struct RedditConfigBuilder {
    config: RedditConfig,
}

impl RedditConfigBuilder {
    /// The API base (default `https://oauth.reddit.com`).
    pub fn api_base(mut self, url: impl Into<String>) -> Self {
        self.config.api_base = url.into();
        self
    }

    /// The `www` base (default `https://www.reddit.com`).
    pub fn www_base(mut self, url: impl Into<String>) -> Self {
        self.config.www_base = url.into();
        self
    }

    /// The client secret (`None` or empty for an installed app).
    pub fn client_secret(mut self, secret: Option<SecretString>) -> Self {
        self.config.client_secret = secret;
        self
    }

    /// The whole retry configuration (default: 20 s budget).
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.config.retry = retry;
        self
    }

    /// Timeouts of the HTTP client (its User-Agent stays the configured one).
    pub fn timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.config.http.connect_timeout = connect;
        self.config.http.request_timeout = request;
        self
    }

    /// The rate budgets usage headers and throttling are reported to (default: none).
    pub fn budgets(mut self, budgets: Arc<dyn RateBudgets>) -> Self {
        self.config.budgets = budgets;
        self
    }

    /// How long before expiry access tokens are renewed (default 10 minutes).
    pub fn refresh_lead(mut self, lead: Duration) -> Self {
        self.config.refresh_lead = lead;
        self
    }

    /// The most pages of 100 inbox items one poll reads (default 5).
    pub fn max_pages(mut self, pages: u32) -> Self {
        self.config.max_pages = pages;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `InvalidInput` naming the setting: a base URL that is not an http(s) URL, a blank client
    /// id, a User-Agent Reddit would throttle (under 7 characters, as prawcore refuses), or zero
    /// pages.
    pub fn build(mut self) -> Result<RedditConfig> {
        self.config.api_base = check_url("reddit.api_base", &self.config.api_base)?;
        self.config.www_base = check_url("reddit.www_base", &self.config.www_base)?;
        self.config.client_id = self.config.client_id.trim().to_owned();
        if self.config.client_id.is_empty() {
            return Err(Error::invalid("reddit.client_id", "the client id is blank"));
        }
        let agent = self.config.http.user_agent.trim().to_owned();
        if agent.len() < 7 || agent.chars().any(char::is_control) {
            return Err(Error::invalid(
                "reddit.user_agent",
                "Reddit needs a descriptive User-Agent such as \
                 `linux:com.example.inboxgw:v0.1.0 (by /u/yourname)`",
            ));
        }
        self.config.http.user_agent = agent;
        if self.config.max_pages == 0 {
            return Err(Error::invalid("reddit.max_pages", "read at least one page"));
        }
        self.config.client_secret = self
            .config
            .client_secret
            .filter(|s| !secrecy::ExposeSecret::expose_secret(s).is_empty());
        Ok(self.config)
    }
}

fn check_url(param: &str, raw: &str) -> Result<String> {
    let text = raw.trim().trim_end_matches('/').to_owned();
    let parsed = url::Url::parse(&text)
        .map_err(|err| Error::invalid(param, format!("`{text}` is not a URL: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || parsed.query().is_some()
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
    fn validation_names_the_setting() {
        let config = RedditConfig::builder("cid", "linux:test:v1 (by /u/me)")
            .client_secret(Some(SecretString::from("")))
            .build()
            .unwrap();
        assert_eq!(config.api_base(), DEFAULT_API_BASE);
        assert!(
            config.client_secret().is_none(),
            "an empty secret is an installed app"
        );
        let param = |builder: RedditConfigBuilder| match builder.build() {
            Err(Error::InvalidInput { param, .. }) => param.unwrap(),
            other => panic!("expected InvalidInput, got {other:?}"),
        };
        assert_eq!(
            param(RedditConfig::builder("cid", "bot")),
            "reddit.user_agent"
        );
        assert_eq!(
            param(RedditConfig::builder(" ", "linux:x:v1")),
            "reddit.client_id"
        );
        assert_eq!(
            param(RedditConfig::builder("c", "linux:x:v1").api_base("oauth")),
            "reddit.api_base"
        );
    }
}
