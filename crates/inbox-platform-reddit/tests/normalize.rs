//! `parse_inbound` on polled Reddit payloads built from a real-shaped `/message/inbox` listing
//! (`tests/fixtures/`): threads grouped by `first_message_name`, echoes of the account's own
//! messages, and items that are not private messages.

use inbox_core::{Direction, InboundKind, InboundMessage, Platform, Timestamp};
use inbox_platform_reddit::{Reddit, RedditConfig};

fn adapter() -> Reddit {
    Reddit::new(
        RedditConfig::builder("cid", "linux:test.inboxgw:v0.1 (by /u/test)")
            .build()
            .unwrap(),
    )
    .unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn a_thread_is_one_conversation_keyed_by_its_root() {
    let events = adapter()
        .parse_inbound(&fixture("polled_payload.json"))
        .unwrap();
    assert_eq!(events.len(), 6, "one event per item, none dropped");
    let messages: Vec<&InboundMessage> = events
        .iter()
        .filter_map(|e| match &e.kind {
            InboundKind::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(messages.len(), 3);
    assert!(
        messages
            .iter()
            .all(|m| m.platform_conversation_id == "t4_2r17c8r"),
        "root and replies share the thread"
    );

    let root = messages[0];
    assert_eq!(root.platform_message_id, "t4_2r17c8r");
    assert_eq!(root.direction, Direction::Incoming);
    assert_eq!(root.sender.id, "alice_user");
    assert_eq!(root.sender.name, "alice_user");
    assert_eq!(root.participant.id, "alice_user");
    assert_eq!(root.text, "hello there");
    assert_eq!(root.timestamp, Timestamp::from_unix_seconds(1_747_841_818));
    assert_eq!(root.reply_to_platform_message_id, None);

    let echo = messages[1];
    assert_eq!(
        echo.direction,
        Direction::Outgoing,
        "author is the account (any case)"
    );
    assert_eq!(
        echo.participant.id, "alice_user",
        "the other party is `dest`"
    );
    assert_eq!(
        echo.reply_to_platform_message_id.as_deref(),
        Some("t4_2r17c8r")
    );

    let reply = messages[2];
    assert_eq!(reply.platform_message_id, "t4_2r17c8s");
    assert_eq!(
        reply.reply_to_platform_message_id.as_deref(),
        Some("t4_2r17c8q")
    );

    let ignored: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            InboundKind::Ignored { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ignored.len(), 3, "{ignored:?}");
    assert!(ignored.iter().any(|r| r.contains("no author")));
    assert!(ignored.iter().any(|r| r.contains("t1")));
    assert!(ignored.iter().any(|r| r.contains("malformed")));
}

#[test]
fn the_listing_fixture_is_what_reddit_lists() {
    // The polled payload keeps Reddit's items verbatim; the listing fixture is their source.
    let listing: serde_json::Value =
        serde_json::from_slice(&fixture("inbox_listing.json")).unwrap();
    let children = listing["data"]["children"].as_array().unwrap();
    assert_eq!(children.len(), 5);
    let wrapped = serde_json::json!({"account": "our_bot", "messages": children});
    let events = adapter()
        .parse_inbound(&serde_json::to_vec(&wrapped).unwrap())
        .unwrap();
    let threads: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            InboundKind::Message(m) => Some(m.platform_conversation_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(threads, ["t4_2r17c8r", "t4_2r17c8r", "t4_2r17c8r"]);
}

#[test]
fn unparseable_payloads_are_errors() {
    let reddit = adapter();
    assert!(reddit.parse_inbound(b"<html>").is_err());
    assert!(reddit.parse_inbound(br#"{"messages": []}"#).is_err());
    assert!(reddit.parse_inbound(br#"{"account": "x"}"#).is_err());
}
