//! Instagram webhook bodies → normalised events. Instagram Login webhooks use the Messenger
//! Platform shape (`object: "instagram"`, `entry[].messaging[]`), so the mapping is the shared
//! one in `inbox_platform_meta::messaging`; what is Instagram's own is listed there (reads by
//! `mid`, unsend as `is_deleted`). Unit-tested on the fixtures in `tests/fixtures/`.

use inbox_core::{InboundEvent, PlatformKind, Result};

/// The webhook object Instagram deliveries carry.
pub(crate) const OBJECT: &str = "instagram";

/// Parses one webhook body.
///
/// # Errors
/// `InvalidInput` when the body is not a webhook object at all.
pub(crate) fn parse(payload: &[u8]) -> Result<Vec<InboundEvent>> {
    inbox_platform_meta::messaging::parse_payload(payload, OBJECT, PlatformKind::Instagram)
}

#[cfg(test)]
mod tests {
    use inbox_core::{AttachmentKind, DeliveryStatus, Direction, InboundKind, Timestamp};

    use super::*;

    fn fixture(name: &str) -> Vec<InboundEvent> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        parse(&std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))).unwrap()
    }

    fn only_message(events: &[InboundEvent]) -> &inbox_core::InboundMessage {
        assert_eq!(events.len(), 1, "{events:#?}");
        match &events[0].kind {
            InboundKind::Message(message) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn text() {
        let events = fixture("text.json");
        assert_eq!(
            events[0].platform_account_id.as_deref(),
            Some("17841400000000001")
        );
        let message = only_message(&events);
        assert_eq!(message.text, "Hi, I have a question");
        assert_eq!(
            message.platform_message_id,
            "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAw"
        );
        assert_eq!(message.platform_conversation_id, "8765432109876543");
        assert_eq!(message.direction, Direction::Incoming);
        // Webhooks carry no names: the processor looks them up.
        assert_eq!(message.sender.name, "8765432109876543");
        assert_eq!(
            message.timestamp,
            Timestamp::from_unix_millis(1_761_287_294_014)
        );
    }

    #[test]
    fn attachments_of_every_kind() {
        let events = fixture("attachments.json");
        let kinds: Vec<Vec<AttachmentKind>> = events
            .iter()
            .filter_map(|event| match &event.kind {
                InboundKind::Message(m) => Some(m.attachments.iter().map(|a| a.kind).collect()),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                vec![AttachmentKind::Image],
                vec![AttachmentKind::Video],
                vec![AttachmentKind::Audio],
                vec![AttachmentKind::File],
                vec![AttachmentKind::Other],
                vec![AttachmentKind::Other],
                vec![AttachmentKind::Other],
            ]
        );
        // View-once media has no usable URL: nothing to show, kept raw.
        assert!(matches!(
            events.last().unwrap().kind,
            InboundKind::Ignored { .. }
        ));
        let share = match &events[4].kind {
            InboundKind::Message(m) => &m.attachments[0],
            other => panic!("{other:?}"),
        };
        assert_eq!(
            share.url,
            "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=share"
        );
        assert_eq!(share.name.as_deref(), Some("share"));
    }

    #[test]
    fn replies_and_story_replies() {
        let events = fixture("reply.json");
        let reply = match &events[0].kind {
            InboundKind::Message(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reply.reply_to_platform_message_id.as_deref(),
            Some("aWdfZAG1f_original")
        );
        let story = match &events[1].kind {
            InboundKind::Message(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(story.text, "nice story");
        assert_eq!(story.attachments[0].name.as_deref(), Some("story"));
    }

    #[test]
    fn echoes_are_outgoing_to_the_recipient() {
        let message = only_message(&fixture("echo.json")).clone();
        assert_eq!(message.direction, Direction::Outgoing);
        assert_eq!(message.platform_conversation_id, "8765432109876543");
        assert_eq!(message.participant.id, "8765432109876543");
        assert_eq!(message.sender.id, "17841400000000001");
    }

    #[test]
    fn reads_deletes_reactions_and_edits() {
        let events = fixture("events.json");
        assert!(matches!(
            &events[0].kind,
            InboundKind::Status { platform_message_id, status: DeliveryStatus::Read, .. } if platform_message_id == "aWdfZAG1f_sent"
        ));
        assert!(matches!(
            &events[1].kind,
            InboundKind::ReadUpTo { platform_conversation_id, watermark } if platform_conversation_id == "8765432109876543" && *watermark == Timestamp::from_unix_millis(1_761_287_400_000)
        ));
        assert!(
            matches!(&events[2].kind, InboundKind::Deleted { platform_message_id, .. } if platform_message_id == "aWdfZAG1f_gone")
        );
        assert!(matches!(
            &events[3].kind,
            InboundKind::Reaction { emoji: Some(emoji), sender_id, .. } if emoji == "❤️" && sender_id == "8765432109876543"
        ));
        assert!(matches!(
            &events[4].kind,
            InboundKind::Reaction { emoji: None, .. }
        ));
        match &events[5].kind {
            InboundKind::Edited { message, .. } => {
                assert_eq!(message.text, "edited text");
                assert_eq!(message.platform_message_id, "aWdfZAG1f_edited");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_dashboard_test_shape_and_unknown_events() {
        let events = fixture("dashboard_test.json");
        assert_eq!(events[0].platform_account_id.as_deref(), Some("0"));
        assert_eq!(only_message(&events).text, "This is an example.");
        let events = fixture("unknown.json");
        assert!(
            events
                .iter()
                .all(|e| matches!(e.kind, InboundKind::Ignored { .. })),
            "{events:#?}"
        );
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn batches_keep_every_entry_in_order() {
        let events = fixture("batch.json");
        let accounts: Vec<_> = events
            .iter()
            .map(|e| e.platform_account_id.clone().unwrap())
            .collect();
        assert_eq!(
            accounts,
            [
                "17841400000000001",
                "17841400000000001",
                "17841400000000002"
            ]
        );
    }
}
