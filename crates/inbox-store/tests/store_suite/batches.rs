//! Cases for `apply_inbound_batch`: a batch of claimed raw events ends exactly as applying
//! them one at a time would, a failing item is rolled back alone and retried later, and
//! redeliveries inside one batch or across batches store one message.

use std::{collections::HashMap, sync::Arc, time::Duration};

use inbox_core::{
    Account, AccountId, DeliveryStatus, Direction, EventType, InboundKind, Participant, RawEventId,
    WorkspaceId,
};
use inbox_store::{
    AppliedInbound, ConversationFilter, InboundItem, RoutedEvents, SortOrder, Store,
};

use crate::support::*;

/// Stores one raw event per entry of `batch` and claims them all, as the processor does
/// (`lease` decides when an item left unprocessed may be claimed again).
async fn claimed_items(
    store: &Arc<dyn Store>,
    account: &Account,
    batch: &[Vec<InboundKind>],
    lease: Duration,
) -> Vec<InboundItem> {
    let mut raws = Vec::new();
    for _ in batch {
        raws.push(raw_event(store, account).await);
    }
    let claimed = store
        .claim_raw_events("batcher", 1_000, lease)
        .await
        .unwrap();
    assert_eq!(
        claimed.len(),
        batch.len(),
        "every stored raw event is claimed"
    );
    raws.into_iter()
        .zip(batch)
        .map(|(raw, events)| item(raw, account, events.clone()))
        .collect()
}

fn item(raw: RawEventId, account: &Account, events: Vec<InboundKind>) -> InboundItem {
    InboundItem {
        raw,
        routed: vec![RoutedEvents {
            account: account.clone(),
            events,
        }],
        error: None,
    }
}

fn edited(thread: &str, platform_id: &str, text: &str, seconds: i64) -> InboundKind {
    InboundKind::Edited {
        message: message(thread, platform_id, Direction::Incoming, text, seconds),
        edited_at: at(seconds + 1),
    }
}

/// A busy stretch of inbound traffic over five threads, one entry per raw event: more rows of
/// each kind than one multi-row statement carries, late and equally old messages, a
/// redelivery, echoes and their statuses, edits (of a message of the same batch and of one
/// never seen), a deletion, reactions, a reply, a read watermark, a renamed participant and an
/// attachment-only message.
fn busy_traffic() -> Vec<Vec<InboundKind>> {
    let mut batch: Vec<Vec<InboundKind>> = (0..45)
        .map(|i| {
            let thread = format!("chat-{}", i % 5);
            // Every seventh message is late: older than what its thread already has.
            let seconds = if i % 7 == 6 { i - 5 } else { i };
            vec![incoming(
                &thread,
                &format!("m{i}"),
                &format!("hello {i}"),
                seconds,
            )]
        })
        .collect();
    batch.push(vec![incoming("chat-1", "m11", "hello 11", 11)]);
    batch.push(vec![incoming("chat-2", "tie", "as new as m42", 42)]);
    batch.push(vec![
        InboundKind::Message(message(
            "chat-0",
            "out-1",
            Direction::Outgoing,
            "our answer",
            50,
        )),
        InboundKind::Message(message(
            "chat-0",
            "out-2",
            Direction::Outgoing,
            "and more",
            51,
        )),
    ]);
    batch.push(vec![InboundKind::Status {
        platform_message_id: "out-1".into(),
        status: DeliveryStatus::Delivered,
        error: None,
        at: at(52),
    }]);
    batch.push(vec![edited("chat-3", "m3", "hello 3, edited", 3)]);
    batch.push(vec![edited("chat-9", "m-unseen", "edited first", 53)]);
    batch.push(vec![InboundKind::Deleted {
        platform_message_id: "m4".into(),
        at: at(54),
    }]);
    batch.push(vec![InboundKind::Reaction {
        platform_message_id: "m5".into(),
        sender_id: "user-chat-0".into(),
        emoji: Some("👍".into()),
        at: at(55),
    }]);
    let mut reply = message(
        "chat-0",
        "m-reply",
        Direction::Incoming,
        "re: our answer",
        56,
    );
    reply.reply_to_platform_message_id = Some("out-1".into());
    batch.push(vec![InboundKind::Message(reply)]);
    batch.push(vec![InboundKind::ReadUpTo {
        platform_conversation_id: "chat-0".into(),
        watermark: at(51),
    }]);
    let mut renamed = message("chat-2", "m-renamed", Direction::Incoming, "new name", 57);
    renamed.participant = Participant {
        name: "Renamed".into(),
        ..renamed.participant
    };
    batch.push(vec![InboundKind::Message(renamed)]);
    let mut picture = message("chat-4", "m-picture", Direction::Incoming, "", 58);
    picture.attachments = vec![image()];
    batch.push(vec![InboundKind::Message(picture)]);
    batch
}

/// Everything a workspace's conversations and messages say, without ids or write times, so
/// two workspaces fed the same traffic compare equal.
async fn contents(store: &Arc<dyn Store>, ws: &WorkspaceId) -> Vec<String> {
    let mut conversations = store
        .list_conversations(
            ws,
            &ConversationFilter::default(),
            &inbox_core::PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap()
        .data;
    conversations.sort_by(|a, b| a.platform_conversation_id.cmp(&b.platform_conversation_id));
    let mut lines = Vec::new();
    for conversation in conversations {
        lines.push(format!(
            "{} {:?} last={:?} at={:?} inbound={:?} unread={}",
            conversation.platform_conversation_id,
            conversation.participant,
            conversation.last_message,
            conversation.last_message_at,
            conversation.last_inbound_at,
            conversation.unread_count
        ));
        let messages = store
            .list_messages(
                ws,
                &conversation.id,
                SortOrder::Asc,
                &inbox_core::PageRequest {
                    limit: 100,
                    after: None,
                },
            )
            .await
            .unwrap()
            .data;
        let platform_ids: HashMap<_, _> = messages
            .iter()
            .map(|m| (m.id.clone(), m.platform_message_id.clone()))
            .collect();
        for m in &messages {
            lines.push(format!(
                "  {} {:?} {:?} {:?} edited={} deleted={} {:?} at={:?} reply_to={:?} from={:?}",
                m.platform_message_id,
                m.direction,
                m.text,
                m.attachments,
                m.is_edited,
                m.is_deleted,
                m.delivery_status,
                m.timestamp,
                m.reply_to.as_ref().map(|id| platform_ids.get(id)),
                m.sender
            ));
        }
    }
    lines
}

pub async fn a_batch_ends_as_applying_its_raw_events_one_at_a_time(db: TestDb) {
    let store = db.store.clone();
    let one_ws = workspace(&store, "one-at-a-time").await;
    let one = account(&store, &one_ws, "100").await;
    let one_hooks = catch_all(&store, &one_ws).await;
    let traffic = busy_traffic();
    let mut one_by_one = Vec::new();
    for events in &traffic {
        one_by_one.push(apply(&store, &one, events.clone()).await);
    }
    let expected = contents(&store, &one_ws).await;
    assert!(expected.len() > 50, "{expected:#?}");
    let events = event_types(&store, &one_ws, &one_hooks).await;
    assert_eq!(
        events
            .iter()
            .filter(|t| **t == EventType::ConversationStarted)
            .count(),
        6
    );

    // The same traffic as one batch; then again with a failing item in its middle, which
    // makes the store apply the batch item by item.
    for (name, with_failure) in [("batched", false), ("item-by-item", true)] {
        let ws = workspace(&store, name).await;
        let batched = account(&store, &ws, &format!("{}", 200 + usize::from(with_failure))).await;
        let hooks = catch_all(&store, &ws).await;
        let wake = store.deliveries_notify();
        // Take any wake-up earlier commits left, to see the batch's own.
        let _ = tokio::time::timeout(Duration::from_millis(10), wake.notified()).await;
        let mut items = claimed_items(&store, &batched, &traffic, Duration::from_secs(60)).await;
        if with_failure {
            let gone = Account {
                id: AccountId::new(),
                ..batched.clone()
            };
            let raw = raw_event(&store, &batched).await;
            items.insert(20, item(raw, &gone, traffic[0].clone()));
        }
        let mut outcomes = store.apply_inbound_batch(items).await.unwrap();
        if with_failure {
            assert!(outcomes.remove(20).is_err());
        }
        let applied: Vec<AppliedInbound> = outcomes.into_iter().map(Result::unwrap).collect();
        assert_eq!(applied, one_by_one, "{name}: each item reports what it did");
        assert!(
            applied
                .iter()
                .all(|a| a.events_recorded == a.deliveries_queued)
        );
        tokio::time::timeout(Duration::from_secs(5), wake.notified())
            .await
            .expect("a batch that queued deliveries wakes the worker");
        assert_eq!(contents(&store, &ws).await, expected, "{name}");
        assert_eq!(event_types(&store, &ws, &hooks).await, events, "{name}");
    }

    // Every raw event applied is processed; only the failed one is left.
    assert_eq!(
        db.raw_texts("SELECT id FROM raw_events WHERE processed_at IS NULL OR error IS NOT NULL")
            .await
            .len(),
        1
    );
}

pub async fn a_failing_item_is_rolled_back_alone_and_retried(db: TestDb) {
    let store = db.store.clone();
    let ws = workspace(&store, "acme").await;
    let good = account(&store, &ws, "100").await;
    let hooks = catch_all(&store, &ws).await;
    // An account whose row is gone: its conversation cannot be inserted (foreign key).
    let gone = Account {
        id: AccountId::new(),
        ..good.clone()
    };
    let traffic: Vec<Vec<InboundKind>> = (0..6)
        .map(|i| vec![incoming(&format!("chat-{i}"), &format!("m{i}"), "hi", i)])
        .collect();
    let mut items = Vec::new();
    for (index, events) in traffic.iter().enumerate() {
        let raw = raw_event(&store, &good).await;
        let to = if index == 2 { &gone } else { &good };
        items.push(item(raw, to, events.clone()));
    }
    // Unroutable payloads are acknowledged and dropped, with the reason kept.
    items.push(InboundItem {
        raw: raw_event(&store, &good).await,
        routed: vec![],
        error: Some("no connected account for 999".into()),
    });
    // A short lease, so that what stays unprocessed is claimable again at once.
    let claimed = store
        .claim_raw_events("batcher", 100, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 7);

    let outcomes = store.apply_inbound_batch(items.clone()).await.unwrap();
    assert_eq!(outcomes.len(), 7);
    assert!(outcomes[2].is_err(), "{:?}", outcomes[2]);
    for (index, outcome) in outcomes.iter().enumerate() {
        if index != 2 {
            let applied = outcome.as_ref().unwrap();
            let created = usize::from(index < 6);
            assert_eq!(applied.messages_created, created, "item {index}");
        }
    }
    assert_eq!(
        db.raw_texts("SELECT error FROM raw_events WHERE error IS NOT NULL")
            .await,
        ["no connected account for 999"]
    );
    let threads: Vec<String> = store
        .list_conversations(
            &ws,
            &ConversationFilter::default(),
            &inbox_core::PageRequest::first(),
        )
        .await
        .unwrap()
        .data
        .into_iter()
        .map(|c| c.platform_conversation_id)
        .collect();
    assert_eq!(threads.len(), 5);
    assert!(!threads.contains(&"chat-2".to_owned()));
    assert_eq!(event_types(&store, &ws, &hooks).await.len(), 10);

    // The failed item was rolled back, stays unprocessed and is claimed again once its lease
    // is over; applied with its account, it goes through like the others.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let retried = store
        .claim_raw_events("batcher", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].id, items[2].raw);
    assert_eq!(retried[0].attempts, 1);
    let again = item(retried[0].id.clone(), &good, traffic[2].clone());
    let outcome = store.apply_inbound_batch(vec![again]).await.unwrap();
    assert_eq!(outcome[0].as_ref().unwrap().messages_created, 1);
    assert_eq!(event_types(&store, &ws, &hooks).await.len(), 12);

    // A lone item that fails reports it the same way, and `apply_inbound` fails as before.
    let lone = raw_event(&store, &good).await;
    let outcome = store
        .apply_inbound_batch(vec![item(lone.clone(), &gone, traffic[0].clone())])
        .await
        .unwrap();
    assert!(outcome[0].is_err());
    assert!(
        store
            .apply_inbound(&lone, &gone, traffic[3].clone())
            .await
            .is_err()
    );
    assert_eq!(store.apply_inbound_batch(vec![]).await.unwrap().len(), 0);
}

pub async fn redeliveries_in_one_batch_and_across_batches_store_one_message(db: TestDb) {
    let store = db.store.clone();
    let ws = workspace(&store, "acme").await;
    let account = account(&store, &ws, "100").await;
    let hooks = catch_all(&store, &ws).await;
    let hello = || vec![incoming("chat-1", "m1", "hello", 1)];
    let first = vec![
        hello(),
        vec![incoming("chat-1", "m2", "again", 2)],
        hello(),
        vec![
            incoming("chat-1", "m1", "hello", 1),
            incoming("chat-1", "m1", "hello", 1),
        ],
    ];
    let items = claimed_items(&store, &account, &first, Duration::from_secs(60)).await;
    let created: Vec<usize> = store
        .apply_inbound_batch(items)
        .await
        .unwrap()
        .into_iter()
        .map(|outcome| outcome.unwrap().messages_created)
        .collect();
    assert_eq!(created, [1, 1, 0, 0]);

    let second = vec![hello(), vec![incoming("chat-1", "m3", "third", 3)], hello()];
    let items = claimed_items(&store, &account, &second, Duration::from_secs(60)).await;
    let created: Vec<usize> = store
        .apply_inbound_batch(items)
        .await
        .unwrap()
        .into_iter()
        .map(|outcome| outcome.unwrap().messages_created)
        .collect();
    assert_eq!(created, [0, 1, 0]);

    let conversation = store
        .list_conversations(
            &ws,
            &ConversationFilter::default(),
            &inbox_core::PageRequest::first(),
        )
        .await
        .unwrap()
        .data
        .remove(0);
    assert_eq!(conversation.unread_count, 3);
    assert_eq!(conversation.last_message.as_deref(), Some("third"));
    let messages = store
        .list_messages(
            &ws,
            &conversation.id,
            SortOrder::Asc,
            &inbox_core::PageRequest::first(),
        )
        .await
        .unwrap()
        .data;
    let platform_ids: Vec<_> = messages
        .iter()
        .map(|m| m.platform_message_id.as_str())
        .collect();
    assert_eq!(platform_ids, ["m1", "m2", "m3"]);
    assert_eq!(
        event_types(&store, &ws, &hooks).await,
        [
            EventType::ConversationStarted,
            EventType::MessageReceived,
            EventType::MessageReceived,
            EventType::MessageReceived
        ]
    );
}
