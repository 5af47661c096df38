//! `FacebookConfig`: where the Graph API and the Login dialog live, the Meta app's
//! credentials, and how patiently to talk to Meta. Built once by the server from
//! `INBOX_GRAPH_API_BASE`, `INBOX_FACEBOOK_OAUTH_BASE`, `INBOX_GRAPH_API_VERSION`,
//! `INBOX_META_APP_ID`, `INBOX_META_APP_SECRET` and `INBOX_META_VERIFY_TOKEN`.

use std::{fmt, sync::Arc};

use inbox_core::{Error, RateBudgets, Result, Unlimited};
use inbox_http::{ClientOptions, RetryConfig};
use inbox_platform_meta::{DEFAULT_GRAPH_VERSION, parse_api_base, parse_graph_version};
use secrecy::SecretString;

/// The production Graph API host.
pub const DEFAULT_GRAPH_BASE: &str = "https://graph.facebook.com";
/// Where the Facebook Login dialog lives.
pub const DEFAULT_OAUTH_BASE: &str = "https://www.facebook.com";

/// Validated configuration of the Facebook adapter.
#[derive(Clone)]
pub struct FacebookConfig {
    pub(crate) graph_base: String,
    pub(crate) oauth_base: String,
    pub(crate) version: String,
    pub(crate) app_id: Option<String>,
    pub(crate) app_secret: Option<SecretString>,
    pub(crate) verify_token: Option<SecretString>,
    pub(crate) retry: RetryConfig,
    pub(crate) http: ClientOptions,
    pub(crate) budgets: Arc<dyn RateBudgets>,
}

impl fmt::Debug for FacebookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FacebookConfig")
            .field("graph_base", &self.graph_base)
            .field("oauth_base", &self.oauth_base)
            .field("version", &self.version)
            .field("app_id", &self.app_id)
            .field("app_secret", &self.app_secret.is_some())
            .field("verify_token", &self.verify_token.is_some())
            .finish_non_exhaustive()
    }
}

impl FacebookConfig {
    /// Starts a configuration with the production hosts.
    pub fn builder() -> FacebookConfigBuilder {
        FacebookConfigBuilder {
            graph_base: DEFAULT_GRAPH_BASE.to_owned(),
            oauth_base: DEFAULT_OAUTH_BASE.to_owned(),
            version: DEFAULT_GRAPH_VERSION.to_owned(),
            app_id: None,
            app_secret: None,
            verify_token: None,
            retry: RetryConfig::default(),
            http: ClientOptions::default(),
            budgets: Arc::new(Unlimited),
        }
    }

    /// The Graph host, without a trailing slash.
    pub fn graph_base(&self) -> &str {
        &self.graph_base
    }
}

/// Builds a [`FacebookConfig`]; see [`FacebookConfig::builder`].
#[derive(Clone)]
pub struct FacebookConfigBuilder {
    graph_base: String,
    oauth_base: String,
    version: String,
    app_id: Option<String>,
    app_secret: Option<SecretString>,
    verify_token: Option<SecretString>,
    retry: RetryConfig,
    http: ClientOptions,
    budgets: Arc<dyn RateBudgets>,
}

impl fmt::Debug for FacebookConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FacebookConfigBuilder")
            .field("graph_base", &self.graph_base)
            .finish_non_exhaustive()
    }
}

impl FacebookConfigBuilder {
    /// The Graph host (`INBOX_GRAPH_API_BASE`), without a version.
    pub fn graph_base(mut self, base: impl Into<String>) -> Self {
        self.graph_base = base.into();
        self
    }

    /// The host of the Login dialog (`INBOX_FACEBOOK_OAUTH_BASE`).
    pub fn oauth_base(mut self, base: impl Into<String>) -> Self {
        self.oauth_base = base.into();
        self
    }

    /// The Graph API version (`INBOX_GRAPH_API_VERSION`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The Meta app id and secret (`INBOX_META_APP_ID`, `INBOX_META_APP_SECRET`): the secret
    /// verifies webhooks; both are needed for OAuth.
    pub fn app(mut self, id: Option<String>, secret: Option<SecretString>) -> Self {
        self.app_id = id;
        self.app_secret = secret;
        self
    }

    /// The webhook verify token (`INBOX_META_VERIFY_TOKEN`).
    pub fn verify_token(mut self, token: Option<SecretString>) -> Self {
        self.verify_token = token;
        self
    }

    /// How calls are retried.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// HTTP client options.
    pub fn http(mut self, http: ClientOptions) -> Self {
        self.http = http;
        self
    }

    /// The rate budgets throttling is reported to (default: [`Unlimited`]).
    pub fn budgets(mut self, budgets: Arc<dyn RateBudgets>) -> Self {
        self.budgets = budgets;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `InvalidInput` naming the setting that is wrong.
    pub fn build(self) -> Result<FacebookConfig> {
        Ok(FacebookConfig {
            graph_base: parse_api_base(&self.graph_base)
                .map_err(|m| Error::invalid("graph_base", m))?,
            oauth_base: parse_api_base(&self.oauth_base)
                .map_err(|m| Error::invalid("oauth_base", m))?,
            version: parse_graph_version(&self.version)
                .map_err(|m| Error::invalid("version", m))?,
            app_id: self
                .app_id
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
            app_secret: self.app_secret,
            verify_token: self.verify_token,
            retry: self.retry,
            http: self.http,
            budgets: self.budgets,
        })
    }
}
