//! The settings of X, Reddit and Bluesky: their OAuth apps, hosts, and what follows when an
//! app is not configured.
//!
//! * **X** is offered when `INBOX_X_CLIENT_ID` is set (its tokens cannot be refreshed without
//!   the OAuth client, and they lapse every 2 hours). It polls `GET /2/dm_events` unless
//!   `INBOX_X_CONSUMER_SECRET` is set, which turns on webhooks (`/webhooks/x`) and so needs
//!   `INBOX_PUBLIC_URL`. `INBOX_X_CLIENT_SECRET` makes the gateway a confidential client
//!   (HTTP Basic at the token endpoint); without it, a public client.
//! * **Reddit** is offered when `INBOX_REDDIT_CLIENT_ID` is set, and then needs
//!   `INBOX_REDDIT_USER_AGENT` (Reddit throttles or bans generic agents). The secret may be
//!   empty (an installed app).
//! * **Bluesky** needs no app and is always offered; `INBOX_BLUESKY_SERVICE` is where accounts
//!   log in unless their credentials name a `service`.

use secrecy::SecretString;
use url::Url;

use super::{ConfigError, bad, non_empty, parse_base_url};

/// X's settings.
#[derive(Debug, Clone)]
pub struct XSettings {
    /// `INBOX_X_CLIENT_ID`: the OAuth 2.0 client.
    pub client_id: String,
    /// `INBOX_X_CLIENT_SECRET`: set for a confidential client.
    pub client_secret: Option<SecretString>,
    /// `INBOX_X_CONSUMER_SECRET`: set for webhook mode (it signs X's webhooks).
    pub consumer_secret: Option<SecretString>,
    /// `INBOX_X_API_BASE` (default `https://api.x.com`).
    pub api_base: Url,
    /// `INBOX_X_AUTHORIZE_URL` (default `https://x.com/i/oauth2/authorize`).
    pub authorize_url: Url,
}

/// Reddit's settings.
#[derive(Debug, Clone)]
pub struct RedditSettings {
    /// `INBOX_REDDIT_CLIENT_ID`: the OAuth client, and the key of its shared budget.
    pub client_id: String,
    /// `INBOX_REDDIT_CLIENT_SECRET`: empty or unset for an installed app.
    pub client_secret: Option<SecretString>,
    /// `INBOX_REDDIT_USER_AGENT`: sent on every call.
    pub user_agent: String,
    /// `INBOX_REDDIT_API_BASE` (default `https://oauth.reddit.com`).
    pub api_base: Url,
    /// `INBOX_REDDIT_WWW_BASE` (default `https://www.reddit.com`).
    pub www_base: Url,
}

/// The raw values, as read.
#[derive(Debug, Default)]
pub(super) struct Raw {
    pub(super) x_client_id: Option<String>,
    pub(super) x_client_secret: Option<String>,
    pub(super) x_consumer_secret: Option<String>,
    pub(super) x_api_base: Option<String>,
    pub(super) x_authorize_url: Option<String>,
    pub(super) reddit_client_id: Option<String>,
    pub(super) reddit_client_secret: Option<String>,
    pub(super) reddit_user_agent: Option<String>,
    pub(super) reddit_api_base: Option<String>,
    pub(super) reddit_www_base: Option<String>,
    pub(super) bluesky_service: Option<String>,
}

/// The validated settings.
#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) x: Option<XSettings>,
    pub(super) reddit: Option<RedditSettings>,
    pub(super) bluesky_service: Url,
}

/// The keys of this module, for the environment reader.
pub(super) const KEYS: [&str; 11] = [
    "x_client_id",
    "x_client_secret",
    "x_consumer_secret",
    "x_api_base",
    "x_authorize_url",
    "reddit_client_id",
    "reddit_client_secret",
    "reddit_user_agent",
    "reddit_api_base",
    "reddit_www_base",
    "bluesky_service",
];

/// Validates; `public_url` says whether `INBOX_PUBLIC_URL` is set.
pub(super) fn parse(raw: Raw, public_url: bool) -> Result<Parsed, ConfigError> {
    let x_api_base = parse_base_url("x_api_base", raw.x_api_base, "https://api.x.com")?;
    let x_authorize_url = parse_base_url(
        "x_authorize_url",
        raw.x_authorize_url,
        "https://x.com/i/oauth2/authorize",
    )?;
    let x_client_secret = non_empty(raw.x_client_secret).map(SecretString::from);
    let x_consumer_secret = non_empty(raw.x_consumer_secret).map(SecretString::from);
    let x = match non_empty(raw.x_client_id) {
        None => {
            if x_client_secret.is_some() || x_consumer_secret.is_some() {
                return Err(bad(
                    "INBOX_X_CLIENT_ID",
                    "is required when INBOX_X_CLIENT_SECRET or INBOX_X_CONSUMER_SECRET is set",
                ));
            }
            None
        }
        Some(client_id) => {
            if x_consumer_secret.is_some() && !public_url {
                return Err(bad(
                    "INBOX_X_CONSUMER_SECRET",
                    "turns on X webhooks, which need INBOX_PUBLIC_URL (X pushes to \
                     {INBOX_PUBLIC_URL}/webhooks/x); unset it to poll instead",
                ));
            }
            Some(XSettings {
                client_id,
                client_secret: x_client_secret,
                consumer_secret: x_consumer_secret,
                api_base: x_api_base,
                authorize_url: x_authorize_url,
            })
        }
    };

    let reddit_api_base = parse_base_url(
        "reddit_api_base",
        raw.reddit_api_base,
        "https://oauth.reddit.com",
    )?;
    let reddit_www_base = parse_base_url(
        "reddit_www_base",
        raw.reddit_www_base,
        "https://www.reddit.com",
    )?;
    let reddit_client_secret = non_empty(raw.reddit_client_secret).map(SecretString::from);
    let reddit_user_agent = non_empty(raw.reddit_user_agent);
    let reddit = match non_empty(raw.reddit_client_id) {
        None => {
            if reddit_client_secret.is_some() {
                return Err(bad(
                    "INBOX_REDDIT_CLIENT_ID",
                    "is required when INBOX_REDDIT_CLIENT_SECRET is set",
                ));
            }
            None
        }
        Some(client_id) => {
            let user_agent = reddit_user_agent.ok_or_else(|| {
                bad(
                    "INBOX_REDDIT_USER_AGENT",
                    "is required with INBOX_REDDIT_CLIENT_ID: Reddit throttles generic agents; \
                     use `<platform>:<app id>:<version> (by /u/<your username>)`",
                )
            })?;
            if user_agent.len() < 7 || user_agent.chars().any(char::is_control) {
                return Err(bad(
                    "INBOX_REDDIT_USER_AGENT",
                    "must be descriptive, such as `linux:com.example.inboxgw:v0.1.0 (by /u/yourname)`",
                ));
            }
            Some(RedditSettings {
                client_id,
                client_secret: reddit_client_secret,
                user_agent,
                api_base: reddit_api_base,
                www_base: reddit_www_base,
            })
        }
    };

    Ok(Parsed {
        x,
        reddit,
        bluesky_service: parse_base_url(
            "bluesky_service",
            raw.bluesky_service,
            "https://bsky.social",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variable(raw: Raw, public_url: bool) -> String {
        parse(raw, public_url).unwrap_err().variable
    }

    #[test]
    fn apps_are_optional_and_complete_when_present() {
        let parsed = parse(Raw::default(), false).unwrap();
        assert!(parsed.x.is_none() && parsed.reddit.is_none());
        assert_eq!(parsed.bluesky_service.as_str(), "https://bsky.social/");

        let parsed = parse(
            Raw {
                x_client_id: Some("cid".into()),
                reddit_client_id: Some("rid".into()),
                reddit_user_agent: Some("linux:gw:v1 (by /u/me)".into()),
                ..Raw::default()
            },
            false,
        )
        .unwrap();
        let x = parsed.x.unwrap();
        assert!(x.consumer_secret.is_none(), "X polls");
        assert_eq!(x.api_base.as_str(), "https://api.x.com/");
        assert_eq!(
            parsed.reddit.unwrap().www_base.as_str(),
            "https://www.reddit.com/"
        );
    }

    #[test]
    fn each_mistake_names_its_variable() {
        let with = |f: fn(&mut Raw)| {
            let mut raw = Raw::default();
            f(&mut raw);
            raw
        };
        assert_eq!(
            variable(with(|r| r.x_consumer_secret = Some("s".into())), true),
            "INBOX_X_CLIENT_ID"
        );
        assert_eq!(
            variable(
                with(|r| {
                    r.x_client_id = Some("c".into());
                    r.x_consumer_secret = Some("s".into());
                }),
                false
            ),
            "INBOX_X_CONSUMER_SECRET"
        );
        assert_eq!(
            variable(with(|r| r.x_api_base = Some("api.x.com".into())), false),
            "INBOX_X_API_BASE"
        );
        assert_eq!(
            variable(with(|r| r.reddit_client_id = Some("r".into())), false),
            "INBOX_REDDIT_USER_AGENT"
        );
        assert_eq!(
            variable(
                with(|r| {
                    r.reddit_client_id = Some("r".into());
                    r.reddit_user_agent = Some("bot".into());
                }),
                false
            ),
            "INBOX_REDDIT_USER_AGENT"
        );
        assert_eq!(
            variable(with(|r| r.reddit_client_secret = Some("s".into())), false),
            "INBOX_REDDIT_CLIENT_ID"
        );
        assert_eq!(
            variable(with(|r| r.bluesky_service = Some("ftp://x".into())), false),
            "INBOX_BLUESKY_SERVICE"
        );
        assert_eq!(
            variable(with(|r| r.reddit_www_base = Some("nope".into())), false),
            "INBOX_REDDIT_WWW_BASE"
        );
    }
}
