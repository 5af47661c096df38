//! The WhatsApp adapter: [`WhatsApp`] implements [`inbox_core::Platform`] for business phone
//! numbers on the Cloud API.
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
    SentMessage, StartedConversation, TextLimit, TextUnit, Timestamp, WebhookRequest, WindowRule,
};
use inbox_platform_meta::{ErrorClass, GraphFailure};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{CloudApi, message_body};
pub use crate::config::{DEFAULT_GRAPH_BASE, WhatsAppConfig, WhatsAppConfigBuilder};

pub(crate) const PLATFORM: PlatformKind = PlatformKind::Whatsapp;

/// WhatsApp's text limit: a text body of at most 4096 characters.
pub const TEXT_LIMIT: usize = 4096;
/// WhatsApp's caption limit on media: 1024 characters.
pub const CAPTION_LIMIT: usize = 1024;

/// Throughput: 80 messages per second per business phone number by default
/// (<https://developers.facebook.com/documentation/business-messaging/whatsapp/throughput>).
pub const SEND_PER_NUMBER: &str = "send_per_number";
/// The pair rate: about one message every 6 s to the same user, with short bursts borrowing
/// from later (131056 beyond it; the numbers are corroborated by several sources but
/// UNCONFIRMED in Meta's own text).
pub const PAIR_RATE: &str = "pair_rate";

/// The credentials document: `{"phoneNumberId": "…", "accessToken": "EAAG…", "wabaId": "…"}`.
#[derive(Serialize, Deserialize)]
struct WhatsAppCredentials {
    #[serde(rename = "phoneNumberId")]
    phone_number_id: String,
    #[serde(rename = "accessToken")]
    access_token: String,
    #[serde(rename = "wabaId", default, skip_serializing_if = "Option::is_none")]
    waba_id: Option<String>,
}

/// The WhatsApp adapter. Holds no per-account state.
pub struct WhatsApp {
    config: WhatsAppConfig,
    api: CloudApi,
    capabilities: Capabilities,
}

impl fmt::Debug for WhatsApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsApp")
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
        caption_limits: Some(vec![TextLimit {
            max: CAPTION_LIMIT,
            unit: TextUnit::Chars,
        }]),
        // The 24 h customer-service window; only approved templates outside it.
        window: WindowRule::Window {
            standard: Duration::from_secs(24 * 3600),
            human_agent: None,
            templates_outside: true,
        },
        outbound_attachments: vec![
            AttachmentKind::Image,
            AttachmentKind::Video,
            AttachmentKind::Audio,
            AttachmentKind::File,
        ],
        max_outbound_attachments: 1,
        inbound_modes: vec![InboundMode::WebhookPerApp],
        reply_threading: true,
        mark_read: true,
        start_conversation: true,
        message_tags: false,
        templates: true,
        // System-user tokens do not expire (or are renewed by the operator); 190 → reauth.
        credential_refresh: None,
        oauth: None,
        profile_lookup: false,
        rate_budgets: vec![
            RateBudget::new(
                SEND_PER_NUMBER,
                BudgetScope::Account,
                BudgetOperation::Send,
                80,
                Duration::from_secs(1),
            )
            .with_burst(20),
            RateBudget::new(
                PAIR_RATE,
                BudgetScope::Recipient,
                BudgetOperation::Send,
                600,
                Duration::from_secs(3600),
            )
            .with_burst(10),
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

/// A participant as `POST /inbox/conversations` gives it: a phone number in any common
/// notation (`+1 (650) 555-1234`) becomes its digits; a business-scoped id stays as it is.
fn participant_id(raw: &str) -> Result<String> {
    let trimmed = raw.trim();
    let digits: String = trimmed
        .chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
        .collect();
    if digits.bytes().all(|b| b.is_ascii_digit()) && (7..=15).contains(&digits.len()) {
        return Ok(digits);
    }
    // Business-scoped user ids look like `US.13491208655302741918`.
    let scoped = trimmed.split_once('.').is_some_and(|(country, rest)| {
        country.len() == 2
            && country.bytes().all(|b| b.is_ascii_uppercase())
            && !rest.is_empty()
            && rest.len() <= 140
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
    });
    if scoped {
        return Ok(trimmed.to_owned());
    }
    Err(Error::invalid(
        "participant",
        format!(
            "`{trimmed}` is not a phone number in international format (e.g. +16505551234) or a WhatsApp business-scoped user id"
        ),
    ))
}

impl WhatsApp {
    /// Builds the adapter and its HTTP client.
    ///
    /// # Errors
    /// `Internal` when the HTTP client cannot be built.
    pub fn new(config: WhatsAppConfig) -> Result<Self> {
        Ok(WhatsApp {
            api: CloudApi::new(&config)?,
            capabilities: capabilities(),
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &WhatsAppConfig {
        &self.config
    }

    fn credentials(account: &AccountContext) -> Result<WhatsAppCredentials> {
        account.credentials.parse(PLATFORM)
    }

    /// Sends `body` and returns the new message's id and the recipient as WhatsApp resolved it.
    async fn post(
        &self,
        account: &AccountContext,
        recipient: &str,
        body: Value,
        message: &OutboundMessage,
    ) -> Result<(SentMessage, Option<String>)> {
        let credentials = Self::credentials(account)?;
        let budget = BudgetCall::new(
            PLATFORM,
            BudgetOperation::Send,
            &account.platform_account_id,
        )
        .in_conversation(recipient)
        .to_recipient(recipient);
        let answer = self
            .api
            .post_messages(
                &credentials.access_token,
                &credentials.phone_number_id,
                body,
                budget,
                "send",
            )
            .await;
        let value = match answer {
            Ok(value) => value,
            Err(GraphFailure::Api { error, .. }) if error.says_text_too_long() => {
                let (limit, actual) = if message.attachments.is_empty() {
                    (TEXT_LIMIT, TextUnit::Chars.measure(&message.text))
                } else {
                    (CAPTION_LIMIT, TextUnit::Chars.measure(&message.text))
                };
                return Err(Error::MessageTooLong {
                    platform: PLATFORM,
                    limit,
                    unit: TextUnit::Chars,
                    actual,
                });
            }
            Err(failure) => return Err(failure.into_core(PLATFORM)),
        };
        let sent: wire::Sent = serde_json::from_value(value).map_err(|err| {
            Error::internal(
                "WhatsApp's send answer is not what the Cloud API returns",
                err,
            )
        })?;
        let id = sent
            .messages
            .into_iter()
            .next()
            .map(|m| m.id)
            .ok_or_else(|| Error::internal_msg("WhatsApp's send answer has no message id"))?;
        let resolved = sent
            .contacts
            .into_iter()
            .next()
            .and_then(|c| c.wa_id.or(c.user_id));
        Ok((
            SentMessage {
                platform_message_id: id,
                timestamp: Timestamp::now(),
            },
            resolved,
        ))
    }
}

#[async_trait]
impl Platform for WhatsApp {
    fn kind(&self) -> PlatformKind {
        PLATFORM
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn connect(&self, credentials: &Value) -> Result<ConnectedAccount> {
        let field = |name: &str,
                     valid: fn(&str) -> bool,
                     what: &str,
                     required: bool|
         -> Result<Option<String>> {
            let param = format!("credentials.{name}");
            match credentials.get(name) {
                Some(Value::String(value)) if valid(value.trim()) => {
                    Ok(Some(value.trim().to_owned()))
                }
                Some(Value::String(_)) => {
                    Err(Error::invalid(param, format!("`{name}` is not {what}")))
                }
                Some(Value::Null) | None if !required => Ok(None),
                Some(_) => Err(Error::invalid(param, format!("`{name}` must be a string"))),
                None => Err(Error::invalid(
                    param,
                    format!(
                        "WhatsApp credentials need `phoneNumberId` and `accessToken`; `{name}` is missing"
                    ),
                )),
            }
        };
        let phone_number_id =
            field("phoneNumberId", is_id, "a phone number id (digits)", true)?.unwrap_or_default();
        let token = field("accessToken", is_token, "an access token", true)?.unwrap_or_default();
        let waba_id = field(
            "wabaId",
            is_id,
            "a WhatsApp Business Account id (digits)",
            false,
        )?;
        let number = match self.api.phone_number(&token, &phone_number_id).await {
            Ok(number) => number,
            Err(failure) => {
                return Err(match failure.graph_error().map(|e| (e.class(), e.code())) {
                    Some((ErrorClass::Reauth, _)) => Error::invalid(
                        "credentials.accessToken",
                        format!("WhatsApp rejected the access token: {failure}"),
                    ),
                    Some((_, 100 | 200 | 10)) => Error::invalid(
                        "credentials.phoneNumberId",
                        format!("the token cannot use this phone number id: {failure}"),
                    ),
                    _ => failure.into_core(PLATFORM),
                });
            }
        };
        if number.id.as_deref().is_some_and(|id| id != phone_number_id) {
            return Err(Error::invalid(
                "credentials.phoneNumberId",
                "WhatsApp answered for another phone number",
            ));
        }
        let name = number
            .verified_name
            .filter(|n| !n.is_empty())
            .or_else(|| number.display_phone_number.clone())
            .unwrap_or_else(|| phone_number_id.clone());
        Ok(ConnectedAccount {
            name,
            username: number.display_phone_number,
            credentials: Credentials::from_value(&WhatsAppCredentials {
                phone_number_id: phone_number_id.clone(),
                access_token: token,
                waba_id,
            })?,
            platform_account_id: phone_number_id,
            credentials_expire_at: None,
        })
    }

    async fn start_inbound(
        &self,
        account: &AccountContext,
        _setup: &InboundSetup,
    ) -> Result<InboundMode> {
        let credentials = Self::credentials(account)?;
        // The app's webhook serves every number; the WhatsApp Business Account must have the
        // app subscribed, which the gateway does when it knows the account.
        if let Some(waba) = &credentials.waba_id {
            self.api
                .subscribe_waba(&credentials.access_token, waba)
                .await
                .map_err(|failure| failure.into_core(PLATFORM))?;
        }
        Ok(InboundMode::WebhookPerApp)
    }

    async fn stop_inbound(&self, _account: &AccountContext) -> Result<()> {
        // Unsubscribing the app from the WhatsApp Business Account would cut off every other
        // number of it, so nothing is undone; deliveries for the number are refused once the
        // account is gone.
        Ok(())
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
            operation: "polling (WhatsApp pushes webhooks)",
        })
    }

    async fn send(
        &self,
        account: &AccountContext,
        target: &ConversationTarget,
        message: &OutboundMessage,
    ) -> Result<SentMessage> {
        if message.message_tag.is_some() {
            return Err(Error::UnsupportedContent {
                message: "WhatsApp has no message tags; outside the 24-hour window send a template"
                    .to_owned(),
            });
        }
        let body = message_body(&target.participant_id, message)?;
        self.post(account, &target.participant_id, body, message)
            .await
            .map(|(sent, _)| sent)
    }

    async fn start_conversation(
        &self,
        account: &AccountContext,
        participant: &str,
        message: &OutboundMessage,
    ) -> Result<StartedConversation> {
        let recipient = participant_id(participant)?;
        if message.template.is_none() {
            return Err(Error::MessagingWindowClosed {
                message: "WhatsApp's window is closed until the participant writes: start the conversation with an approved `template`".to_owned(),
            });
        }
        let body = message_body(&recipient, message)?;
        let (sent, resolved) = self.post(account, &recipient, body, message).await?;
        // WhatsApp resolves the number it was given to the user's wa_id (which may differ in
        // formatting, e.g. Brazilian ninth digits); threads are keyed by that.
        let id = resolved.filter(|id| !id.is_empty()).unwrap_or(recipient);
        Ok(StartedConversation {
            platform_conversation_id: id.clone(),
            participant: Participant {
                name: id.clone(),
                id,
                username: None,
                picture: None,
            },
            message: sent,
        })
    }

    async fn mark_read(&self, account: &AccountContext, target: &ConversationTarget) -> Result<()> {
        // WhatsApp marks read by message: the newest one marks every earlier one too.
        let Some(message_id) = &target.last_inbound_platform_message_id else {
            return Ok(());
        };
        let credentials = Self::credentials(account)?;
        let budget = BudgetCall::new(PLATFORM, BudgetOperation::Any, &account.platform_account_id)
            .in_conversation(&target.platform_conversation_id);
        let body =
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": message_id});
        self.api
            .post_messages(
                &credentials.access_token,
                &credentials.phone_number_id,
                body,
                budget,
                "mark read",
            )
            .await
            .map(|_| ())
            .map_err(|failure| failure.into_core(PLATFORM))
    }

    async fn refresh_credentials(&self, _account: &AccountContext) -> Result<RefreshedCredentials> {
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "refreshing credentials (system-user tokens are long-lived)",
        })
    }

    fn oauth_authorize_url(&self, _request: &OAuthRequest) -> Result<String> {
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "connecting through OAuth; connect the number with its phone number id and token",
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
        // Names arrive with every message (`contacts[].profile.name`); there is no lookup.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "looking up profiles",
        })
    }

    async fn fetch_attachment(&self, account: &AccountContext, url: &str) -> Result<FetchedMedia> {
        let media_id = url
            .strip_prefix(normalize::MEDIA_SCHEME)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or_else(|| {
                Error::invalid("url", "WhatsApp media is fetched by `wa-media:<media id>`")
            })?;
        let credentials = Self::credentials(account)?;
        let token = &credentials.access_token;
        // `GET /{media-id}` gives a short-lived URL (minutes), downloaded with the same token.
        let media = self
            .api
            .media(token, media_id)
            .await
            .map_err(|failure| failure.into_core(PLATFORM))?;
        if !(media.url.starts_with("https://") || media.url.starts_with("http://")) {
            return Err(Error::Platform {
                platform: PLATFORM,
                code: "media".into(),
                message: "WhatsApp gave a media URL that is not http(s)".into(),
            });
        }
        let snapshot = self
            .api
            .download(token, media.url)
            .await
            .map_err(|failure| failure.into_core(PLATFORM))?;
        let served = snapshot
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
            .filter(|v| !v.is_empty() && v != "application/octet-stream");
        Ok(FetchedMedia {
            bytes: snapshot.body.to_vec(),
            mime_type: media.mime_type.or(served),
            name: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participants_in_any_notation() {
        assert_eq!(participant_id("+1 (650) 555-1234").unwrap(), "16505551234");
        assert_eq!(participant_id("16505551234").unwrap(), "16505551234");
        assert_eq!(
            participant_id("US.13491208655302741918").unwrap(),
            "US.13491208655302741918"
        );
        for bad in ["", "abc", "12", "+1 650 CALL NOW", "us.123"] {
            assert!(participant_id(bad).is_err(), "{bad}");
        }
        assert!(client::is_wa_id("123") && !client::is_wa_id("US.1"));
    }
}
