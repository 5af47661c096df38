//! `InstagramConfig`: where the Instagram APIs live, the app's credentials, and how patiently
//! to talk to them. Built once by the server from its configuration (`INBOX_INSTAGRAM_API_BASE`,
//! `INBOX_INSTAGRAM_OAUTH_BASE`, `INBOX_GRAPH_API_VERSION`, `INBOX_INSTAGRAM_APP_ID`,
//! `INBOX_INSTAGRAM_APP_SECRET`, `INBOX_META_APP_SECRET`, `INBOX_META_VERIFY_TOKEN`); library
//! code reads no environment.

use std::{fmt, sync::Arc, time::Duration};

use inbox_core::{Error, RateBudgets, RefreshPolicy, Result, Unlimited};
use inbox_http::{ClientOptions, RetryConfig};
use inbox_platform_meta::{DEFAULT_GRAPH_VERSION, parse_api_base, parse_graph_version};
use secrecy::SecretString;

/// Instagram's production API host.
pub const DEFAULT_API_BASE: &str = "https://graph.instagram.com";
/// Instagram's OAuth host (authorize and code exchange).
pub const DEFAULT_OAUTH_BASE: &str = "https://api.instagram.com";

/// Renew a 60-day token this long before it lapses (Chatwoot uses 10 days; two weeks leaves
/// room for a refresh that fails for days).
pub const DEFAULT_REFRESH_LEAD: Duration = Duration::from_secs(14 * 86_400);
/// Instagram refuses to refresh tokens younger than 24 hours
/// (<https://developers.facebook.com/docs/instagram-platform/reference/refresh_access_token>).
pub const DEFAULT_REFRESH_MIN_AGE: Duration = Duration::from_secs(86_400);

/// Validated configuration of the Instagram adapter.
#[derive(Clone)]
pub struct InstagramConfig {
    pub(crate) api_base: String,
    pub(crate) oauth_base: String,
    pub(crate) version: String,
    pub(crate) app_id: Option<String>,
    pub(crate) app_secret: Option<SecretString>,
    pub(crate) meta_app_secret: Option<SecretString>,
    pub(crate) verify_token: Option<SecretString>,
    pub(crate) refresh: RefreshPolicy,
    pub(crate) retry: RetryConfig,
    pub(crate) http: ClientOptions,
    pub(crate) budgets: Arc<dyn RateBudgets>,
}

impl fmt::Debug for InstagramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstagramConfig")
            .field("api_base", &self.api_base)
            .field("oauth_base", &self.oauth_base)
            .field("version", &self.version)
            .field("app_id", &self.app_id)
            .field("app_secret", &self.app_secret.is_some())
            .field("meta_app_secret", &self.meta_app_secret.is_some())
            .field("verify_token", &self.verify_token.is_some())
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl InstagramConfig {
    /// Starts a configuration with the production hosts; point them at a fake in tests with
    /// [`InstagramConfigBuilder::api_base`] and [`InstagramConfigBuilder::oauth_base`].
    pub fn builder() -> InstagramConfigBuilder {
        InstagramConfigBuilder {
            api_base: DEFAULT_API_BASE.to_owned(),
            oauth_base: DEFAULT_OAUTH_BASE.to_owned(),
            version: DEFAULT_GRAPH_VERSION.to_owned(),
            app_id: None,
            app_secret: None,
            meta_app_secret: None,
            verify_token: None,
            refresh: RefreshPolicy {
                lead_time: DEFAULT_REFRESH_LEAD,
                min_age: DEFAULT_REFRESH_MIN_AGE,
            },
            retry: RetryConfig::default(),
            http: ClientOptions::default(),
            budgets: Arc::new(Unlimited),
        }
    }

    /// The Instagram Graph host, without a trailing slash.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// The Graph API version of versioned endpoints (`v24.0`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// When tokens are renewed.
    pub fn refresh(&self) -> RefreshPolicy {
        self.refresh
    }
}

/// Builds an [`InstagramConfig`]; see [`InstagramConfig::builder`].
#[derive(Clone)]
pub struct InstagramConfigBuilder {
    api_base: String,
    oauth_base: String,
    version: String,
    app_id: Option<String>,
    app_secret: Option<SecretString>,
    meta_app_secret: Option<SecretString>,
    verify_token: Option<SecretString>,
    refresh: RefreshPolicy,
    retry: RetryConfig,
    http: ClientOptions,
    budgets: Arc<dyn RateBudgets>,
}

impl fmt::Debug for InstagramConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstagramConfigBuilder")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl InstagramConfigBuilder {
    /// The Instagram Graph host (`INBOX_INSTAGRAM_API_BASE`), without a version.
    pub fn api_base(mut self, base: impl Into<String>) -> Self {
        self.api_base = base.into();
        self
    }

    /// The OAuth host (`INBOX_INSTAGRAM_OAUTH_BASE`).
    pub fn oauth_base(mut self, base: impl Into<String>) -> Self {
        self.oauth_base = base.into();
        self
    }

    /// The Graph API version (`INBOX_GRAPH_API_VERSION`), `v24.0` or `24.0`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The Instagram app id and secret (`INBOX_INSTAGRAM_APP_ID`, `INBOX_INSTAGRAM_APP_SECRET`):
    /// needed for OAuth and for exchanging short-lived tokens, and one of the secrets webhooks
    /// may be signed with.
    pub fn app(mut self, id: Option<String>, secret: Option<SecretString>) -> Self {
        self.app_id = id;
        self.app_secret = secret;
        self
    }

    /// The Meta app secret (`INBOX_META_APP_SECRET`), the other secret Instagram webhooks may
    /// be signed with.
    pub fn meta_app_secret(mut self, secret: Option<SecretString>) -> Self {
        self.meta_app_secret = secret;
        self
    }

    /// The webhook verify token (`INBOX_META_VERIFY_TOKEN`).
    pub fn verify_token(mut self, token: Option<SecretString>) -> Self {
        self.verify_token = token;
        self
    }

    /// When long-lived tokens are renewed (default: 14 days before expiry, never younger than
    /// 24 h, which is Instagram's own rule; lower only against a fake).
    pub fn refresh(mut self, policy: RefreshPolicy) -> Self {
        self.refresh = policy;
        self
    }

    /// How calls are retried (default: within 20 s, so a send answers inside 25 s).
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// HTTP client options.
    pub fn http(mut self, http: ClientOptions) -> Self {
        self.http = http;
        self
    }

    /// The rate budgets throttling is reported to (default: none, [`Unlimited`]).
    pub fn budgets(mut self, budgets: Arc<dyn RateBudgets>) -> Self {
        self.budgets = budgets;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `InvalidInput` naming the setting (`api_base`, `oauth_base`, `version`) that is wrong.
    pub fn build(self) -> Result<InstagramConfig> {
        let api_base = parse_api_base(&self.api_base).map_err(|m| Error::invalid("api_base", m))?;
        let oauth_base =
            parse_api_base(&self.oauth_base).map_err(|m| Error::invalid("oauth_base", m))?;
        let version =
            parse_graph_version(&self.version).map_err(|m| Error::invalid("version", m))?;
        let non_empty =
            |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        Ok(InstagramConfig {
            api_base,
            oauth_base,
            version,
            app_id: non_empty(self.app_id),
            app_secret: self.app_secret,
            meta_app_secret: self.meta_app_secret,
            verify_token: self.verify_token,
            refresh: self.refresh,
            retry: self.retry,
            http: self.http,
            budgets: self.budgets,
        })
    }
}
