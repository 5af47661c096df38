//! The Instagram adapter: [`Instagram`] implements [`inbox_core::Platform`] for professional
//! accounts connected with Instagram Login.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod config;
mod normalize;
mod webhook;
mod wire;

use std::{fmt, time::Duration};

use async_trait::async_trait;
use inbox_core::{
    AccountContext, AttachmentKind, BudgetCall, BudgetOperation, BudgetScope, Capabilities,
    ConnectedAccount, ConversationTarget, Credentials, Error, FetchedMedia, HandshakeResponse,
    InboundEvent, InboundMode, InboundSetup, OAuthCallback, OAuthFlow, OAuthRequest,
    OutboundMessage, Participant, Platform, PlatformKind, PollBatch, RateBudget,
    RefreshedCredentials, Result, SentMessage, StartedConversation, TextLimit, TextUnit, Timestamp,
    WebhookRequest, WindowRule,
};
use inbox_platform_meta::{GraphFailure, messaging};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::InstagramApi;
pub use crate::config::{
    DEFAULT_API_BASE, DEFAULT_OAUTH_BASE, DEFAULT_REFRESH_LEAD, DEFAULT_REFRESH_MIN_AGE,
    InstagramConfig, InstagramConfigBuilder,
};

pub(crate) const PLATFORM: PlatformKind = PlatformKind::Instagram;

/// Instagram's text limit: "Message text must be UTF-8 and be 1000 bytes or less"
/// (<https://developers.facebook.com/docs/messenger-platform/instagram/features/send-message>).
pub const TEXT_LIMIT: usize = 1000;

/// The budget every call counts against: the SPEC's 200 calls per hour per token, Graph's
/// Platform-rate formula that older Instagram docs applied; a conservative local budget.
pub const CALLS_PER_ACCOUNT: &str = "calls_per_account";

/// How long a long-lived token lasts (`expires_in` is about 5,184,000 s).
const LONG_LIVED: Duration = Duration::from_secs(60 * 86_400);

/// The credentials document: `{"accessToken": "IGAA…"}`.
#[derive(Serialize, Deserialize)]
struct InstagramCredentials {
    #[serde(rename = "accessToken")]
    access_token: String,
}

/// The Instagram adapter. Holds no per-account state.
pub struct Instagram {
    config: InstagramConfig,
    api: InstagramApi,
    capabilities: Capabilities,
}

impl fmt::Debug for Instagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instagram")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn capabilities(config: &InstagramConfig) -> Capabilities {
    Capabilities {
        text_limits: vec![TextLimit {
            max: TEXT_LIMIT,
            unit: TextUnit::Bytes,
        }],
        // Text and an attachment are two messages on Instagram: no captions.
        caption_limits: Some(vec![TextLimit {
            max: 0,
            unit: TextUnit::Bytes,
        }]),
        // "Your app has 24 hours to respond"; HUMAN_AGENT allows 7 days.
        window: WindowRule::Window {
            standard: Duration::from_secs(24 * 3600),
            human_agent: Some(Duration::from_secs(7 * 86_400)),
            templates_outside: false,
        },
        outbound_attachments: vec![
            AttachmentKind::Image,
            AttachmentKind::Video,
            AttachmentKind::Audio,
            AttachmentKind::File,
        ],
        max_outbound_attachments: 1,
        inbound_modes: vec![InboundMode::WebhookPerApp],
        reply_threading: false,
        mark_read: true,
        start_conversation: false,
        message_tags: true,
        templates: false,
        credential_refresh: Some(config.refresh()),
        oauth: Some(OAuthFlow { pkce: false }),
        profile_lookup: true,
        rate_budgets: vec![
            RateBudget::new(
                CALLS_PER_ACCOUNT,
                BudgetScope::Account,
                BudgetOperation::Any,
                200,
                Duration::from_secs(3600),
            )
            .with_burst(50),
        ],
    }
}

fn expiry(expires_in: Option<u64>) -> Timestamp {
    Timestamp::now() + expires_in.map_or(LONG_LIVED, Duration::from_secs)
}

/// Whether a failure says nothing about the token (Meta did not answer in time).
fn is_transient(failure: &GraphFailure) -> bool {
    matches!(
        failure,
        GraphFailure::Exhausted { .. } | GraphFailure::Transport(_)
    )
}

impl Instagram {
    /// Builds the adapter and its HTTP client.
    ///
    /// # Errors
    /// `Internal` when the HTTP client cannot be built.
    pub fn new(config: InstagramConfig) -> Result<Self> {
        Ok(Instagram {
            api: InstagramApi::new(&config)?,
            capabilities: capabilities(&config),
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &InstagramConfig {
        &self.config
    }

    fn token(account: &AccountContext) -> Result<String> {
        let credentials: InstagramCredentials = account.credentials.parse(PLATFORM)?;
        Ok(credentials.access_token)
    }

    fn budget<'a>(
        account: &'a AccountContext,
        operation: BudgetOperation,
        recipient: &'a str,
    ) -> BudgetCall<'a> {
        BudgetCall::new(PLATFORM, operation, &account.platform_account_id)
            .in_conversation(recipient)
            .to_recipient(recipient)
    }

    /// A long-lived token and its expiry for any valid token: a short-lived one is exchanged
    /// (`ig_exchange_token`); a long-lived one at least a day old is refreshed, which also
    /// tells its expiry; a younger long-lived one lasts about 60 days from now. Which of the
    /// first two a token is cannot be told from it, so both are tried (an exchange of a
    /// long-lived token is refused; the form of that refusal is UNCONFIRMED, so any refusal
    /// counts).
    async fn long_lived(&self, token: String) -> Result<(String, Timestamp)> {
        match self.api.exchange(&token).await {
            Some(Ok(long)) => return Ok((long.access_token, expiry(long.expires_in))),
            Some(Err(failure)) if is_transient(&failure) => return Err(failure.into_core(PLATFORM)),
            Some(Err(_)) | None => {}
        }
        match self.api.refresh(&token).await {
            Ok(long) => Ok((long.access_token, expiry(long.expires_in))),
            Err(failure) if is_transient(&failure) => Err(failure.into_core(PLATFORM)),
            // Too young to refresh: long-lived tokens last 60 days; one day is kept in hand.
            Err(_) => Ok((
                token,
                Timestamp::now() + LONG_LIVED - Duration::from_secs(86_400),
            )),
        }
    }

    async fn describe(&self, token: String, expires: Timestamp) -> Result<ConnectedAccount> {
        let me = self
            .api
            .me(&token)
            .await
            .map_err(|failure| failure.into_core(PLATFORM))?;
        let id = me
            .user_id
            .or(me.id)
            .ok_or_else(|| Error::internal_msg("Instagram's /me answered without `user_id`"))?;
        Ok(ConnectedAccount {
            name: me
                .name
                .filter(|n| !n.is_empty())
                .or_else(|| me.username.clone())
                .unwrap_or_else(|| id.clone()),
            platform_account_id: id,
            username: me.username,
            credentials: Credentials::from_value(&InstagramCredentials {
                access_token: token,
            })?,
            credentials_expire_at: Some(expires),
        })
    }

    fn oauth_app(&self) -> Result<(&str, &str)> {
        match (&self.config.app_id, &self.config.app_secret) {
            (Some(id), Some(secret)) => Ok((id, secret.expose_secret())),
            _ => Err(Error::Unavailable {
                message:
                    "Instagram OAuth is not configured on this gateway: the operator must set \
                          INBOX_INSTAGRAM_APP_ID and INBOX_INSTAGRAM_APP_SECRET"
                        .to_owned(),
                retry_after: None,
            }),
        }
    }
}

fn valid_token(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 4096
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'|'))
}

#[async_trait]
impl Platform for Instagram {
    fn kind(&self) -> PlatformKind {
        PLATFORM
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn connect(&self, credentials: &Value) -> Result<ConnectedAccount> {
        const PARAM: &str = "credentials.accessToken";
        let token = match credentials.get("accessToken") {
            Some(Value::String(token)) if valid_token(token.trim()) => token.trim().to_owned(),
            Some(Value::String(_)) => {
                return Err(Error::invalid(
                    PARAM,
                    "an Instagram access token is letters, digits, `_`, `-`, `.` and `|` (copy it again)",
                ));
            }
            Some(_) => return Err(Error::invalid(PARAM, "the access token must be a string")),
            None => {
                return Err(Error::invalid(
                    PARAM,
                    "Instagram credentials need `accessToken`, an Instagram Login user token",
                ));
            }
        };
        // Validate before anything else, so a bad token is reported as such.
        if let Err(failure) = self.api.me(&token).await {
            return Err(match failure.into_core(PLATFORM) {
                Error::ReauthRequired { message, .. } | Error::Platform { message, .. } => {
                    Error::invalid(
                        PARAM,
                        format!("Instagram rejected the access token: {message}"),
                    )
                }
                other => other,
            });
        }
        let (token, expires) = self.long_lived(token).await?;
        self.describe(token, expires).await
    }

    async fn start_inbound(
        &self,
        account: &AccountContext,
        _setup: &InboundSetup,
    ) -> Result<InboundMode> {
        // The webhook URL is the app's (set in the App Dashboard); each account subscribes
        // the app to its messaging fields.
        let token = Self::token(account)?;
        self.api
            .subscribe(&token, true)
            .await
            .map_err(|failure| failure.into_core(PLATFORM))?;
        Ok(InboundMode::WebhookPerApp)
    }

    async fn stop_inbound(&self, account: &AccountContext) -> Result<()> {
        let token = Self::token(account)?;
        self.api
            .subscribe(&token, false)
            .await
            .map(|_| ())
            .map_err(|failure| failure.into_core(PLATFORM))
    }

    fn handshake(&self, request: &WebhookRequest<'_>) -> Result<HandshakeResponse> {
        webhook::handshake(&self.config, request)
    }

    fn verify_webhook(
        &self,
        request: &WebhookRequest<'_>,
        _account: Option<&AccountContext>,
    ) -> Result<()> {
        webhook::verify(&self.config, request)
    }

    fn parse_inbound(&self, payload: &[u8]) -> Result<Vec<InboundEvent>> {
        normalize::parse(payload)
    }

    async fn poll(&self, _account: &AccountContext, _cursor: Option<&str>) -> Result<PollBatch> {
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "polling (Instagram pushes webhooks)",
        })
    }

    async fn send(
        &self,
        account: &AccountContext,
        target: &ConversationTarget,
        message: &OutboundMessage,
    ) -> Result<SentMessage> {
        let body = messaging::send_body(PLATFORM, &target.participant_id, message, None)?;
        let token = Self::token(account)?;
        let budget = Self::budget(account, BudgetOperation::Send, &target.participant_id);
        let answer = self.api.post_messages(&token, body, budget, "send").await;
        messaging::sent_message(
            PLATFORM,
            answer,
            self.capabilities.text_limits[0],
            &message.text,
        )
    }

    async fn start_conversation(
        &self,
        _account: &AccountContext,
        _participant: &str,
        _message: &OutboundMessage,
    ) -> Result<StartedConversation> {
        // Businesses may only answer people who wrote first.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "starting conversations",
        })
    }

    async fn mark_read(&self, account: &AccountContext, target: &ConversationTarget) -> Result<()> {
        let token = Self::token(account)?;
        let budget = Self::budget(account, BudgetOperation::Any, &target.participant_id);
        self.api
            .post_messages(
                &token,
                messaging::mark_seen_body(&target.participant_id),
                budget,
                "mark_seen",
            )
            .await
            .map(|_| ())
            .map_err(|failure| failure.into_core(PLATFORM))
    }

    async fn refresh_credentials(&self, account: &AccountContext) -> Result<RefreshedCredentials> {
        let token = Self::token(account)?;
        let long = self
            .api
            .refresh(&token)
            .await
            .map_err(|failure| failure.into_core(PLATFORM))?;
        Ok(RefreshedCredentials {
            credentials: Credentials::from_value(&InstagramCredentials {
                access_token: long.access_token,
            })?,
            expires_at: Some(expiry(long.expires_in)),
        })
    }

    fn oauth_authorize_url(&self, request: &OAuthRequest) -> Result<String> {
        let (app_id, _) = self.oauth_app()?;
        Ok(self
            .api
            .authorize_url(app_id, &request.redirect_uri, &request.state))
    }

    async fn oauth_exchange(&self, callback: &OAuthCallback) -> Result<Vec<ConnectedAccount>> {
        let (app_id, secret) = self.oauth_app()?;
        // Instagram appends `#_` to the redirect; a code copied with it would be refused.
        let code = callback.code.trim().trim_end_matches("#_");
        let short = self
            .api
            .exchange_code(app_id, secret, code, &callback.redirect_uri)
            .await
            .map_err(|failure| match failure {
                failure if is_transient(&failure) => failure.into_core(PLATFORM),
                failure => Error::invalid(
                    "code",
                    format!("Instagram refused the authorization code: {failure}"),
                ),
            })?;
        tracing::debug!(user_id = ?short.user_id, "Instagram authorization code exchanged");
        let long = match self.api.exchange(&short.access_token).await {
            Some(Ok(long)) => long,
            Some(Err(failure)) => return Err(failure.into_core(PLATFORM)),
            None => {
                return Err(self
                    .oauth_app()
                    .err()
                    .unwrap_or_else(|| Error::internal_msg("no app secret")));
            }
        };
        let account = self
            .describe(long.access_token, expiry(long.expires_in))
            .await?;
        Ok(vec![account])
    }

    async fn fetch_participant(
        &self,
        account: &AccountContext,
        participant_id: &str,
    ) -> Result<Participant> {
        let token = Self::token(account)?;
        let budget = Self::budget(account, BudgetOperation::Read, participant_id);
        // Code 230 (no consent yet) is an ordinary refusal: the caller keeps the id.
        let profile = self
            .api
            .profile(&token, participant_id, budget)
            .await
            .map_err(|failure| failure.into_core(PLATFORM))?;
        let name = profile
            .name
            .filter(|n| !n.is_empty())
            .or_else(|| profile.username.clone())
            .unwrap_or_else(|| participant_id.to_owned());
        Ok(Participant {
            id: participant_id.to_owned(),
            name,
            username: profile.username,
            picture: profile.profile_pic,
        })
    }

    async fn fetch_attachment(
        &self,
        _account: &AccountContext,
        _url: &str,
    ) -> Result<FetchedMedia> {
        // Instagram attachment URLs are signed CDN URLs that need no credentials; the API
        // redirects to them.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "fetching attachments (their URLs are public)",
        })
    }
}
