//! The Reddit private-message adapter: [`Reddit`] implements [`inbox_core::Platform`] for user
//! accounts connected with OAuth 2.0 (`duration=permanent`).
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod config;
mod normalize;
mod poll;
mod wire;

use std::time::Duration;

use async_trait::async_trait;
use inbox_core::{
    AccountContext, BudgetCall, BudgetOperation, BudgetScope, Capabilities, ConnectedAccount,
    ConversationTarget, Credentials, Error, FetchedMedia, HandshakeResponse, InboundEvent,
    InboundMode, InboundSetup, OAuthCallback, OAuthFlow, OAuthRequest, OutboundMessage,
    Participant, Platform, PlatformKind, PollBatch, RateBudget, RefreshPolicy,
    RefreshedCredentials, Result, SentMessage, StartedConversation, TextLimit, TextUnit, Timestamp,
    WebhookRequest, WindowRule,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Api, CallError, to_core};
pub use crate::config::{
    DEFAULT_API_BASE, DEFAULT_WWW_BASE, RedditConfig, RedditConfigBuilder, SCOPES,
};

const PLATFORM: PlatformKind = PlatformKind::Reddit;

/// Reddit's limit on a message body, in characters (`/api/comment` and `/api/compose`).
pub const TEXT_LIMIT: usize = 10_000;

/// The longest subject `/api/compose` takes.
pub const SUBJECT_LIMIT: usize = 100;

/// The per-OAuth-client budget: 100 requests a minute, shared by every account of the client
/// (<https://support.reddithelp.com/hc/en-us/articles/16160319875092-Reddit-Data-API-Wiki>).
pub const REQUESTS: &str = "requests";

/// The gateway's own pacing of each account's inbox polls (one every 15 s), so that one
/// client's 100 requests a minute serve about 20 polled accounts with room left for sends.
/// Operators can change it (`INBOX_RATE_BUDGETS=reddit.inbox_polls=…`).
pub const INBOX_POLLS: &str = "inbox_polls";

/// How long an access token lives when Reddit does not say (its documentation says an hour;
/// recent answers say `86400`: the answer wins when it is there).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The stored credentials. The refresh token is long-lived (a year) and Reddit may rotate it
/// on refresh; the access token is renewed before `expiresAt`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedditCredentials {
    refresh_token: String,
    access_token: String,
    expires_at: Timestamp,
}

/// The Reddit adapter. Holds no per-account state.
#[derive(Debug)]
pub struct Reddit {
    config: RedditConfig,
    api: Api,
    capabilities: Capabilities,
}

impl Reddit {
    /// Builds the adapter and its HTTP client.
    ///
    /// # Errors
    /// `Internal` when the HTTP client cannot be built.
    pub fn new(config: RedditConfig) -> Result<Self> {
        Ok(Self {
            api: Api::new(&config)?,
            capabilities: capabilities(&config),
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &RedditConfig {
        &self.config
    }

    fn credentials(account: &AccountContext) -> Result<RedditCredentials> {
        account.credentials.parse(PLATFORM)
    }

    /// Trades the refresh token for an access token.
    async fn refresh(&self, refresh_token: &str) -> Result<RedditCredentials> {
        let (status, answer) = self
            .api
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .await
            .map_err(|err| match err {
                // 401 at the token endpoint is the *client* (id or secret) being refused: an
                // operator's configuration problem, not the account's.
                CallError::Status { status, message } if status.as_u16() == 401 => {
                    Error::Platform {
                        platform: PLATFORM,
                        code: "401".into(),
                        message: format!(
                            "Reddit refused the OAuth client ({message}); check \
                             INBOX_REDDIT_CLIENT_ID and INBOX_REDDIT_CLIENT_SECRET"
                        ),
                    }
                }
                other => to_core(other),
            })?;
        let access = match (answer.error, answer.access_token) {
            (None, Some(access)) => access,
            (error, _) => {
                let what = error
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                    .or(answer.message)
                    .unwrap_or_else(|| format!("HTTP {status} without a token"));
                return Err(Error::ReauthRequired {
                    platform: PLATFORM,
                    message: format!("Reddit refused the refresh token: {what}"),
                });
            }
        };
        Ok(RedditCredentials {
            refresh_token: answer
                .refresh_token
                .unwrap_or_else(|| refresh_token.to_owned()),
            access_token: access,
            expires_at: Timestamp::now()
                + answer
                    .expires_in
                    .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs),
        })
    }

    /// Who the token belongs to (`GET /api/v1/me`).
    async fn me(&self, access_token: &str) -> Result<wire::Me> {
        self.api
            .get("/api/v1/me", access_token, &[], None)
            .await
            .map_err(to_core)
    }

    fn budget<'a>(account: &'a AccountContext, operation: BudgetOperation) -> BudgetCall<'a> {
        BudgetCall::new(PLATFORM, operation, &account.platform_account_id)
    }

    async fn connected(&self, stored: RedditCredentials) -> Result<ConnectedAccount> {
        let me = self.me(&stored.access_token).await?;
        let name = me
            .subreddit
            .and_then(|s| s.title)
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| me.name.clone());
        Ok(ConnectedAccount {
            platform_account_id: me.name.clone(),
            name,
            username: Some(me.name),
            credentials_expire_at: Some(stored.expires_at),
            credentials: Credentials::from_value(&stored)?,
        })
    }
}

/// What Reddit can do, as the gateway checks it before calling.
fn capabilities(config: &RedditConfig) -> Capabilities {
    Capabilities {
        text_limits: vec![TextLimit {
            max: TEXT_LIMIT,
            unit: TextUnit::Chars,
        }],
        caption_limits: None,
        window: WindowRule::None,
        // Private messages are markdown text; media travel as links in the text.
        outbound_attachments: Vec::new(),
        max_outbound_attachments: 0,
        inbound_modes: vec![InboundMode::Polling],
        reply_threading: false,
        mark_read: true,
        start_conversation: true,
        message_tags: false,
        templates: false,
        credential_refresh: Some(RefreshPolicy {
            lead_time: config.refresh_lead(),
            min_age: Duration::ZERO,
        }),
        oauth: Some(OAuthFlow { pkce: false }),
        profile_lookup: false,
        rate_budgets: vec![
            RateBudget::new(
                REQUESTS,
                BudgetScope::App,
                BudgetOperation::Any,
                100,
                Duration::from_secs(60),
            )
            .with_burst(10),
            RateBudget::new(
                INBOX_POLLS,
                BudgetScope::Account,
                BudgetOperation::Read,
                1,
                Duration::from_secs(15),
            ),
        ],
    }
}

/// A Reddit username as `/api/compose` takes it: `u/name`, `/u/name` and `name` alike.
fn username(participant: &str) -> Option<&str> {
    let name = participant
        .trim()
        .trim_start_matches('/')
        .trim_start_matches("u/")
        .trim_start_matches("user/");
    (3..=20).contains(&name.len()).then_some(name).filter(|n| {
        n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// A subject for a new thread: the text's first line, within Reddit's 100 characters.
fn subject_of(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("Message");
    let mut subject: String = line.trim().chars().take(SUBJECT_LIMIT).collect();
    if line.trim().chars().count() > SUBJECT_LIMIT {
        subject = subject.chars().take(SUBJECT_LIMIT - 1).collect::<String>() + "…";
    }
    subject
}

/// How long Reddit's `RATELIMIT` text says to wait ("Take a break for 5 minutes…").
fn ratelimit_wait(message: &str) -> Duration {
    let words: Vec<&str> = message.split_whitespace().collect();
    for pair in words.windows(2) {
        if let Ok(n) = pair[0].parse::<u64>() {
            let unit = pair[1].to_ascii_lowercase();
            if unit.starts_with("millisecond") {
                return Duration::from_millis(n);
            } else if unit.starts_with("second") {
                return Duration::from_secs(n);
            } else if unit.starts_with("minute") {
                return Duration::from_secs(n * 60);
            }
        }
    }
    Duration::from_secs(60)
}

/// Maps `json.errors` of a write (`[[code, message, field], …]`).
fn api_errors(errors: &[Vec<Value>], text: &str) -> Option<Error> {
    let first = errors.first()?;
    let part = |i: usize| first.get(i).and_then(Value::as_str).unwrap_or_default();
    let (code, message) = (part(0).to_owned(), part(1).to_owned());
    Some(match code.as_str() {
        "TOO_LONG" if matches!(part(2), "text" | "") => Error::MessageTooLong {
            platform: PLATFORM,
            limit: TEXT_LIMIT,
            unit: TextUnit::Chars,
            actual: TextUnit::Chars.measure(text),
        },
        "RATELIMIT" => Error::RateLimited {
            retry_after: ratelimit_wait(&message),
        },
        "USER_REQUIRED" => Error::ReauthRequired {
            platform: PLATFORM,
            message,
        },
        _ => Error::Platform {
            platform: PLATFORM,
            code,
            message,
        },
    })
}

#[async_trait]
impl Platform for Reddit {
    fn kind(&self) -> PlatformKind {
        PLATFORM
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn connect(&self, credentials: &Value) -> Result<ConnectedAccount> {
        const PARAM: &str = "credentials.refreshToken";
        let refresh = match credentials.get("refreshToken") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
            Some(Value::String(_)) => {
                return Err(Error::invalid(PARAM, "the refresh token is blank"));
            }
            Some(_) => return Err(Error::invalid(PARAM, "the refresh token must be a string")),
            None => {
                return Err(Error::invalid(
                    PARAM,
                    "Reddit credentials need `refreshToken`, from an OAuth grant with \
                     `duration=permanent` and the `privatemessages identity` scopes",
                ));
            }
        };
        let stored = self.refresh(refresh).await.map_err(|err| match err {
            Error::ReauthRequired { message, .. } => Error::invalid(PARAM, message),
            other => other,
        })?;
        self.connected(stored).await
    }

    async fn start_inbound(
        &self,
        account: &AccountContext,
        _setup: &InboundSetup,
    ) -> Result<InboundMode> {
        // Reddit has no webhooks for private messages.
        tracing::info!(account = %account.id, "Reddit inbound: polling the message inbox");
        Ok(InboundMode::Polling)
    }

    async fn stop_inbound(&self, _account: &AccountContext) -> Result<()> {
        Ok(())
    }

    fn handshake(&self, _request: &WebhookRequest<'_>) -> Result<HandshakeResponse> {
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "webhook handshakes",
        })
    }

    fn verify_webhook(
        &self,
        _request: &WebhookRequest<'_>,
        _account: Option<&AccountContext>,
    ) -> Result<()> {
        Err(Error::WebhookVerification {
            message: "Reddit has no webhooks".into(),
        })
    }

    fn parse_inbound(&self, payload: &[u8]) -> Result<Vec<InboundEvent>> {
        normalize::parse(payload)
    }

    async fn poll(&self, account: &AccountContext, cursor: Option<&str>) -> Result<PollBatch> {
        let credentials = Self::credentials(account)?;
        poll::poll(
            &self.api,
            account,
            &credentials.access_token,
            cursor,
            self.config.max_pages(),
        )
        .await
    }

    async fn send(
        &self,
        account: &AccountContext,
        target: &ConversationTarget,
        message: &OutboundMessage,
    ) -> Result<SentMessage> {
        if !message.attachments.is_empty()
            || message.template.is_some()
            || message.message_tag.is_some()
        {
            return Err(Error::UnsupportedContent {
                message: "Reddit messages are text (markdown); put links in the text".into(),
            });
        }
        if message.text.trim().is_empty() {
            return Err(Error::invalid("message", "a Reddit message needs text"));
        }
        // A reply goes to the newest message of the thread the gateway knows (the
        // participant's latest), else to the thread's root; either keeps the thread.
        let thing = target
            .last_inbound_platform_message_id
            .as_deref()
            .filter(|id| id.starts_with("t4_"))
            .unwrap_or(&target.platform_conversation_id);
        if !thing.starts_with("t4_") {
            return Err(Error::invalid(
                "conversation",
                "a Reddit thread is identified by a message fullname (`t4_…`)",
            ));
        }
        let credentials = Self::credentials(account)?;
        let budget = Self::budget(account, BudgetOperation::Send)
            .in_conversation(&target.platform_conversation_id);
        let answer: wire::JsonAnswer = self
            .api
            .post(
                "/api/comment",
                &credentials.access_token,
                &[
                    ("thing_id", thing.to_owned()),
                    ("text", message.text.clone()),
                ],
                Some(budget),
            )
            .await
            .map_err(to_core)?;
        if let Some(error) = api_errors(&answer.json.errors, &message.text) {
            return Err(error);
        }
        let created = answer
            .json
            .data
            .and_then(|data| data.things.into_iter().next())
            .and_then(|thing| serde_json::from_value::<wire::Message>(thing.data).ok())
            .ok_or_else(|| Error::Platform {
                platform: PLATFORM,
                code: "malformed_response".into(),
                message: "Reddit accepted the reply but did not return it".into(),
            })?;
        Ok(SentMessage {
            platform_message_id: created.name,
            timestamp: created.created_utc.map_or_else(Timestamp::now, |c| {
                Timestamp::from_unix_millis((c * 1000.0) as i64)
            }),
        })
    }

    async fn start_conversation(
        &self,
        account: &AccountContext,
        participant: &str,
        message: &OutboundMessage,
    ) -> Result<StartedConversation> {
        if !message.attachments.is_empty() || message.text.trim().is_empty() {
            return Err(Error::UnsupportedContent {
                message: "a Reddit message starts with text".into(),
            });
        }
        let to = username(participant).ok_or_else(|| {
            Error::invalid(
                "participant",
                "a Reddit participant is a username (3–20 letters, digits, `_` or `-`)",
            )
        })?;
        let credentials = Self::credentials(account)?;
        let budget = Self::budget(account, BudgetOperation::Send).to_recipient(to);
        let answer: wire::JsonAnswer = self
            .api
            .post(
                "/api/compose",
                &credentials.access_token,
                &[
                    ("to", to.to_owned()),
                    ("subject", subject_of(&message.text)),
                    ("text", message.text.clone()),
                ],
                Some(budget),
            )
            .await
            .map_err(to_core)?;
        if let Some(error) = api_errors(&answer.json.errors, &message.text) {
            return Err(error);
        }
        // `/api/compose` answers `{"json":{"errors":[]}}` without the new message; the sent
        // box names it (newest first).
        let sent: wire::Listing = self
            .api
            .get(
                "/message/sent",
                &credentials.access_token,
                &[("limit", "10".to_owned())],
                Some(Self::budget(account, BudgetOperation::Read)),
            )
            .await
            .map_err(to_core)?;
        let found = sent
            .data
            .children
            .into_iter()
            .filter_map(|child| serde_json::from_value::<wire::Thing>(child).ok())
            .filter(|thing| thing.kind == "t4")
            .filter_map(|thing| serde_json::from_value::<wire::Message>(thing.data).ok())
            .find(|m| {
                m.dest
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(to))
                    && m.body.as_deref().map(str::trim) == Some(message.text.trim())
            })
            .ok_or_else(|| Error::Platform {
                platform: PLATFORM,
                code: "not_found".into(),
                message: format!(
                    "Reddit accepted the message to u/{to}, but it is not in the sent box"
                ),
            })?;
        Ok(StartedConversation {
            platform_conversation_id: normalize::thread_of(&found),
            participant: normalize::user(found.dest.as_deref().unwrap_or(to)),
            message: SentMessage {
                platform_message_id: found.name,
                timestamp: found.created_utc.map_or_else(Timestamp::now, |c| {
                    Timestamp::from_unix_millis((c * 1000.0) as i64)
                }),
            },
        })
    }

    async fn mark_read(&self, account: &AccountContext, target: &ConversationTarget) -> Result<()> {
        let credentials = Self::credentials(account)?;
        let mut ids = vec![target.platform_conversation_id.clone()];
        if let Some(last) = target
            .last_inbound_platform_message_id
            .clone()
            .filter(|id| id.starts_with("t4_") && *id != target.platform_conversation_id)
        {
            ids.push(last);
        }
        let _: Value = self
            .api
            .post(
                "/api/read_message",
                &credentials.access_token,
                &[("id", ids.join(","))],
                Some(
                    Self::budget(account, BudgetOperation::Any)
                        .in_conversation(&target.platform_conversation_id),
                ),
            )
            .await
            .map_err(to_core)?;
        Ok(())
    }

    async fn refresh_credentials(&self, account: &AccountContext) -> Result<RefreshedCredentials> {
        let current = Self::credentials(account)?;
        let renewed = self.refresh(&current.refresh_token).await?;
        Ok(RefreshedCredentials {
            expires_at: Some(renewed.expires_at),
            credentials: Credentials::from_value(&renewed)?,
        })
    }

    fn oauth_authorize_url(&self, request: &OAuthRequest) -> Result<String> {
        let mut url = url::Url::parse(&format!("{}/api/v1/authorize", self.config.www_base()))
            .map_err(|err| Error::internal("the Reddit www base does not parse", err))?;
        url.query_pairs_mut()
            .append_pair("client_id", self.config.client_id())
            .append_pair("response_type", "code")
            .append_pair("state", &request.state)
            .append_pair("redirect_uri", &request.redirect_uri)
            .append_pair("duration", "permanent")
            .append_pair("scope", SCOPES);
        Ok(url.into())
    }

    async fn oauth_exchange(&self, callback: &OAuthCallback) -> Result<Vec<ConnectedAccount>> {
        let (_, answer) = self
            .api
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &callback.code),
                ("redirect_uri", &callback.redirect_uri),
            ])
            .await
            .map_err(to_core)?;
        let (Some(access), Some(refresh)) = (answer.access_token, answer.refresh_token) else {
            return Err(Error::invalid(
                "code",
                format!(
                    "Reddit refused the authorization code ({})",
                    answer.error.map(|e| e.to_string()).unwrap_or_else(|| {
                        "no refresh token: was duration=permanent granted?".into()
                    })
                ),
            ));
        };
        let stored = RedditCredentials {
            refresh_token: refresh,
            access_token: access,
            expires_at: Timestamp::now()
                + answer
                    .expires_in
                    .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs),
        };
        Ok(vec![self.connected(stored).await?])
    }

    async fn fetch_participant(
        &self,
        _account: &AccountContext,
        _participant_id: &str,
    ) -> Result<Participant> {
        // A message names its author by username, which is all Reddit shows in messages.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "looking up profiles",
        })
    }

    async fn fetch_attachment(
        &self,
        _account: &AccountContext,
        _url: &str,
    ) -> Result<FetchedMedia> {
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "attachments (Reddit messages carry links, not media)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_subjects_and_waits() {
        assert_eq!(username("/u/alice_user"), Some("alice_user"));
        assert_eq!(username("u/alice-user"), Some("alice-user"));
        assert_eq!(username("ab"), None);
        assert_eq!(username("a/b/c"), None);
        assert_eq!(subject_of("\nHello there\nsecond line"), "Hello there");
        assert_eq!(subject_of(&"x".repeat(150)).chars().count(), 100);
        assert_eq!(
            ratelimit_wait(
                "Looks like you've been doing that a lot. Take a break for 5 minutes before trying again."
            ),
            Duration::from_secs(300)
        );
        assert_eq!(
            ratelimit_wait("Take a break for 9 seconds"),
            Duration::from_secs(9)
        );
    }
}
