//! Messenger webhook bodies → normalised events: `object: "page"`, `entry[].messaging[]`
//! (and `standby[]`), mapped by the Messenger Platform rules shared with Instagram in
//! `inbox_platform_meta::messaging`. Messenger's own parts: deliveries (`mids`), reads by
//! `watermark`, edits (`message_edit`), echoes with `app_id`. Unit-tested on the fixtures in
//! `tests/fixtures/`.

use inbox_core::{InboundEvent, PlatformKind, Result};

/// The webhook object Page deliveries carry.
pub(crate) const OBJECT: &str = "page";

/// Parses one webhook body.
///
/// # Errors
/// `InvalidInput` when the body is not a webhook object at all.
pub(crate) fn parse(payload: &[u8]) -> Result<Vec<InboundEvent>> {
    inbox_platform_meta::messaging::parse_payload(payload, OBJECT, PlatformKind::Facebook)
}

#[cfg(test)]
mod tests {
    use inbox_core::{AttachmentKind, DeliveryStatus, Direction, InboundKind, Timestamp};

    use super::*;

    fn fixture(name: &str) -> Vec<InboundEvent> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        parse(&std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))).unwrap()
    }

    fn message(event: &InboundEvent) -> &inbox_core::InboundMessage {
        match &event.kind {
            InboundKind::Message(message) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn text_with_quick_reply_and_reply_to() {
        let events = fixture("text.json");
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].platform_account_id.as_deref(),
            Some("104857600000001")
        );
        let first = message(&events[0]);
        assert_eq!(first.text, "Hi, I have a question");
        assert_eq!(first.platform_conversation_id, "24681357900000001");
        assert_eq!(
            first.timestamp,
            Timestamp::from_unix_millis(1_518_479_195_308)
        );
        let reply = message(&events[1]);
        assert_eq!(reply.text, "Red please");
        assert_eq!(
            reply.reply_to_platform_message_id.as_deref(),
            Some("m_first")
        );
    }

    #[test]
    fn attachments_and_the_sticker_twin() {
        let events = fixture("attachments.json");
        let kinds: Vec<Vec<AttachmentKind>> = events
            .iter()
            .map(|e| message(e).attachments.iter().map(|a| a.kind).collect())
            .collect();
        assert_eq!(
            kinds,
            [
                vec![AttachmentKind::Image, AttachmentKind::Image],
                vec![AttachmentKind::Video],
                vec![AttachmentKind::Audio],
                vec![AttachmentKind::File],
                vec![AttachmentKind::Sticker],
                vec![AttachmentKind::Other],
            ]
        );
        assert_eq!(
            message(&events[5]).attachments[0].name.as_deref(),
            Some("Our spring menu")
        );
    }

    #[test]
    fn echoes_deliveries_reads_reactions_edits_postbacks() {
        let events = fixture("events.json");
        let echo = message(&events[0]);
        assert_eq!(echo.direction, Direction::Outgoing);
        assert_eq!(echo.participant.id, "24681357900000001");
        assert_eq!(echo.text, "Thanks!");
        assert!(
            matches!(&events[1].kind, InboundKind::Status { status: DeliveryStatus::Delivered, platform_message_id, .. } if platform_message_id == "m_sent_1")
        );
        assert!(
            matches!(&events[2].kind, InboundKind::Status { status: DeliveryStatus::Delivered, platform_message_id, .. } if platform_message_id == "m_sent_2")
        );
        assert!(matches!(
            &events[3].kind,
            InboundKind::ReadUpTo { platform_conversation_id, watermark }
                if platform_conversation_id == "24681357900000001" && *watermark == Timestamp::from_unix_millis(1_458_668_856_253)
        ));
        assert!(
            matches!(&events[4].kind, InboundKind::Reaction { emoji: Some(e), .. } if e == "❤️")
        );
        match &events[5].kind {
            InboundKind::Edited { message, .. } => {
                assert_eq!(message.text, "new text");
                assert_eq!(message.direction, Direction::Incoming);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(message(&events[6]).text, "Get Started");
        // A standby (handover) event is an ordinary message.
        assert_eq!(
            message(&events[7]).text,
            "while another app owns the thread"
        );
    }

    #[test]
    fn unknown_fields_types_and_objects_are_ignored() {
        let events = fixture("unknown.json");
        assert_eq!(events.len(), 4, "{events:#?}");
        // Unknown fields inside a known event change nothing.
        assert_eq!(message(&events[0]).text, "still a message");
        assert!(
            events[1..]
                .iter()
                .all(|e| matches!(e.kind, InboundKind::Ignored { .. }))
        );
    }

    #[test]
    fn batches_with_several_pages() {
        let events = fixture("batch.json");
        let pages: Vec<_> = events
            .iter()
            .map(|e| e.platform_account_id.clone().unwrap())
            .collect();
        assert_eq!(
            pages,
            ["104857600000001", "104857600000002", "104857600000001"]
        );
    }
}
