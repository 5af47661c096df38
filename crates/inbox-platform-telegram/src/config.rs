//! `TelegramConfig`: where the Bot API lives and how patiently to talk to it. Built once by the
//! server from its configuration (`INBOX_TELEGRAM_API_BASE`); library code reads no environment.

use std::{sync::Arc, time::Duration};

use inbox_core::{Error, RateBudgets, Result, Unlimited};
use inbox_http::{ClientOptions, RetryConfig};

/// The longest long poll Telegram honours (`LONG_POLL_MAX_TIMEOUT` in tdlib's server).
pub const MAX_LONG_POLL: Duration = Duration::from_secs(50);

/// The update types the adapter asks for by default: new and edited messages.
pub const DEFAULT_ALLOWED_UPDATES: [&str; 2] = ["message", "edited_message"];

/// Validated configuration of the Telegram adapter.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    api_base: String,
    long_poll: Duration,
    retry: RetryConfig,
    allowed_updates: Vec<String>,
    http: ClientOptions,
    budgets: Arc<dyn RateBudgets>,
}

impl TelegramConfig {
    /// Starts a configuration for the Bot API at `api_base` (`https://api.telegram.org` in
    /// production, a fake server in tests). Every other setting has a default.
    pub fn builder(api_base: impl Into<String>) -> TelegramConfigBuilder {
        TelegramConfigBuilder {
            api_base: api_base.into(),
            long_poll: Duration::from_secs(25),
            retry: RetryConfig::default(),
            allowed_updates: DEFAULT_ALLOWED_UPDATES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            http: ClientOptions::default(),
            budgets: Arc::new(Unlimited),
        }
    }

    /// The API base URL, without a trailing slash.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// How long one `getUpdates` call waits for new updates.
    pub fn long_poll(&self) -> Duration {
        self.long_poll
    }

    /// How calls are retried.
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// The update types requested from `setWebhook` and `getUpdates`.
    pub fn allowed_updates(&self) -> &[String] {
        &self.allowed_updates
    }

    /// HTTP client options.
    pub fn http(&self) -> &ClientOptions {
        &self.http
    }

    /// Where flood control (`429` with `retry_after`) is reported.
    pub fn budgets(&self) -> &Arc<dyn RateBudgets> {
        &self.budgets
    }
}

/// Builds a [`TelegramConfig`]; see [`TelegramConfig::builder`].
#[derive(Debug, Clone)]
pub struct TelegramConfigBuilder {
    api_base: String,
    long_poll: Duration,
    retry: RetryConfig,
    allowed_updates: Vec<String>,
    http: ClientOptions,
    budgets: Arc<dyn RateBudgets>,
}

impl TelegramConfigBuilder {
    /// How long one `getUpdates` call waits for updates (default 25 s, at most 50 s; whole
    /// seconds, as Telegram takes them). Zero makes polls return at once.
    pub fn long_poll_timeout(mut self, timeout: Duration) -> Self {
        self.long_poll = timeout;
        self
    }

    /// The total time retries of one call may take (default 20 s, which keeps a synchronous
    /// send inside the 25 s SPEC.md promises).
    pub fn retry_budget(mut self, budget: Duration) -> Self {
        self.retry.budget = budget;
        self
    }

    /// The whole retry configuration, for tests that want tiny backoffs.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The update types to request (default `message`, `edited_message`).
    pub fn allowed_updates<I, S>(mut self, updates: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_updates = updates.into_iter().map(Into::into).collect();
        self
    }

    /// HTTP client options (timeouts, `User-Agent`).
    pub fn http(mut self, http: ClientOptions) -> Self {
        self.http = http;
        self
    }

    /// The rate budgets flood control is reported to (default: none, [`Unlimited`]), so the
    /// gateway's limiter holds every sender to the chat back until Telegram's `retry_after`.
    pub fn budgets(mut self, budgets: Arc<dyn RateBudgets>) -> Self {
        self.budgets = budgets;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// `InvalidInput` naming the setting: a base URL that is not `http(s)://host[/path]`, a
    /// long poll over 50 s, or an empty list of update types.
    pub fn build(self) -> Result<TelegramConfig> {
        let api_base = self.api_base.trim().trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&api_base).map_err(|err| {
            Error::invalid(
                "telegram.api_base",
                format!("`{api_base}` is not a URL: {err}"),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.host_str().is_none()
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(Error::invalid(
                "telegram.api_base",
                format!("`{api_base}` must be an http(s) URL such as https://api.telegram.org"),
            ));
        }
        if self.long_poll > MAX_LONG_POLL {
            return Err(Error::invalid(
                "telegram.long_poll",
                "the long-poll timeout must be at most 50 s (Telegram's maximum)",
            ));
        }
        if self.allowed_updates.is_empty() {
            // An empty list means "every type but a few" to Telegram, not "none".
            return Err(Error::invalid(
                "telegram.allowed_updates",
                "name at least one update type, such as `message`",
            ));
        }
        Ok(TelegramConfig {
            api_base,
            long_poll: self.long_poll,
            retry: self.retry,
            allowed_updates: self.allowed_updates,
            http: self.http,
            budgets: self.budgets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_trailing_slash() {
        let config = TelegramConfig::builder("https://api.telegram.org/")
            .build()
            .unwrap();
        assert_eq!(config.api_base(), "https://api.telegram.org");
        assert_eq!(config.long_poll(), Duration::from_secs(25));
        assert_eq!(config.retry().budget, Duration::from_secs(20));
        assert_eq!(config.allowed_updates(), ["message", "edited_message"]);
    }

    #[test]
    fn a_path_prefix_is_kept() {
        let config = TelegramConfig::builder("http://127.0.0.1:8081/tg")
            .build()
            .unwrap();
        assert_eq!(config.api_base(), "http://127.0.0.1:8081/tg");
    }

    #[test]
    fn invalid_settings_name_themselves() {
        let param = |builder: TelegramConfigBuilder| match builder.build() {
            Err(Error::InvalidInput { param, .. }) => param.unwrap(),
            other => panic!("expected InvalidInput, got {other:?}"),
        };
        assert_eq!(
            param(TelegramConfig::builder("api.telegram.org")),
            "telegram.api_base"
        );
        assert_eq!(
            param(TelegramConfig::builder("ftp://x")),
            "telegram.api_base"
        );
        assert_eq!(
            param(TelegramConfig::builder("https://x/?a=b")),
            "telegram.api_base"
        );
        assert_eq!(
            param(TelegramConfig::builder("https://x").long_poll_timeout(Duration::from_secs(51))),
            "telegram.long_poll"
        );
        assert_eq!(
            param(TelegramConfig::builder("https://x").allowed_updates(Vec::<String>::new())),
            "telegram.allowed_updates"
        );
    }
}
