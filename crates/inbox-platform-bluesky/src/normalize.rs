//! Pure functions from Bluesky chat logs to the gateway's events, unit-tested on the fixtures in
//! `tests/fixtures/`.
//!
//! A poll stores one payload: the account's DID, when it polled, the new `getLog` entries in
//! order, and the members of their conversations where the logs' `relatedProfiles` did not
//! name them (`{"did", "polledAt", "logs": [...], "members": {"<convoId>": [profileViewBasic]}}`).
//! `logCreateMessage` becomes a message (outgoing when the sender's DID is the account's own:
//! `getLog` lists the account's messages too), `logDeleteMessage` a deletion; every other
//! `$type`, known or not, is ignored — the log is an open union that grows (group chats,
//! reactions, join links).

use std::collections::HashMap;

use inbox_core::{
    Direction, Error, InboundEvent, InboundKind, InboundMessage, Participant, Result, Timestamp,
};
use serde_json::Value;

use crate::wire::Profile;

const LOG_CREATE: &str = "chat.bsky.convo.defs#logCreateMessage";
const LOG_DELETE: &str = "chat.bsky.convo.defs#logDeleteMessage";

/// A profile as a participant: display name, else handle, else the DID.
pub(crate) fn participant(did: &str, profile: Option<&Profile>) -> Participant {
    let handle = profile
        .and_then(|p| p.handle.clone())
        .filter(|h| !h.is_empty());
    Participant {
        id: did.to_owned(),
        name: profile
            .and_then(|p| p.display_name.clone())
            .filter(|n| !n.trim().is_empty())
            .or_else(|| handle.clone())
            .unwrap_or_else(|| did.to_owned()),
        username: handle,
        picture: profile.and_then(|p| p.avatar.clone()),
    }
}

/// A union member's `$type`, with the lexicon's short form (`#logCreateMessage`) expanded.
fn type_of(value: &Value) -> Option<String> {
    let kind = value.get("$type")?.as_str()?;
    Some(match kind.strip_prefix('#') {
        Some(short) => format!("chat.bsky.convo.defs#{short}"),
        None => kind.to_owned(),
    })
}

/// The profiles a log entry names.
fn related(log: &Value) -> Vec<Profile> {
    log.get("relatedProfiles")
        .and_then(Value::as_array)
        .map(|profiles| {
            profiles
                .iter()
                .filter_map(|p| serde_json::from_value(p.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
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
/// `InvalidInput` when the payload is not JSON or lacks `did` / `logs`; entries that cannot be
/// mapped become `Ignored`.
pub(crate) fn parse(payload: &[u8]) -> Result<Vec<InboundEvent>> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|err| Error::invalid("payload", format!("not JSON: {err}")))?;
    let me = value
        .get("did")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("payload", "a Bluesky payload names the account's `did`"))?;
    let logs = value
        .get("logs")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid("payload", "a Bluesky payload carries `logs`"))?;
    let polled_at = value
        .get("polledAt")
        .and_then(Value::as_str)
        .and_then(|at| Timestamp::parse_rfc3339(at).ok());
    let mut members: HashMap<String, Vec<Profile>> = value
        .get("members")
        .cloned()
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default();
    // Any entry's relatedProfiles name the members of its conversation for every entry.
    for log in logs {
        if let Some(convo) = log.get("convoId").and_then(Value::as_str) {
            let known = members.entry(convo.to_owned()).or_default();
            for profile in related(log) {
                if !known.iter().any(|p| p.did == profile.did) {
                    known.push(profile);
                }
            }
        }
    }
    Ok(logs
        .iter()
        .map(|log| entry(me, log, &members, polled_at))
        .collect())
}

fn entry(
    me: &str,
    log: &Value,
    members: &HashMap<String, Vec<Profile>>,
    polled_at: Option<Timestamp>,
) -> InboundEvent {
    let Some(kind) = type_of(log) else {
        return ignored("a log entry without $type");
    };
    let message = log.get("message").cloned().unwrap_or(Value::Null);
    let message_id = message.get("id").and_then(Value::as_str);
    match kind.as_str() {
        LOG_CREATE => create(me, log, &message, members),
        LOG_DELETE => match message_id {
            Some(id) => InboundEvent {
                platform_account_id: None,
                kind: InboundKind::Deleted {
                    platform_message_id: id.to_owned(),
                    at: polled_at
                        .or_else(|| sent_at(&message))
                        .unwrap_or_else(|| Timestamp::from_unix_millis(0)),
                },
            },
            None => ignored("logDeleteMessage without a message id"),
        },
        other => ignored(format!("chat log entry {other}")),
    }
}

fn sent_at(message: &Value) -> Option<Timestamp> {
    message
        .get("sentAt")
        .and_then(Value::as_str)
        .and_then(|at| Timestamp::parse_rfc3339(at).ok())
}

fn create(
    me: &str,
    log: &Value,
    message: &Value,
    members: &HashMap<String, Vec<Profile>>,
) -> InboundEvent {
    if type_of(message).is_some_and(|t| t != "chat.bsky.convo.defs#messageView") {
        return ignored(format!(
            "logCreateMessage carrying {}",
            type_of(message).unwrap_or_default()
        ));
    }
    let (Some(convo), Some(id), Some(sender), Some(sent)) = (
        log.get("convoId").and_then(Value::as_str),
        message.get("id").and_then(Value::as_str),
        message.pointer("/sender/did").and_then(Value::as_str),
        sent_at(message),
    ) else {
        return ignored("logCreateMessage without convoId, message id, sender or sentAt");
    };
    let mut profiles = related(log);
    for profile in members.get(convo).into_iter().flatten() {
        if !profiles.iter().any(|p| p.did == profile.did) {
            profiles.push(profile.clone());
        }
    }
    let others: Vec<&Profile> = profiles.iter().filter(|p| p.did != me).collect();
    if others.len() > 1 {
        return ignored(format!("message {id} is in a group conversation"));
    }
    let outgoing = sender == me;
    let other_did = if outgoing {
        match others.first() {
            Some(profile) => profile.did.clone(),
            None => {
                return ignored(format!(
                    "the other member of conversation {convo} is unknown"
                ));
            }
        }
    } else {
        sender.to_owned()
    };
    let find = |did: &str| profiles.iter().find(|p| p.did == did);
    InboundEvent {
        platform_account_id: None,
        kind: InboundKind::Message(InboundMessage {
            platform_conversation_id: convo.to_owned(),
            platform_message_id: id.to_owned(),
            direction: if outgoing {
                Direction::Outgoing
            } else {
                Direction::Incoming
            },
            participant: participant(&other_did, find(&other_did)),
            sender: participant(sender, find(sender)),
            text: message
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            // Bluesky DMs carry text and record embeds (posts), no media.
            attachments: Vec::new(),
            timestamp: sent,
            reply_to_platform_message_id: message
                .pointer("/replyTo/messageId")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }),
    }
}

/// Whether a log entry creates a message (for the poller, which fetches members for them).
pub(crate) fn is_create(log: &Value) -> bool {
    type_of(log).as_deref() == Some(LOG_CREATE)
}

/// Whether a create entry's logs name someone other than `me` (so no member lookup is needed).
pub(crate) fn names_other_member(me: &str, log: &Value) -> bool {
    related(log).iter().any(|p| p.did != me)
}
