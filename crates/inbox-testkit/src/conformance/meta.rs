//! Cases the per-app webhook platforms (Meta) need beyond the rest: pushes name the account
//! they belong to (one webhook serves every account of the app), echoes of the account's own
//! sends come back as outgoing messages with the send's id (so the gateway stores one
//! message), and the platform's own messaging-window refusal is `MessagingWindowClosed`.

use inbox_core::{Direction, Error, InboundKind, InboundMode, Platform};

use super::{
    FakeControl, InboundContent,
    harness::{Inbox, connect, messages, not_applicable, text},
};

/// With two accounts on one per-app webhook, every event names its own account.
pub async fn per_app_pushes_name_their_account(platform: &dyn Platform, fake: &dyn FakeControl) {
    if !platform
        .capabilities()
        .inbound_modes
        .contains(&InboundMode::WebhookPerApp)
    {
        return not_applicable(
            platform,
            "per_app_pushes_name_their_account",
            "no per-app webhooks",
        );
    }
    let first = connect(platform, fake).await;
    let second = connect(platform, fake).await;
    let first_conversation = fake.seed_conversation(&first.seeded).await;
    let second_conversation = fake.seed_conversation(&second.seeded).await;
    let inbox = Inbox::open(platform, fake, &first, Some(InboundMode::WebhookPerApp)).await;
    fake.route_pushes_to(&second.seeded, inbox.url()).await;
    fake.push_inbound(
        &first.seeded,
        &first_conversation,
        InboundContent::Text("to the first".into()),
    )
    .await;
    fake.push_inbound(
        &second.seeded,
        &second_conversation,
        InboundContent::Text("to the second".into()),
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let events = inbox.parse_push(&inbox.next_push().await);
        for event in &events {
            if let InboundKind::Message(message) = &event.kind {
                seen.push((event.platform_account_id.clone(), message.text.clone()));
            }
        }
    }
    seen.sort();
    let mut expected = vec![
        (
            Some(first.context.platform_account_id.clone()),
            "to the first".to_owned(),
        ),
        (
            Some(second.context.platform_account_id.clone()),
            "to the second".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(seen, expected, "each event names its account");
}

/// The platform's echo of a send is an outgoing message with the send's id, to the participant.
pub async fn echoes_of_sends_are_outgoing(platform: &dyn Platform, fake: &dyn FakeControl) {
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let mut inbox = Inbox::open(platform, fake, &account, None).await;
    let sent = platform
        .send(&account.context, &conversation.target, &text("echo me"))
        .await
        .unwrap_or_else(|err| panic!("send failed: {err:?}"));
    if !fake
        .push_echo(&account.seeded, &conversation, &sent.platform_message_id)
        .await
    {
        return not_applicable(platform, "echoes_of_sends_are_outgoing", "no echoes");
    }
    let events = inbox.receive().await;
    let echo = messages(&events)
        .into_iter()
        .find(|m| m.platform_message_id == sent.platform_message_id)
        .unwrap_or_else(|| panic!("no echo of {} in {events:#?}", sent.platform_message_id));
    assert_eq!(echo.direction, Direction::Outgoing);
    assert_eq!(echo.participant.id, conversation.participant.id);
    assert_eq!(
        echo.platform_conversation_id,
        conversation.target.platform_conversation_id
    );
    assert_eq!(echo.text, "echo me");
}

/// When the platform itself says the window is closed, the send is `MessagingWindowClosed`.
pub async fn platform_window_refusals_are_window_closed(
    platform: &dyn Platform,
    fake: &dyn FakeControl,
) {
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    if !fake.close_window(&account.seeded, &conversation) {
        return not_applicable(
            platform,
            "platform_window_refusals_are_window_closed",
            "no messaging window",
        );
    }
    let result = platform
        .send(&account.context, &conversation.target, &text("too late"))
        .await;
    assert!(
        matches!(result, Err(Error::MessagingWindowClosed { .. })),
        "expected MessagingWindowClosed, got {result:?}"
    );
    assert!(fake.sent(&account.seeded).is_empty(), "nothing was sent");
}
