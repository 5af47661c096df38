//! What the gateway hands adapters on the way out: credentials, the thread to write to, the
//! message to send, and what the platform answered.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use utoipa::ToSchema;

use crate::{AccountId, AttachmentKind, Error, Participant, PlatformKind, Result, Timestamp};

/// An account's credentials: a JSON document only its adapter understands. Kept in a
/// `SecretString` so it never reaches a log by accident; encrypted at rest by the store.
#[derive(Clone)]
pub struct Credentials(SecretString);

impl Credentials {
    /// Wraps a serialisable credential struct.
    pub fn from_value<T: Serialize>(value: &T) -> Result<Self> {
        serde_json::to_string(value)
            .map(|json| Credentials(SecretString::from(json)))
            .map_err(|err| Error::internal("credentials do not serialise", err))
    }

    /// Wraps stored JSON text (as decrypted by the store).
    pub fn from_json_text(json: String) -> Self {
        Credentials(SecretString::from(json))
    }

    /// Decodes into the adapter's credential struct.
    pub fn parse<T: DeserializeOwned>(&self, platform: PlatformKind) -> Result<T> {
        serde_json::from_str(self.0.expose_secret()).map_err(|err| Error::ReauthRequired {
            platform,
            message: format!("stored credentials are unreadable: {err}"),
        })
    }

    /// The JSON text, for the store to encrypt. Never log it.
    pub fn expose_json(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials([REDACTED])")
    }
}

/// Everything an adapter needs to act for one connected account.
#[derive(Debug, Clone)]
pub struct AccountContext {
    /// The gateway's account id.
    pub id: AccountId,
    /// The platform's id for the account.
    pub platform_account_id: String,
    /// The decrypted credentials.
    pub credentials: Credentials,
    /// The per-account secret inbound requests must carry (Telegram `secret_token`).
    pub inbound_secret: Option<SecretString>,
}

/// What `connect` learned about valid credentials.
#[derive(Debug, Clone)]
pub struct ConnectedAccount {
    /// The platform's id for the account (bot id, page id, …).
    pub platform_account_id: String,
    /// Display name.
    pub name: String,
    /// Handle, where there is one.
    pub username: Option<String>,
    /// The credentials to store (possibly exchanged, e.g. a long-lived token).
    pub credentials: Credentials,
    /// When they expire, if they do; drives the refresh scheduler.
    pub credentials_expire_at: Option<Timestamp>,
}

/// Renewed credentials, which the gateway persists before using them (X and Bluesky refresh
/// tokens are single-use).
#[derive(Debug, Clone)]
pub struct RefreshedCredentials {
    /// The new credentials document.
    pub credentials: Credentials,
    /// When they expire, if they do.
    pub expires_at: Option<Timestamp>,
}

/// The start of an OAuth connect flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthRequest {
    /// The opaque `state` the platform echoes to the callback (single use, checked there).
    pub state: String,
    /// The gateway's callback, `{INBOX_PUBLIC_URL}/api/v1/oauth/{platform}/callback`; it must
    /// be registered with the platform app.
    pub redirect_uri: String,
    /// PKCE S256 challenge, for flows with `OAuthFlow::pkce`.
    pub code_challenge: Option<String>,
}

/// The platform's redirect back to the gateway, with what the exchange needs.
#[derive(Clone)]
pub struct OAuthCallback {
    /// The authorization code.
    pub code: String,
    /// The same `redirect_uri` as in the request (platforms compare them).
    pub redirect_uri: String,
    /// The PKCE verifier, for flows with `OAuthFlow::pkce`.
    pub code_verifier: Option<String>,
}

impl fmt::Debug for OAuthCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthCallback")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// How the gateway wants inbound events for an account.
#[derive(Debug, Clone)]
pub struct InboundSetup {
    /// The URL the platform should push to, when the gateway is reachable
    /// (`INBOX_PUBLIC_URL/webhooks/{platform}/{accountId}`); `None` means poll.
    pub webhook_url: Option<String>,
    /// The secret the platform should send back with every push.
    pub secret: SecretString,
}

/// The thread a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationTarget {
    /// The platform's id for the thread.
    pub platform_conversation_id: String,
    /// The participant's platform id.
    pub participant_id: String,
    /// The platform id of the participant's newest message in the thread, where the gateway
    /// knows it (among the thread's latest 50): WhatsApp marks a thread read by its last
    /// inbound message, Reddit replies to it (`/api/comment` on a message keeps the thread).
    pub last_inbound_platform_message_id: Option<String>,
}

/// An attachment to send, by URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboundAttachment {
    /// What it is.
    #[serde(rename = "type")]
    pub kind: AttachmentKind,
    /// A public URL the platform can fetch.
    pub url: String,
    /// File name to show, where the platform shows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A WhatsApp message template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// The approved template's name.
    pub name: String,
    /// Its language code, e.g. `en_US`.
    pub language: String,
    /// Parameters, in WhatsApp's `components` form.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub components: Vec<serde_json::Value>,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// The text (caption when there is an attachment); may be empty with an attachment.
    pub text: String,
    /// Attachments, at most `capabilities().max_outbound_attachments`.
    pub attachments: Vec<OutboundAttachment>,
    /// The platform id of the message this one replies to.
    pub reply_to_platform_message_id: Option<String>,
    /// Messenger/Instagram message tag (`HUMAN_AGENT`).
    pub message_tag: Option<String>,
    /// WhatsApp template.
    pub template: Option<Template>,
}

/// What the platform answered to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The platform's id for the new message.
    pub platform_message_id: String,
    /// When the platform says it was sent.
    pub timestamp: Timestamp,
}

/// What the platform answered to starting a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedConversation {
    /// The platform's id for the new (or existing) thread.
    pub platform_conversation_id: String,
    /// The other party, as the platform knows them.
    pub participant: Participant,
    /// The first message.
    pub message: SentMessage,
}

/// Media fetched from a platform on behalf of the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMedia {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// MIME type, when known.
    pub mime_type: Option<String>,
    /// File name, when known.
    pub name: Option<String>,
}
