//! Outbound events: the types customers subscribe to, and the one envelope
//! `{id, event, timestamp, data}` they arrive in. The payload is built once, when the event is
//! recorded, and every delivery attempt sends the same bytes.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::{
    Account, AccountId, Conversation, EventId, Message, PlatformKind, Timestamp, WorkspaceId,
};

/// Every event type, by its wire name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum EventType {
    /// A participant wrote to the account.
    #[serde(rename = "message.received")]
    MessageReceived,
    /// The account sent a message, through the gateway or the platform's own app (echo).
    #[serde(rename = "message.sent")]
    MessageSent,
    /// The platform reported that an accepted outgoing message failed.
    #[serde(rename = "message.failed")]
    MessageFailed,
    /// The platform reported an outgoing message delivered.
    #[serde(rename = "message.delivered")]
    MessageDelivered,
    /// The platform reported an outgoing message read.
    #[serde(rename = "message.read")]
    MessageRead,
    /// A message's text or attachments changed.
    #[serde(rename = "message.edited")]
    MessageEdited,
    /// A message was deleted (unsent).
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    /// A participant reacted to a message.
    #[serde(rename = "reaction.received")]
    ReactionReceived,
    /// The first message of a new thread, either direction.
    #[serde(rename = "conversation.started")]
    ConversationStarted,
    /// An account was connected.
    #[serde(rename = "account.connected")]
    AccountConnected,
    /// An account's credentials stopped working; its status is now `reauth_required`.
    #[serde(rename = "account.disconnected")]
    AccountDisconnected,
    /// Sent by `POST /webhooks/{id}/test`.
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 12] = [
        EventType::MessageReceived,
        EventType::MessageSent,
        EventType::MessageFailed,
        EventType::MessageDelivered,
        EventType::MessageRead,
        EventType::MessageEdited,
        EventType::MessageDeleted,
        EventType::ReactionReceived,
        EventType::ConversationStarted,
        EventType::AccountConnected,
        EventType::AccountDisconnected,
        EventType::WebhookTest,
    ];

    /// The wire name (`message.received`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageReceived => "message.received",
            EventType::MessageSent => "message.sent",
            EventType::MessageFailed => "message.failed",
            EventType::MessageDelivered => "message.delivered",
            EventType::MessageRead => "message.read",
            EventType::MessageEdited => "message.edited",
            EventType::MessageDeleted => "message.deleted",
            EventType::ReactionReceived => "reaction.received",
            EventType::ConversationStarted => "conversation.started",
            EventType::AccountConnected => "account.connected",
            EventType::AccountDisconnected => "account.disconnected",
            EventType::WebhookTest => "webhook.test",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.chars().take(60).collect()))
    }
}

/// One recorded event. `to_json()` is exactly what every delivery sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event id, also the Standard Webhooks `webhook-id`.
    pub id: EventId,
    /// The workspace whose endpoints receive it.
    pub workspace_id: WorkspaceId,
    /// The account it concerns, if any (`webhook.test` has none).
    pub account_id: Option<AccountId>,
    /// Its type.
    pub event_type: EventType,
    /// When it was recorded; fixed across retries.
    pub timestamp: Timestamp,
    /// The `data` object.
    pub data: Value,
}

impl Event {
    /// A new event recorded now.
    pub fn new(
        workspace_id: WorkspaceId,
        account_id: Option<AccountId>,
        event_type: EventType,
        data: Value,
    ) -> Self {
        Event {
            id: EventId::new(),
            workspace_id,
            account_id,
            event_type,
            timestamp: Timestamp::now(),
            data,
        }
    }

    /// The envelope `{id, event, timestamp, data}`.
    pub fn envelope(&self) -> Value {
        json!({
            "id": self.id,
            "event": self.event_type,
            "timestamp": self.timestamp,
            "data": self.data,
        })
    }

    /// The envelope as the bytes every delivery sends.
    pub fn to_json(&self) -> String {
        self.envelope().to_string()
    }

    /// A message event (`message.received`, `message.sent`, `message.edited`, …) for `message`.
    pub fn for_message(event_type: EventType, message: &Message) -> Self {
        Event::new(
            message.workspace_id.clone(),
            Some(message.account_id.clone()),
            event_type,
            message_data(message),
        )
    }

    /// `conversation.started` for a thread's first message.
    pub fn conversation_started(conversation: &Conversation, first: &Message) -> Self {
        Event::new(
            conversation.workspace_id.clone(),
            Some(conversation.account_id.clone()),
            EventType::ConversationStarted,
            json!({
                "conversationId": conversation.id,
                "accountId": conversation.account_id,
                "platform": conversation.platform,
                "platformConversationId": conversation.platform_conversation_id,
                "participant": conversation.participant,
                "messageId": first.id,
                "direction": first.direction,
                "timestamp": first.timestamp,
            }),
        )
    }

    /// `account.connected` or `account.disconnected` (with the platform's `reason`).
    pub fn for_account(event_type: EventType, account: &Account, reason: Option<&str>) -> Self {
        let mut data = json!({
            "accountId": account.id,
            "platform": account.platform,
            "platformAccountId": account.platform_account_id,
            "name": account.name,
            "status": account.status,
        });
        if let Some(username) = &account.username {
            data["username"] = json!(username);
        }
        if let Some(reason) = reason {
            data["reason"] = json!(reason);
        }
        Event::new(
            account.workspace_id.clone(),
            Some(account.id.clone()),
            event_type,
            data,
        )
    }

    /// `reaction.received`: `emoji` on `message` by `sender_id` (`emoji` `None` means removed).
    pub fn reaction(message: &Message, sender_id: &str, emoji: Option<&str>) -> Self {
        Event::new(
            message.workspace_id.clone(),
            Some(message.account_id.clone()),
            EventType::ReactionReceived,
            json!({
                "messageId": message.id,
                "conversationId": message.conversation_id,
                "accountId": message.account_id,
                "platform": message.platform,
                "platformMessageId": message.platform_message_id,
                "sender": {"id": sender_id},
                "reaction": emoji,
            }),
        )
    }

    /// `message.failed` for an outgoing message the platform reported failed.
    pub fn message_failed(message: &Message, code: &str, reason: &str) -> Self {
        let mut event = Event::for_message(EventType::MessageFailed, message);
        event.data["error"] = json!({"code": code, "message": reason});
        event
    }

    /// `webhook.test`.
    pub fn webhook_test(workspace_id: WorkspaceId, endpoint_id: &str) -> Self {
        Event::new(
            workspace_id,
            None,
            EventType::WebhookTest,
            json!({
                "accountId": null,
                "platform": null,
                "webhookId": endpoint_id,
                "message": "This is a test event from the inbox gateway.",
            }),
        )
    }
}

/// The `data` of a message event: exactly SPEC.md's `message.received` fields, plus
/// `deliveryStatus`, `isEdited` and `isDeleted` where they apply.
pub fn message_data(message: &Message) -> Value {
    let mut data = json!({
        "messageId": message.id,
        "conversationId": message.conversation_id,
        "accountId": message.account_id,
        "platform": message.platform,
        "direction": message.direction,
        "text": message.text,
        "attachments": message.attachments,
        "sender": message.sender,
        "timestamp": message.timestamp,
        "platformMessageId": message.platform_message_id,
    });
    if let Some(status) = message.delivery_status {
        data["deliveryStatus"] = json!(status);
    }
    if message.is_edited {
        data["isEdited"] = json!(true);
    }
    if message.is_deleted {
        data["isDeleted"] = json!(true);
    }
    data
}

/// The platform of an event's data, for filtering; `None` for `webhook.test`.
pub fn event_platform(event: &Event) -> Option<PlatformKind> {
    event
        .data
        .get("platform")
        .and_then(|p| serde_json::from_value(p.clone()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConversationId, Direction, MessageId, Participant};

    fn message() -> Message {
        Message {
            id: MessageId::new(),
            workspace_id: WorkspaceId::new(),
            conversation_id: ConversationId::new(),
            account_id: AccountId::new(),
            platform: PlatformKind::Telegram,
            direction: Direction::Incoming,
            text: "Hi, I have a question".into(),
            attachments: vec![],
            sender: Participant {
                id: "111".into(),
                name: "John".into(),
                username: None,
                picture: None,
            },
            timestamp: Timestamp::from_unix_seconds(1_736_937_000),
            platform_message_id: "111:42".into(),
            reply_to: None,
            delivery_status: None,
            is_edited: false,
            is_deleted: false,
        }
    }

    #[test]
    fn message_received_has_exactly_the_documented_fields() {
        let event = Event::for_message(EventType::MessageReceived, &message());
        let envelope = event.envelope();
        let mut top: Vec<_> = envelope.as_object().unwrap().keys().cloned().collect();
        top.sort();
        assert_eq!(top, ["data", "event", "id", "timestamp"]);
        assert_eq!(envelope["event"], "message.received");
        let mut fields: Vec<_> = envelope["data"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "accountId",
                "attachments",
                "conversationId",
                "direction",
                "messageId",
                "platform",
                "platformMessageId",
                "sender",
                "text",
                "timestamp"
            ]
        );
        assert_eq!(
            envelope["data"]["sender"],
            json!({"id": "111", "name": "John"})
        );
        assert_eq!(envelope["data"]["timestamp"], "2025-01-15T10:30:00Z");
    }

    #[test]
    fn event_types_round_trip_by_name() {
        for kind in EventType::ALL {
            assert_eq!(kind.as_str().parse::<EventType>().unwrap(), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert!("message.exploded".parse::<EventType>().is_err());
    }
}
