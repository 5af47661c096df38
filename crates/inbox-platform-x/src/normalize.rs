//! Pure functions from X's payloads to the gateway's events, unit-tested on the JSON fixtures in
//! `tests/fixtures/`. Three payload shapes reach [`parse`]:
//!
//! * an Account Activity API delivery: `for_user_id`, `direct_message_events[]` and a `users`
//!   map of legacy users (<https://docs.x.com/x-api/account-activity/introduction>);
//! * an X Activity API delivery: `data.event_type` `dm.received` / `dm.sent`, with the same
//!   events in `data.payload` and `users[id].data` v2 users
//!   (<https://docs.x.com/x-api/activity/event-payloads>);
//! * a polled page, as [`poll`](crate::X) stores it: `GET /2/dm_events`' own `data[]` (oldest
//!   first) and `includes`, plus the polling account's `for_user_id`, so that the payload names
//!   who "we" are and parses on its own.
//!
//! One thread is one conversation in every shape: X's one-to-one `dm_conversation_id` is
//! `"{smaller id}-{larger id}"` (numerically), and webhook events, which carry only sender and
//! recipient, get the same id built the same way. Events the account sent itself (from X's app
//! or through the gateway) are echoes: outgoing messages, matched to the gateway's own sends by
//! their event id.

use std::collections::HashMap;

use inbox_core::{
    Attachment, AttachmentKind, Direction, Error, InboundEvent, InboundKind, InboundMessage,
    Participant, Result, Timestamp,
};
use serde_json::Value;

use crate::wire::{
    AccountActivity, ActivityEnvelope, DmEvent, Includes, LegacyEvent, LegacyUser, Media, User,
};

/// Attachment URLs of DM media, which X serves only to the conversation's participants:
/// `x-dm-media:{dm_event_id}/{media_id}/{resource_id}`, fetched through
/// `GET /2/dm_conversations/media/{dm_id}/{media_id}/{resource_id}`.
pub(crate) const MEDIA_SCHEME: &str = "x-dm-media:";

/// The one-to-one conversation id X uses: both user ids, the smaller (as a number) first.
pub(crate) fn one_to_one_id(a: &str, b: &str) -> String {
    let key = |id: &str| (id.len(), id.to_owned());
    let (first, second) = if key(a) <= key(b) { (a, b) } else { (b, a) };
    format!("{first}-{second}")
}

/// The other member of a one-to-one conversation id `"{a}-{b}"`, seen from `me`.
pub(crate) fn other_member(conversation_id: &str, me: &str) -> Option<String> {
    let (a, b) = conversation_id.split_once('-')?;
    let numeric = |id: &str| !id.is_empty() && id.bytes().all(|c| c.is_ascii_digit());
    if !numeric(a) || !numeric(b) {
        return None;
    }
    match (a == me, b == me) {
        (true, false) => Some(b.to_owned()),
        (false, true) => Some(a.to_owned()),
        _ => None,
    }
}

/// Parses any of the three payload shapes.
///
/// # Errors
/// `InvalidInput` when the payload is not JSON or matches none of the shapes; events inside a
/// recognised payload that cannot be mapped become `Ignored`.
pub(crate) fn parse(payload: &[u8]) -> Result<Vec<InboundEvent>> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|err| Error::invalid("payload", format!("not JSON: {err}")))?;
    if value.get("for_user_id").is_some() && value.get("data").is_some_and(Value::is_array) {
        return parse_polled(value);
    }
    if value.get("for_user_id").is_some() {
        return parse_account_activity(value);
    }
    if value.pointer("/data/event_type").is_some() {
        return parse_activity(value);
    }
    Err(Error::invalid(
        "payload",
        "not an X DM payload (no `for_user_id`, no `data.event_type`)",
    ))
}

fn ignored(account: Option<&str>, reason: impl Into<String>) -> InboundEvent {
    InboundEvent {
        platform_account_id: account.map(str::to_owned),
        kind: InboundKind::Ignored {
            reason: reason.into(),
        },
    }
}

/// A participant from what X said about them, falling back to the id for the name.
fn participant(id: &str, user: Option<&User>) -> Participant {
    let username = user.and_then(|u| u.username.clone());
    let name = user
        .and_then(|u| u.name.clone())
        .filter(|n| !n.trim().is_empty())
        .or_else(|| username.clone())
        .unwrap_or_else(|| id.to_owned());
    Participant {
        id: id.to_owned(),
        name,
        username,
        picture: user.and_then(|u| u.profile_image_url.clone()),
    }
}

// ----- polled pages --------------------------------------------------------------------------

fn parse_polled(value: Value) -> Result<Vec<InboundEvent>> {
    let me = value["for_user_id"]
        .as_str()
        .ok_or_else(|| Error::invalid("payload", "`for_user_id` is not a string"))?
        .to_owned();
    let includes: Includes = value
        .get("includes")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|err| Error::invalid("payload", format!("`includes`: {err}")))?
        .unwrap_or_default();
    let users: HashMap<String, User> = includes
        .users
        .iter()
        .filter_map(|u| serde_json::from_value::<User>(u.clone()).ok())
        .map(|u| (u.id.clone(), u))
        .collect();
    let media: HashMap<String, Media> = includes
        .media
        .iter()
        .filter_map(|m| serde_json::from_value::<Media>(m.clone()).ok())
        .map(|m| (m.media_key.clone(), m))
        .collect();
    let events = value["data"].as_array().cloned().unwrap_or_default();
    Ok(events
        .into_iter()
        .map(|raw| polled_event(&me, raw, &users, &media))
        .collect())
}

fn polled_event(
    me: &str,
    raw: Value,
    users: &HashMap<String, User>,
    media: &HashMap<String, Media>,
) -> InboundEvent {
    let account = Some(me);
    let event: DmEvent = match serde_json::from_value(raw) {
        Ok(event) => event,
        Err(err) => return ignored(account, format!("malformed DM event: {err}")),
    };
    if event
        .event_type
        .as_deref()
        .is_some_and(|t| t != "MessageCreate")
    {
        return ignored(
            account,
            format!("DM event type {}", event.event_type.unwrap_or_default()),
        );
    }
    let (Some(sender), Some(conversation)) = (&event.sender_id, &event.dm_conversation_id) else {
        return ignored(
            account,
            format!(
                "DM event {} lacks sender_id or dm_conversation_id",
                event.id
            ),
        );
    };
    let Some(other) = other_member(conversation, me) else {
        return ignored(
            account,
            format!("DM event {} is in a group conversation", event.id),
        );
    };
    let timestamp = match event.created_at.as_deref().map(Timestamp::parse_rfc3339) {
        Some(Ok(at)) => at,
        _ => {
            return ignored(
                account,
                format!("DM event {} has no valid created_at", event.id),
            );
        }
    };
    let direction = if sender == me {
        Direction::Outgoing
    } else {
        Direction::Incoming
    };
    let attachments = event
        .attachments
        .iter()
        .flat_map(|a| a.media_keys.iter())
        .filter_map(|key| media.get(key).map(|m| (key, m)))
        .map(|(key, m)| polled_attachment(&event.id, key, m))
        .collect();
    InboundEvent {
        platform_account_id: account.map(str::to_owned),
        kind: InboundKind::Message(InboundMessage {
            platform_conversation_id: conversation.clone(),
            platform_message_id: event.id.clone(),
            direction,
            participant: participant(&other, users.get(&other)),
            sender: participant(sender, users.get(sender)),
            text: event.text.unwrap_or_default(),
            attachments,
            timestamp,
            reply_to_platform_message_id: None,
        }),
    }
}

fn media_kind(kind: Option<&str>) -> AttachmentKind {
    match kind {
        Some("photo") => AttachmentKind::Image,
        Some("video") => AttachmentKind::Video,
        // Animated GIFs are delivered as MP4 videos.
        Some("animated_gif") => AttachmentKind::Video,
        _ => AttachmentKind::Other,
    }
}

/// The protected media URL (`https://ton.x.com/…/dm/{dm_id}/{media_id}/{resource}`) as a
/// reference `fetch_attachment` downloads through the API.
fn media_reference(dm_id: &str, media_id: &str, url: Option<&str>) -> Option<String> {
    let resource = url?
        .split(['?', '#'])
        .next()?
        .rsplit('/')
        .next()
        .filter(|r| !r.is_empty())?;
    Some(format!("{MEDIA_SCHEME}{dm_id}/{media_id}/{resource}"))
}

fn polled_attachment(dm_id: &str, media_key: &str, media: &Media) -> Attachment {
    // Media keys are `{type}_{media id}` (`3_1583157113245011970`).
    let media_id = media_key.rsplit('_').next().unwrap_or(media_key);
    let video_url = media
        .variants
        .iter()
        .find_map(|v| v.get("url").and_then(Value::as_str));
    let url = media
        .url
        .as_deref()
        .or(video_url)
        .and_then(|url| media_reference(dm_id, media_id, Some(url)))
        .or_else(|| media.preview_image_url.clone())
        .unwrap_or_else(|| format!("{MEDIA_SCHEME}{dm_id}/{media_id}/"));
    Attachment {
        kind: media_kind(media.kind.as_deref()),
        url,
        mime_type: None,
        name: None,
    }
}

// ----- webhooks ------------------------------------------------------------------------------

/// A legacy DM event as a message of `me`'s inbox; `name_of` finds users by id.
fn legacy_event(
    me: &str,
    raw: Value,
    name_of: &dyn Fn(&str) -> Option<User>,
) -> Result<InboundMessage, String> {
    let event: LegacyEvent =
        serde_json::from_value(raw).map_err(|err| format!("malformed DM event: {err}"))?;
    if event.kind.as_deref().is_some_and(|k| k != "message_create") {
        return Err(format!("DM event type {}", event.kind.unwrap_or_default()));
    }
    let create = event
        .message_create
        .ok_or_else(|| format!("DM event {} has no message_create", event.id))?;
    let recipient = create
        .target
        .map(|t| t.recipient_id)
        .ok_or_else(|| format!("DM event {} has no recipient", event.id))?;
    let sender = create.sender_id;
    let (direction, other) = if sender == me {
        (Direction::Outgoing, recipient.clone())
    } else if recipient == me {
        (Direction::Incoming, sender.clone())
    } else {
        return Err(format!("DM event {} does not involve {me}", event.id));
    };
    // `created_timestamp` is epoch milliseconds as a string (sometimes a number).
    let millis = match &event.created_timestamp {
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    }
    .ok_or_else(|| format!("DM event {} has no valid created_timestamp", event.id))?;
    let data = create.message_data.unwrap_or_default();
    let attachments = data
        .attachment
        .and_then(|a| a.media)
        .map(|media| {
            let media_id = media.id_str.clone().unwrap_or_default();
            let video = media
                .video_info
                .as_ref()
                .and_then(|v| v.pointer("/variants/0/url"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let url = media
                .media_url_https
                .as_deref()
                .and_then(|url| media_reference(&event.id, &media_id, Some(url)))
                .or(video)
                .unwrap_or_else(|| format!("{MEDIA_SCHEME}{}/{media_id}/", event.id));
            Attachment {
                kind: media_kind(media.kind.as_deref()),
                url,
                mime_type: None,
                name: None,
            }
        })
        .into_iter()
        .collect();
    Ok(InboundMessage {
        platform_conversation_id: one_to_one_id(&sender, &recipient),
        platform_message_id: event.id,
        direction,
        participant: participant(&other, name_of(&other).as_ref()),
        sender: participant(&sender, name_of(&sender).as_ref()),
        text: data.text.unwrap_or_default(),
        attachments,
        timestamp: Timestamp::from_unix_millis(millis),
        reply_to_platform_message_id: None,
    })
}

fn parse_account_activity(value: Value) -> Result<Vec<InboundEvent>> {
    let activity: AccountActivity = serde_json::from_value(value)
        .map_err(|err| Error::invalid("payload", format!("Account Activity payload: {err}")))?;
    let me = activity.for_user_id.clone();
    let Some(events) = activity.direct_message_events else {
        // Typing and read indicators, tweets, follows, revocations: nothing for the inbox.
        return Ok(vec![ignored(
            Some(&me),
            "an Account Activity event without direct messages",
        )]);
    };
    let users = activity.users;
    let name_of = |id: &str| {
        users.get(id).map(|u: &LegacyUser| User {
            id: id.to_owned(),
            name: u.name.clone(),
            username: u.screen_name.clone(),
            profile_image_url: u.profile_image_url_https.clone(),
        })
    };
    Ok(events
        .into_iter()
        .map(|raw| match legacy_event(&me, raw, &name_of) {
            Ok(message) => InboundEvent {
                platform_account_id: Some(me.clone()),
                kind: InboundKind::Message(message),
            },
            Err(reason) => ignored(Some(&me), reason),
        })
        .collect())
}

fn parse_activity(value: Value) -> Result<Vec<InboundEvent>> {
    let envelope: ActivityEnvelope = serde_json::from_value(value)
        .map_err(|err| Error::invalid("payload", format!("X Activity payload: {err}")))?;
    let activity = envelope.data;
    let me = activity.filter.and_then(|f| f.user_id);
    if !matches!(activity.event_type.as_str(), "dm.received" | "dm.sent") {
        return Ok(vec![ignored(
            me.as_deref(),
            format!("X Activity event {}", activity.event_type),
        )]);
    }
    let Some(me) = me else {
        return Ok(vec![ignored(
            None,
            "an X Activity DM event without filter.user_id",
        )]);
    };
    let payload = activity
        .payload
        .ok_or_else(|| Error::invalid("payload", "an X Activity DM event without `payload`"))?;
    let users = payload.users;
    let name_of = |id: &str| users.get(id).map(|u| u.data.clone());
    Ok(payload
        .direct_message_events
        .into_iter()
        .map(|raw| match legacy_event(&me, raw, &name_of) {
            Ok(message) => InboundEvent {
                platform_account_id: Some(me.clone()),
                kind: InboundKind::Message(message),
            },
            Err(reason) => ignored(Some(&me), reason),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_to_one_ids_sort_numerically() {
        assert_eq!(
            one_to_one_id("944480690", "1234567890"),
            "944480690-1234567890"
        );
        assert_eq!(
            one_to_one_id("1234567890", "944480690"),
            "944480690-1234567890"
        );
        assert_eq!(
            other_member("944480690-1234567890", "944480690").unwrap(),
            "1234567890"
        );
        assert_eq!(other_member("1-2-3", "1"), None);
        assert_eq!(other_member("group1234", "1"), None);
    }

    #[test]
    fn media_references_keep_the_resource() {
        assert_eq!(
            media_reference(
                "99",
                "88",
                Some("https://ton.x.com/1.1/ton/data/dm/99/88/hVJQTwig.jpg?x=1")
            )
            .unwrap(),
            "x-dm-media:99/88/hVJQTwig.jpg"
        );
    }
}
