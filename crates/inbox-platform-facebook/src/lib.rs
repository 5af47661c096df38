//! The Facebook Messenger adapter: [`Facebook`] implements [`inbox_core::Platform`] for
//! Pages.
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
    RefreshedCredentials, Result, SentMessage, StartedConversation, TextLimit, TextUnit,
    WebhookRequest, WindowRule,
};
use inbox_platform_meta::{ErrorClass, GraphFailure, messaging};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::GraphApi;
pub use crate::config::{
    DEFAULT_GRAPH_BASE, DEFAULT_OAUTH_BASE, FacebookConfig, FacebookConfigBuilder,
};

pub(crate) const PLATFORM: PlatformKind = PlatformKind::Facebook;

/// Messenger's text limit: "Must be UTF-8 and has a 2000 character limit"
/// (<https://developers.facebook.com/docs/messenger-platform/reference/send-api>).
pub const TEXT_LIMIT: usize = 2000;

/// The Send API budget: 300 calls per second per Page for text, links, reactions and
/// stickers (Messenger Platform rate limits); 50 may go at once.
pub const SEND_PER_PAGE: &str = "send_per_page";
/// Profile lookups and other reads: 2 calls per second per Page, as the Conversations API.
pub const READS_PER_PAGE: &str = "reads_per_page";

/// The credentials document: `{"pageId": "…", "pageAccessToken": "EAAB…"}`.
#[derive(Serialize, Deserialize)]
struct FacebookCredentials {
    #[serde(rename = "pageId")]
    page_id: String,
    #[serde(rename = "pageAccessToken")]
    page_access_token: String,
}

/// The Facebook adapter. Holds no per-account state.
pub struct Facebook {
    config: FacebookConfig,
    api: GraphApi,
    capabilities: Capabilities,
}

impl fmt::Debug for Facebook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Facebook")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn capabilities() -> Capabilities {
    Capabilities {
        text_limits: vec![TextLimit {
            max: TEXT_LIMIT,
            unit: TextUnit::Chars,
        }],
        // "Each message carries either text or attachment, not both."
        caption_limits: Some(vec![TextLimit {
            max: 0,
            unit: TextUnit::Chars,
        }]),
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
        credential_refresh: None,
        oauth: Some(OAuthFlow { pkce: false }),
        profile_lookup: true,
        rate_budgets: vec![
            RateBudget::new(
                SEND_PER_PAGE,
                BudgetScope::Account,
                BudgetOperation::Send,
                300,
                Duration::from_secs(1),
            )
            .with_burst(50),
            RateBudget::new(
                READS_PER_PAGE,
                BudgetScope::Account,
                BudgetOperation::Read,
                2,
                Duration::from_secs(1),
            )
            .with_burst(2),
        ],
    }
}

fn is_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 4096
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'|'))
}

impl Facebook {
    /// Builds the adapter and its HTTP client.
    ///
    /// # Errors
    /// `Internal` when the HTTP client cannot be built.
    pub fn new(config: FacebookConfig) -> Result<Self> {
        Ok(Facebook {
            api: GraphApi::new(&config)?,
            capabilities: capabilities(),
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &FacebookConfig {
        &self.config
    }

    fn credentials(account: &AccountContext) -> Result<FacebookCredentials> {
        account.credentials.parse(PLATFORM)
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

    fn oauth_app(&self) -> Result<(&str, &str)> {
        match (&self.config.app_id, &self.config.app_secret) {
            (Some(id), Some(secret)) => Ok((id, secret.expose_secret())),
            _ => Err(Error::Unavailable {
                message: "Facebook Login is not configured on this gateway: the operator must set \
                          INBOX_META_APP_ID and INBOX_META_APP_SECRET"
                    .to_owned(),
                retry_after: None,
            }),
        }
    }
}

#[async_trait]
impl Platform for Facebook {
    fn kind(&self) -> PlatformKind {
        PLATFORM
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn connect(&self, credentials: &Value) -> Result<ConnectedAccount> {
        let field = |name: &str, valid: fn(&str) -> bool, what: &str| -> Result<String> {
            let param = format!("credentials.{name}");
            match credentials.get(name) {
                Some(Value::String(value)) if valid(value.trim()) => Ok(value.trim().to_owned()),
                Some(Value::String(_)) => {
                    Err(Error::invalid(param, format!("`{name}` is not {what}")))
                }
                Some(_) => Err(Error::invalid(param, format!("`{name}` must be a string"))),
                None => Err(Error::invalid(
                    param,
                    format!(
                        "Facebook credentials need `pageId` and `pageAccessToken`; `{name}` is missing"
                    ),
                )),
            }
        };
        let page_id = field("pageId", is_id, "a Page id (digits)")?;
        let token = field("pageAccessToken", is_token, "a Page access token")?;
        let page = match self.api.page(&token, &page_id).await {
            Ok(page) => page,
            Err(failure) => {
                return Err(match failure.graph_error().map(|e| (e.class(), e.code())) {
                    Some((ErrorClass::Reauth, _)) => Error::invalid(
                        "credentials.pageAccessToken",
                        format!("Facebook rejected the Page access token: {failure}"),
                    ),
                    Some((_, 100 | 803)) => Error::invalid(
                        "credentials.pageId",
                        format!("Facebook does not know this Page for the token: {failure}"),
                    ),
                    _ => failure.into_core(PLATFORM),
                });
            }
        };
        if page.id.as_deref() != Some(page_id.as_str()) {
            return Err(Error::invalid(
                "credentials.pageId",
                "the Page access token belongs to another Page",
            ));
        }
        Ok(ConnectedAccount {
            name: page
                .name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| page_id.clone()),
            username: page.username,
            credentials: Credentials::from_value(&FacebookCredentials {
                page_id: page_id.clone(),
                page_access_token: token,
            })?,
            platform_account_id: page_id,
            // Page tokens from a long-lived user token do not expire; revocation is code 190.
            credentials_expire_at: None,
        })
    }

    async fn start_inbound(
        &self,
        account: &AccountContext,
        _setup: &InboundSetup,
    ) -> Result<InboundMode> {
        let credentials = Self::credentials(account)?;
        self.api
            .subscribe(&credentials.page_access_token, &credentials.page_id, true)
            .await
            .map_err(|failure| failure.into_core(PLATFORM))?;
        Ok(InboundMode::WebhookPerApp)
    }

    async fn stop_inbound(&self, account: &AccountContext) -> Result<()> {
        let credentials = Self::credentials(account)?;
        self.api
            .subscribe(&credentials.page_access_token, &credentials.page_id, false)
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
            operation: "polling (Messenger pushes webhooks)",
        })
    }

    async fn send(
        &self,
        account: &AccountContext,
        target: &ConversationTarget,
        message: &OutboundMessage,
    ) -> Result<SentMessage> {
        // Inside the window a reply is a RESPONSE; HUMAN_AGENT goes as MESSAGE_TAG.
        let body =
            messaging::send_body(PLATFORM, &target.participant_id, message, Some("RESPONSE"))?;
        let credentials = Self::credentials(account)?;
        let budget = Self::budget(account, BudgetOperation::Send, &target.participant_id);
        let answer = self
            .api
            .post_messages(
                &credentials.page_access_token,
                &credentials.page_id,
                body,
                budget,
                "send",
            )
            .await;
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
        // A Page may only answer people who wrote to it first.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "starting conversations",
        })
    }

    async fn mark_read(&self, account: &AccountContext, target: &ConversationTarget) -> Result<()> {
        let credentials = Self::credentials(account)?;
        let budget = Self::budget(account, BudgetOperation::Any, &target.participant_id);
        self.api
            .post_messages(
                &credentials.page_access_token,
                &credentials.page_id,
                messaging::mark_seen_body(&target.participant_id),
                budget,
                "mark_seen",
            )
            .await
            .map(|_| ())
            .map_err(|failure| failure.into_core(PLATFORM))
    }

    async fn refresh_credentials(&self, _account: &AccountContext) -> Result<RefreshedCredentials> {
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "refreshing credentials (Page tokens do not expire)",
        })
    }

    fn oauth_authorize_url(&self, request: &OAuthRequest) -> Result<String> {
        let (app_id, _) = self.oauth_app()?;
        Ok(self
            .api
            .dialog_url(app_id, &request.redirect_uri, &request.state))
    }

    async fn oauth_exchange(&self, callback: &OAuthCallback) -> Result<Vec<ConnectedAccount>> {
        let (app_id, secret) = self.oauth_app()?;
        let short = self
            .api
            .user_token(app_id, secret, callback.code.trim(), &callback.redirect_uri)
            .await
            .map_err(|failure| match failure {
                GraphFailure::Exhausted { .. } | GraphFailure::Transport(_) => {
                    failure.into_core(PLATFORM)
                }
                failure => Error::invalid(
                    "code",
                    format!("Facebook refused the authorization code: {failure}"),
                ),
            })?;
        let long = self
            .api
            .long_lived_user_token(app_id, secret, &short.access_token)
            .await
            .map_err(|failure| failure.into_core(PLATFORM))?;
        let pages = self
            .api
            .granted_pages(&long.access_token)
            .await
            .map_err(|failure| failure.into_core(PLATFORM))?;
        let mut accounts = Vec::new();
        for page in pages {
            let (Some(id), Some(token)) = (page.id, page.access_token) else {
                continue;
            };
            let may_message = page
                .tasks
                .as_ref()
                .is_none_or(|tasks| tasks.iter().any(|t| t == "MESSAGING" || t == "MANAGE"));
            if !may_message {
                tracing::info!(page = %id, "a granted Page without the MESSAGING task is skipped");
                continue;
            }
            accounts.push(ConnectedAccount {
                name: page
                    .name
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| id.clone()),
                username: page.username,
                credentials: Credentials::from_value(&FacebookCredentials {
                    page_id: id.clone(),
                    page_access_token: token,
                })?,
                platform_account_id: id,
                credentials_expire_at: None,
            });
        }
        Ok(accounts)
    }

    async fn fetch_participant(
        &self,
        account: &AccountContext,
        participant_id: &str,
    ) -> Result<Participant> {
        let credentials = Self::credentials(account)?;
        let budget = Self::budget(account, BudgetOperation::Read, participant_id);
        let profile = self
            .api
            .profile(&credentials.page_access_token, participant_id, budget)
            .await
            .map_err(|failure| failure.into_core(PLATFORM))?;
        Ok(Participant {
            id: participant_id.to_owned(),
            name: profile
                .display_name()
                .unwrap_or_else(|| participant_id.to_owned()),
            username: None,
            picture: profile.profile_pic,
        })
    }

    async fn fetch_attachment(
        &self,
        _account: &AccountContext,
        _url: &str,
    ) -> Result<FetchedMedia> {
        // Messenger attachment URLs are signed CDN URLs that need no credentials.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "fetching attachments (their URLs are public)",
        })
    }
}
