//! `WhatsAppConfig`: where the Graph API lives, the Meta app's webhook secrets, and how
//! patiently to talk to Meta. Built once by the server from `INBOX_GRAPH_API_BASE`,
//! `INBOX_GRAPH_API_VERSION`, `INBOX_META_APP_SECRET` and `INBOX_META_VERIFY_TOKEN`.

use std::{fmt, sync::Arc};

use inbox_core::{Error, RateBudgets, Result, Unlimited};
use inbox_http::{ClientOptions, RetryConfig};
use inbox_platform_meta::{DEFAULT_GRAPH_VERSION, parse_api_base, parse_graph_version};
use secrecy::SecretString;

/// The production Graph API host.
pub const DEFAULT_GRAPH_BASE: &str = "https://graph.facebook.com";

/// Validated configuration of the WhatsApp adapter.
#[derive(Clone)]
pub struct WhatsAppConfig {
    pub(crate) graph_base: String,
    pub(crate) version: String,
    pub(crate) app_secret: Option<SecretString>,
    pub(crate) verify_token: Option<SecretString>,
    pub(crate) retry: RetryConfig,
    pub(crate) http: ClientOptions,
    pub(crate) budgets: Arc<dyn RateBudgets>,
}

impl fmt::Debug for WhatsAppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppConfig")
            .field("graph_base", &self.graph_base)
            .field("version", &self.version)
            .field("app_secret", &self.app_secret.is_some())
            .field("verify_token", &self.verify_token.is_some())
            .finish_non_exhaustive()
    }
}

impl WhatsAppConfig {
    /// Starts a configuration with the production host.
    pub fn builder() -> WhatsAppConfigBuilder {
        WhatsAppConfigBuilder(WhatsAppConfig {
            graph_base: DEFAULT_GRAPH_BASE.to_owned(),
            version: DEFAULT_GRAPH_VERSION.to_owned(),
            app_secret: None,
            verify_token: None,
            retry: RetryConfig::default(),
            http: ClientOptions::default(),
            budgets: Arc::new(Unlimited),
        })
    }

    /// The Graph host, without a trailing slash.
    pub fn graph_base(&self) -> &str {
        &self.graph_base
    }
}

/// Builds a [`WhatsAppConfig`]; see [`WhatsAppConfig::builder`].
#[derive(Clone, Debug)]
pub struct WhatsAppConfigBuilder(WhatsAppConfig);

impl WhatsAppConfigBuilder {
    /// The Graph host (`INBOX_GRAPH_API_BASE`), without a version.
    pub fn graph_base(mut self, base: impl Into<String>) -> Self {
        self.0.graph_base = base.into();
        self
    }

    /// The Graph API version (`INBOX_GRAPH_API_VERSION`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.0.version = version.into();
        self
    }

    /// The Meta app secret (`INBOX_META_APP_SECRET`) webhooks are signed with.
    pub fn app_secret(mut self, secret: Option<SecretString>) -> Self {
        self.0.app_secret = secret;
        self
    }

    /// The webhook verify token (`INBOX_META_VERIFY_TOKEN`).
    pub fn verify_token(mut self, token: Option<SecretString>) -> Self {
        self.0.verify_token = token;
        self
    }

    /// How calls are retried.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.0.retry = retry;
        self
    }

    /// HTTP client options.
    pub fn http(mut self, http: ClientOptions) -> Self {
        self.0.http = http;
        self
    }

    /// The rate budgets throttling is reported to (default: [`Unlimited`]).
    pub fn budgets(mut self, budgets: Arc<dyn RateBudgets>) -> Self {
        self.0.budgets = budgets;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `InvalidInput` naming the setting that is wrong.
    pub fn build(self) -> Result<WhatsAppConfig> {
        let mut config = self.0;
        config.graph_base =
            parse_api_base(&config.graph_base).map_err(|m| Error::invalid("graph_base", m))?;
        config.version =
            parse_graph_version(&config.version).map_err(|m| Error::invalid("version", m))?;
        Ok(config)
    }
}
