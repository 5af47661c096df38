//! Database rows as read by sqlx, and their conversion into domain types.
//!
//! Each row struct derives `sqlx::FromRow`, which is generic over the row type, so one struct
//! decodes from SQLite and PostgreSQL alike. Column lists live in macros that expand to string
//! literals, so queries can `concat!` them into `&'static str` SQL.

use std::{fmt::Display, str::FromStr};

use inbox_core::{
    Account, Attachment, Conversation, Cursor, Error, EventType, Message, Participant, Result,
    Timestamp,
};
use serde::de::DeserializeOwned;

use crate::{
    ApiKeyRecord, Delivery, DeliveryAttempt, DeliveryState, Endpoint, RawEvent, Workspace,
};

/// The columns of [`AccountRow`].
macro_rules! account_columns {
    () => {
        "id, workspace_id, platform, platform_account_id, name, username, status, created_at, updated_at"
    };
}

/// The columns of [`ConversationRow`].
macro_rules! conversation_columns {
    () => {
        "id, workspace_id, account_id, platform, platform_conversation_id, participant, \
         last_message, last_message_at, last_inbound_at, activity_at, status, unread_count, \
         created_at"
    };
}

/// The columns of [`MessageRow`].
macro_rules! message_columns {
    () => {
        "id, workspace_id, conversation_id, account_id, platform, direction, text, attachments, \
         sender, sent_at, platform_message_id, reply_to, delivery_status, is_edited, is_deleted"
    };
}

/// The columns of [`EndpointRow`].
macro_rules! endpoint_columns {
    () => {
        "id, workspace_id, url, events, description, enabled, created_at, updated_at"
    };
}

/// The columns of [`DeliveryRow`].
macro_rules! delivery_columns {
    () => {
        "id, endpoint_id, event_id, event_type, status, attempt_count, next_attempt_at, \
         created_at, updated_at"
    };
}

/// The columns of [`RawEventRow`].
macro_rules! raw_event_columns {
    () => {
        "id, platform, account_id, payload, received_at, attempts"
    };
}

/// Parses a stored id or enum name; a failure means the row was not written by this store.
pub(crate) fn parsed<T: FromStr>(value: &str, column: &str) -> Result<T>
where
    T::Err: Display,
{
    value.parse().map_err(|err| corrupt(column, err))
}

/// Decodes a stored serde enum (`"incoming"`, `"reauth_required"`, …) or JSON document.
pub(crate) fn from_json_text<T: DeserializeOwned>(text: &str, column: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|err| corrupt(column, err))
}

/// Decodes a stored lowercase enum name through its serde form.
pub(crate) fn enum_named<T: DeserializeOwned>(name: &str, column: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|err| corrupt(column, err))
}

/// JSON text of a value this crate controls (participants, attachments, event lists).
pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|err| Error::internal("cannot serialise a stored value", err))
}

/// `DeliveryState` from its stored name (the type serialises but has no `Deserialize`).
pub(crate) fn delivery_state(name: &str) -> Result<DeliveryState> {
    [
        DeliveryState::Pending,
        DeliveryState::Succeeded,
        DeliveryState::Failed,
    ]
    .into_iter()
    .find(|state| state.as_str() == name)
    .ok_or_else(|| {
        corrupt(
            "deliveries.status",
            format!("unknown delivery state `{name}`"),
        )
    })
}

fn corrupt(column: &str, err: impl Display) -> Error {
    Error::internal_msg(format!("unreadable value in column `{column}`: {err}"))
}

fn ts(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(millis)
}

fn count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct WorkspaceRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

impl WorkspaceRow {
    pub(crate) fn into_domain(self) -> Result<Workspace> {
        Ok(Workspace {
            id: parsed(&self.id, "workspaces.id")?,
            name: self.name,
            created_at: ts(self.created_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    pub id: String,
    pub workspace_id: String,
    pub key_prefix: String,
    pub key_hash: String,
    pub created_at: i64,
}

impl ApiKeyRow {
    pub(crate) fn into_domain(self) -> Result<ApiKeyRecord> {
        Ok(ApiKeyRecord {
            id: parsed(&self.id, "api_keys.id")?,
            workspace_id: parsed(&self.workspace_id, "api_keys.workspace_id")?,
            key_prefix: self.key_prefix,
            key_hash: self.key_hash,
            created_at: ts(self.created_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AccountRow {
    pub id: String,
    pub workspace_id: String,
    pub platform: String,
    pub platform_account_id: String,
    pub name: String,
    pub username: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl AccountRow {
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            sort_key: self.created_at,
            id: self.id.clone(),
        }
    }

    pub(crate) fn into_domain(self) -> Result<Account> {
        Ok(Account {
            id: parsed(&self.id, "accounts.id")?,
            workspace_id: parsed(&self.workspace_id, "accounts.workspace_id")?,
            platform: parsed(&self.platform, "accounts.platform")?,
            platform_account_id: self.platform_account_id,
            name: self.name,
            username: self.username,
            status: enum_named(&self.status, "accounts.status")?,
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ConversationRow {
    pub id: String,
    pub workspace_id: String,
    pub account_id: String,
    pub platform: String,
    pub platform_conversation_id: String,
    pub participant: String,
    pub last_message: Option<String>,
    pub last_message_at: Option<i64>,
    pub last_inbound_at: Option<i64>,
    pub activity_at: i64,
    pub status: String,
    pub unread_count: i64,
    pub created_at: i64,
}

impl ConversationRow {
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            sort_key: self.activity_at,
            id: self.id.clone(),
        }
    }

    pub(crate) fn into_domain(self) -> Result<Conversation> {
        Ok(Conversation {
            id: parsed(&self.id, "conversations.id")?,
            workspace_id: parsed(&self.workspace_id, "conversations.workspace_id")?,
            account_id: parsed(&self.account_id, "conversations.account_id")?,
            platform: parsed(&self.platform, "conversations.platform")?,
            platform_conversation_id: self.platform_conversation_id,
            participant: from_json_text::<Participant>(
                &self.participant,
                "conversations.participant",
            )?,
            last_message: self.last_message,
            last_message_at: self.last_message_at.map(ts),
            last_inbound_at: self.last_inbound_at.map(ts),
            status: enum_named(&self.status, "conversations.status")?,
            unread_count: self.unread_count,
            window_expires_at: None,
            created_at: ts(self.created_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct MessageRow {
    pub id: String,
    pub workspace_id: String,
    pub conversation_id: String,
    pub account_id: String,
    pub platform: String,
    pub direction: String,
    pub text: String,
    pub attachments: String,
    pub sender: String,
    pub sent_at: i64,
    pub platform_message_id: String,
    pub reply_to: Option<String>,
    pub delivery_status: Option<String>,
    pub is_edited: bool,
    pub is_deleted: bool,
}

impl MessageRow {
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            sort_key: self.sent_at,
            id: self.id.clone(),
        }
    }

    pub(crate) fn into_domain(self) -> Result<Message> {
        Ok(Message {
            id: parsed(&self.id, "messages.id")?,
            workspace_id: parsed(&self.workspace_id, "messages.workspace_id")?,
            conversation_id: parsed(&self.conversation_id, "messages.conversation_id")?,
            account_id: parsed(&self.account_id, "messages.account_id")?,
            platform: parsed(&self.platform, "messages.platform")?,
            direction: enum_named(&self.direction, "messages.direction")?,
            text: self.text,
            attachments: from_json_text::<Vec<Attachment>>(
                &self.attachments,
                "messages.attachments",
            )?,
            sender: from_json_text::<Participant>(&self.sender, "messages.sender")?,
            timestamp: ts(self.sent_at),
            platform_message_id: self.platform_message_id,
            reply_to: self
                .reply_to
                .as_deref()
                .map(|id| parsed(id, "messages.reply_to"))
                .transpose()?,
            delivery_status: self
                .delivery_status
                .as_deref()
                .map(|status| enum_named(status, "messages.delivery_status"))
                .transpose()?,
            is_edited: self.is_edited,
            is_deleted: self.is_deleted,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EndpointRow {
    pub id: String,
    pub workspace_id: String,
    pub url: String,
    pub events: String,
    pub description: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl EndpointRow {
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            sort_key: self.created_at,
            id: self.id.clone(),
        }
    }

    pub(crate) fn into_domain(self) -> Result<Endpoint> {
        Ok(Endpoint {
            id: parsed(&self.id, "webhook_endpoints.id")?,
            workspace_id: parsed(&self.workspace_id, "webhook_endpoints.workspace_id")?,
            url: self.url,
            events: from_json_text::<Vec<EventType>>(&self.events, "webhook_endpoints.events")?,
            description: self.description,
            enabled: self.enabled,
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempt_count: i64,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl DeliveryRow {
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            sort_key: self.created_at,
            id: self.id.clone(),
        }
    }

    pub(crate) fn into_domain(self, attempts: Vec<DeliveryAttempt>) -> Result<Delivery> {
        let status = delivery_state(&self.status)?;
        Ok(Delivery {
            id: parsed(&self.id, "deliveries.id")?,
            endpoint_id: parsed(&self.endpoint_id, "deliveries.endpoint_id")?,
            event_id: parsed(&self.event_id, "deliveries.event_id")?,
            event_type: parsed(&self.event_type, "deliveries.event_type")?,
            status,
            attempt_count: count(self.attempt_count),
            next_attempt_at: if status == DeliveryState::Pending {
                self.next_attempt_at.map(ts)
            } else {
                None
            },
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
            attempts,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AttemptRow {
    pub delivery_id: String,
    pub attempt_number: i64,
    pub attempted_at: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub response_body: Option<String>,
}

impl AttemptRow {
    pub(crate) fn into_domain(self) -> DeliveryAttempt {
        DeliveryAttempt {
            attempt_number: count(self.attempt_number),
            attempted_at: ts(self.attempted_at),
            status_code: self.status_code.and_then(|code| u16::try_from(code).ok()),
            error: self.error,
            duration_ms: u64::try_from(self.duration_ms).unwrap_or(0),
            response_body: self.response_body,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RawEventRow {
    pub id: String,
    pub platform: String,
    pub account_id: Option<String>,
    pub payload: Vec<u8>,
    pub received_at: i64,
    pub attempts: i64,
}

impl RawEventRow {
    /// `attempts_before` is how many claims came before the current one.
    pub(crate) fn into_domain(self, attempts_before: i64) -> Result<RawEvent> {
        Ok(RawEvent {
            id: parsed(&self.id, "raw_events.id")?,
            platform: parsed(&self.platform, "raw_events.platform")?,
            account_id: self
                .account_id
                .as_deref()
                .map(|id| parsed(id, "raw_events.account_id"))
                .transpose()?,
            payload: self.payload,
            received_at: ts(self.received_at),
            attempts: count(attempts_before),
        })
    }
}

#[cfg(test)]
mod tests {
    use inbox_core::{AccountStatus, DeliveryStatus, Direction};

    use super::*;

    #[test]
    fn stored_enum_names_decode_through_serde() {
        assert_eq!(
            enum_named::<Direction>("outgoing", "c").unwrap(),
            Direction::Outgoing
        );
        assert_eq!(
            enum_named::<DeliveryStatus>("read", "c").unwrap(),
            DeliveryStatus::Read
        );
        assert_eq!(
            enum_named::<AccountStatus>("reauth_required", "c").unwrap(),
            AccountStatus::ReauthRequired
        );
        assert_eq!(delivery_state("failed").unwrap(), DeliveryState::Failed);
        assert!(delivery_state("lost").is_err());
        assert!(enum_named::<Direction>("sideways", "c").is_err());
    }
}
