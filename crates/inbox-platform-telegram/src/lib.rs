//! The Telegram Bot API adapter: [`Telegram`] implements [`inbox_core::Platform`] for bots.
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
    InboundEvent, InboundMode, InboundSetup, OAuthCallback, OAuthRequest, OutboundMessage,
    Participant, Platform, PlatformKind, PollBatch, RateBudget, RefreshedCredentials, Result,
    SentMessage, StartedConversation, TextLimit, TextUnit, WebhookRequest, WindowRule,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{BotApi, BotToken, Call, CallError, to_core};
pub use crate::config::{
    DEFAULT_ALLOWED_UPDATES, MAX_LONG_POLL, TelegramConfig, TelegramConfigBuilder,
};

const PLATFORM: PlatformKind = PlatformKind::Telegram;

/// Telegram's limit on message text, in UTF-16 code units
/// (<https://core.telegram.org/bots/api#sendmessage>: "1-4096 characters after entities
/// parsing"; Telegram counts like JavaScript).
pub const TEXT_LIMIT: usize = 4096;

/// Telegram's limit on captions, in UTF-16 code units
/// (<https://core.telegram.org/bots/api#sendphoto>).
pub const CAPTION_LIMIT: usize = 1024;

/// The budget of messages per chat; flood control on a send is reported against it.
pub const SEND_PER_CHAT: &str = "send_per_chat";

/// The credentials document: `{"botToken": "123456:ABC-…"}`.
#[derive(Serialize, Deserialize)]
struct TelegramCredentials {
    #[serde(rename = "botToken")]
    bot_token: String,
}

/// What `getMe` answers (<https://core.telegram.org/bots/api#getme>).
#[derive(Deserialize)]
struct Me {
    id: i64,
    first_name: String,
    #[serde(default)]
    username: Option<String>,
}

/// The Telegram adapter. Holds no per-account state: each call takes the bot token from the
/// account's credentials.
pub struct Telegram {
    config: TelegramConfig,
    api: BotApi,
    capabilities: Capabilities,
}

impl fmt::Debug for Telegram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No token is ever stored here, but say what is shown to keep it that way.
        f.debug_struct("Telegram")
            .field("api_base", &self.config.api_base())
            .field("long_poll", &self.config.long_poll())
            .field("retry_budget", &self.config.retry().budget)
            .finish_non_exhaustive()
    }
}

impl Telegram {
    /// Builds the adapter and its HTTP client.
    ///
    /// # Errors
    /// `Internal` when the HTTP client cannot be built.
    pub fn new(config: TelegramConfig) -> Result<Self> {
        Ok(Self {
            api: BotApi::new(&config)?,
            capabilities: capabilities(),
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &TelegramConfig {
        &self.config
    }

    fn token(account: &AccountContext) -> Result<BotToken> {
        let credentials: TelegramCredentials = account.credentials.parse(PLATFORM)?;
        BotToken::parse(&credentials.bot_token).ok_or_else(|| Error::ReauthRequired {
            platform: PLATFORM,
            message: "the stored bot token is malformed".to_owned(),
        })
    }
}

/// What Telegram can do, as the gateway checks it before calling.
fn capabilities() -> Capabilities {
    Capabilities {
        text_limits: vec![TextLimit {
            max: TEXT_LIMIT,
            unit: TextUnit::Utf16,
        }],
        caption_limits: Some(vec![TextLimit {
            max: CAPTION_LIMIT,
            unit: TextUnit::Utf16,
        }]),
        window: WindowRule::None,
        outbound_attachments: vec![AttachmentKind::Image, AttachmentKind::File],
        max_outbound_attachments: 1,
        inbound_modes: vec![InboundMode::WebhookPerAccount, InboundMode::Polling],
        reply_threading: true,
        mark_read: false,
        start_conversation: false,
        message_tags: false,
        templates: false,
        credential_refresh: None,
        oauth: None,
        profile_lookup: false,
        // The Bot FAQ: "avoid sending more than one message per second" in a chat, and about 30
        // messages per second overall (<https://core.telegram.org/bots/faq>). Per chat that is
        // a spacing rule (burst 1). Per bot, 10 may go at once (replies to several chats at the
        // same moment), which leaves 21/s sustained so no second ever sees more than 30.
        rate_budgets: vec![
            RateBudget::new(
                SEND_PER_CHAT,
                BudgetScope::Conversation,
                BudgetOperation::Send,
                1,
                Duration::from_secs(1),
            ),
            RateBudget::new(
                "send_per_bot",
                BudgetScope::Account,
                BudgetOperation::Send,
                30,
                Duration::from_secs(1),
            )
            .with_burst(10),
        ],
    }
}

/// `chat_id` as Telegram takes it: an integer, or an `@username` string.
fn chat_id(target: &ConversationTarget) -> Value {
    match target.platform_conversation_id.parse::<i64>() {
        Ok(id) => json!(id),
        Err(_) => json!(target.platform_conversation_id),
    }
}

/// The error for a text Telegram found too long, with the limit that applies.
fn too_long(description: &str, message: &OutboundMessage) -> Option<Error> {
    let limit = if description.contains("caption is too long") {
        CAPTION_LIMIT
    } else if description.contains("message is too long")
        || description.contains("text is too long")
    {
        TEXT_LIMIT
    } else {
        return None;
    };
    Some(Error::MessageTooLong {
        platform: PLATFORM,
        limit,
        unit: TextUnit::Utf16,
        actual: TextUnit::Utf16.measure(&message.text),
    })
}

#[async_trait]
impl Platform for Telegram {
    fn kind(&self) -> PlatformKind {
        PLATFORM
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn connect(&self, credentials: &Value) -> Result<ConnectedAccount> {
        const PARAM: &str = "credentials.botToken";
        let raw = match credentials.get("botToken") {
            Some(Value::String(token)) if !token.trim().is_empty() => token.trim(),
            Some(Value::String(_)) => return Err(Error::invalid(PARAM, "the bot token is blank")),
            Some(_) => return Err(Error::invalid(PARAM, "the bot token must be a string")),
            None => {
                return Err(Error::invalid(
                    PARAM,
                    "Telegram credentials need `botToken`, the token @BotFather gave the bot",
                ));
            }
        };
        let token = BotToken::parse(raw).ok_or_else(|| {
            Error::invalid(
                PARAM,
                "a bot token looks like `123456789:AAH…` (the bot id, a colon, then letters, digits, `_` or `-`)",
            )
        })?;
        let me: Me = match self
            .api
            .call(&token, "getMe", &json!({}), Call::IDEMPOTENT)
            .await
        {
            Ok(me) => me,
            // 401 for a revoked or unknown token; 404 for one Telegram cannot even route.
            Err(CallError::Api {
                code: 401 | 404,
                description,
            }) => {
                return Err(Error::invalid(
                    PARAM,
                    format!(
                        "Telegram rejected the bot token ({description}); copy it again from @BotFather"
                    ),
                ));
            }
            Err(error) => return Err(to_core(error)),
        };
        Ok(ConnectedAccount {
            platform_account_id: me.id.to_string(),
            name: me.first_name,
            username: me.username,
            credentials: Credentials::from_value(&TelegramCredentials {
                bot_token: token.expose().to_owned(),
            })?,
            credentials_expire_at: None,
        })
    }

    async fn start_inbound(
        &self,
        account: &AccountContext,
        setup: &InboundSetup,
    ) -> Result<InboundMode> {
        let token = Self::token(account)?;
        let Some(url) = &setup.webhook_url else {
            // getUpdates answers 409 while a webhook is set. Pending updates are kept: they
            // are real messages nobody has processed yet.
            self.api
                .call::<Value>(
                    &token,
                    "deleteWebhook",
                    &json!({"drop_pending_updates": false}),
                    Call::IDEMPOTENT,
                )
                .await
                .map_err(to_core)?;
            tracing::info!(account = %account.id, "Telegram inbound: polling with getUpdates");
            return Ok(InboundMode::Polling);
        };
        let secret = setup.secret.expose_secret();
        if !webhook::is_valid_secret(secret) {
            return Err(Error::internal_msg(
                "the inbound secret must be 1-256 characters of A-Z, a-z, 0-9, `_` and `-` to be \
                 Telegram's secret_token (https://core.telegram.org/bots/api#setwebhook)",
            ));
        }
        let params = json!({
            "url": url,
            "secret_token": secret,
            "allowed_updates": self.config.allowed_updates(),
        });
        self.api
            .call::<Value>(&token, "setWebhook", &params, Call::IDEMPOTENT)
            .await
            .map_err(to_core)?;
        tracing::info!(account = %account.id, "Telegram inbound: webhook registered");
        Ok(InboundMode::WebhookPerAccount)
    }

    async fn stop_inbound(&self, account: &AccountContext) -> Result<()> {
        let token = Self::token(account)?;
        self.api
            .call::<Value>(&token, "deleteWebhook", &json!({}), Call::IDEMPOTENT)
            .await
            .map_err(to_core)?;
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
        request: &WebhookRequest<'_>,
        account: Option<&AccountContext>,
    ) -> Result<()> {
        let Some(account) = account else {
            return Err(Error::WebhookVerification {
                message: "Telegram webhooks are per account; no account was addressed".to_owned(),
            });
        };
        webhook::verify(request.headers, account.inbound_secret.as_ref())
    }

    fn parse_inbound(&self, payload: &[u8]) -> Result<Vec<InboundEvent>> {
        normalize::parse_update(payload)
    }

    async fn poll(&self, account: &AccountContext, cursor: Option<&str>) -> Result<PollBatch> {
        let token = Self::token(account)?;
        let mut params = json!({
            "timeout": self.config.long_poll().as_secs(),
            "allowed_updates": self.config.allowed_updates(),
        });
        if let Some(cursor) = cursor {
            let offset: i64 = cursor.parse().map_err(|_| {
                Error::invalid(
                    "cursor",
                    format!("`{cursor}` is not a Telegram update offset"),
                )
            })?;
            params["offset"] = json!(offset);
        }
        // The HTTP timeout must outlast the long poll, or every quiet poll would fail.
        let call = Call {
            idempotent: true,
            timeout: Some(self.config.long_poll() + self.config.http().request_timeout),
            budget: None,
        };
        let updates: Vec<Value> = self
            .api
            .call(&token, "getUpdates", &params, call)
            .await
            .map_err(to_core)?;
        let mut last = None;
        let mut payloads = Vec::with_capacity(updates.len());
        for update in &updates {
            if let Some(id) = update.get("update_id").and_then(Value::as_i64) {
                last = Some(last.map_or(id, |last: i64| last.max(id)));
            }
            // Each update is stored as it came (unknown fields kept), so it can be parsed again.
            payloads.push(
                serde_json::to_vec(update)
                    .map_err(|err| Error::internal("an update does not serialise", err))?,
            );
        }
        // Telegram confirms (and forgets) every update below the next offset we send.
        Ok(PollBatch {
            payloads,
            next_cursor: last.map(|id| (id + 1).to_string()),
        })
    }

    async fn send(
        &self,
        account: &AccountContext,
        target: &ConversationTarget,
        message: &OutboundMessage,
    ) -> Result<SentMessage> {
        if message.template.is_some() || message.message_tag.is_some() {
            return Err(Error::UnsupportedContent {
                message: "Telegram has no message templates or message tags".to_owned(),
            });
        }
        let token = Self::token(account)?;
        let chat_id = chat_id(target);
        let (method, mut params) = match message.attachments.as_slice() {
            [] if message.text.is_empty() => {
                return Err(Error::invalid("message", "a Telegram message needs text"));
            }
            [] => (
                "sendMessage",
                json!({"chat_id": chat_id, "text": message.text}),
            ),
            [attachment] => {
                let (method, field) = match attachment.kind {
                    AttachmentKind::Image => ("sendPhoto", "photo"),
                    AttachmentKind::File => ("sendDocument", "document"),
                    other => {
                        return Err(Error::UnsupportedContent {
                            message: format!(
                                "Telegram attachments can be images or files here, not {}",
                                other.as_str()
                            ),
                        });
                    }
                };
                // Telegram fetches the URL itself (<https://core.telegram.org/bots/api#sending-files>).
                let mut params = json!({"chat_id": chat_id, field: attachment.url});
                if !message.text.is_empty() {
                    params["caption"] = json!(message.text);
                }
                (method, params)
            }
            _ => {
                return Err(Error::UnsupportedContent {
                    message: "Telegram takes one attachment per message".to_owned(),
                });
            }
        };
        if let Some(reply_to) = &message.reply_to_platform_message_id {
            let (_, message_id) =
                normalize::split_platform_message_id(reply_to).ok_or_else(|| {
                    Error::invalid(
                        "replyTo",
                        format!("`{reply_to}` is not a Telegram message id"),
                    )
                })?;
            // Send anyway when the replied-to message was deleted, rather than failing the reply.
            params["reply_parameters"] =
                json!({"message_id": message_id, "allow_sending_without_reply": true});
        }
        let budget_call = BudgetCall::new(
            PLATFORM,
            BudgetOperation::Send,
            &account.platform_account_id,
        )
        .in_conversation(&target.platform_conversation_id);
        let call = Call {
            budget: Some((budget_call, SEND_PER_CHAT)),
            ..Call::SEND
        };
        match self
            .api
            .call::<wire::Message>(&token, method, &params, call)
            .await
        {
            Ok(sent) => Ok(normalize::sent_message(&sent)),
            Err(CallError::Api {
                code: 400,
                description,
            }) => Err(too_long(&description, message).unwrap_or(Error::Platform {
                platform: PLATFORM,
                code: "400".into(),
                message: description,
            })),
            Err(error) => Err(to_core(error)),
        }
    }

    async fn start_conversation(
        &self,
        _account: &AccountContext,
        _participant: &str,
        _message: &OutboundMessage,
    ) -> Result<StartedConversation> {
        // A bot can only answer users who wrote to it first.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "starting conversations",
        })
    }

    async fn mark_read(
        &self,
        _account: &AccountContext,
        _target: &ConversationTarget,
    ) -> Result<()> {
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "marking messages read",
        })
    }

    async fn refresh_credentials(&self, _account: &AccountContext) -> Result<RefreshedCredentials> {
        // Bot tokens do not expire; they are revoked, which surfaces as ReauthRequired.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "refreshing credentials",
        })
    }

    fn oauth_authorize_url(&self, _request: &OAuthRequest) -> Result<String> {
        // Bots are connected with the token @BotFather issues, not through OAuth.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "connecting through OAuth",
        })
    }

    async fn oauth_exchange(&self, _callback: &OAuthCallback) -> Result<Vec<ConnectedAccount>> {
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "connecting through OAuth",
        })
    }

    async fn fetch_participant(
        &self,
        _account: &AccountContext,
        _participant_id: &str,
    ) -> Result<Participant> {
        // Every update carries the sender's names; the Bot API has no lookup by user id for
        // users who are not chat members.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "looking up profiles",
        })
    }

    async fn fetch_attachment(&self, account: &AccountContext, url: &str) -> Result<FetchedMedia> {
        let file_id = url
            .strip_prefix(normalize::FILE_SCHEME)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                Error::invalid(
                    "url",
                    "Telegram attachments are fetched by `tg-file:<file_id>`",
                )
            })?;
        let token = Self::token(account)?;
        let file: wire::File = self
            .api
            .call(
                &token,
                "getFile",
                &json!({"file_id": file_id}),
                Call::IDEMPOTENT,
            )
            .await
            .map_err(to_core)?;
        let Some(path) = file.file_path else {
            return Err(Error::Platform {
                platform: PLATFORM,
                code: "file_too_big".into(),
                message: "Telegram does not let bots download files over 20 MB".into(),
            });
        };
        let snapshot = self.api.download(&token, &path).await.map_err(to_core)?;
        let served = snapshot
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(';').next().unwrap_or(value).trim().to_owned())
            .filter(|value| !value.is_empty() && value != "application/octet-stream");
        Ok(FetchedMedia {
            bytes: snapshot.body.to_vec(),
            mime_type: served.or_else(|| normalize::guess_mime(&path).map(str::to_owned)),
            name: path.rsplit('/').next().map(str::to_owned),
        })
    }
}
