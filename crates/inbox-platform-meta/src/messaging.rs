//! The Messenger Platform shapes Instagram and Facebook Messenger share: webhook events in
//! `entry[].messaging[]` (and `entry[].standby[]`, which carries the same events while another
//! app owns the thread under the handover protocol), and the Send API body
//! (<https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messages>,
//! <https://developers.facebook.com/docs/messenger-platform/instagram/features/webhook>,
//! <https://developers.facebook.com/docs/messenger-platform/reference/send-api>).
//!
//! Mapping, with the reasons:
//! * Account routing is `entry.id` (the Page id or the Instagram professional account id); the
//!   thread is the participant's scoped id (PSID / IGSID), so there is one conversation per
//!   participant per account; the message id is `mid`.
//! * `is_echo` is the business's own message (sent by the gateway, from the platform's inbox
//!   app or Business Suite): direction outgoing, the participant is the recipient. The store
//!   deduplicates it against the gateway's own send by `mid`.
//! * Webhooks carry no names: participants are named by their id (`name == id`), which the
//!   gateway's processor replaces through the profile API.
//! * Reads: Messenger sends a `watermark` (every message up to it was read); Instagram the
//!   `mid` of the last message read, which becomes that message's status plus a read-up-to at
//!   the event's time.
//! * Until 2026-08-30 Messenger sends a sticker both as a `sticker` and as an `image`
//!   attachment; the image copy is dropped.
//! * Postbacks (buttons, ice breakers) with a `mid` become text messages with the button's
//!   title; referrals, opt-ins, handovers and anything unknown are `Ignored` (stored raw).

use inbox_core::{
    Attachment, AttachmentKind, DeliveryStatus, Direction, Error, InboundEvent, InboundKind,
    InboundMessage, OutboundMessage, Participant, PlatformKind, Result, SentMessage, TextLimit,
    Timestamp,
};

use crate::GraphFailure;
use serde_json::{Map, Value, json};

/// The `messageTag` that extends the window to 7 days.
pub const HUMAN_AGENT: &str = "HUMAN_AGENT";

/// A JSON id Meta sends as a string or a number, as text.
pub fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An epoch-milliseconds timestamp (number or string).
fn millis(value: Option<&Value>) -> Option<Timestamp> {
    let ms = match value? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Some(Timestamp::from_unix_millis(ms))
}

/// A participant known only by id: the processor fills in the name.
pub fn unnamed(id: &str) -> Participant {
    Participant {
        id: id.to_owned(),
        name: id.to_owned(),
        username: None,
        picture: None,
    }
}

fn ignored(account: Option<&str>, reason: impl Into<String>) -> InboundEvent {
    InboundEvent {
        platform_account_id: account.map(str::to_owned),
        kind: InboundKind::Ignored {
            reason: reason.into(),
        },
    }
}

/// Parses one webhook body of `object` (`page` for Messenger, `instagram` for Instagram) into
/// normalised events, one entry after the other, keeping their order.
///
/// # Errors
/// `InvalidInput` when the body is not a JSON object with an `entry` list; anything inside it
/// the gateway does not map becomes `Ignored`.
pub fn parse_payload(
    payload: &[u8],
    object: &str,
    platform: PlatformKind,
) -> Result<Vec<InboundEvent>> {
    let body: Map<String, Value> = serde_json::from_slice(payload).map_err(|err| {
        Error::invalid(
            "body",
            format!("the payload is not a Meta webhook object: {err}"),
        )
    })?;
    let got = body
        .get("object")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if got != object {
        return Ok(vec![ignored(
            None,
            format!(
                "webhook object `{got}` is not handled by the {platform} endpoint (expects `{object}`)"
            ),
        )]);
    }
    let Some(entries) = body.get("entry").and_then(Value::as_array) else {
        return Err(Error::invalid("body", "the webhook has no `entry` list"));
    };
    let mut events = Vec::new();
    for entry in entries {
        let account = id_text(entry.get("id"));
        let account = account.as_deref();
        let mut any = false;
        for key in ["messaging", "standby"] {
            for event in entry
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                any = true;
                events.extend(parse_event(event, account, entry.get("time")));
            }
        }
        for change in entry
            .get("changes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            any = true;
            let field = change.get("field").and_then(Value::as_str).unwrap_or("?");
            match change.get("value") {
                // The App Dashboard's "Test" button sends a messaging event inside `changes`
                // with placeholder ids (entry `0`); parsed like a real one, it is then routed
                // to no account and logged.
                Some(value) if field == "messages" && value.get("sender").is_some() => {
                    events.extend(parse_event(value, account, entry.get("time")));
                }
                _ => events.push(ignored(
                    account,
                    format!("`{field}` changes are not mapped"),
                )),
            }
        }
        if !any {
            events.push(ignored(account, "an entry without messaging events"));
        }
    }
    Ok(events)
}

/// One messaging event of entry `account`.
fn parse_event(
    event: &Value,
    account: Option<&str>,
    entry_time: Option<&Value>,
) -> Vec<InboundEvent> {
    let wrap = |kind| InboundEvent {
        platform_account_id: account.map(str::to_owned),
        kind,
    };
    let sender = id_text(event.pointer("/sender/id"));
    let recipient = id_text(event.pointer("/recipient/id"));
    let at = millis(event.get("timestamp"))
        .or_else(|| millis(entry_time))
        .unwrap_or_else(Timestamp::now);
    let Some(sender) = sender else {
        return vec![ignored(account, "a messaging event without a sender")];
    };
    // The business's own actions have the account as sender (echoes, its edits).
    let from_business = account.is_some_and(|a| a == sender);
    let participant_id = if from_business {
        recipient.clone().unwrap_or_else(|| sender.clone())
    } else {
        sender.clone()
    };
    if let Some(message) = event.get("message") {
        let Some(mid) = id_text(message.get("mid")) else {
            return vec![ignored(account, "a message without `mid`")];
        };
        if message.get("is_deleted").and_then(Value::as_bool) == Some(true) {
            return vec![wrap(InboundKind::Deleted {
                platform_message_id: mid,
                at,
            })];
        }
        if message.get("is_unsupported").and_then(Value::as_bool) == Some(true) {
            return vec![ignored(
                account,
                "a message type the platform does not expose (`is_unsupported`)",
            )];
        }
        let echo = message.get("is_echo").and_then(Value::as_bool) == Some(true);
        let participant_id = if echo {
            recipient.clone().unwrap_or(participant_id)
        } else {
            participant_id
        };
        let inbound = inbound_message(message, mid, &participant_id, &sender, echo, at);
        if inbound.text.is_empty() && inbound.attachments.is_empty() {
            return vec![ignored(
                account,
                "a message with neither text nor media the inbox maps",
            )];
        }
        return vec![wrap(InboundKind::Message(inbound))];
    }
    if let Some(edit) = event.get("message_edit") {
        let Some(mid) = id_text(edit.get("mid")) else {
            return vec![ignored(account, "an edit without `mid`")];
        };
        let text = edit
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let message = InboundMessage {
            platform_conversation_id: participant_id.clone(),
            platform_message_id: mid,
            direction: if from_business {
                Direction::Outgoing
            } else {
                Direction::Incoming
            },
            participant: unnamed(&participant_id),
            sender: unnamed(&sender),
            text,
            attachments: Vec::new(),
            timestamp: at,
            reply_to_platform_message_id: None,
        };
        return vec![wrap(InboundKind::Edited {
            message,
            edited_at: at,
        })];
    }
    if let Some(read) = event.get("read") {
        let mut events = Vec::new();
        // Instagram names the last message read; Messenger gives a watermark.
        if let Some(mid) = id_text(read.get("mid")) {
            events.push(wrap(InboundKind::Status {
                platform_message_id: mid,
                status: DeliveryStatus::Read,
                error: None,
                at,
            }));
        }
        let watermark = millis(read.get("watermark")).unwrap_or(at);
        events.push(wrap(InboundKind::ReadUpTo {
            platform_conversation_id: participant_id,
            watermark,
        }));
        return events;
    }
    if let Some(delivery) = event.get("delivery") {
        let mids: Vec<String> = delivery
            .get("mids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|mid| id_text(Some(mid)))
            .collect();
        if mids.is_empty() {
            return vec![ignored(
                account,
                "a delivery receipt without `mids` (watermark only)",
            )];
        }
        return mids
            .into_iter()
            .map(|mid| {
                wrap(InboundKind::Status {
                    platform_message_id: mid,
                    status: DeliveryStatus::Delivered,
                    error: None,
                    at,
                })
            })
            .collect();
    }
    if let Some(reaction) = event.get("reaction") {
        if from_business {
            return vec![ignored(account, "the account's own reaction")];
        }
        let Some(mid) = id_text(reaction.get("mid")) else {
            return vec![ignored(account, "a reaction without `mid`")];
        };
        let unreact = reaction.get("action").and_then(Value::as_str) == Some("unreact");
        let emoji = (!unreact)
            .then(|| {
                reaction
                    .get("emoji")
                    .and_then(Value::as_str)
                    .or_else(|| reaction.get("reaction").and_then(Value::as_str))
                    .map(str::to_owned)
            })
            .flatten();
        return vec![wrap(InboundKind::Reaction {
            platform_message_id: mid,
            sender_id: sender,
            emoji,
            at,
        })];
    }
    if let Some(postback) = event.get("postback") {
        let title = postback
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return match id_text(postback.get("mid")) {
            Some(mid) if !title.is_empty() => {
                let message = InboundMessage {
                    platform_conversation_id: participant_id.clone(),
                    platform_message_id: mid,
                    direction: Direction::Incoming,
                    participant: unnamed(&participant_id),
                    sender: unnamed(&sender),
                    text: title.to_owned(),
                    attachments: Vec::new(),
                    timestamp: at,
                    reply_to_platform_message_id: None,
                };
                vec![wrap(InboundKind::Message(message))]
            }
            _ => vec![ignored(account, "a postback without `mid` or title")],
        };
    }
    let kind = event
        .as_object()
        .and_then(|map| {
            map.keys()
                .find(|key| !matches!(key.as_str(), "sender" | "recipient" | "timestamp"))
                .cloned()
        })
        .unwrap_or_else(|| "empty".to_owned());
    vec![ignored(
        account,
        format!("`{kind}` messaging events are not mapped"),
    )]
}

fn inbound_message(
    message: &Value,
    mid: String,
    participant_id: &str,
    sender: &str,
    echo: bool,
    at: Timestamp,
) -> InboundMessage {
    let mut attachments = Vec::new();
    for attachment in message
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(mapped) = map_attachment(attachment) {
            attachments.push(mapped);
        }
    }
    // A story reply carries the story as what it replies to.
    if let Some(url) = message
        .pointer("/reply_to/story/url")
        .and_then(Value::as_str)
    {
        attachments.push(Attachment {
            kind: AttachmentKind::Other,
            url: url.to_owned(),
            mime_type: None,
            name: Some("story".to_owned()),
        });
    }
    let attachments = dedupe_stickers(attachments);
    InboundMessage {
        platform_conversation_id: participant_id.to_owned(),
        platform_message_id: mid,
        direction: if echo {
            Direction::Outgoing
        } else {
            Direction::Incoming
        },
        participant: unnamed(participant_id),
        sender: unnamed(sender),
        text: message
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        attachments,
        timestamp: at,
        reply_to_platform_message_id: id_text(message.pointer("/reply_to/mid")),
    }
}

/// One `attachments[]` item; `None` for those without a usable URL (`ephemeral` view-once
/// media, link shares without a payload).
fn map_attachment(attachment: &Value) -> Option<Attachment> {
    let kind_text = attachment
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let payload = attachment.get("payload");
    let url = payload
        .and_then(|p| p.get("url"))
        .or_else(|| attachment.get("url"))
        .and_then(Value::as_str)
        .filter(|url| !url.is_empty())?;
    let has_sticker_id = payload.and_then(|p| p.get("sticker_id")).is_some();
    let kind = match kind_text {
        "image" if has_sticker_id => AttachmentKind::Sticker,
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        "file" => AttachmentKind::File,
        "sticker" | "animated_image" => AttachmentKind::Sticker,
        _ => AttachmentKind::Other,
    };
    let name = payload
        .and_then(|p| p.get("title").or_else(|| p.get("name")))
        .or_else(|| attachment.get("title"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| (kind == AttachmentKind::Other).then(|| kind_text.to_owned()));
    Some(Attachment {
        kind,
        url: url.to_owned(),
        mime_type: None,
        name,
    })
}

/// Drops the `image` twin of a sticker and exact repeats.
fn dedupe_stickers(attachments: Vec<Attachment>) -> Vec<Attachment> {
    let sticker_urls: Vec<String> = attachments
        .iter()
        .filter(|a| a.kind == AttachmentKind::Sticker)
        .map(|a| a.url.clone())
        .collect();
    let has_sticker = !sticker_urls.is_empty();
    let mut kept: Vec<Attachment> = Vec::new();
    for attachment in attachments {
        let twin = has_sticker && attachment.kind == AttachmentKind::Image;
        if twin || kept.contains(&attachment) {
            continue;
        }
        kept.push(attachment);
    }
    kept
}

/// The Send API body for one message to `recipient`.
///
/// Text and an attachment never travel together ("each message carries either `text` or
/// `attachment`"); the gateway refuses that combination before calling. `messaging_type` is
/// `MESSAGE_TAG` with the tag when one is given, otherwise `default_type` (Messenger requires
/// `RESPONSE`; Instagram takes the body without it).
///
/// # Errors
/// `UnsupportedContent` for text with an attachment, several attachments or a template;
/// `InvalidInput` for an empty message.
pub fn send_body(
    platform: PlatformKind,
    recipient: &str,
    message: &OutboundMessage,
    default_type: Option<&str>,
) -> Result<Value> {
    if message.template.is_some() {
        return Err(Error::UnsupportedContent {
            message: format!("{platform} has no message templates; only WhatsApp does"),
        });
    }
    let content = match (message.text.is_empty(), message.attachments.as_slice()) {
        (true, []) => return Err(Error::invalid("message", "the message is empty")),
        (false, []) => json!({"text": message.text}),
        (true, [attachment]) => {
            let kind = match attachment.kind {
                AttachmentKind::Image => "image",
                AttachmentKind::Video => "video",
                AttachmentKind::Audio => "audio",
                AttachmentKind::File => "file",
                other => {
                    return Err(Error::UnsupportedContent {
                        message: format!(
                            "{platform} attachments can be images, videos, audio or files, not {}",
                            other.as_str()
                        ),
                    });
                }
            };
            // `is_reusable: false`: the URL is fetched for this message only.
            json!({"attachment": {"type": kind, "payload": {"url": attachment.url, "is_reusable": false}}})
        }
        (false, [_]) => {
            return Err(Error::UnsupportedContent {
                message: format!(
                    "{platform} sends text and an attachment as two messages; send them separately"
                ),
            });
        }
        _ => {
            return Err(Error::UnsupportedContent {
                message: format!("{platform} takes one attachment per message"),
            });
        }
    };
    let mut body = json!({"recipient": {"id": recipient}, "message": content});
    match message.message_tag.as_deref().filter(|tag| !tag.is_empty()) {
        Some(tag) => {
            body["messaging_type"] = json!("MESSAGE_TAG");
            body["tag"] = json!(tag.to_ascii_uppercase());
        }
        None => {
            if let Some(kind) = default_type {
                body["messaging_type"] = json!(kind);
            }
        }
    }
    Ok(body)
}

/// The Send API's answer (`{recipient_id, message_id}`) as the sent message, or its failure
/// mapped: a length complaint is `MessageTooLong` with the platform's `limit`, anything else as
/// every Graph call maps it. The Send API answers no time, so the message is stamped now.
///
/// # Errors
/// The mapped failure; `Internal` for an answer without `message_id`.
pub fn sent_message(
    platform: PlatformKind,
    answer: std::result::Result<Value, GraphFailure>,
    limit: TextLimit,
    text: &str,
) -> Result<SentMessage> {
    match answer {
        Ok(value) => {
            let id = id_text(value.get("message_id")).ok_or_else(|| {
                Error::internal_msg(format!("{platform}'s send answer has no message_id"))
            })?;
            Ok(SentMessage {
                platform_message_id: id,
                timestamp: Timestamp::now(),
            })
        }
        Err(GraphFailure::Api { error, .. }) if error.says_text_too_long() => {
            Err(Error::MessageTooLong {
                platform,
                limit: limit.max,
                unit: limit.unit,
                actual: limit.unit.measure(text),
            })
        }
        Err(failure) => Err(failure.into_core(platform)),
    }
}

/// The `sender_action` body that marks a thread seen.
pub fn mark_seen_body(recipient: &str) -> Value {
    json!({"recipient": {"id": recipient}, "sender_action": "mark_seen"})
}

#[cfg(test)]
mod tests {
    use inbox_core::OutboundAttachment;

    use super::*;

    fn parse(body: Value) -> Vec<InboundEvent> {
        parse_payload(body.to_string().as_bytes(), "page", PlatformKind::Facebook).unwrap()
    }

    fn messaging(event: Value) -> Value {
        json!({"object": "page", "entry": [{"id": "P1", "time": 1_518_479_195_594_i64, "messaging": [event]}]})
    }

    #[test]
    fn ids_may_be_numbers() {
        let events = parse(
            json!({"object": "page", "entry": [{"id": 104_857_600_000_001_i64, "messaging": [
            {"sender": {"id": 24_681_357_900_000_001_i64}, "recipient": {"id": "104857600000001"}, "timestamp": 1_518_479_195_308_i64,
             "message": {"mid": "m_1", "text": "hi"}}]}]}),
        );
        assert_eq!(
            events[0].platform_account_id.as_deref(),
            Some("104857600000001")
        );
        match &events[0].kind {
            InboundKind::Message(m) => assert_eq!(m.participant.id, "24681357900000001"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stickers_lose_their_image_twin() {
        let events = parse(messaging(
            json!({"sender": {"id": "U"}, "recipient": {"id": "P1"}, "timestamp": 1,
            "message": {"mid": "m", "attachments": [
                {"type": "image", "payload": {"url": "https://cdn/s.png", "sticker_id": 369_239_263_222_822_i64}},
                {"type": "sticker", "payload": {"url": "https://cdn/s.png", "sticker_id": 369_239_263_222_822_i64}}]}}),
        ));
        match &events[0].kind {
            InboundKind::Message(m) => {
                assert_eq!(m.attachments.len(), 1);
                assert_eq!(m.attachments[0].kind, AttachmentKind::Sticker);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_objects_and_events_are_ignored_not_errors() {
        let events = parse_payload(
            br#"{"object":"user","entry":[]}"#,
            "page",
            PlatformKind::Facebook,
        )
        .unwrap();
        assert!(matches!(events[0].kind, InboundKind::Ignored { .. }));
        let events = parse(messaging(
            json!({"sender": {"id": "U"}, "recipient": {"id": "P1"}, "timestamp": 1, "optin": {"ref": "x"}}),
        ));
        assert!(
            matches!(&events[0].kind, InboundKind::Ignored { reason } if reason.contains("optin"))
        );
        assert!(parse_payload(b"not json", "page", PlatformKind::Facebook).is_err());
        assert!(parse_payload(br#"{"object":"page"}"#, "page", PlatformKind::Facebook).is_err());
    }

    fn outbound(
        text: &str,
        attachment: Option<AttachmentKind>,
        tag: Option<&str>,
    ) -> OutboundMessage {
        OutboundMessage {
            text: text.to_owned(),
            attachments: attachment
                .map(|kind| OutboundAttachment {
                    kind,
                    url: "https://cdn.example.com/a.png".into(),
                    name: None,
                })
                .into_iter()
                .collect(),
            reply_to_platform_message_id: None,
            message_tag: tag.map(str::to_owned),
            template: None,
        }
    }

    #[test]
    fn send_bodies() {
        let p = PlatformKind::Facebook;
        assert_eq!(
            send_body(p, "U", &outbound("hi", None, None), Some("RESPONSE")).unwrap(),
            json!({"recipient": {"id": "U"}, "messaging_type": "RESPONSE", "message": {"text": "hi"}})
        );
        assert_eq!(
            send_body(
                p,
                "U",
                &outbound("hi", None, Some("HUMAN_AGENT")),
                Some("RESPONSE")
            )
            .unwrap(),
            json!({"recipient": {"id": "U"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT", "message": {"text": "hi"}})
        );
        assert_eq!(
            send_body(
                PlatformKind::Instagram,
                "U",
                &outbound("", Some(AttachmentKind::Image), None),
                None
            )
            .unwrap(),
            json!({"recipient": {"id": "U"}, "message": {"attachment": {"type": "image", "payload": {"url": "https://cdn.example.com/a.png", "is_reusable": false}}}})
        );
        assert!(matches!(
            send_body(
                p,
                "U",
                &outbound("caption", Some(AttachmentKind::Image), None),
                None
            ),
            Err(Error::UnsupportedContent { .. })
        ));
        assert!(matches!(
            send_body(
                p,
                "U",
                &outbound("", Some(AttachmentKind::Sticker), None),
                None
            ),
            Err(Error::UnsupportedContent { .. })
        ));
        assert!(send_body(p, "U", &outbound("", None, None), None).is_err());
    }
}
