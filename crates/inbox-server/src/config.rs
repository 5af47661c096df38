//! Configuration: read once at start-up from the environment (and optionally a TOML file that
//! mirrors it), validated, and passed down as typed settings. Library crates never read the
//! environment. Every invalid value stops start-up with one line naming the variable.
//!
//! Precedence, lowest first: built-in defaults, the TOML file (`--config FILE` or
//! `INBOX_CONFIG`), then environment variables. In the file, keys are the variable names in
//! lower case without the `INBOX_` prefix (`public_url = "https://…"`, `database_url = "…"`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

mod social;
pub use social::{RedditSettings, XSettings};

/// A configuration problem, naming the variable it concerns.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}: {message}")]
pub struct ConfigError {
    /// The environment variable (or file key) at fault.
    pub variable: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn bad(variable: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: variable.to_owned(),
        message: message.into(),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Outbound webhook delivery tuning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Per-attempt request timeout.
    pub timeout: Duration,
    /// How long a claimed delivery stays claimed; a crashed worker's deliveries are retried
    /// after it. Always longer than `timeout`.
    pub lease: Duration,
    /// Delays before the 2nd, 3rd, … attempt; `None` for SPEC's schedule.
    pub retry_schedule: Option<Vec<Duration>>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `INBOX_LISTEN`.
    pub listen: SocketAddr,
    /// `INBOX_PUBLIC_URL`, without a trailing slash.
    pub public_url: Option<String>,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `INBOX_ENCRYPTION_KEY` (base64 of 32 bytes).
    pub encryption_key: Option<SecretString>,
    /// `INBOX_WEBHOOK_ALLOW_PRIVATE`.
    pub webhook_allow_private: bool,
    /// `INBOX_LOG`.
    pub log: String,
    /// `INBOX_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `INBOX_TELEGRAM_API_BASE`.
    pub telegram_api_base: Url,
    /// `INBOX_TELEGRAM_POLL_TIMEOUT_SECS`: long-poll wait of `getUpdates`.
    pub telegram_poll_timeout: Duration,
    /// `INBOX_WEBHOOK_TIMEOUT_SECS`, `INBOX_WEBHOOK_LEASE_SECS`, `INBOX_WEBHOOK_RETRY_SCHEDULE`.
    pub delivery: DeliverySettings,
    /// `INBOX_SHUTDOWN_GRACE_SECS`: how long shutdown waits for in-flight work.
    pub shutdown_grace: Duration,
    /// `INBOX_RAW_EVENT_RETENTION_DAYS`: processed raw inbound payloads older than this are
    /// deleted (default 30 days); `None` (0) keeps them.
    pub raw_event_retention: Option<Duration>,
    /// `REDIS_URL`: where rate limits are shared; `None` keeps them in process.
    pub redis_url: Option<String>,
    /// `INBOX_API_RATE_LIMIT`: requests per minute per API key; 0 turns the limit off.
    pub api_rate_limit: u32,
    /// `INBOX_RATE_BUDGETS`: operators' overrides of the platforms' rate budgets. Whether
    /// each names a budget an adapter declares is checked when the adapters are built.
    pub rate_budgets: Vec<inbox_ratelimit::BudgetOverride>,
    /// The Meta apps and hosts (Instagram, Facebook, WhatsApp).
    pub meta: MetaSettings,
    /// X (`INBOX_X_*`); `None` when `INBOX_X_CLIENT_ID` is unset, and X is then not offered.
    pub x: Option<XSettings>,
    /// Reddit (`INBOX_REDDIT_*`); `None` when `INBOX_REDDIT_CLIENT_ID` is unset.
    pub reddit: Option<RedditSettings>,
    /// `INBOX_BLUESKY_SERVICE`: where Bluesky accounts log in unless they name a `service`.
    pub bluesky_service: Url,
}

/// The Meta platforms' settings. Without an app's secret its webhooks cannot be verified and
/// are refused; without an app id and secret its OAuth connect answers a clear error; the
/// adapters are registered either way, so accounts connect with credentials.
#[derive(Debug, Clone)]
pub struct MetaSettings {
    /// `INBOX_META_APP_ID`: the Meta app (Facebook Login).
    pub app_id: Option<String>,
    /// `INBOX_META_APP_SECRET`: signs Facebook, WhatsApp (and possibly Instagram) webhooks.
    pub app_secret: Option<SecretString>,
    /// `INBOX_META_VERIFY_TOKEN`: the webhook subscription handshake's token.
    pub verify_token: Option<SecretString>,
    /// `INBOX_INSTAGRAM_APP_ID`: the Instagram app (Instagram Login).
    pub instagram_app_id: Option<String>,
    /// `INBOX_INSTAGRAM_APP_SECRET`: OAuth, token exchange, and Instagram webhooks.
    pub instagram_app_secret: Option<SecretString>,
    /// `INBOX_GRAPH_API_BASE` (Facebook and WhatsApp), without a version.
    pub graph_api_base: String,
    /// `INBOX_INSTAGRAM_API_BASE`, without a version.
    pub instagram_api_base: String,
    /// `INBOX_GRAPH_API_VERSION`, e.g. `v24.0`.
    pub graph_api_version: String,
    /// `INBOX_INSTAGRAM_OAUTH_BASE`: Instagram's authorize page and code exchange.
    pub instagram_oauth_base: String,
    /// `INBOX_FACEBOOK_OAUTH_BASE`: where the Facebook Login dialog lives.
    pub facebook_oauth_base: String,
    /// `INBOX_INSTAGRAM_REFRESH_LEAD_SECS`: renew Instagram tokens this long before expiry.
    pub instagram_refresh_lead: Duration,
    /// `INBOX_INSTAGRAM_REFRESH_MIN_AGE_SECS`: never renew younger tokens (Instagram's rule
    /// is 24 h; lower only against a fake).
    pub instagram_refresh_min_age: Duration,
}

impl Settings {
    /// Whether this is the embedded default (SQLite).
    pub fn is_embedded(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// The SQLite database file, in embedded mode.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }
}

/// A value as written: the TOML file may say `30` or `true` where the environment says "30".
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

fn lenient<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(
        Option::<Scalar>::deserialize(deserializer)?.map(|scalar| match scalar {
            Scalar::Text(text) => text,
            Scalar::Integer(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
            Scalar::Boolean(b) => b.to_string(),
        }),
    )
}

/// The raw, unvalidated values, as figment merges them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSettings {
    #[serde(deserialize_with = "lenient")]
    listen: Option<String>,
    #[serde(deserialize_with = "lenient")]
    public_url: Option<String>,
    #[serde(deserialize_with = "lenient")]
    database_url: Option<String>,
    #[serde(deserialize_with = "lenient")]
    encryption_key: Option<String>,
    #[serde(deserialize_with = "lenient")]
    webhook_allow_private: Option<String>,
    #[serde(deserialize_with = "lenient")]
    log: Option<String>,
    #[serde(deserialize_with = "lenient")]
    log_format: Option<String>,
    #[serde(deserialize_with = "lenient")]
    telegram_api_base: Option<String>,
    #[serde(deserialize_with = "lenient")]
    telegram_poll_timeout_secs: Option<String>,
    #[serde(deserialize_with = "lenient")]
    webhook_timeout_secs: Option<String>,
    #[serde(deserialize_with = "lenient")]
    webhook_lease_secs: Option<String>,
    #[serde(deserialize_with = "lenient")]
    webhook_retry_schedule: Option<String>,
    #[serde(deserialize_with = "lenient")]
    shutdown_grace_secs: Option<String>,
    #[serde(deserialize_with = "lenient")]
    raw_event_retention_days: Option<String>,
    #[serde(deserialize_with = "lenient")]
    redis_url: Option<String>,
    #[serde(deserialize_with = "lenient")]
    api_rate_limit: Option<String>,
    #[serde(deserialize_with = "lenient")]
    rate_budgets: Option<String>,
    #[serde(deserialize_with = "lenient")]
    meta_app_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    meta_app_secret: Option<String>,
    #[serde(deserialize_with = "lenient")]
    meta_verify_token: Option<String>,
    #[serde(deserialize_with = "lenient")]
    instagram_app_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    instagram_app_secret: Option<String>,
    #[serde(deserialize_with = "lenient")]
    graph_api_base: Option<String>,
    #[serde(deserialize_with = "lenient")]
    instagram_api_base: Option<String>,
    #[serde(deserialize_with = "lenient")]
    graph_api_version: Option<String>,
    #[serde(deserialize_with = "lenient")]
    instagram_oauth_base: Option<String>,
    #[serde(deserialize_with = "lenient")]
    facebook_oauth_base: Option<String>,
    #[serde(deserialize_with = "lenient")]
    instagram_refresh_lead_secs: Option<String>,
    #[serde(deserialize_with = "lenient")]
    instagram_refresh_min_age_secs: Option<String>,
    #[serde(deserialize_with = "lenient")]
    x_client_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    x_client_secret: Option<String>,
    #[serde(deserialize_with = "lenient")]
    x_consumer_secret: Option<String>,
    #[serde(deserialize_with = "lenient")]
    x_api_base: Option<String>,
    #[serde(deserialize_with = "lenient")]
    x_authorize_url: Option<String>,
    #[serde(deserialize_with = "lenient")]
    reddit_client_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    reddit_client_secret: Option<String>,
    #[serde(deserialize_with = "lenient")]
    reddit_user_agent: Option<String>,
    #[serde(deserialize_with = "lenient")]
    reddit_api_base: Option<String>,
    #[serde(deserialize_with = "lenient")]
    reddit_www_base: Option<String>,
    #[serde(deserialize_with = "lenient")]
    bluesky_service: Option<String>,
}

/// Every key, for reading values as plain strings (so `INBOX_LISTEN=8080` is not mistaken for
/// a number and rejected for its type).
const KEYS: [&str; 27] = [
    "listen",
    "public_url",
    "database_url",
    "encryption_key",
    "webhook_allow_private",
    "log",
    "log_format",
    "telegram_api_base",
    "telegram_poll_timeout_secs",
    "webhook_timeout_secs",
    "webhook_lease_secs",
    "webhook_retry_schedule",
    "shutdown_grace_secs",
    "meta_app_id",
    "meta_app_secret",
    "meta_verify_token",
    "instagram_app_id",
    "instagram_app_secret",
    "graph_api_base",
    "instagram_api_base",
    "graph_api_version",
    "instagram_oauth_base",
    "facebook_oauth_base",
    "instagram_refresh_lead_secs",
    "instagram_refresh_min_age_secs",
    "api_rate_limit",
    "rate_budgets",
];

/// The variable name of a key, for error messages.
fn variable(key: &str) -> String {
    match key {
        "database_url" => "DATABASE_URL".into(),
        "redis_url" => "REDIS_URL".into(),
        other => format!("INBOX_{}", other.to_ascii_uppercase()),
    }
}

/// Loads and validates settings from the environment and the optional file.
///
/// # Errors
/// A `ConfigError` naming the first invalid variable.
pub fn load(file: Option<PathBuf>) -> Result<Settings, ConfigError> {
    let file = file.or_else(|| std::env::var_os("INBOX_CONFIG").map(PathBuf::from));
    let mut figment = Figment::new();
    if let Some(path) = &file {
        if !path.exists() {
            return Err(bad(
                "INBOX_CONFIG",
                format!("the file {} does not exist", path.display()),
            ));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment
        .merge(
            Env::prefixed("INBOX_")
                .only(&[&KEYS[..], &social::KEYS[..]].concat())
                .map(|k| k.as_str().to_ascii_lowercase().into()),
        )
        .merge(
            Env::raw()
                .only(&["DATABASE_URL", "REDIS_URL"])
                .map(|k| k.as_str().to_ascii_lowercase().into()),
        );
    let raw: RawSettings = figment.extract().map_err(|err| {
        let key = err.path.first().cloned().unwrap_or_default();
        bad(&variable(&key), format!("{}", err.kind))
    })?;
    validate(raw)
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn parse_bool(key: &str, value: Option<String>, default: bool) -> Result<bool, ConfigError> {
    match non_empty(value).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(false),
        Some(v) => Err(bad(
            &variable(key),
            format!("`{v}` is not a boolean (use true or false)"),
        )),
    }
}

/// `INBOX_RAW_EVENT_RETENTION_DAYS`: whole days, 0 to keep payloads forever, at most ten years.
fn parse_retention_days(value: Option<String>) -> Result<Option<Duration>, ConfigError> {
    let key = "raw_event_retention_days";
    let days = match non_empty(value) {
        None => 30,
        Some(v) => v.parse::<u64>().map_err(|_| {
            bad(
                &variable(key),
                format!("`{v}` is not a whole number of days (0 keeps payloads forever)"),
            )
        })?,
    };
    if days > 3_650 {
        return Err(bad(
            &variable(key),
            format!("{days} is outside the allowed range 0–3650 days"),
        ));
    }
    Ok((days > 0).then(|| Duration::from_secs(days * 86_400)))
}

fn parse_secs(
    key: &str,
    value: Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let seconds = match non_empty(value) {
        None => default,
        Some(v) => v.parse::<u64>().map_err(|_| {
            bad(
                &variable(key),
                format!("`{v}` is not a whole number of seconds"),
            )
        })?,
    };
    if !range.contains(&seconds) {
        return Err(bad(
            &variable(key),
            format!(
                "{seconds} is outside the allowed range {}–{} seconds",
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(Duration::from_secs(seconds))
}

fn parse_base_url(key: &str, value: Option<String>, default: &str) -> Result<Url, ConfigError> {
    let text = non_empty(value).unwrap_or_else(|| default.to_owned());
    let url = Url::parse(&text)
        .map_err(|err| bad(&variable(key), format!("`{text}` is not a URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad(
            &variable(key),
            format!("`{text}` must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(url)
}

fn validate(raw: RawSettings) -> Result<Settings, ConfigError> {
    let listen_text = non_empty(raw.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
        bad(
            "INBOX_LISTEN",
            format!(
                "`{listen_text}` is not an address:port such as 127.0.0.1:8080 or 0.0.0.0:8080"
            ),
        )
    })?;

    let public_url = match non_empty(raw.public_url) {
        None => None,
        Some(text) => {
            let url = parse_base_url("public_url", Some(text.clone()), "")?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(bad(
                    "INBOX_PUBLIC_URL",
                    "must not contain a query or fragment",
                ));
            }
            Some(url.as_str().trim_end_matches('/').to_owned())
        }
    };

    let database_url =
        non_empty(raw.database_url).unwrap_or_else(|| "sqlite://data/inbox.db".into());
    if !["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|p| database_url.starts_with(p))
    {
        return Err(bad(
            "DATABASE_URL",
            "must start with sqlite:// (embedded) or postgres:// (scaled out)",
        ));
    }

    let encryption_key = non_empty(raw.encryption_key).map(SecretString::from);
    if encryption_key.is_none() && !database_url.starts_with("sqlite:") {
        return Err(bad(
            "INBOX_ENCRYPTION_KEY",
            "is required with PostgreSQL so every replica decrypts the same credentials; generate one with `openssl rand -base64 32`",
        ));
    }

    let log_format = match non_empty(raw.log_format)
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(bad(
                "INBOX_LOG_FORMAT",
                format!("`{other}` is not `text` or `json`"),
            ));
        }
    };
    let log = non_empty(raw.log).unwrap_or_else(|| "info".into());
    if let Err(err) = tracing_subscriber::EnvFilter::try_new(&log) {
        return Err(bad(
            "INBOX_LOG",
            format!("`{log}` is not a tracing filter: {err}"),
        ));
    }

    let timeout = parse_secs(
        "webhook_timeout_secs",
        raw.webhook_timeout_secs,
        15,
        1..=120,
    )?;
    let lease = parse_secs("webhook_lease_secs", raw.webhook_lease_secs, 60, 2..=3600)?;
    if lease <= timeout {
        return Err(bad(
            "INBOX_WEBHOOK_LEASE_SECS",
            format!(
                "must be longer than INBOX_WEBHOOK_TIMEOUT_SECS ({} s)",
                timeout.as_secs()
            ),
        ));
    }
    let retry_schedule = match non_empty(raw.webhook_retry_schedule) {
        None => None,
        Some(text) => Some(
            text.split(',')
                .map(|part| {
                    part.trim().parse::<u64>().map(Duration::from_secs).map_err(|_| {
                        bad("INBOX_WEBHOOK_RETRY_SCHEDULE", format!("`{text}` is not a comma-separated list of seconds such as 5,300,1800"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };

    let social = social::parse(
        social::Raw {
            x_client_id: raw.x_client_id,
            x_client_secret: raw.x_client_secret,
            x_consumer_secret: raw.x_consumer_secret,
            x_api_base: raw.x_api_base,
            x_authorize_url: raw.x_authorize_url,
            reddit_client_id: raw.reddit_client_id,
            reddit_client_secret: raw.reddit_client_secret,
            reddit_user_agent: raw.reddit_user_agent,
            reddit_api_base: raw.reddit_api_base,
            reddit_www_base: raw.reddit_www_base,
            bluesky_service: raw.bluesky_service,
        },
        public_url.is_some(),
    )?;
    Ok(Settings {
        listen,
        public_url,
        database_url,
        encryption_key,
        x: social.x,
        reddit: social.reddit,
        bluesky_service: social.bluesky_service,
        webhook_allow_private: parse_bool(
            "webhook_allow_private",
            raw.webhook_allow_private,
            false,
        )?,
        log,
        log_format,
        telegram_api_base: parse_base_url(
            "telegram_api_base",
            raw.telegram_api_base,
            "https://api.telegram.org",
        )?,
        telegram_poll_timeout: parse_secs(
            "telegram_poll_timeout_secs",
            raw.telegram_poll_timeout_secs,
            25,
            0..=50,
        )?,
        delivery: DeliverySettings {
            timeout,
            lease,
            retry_schedule,
        },
        shutdown_grace: parse_secs("shutdown_grace_secs", raw.shutdown_grace_secs, 30, 1..=600)?,
        raw_event_retention: parse_retention_days(raw.raw_event_retention_days)?,
        redis_url: parse_redis_url(raw.redis_url)?,
        api_rate_limit: parse_api_rate_limit(raw.api_rate_limit)?,
        meta: parse_meta(MetaRaw {
            app_id: raw.meta_app_id,
            app_secret: raw.meta_app_secret,
            verify_token: raw.meta_verify_token,
            instagram_app_id: raw.instagram_app_id,
            instagram_app_secret: raw.instagram_app_secret,
            graph_api_base: raw.graph_api_base,
            instagram_api_base: raw.instagram_api_base,
            graph_api_version: raw.graph_api_version,
            instagram_oauth_base: raw.instagram_oauth_base,
            facebook_oauth_base: raw.facebook_oauth_base,
            instagram_refresh_lead_secs: raw.instagram_refresh_lead_secs,
            instagram_refresh_min_age_secs: raw.instagram_refresh_min_age_secs,
        })?,
        rate_budgets: match non_empty(raw.rate_budgets) {
            None => Vec::new(),
            Some(text) => inbox_ratelimit::parse_overrides(&text)
                .map_err(|message| bad("INBOX_RATE_BUDGETS", message))?,
        },
    })
}

fn parse_redis_url(value: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(text) = non_empty(value) else {
        return Ok(None);
    };
    let shown = inbox_ratelimit::redact_url(&text);
    if text.starts_with("rediss://") {
        return Err(bad(
            "REDIS_URL",
            format!(
                "`{shown}`: TLS to Redis is not built in; use redis:// on a private network or through a TLS tunnel"
            ),
        ));
    }
    let url = Url::parse(&text)
        .map_err(|err| bad("REDIS_URL", format!("`{shown}` is not a URL: {err}")))?;
    let host_ok = url.host().is_some() || matches!(url.scheme(), "unix" | "redis+unix");
    if !matches!(url.scheme(), "redis" | "unix" | "redis+unix") || !host_ok {
        return Err(bad(
            "REDIS_URL",
            format!("`{shown}` must look like redis://[:password@]host:6379[/db]"),
        ));
    }
    Ok(Some(text))
}

fn parse_api_rate_limit(value: Option<String>) -> Result<u32, ConfigError> {
    const MAX: u32 = 1_000_000;
    let Some(text) = non_empty(value) else {
        return Ok(600);
    };
    match text.parse::<u32>() {
        Ok(n) if n <= MAX => Ok(n),
        _ => Err(bad(
            "INBOX_API_RATE_LIMIT",
            format!("`{text}` is not a number of requests per minute from 0 (off) to {MAX}"),
        )),
    }
}

/// The Meta settings as written.
struct MetaRaw {
    app_id: Option<String>,
    app_secret: Option<String>,
    verify_token: Option<String>,
    instagram_app_id: Option<String>,
    instagram_app_secret: Option<String>,
    graph_api_base: Option<String>,
    instagram_api_base: Option<String>,
    graph_api_version: Option<String>,
    instagram_oauth_base: Option<String>,
    facebook_oauth_base: Option<String>,
    instagram_refresh_lead_secs: Option<String>,
    instagram_refresh_min_age_secs: Option<String>,
}

/// A Meta app id: digits.
fn parse_app_id(key: &str, value: Option<String>) -> Result<Option<String>, ConfigError> {
    match non_empty(value) {
        None => Ok(None),
        Some(id) if id.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(id)),
        Some(id) => Err(bad(
            &variable(key),
            format!("`{id}` is not an app id (the digits shown in the App Dashboard)"),
        )),
    }
}

/// A secret or token: one word without spaces.
fn parse_secret(key: &str, value: Option<String>) -> Result<Option<SecretString>, ConfigError> {
    match non_empty(value) {
        None => Ok(None),
        Some(secret) if secret.chars().any(char::is_whitespace) => Err(bad(
            &variable(key),
            "must not contain spaces (copy it again from the App Dashboard)",
        )),
        Some(secret) => Ok(Some(SecretString::from(secret))),
    }
}

/// A Meta API base: http(s), no version segment (the version is its own setting).
fn parse_meta_base(key: &str, value: Option<String>, default: &str) -> Result<String, ConfigError> {
    let text = non_empty(value).unwrap_or_else(|| default.to_owned());
    inbox_platform_meta::parse_api_base(&text).map_err(|message| bad(&variable(key), message))
}

fn parse_meta(raw: MetaRaw) -> Result<MetaSettings, ConfigError> {
    let app_id = parse_app_id("meta_app_id", raw.app_id)?;
    let app_secret = parse_secret("meta_app_secret", raw.app_secret)?;
    if app_id.is_some() && app_secret.is_none() {
        return Err(bad(
            "INBOX_META_APP_SECRET",
            "is required with INBOX_META_APP_ID (Facebook Login exchanges codes with it)",
        ));
    }
    let instagram_app_id = parse_app_id("instagram_app_id", raw.instagram_app_id)?;
    let instagram_app_secret = parse_secret("instagram_app_secret", raw.instagram_app_secret)?;
    if instagram_app_id.is_some() && instagram_app_secret.is_none() {
        return Err(bad(
            "INBOX_INSTAGRAM_APP_SECRET",
            "is required with INBOX_INSTAGRAM_APP_ID (Instagram Login exchanges codes with it)",
        ));
    }
    let version = non_empty(raw.graph_api_version)
        .unwrap_or_else(|| inbox_platform_meta::DEFAULT_GRAPH_VERSION.to_owned());
    let graph_api_version = inbox_platform_meta::parse_graph_version(&version)
        .map_err(|message| bad("INBOX_GRAPH_API_VERSION", message))?;
    Ok(MetaSettings {
        app_id,
        app_secret,
        verify_token: parse_secret("meta_verify_token", raw.verify_token)?,
        instagram_app_id,
        instagram_app_secret,
        graph_api_base: parse_meta_base(
            "graph_api_base",
            raw.graph_api_base,
            "https://graph.facebook.com",
        )?,
        instagram_api_base: parse_meta_base(
            "instagram_api_base",
            raw.instagram_api_base,
            "https://graph.instagram.com",
        )?,
        graph_api_version,
        instagram_oauth_base: parse_meta_base(
            "instagram_oauth_base",
            raw.instagram_oauth_base,
            "https://api.instagram.com",
        )?,
        facebook_oauth_base: parse_meta_base(
            "facebook_oauth_base",
            raw.facebook_oauth_base,
            "https://www.facebook.com",
        )?,
        instagram_refresh_lead: parse_secs(
            "instagram_refresh_lead_secs",
            raw.instagram_refresh_lead_secs,
            14 * 86_400,
            0..=59 * 86_400,
        )?,
        instagram_refresh_min_age: parse_secs(
            "instagram_refresh_min_age_secs",
            raw.instagram_refresh_min_age_secs,
            86_400,
            0..=30 * 86_400,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawSettings {
        let mut raw = RawSettings::default();
        for (key, value) in pairs {
            let value = Some((*value).to_owned());
            match *key {
                "listen" => raw.listen = value,
                "public_url" => raw.public_url = value,
                "database_url" => raw.database_url = value,
                "encryption_key" => raw.encryption_key = value,
                "webhook_allow_private" => raw.webhook_allow_private = value,
                "log_format" => raw.log_format = value,
                "webhook_timeout_secs" => raw.webhook_timeout_secs = value,
                "webhook_lease_secs" => raw.webhook_lease_secs = value,
                "webhook_retry_schedule" => raw.webhook_retry_schedule = value,
                "raw_event_retention_days" => raw.raw_event_retention_days = value,
                "redis_url" => raw.redis_url = value,
                "api_rate_limit" => raw.api_rate_limit = value,
                "rate_budgets" => raw.rate_budgets = value,
                "meta_app_id" => raw.meta_app_id = value,
                "meta_app_secret" => raw.meta_app_secret = value,
                "instagram_app_id" => raw.instagram_app_id = value,
                "graph_api_base" => raw.graph_api_base = value,
                "instagram_api_base" => raw.instagram_api_base = value,
                "graph_api_version" => raw.graph_api_version = value,
                "instagram_oauth_base" => raw.instagram_oauth_base = value,
                "instagram_refresh_min_age_secs" => raw.instagram_refresh_min_age_secs = value,
                other => panic!("unknown key {other}"),
            }
        }
        raw
    }

    fn error_variable(pairs: &[(&str, &str)]) -> String {
        validate(raw(pairs)).unwrap_err().variable
    }

    #[test]
    fn defaults_are_the_embedded_gateway() {
        let settings = validate(RawSettings::default()).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.database_url, "sqlite://data/inbox.db");
        assert_eq!(settings.sqlite_path(), Some(PathBuf::from("data/inbox.db")));
        assert!(settings.is_embedded());
        assert_eq!(settings.public_url, None);
        assert!(!settings.webhook_allow_private);
        assert_eq!(
            settings.telegram_api_base.as_str(),
            "https://api.telegram.org/"
        );
        assert_eq!(
            settings.raw_event_retention,
            Some(Duration::from_secs(30 * 86_400))
        );
    }

    #[test]
    fn raw_payloads_are_kept_for_whole_days_or_forever() {
        let days = |value: &str| validate(raw(&[("raw_event_retention_days", value)]));
        assert_eq!(
            days("7").unwrap().raw_event_retention,
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(days("0").unwrap().raw_event_retention, None);
        for bad in ["soon", "-1", "1.5", "3651"] {
            let err = days(bad).unwrap_err();
            assert_eq!(err.variable, "INBOX_RAW_EVENT_RETENTION_DAYS", "{bad}");
        }
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        assert_eq!(error_variable(&[("listen", "8080")]), "INBOX_LISTEN");
        assert_eq!(
            error_variable(&[("public_url", "ftp://x")]),
            "INBOX_PUBLIC_URL"
        );
        assert_eq!(
            error_variable(&[("database_url", "mysql://x")]),
            "DATABASE_URL"
        );
        assert_eq!(
            error_variable(&[("database_url", "postgres://db/x")]),
            "INBOX_ENCRYPTION_KEY"
        );
        assert_eq!(
            error_variable(&[("webhook_allow_private", "maybe")]),
            "INBOX_WEBHOOK_ALLOW_PRIVATE"
        );
        assert_eq!(error_variable(&[("log_format", "xml")]), "INBOX_LOG_FORMAT");
        assert_eq!(
            error_variable(&[("webhook_timeout_secs", "soon")]),
            "INBOX_WEBHOOK_TIMEOUT_SECS"
        );
        assert_eq!(
            error_variable(&[("webhook_timeout_secs", "30"), ("webhook_lease_secs", "30")]),
            "INBOX_WEBHOOK_LEASE_SECS"
        );
        assert_eq!(
            error_variable(&[("webhook_retry_schedule", "5,soon")]),
            "INBOX_WEBHOOK_RETRY_SCHEDULE"
        );
        for redis in [
            "localhost:6379",
            "http://cache:6379",
            "rediss://cache:6379",
            "redis://",
        ] {
            assert_eq!(
                error_variable(&[("redis_url", redis)]),
                "REDIS_URL",
                "{redis}"
            );
        }
        for limit in ["-1", "lots", "1000001"] {
            assert_eq!(
                error_variable(&[("api_rate_limit", limit)]),
                "INBOX_API_RATE_LIMIT",
                "{limit}"
            );
        }
        for budgets in [
            "telegram.send_per_chat",
            "telegram.send_per_chat=2",
            "fax.send=1/s",
            "telegram.send_per_chat=0/s",
            "telegram.send_per_chat=2/10s burst 3",
        ] {
            assert_eq!(
                error_variable(&[("rate_budgets", budgets)]),
                "INBOX_RATE_BUDGETS",
                "{budgets}"
            );
        }
    }

    #[test]
    fn rate_limit_settings_default_to_in_process_and_600_per_minute() {
        let settings = validate(RawSettings::default()).unwrap();
        assert_eq!(settings.redis_url, None);
        assert_eq!(settings.api_rate_limit, 600);
        assert!(settings.rate_budgets.is_empty());
        let settings = validate(raw(&[
            ("redis_url", "redis://:pw@cache:6379/2"),
            ("api_rate_limit", "0"),
            ("rate_budgets", "telegram.send_per_chat=2/10s burst 2"),
        ]))
        .unwrap();
        assert_eq!(
            settings.redis_url.as_deref(),
            Some("redis://:pw@cache:6379/2")
        );
        assert_eq!(settings.api_rate_limit, 0);
        assert_eq!(settings.rate_budgets[0].name(), "telegram.send_per_chat");
        let message = validate(raw(&[("redis_url", "rediss://:pw@cache")]))
            .unwrap_err()
            .to_string();
        assert!(
            !message.contains("pw"),
            "the password is not shown: {message}"
        );
    }

    #[test]
    fn meta_settings_default_to_production_and_name_their_variable() {
        let meta = validate(RawSettings::default()).unwrap().meta;
        assert_eq!(meta.graph_api_base, "https://graph.facebook.com");
        assert_eq!(meta.instagram_api_base, "https://graph.instagram.com");
        assert_eq!(meta.instagram_oauth_base, "https://api.instagram.com");
        assert_eq!(
            meta.graph_api_version,
            inbox_platform_meta::DEFAULT_GRAPH_VERSION
        );
        assert!(meta.app_secret.is_none() && meta.verify_token.is_none());
        let meta = validate(raw(&[("graph_api_version", "21.0")]))
            .unwrap()
            .meta;
        assert_eq!(meta.graph_api_version, "v21.0");
        for (pairs, variable) in [
            (vec![("meta_app_id", "my-app")], "INBOX_META_APP_ID"),
            (vec![("meta_app_id", "123")], "INBOX_META_APP_SECRET"),
            (
                vec![("meta_app_secret", "has space")],
                "INBOX_META_APP_SECRET",
            ),
            (
                vec![("instagram_app_id", "456")],
                "INBOX_INSTAGRAM_APP_SECRET",
            ),
            (
                vec![("graph_api_base", "graph.facebook.com")],
                "INBOX_GRAPH_API_BASE",
            ),
            (
                vec![("instagram_api_base", "https://graph.instagram.com/v21.0")],
                "INBOX_INSTAGRAM_API_BASE",
            ),
            (
                vec![("graph_api_version", "latest")],
                "INBOX_GRAPH_API_VERSION",
            ),
            (
                vec![("instagram_oauth_base", "ftp://x")],
                "INBOX_INSTAGRAM_OAUTH_BASE",
            ),
            (
                vec![("instagram_refresh_min_age_secs", "soon")],
                "INBOX_INSTAGRAM_REFRESH_MIN_AGE_SECS",
            ),
        ] {
            assert_eq!(error_variable(&pairs), variable, "{pairs:?}");
        }
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        let settings = validate(raw(&[("public_url", "https://gw.example.com/")])).unwrap();
        assert_eq!(
            settings.public_url.as_deref(),
            Some("https://gw.example.com")
        );
    }

    #[test]
    fn postgres_with_a_key_is_scaled_out() {
        let settings = validate(raw(&[
            ("database_url", "postgres://db/x"),
            ("encryption_key", "k"),
        ]))
        .unwrap();
        assert!(!settings.is_embedded());
        assert_eq!(settings.sqlite_path(), None);
    }
}
