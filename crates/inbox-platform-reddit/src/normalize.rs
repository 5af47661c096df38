//! Pure functions from Reddit's private messages to the gateway's events, unit-tested on the
//! fixtures in `tests/fixtures/`.
//!
//! A poll stores one payload: the polling account's username and the new inbox items, oldest
//! first, exactly as Reddit listed them (`{"account": "…", "messages": [{"kind":"t4",
//! "data":{…}}, …]}`). A thread is one conversation: its id is the thread root's fullname
//! (`first_message_name`, or the message's own `name` on the root itself), the message id is
//! the message's fullname (`t4_…`), and the participant is the other user, by username (Reddit
//! exposes no display names on messages).

use inbox_core::{
    Direction, Error, InboundEvent, InboundKind, InboundMessage, Participant, Result, Timestamp,
};
use serde_json::Value;

use crate::wire::{Message, Thing};

/// A Reddit user as a participant: the username is their id, name and handle.
pub(crate) fn user(name: &str) -> Participant {
    Participant {
        id: name.to_owned(),
        name: name.to_owned(),
        username: Some(name.to_owned()),
        picture: None,
    }
}

/// The thread a message belongs to.
pub(crate) fn thread_of(message: &Message) -> String {
    message
        .first_message_name
        .clone()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| message.name.clone())
}

fn ignored(reason: impl Into<String>) -> InboundEvent {
    InboundEvent {
        platform_account_id: None,
        kind: InboundKind::Ignored {
            reason: reason.into(),
        },
    }
}

/// Parses a polled payload.
///
/// # Errors
/// `InvalidInput` when the payload is not JSON or lacks `account` / `messages`; items that
/// cannot be mapped become `Ignored`.
pub(crate) fn parse(payload: &[u8]) -> Result<Vec<InboundEvent>> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|err| Error::invalid("payload", format!("not JSON: {err}")))?;
    let account = value
        .get("account")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("payload", "a Reddit payload names its `account`"))?;
    let items = value
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid("payload", "a Reddit payload carries `messages`"))?;
    Ok(items.iter().map(|item| event(account, item)).collect())
}

fn event(account: &str, item: &Value) -> InboundEvent {
    let thing: Thing = match serde_json::from_value(item.clone()) {
        Ok(thing) => thing,
        Err(err) => return ignored(format!("malformed inbox item: {err}")),
    };
    if thing.kind != "t4" {
        // Comment replies and mentions (t1) share the inbox but are not messages.
        return ignored(format!("inbox item of kind {}", thing.kind));
    }
    let message: Message = match serde_json::from_value(thing.data) {
        Ok(message) => message,
        Err(err) => return ignored(format!("malformed private message: {err}")),
    };
    let Some(author) = message.author.clone().filter(|a| !a.is_empty()) else {
        return ignored(format!(
            "private message {} has no author (a subreddit or hidden sender)",
            message.name
        ));
    };
    let outgoing = author.eq_ignore_ascii_case(account);
    let other = if outgoing {
        match message.dest.clone().filter(|d| !d.is_empty()) {
            Some(dest) if !dest.starts_with('#') => dest,
            _ => {
                return ignored(format!(
                    "private message {} was sent to a subreddit",
                    message.name
                ));
            }
        }
    } else {
        author.clone()
    };
    let Some(created) = message.created_utc.filter(|c| c.is_finite()) else {
        return ignored(format!(
            "private message {} has no created_utc",
            message.name
        ));
    };
    InboundEvent {
        platform_account_id: None,
        kind: InboundKind::Message(InboundMessage {
            platform_conversation_id: thread_of(&message),
            platform_message_id: message.name.clone(),
            direction: if outgoing {
                Direction::Outgoing
            } else {
                Direction::Incoming
            },
            participant: user(&other),
            sender: user(&author),
            text: message.body.clone().unwrap_or_default(),
            attachments: Vec::new(),
            timestamp: Timestamp::from_unix_millis((created * 1000.0) as i64),
            reply_to_platform_message_id: message
                .parent_id
                .clone()
                .filter(|p| p.starts_with("t4_")),
        }),
    }
}
