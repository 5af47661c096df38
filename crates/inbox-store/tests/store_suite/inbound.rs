//! Cases for `apply_inbound` and the two send-recording operations: what each kind of
//! inbound event stores and emits, and that repeats store and emit nothing.

use inbox_core::{
    Conversation, DeliveryStatus, Direction, EventType, InboundKind, Message, PageRequest,
    Participant, SentMessage,
};
use inbox_store::{
    AppliedInbound, ConversationFilter, NewSentMessage, NewStartedConversation, SortOrder,
};

use crate::support::*;

use std::sync::Arc;

use inbox_core::{Account, WorkspaceId};
use inbox_store::{Endpoint, Store};

/// A workspace with one account and a catch-all endpoint to observe events.
struct Scene {
    store: Arc<dyn Store>,
    ws: WorkspaceId,
    account: Account,
    hooks: Endpoint,
}

impl Scene {
    async fn new(db: &TestDb) -> Scene {
        let store = db.store.clone();
        let ws = workspace(&store, "acme").await;
        let account = account(&store, &ws, "100").await;
        let hooks = catch_all(&store, &ws).await;
        Scene {
            store,
            ws,
            account,
            hooks,
        }
    }

    async fn apply(&self, events: Vec<InboundKind>) -> AppliedInbound {
        apply(&self.store, &self.account, events).await
    }

    async fn events(&self) -> Vec<EventType> {
        event_types(&self.store, &self.ws, &self.hooks).await
    }

    async fn conversations(&self) -> Vec<Conversation> {
        self.store
            .list_conversations(
                &self.ws,
                &ConversationFilter::default(),
                &PageRequest::first(),
            )
            .await
            .unwrap()
            .data
    }

    async fn messages(&self, conversation: &Conversation) -> Vec<Message> {
        self.store
            .list_messages(
                &self.ws,
                &conversation.id,
                SortOrder::Asc,
                &PageRequest {
                    limit: 100,
                    after: None,
                },
            )
            .await
            .unwrap()
            .data
    }

    /// The payloads sent so far, parsed, oldest first (claims and completes them).
    async fn payloads(&self) -> Vec<serde_json::Value> {
        let mut claimed = claim_all(&self.store, "observer").await;
        claimed.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        for delivery in &claimed {
            let attempt = inbox_store::NewAttempt {
                attempted_at: inbox_core::Timestamp::now(),
                status_code: Some(200),
                error: None,
                duration_ms: 1,
                response_body: None,
            };
            self.store
                .record_attempt(
                    &delivery.delivery_id,
                    "observer",
                    &attempt,
                    inbox_store::DeliveryNext::Succeeded,
                )
                .await
                .unwrap();
        }
        claimed
            .iter()
            .map(|d| serde_json::from_str(&d.payload).unwrap())
            .collect()
    }

    fn sent(
        &self,
        conversation: &Conversation,
        platform_id: &str,
        text: &str,
        seconds: i64,
    ) -> NewSentMessage {
        NewSentMessage {
            account: self.account.clone(),
            conversation_id: conversation.id.clone(),
            text: text.into(),
            attachments: vec![],
            sender: person("bot", "The Business"),
            sent: SentMessage {
                platform_message_id: platform_id.into(),
                timestamp: at(seconds),
            },
            reply_to: None,
        }
    }
}

fn echo(thread: &str, platform_id: &str, text: &str, seconds: i64) -> InboundKind {
    InboundKind::Message(message(
        thread,
        platform_id,
        Direction::Outgoing,
        text,
        seconds,
    ))
}

fn status(platform_id: &str, status: DeliveryStatus) -> InboundKind {
    InboundKind::Status {
        platform_message_id: platform_id.into(),
        status,
        error: None,
        at: at(100),
    }
}

pub async fn a_first_message_starts_a_conversation(db: TestDb) {
    let scene = Scene::new(&db).await;
    let applied = scene
        .apply(vec![incoming("chat-1", "m1", "Hi, I have a question", 10)])
        .await;
    assert_eq!(
        applied,
        AppliedInbound {
            messages_created: 1,
            messages_updated: 0,
            events_recorded: 2,
            deliveries_queued: 2
        }
    );
    let conversation = scene.conversations().await.remove(0);
    assert_eq!(conversation.account_id, scene.account.id);
    assert_eq!(conversation.platform_conversation_id, "chat-1");
    assert_eq!(
        conversation.participant,
        person("user-chat-1", "User chat-1")
    );
    assert_eq!(
        conversation.last_message.as_deref(),
        Some("Hi, I have a question")
    );
    assert_eq!(conversation.last_message_at, Some(at(10)));
    assert_eq!(conversation.last_inbound_at, Some(at(10)));
    assert_eq!(conversation.unread_count, 1);
    assert_eq!(conversation.window_expires_at, None);

    let messages = scene.messages(&conversation).await;
    assert_eq!(messages.len(), 1);
    let first = &messages[0];
    assert_eq!(first.direction, Direction::Incoming);
    assert_eq!(first.delivery_status, None);
    assert_eq!(first.platform_message_id, "m1");
    assert_eq!(first.timestamp, at(10));
    assert_eq!(first.sender.id, "user-chat-1");
    assert_eq!(
        scene.store.get_message(&scene.ws, &first.id).await.unwrap(),
        *first
    );

    let payloads = scene.payloads().await;
    assert_eq!(payloads[0]["event"], "conversation.started");
    assert_eq!(
        payloads[0]["data"]["conversationId"],
        conversation.id.as_str()
    );
    assert_eq!(payloads[0]["data"]["messageId"], first.id.as_str());
    assert_eq!(payloads[1]["event"], "message.received");
    assert_eq!(payloads[1]["data"]["text"], "Hi, I have a question");
    assert_eq!(payloads[1]["data"]["platformMessageId"], "m1");

    // A second message in the thread: no new conversation, counters move on.
    let mut with_image = message("chat-1", "m2", Direction::Incoming, "", 20);
    with_image.attachments = vec![image()];
    scene.apply(vec![InboundKind::Message(with_image)]).await;
    let conversation = scene.conversations().await.remove(0);
    assert_eq!(conversation.last_message.as_deref(), Some("[image]"));
    assert_eq!(conversation.unread_count, 2);
    assert_eq!(conversation.last_inbound_at, Some(at(20)));
    // An older message arriving late does not replace the newer preview.
    scene
        .apply(vec![incoming("chat-1", "m0", "late and old", 5)])
        .await;
    let conversation = scene.conversations().await.remove(0);
    assert_eq!(conversation.last_message.as_deref(), Some("[image]"));
    assert_eq!(conversation.last_message_at, Some(at(20)));
    assert_eq!(conversation.unread_count, 3);
    assert_eq!(
        scene
            .messages(&conversation)
            .await
            .iter()
            .map(|m| m.platform_message_id.as_str())
            .collect::<Vec<_>>(),
        ["m0", "m1", "m2"]
    );
    assert_eq!(
        scene.events().await,
        [
            EventType::ConversationStarted,
            EventType::MessageReceived,
            EventType::MessageReceived,
            EventType::MessageReceived
        ]
    );
    let read = scene
        .store
        .mark_conversation_read(&scene.ws, &conversation.id)
        .await
        .unwrap();
    assert_eq!(read.unread_count, 0);
}

pub async fn a_redelivered_message_is_stored_and_announced_once(db: TestDb) {
    let scene = Scene::new(&db).await;
    let first = scene
        .apply(vec![
            incoming("chat-1", "m1", "hello", 1),
            incoming("chat-1", "m1", "hello", 1),
        ])
        .await;
    assert_eq!(first.messages_created, 1);
    assert_eq!(first.events_recorded, 2);
    let again = scene
        .apply(vec![incoming("chat-1", "m1", "hello", 1)])
        .await;
    assert_eq!(again, AppliedInbound::default());
    let conversation = scene.conversations().await.remove(0);
    assert_eq!(scene.messages(&conversation).await.len(), 1);
    assert_eq!(conversation.unread_count, 1);
    assert_eq!(
        scene.events().await,
        [EventType::ConversationStarted, EventType::MessageReceived]
    );
}

pub async fn an_echo_and_the_send_record_one_message_in_either_order(db: TestDb) {
    let scene = Scene::new(&db).await;
    scene.apply(vec![incoming("chat-1", "in-1", "hi", 1)]).await;
    let conversation = scene.conversations().await.remove(0);
    scene.payloads().await;

    // Send first, then its echo arrives.
    let sent = scene
        .store
        .record_sent_message(scene.sent(&conversation, "out-1", "Hello!", 2))
        .await
        .unwrap();
    assert_eq!(sent.direction, Direction::Outgoing);
    assert_eq!(sent.delivery_status, Some(DeliveryStatus::Sent));
    assert_eq!(sent.platform_message_id, "out-1");
    let echoed = scene
        .apply(vec![echo("chat-1", "out-1", "Hello!", 2)])
        .await;
    assert_eq!(echoed, AppliedInbound::default());

    // Echo first (sent from the platform's app, or it raced the API call), then the send.
    let applied = scene
        .apply(vec![echo("chat-1", "out-2", "From the app", 3)])
        .await;
    assert_eq!(applied.messages_created, 1);
    let recorded = scene
        .store
        .record_sent_message(scene.sent(&conversation, "out-2", "From the app", 3))
        .await
        .unwrap();
    let messages = scene.messages(&conversation).await;
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[2].id, recorded.id,
        "the send returns the echo's message"
    );
    assert_eq!(messages[1], sent);

    let payloads = scene.payloads().await;
    let types: Vec<_> = payloads
        .iter()
        .map(|p| p["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["message.sent", "message.sent"]);
    assert_eq!(payloads[0]["data"]["direction"], "outgoing");
    assert_eq!(payloads[0]["data"]["deliveryStatus"], "sent");

    let conversation = scene
        .store
        .get_conversation(&scene.ws, &conversation.id)
        .await
        .unwrap();
    assert_eq!(
        conversation.unread_count, 1,
        "outgoing messages are not unread"
    );
    assert_eq!(conversation.last_inbound_at, Some(at(1)));
    assert_eq!(conversation.last_message.as_deref(), Some("From the app"));
    assert_eq!(conversation.last_message_at, Some(at(3)));

    // A conversation of another account is not found for a send.
    let other = account(&scene.store, &scene.ws, "200").await;
    let mut wrong = scene.sent(&conversation, "out-3", "x", 4);
    wrong.account = other;
    assert!(matches!(
        scene.store.record_sent_message(wrong).await,
        Err(inbox_core::Error::NotFound {
            resource: "conversation",
            ..
        })
    ));
}

pub async fn edits_apply_only_when_content_changes(db: TestDb) {
    let scene = Scene::new(&db).await;
    scene.apply(vec![incoming("chat-1", "m1", "helo", 1)]).await;
    scene.payloads().await;
    let edited = |text: &str| InboundKind::Edited {
        message: message("chat-1", "m1", Direction::Incoming, text, 1),
        edited_at: at(50),
    };
    let applied = scene.apply(vec![edited("hello")]).await;
    assert_eq!(applied.messages_updated, 1);
    assert_eq!(applied.events_recorded, 1);
    let conversation = scene.conversations().await.remove(0);
    let message_now = scene.messages(&conversation).await.remove(0);
    assert_eq!(message_now.text, "hello");
    assert!(message_now.is_edited);
    let payloads = scene.payloads().await;
    assert_eq!(payloads.len(), 1);
    assert_eq!(payloads[0]["event"], "message.edited");
    assert_eq!(payloads[0]["data"]["text"], "hello");
    assert_eq!(payloads[0]["data"]["isEdited"], true);

    // The same edit again changes nothing.
    assert_eq!(
        scene.apply(vec![edited("hello")]).await,
        AppliedInbound::default()
    );
    // An edit of a message never seen stores it, edited, as a new message.
    let unseen = InboundKind::Edited {
        message: message(
            "chat-2",
            "m9",
            Direction::Incoming,
            "edited before we saw it",
            2,
        ),
        edited_at: at(60),
    };
    let applied = scene.apply(vec![unseen]).await;
    assert_eq!(applied.messages_created, 1);
    let payloads = scene.payloads().await;
    assert_eq!(
        payloads
            .iter()
            .map(|p| p["event"].clone())
            .collect::<Vec<_>>(),
        ["conversation.started", "message.received"]
    );
    assert_eq!(payloads[1]["data"]["isEdited"], true);
    assert_eq!(scene.events().await.len(), 5);
}

pub async fn deletions_and_reactions(db: TestDb) {
    let scene = Scene::new(&db).await;
    scene.apply(vec![incoming("chat-1", "m1", "oops", 1)]).await;
    scene.payloads().await;
    let delete = |id: &str| InboundKind::Deleted {
        platform_message_id: id.into(),
        at: at(5),
    };
    let applied = scene
        .apply(vec![delete("m1"), delete("m1"), delete("unknown")])
        .await;
    assert_eq!(applied.messages_updated, 1);
    assert_eq!(applied.events_recorded, 1);
    let conversation = scene.conversations().await.remove(0);
    assert!(scene.messages(&conversation).await[0].is_deleted);
    let payloads = scene.payloads().await;
    assert_eq!(payloads[0]["event"], "message.deleted");
    assert_eq!(payloads[0]["data"]["isDeleted"], true);

    let react = |id: &str, emoji: Option<&str>| InboundKind::Reaction {
        platform_message_id: id.into(),
        sender_id: "user-chat-1".into(),
        emoji: emoji.map(str::to_owned),
        at: at(6),
    };
    let applied = scene
        .apply(vec![
            react("m1", Some("❤️")),
            react("unknown", Some("👍")),
            react("m1", None),
        ])
        .await;
    assert_eq!(applied.events_recorded, 2);
    assert_eq!(applied.messages_updated, 0);
    let payloads = scene.payloads().await;
    assert_eq!(payloads[0]["event"], "reaction.received");
    assert_eq!(payloads[0]["data"]["reaction"], "❤️");
    assert_eq!(payloads[0]["data"]["sender"]["id"], "user-chat-1");
    assert_eq!(payloads[1]["data"]["reaction"], serde_json::Value::Null);
    // Ignored events do nothing, but the raw event is still marked processed.
    let raw = raw_event(&scene.store, &scene.account).await;
    let applied = scene
        .store
        .apply_inbound(
            &raw,
            &scene.account,
            vec![InboundKind::Ignored {
                reason: "group chat".into(),
            }],
        )
        .await
        .unwrap();
    assert_eq!(applied, AppliedInbound::default());
    let claimable = scene
        .store
        .claim_raw_events("w", 100, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert!(claimable.is_empty(), "applied raw events are processed");
}

pub async fn delivery_statuses_only_move_forward(db: TestDb) {
    let scene = Scene::new(&db).await;
    scene
        .apply(vec![
            echo("chat-1", "out-1", "one", 1),
            echo("chat-1", "out-2", "two", 2),
            incoming("chat-1", "in-1", "hi", 3),
        ])
        .await;
    scene.payloads().await;
    let applied = scene
        .apply(vec![
            status("out-1", DeliveryStatus::Delivered),
            status("out-1", DeliveryStatus::Sent),
            status("out-1", DeliveryStatus::Delivered),
            status("out-1", DeliveryStatus::Read),
            status("out-1", DeliveryStatus::Delivered),
            status("out-1", DeliveryStatus::Failed),
            status("in-1", DeliveryStatus::Read),
            status("unknown", DeliveryStatus::Read),
            InboundKind::Status {
                platform_message_id: "out-2".into(),
                status: DeliveryStatus::Failed,
                error: Some(("131047".into(), "Re-engagement message".into())),
                at: at(9),
            },
            status("out-2", DeliveryStatus::Read),
        ])
        .await;
    assert_eq!(applied.messages_updated, 3);
    let payloads = scene.payloads().await;
    let types: Vec<_> = payloads
        .iter()
        .map(|p| p["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["message.delivered", "message.read", "message.failed"]
    );
    assert_eq!(payloads[1]["data"]["deliveryStatus"], "read");
    assert_eq!(payloads[2]["data"]["error"]["code"], "131047");
    assert_eq!(
        payloads[2]["data"]["error"]["message"],
        "Re-engagement message"
    );
    let conversation = scene.conversations().await.remove(0);
    let statuses: Vec<_> = scene
        .messages(&conversation)
        .await
        .iter()
        .map(|m| m.delivery_status)
        .collect();
    assert_eq!(
        statuses,
        [
            Some(DeliveryStatus::Read),
            Some(DeliveryStatus::Failed),
            None
        ]
    );
}

pub async fn read_watermarks_mark_outgoing_messages_read(db: TestDb) {
    let scene = Scene::new(&db).await;
    scene
        .apply(vec![
            echo("chat-1", "out-1", "one", 1),
            echo("chat-1", "out-2", "two", 2),
            echo("chat-1", "out-3", "three", 3),
            incoming("chat-1", "in-1", "hi", 2),
            echo("chat-2", "other-1", "elsewhere", 1),
        ])
        .await;
    scene
        .apply(vec![status("out-2", DeliveryStatus::Delivered)])
        .await;
    scene.payloads().await;
    let watermark = InboundKind::ReadUpTo {
        platform_conversation_id: "chat-1".into(),
        watermark: at(2),
    };
    let applied = scene.apply(vec![watermark.clone()]).await;
    assert_eq!(applied.messages_updated, 2);
    let payloads = scene.payloads().await;
    assert_eq!(payloads.len(), 2);
    assert!(payloads.iter().all(|p| p["event"] == "message.read"));
    assert_eq!(payloads[0]["data"]["platformMessageId"], "out-1");
    assert_eq!(payloads[1]["data"]["platformMessageId"], "out-2");
    assert_eq!(
        scene.apply(vec![watermark]).await,
        AppliedInbound::default()
    );
    let unknown = InboundKind::ReadUpTo {
        platform_conversation_id: "nope".into(),
        watermark: at(9),
    };
    assert_eq!(scene.apply(vec![unknown]).await, AppliedInbound::default());
    let chat_1 = scene
        .conversations()
        .await
        .into_iter()
        .find(|c| c.platform_conversation_id == "chat-1")
        .unwrap();
    let statuses: Vec<_> = scene
        .messages(&chat_1)
        .await
        .iter()
        .map(|m| (m.platform_message_id.clone(), m.delivery_status))
        .collect();
    assert!(statuses.contains(&("out-3".into(), Some(DeliveryStatus::Sent))));
    assert!(statuses.contains(&("in-1".into(), None)));
}

pub async fn replies_link_and_participants_refresh(db: TestDb) {
    let scene = Scene::new(&db).await;
    scene
        .apply(vec![incoming("chat-1", "m1", "question", 1)])
        .await;
    let mut reply = message("chat-1", "m2", Direction::Outgoing, "answer", 2);
    reply.reply_to_platform_message_id = Some("m1".into());
    let mut dangling = message("chat-1", "m3", Direction::Incoming, "re: something old", 3);
    dangling.reply_to_platform_message_id = Some("never-seen".into());
    let renamed = Participant {
        name: "New Name".into(),
        picture: Some("https://x/p.jpg".into()),
        ..person("user-chat-1", "")
    };
    dangling.participant = renamed.clone();
    scene
        .apply(vec![
            InboundKind::Message(reply),
            InboundKind::Message(dangling),
        ])
        .await;

    let conversation = scene.conversations().await.remove(0);
    assert_eq!(conversation.participant, renamed);
    let messages = scene.messages(&conversation).await;
    assert_eq!(messages[1].reply_to, Some(messages[0].id.clone()));
    assert_eq!(messages[2].reply_to, None);
    assert_eq!(
        scene
            .store
            .get_conversation(&scene.ws, &conversation.id)
            .await
            .unwrap()
            .participant,
        renamed
    );
}

pub async fn starting_a_conversation_records_it_once(db: TestDb) {
    let scene = Scene::new(&db).await;
    let start = |platform_id: &str, seconds: i64| NewStartedConversation {
        account: scene.account.clone(),
        platform_conversation_id: "dm-42".into(),
        participant: person("42", "Forty Two"),
        text: "Hi there".into(),
        attachments: vec![image()],
        sender: person("bot", "The Business"),
        sent: SentMessage {
            platform_message_id: platform_id.into(),
            timestamp: at(seconds),
        },
    };
    let (conversation, message) = scene
        .store
        .record_started_conversation(start("s1", 1))
        .await
        .unwrap();
    assert_eq!(conversation.platform_conversation_id, "dm-42");
    assert_eq!(conversation.last_message.as_deref(), Some("Hi there"));
    assert_eq!(conversation.last_message_at, Some(at(1)));
    assert_eq!(conversation.last_inbound_at, None);
    assert_eq!(conversation.unread_count, 0);
    assert_eq!(message.conversation_id, conversation.id);
    assert_eq!(message.attachments, vec![image()]);
    assert_eq!(message.delivery_status, Some(DeliveryStatus::Sent));

    let (same, second) = scene
        .store
        .record_started_conversation(start("s2", 2))
        .await
        .unwrap();
    assert_eq!(same.id, conversation.id);
    assert_ne!(second.id, message.id);
    // Repeating the same platform message returns it without a second copy or event.
    let (_, repeated) = scene
        .store
        .record_started_conversation(start("s2", 2))
        .await
        .unwrap();
    assert_eq!(repeated.id, second.id);
    assert_eq!(
        scene.events().await,
        [
            EventType::ConversationStarted,
            EventType::MessageSent,
            EventType::MessageSent
        ]
    );
}
