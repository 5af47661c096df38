//! The normalised inbox model every platform maps onto: accounts, conversations, messages,
//! participants and attachments, serialised exactly as SPEC.md's REST objects (camelCase).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{AccountId, ConversationId, MessageId, Timestamp, WorkspaceId};

/// The seven platforms the gateway speaks. Serialised lowercase (`instagram`, …, `telegram`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PlatformKind {
    /// Instagram (Instagram Login, `graph.instagram.com`).
    Instagram,
    /// Facebook Messenger (pages, `graph.facebook.com`).
    Facebook,
    /// WhatsApp Business Cloud API.
    Whatsapp,
    /// X (Twitter) direct messages.
    X,
    /// Reddit private messages.
    Reddit,
    /// Bluesky chat (`chat.bsky.*`).
    Bluesky,
    /// Telegram Bot API.
    Telegram,
}

impl PlatformKind {
    /// Every platform, in a stable order.
    pub const ALL: [PlatformKind; 7] = [
        PlatformKind::Instagram,
        PlatformKind::Facebook,
        PlatformKind::Whatsapp,
        PlatformKind::X,
        PlatformKind::Reddit,
        PlatformKind::Bluesky,
        PlatformKind::Telegram,
    ];

    /// The wire name (`whatsapp`, `x`, …), also used in paths such as `/webhooks/telegram`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformKind::Instagram => "instagram",
            PlatformKind::Facebook => "facebook",
            PlatformKind::Whatsapp => "whatsapp",
            PlatformKind::X => "x",
            PlatformKind::Reddit => "reddit",
            PlatformKind::Bluesky => "bluesky",
            PlatformKind::Telegram => "telegram",
        }
    }
}

impl fmt::Display for PlatformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown platform `{0}` (expected one of instagram, facebook, whatsapp, x, reddit, bluesky, telegram)"
)]
pub struct UnknownPlatform(pub String);

impl FromStr for PlatformKind {
    type Err = UnknownPlatform;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PlatformKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownPlatform(s.chars().take(40).collect()))
    }
}

/// Whether an account can be used. `reauth_required` means its credentials were revoked or a
/// refresh failed for good; the customer must connect it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Credentials work.
    Active,
    /// Credentials no longer work; sends answer `409 account_reauth_required`.
    ReauthRequired,
}

impl AccountStatus {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::ReauthRequired => "reauth_required",
        }
    }
}

/// A connected platform account (a Telegram bot, an Instagram professional account, …).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// The gateway's id.
    pub id: AccountId,
    /// The owning workspace; never shown through the API.
    #[serde(skip)]
    pub workspace_id: WorkspaceId,
    /// Which platform.
    pub platform: PlatformKind,
    /// The platform's id for the account (bot id, page id, phone number id, user id, DID…).
    pub platform_account_id: String,
    /// Display name.
    pub name: String,
    /// Handle, where the platform has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `active` or `reauth_required`.
    pub status: AccountStatus,
    /// When it was connected.
    pub created_at: Timestamp,
    /// Last change of name, status or credentials.
    pub updated_at: Timestamp,
}

/// A person on a platform: a conversation's participant or a message's sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// The platform's own user id (IGSID, PSID, wa_id, X user id, Reddit username, Bluesky DID,
    /// Telegram user id).
    pub id: String,
    /// Display name; the username or the id when the platform gives no name.
    pub name: String,
    /// Handle, where the platform has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Avatar URL, where the platform gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
}

/// Whether a conversation shows in the active inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    /// In the inbox.
    Active,
    /// Archived by the customer; a new incoming message does not unarchive it.
    Archived,
}

impl ConversationStatus {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Active => "active",
            ConversationStatus::Archived => "archived",
        }
    }
}

/// One thread between a connected account and one participant.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// The gateway's id.
    pub id: ConversationId,
    /// The owning workspace; never shown through the API.
    #[serde(skip)]
    pub workspace_id: WorkspaceId,
    /// The account the thread belongs to.
    pub account_id: AccountId,
    /// Which platform.
    pub platform: PlatformKind,
    /// The platform's id for the thread (Telegram chat id, X `dm_conversation_id`, …).
    pub platform_conversation_id: String,
    /// The other party.
    pub participant: Participant,
    /// A preview of the newest message's text.
    pub last_message: Option<String>,
    /// When the newest message was sent or received.
    pub last_message_at: Option<Timestamp>,
    /// When the participant last wrote; null until they do. Drives messaging windows.
    pub last_inbound_at: Option<Timestamp>,
    /// `active` or `archived`.
    pub status: ConversationStatus,
    /// Incoming messages since the conversation was last marked read.
    pub unread_count: i64,
    /// When the platform's free-form reply window closes; null where the platform has none or
    /// the participant has not written yet.
    pub window_expires_at: Option<Timestamp>,
    /// When the gateway first saw the thread.
    pub created_at: Timestamp,
}

/// Which way a message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the participant to the account.
    Incoming,
    /// From the account (through the gateway or the platform's own app) to the participant.
    Outgoing,
}

impl Direction {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Incoming => "incoming",
            Direction::Outgoing => "outgoing",
        }
    }
}

/// What an attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentKind {
    /// A picture.
    Image,
    /// A video.
    Video,
    /// Audio or a voice note.
    Audio,
    /// Any other file (documents).
    File,
    /// A sticker.
    Sticker,
    /// Something the gateway does not classify (shares, locations, …).
    Other,
}

impl AttachmentKind {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::Image => "image",
            AttachmentKind::Video => "video",
            AttachmentKind::Audio => "audio",
            AttachmentKind::File => "file",
            AttachmentKind::Sticker => "sticker",
            AttachmentKind::Other => "other",
        }
    }
}

/// A media item on a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// What it is.
    #[serde(rename = "type")]
    pub kind: AttachmentKind,
    /// Where to fetch it. For platforms whose media needs the account's credentials (Telegram
    /// `file_id`s) this is a platform reference such as `tg-file:<file_id>`.
    pub url: String,
    /// MIME type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// File name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The platform's progress on an outgoing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Accepted by the platform.
    Sent,
    /// Delivered to the participant's device.
    Delivered,
    /// Read by the participant.
    Read,
    /// The platform reported a failure after accepting it.
    Failed,
}

impl DeliveryStatus {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// One message in a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The gateway's id.
    pub id: MessageId,
    /// The owning workspace; never shown through the API.
    #[serde(skip)]
    pub workspace_id: WorkspaceId,
    /// The thread.
    pub conversation_id: ConversationId,
    /// The account.
    pub account_id: AccountId,
    /// Which platform.
    pub platform: PlatformKind,
    /// `incoming` or `outgoing`.
    pub direction: Direction,
    /// The text; empty when the message only carries attachments.
    pub text: String,
    /// Media items, possibly none.
    pub attachments: Vec<Attachment>,
    /// Who wrote it.
    pub sender: Participant,
    /// When the platform says it was sent.
    pub timestamp: Timestamp,
    /// The platform's id for the message (unique per account).
    pub platform_message_id: String,
    /// The message this one replies to, when the gateway knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    /// Outgoing only: `sent`, `delivered`, `read` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_status: Option<DeliveryStatus>,
    /// The text or attachments changed after it was sent.
    pub is_edited: bool,
    /// The sender deleted (unsent) it.
    pub is_deleted: bool,
}
