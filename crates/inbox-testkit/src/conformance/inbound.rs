//! Inbound: pushes are verified before anything else and parsed into normalised messages;
//! polls return each event once; redelivered events parse to the same platform ids, which is
//! what the gateway deduplicates on.

use std::collections::HashSet;

use inbox_core::{AccountContext, Direction, Error, InboundMode, Platform};
use secrecy::SecretString;

use super::{
    FakeControl, InboundContent,
    harness::{Inbox, connect, messages, not_applicable},
};

fn webhook_mode(platform: &dyn Platform) -> Option<InboundMode> {
    platform
        .capabilities()
        .inbound_modes
        .iter()
        .copied()
        .find(|mode| *mode != InboundMode::Polling)
}

/// A genuine push verifies and parses; forged ones are rejected.
pub async fn webhook_pushes_are_verified_then_parsed(
    platform: &dyn Platform,
    fake: &dyn FakeControl,
) {
    let Some(mode) = webhook_mode(platform) else {
        return not_applicable(
            platform,
            "webhook_pushes_are_verified_then_parsed",
            "no webhooks",
        );
    };
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let inbox = Inbox::open(platform, fake, &account, Some(mode)).await;
    fake.push_inbound(
        &account.seeded,
        &conversation,
        InboundContent::Text("hello from conformance".into()),
    )
    .await;
    let push = inbox.next_push().await;

    let forgeries = fake.forge(&push);
    assert!(
        !forgeries.is_empty(),
        "the fake must offer forgeries to reject"
    );
    for (what, forged) in forgeries {
        let result = inbox.verify(&forged);
        assert!(
            matches!(result, Err(Error::WebhookVerification { .. })),
            "{what}: expected WebhookVerification, got {result:?}"
        );
    }
    if mode == InboundMode::WebhookPerAccount {
        let result = platform.verify_webhook(&push.request(), None);
        assert!(
            matches!(result, Err(Error::WebhookVerification { .. })),
            "no account: {result:?}"
        );
        let other = AccountContext {
            inbound_secret: Some(SecretString::from("another_accounts_secret")),
            ..account.context.clone()
        };
        let result = platform.verify_webhook(&push.request(), Some(&other));
        assert!(
            matches!(result, Err(Error::WebhookVerification { .. })),
            "another account's secret: {result:?}"
        );
    }

    let events = inbox.parse_push(&push);
    let found = messages(&events);
    let message = found
        .first()
        .unwrap_or_else(|| panic!("no message in {events:#?}"));
    assert_eq!(message.text, "hello from conformance");
    assert_eq!(message.direction, Direction::Incoming);
    assert_eq!(
        message.platform_conversation_id,
        conversation.target.platform_conversation_id
    );
    assert_eq!(message.sender.id, conversation.participant.id);
    assert_eq!(message.participant.id, conversation.participant.id);
    assert_eq!(message.sender.name, conversation.participant.name);
    assert!(!message.platform_message_id.is_empty());
}

/// Polls return each message once, and a cursor never brings back what came before it.
pub async fn polling_returns_each_update_once(platform: &dyn Platform, fake: &dyn FakeControl) {
    if !platform
        .capabilities()
        .inbound_modes
        .contains(&InboundMode::Polling)
    {
        return not_applicable(platform, "polling_returns_each_update_once", "no polling");
    }
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let mut inbox = Inbox::open(platform, fake, &account, Some(InboundMode::Polling)).await;
    let push = |text: &'static str| {
        fake.push_inbound(
            &account.seeded,
            &conversation,
            InboundContent::Text(text.into()),
        )
    };

    let mut seen = Vec::new();
    // Whether a cursor-less poll returns what is already waiting is the platform's choice;
    // either way nothing may come twice.
    push("first").await;
    let events = inbox.poll().await;
    seen.extend(
        messages(&events)
            .iter()
            .map(|m| (m.platform_message_id.clone(), m.text.clone())),
    );
    let cursor_after_first = inbox.cursor.clone();

    push("second").await;
    push("third").await;
    let events = inbox.poll().await;
    let texts: Vec<_> = messages(&events).iter().map(|m| m.text.clone()).collect();
    assert!(
        texts.ends_with(&["second".to_owned(), "third".to_owned()]),
        "the next poll returns the new messages in order: {texts:?}"
    );
    seen.extend(
        messages(&events)
            .iter()
            .map(|m| (m.platform_message_id.clone(), m.text.clone())),
    );

    push("fourth").await;
    let events = inbox.poll().await;
    let texts: Vec<_> = messages(&events).iter().map(|m| m.text.clone()).collect();
    assert_eq!(texts, ["fourth"], "only what is new since the cursor");
    seen.extend(
        messages(&events)
            .iter()
            .map(|m| (m.platform_message_id.clone(), m.text.clone())),
    );

    let cursor = inbox.cursor.clone();
    assert!(
        cursor.is_some(),
        "a poll that returned messages gives a cursor"
    );
    let events = inbox.poll().await;
    assert!(messages(&events).is_empty(), "nothing new: {events:#?}");
    assert!(inbox.cursor.is_some(), "an empty poll keeps a cursor");

    let ids: HashSet<_> = seen.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids.len(), seen.len(), "no message came twice: {seen:?}");
    assert!(cursor_after_first.is_some() || seen.iter().all(|(_, text)| text != "first"));
}

/// The same event delivered twice parses to the same platform message ids.
pub async fn redelivery_parses_to_the_same_ids(platform: &dyn Platform, fake: &dyn FakeControl) {
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let ids = |events: &[inbox_core::InboundEvent]| -> Vec<String> {
        messages(events)
            .iter()
            .map(|m| m.platform_message_id.clone())
            .collect()
    };
    if let Some(mode) = webhook_mode(platform) {
        let inbox = Inbox::open(platform, fake, &account, Some(mode)).await;
        fake.push_inbound(
            &account.seeded,
            &conversation,
            InboundContent::Text("twice".into()),
        )
        .await;
        let first = inbox.parse_push(&inbox.next_push().await);
        fake.redeliver_last(&account.seeded).await;
        let second = inbox.parse_push(&inbox.next_push().await);
        assert!(!ids(&first).is_empty(), "the push carried a message");
        assert_eq!(ids(&first), ids(&second));
    } else {
        let mut inbox = Inbox::open(platform, fake, &account, Some(InboundMode::Polling)).await;
        inbox.poll().await;
        let cursor = inbox.cursor.clone();
        fake.push_inbound(
            &account.seeded,
            &conversation,
            InboundContent::Text("twice".into()),
        )
        .await;
        let first = inbox.poll().await;
        // Polling again from the same cursor is how a crashed poller sees events again.
        inbox.cursor = cursor;
        let second = inbox.poll().await;
        assert!(!ids(&first).is_empty(), "the poll returned the message");
        assert_eq!(ids(&first), ids(&second));
    }
}

/// A backlog larger than a page arrives complete, in order, and once, however many polls it
/// takes: a cursor never skips or repeats.
pub async fn backlogs_arrive_complete_in_order_once(
    platform: &dyn Platform,
    fake: &dyn FakeControl,
) {
    if !platform
        .capabilities()
        .inbound_modes
        .contains(&InboundMode::Polling)
    {
        return not_applicable(
            platform,
            "backlogs_arrive_complete_in_order_once",
            "no polling",
        );
    }
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let mut inbox = Inbox::open(platform, fake, &account, Some(InboundMode::Polling)).await;
    let sent: Vec<String> = (0..130).map(|n| format!("backlog {n:03}")).collect();
    for text in &sent {
        fake.push_inbound(
            &account.seeded,
            &conversation,
            InboundContent::Text(text.clone()),
        )
        .await;
    }
    let mut received = Vec::new();
    for _ in 0..20 {
        let events = inbox.poll().await;
        let found = messages(&events);
        if found.is_empty() && received.len() >= sent.len() {
            break;
        }
        received.extend(found.iter().map(|m| m.text.clone()));
    }
    assert_eq!(received, sent, "every message once, oldest first");
}
