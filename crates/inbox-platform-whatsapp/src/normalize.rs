//! WhatsApp webhook bodies → normalised events
//! (<https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages>).
//!
//! `object: "whatsapp_business_account"`, `entry[].changes[]` with `field: "messages"` and a
//! `value` holding `metadata.phone_number_id` (the account), `contacts[]` (names and ids),
//! `messages[]`, `statuses[]` and `errors[]`; `field: "smb_message_echoes"` holds
//! `message_echoes[]` (messages sent from the WhatsApp Business app). Choices:
//! * The participant is the `wa_id`; users without a visible phone number are known by their
//!   business-scoped user id (`contacts[].user_id`), which then names the thread.
//! * Media become `wa-media:<media id>` references: the media URL needs the account's token
//!   and lives about five minutes, so the gateway downloads it when asked.
//! * Locations, shared contacts and button/list replies become text; reactions, edits and
//!   revokes their own events; `statuses` become delivery statuses (`played` counts as read);
//!   order, system and unsupported messages are `Ignored` and stay stored raw.

use std::collections::HashMap;

use inbox_core::{
    Attachment, AttachmentKind, DeliveryStatus, Direction, Error, InboundEvent, InboundKind,
    InboundMessage, Participant, Result, Timestamp,
};
use inbox_platform_meta::messaging::id_text;
use serde_json::{Map, Value};

/// The webhook object WhatsApp deliveries carry.
pub(crate) const OBJECT: &str = "whatsapp_business_account";

/// The prefix of attachment URLs that reference WhatsApp media by id.
pub(crate) const MEDIA_SCHEME: &str = "wa-media:";

fn ignored(account: Option<&str>, reason: impl Into<String>) -> InboundEvent {
    InboundEvent {
        platform_account_id: account.map(str::to_owned),
        kind: InboundKind::Ignored {
            reason: reason.into(),
        },
    }
}

/// Epoch seconds as WhatsApp sends them (a string, sometimes a number).
fn seconds(value: Option<&Value>) -> Option<Timestamp> {
    let s = match value? {
        Value::String(s) => s.trim().parse().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    Some(Timestamp::from_unix_seconds(s))
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Parses one webhook body.
///
/// # Errors
/// `InvalidInput` when the body is not a webhook object with an `entry` list.
pub(crate) fn parse(payload: &[u8]) -> Result<Vec<InboundEvent>> {
    let body: Map<String, Value> = serde_json::from_slice(payload).map_err(|err| {
        Error::invalid(
            "body",
            format!("the payload is not a Meta webhook object: {err}"),
        )
    })?;
    let object = body
        .get("object")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if object != OBJECT {
        return Ok(vec![ignored(
            None,
            format!("webhook object `{object}` is not handled by the WhatsApp endpoint"),
        )]);
    }
    let Some(entries) = body.get("entry").and_then(Value::as_array) else {
        return Err(Error::invalid("body", "the webhook has no `entry` list"));
    };
    let mut events = Vec::new();
    for entry in entries {
        for change in entry
            .get("changes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let field = change.get("field").and_then(Value::as_str).unwrap_or("?");
            let value = change.get("value").unwrap_or(&Value::Null);
            let account = str_at(value, "/metadata/phone_number_id")
                .map(str::to_owned)
                .or_else(|| id_text(value.pointer("/metadata/phone_number_id")));
            let account = account.as_deref();
            match field {
                "messages" => parse_value(value, account, &mut events),
                "smb_message_echoes" => {
                    let contacts = Contacts::read(value);
                    for echo in value
                        .get("message_echoes")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        events.push(echo_event(echo, account, &contacts));
                    }
                }
                other => events.push(ignored(
                    account,
                    format!("`{other}` changes are not mapped"),
                )),
            }
        }
    }
    Ok(events)
}

/// Names and ids from `contacts[]`, by wa_id and by business-scoped id.
struct Contacts {
    by_id: HashMap<String, Contact>,
    only: Option<Contact>,
}

#[derive(Clone)]
struct Contact {
    wa_id: Option<String>,
    user_id: Option<String>,
    name: Option<String>,
    username: Option<String>,
}

impl Contact {
    /// The id the gateway knows the user by: the wa_id, else the business-scoped id.
    fn id(&self) -> Option<&str> {
        self.wa_id.as_deref().or(self.user_id.as_deref())
    }
}

impl Contacts {
    fn read(value: &Value) -> Contacts {
        let all: Vec<Contact> = value
            .get("contacts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| Contact {
                wa_id: id_text(c.get("wa_id")),
                user_id: id_text(c.get("user_id")),
                name: str_at(c, "/profile/name").map(str::to_owned),
                username: str_at(c, "/profile/username").map(str::to_owned),
            })
            .collect();
        let mut by_id = HashMap::new();
        for contact in &all {
            for id in [&contact.wa_id, &contact.user_id].into_iter().flatten() {
                by_id.insert(id.clone(), contact.clone());
            }
        }
        Contacts {
            only: (all.len() == 1).then(|| all[0].clone()),
            by_id,
        }
    }

    /// The participant of a message from `from` / `from_user_id` (either may be absent).
    fn participant(
        &self,
        from: Option<String>,
        from_user_id: Option<String>,
    ) -> Option<Participant> {
        let contact = from
            .as_ref()
            .and_then(|id| self.by_id.get(id))
            .or_else(|| from_user_id.as_ref().and_then(|id| self.by_id.get(id)))
            .or(self.only.as_ref());
        let id = from
            .or_else(|| contact.and_then(|c| c.wa_id.clone()))
            .or(from_user_id)
            .or_else(|| contact.and_then(|c| c.id().map(str::to_owned)))?;
        Some(Participant {
            name: contact
                .and_then(|c| c.name.clone())
                .unwrap_or_else(|| id.clone()),
            username: contact.and_then(|c| c.username.clone()),
            picture: None,
            id,
        })
    }
}

fn parse_value(value: &Value, account: Option<&str>, events: &mut Vec<InboundEvent>) {
    let contacts = Contacts::read(value);
    let wrap = |kind| InboundEvent {
        platform_account_id: account.map(str::to_owned),
        kind,
    };
    for message in value
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        events.push(match message_kind(message, &contacts) {
            Ok(kind) => wrap(kind),
            Err(reason) => ignored(account, reason),
        });
    }
    for status in value
        .get("statuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        events.push(match status_kind(status) {
            Ok(kind) => wrap(kind),
            Err(reason) => ignored(account, reason),
        });
    }
    for error in value
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let code = id_text(error.get("code")).unwrap_or_else(|| "?".into());
        let title = str_at(error, "/title")
            .or_else(|| str_at(error, "/message"))
            .unwrap_or("");
        events.push(ignored(
            account,
            format!("WhatsApp reported an error not tied to a message: {code} {title}"),
        ));
    }
    let empty = ["messages", "statuses", "errors"].iter().all(|key| {
        value
            .get(key)
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    });
    if empty {
        events.push(ignored(
            account,
            "a `messages` change without messages, statuses or errors",
        ));
    }
}

/// The text and attachments of a message's content (also of an edit's new content).
fn content(message: &Value) -> std::result::Result<(String, Vec<Attachment>), String> {
    let kind = message.get("type").and_then(Value::as_str).unwrap_or("?");
    let text = |pointer: &str| str_at(message, pointer).unwrap_or_default().to_owned();
    Ok(match kind {
        "text" => (text("/text/body"), Vec::new()),
        "image" | "video" | "audio" | "document" | "sticker" => {
            let media = &message[kind];
            let Some(id) = id_text(media.get("id")) else {
                return Err(format!("a `{kind}` message without a media id"));
            };
            let attachment_kind = match kind {
                "image" => AttachmentKind::Image,
                "video" => AttachmentKind::Video,
                "audio" => AttachmentKind::Audio,
                "sticker" => AttachmentKind::Sticker,
                _ => AttachmentKind::File,
            };
            let attachment = Attachment {
                kind: attachment_kind,
                url: format!("{MEDIA_SCHEME}{id}"),
                mime_type: str_at(media, "/mime_type").map(str::to_owned),
                name: str_at(media, "/filename").map(str::to_owned),
            };
            (
                str_at(media, "/caption").unwrap_or_default().to_owned(),
                vec![attachment],
            )
        }
        "location" => {
            let location = &message["location"];
            let coordinate = |key: &str| location.get(key).and_then(Value::as_f64);
            let place: Vec<&str> = ["/name", "/address"]
                .iter()
                .filter_map(|p| str_at(location, p))
                .collect();
            let mut text = place.join(", ");
            if let (Some(lat), Some(lng)) = (coordinate("latitude"), coordinate("longitude")) {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&format!("({lat}, {lng})"));
            }
            (format!("📍 {text}"), Vec::new())
        }
        "contacts" => {
            let names: Vec<String> = message["contacts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let name = str_at(c, "/name/formatted_name").unwrap_or("?");
                    let phones: Vec<&str> = c["phones"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.get("phone").and_then(Value::as_str))
                        .collect();
                    if phones.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{name} ({})", phones.join(", "))
                    }
                })
                .collect();
            (format!("👤 {}", names.join("; ")), Vec::new())
        }
        "interactive" => {
            let reply = str_at(message, "/interactive/button_reply/title")
                .or_else(|| str_at(message, "/interactive/list_reply/title"))
                .or_else(|| str_at(message, "/interactive/nfm_reply/body"));
            match reply {
                Some(title) => (title.to_owned(), Vec::new()),
                None => {
                    return Err(
                        "an `interactive` reply of a kind the inbox does not map".to_owned()
                    );
                }
            }
        }
        "button" => (text("/button/text"), Vec::new()),
        other => return Err(format!("`{other}` messages are not mapped")),
    })
}

fn message_kind(message: &Value, contacts: &Contacts) -> std::result::Result<InboundKind, String> {
    let kind = message.get("type").and_then(Value::as_str).unwrap_or("?");
    let Some(id) = id_text(message.get("id")) else {
        return Err(format!("a `{kind}` message without `id`"));
    };
    let at = seconds(message.get("timestamp")).unwrap_or_else(Timestamp::now);
    let participant = contacts
        .participant(
            id_text(message.get("from")),
            id_text(message.get("from_user_id")),
        )
        .ok_or_else(|| format!("a `{kind}` message without a sender"))?;
    match kind {
        "reaction" => {
            let target = id_text(message.pointer("/reaction/message_id"))
                .ok_or("a reaction without `message_id`")?;
            // An empty emoji removes the reaction.
            let emoji = str_at(message, "/reaction/emoji").map(str::to_owned);
            return Ok(InboundKind::Reaction {
                platform_message_id: target,
                sender_id: participant.id,
                emoji,
                at,
            });
        }
        "revoke" => {
            let target = id_text(message.pointer("/revoke/original_message_id"))
                .ok_or("a revoke without `original_message_id`")?;
            return Ok(InboundKind::Deleted {
                platform_message_id: target,
                at,
            });
        }
        "edit" => {
            let target = id_text(message.pointer("/edit/original_message_id"))
                .ok_or("an edit without `original_message_id`")?;
            let (text, attachments) = content(&message["edit"]["message"])?;
            return Ok(InboundKind::Edited {
                message: InboundMessage {
                    platform_conversation_id: participant.id.clone(),
                    platform_message_id: target,
                    direction: Direction::Incoming,
                    sender: participant.clone(),
                    participant,
                    text,
                    attachments,
                    timestamp: at,
                    reply_to_platform_message_id: None,
                },
                edited_at: at,
            });
        }
        _ => {}
    }
    let (text, attachments) = content(message)?;
    Ok(InboundKind::Message(InboundMessage {
        platform_conversation_id: participant.id.clone(),
        platform_message_id: id,
        direction: Direction::Incoming,
        sender: participant.clone(),
        participant,
        text,
        attachments,
        timestamp: at,
        reply_to_platform_message_id: id_text(message.pointer("/context/id")),
    }))
}

fn status_kind(status: &Value) -> std::result::Result<InboundKind, String> {
    let id = id_text(status.get("id")).ok_or("a status without `id`")?;
    let at = seconds(status.get("timestamp")).unwrap_or_else(Timestamp::now);
    let name = status.get("status").and_then(Value::as_str).unwrap_or("?");
    let mapped = match name {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        // `played` is a voice message listened to: read, and more.
        "read" | "played" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        other => return Err(format!("`{other}` statuses are not mapped")),
    };
    let error = (mapped == DeliveryStatus::Failed).then(|| {
        let first = status.pointer("/errors/0");
        let code = first
            .and_then(|e| id_text(e.get("code")))
            .unwrap_or_else(|| "unknown".to_owned());
        let text = first
            .map(|e| {
                let title = str_at(e, "/title")
                    .or_else(|| str_at(e, "/message"))
                    .unwrap_or("");
                match str_at(e, "/error_data/details") {
                    Some(details) if details != title => format!("{title}: {details}"),
                    _ => title.to_owned(),
                }
            })
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "WhatsApp reported the message as failed".to_owned());
        (code, text)
    });
    Ok(InboundKind::Status {
        platform_message_id: id,
        status: mapped,
        error,
        at,
    })
}

/// A message the business sent from the WhatsApp Business app (`smb_message_echoes`).
fn echo_event(echo: &Value, account: Option<&str>, contacts: &Contacts) -> InboundEvent {
    let wrap = |kind| InboundEvent {
        platform_account_id: account.map(str::to_owned),
        kind,
    };
    let Some(id) = id_text(echo.get("id")) else {
        return ignored(account, "an echo without `id`");
    };
    let Some(participant) =
        contacts.participant(id_text(echo.get("to")), id_text(echo.get("to_user_id")))
    else {
        return ignored(account, "an echo without a recipient");
    };
    let (text, attachments) = match content(echo) {
        Ok(content) => content,
        Err(reason) => return ignored(account, reason),
    };
    let from = id_text(echo.get("from")).unwrap_or_else(|| account.unwrap_or_default().to_owned());
    wrap(InboundKind::Message(InboundMessage {
        platform_conversation_id: participant.id.clone(),
        platform_message_id: id,
        direction: Direction::Outgoing,
        participant,
        sender: inbox_platform_meta::messaging::unnamed(&from),
        text,
        attachments,
        timestamp: seconds(echo.get("timestamp")).unwrap_or_else(Timestamp::now),
        reply_to_platform_message_id: id_text(echo.pointer("/context/id")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<InboundEvent> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        parse(&std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))).unwrap()
    }

    fn message(event: &InboundEvent) -> &InboundMessage {
        match &event.kind {
            InboundKind::Message(message) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn the_signed_pywa_delivery() {
        let events = fixture("pywa_signed.json");
        assert_eq!(
            events[0].platform_account_id.as_deref(),
            Some("277321005464405")
        );
        let text = message(&events[0]);
        assert_eq!(text.text, "Hey there! I am using PyWa.");
        assert_eq!(text.sender.name, "PyWa Tests");
        assert_eq!(text.participant.id, "972544401243");
        assert_eq!(text.timestamp, Timestamp::from_unix_seconds(1_730_231_903));
    }

    #[test]
    fn text_with_contact_and_business_scoped_id() {
        let events = fixture("text.json");
        let text = message(&events[0]);
        assert_eq!(text.text, "Does it come in another color?");
        assert_eq!(text.participant.id, "16505551234");
        assert_eq!(text.participant.name, "Sheena Nelson");
        assert_eq!(text.reply_to_platform_message_id, None);
        // A user without a visible phone number: the business-scoped id names the thread.
        let hidden = message(&events[1]);
        assert_eq!(hidden.participant.id, "US.13491208655302741918");
        assert_eq!(hidden.platform_conversation_id, "US.13491208655302741918");
        assert_eq!(hidden.participant.name, "Kai");
        assert_eq!(hidden.participant.username.as_deref(), Some("kai.w"));
        // No contacts at all: named by id.
        let nameless = message(&events[2]);
        assert_eq!(nameless.participant.name, "16505550000");
    }

    #[test]
    fn media_of_every_kind_becomes_references() {
        let events = fixture("media.json");
        let items: Vec<(AttachmentKind, String, Option<String>, String)> = events
            .iter()
            .map(|e| {
                let m = message(e);
                let a = &m.attachments[0];
                (a.kind, a.url.clone(), a.name.clone(), m.text.clone())
            })
            .collect();
        assert_eq!(
            items[0],
            (
                AttachmentKind::Image,
                "wa-media:1013859600285441".into(),
                None,
                "optional caption".into()
            )
        );
        assert_eq!(items[1].0, AttachmentKind::Video);
        assert_eq!(items[2].0, AttachmentKind::Audio);
        assert_eq!(
            items[3],
            (
                AttachmentKind::File,
                "wa-media:555".into(),
                Some("invoice.pdf".into()),
                "".into()
            )
        );
        assert_eq!(items[4].0, AttachmentKind::Sticker);
        assert_eq!(
            message(&events[0]).attachments[0].mime_type.as_deref(),
            Some("image/jpeg")
        );
    }

    #[test]
    fn replies_locations_contacts_and_buttons_become_text() {
        let events = fixture("other_types.json");
        assert_eq!(
            message(&events[0]).reply_to_platform_message_id.as_deref(),
            Some("wamid.original")
        );
        assert_eq!(
            message(&events[1]).text,
            "📍 Philz Coffee, 101 Forest Ave (37.44, -122.16)"
        );
        assert_eq!(
            message(&events[2]).text,
            "👤 Barbara Johnson (+1 (940) 555-1234)"
        );
        assert_eq!(message(&events[3]).text, "Yes, ship it");
        assert_eq!(message(&events[4]).text, "Blue");
        assert_eq!(message(&events[5]).text, "Talk to a human");
        assert!(
            matches!(&events[6].kind, InboundKind::Ignored { reason } if reason.contains("order"))
        );
        assert!(
            matches!(&events[7].kind, InboundKind::Ignored { reason } if reason.contains("unsupported"))
        );
    }

    #[test]
    fn reactions_edits_and_revokes() {
        let events = fixture("reactions_edits.json");
        assert!(
            matches!(&events[0].kind, InboundKind::Reaction { emoji: Some(e), platform_message_id, .. } if e == "👍" && platform_message_id == "wamid.sent")
        );
        assert!(matches!(
            &events[1].kind,
            InboundKind::Reaction { emoji: None, .. }
        ));
        match &events[2].kind {
            InboundKind::Edited { message, .. } => {
                assert_eq!(message.platform_message_id, "wamid.original");
                assert_eq!(message.text, "edited text");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&events[3].kind, InboundKind::Deleted { platform_message_id, .. } if platform_message_id == "wamid.original")
        );
    }

    /// A status as the test reads it: message id, status, error code and text.
    type StatusRow = (String, DeliveryStatus, Option<(String, String)>);

    #[test]
    fn statuses_with_failures() {
        let events = fixture("statuses.json");
        let statuses: Vec<StatusRow> = events
            .iter()
            .filter_map(|e| match &e.kind {
                InboundKind::Status {
                    platform_message_id,
                    status,
                    error,
                    ..
                } => Some((platform_message_id.clone(), *status, error.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(statuses.len(), 5);
        assert_eq!(statuses[0].1, DeliveryStatus::Sent);
        assert_eq!(statuses[1].1, DeliveryStatus::Delivered);
        assert_eq!(statuses[2].1, DeliveryStatus::Read);
        assert_eq!(statuses[3].1, DeliveryStatus::Read, "played counts as read");
        let (code, text) = statuses[4]
            .2
            .clone()
            .expect("a failed status carries the error");
        assert_eq!(code, "131047");
        assert!(text.starts_with("Re-engagement message"), "{text}");
        assert!(text.contains("24 hours"), "{text}");
        // value.errors[] without a message: kept raw.
        assert!(
            matches!(&events[5].kind, InboundKind::Ignored { reason } if reason.contains("130429"))
        );
    }

    #[test]
    fn business_app_echoes_are_outgoing() {
        let events = fixture("echo.json");
        let echo = message(&events[0]);
        assert_eq!(echo.direction, Direction::Outgoing);
        assert_eq!(echo.participant.id, "16505551234");
        assert_eq!(echo.text, "Sent from the Business app");
    }

    #[test]
    fn batches_unknown_fields_and_objects() {
        let events = fixture("batch.json");
        let accounts: Vec<_> = events
            .iter()
            .map(|e| e.platform_account_id.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            accounts,
            ["106540352242922", "106540352242923", "106540352242922", ""]
        );
        assert!(
            matches!(&events[3].kind, InboundKind::Ignored { reason } if reason.contains("message_template_status_update"))
        );
        let other = parse(br#"{"object":"page","entry":[]}"#).unwrap();
        assert!(matches!(other[0].kind, InboundKind::Ignored { .. }));
        assert!(parse(b"[]").is_err());
    }
}
