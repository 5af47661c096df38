//! Pure functions from the Bot API's JSON to the gateway's model. No I/O, so the gateway can
//! re-run them on stored payloads; unit-tested on the JSON fixtures in `tests/fixtures/`.
//!
//! Choices, with the reasons:
//! * Only private chats are direct messages; group, supergroup and channel traffic becomes
//!   `Ignored` (its raw payload stays stored).
//! * A message id is `"{chat.id}:{message_id}"`, because `message_id` is unique only within a
//!   chat (<https://core.telegram.org/bots/api#message>).
//! * Media become `tg-file:<file_id>` references: a download URL contains the bot token
//!   (<https://core.telegram.org/bots/api#getfile>), so it must never reach a customer.

use inbox_core::{
    Attachment, AttachmentKind, Direction, Error, InboundEvent, InboundKind, InboundMessage,
    Participant, Result, SentMessage, Timestamp,
};

use crate::wire;

/// The prefix of attachment URLs that reference a Telegram file by `file_id`.
pub(crate) const FILE_SCHEME: &str = "tg-file:";

/// The update types this adapter maps; every other one becomes `Ignored`.
const MAPPED: [&str; 2] = ["message", "edited_message"];

/// The gateway's id for a Telegram message.
pub(crate) fn platform_message_id(chat_id: i64, message_id: i64) -> String {
    format!("{chat_id}:{message_id}")
}

/// Splits `"{chat.id}:{message_id}"` (chat ids of groups are negative).
pub(crate) fn split_platform_message_id(id: &str) -> Option<(i64, i64)> {
    let (chat, message) = id.rsplit_once(':')?;
    Some((chat.parse().ok()?, message.parse().ok()?))
}

/// Parses one webhook body or one `getUpdates` element (an `Update` object).
///
/// # Errors
/// `InvalidInput` when the payload is not a JSON object with an `update_id`.
pub(crate) fn parse_update(payload: &[u8]) -> Result<Vec<InboundEvent>> {
    let update: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(payload)
        .map_err(|err| {
            Error::invalid(
                "body",
                format!("the payload is not a Telegram Update object: {err}"),
            )
        })?;
    if !update
        .get("update_id")
        .is_some_and(serde_json::Value::is_i64)
    {
        return Err(Error::invalid(
            "body",
            "the payload has no numeric `update_id`",
        ));
    }
    let kind = match (update.get("message"), update.get("edited_message")) {
        (Some(message), _) => decode(message).map(|message| {
            message_kind(&message, |message| {
                InboundKind::Message(inbound_message(message))
            })
        }),
        (None, Some(message)) => decode(message).map(|message| {
            message_kind(&message, |inbound| InboundKind::Edited {
                edited_at: Timestamp::from_unix_seconds(inbound.edit_date.unwrap_or(inbound.date)),
                message: inbound_message(inbound),
            })
        }),
        (None, None) => {
            let kinds: Vec<&str> = update
                .keys()
                .map(String::as_str)
                .filter(|key| *key != "update_id" && !MAPPED.contains(key))
                .collect();
            Ok(ignored(match kinds.first() {
                Some(kind) => format!("`{kind}` updates are not mapped"),
                None => "the update carries nothing".to_owned(),
            }))
        }
    };
    let kind = kind.unwrap_or_else(ignored);
    Ok(vec![InboundEvent {
        platform_account_id: None,
        kind,
    }])
}

fn ignored(reason: String) -> InboundKind {
    InboundKind::Ignored { reason }
}

fn decode(value: &serde_json::Value) -> std::result::Result<wire::Message, String> {
    serde::Deserialize::deserialize(value)
        .map_err(|err| format!("the message could not be decoded: {err}"))
}

/// Applies `map` to messages of private chats that carry something the inbox can show.
fn message_kind(
    message: &wire::Message,
    map: impl FnOnce(&wire::Message) -> InboundKind,
) -> InboundKind {
    if message.chat.kind != "private" {
        return ignored(format!(
            "a message in a {} chat; only private chats are direct messages",
            message.chat.kind
        ));
    }
    if message.text.is_none() && message.caption.is_none() && attachments(message).is_empty() {
        return ignored("a message with neither text nor media the inbox maps".to_owned());
    }
    map(message)
}

/// The person behind a private chat: `from`, or the chat itself when `from` is missing.
fn participant(message: &wire::Message) -> Participant {
    let (id, first, last, username) = match &message.from {
        Some(user) => (
            user.id,
            Some(user.first_name.as_str()),
            user.last_name.as_deref(),
            user.username.clone(),
        ),
        None => (
            message.chat.id,
            message.chat.first_name.as_deref(),
            message.chat.last_name.as_deref(),
            message.chat.username.clone(),
        ),
    };
    // Telegram's display name is first_name plus an optional last_name
    // (<https://core.telegram.org/bots/api#user>); fall back to the handle, then the id.
    let name = [first, last]
        .into_iter()
        .flatten()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>();
    let name = if name.is_empty() {
        username.clone().unwrap_or_else(|| id.to_string())
    } else {
        name.join(" ")
    };
    Participant {
        id: id.to_string(),
        name,
        username,
        picture: None,
    }
}

fn inbound_message(message: &wire::Message) -> InboundMessage {
    let person = participant(message);
    InboundMessage {
        platform_conversation_id: message.chat.id.to_string(),
        platform_message_id: platform_message_id(message.chat.id, message.message_id),
        // A bot never receives its own messages as updates, so everything here is incoming.
        direction: Direction::Incoming,
        participant: person.clone(),
        sender: person,
        text: message
            .text
            .clone()
            .or_else(|| message.caption.clone())
            .unwrap_or_default(),
        attachments: attachments(message),
        timestamp: Timestamp::from_unix_seconds(message.date),
        reply_to_platform_message_id: message
            .reply_to_message
            .as_ref()
            .map(|reply| platform_message_id(message.chat.id, reply.message_id)),
    }
}

fn file(kind: AttachmentKind, file: &wire::FileRef, default_mime: Option<&str>) -> Attachment {
    Attachment {
        kind,
        url: format!("{FILE_SCHEME}{}", file.file_id),
        mime_type: file
            .mime_type
            .clone()
            .or_else(|| default_mime.map(str::to_owned)),
        name: file.file_name.clone(),
    }
}

/// The media of a message, in the order Telegram documents the fields.
fn attachments(message: &wire::Message) -> Vec<Attachment> {
    let mut out = Vec::new();
    // `photo` lists sizes of one picture, smallest first; the last is the original. Telegram
    // re-encodes photos as JPEG.
    if let Some(largest) = message.photo.as_ref().and_then(|sizes| sizes.last()) {
        out.push(Attachment {
            kind: AttachmentKind::Image,
            url: format!("{FILE_SCHEME}{}", largest.file_id),
            mime_type: Some("image/jpeg".to_owned()),
            name: None,
        });
    }
    if let Some(animation) = &message.animation {
        // GIFs arrive as MP4 animations; Telegram also sets `document` to the same file "for
        // backward compatibility", which is skipped below so the file is not listed twice.
        out.push(file(AttachmentKind::Video, animation, Some("video/mp4")));
    } else if let Some(document) = &message.document {
        out.push(file(AttachmentKind::File, document, None));
    }
    if let Some(video) = &message.video {
        out.push(file(AttachmentKind::Video, video, Some("video/mp4")));
    }
    if let Some(note) = &message.video_note {
        out.push(file(AttachmentKind::Video, note, Some("video/mp4")));
    }
    if let Some(audio) = &message.audio {
        out.push(file(AttachmentKind::Audio, audio, None));
    }
    if let Some(voice) = &message.voice {
        // Voice notes are OGG/Opus (<https://core.telegram.org/bots/api#voice>).
        out.push(file(AttachmentKind::Audio, voice, Some("audio/ogg")));
    }
    if let Some(sticker) = &message.sticker {
        // Static stickers are WebP, animated ones TGS (gzipped Lottie), video ones WebM.
        let mime = if sticker.is_animated {
            "application/x-tgsticker"
        } else if sticker.is_video {
            "video/webm"
        } else {
            "image/webp"
        };
        out.push(Attachment {
            kind: AttachmentKind::Sticker,
            url: format!("{FILE_SCHEME}{}", sticker.file_id),
            mime_type: Some(mime.to_owned()),
            name: None,
        });
    }
    if let Some(location) = &message.location {
        // A shared location has no file; RFC 5870 `geo:` keeps it usable.
        out.push(Attachment {
            kind: AttachmentKind::Other,
            url: format!("geo:{},{}", location.latitude, location.longitude),
            mime_type: None,
            name: None,
        });
    }
    out
}

/// What a `send*` call answered.
pub(crate) fn sent_message(message: &wire::Message) -> SentMessage {
    SentMessage {
        platform_message_id: platform_message_id(message.chat.id, message.message_id),
        timestamp: Timestamp::from_unix_seconds(message.date),
    }
}

/// A MIME type for a downloaded file, from its path's extension (Telegram's file server answers
/// `application/octet-stream` for most files).
pub(crate) fn guess_mime(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "oga" | "ogg" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "wav" => "audio/wav",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "zip" => "application/zip",
        "tgs" => "application/x-tgsticker",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    fn one(name: &str) -> InboundKind {
        let mut events = parse_update(&fixture(name)).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        let event = events.remove(0);
        assert_eq!(
            event.platform_account_id, None,
            "per-account payloads carry no account"
        );
        event.kind
    }

    fn message(name: &str) -> InboundMessage {
        match one(name) {
            InboundKind::Message(message) => message,
            other => panic!("{name}: expected a message, got {other:?}"),
        }
    }

    fn ignored_reason(name: &str) -> String {
        match one(name) {
            InboundKind::Ignored { reason } => reason,
            other => panic!("{name}: expected Ignored, got {other:?}"),
        }
    }

    #[test]
    fn private_text_message() {
        let message = message("text_private.json");
        assert_eq!(message.platform_conversation_id, "111222333");
        assert_eq!(message.platform_message_id, "111222333:42");
        assert_eq!(message.direction, Direction::Incoming);
        assert_eq!(message.text, "hello bot");
        assert!(message.attachments.is_empty());
        assert_eq!(
            message.timestamp,
            Timestamp::from_unix_seconds(1_767_323_045)
        );
        assert_eq!(message.reply_to_platform_message_id, None);
        let alice = Participant {
            id: "111222333".into(),
            name: "Alice Smith".into(),
            username: Some("alice".into()),
            picture: None,
        };
        assert_eq!(message.sender, alice);
        assert_eq!(message.participant, alice);
    }

    #[test]
    fn photo_takes_the_largest_size_and_the_caption() {
        let message = message("photo_caption.json");
        assert_eq!(message.text, "look");
        assert_eq!(
            message.attachments,
            [Attachment {
                kind: AttachmentKind::Image,
                url: "tg-file:AgACAgI-large".into(),
                mime_type: Some("image/jpeg".into()),
                name: None,
            }]
        );
        assert_eq!(
            message.sender.name, "Alice",
            "no last name, no trailing space"
        );
        assert_eq!(message.sender.username, None);
    }

    #[test]
    fn document_keeps_name_and_type() {
        let message = message("document.json");
        assert_eq!(message.text, "");
        assert_eq!(
            message.attachments,
            [Attachment {
                kind: AttachmentKind::File,
                url: "tg-file:BQACAgI-doc".into(),
                mime_type: Some("application/pdf".into()),
                name: Some("invoice.pdf".into()),
            }]
        );
    }

    #[test]
    fn other_media_kinds() {
        let kinds = |name| {
            message(name)
                .attachments
                .into_iter()
                .map(|a| (a.kind, a.url, a.mime_type))
                .collect::<Vec<_>>()
        };
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            kinds("voice.json"),
            [(
                AttachmentKind::Audio,
                "tg-file:AwACAgI-voice".into(),
                some("audio/ogg")
            )]
        );
        assert_eq!(
            kinds("sticker.json"),
            [(
                AttachmentKind::Sticker,
                "tg-file:CAACAgI-sticker".into(),
                some("image/webp")
            )]
        );
        assert_eq!(
            kinds("animation.json"),
            [(
                AttachmentKind::Video,
                "tg-file:CgACAgI-anim".into(),
                some("video/mp4")
            )],
            "the duplicate `document` of an animation is not listed"
        );
        assert_eq!(
            kinds("video_audio.json"),
            [
                (
                    AttachmentKind::Video,
                    "tg-file:BAACAgI-video".into(),
                    some("video/quicktime")
                ),
                (
                    AttachmentKind::Audio,
                    "tg-file:CQACAgI-audio".into(),
                    some("audio/mpeg")
                ),
            ]
        );
        assert_eq!(
            kinds("location.json"),
            [(AttachmentKind::Other, "geo:52.52,13.405".into(), None)]
        );
    }

    #[test]
    fn reply_references_the_message_in_the_same_chat() {
        let message = message("reply.json");
        assert_eq!(message.platform_message_id, "111222333:44");
        assert_eq!(
            message.reply_to_platform_message_id.as_deref(),
            Some("111222333:100")
        );
    }

    #[test]
    fn edited_message_keeps_the_id_and_edit_date() {
        match one("edited.json") {
            InboundKind::Edited { message, edited_at } => {
                assert_eq!(message.platform_message_id, "111222333:42");
                assert_eq!(message.text, "hello bot (edited)");
                assert_eq!(
                    message.timestamp,
                    Timestamp::from_unix_seconds(1_767_323_045)
                );
                assert_eq!(edited_at, Timestamp::from_unix_seconds(1_767_323_160));
            }
            other => panic!("expected Edited, got {other:?}"),
        }
    }

    #[test]
    fn group_and_channel_traffic_is_ignored() {
        assert!(ignored_reason("group.json").contains("supergroup"));
        assert!(ignored_reason("channel_post.json").contains("channel_post"));
    }

    #[test]
    fn unknown_update_types_are_ignored_by_name() {
        assert_eq!(
            ignored_reason("my_chat_member.json"),
            "`my_chat_member` updates are not mapped"
        );
    }

    #[test]
    fn content_without_text_or_media_is_ignored() {
        assert!(ignored_reason("contact.json").contains("neither text nor media"));
    }

    #[test]
    fn unknown_fields_and_large_ids_are_fine() {
        let message = message("unknown_fields.json");
        assert_eq!(message.platform_conversation_id, "7000000000123");
        assert_eq!(message.platform_message_id, "7000000000123:9");
        assert_eq!(message.text, "hi");
    }

    #[test]
    fn undecodable_messages_are_ignored_with_the_reason() {
        let reason = match parse_update(br#"{"update_id":1,"message":{"message_id":"x"}}"#)
            .unwrap()
            .remove(0)
            .kind
        {
            InboundKind::Ignored { reason } => reason,
            other => panic!("expected Ignored, got {other:?}"),
        };
        assert!(
            reason.starts_with("the message could not be decoded"),
            "{reason}"
        );
    }

    #[test]
    fn garbage_is_invalid_input() {
        for payload in [&b"not json"[..], b"[]", b"{}", br#"{"update_id":"1"}"#] {
            assert!(
                matches!(parse_update(payload), Err(Error::InvalidInput { .. })),
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn message_ids_round_trip() {
        assert_eq!(
            split_platform_message_id(&platform_message_id(-100123, 7)),
            Some((-100123, 7))
        );
        assert_eq!(split_platform_message_id("42"), None);
        assert_eq!(split_platform_message_id("a:b"), None);
    }

    #[test]
    fn mime_guesses() {
        assert_eq!(guess_mime("photos/file_0.jpg"), Some("image/jpeg"));
        assert_eq!(guess_mime("voice/file_3.OGA"), Some("audio/ogg"));
        assert_eq!(guess_mime("documents/file"), None);
    }
}
