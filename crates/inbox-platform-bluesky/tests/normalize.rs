//! `parse_inbound` on a polled Bluesky payload built from a `chat.bsky.convo.getLog` answer
//! (`tests/fixtures/get_log.json`): messages with names from `relatedProfiles` or the embedded
//! members, echoes of the account's own messages, deletions, and unknown or malformed entries.

use inbox_core::{Direction, InboundKind, Platform, Timestamp};
use inbox_platform_bluesky::{Bluesky, BlueskyConfig};
use serde_json::json;

fn adapter() -> Bluesky {
    Bluesky::new(
        BlueskyConfig::builder("http://127.0.0.1:9")
            .build()
            .unwrap(),
    )
    .unwrap()
}

fn payload() -> Vec<u8> {
    let page: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!(
            "{}/tests/fixtures/get_log.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    // As the poller stores it: the account's DID, when it polled, the entries, and the members
    // of the conversation whose entries lacked relatedProfiles.
    serde_json::to_vec(&json!({
        "did": "did:plc:bot123",
        "polledAt": "2026-01-02T03:10:00Z",
        "logs": page["logs"],
        "members": {"3ksn3qvbb2c2b": [
            {"did": "did:plc:bot123", "handle": "bot.bsky.social"},
            {"did": "did:plc:carol789", "handle": "carol.bsky.social", "displayName": ""}
        ]}
    }))
    .unwrap()
}

#[test]
fn log_entries_map_to_messages_echoes_and_deletions() {
    let events = adapter().parse_inbound(&payload()).unwrap();
    assert_eq!(events.len(), 9, "one event per entry, none dropped");
    let kinds: Vec<&InboundKind> = events.iter().map(|e| &e.kind).collect();

    let InboundKind::Message(incoming) = kinds[1] else {
        panic!("{:?}", kinds[1]);
    };
    assert_eq!(incoming.platform_conversation_id, "3ksn3qvaa2c2a");
    assert_eq!(incoming.platform_message_id, "3ksn3r5ct6k2a");
    assert_eq!(incoming.direction, Direction::Incoming);
    assert_eq!(incoming.sender.id, "did:plc:alice456");
    assert_eq!(incoming.sender.name, "Alice");
    assert_eq!(
        incoming.sender.username.as_deref(),
        Some("alice.bsky.social")
    );
    assert_eq!(
        incoming.sender.picture.as_deref(),
        Some("https://cdn.bsky.app/img/avatar/alice.jpg")
    );
    assert_eq!(incoming.text, "hi bot");
    assert_eq!(
        incoming.timestamp,
        Timestamp::parse_rfc3339("2026-01-02T03:04:05.678Z").unwrap()
    );

    let InboundKind::Message(echo) = kinds[2] else {
        panic!("{:?}", kinds[2]);
    };
    assert_eq!(
        echo.direction,
        Direction::Outgoing,
        "the sender is the account"
    );
    assert_eq!(echo.sender.id, "did:plc:bot123");
    assert_eq!(
        echo.participant.id, "did:plc:alice456",
        "named by another entry of the convo"
    );
    assert_eq!(echo.participant.name, "Alice");
    assert_eq!(
        echo.reply_to_platform_message_id.as_deref(),
        Some("3ksn3r5ct6k2a")
    );

    let InboundKind::Message(carol) = kinds[3] else {
        panic!("{:?}", kinds[3]);
    };
    assert_eq!(
        carol.sender.name, "carol.bsky.social",
        "members give the handle"
    );

    assert!(matches!(
        kinds[4],
        InboundKind::Deleted { platform_message_id, at }
            if platform_message_id == "3ksn3zzzzzz2a"
                && *at == Timestamp::parse_rfc3339("2026-01-02T03:10:00Z").unwrap()
    ));
    for index in [0, 5, 6, 7, 8] {
        assert!(
            matches!(kinds[index], InboundKind::Ignored { .. }),
            "entry {index}: {:?}",
            kinds[index]
        );
    }
}

#[test]
fn an_echo_without_any_names_is_ignored_not_misattributed() {
    let payload = json!({
        "did": "did:plc:bot123",
        "logs": [{"$type": "chat.bsky.convo.defs#logCreateMessage", "rev": "1", "convoId": "c1",
                  "message": {"id": "m1", "text": "x", "sender": {"did": "did:plc:bot123"},
                              "sentAt": "2026-01-02T03:05:00Z"}}]
    });
    let events = adapter()
        .parse_inbound(&serde_json::to_vec(&payload).unwrap())
        .unwrap();
    assert!(matches!(events[0].kind, InboundKind::Ignored { .. }));
}

#[test]
fn unparseable_payloads_are_errors() {
    let bluesky = adapter();
    assert!(bluesky.parse_inbound(b"nope").is_err());
    assert!(bluesky.parse_inbound(br#"{"logs": []}"#).is_err());
    assert!(bluesky.parse_inbound(br#"{"did": "did:plc:x"}"#).is_err());
}
