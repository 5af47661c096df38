//! What adapters hand the gateway on the way in: the verified request as received, the raw
//! payloads a poll returned, and the normalised events parsed from either.

use http::{HeaderMap, Method};

use crate::{Attachment, DeliveryStatus, Direction, Participant, Timestamp};

/// An inbound platform HTTP request, exactly as received (for signature checks over raw bytes).
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// `GET` for handshakes, `POST` for events.
    pub method: &'a Method,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// The raw body bytes.
    pub body: &'a [u8],
}

/// The answer to a platform's subscription handshake (Meta `hub.challenge`, X CRC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// The `Content-Type` of `body`.
    pub content_type: &'static str,
    /// The response body.
    pub body: String,
}

/// Raw payloads returned by one poll, with the cursor that follows them.
///
/// The gateway stores the payloads and the new cursor in one transaction, then parses each
/// payload with [`Platform::parse_inbound`](crate::Platform::parse_inbound), so a crash between
/// the two neither loses nor repeats events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollBatch {
    /// Self-contained payloads (each parseable on its own), oldest first.
    pub payloads: Vec<Vec<u8>>,
    /// Where the next poll starts; `None` keeps the current cursor.
    pub next_cursor: Option<String>,
}

/// One normalised inbound event.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundEvent {
    /// The platform account the event belongs to, for payloads that carry several accounts
    /// (Meta batches, X webhooks). `None` when the request was addressed to one account (a
    /// per-account webhook URL or a poll).
    pub platform_account_id: Option<String>,
    /// What happened.
    pub kind: InboundKind,
}

/// What an inbound event says happened.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundKind {
    /// A new message, incoming or an echo of an outgoing one.
    Message(InboundMessage),
    /// A message's new content; the whole message, so an edit of a message the gateway never
    /// saw still records it.
    Edited {
        /// The message as it is now.
        message: InboundMessage,
        /// When it was edited.
        edited_at: Timestamp,
    },
    /// A message was deleted (unsent).
    Deleted {
        /// The platform's message id.
        platform_message_id: String,
        /// When.
        at: Timestamp,
    },
    /// The platform's progress on an outgoing message.
    Status {
        /// The platform's message id.
        platform_message_id: String,
        /// The new status.
        status: DeliveryStatus,
        /// The platform's error code and message, for `failed`.
        error: Option<(String, String)>,
        /// When.
        at: Timestamp,
    },
    /// A participant read every outgoing message of a thread up to `watermark`.
    ReadUpTo {
        /// The platform's thread id.
        platform_conversation_id: String,
        /// Messages sent at or before this were read.
        watermark: Timestamp,
    },
    /// A participant reacted to a message (`emoji: None` removes the reaction).
    Reaction {
        /// The platform's id of the message reacted to.
        platform_message_id: String,
        /// Who reacted.
        sender_id: String,
        /// The reaction.
        emoji: Option<String>,
        /// When.
        at: Timestamp,
    },
    /// Something the gateway does not map (a group chat, an unknown update type). The raw
    /// payload stays stored; the reason is logged.
    Ignored {
        /// Why it was not mapped.
        reason: String,
    },
}

/// A message as a platform reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The platform's id for the thread.
    pub platform_conversation_id: String,
    /// The platform's id for the message, unique per account.
    pub platform_message_id: String,
    /// `Incoming`, or `Outgoing` for echoes of messages the account sent.
    pub direction: Direction,
    /// The other party of the thread.
    pub participant: Participant,
    /// Who wrote it (the participant, or the account itself for echoes).
    pub sender: Participant,
    /// The text or caption; empty when there is none.
    pub text: String,
    /// Media items.
    pub attachments: Vec<Attachment>,
    /// When it was sent.
    pub timestamp: Timestamp,
    /// The platform id of the message it replies to, if any.
    pub reply_to_platform_message_id: Option<String>,
}
