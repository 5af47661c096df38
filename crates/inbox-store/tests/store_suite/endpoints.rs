//! Cases for webhook endpoints and the outbox: CRUD and tenancy, which endpoints an event
//! fans out to, that nothing is queued for a change that did not happen, and secret rotation.

use std::time::Duration;

use inbox_core::{Error, Event, EventType, PageRequest, PlatformKind};
use inbox_store::EndpointPatch;
use secrecy::{ExposeSecret, SecretString};

use crate::support::*;

pub async fn endpoints_crud_and_tenancy(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let other = workspace(store, "other").await;
    let mut created = Vec::new();
    for n in 0..3 {
        let mut new = new_endpoint(vec![EventType::MessageReceived], true, "whsec_a");
        new.description = format!("endpoint {n}");
        created.push(store.create_endpoint(&ws, new).await.unwrap());
    }
    store
        .create_endpoint(&other, new_endpoint(vec![], true, "whsec_b"))
        .await
        .unwrap();
    let first = &created[0];
    assert_eq!(first.events, vec![EventType::MessageReceived]);
    assert!(first.enabled);
    assert_eq!(store.get_endpoint(&ws, &first.id).await.unwrap(), *first);

    let pages = collect_pages(2, |page| {
        let (store, ws) = (store.clone(), ws.clone());
        async move { store.list_endpoints(&ws, &page).await.unwrap() }
    })
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(pages.concat(), created, "oldest first");

    let patch = EndpointPatch {
        url: Some("https://new.example/hook".into()),
        events: Some(vec![]),
        description: None,
        enabled: Some(false),
    };
    let updated = store.update_endpoint(&ws, &first.id, patch).await.unwrap();
    assert_eq!(updated.url, "https://new.example/hook");
    assert!(updated.events.is_empty());
    assert_eq!(updated.description, "endpoint 0");
    assert!(!updated.enabled);
    assert_eq!(store.get_endpoint(&ws, &first.id).await.unwrap(), updated);

    let not_found = |result: Result<(), Error>| {
        assert!(
            matches!(
                result,
                Err(Error::NotFound {
                    resource: "webhook endpoint",
                    ..
                })
            ),
            "{result:?}"
        )
    };
    not_found(store.get_endpoint(&other, &first.id).await.map(drop));
    not_found(
        store
            .update_endpoint(&other, &first.id, EndpointPatch::default())
            .await
            .map(drop),
    );
    not_found(store.delete_endpoint(&other, &first.id).await);
    not_found(
        store
            .rotate_endpoint_secret(
                &other,
                &first.id,
                SecretString::from("whsec_x"),
                Duration::ZERO,
            )
            .await
            .map(drop),
    );
    not_found(
        store
            .list_deliveries(&other, &first.id, &PageRequest::first())
            .await
            .map(drop),
    );
    not_found(store.record_test_event(&other, &first.id).await.map(drop));
    not_found(
        store
            .recover_deliveries(&other, &first.id, at(0), at(10))
            .await
            .map(drop),
    );

    store.delete_endpoint(&ws, &first.id).await.unwrap();
    not_found(store.get_endpoint(&ws, &first.id).await.map(drop));
    not_found(store.delete_endpoint(&ws, &first.id).await);
    let remaining = store
        .list_endpoints(&ws, &PageRequest::first())
        .await
        .unwrap()
        .data;
    assert_eq!(remaining, created[1..].to_vec());
}

pub async fn events_fan_out_to_subscribed_enabled_endpoints_only(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let other = workspace(store, "other").await;
    let all = catch_all(store, &ws).await;
    let received_only = store
        .create_endpoint(
            &ws,
            new_endpoint(vec![EventType::MessageReceived], true, "whsec_r"),
        )
        .await
        .unwrap();
    let disabled = store
        .create_endpoint(&ws, new_endpoint(vec![], false, "whsec_d"))
        .await
        .unwrap();
    let deleted = store
        .create_endpoint(&ws, new_endpoint(vec![], true, "whsec_x"))
        .await
        .unwrap();
    store.delete_endpoint(&ws, &deleted.id).await.unwrap();
    let elsewhere = catch_all(store, &other).await;

    let account = account(store, &ws, "100").await; // account.connected: `all` only
    let applied = apply(store, &account, vec![incoming("chat-1", "m1", "hi", 1)]).await;
    // conversation.started → all; message.received → all + received_only.
    assert_eq!(applied.events_recorded, 2);
    assert_eq!(applied.deliveries_queued, 3);
    let event = Event::new(
        ws.clone(),
        None,
        EventType::MessageSent,
        serde_json::json!({"k": 1}),
    );
    assert_eq!(store.record_event(&event).await.unwrap(), 1);

    assert_eq!(
        event_types(store, &ws, &all).await,
        [
            EventType::AccountConnected,
            EventType::ConversationStarted,
            EventType::MessageReceived,
            EventType::MessageSent
        ]
    );
    assert_eq!(
        event_types(store, &ws, &received_only).await,
        [EventType::MessageReceived]
    );
    assert!(event_types(store, &ws, &disabled).await.is_empty());
    assert!(event_types(store, &other, &elsewhere).await.is_empty());

    // Every delivery of one event carries the same bytes: the event as recorded.
    let claimed = claim_all(store, "worker").await;
    assert_eq!(claimed.len(), 5);
    let sent = claimed.iter().find(|d| d.event_id == event.id).unwrap();
    assert_eq!(sent.payload, event.to_json());
    assert_eq!(sent.event_type, EventType::MessageSent);
    let received: Vec<_> = claimed
        .iter()
        .filter(|d| d.event_type == EventType::MessageReceived)
        .collect();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].payload, received[1].payload);
    assert_eq!(received[0].event_id, received[1].event_id);
    assert_ne!(received[0].endpoint_id, received[1].endpoint_id);
}

pub async fn a_failed_operation_queues_nothing(db: TestDb) {
    let store = &db.store;
    let acme = workspace(store, "acme").await;
    let other = workspace(store, "other").await;
    let acme_hooks = catch_all(store, &acme).await;
    let other_hooks = catch_all(store, &other).await;
    let account = account(store, &acme, "100").await;
    let before = event_types(store, &acme, &acme_hooks).await.len();

    // Refused: connected in another workspace. Nothing is queued for it anywhere.
    assert!(
        store
            .connect_account(new_account(&other, PlatformKind::Telegram, "100"))
            .await
            .is_err()
    );
    // Refused: the conversation is not the account's.
    let stranger = inbox_store::NewSentMessage {
        account: account.clone(),
        conversation_id: inbox_core::ConversationId::new(),
        text: "x".into(),
        attachments: vec![],
        sender: person("bot", "Bot"),
        sent: inbox_core::SentMessage {
            platform_message_id: "p1".into(),
            timestamp: at(1),
        },
        reply_to: None,
    };
    assert!(store.record_sent_message(stranger).await.is_err());
    assert!(
        !store
            .mark_account_reauth_required(&unknown_account(), "x")
            .await
            .unwrap()
    );

    assert_eq!(event_types(store, &acme, &acme_hooks).await.len(), before);
    assert!(event_types(store, &other, &other_hooks).await.is_empty());
    assert_eq!(claim_all(store, "worker").await.len(), before);
}

pub async fn rotated_secrets_sign_alongside_until_they_expire(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let endpoint = store
        .create_endpoint(&ws, new_endpoint(vec![], true, "whsec_first"))
        .await
        .unwrap();
    let secrets = |claimed: &inbox_store::ClaimedDelivery| {
        claimed
            .secrets
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect::<Vec<_>>()
    };
    store.record_test_event(&ws, &endpoint.id).await.unwrap();
    let claimed = claim_all(store, "w1").await;
    assert_eq!(secrets(&claimed[0]), ["whsec_first"]);
    assert_eq!(claimed[0].url, endpoint.url);

    let rotated = store
        .rotate_endpoint_secret(
            &ws,
            &endpoint.id,
            SecretString::from("whsec_second"),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    assert_eq!(rotated.id, endpoint.id);
    store.record_test_event(&ws, &endpoint.id).await.unwrap();
    let claimed = claim_all(store, "w2").await;
    assert_eq!(
        secrets(&claimed[0]),
        ["whsec_second", "whsec_first"],
        "current first, then previous"
    );

    store
        .rotate_endpoint_secret(
            &ws,
            &endpoint.id,
            SecretString::from("whsec_third"),
            Duration::ZERO,
        )
        .await
        .unwrap();
    store.record_test_event(&ws, &endpoint.id).await.unwrap();
    let claimed = claim_all(store, "w3").await;
    assert_eq!(
        secrets(&claimed[0]),
        ["whsec_third"],
        "an expired previous secret is dropped"
    );
    for value in db
        .raw_texts("SELECT previous_secret FROM webhook_endpoints")
        .await
    {
        assert!(!value.contains("whsec_"));
    }
}
