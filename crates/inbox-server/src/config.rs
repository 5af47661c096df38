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
}

/// Every key, for reading values as plain strings (so `INBOX_LISTEN=8080` is not mistaken for
/// a number and rejected for its type).
const KEYS: [&str; 13] = [
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
];

/// The variable name of a key, for error messages.
fn variable(key: &str) -> String {
    match key {
        "database_url" => "DATABASE_URL".into(),
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
                .only(&KEYS[..])
                .map(|k| k.as_str().to_ascii_lowercase().into()),
        )
        .merge(
            Env::raw()
                .only(&["DATABASE_URL"])
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

    Ok(Settings {
        listen,
        public_url,
        database_url,
        encryption_key,
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
