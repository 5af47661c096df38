//! Sending: platform ids come back and match what inbound events later reference; replies
//! thread; the platform's own "too long" refusal is `MessageTooLong`.

use inbox_core::{Error, InboundKind, Platform, Timestamp};

use super::{
    FakeControl, InboundContent, Operation,
    harness::{Inbox, connect, messages, not_applicable, text},
};

/// A text send returns the id the platform gave the message.
pub async fn send_text_returns_a_platform_id(platform: &dyn Platform, fake: &dyn FakeControl) {
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let before = Timestamp::now();
    let sent = platform
        .send(
            &account.context,
            &conversation.target,
            &text("Hey! How can I help you today?"),
        )
        .await
        .unwrap_or_else(|err| panic!("send failed: {err:?}"));
    assert!(!sent.platform_message_id.is_empty());
    let day = std::time::Duration::from_secs(86_400);
    assert!(
        sent.timestamp + day > before && sent.timestamp < Timestamp::now() + day,
        "the timestamp is the platform's send time: {}",
        sent.timestamp
    );
    let records = fake.sent(&account.seeded);
    let record = records.last().expect("the platform recorded the message");
    assert_eq!(record.platform_message_id, sent.platform_message_id);
    assert_eq!(record.text, "Hey! How can I help you today?");
    assert!(record.attachments.is_empty());
}

/// The id a send returns is the id later inbound events (echo, edit, reply) use for it.
pub async fn sent_ids_match_later_inbound_references(
    platform: &dyn Platform,
    fake: &dyn FakeControl,
) {
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let mut inbox = Inbox::open(platform, fake, &account, None).await;
    let sent = platform
        .send(&account.context, &conversation.target, &text("ping"))
        .await
        .unwrap_or_else(|err| panic!("send failed: {err:?}"));
    fake.reference_sent(&account.seeded, &conversation, &sent.platform_message_id)
        .await;
    let events = inbox.receive().await;
    let id = sent.platform_message_id.as_str();
    let referenced = events.iter().any(|event| match &event.kind {
        InboundKind::Message(message) => {
            message.platform_message_id == id
                || message.reply_to_platform_message_id.as_deref() == Some(id)
        }
        InboundKind::Edited { message, .. } => message.platform_message_id == id,
        InboundKind::Status {
            platform_message_id,
            ..
        }
        | InboundKind::Deleted {
            platform_message_id,
            ..
        }
        | InboundKind::Reaction {
            platform_message_id,
            ..
        } => platform_message_id == id,
        _ => false,
    });
    assert!(referenced, "no inbound event references {id}: {events:#?}");
}

/// A reply to an inbound message carries the reply target to the platform.
pub async fn replies_thread_when_supported(platform: &dyn Platform, fake: &dyn FakeControl) {
    if !platform.capabilities().reply_threading {
        return not_applicable(
            platform,
            "replies_thread_when_supported",
            "no reply threading",
        );
    }
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let mut inbox = Inbox::open(platform, fake, &account, None).await;
    fake.push_inbound(
        &account.seeded,
        &conversation,
        InboundContent::Text("a question".into()),
    )
    .await;
    let events = inbox.receive().await;
    let question = messages(&events)
        .first()
        .map(|message| message.platform_message_id.clone())
        .expect("the question arrived");
    let mut answer = text("an answer");
    answer.reply_to_platform_message_id = Some(question.clone());
    let sent = platform
        .send(&account.context, &conversation.target, &answer)
        .await
        .unwrap_or_else(|err| panic!("reply failed: {err:?}"));
    let record = fake
        .sent(&account.seeded)
        .pop()
        .expect("the reply was recorded");
    assert_eq!(record.platform_message_id, sent.platform_message_id);
    assert_eq!(record.reply_to.as_deref(), Some(question.as_str()));
}

/// A text over the platform's limit, sent past the gateway's own check, is refused by the
/// platform and reported as `MessageTooLong` with the platform's limit.
pub async fn text_over_the_limit_is_message_too_long(
    platform: &dyn Platform,
    fake: &dyn FakeControl,
) {
    let limit = *platform
        .capabilities()
        .text_limits
        .iter()
        .min_by_key(|limit| limit.max)
        .expect("a text limit");
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    // ASCII measures the same in every unit.
    let long = "a".repeat(limit.max + 1);
    match platform
        .send(&account.context, &conversation.target, &text(&long))
        .await
    {
        Err(Error::MessageTooLong {
            platform: kind,
            limit: max,
            unit,
            actual,
        }) => {
            assert_eq!(kind, platform.kind());
            assert_eq!((max, unit), (limit.max, limit.unit));
            assert_eq!(actual, limit.max + 1);
        }
        other => panic!("expected MessageTooLong, got {other:?}"),
    }
    assert_eq!(
        fake.calls(Operation::Send),
        1,
        "the platform itself refused it, once"
    );
    assert!(fake.sent(&account.seeded).is_empty(), "nothing was sent");
}
