//! `parse_inbound` on every payload shape X delivers, from the JSON fixtures in
//! `tests/fixtures/` (Account Activity with its `users` map, X Activity `dm.received`, a polled
//! `GET /2/dm_events` page with includes), plus unmappable and malformed events.

use inbox_core::{AttachmentKind, Direction, InboundKind, InboundMessage, Platform, Timestamp};
use inbox_platform_x::{X, XConfig};

fn adapter() -> X {
    X::new(
        XConfig::builder("http://127.0.0.1:9", "client")
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

fn messages(name: &str) -> Vec<(Option<String>, InboundMessage)> {
    adapter()
        .parse_inbound(&fixture(name))
        .unwrap()
        .into_iter()
        .filter_map(|event| match event.kind {
            InboundKind::Message(message) => Some((event.platform_account_id, message)),
            _ => None,
        })
        .collect()
}

fn ignored(name: &str) -> Vec<String> {
    adapter()
        .parse_inbound(&fixture(name))
        .unwrap()
        .into_iter()
        .filter_map(|event| match event.kind {
            InboundKind::Ignored { reason } => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn account_activity_messages_take_names_from_the_users_map() {
    let found = messages("aaa_message.json");
    assert_eq!(found.len(), 1);
    let (account, message) = &found[0];
    assert_eq!(
        account.as_deref(),
        Some("4337869213"),
        "routed by for_user_id"
    );
    assert_eq!(message.platform_message_id, "954491830116155396");
    assert_eq!(message.platform_conversation_id, "3001969357-4337869213");
    assert_eq!(message.direction, Direction::Incoming);
    assert_eq!(message.text, "Hello World!");
    assert_eq!(message.sender.id, "3001969357");
    assert_eq!(message.sender.name, "Jordan B");
    assert_eq!(message.sender.username.as_deref(), Some("jordanb"));
    assert_eq!(
        message.sender.picture.as_deref(),
        Some("https://pbs.twimg.com/profile_images/x_normal.jpg")
    );
    assert_eq!(message.participant, message.sender);
    assert_eq!(
        message.timestamp,
        Timestamp::from_unix_millis(1_516_403_560_557)
    );
}

#[test]
fn account_activity_echoes_are_outgoing_in_the_same_conversation() {
    let found = messages("aaa_echo_with_media.json");
    let (_, message) = &found[0];
    assert_eq!(message.direction, Direction::Outgoing);
    assert_eq!(message.platform_conversation_id, "3001969357-4337869213");
    assert_eq!(message.sender.id, "4337869213");
    assert_eq!(message.participant.id, "3001969357");
    assert_eq!(message.participant.name, "Jordan B");
    assert_eq!(message.attachments.len(), 1);
    assert_eq!(message.attachments[0].kind, AttachmentKind::Image);
    assert_eq!(
        message.attachments[0].url,
        "x-dm-media:954491830116155400/954491800000000000/hVJQTwig.jpg"
    );
}

#[test]
fn other_account_activity_events_are_ignored() {
    assert_eq!(ignored("aaa_typing.json").len(), 1);
    assert_eq!(ignored("xaa_other_event.json").len(), 1);
}

#[test]
fn x_activity_dm_received_unwraps_users_data() {
    let found = messages("xaa_dm_received.json");
    let (account, message) = &found[0];
    assert_eq!(account.as_deref(), Some("1111111111111111111"));
    assert_eq!(message.platform_message_id, "2080765901528535096");
    assert_eq!(
        message.platform_conversation_id,
        "1111111111111111111-2222222222222222222"
    );
    assert_eq!(message.direction, Direction::Incoming);
    assert_eq!(message.sender.name, "OtherUser");
    assert_eq!(message.sender.username.as_deref(), Some("OtherUser"));
    assert_eq!(message.text, "hello!");
}

#[test]
fn polled_pages_map_messages_echoes_and_media_and_ignore_the_rest() {
    let events = adapter()
        .parse_inbound(&fixture("polled_page.json"))
        .unwrap();
    assert_eq!(events.len(), 6, "one event per DM event, none dropped");
    let found = messages("polled_page.json");
    assert_eq!(found.len(), 3);

    let (_, incoming) = &found[0];
    assert_eq!(incoming.direction, Direction::Incoming);
    assert_eq!(incoming.platform_conversation_id, "944480690-1234567890");
    assert_eq!(incoming.sender.name, "Alice");
    assert_eq!(incoming.sender.username.as_deref(), Some("alice"));
    assert_eq!(
        incoming.timestamp,
        Timestamp::parse_rfc3339("2026-01-02T03:04:05Z").unwrap()
    );
    assert_eq!(incoming.attachments[0].kind, AttachmentKind::Image);
    assert_eq!(
        incoming.attachments[0].url,
        "x-dm-media:1582838499983564800/1583157113245011970/abcDEF12.jpg"
    );

    let (_, echo) = &found[1];
    assert_eq!(echo.direction, Direction::Outgoing, "sender is the account");
    assert_eq!(echo.participant.id, "944480690");
    assert_eq!(echo.participant.name, "Alice");

    let (_, stranger) = &found[2];
    assert_eq!(
        stranger.sender.name, "777",
        "no includes entry: the id stands in"
    );

    let reasons = ignored("polled_page.json");
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("group")));
    assert!(reasons.iter().any(|r| r.contains("sender_id")));
    assert!(reasons.iter().any(|r| r.contains("ParticipantsJoin")));
}

#[test]
fn unparseable_payloads_are_errors() {
    let x = adapter();
    assert!(x.parse_inbound(b"not json").is_err());
    assert!(x.parse_inbound(br#"{"something":"else"}"#).is_err());
}
