//! Cases for webhook deliveries: claims and their leases, attempts, concurrent workers,
//! manual retry and recovery, test events, deleted endpoints, the delivery log, and waking
//! the worker.

use std::{collections::HashSet, sync::Arc, time::Duration};

use inbox_core::{Event, EventType, PageRequest, Timestamp};
use inbox_store::{DeliveryNext, DeliveryState, NewAttempt};

use crate::support::*;

fn attempt(status_code: Option<u16>, error: Option<&str>) -> NewAttempt {
    NewAttempt {
        attempted_at: Timestamp::now(),
        status_code,
        error: error.map(str::to_owned),
        duration_ms: 42,
        response_body: status_code.map(|code| format!("status {code}")),
    }
}

fn event(ws: &inbox_core::WorkspaceId, event_type: EventType) -> Event {
    Event::new(
        ws.clone(),
        None,
        event_type,
        serde_json::json!({"accountId": null, "platform": null}),
    )
}

pub async fn claims_lease_expire_and_are_reclaimed(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let endpoint = catch_all(store, &ws).await;
    let recorded = event(&ws, EventType::MessageReceived);
    store.record_event(&recorded).await.unwrap();

    let claimed = store
        .claim_deliveries("worker-a", 10, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let first = &claimed[0];
    assert_eq!(first.endpoint_id, endpoint.id);
    assert_eq!(first.event_id, recorded.id);
    assert_eq!(first.payload, recorded.to_json());
    assert_eq!(first.previous_attempts, 0);
    assert!(!first.one_shot);
    // While the lease holds nobody else gets it; once it lapses, another worker does.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reclaimed = store
        .claim_deliveries("worker-b", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].delivery_id, first.delivery_id);
    assert!(
        store
            .claim_deliveries("worker-c", 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );

    // The first worker's late result is ignored; the current owner's counts.
    let stale = store
        .record_attempt(
            &first.delivery_id,
            "worker-a",
            &attempt(Some(200), None),
            DeliveryNext::Succeeded,
        )
        .await
        .unwrap();
    assert!(!stale);
    let delivery = all_deliveries(store, &ws, &endpoint).await.remove(0);
    assert_eq!(delivery.status, DeliveryState::Pending);
    assert!(delivery.attempts.is_empty());
    assert!(
        store
            .record_attempt(
                &first.delivery_id,
                "worker-b",
                &attempt(Some(200), None),
                DeliveryNext::Succeeded
            )
            .await
            .unwrap()
    );
    // Recording twice is refused too: the claim was released.
    assert!(
        !store
            .record_attempt(
                &first.delivery_id,
                "worker-b",
                &attempt(Some(200), None),
                DeliveryNext::Succeeded
            )
            .await
            .unwrap()
    );
}

pub async fn attempts_are_recorded_and_listed(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let endpoint = catch_all(store, &ws).await;
    store
        .record_event(&event(&ws, EventType::MessageSent))
        .await
        .unwrap();

    let claimed = claim_all(store, "w").await.remove(0);
    let retry_at = Timestamp::now();
    let failed = attempt(Some(503), Some("503 Service Unavailable"));
    assert!(
        store
            .record_attempt(
                &claimed.delivery_id,
                "w",
                &failed,
                DeliveryNext::RetryAt(retry_at)
            )
            .await
            .unwrap()
    );
    let pending = all_deliveries(store, &ws, &endpoint).await.remove(0);
    assert_eq!(pending.status, DeliveryState::Pending);
    assert_eq!(pending.attempt_count, 1);
    assert_eq!(pending.next_attempt_at, Some(retry_at));

    let again = claim_all(store, "w").await.remove(0);
    assert_eq!(again.previous_attempts, 1);
    let timeout = NewAttempt {
        status_code: None,
        response_body: None,
        ..attempt(None, Some("timed out after 15 s"))
    };
    assert!(
        store
            .record_attempt(
                &again.delivery_id,
                "w",
                &timeout,
                DeliveryNext::RetryAt(Timestamp::now())
            )
            .await
            .unwrap()
    );
    let last = claim_all(store, "w").await.remove(0);
    assert!(
        store
            .record_attempt(
                &last.delivery_id,
                "w",
                &attempt(Some(204), None),
                DeliveryNext::Succeeded
            )
            .await
            .unwrap()
    );

    let delivery = all_deliveries(store, &ws, &endpoint).await.remove(0);
    assert_eq!(delivery.status, DeliveryState::Succeeded);
    assert_eq!(delivery.attempt_count, 3);
    assert_eq!(delivery.next_attempt_at, None);
    assert_eq!(delivery.event_type, EventType::MessageSent);
    let numbers: Vec<u32> = delivery.attempts.iter().map(|a| a.attempt_number).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(delivery.attempts[0].status_code, Some(503));
    assert_eq!(
        delivery.attempts[0].error.as_deref(),
        Some("503 Service Unavailable")
    );
    assert_eq!(
        delivery.attempts[0].response_body.as_deref(),
        Some("status 503")
    );
    assert_eq!(delivery.attempts[0].duration_ms, 42);
    assert_eq!(delivery.attempts[1].status_code, None);
    assert_eq!(delivery.attempts[2].status_code, Some(204));
    assert!(
        claim_all(store, "w").await.is_empty(),
        "a finished delivery is not claimed"
    );

    // Giving up.
    store
        .record_event(&event(&ws, EventType::MessageSent))
        .await
        .unwrap();
    let doomed = claim_all(store, "w").await.remove(0);
    assert!(
        store
            .record_attempt(
                &doomed.delivery_id,
                "w",
                &attempt(Some(410), None),
                DeliveryNext::Failed
            )
            .await
            .unwrap()
    );
    let newest = all_deliveries(store, &ws, &endpoint).await.pop().unwrap();
    assert_eq!(newest.status, DeliveryState::Failed);
    assert!(claim_all(store, "w").await.is_empty());
}

pub async fn concurrent_claimers_never_share_a_delivery(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    for _ in 0..4 {
        catch_all(store, &ws).await;
    }
    for _ in 0..10 {
        store
            .record_event(&event(&ws, EventType::MessageReceived))
            .await
            .unwrap();
    }
    let workers = (0..5).map(|n| {
        let store = Arc::clone(store);
        tokio::spawn(async move {
            let owner = format!("worker-{n}");
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_deliveries(&owner, 3, Duration::from_secs(60))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|d| d.delivery_id));
                tokio::task::yield_now().await;
            }
        })
    });
    let claims: Vec<_> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(|result| result.unwrap())
        .collect();
    let unique: HashSet<_> = claims.iter().collect();
    assert_eq!(claims.len(), 40, "every delivery claimed");
    assert_eq!(unique.len(), 40, "no delivery claimed twice");
}

pub async fn retry_and_recover(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let endpoint = catch_all(store, &ws).await;
    let received_only = store
        .create_endpoint(
            &ws,
            new_endpoint(vec![EventType::MessageReceived], true, "whsec_r"),
        )
        .await
        .unwrap();

    // Succeeded → retry: exactly one more attempt.
    store
        .record_event(&event(&ws, EventType::MessageReceived))
        .await
        .unwrap();
    for claimed in claim_all(store, "w").await {
        store
            .record_attempt(
                &claimed.delivery_id,
                "w",
                &attempt(Some(200), None),
                DeliveryNext::Succeeded,
            )
            .await
            .unwrap();
    }
    let done = all_deliveries(store, &ws, &endpoint).await.remove(0);
    let retried = store
        .retry_delivery(&ws, &endpoint.id, &done.id)
        .await
        .unwrap();
    assert_eq!(retried.status, DeliveryState::Pending);
    assert_eq!(retried.attempts.len(), 1);
    let claimed = claim_all(store, "w").await;
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].one_shot);
    assert_eq!(claimed[0].previous_attempts, 1);
    store
        .record_attempt(
            &claimed[0].delivery_id,
            "w",
            &attempt(Some(500), None),
            DeliveryNext::Failed,
        )
        .await
        .unwrap();
    // Failed → retry: one shot again.
    store
        .retry_delivery(&ws, &endpoint.id, &done.id)
        .await
        .unwrap();
    let claimed = claim_all(store, "w").await;
    assert!(claimed[0].one_shot);
    store
        .record_attempt(
            &claimed[0].delivery_id,
            "w",
            &attempt(Some(200), None),
            DeliveryNext::Succeeded,
        )
        .await
        .unwrap();

    // Pending with a later schedule → due now, schedule kept (not one-shot).
    store
        .record_event(&event(&ws, EventType::MessageSent))
        .await
        .unwrap();
    let claimed = claim_all(store, "w").await.remove(0);
    let later = Timestamp::now() + Duration::from_secs(3600);
    store
        .record_attempt(
            &claimed.delivery_id,
            "w",
            &attempt(Some(502), None),
            DeliveryNext::RetryAt(later),
        )
        .await
        .unwrap();
    assert!(claim_all(store, "w").await.is_empty(), "not due yet");
    store
        .retry_delivery(&ws, &endpoint.id, &claimed.delivery_id)
        .await
        .unwrap();
    let claimed = claim_all(store, "w").await;
    assert_eq!(claimed.len(), 1);
    assert!(!claimed[0].one_shot);
    // Unknown, or another endpoint's delivery: not found.
    assert!(matches!(
        store
            .retry_delivery(&ws, &received_only.id, &claimed[0].delivery_id)
            .await,
        Err(inbox_core::Error::NotFound { .. })
    ));
    assert!(
        store
            .retry_delivery(&ws, &endpoint.id, &inbox_core::DeliveryId::new())
            .await
            .is_err()
    );

    // Recover: every event in [since, until) the endpoint subscribes to, delivered or not.
    let since = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let in_span = [
        event(&ws, EventType::MessageReceived),
        event(&ws, EventType::MessageRead),
    ];
    for e in &in_span {
        store.record_event(e).await.unwrap();
    }
    store.record_test_event(&ws, &endpoint.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let until = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store
        .record_event(&event(&ws, EventType::MessageReceived))
        .await
        .unwrap();
    let other = workspace(store, "other").await;
    store
        .record_event(&event(&other, EventType::MessageReceived))
        .await
        .unwrap();

    assert_eq!(
        store
            .recover_deliveries(&ws, &endpoint.id, since, until)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .recover_deliveries(&ws, &received_only.id, since, until)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .recover_deliveries(&ws, &endpoint.id, until, since)
            .await
            .unwrap(),
        0
    );
    let recovered = all_deliveries(store, &ws, &received_only).await;
    let last = recovered.last().unwrap();
    assert_eq!(last.event_id, in_span[0].id);
    assert_eq!(last.status, DeliveryState::Pending);
}

pub async fn test_events_go_to_one_endpoint(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let bystander = catch_all(store, &ws).await;
    // Disabled and not subscribed to webhook.test: the test still goes to it.
    let target = store
        .create_endpoint(
            &ws,
            new_endpoint(vec![EventType::MessageReceived], false, "whsec_t"),
        )
        .await
        .unwrap();
    let delivery = store.record_test_event(&ws, &target.id).await.unwrap();
    assert_eq!(delivery.endpoint_id, target.id);
    assert_eq!(delivery.event_type, EventType::WebhookTest);
    assert_eq!(delivery.status, DeliveryState::Pending);
    assert_eq!(delivery.attempt_count, 0);
    assert!(delivery.attempts.is_empty());
    assert!(event_types(store, &ws, &bystander).await.is_empty());

    let claimed = claim_all(store, "w").await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].delivery_id, delivery.id);
    let payload: serde_json::Value = serde_json::from_str(&claimed[0].payload).unwrap();
    assert_eq!(payload["event"], "webhook.test");
    assert_eq!(payload["data"]["webhookId"], target.id.as_str());

    // Ordinary events are held back while an endpoint is disabled, and flow once enabled.
    let patch = inbox_store::EndpointPatch {
        enabled: Some(true),
        ..Default::default()
    };
    store
        .record_event(&event(&ws, EventType::MessageReceived))
        .await
        .unwrap();
    let held = claim_all(store, "w").await;
    assert!(
        held.iter().all(|d| d.endpoint_id == bystander.id),
        "disabled endpoints get nothing"
    );
    store.update_endpoint(&ws, &target.id, patch).await.unwrap();
    store
        .record_event(&event(&ws, EventType::MessageReceived))
        .await
        .unwrap();
    assert!(
        claim_all(store, "w")
            .await
            .iter()
            .any(|d| d.endpoint_id == target.id)
    );
}

pub async fn deleted_endpoints_get_nothing_more(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let endpoint = catch_all(store, &ws).await;
    for _ in 0..3 {
        store
            .record_event(&event(&ws, EventType::MessageReceived))
            .await
            .unwrap();
    }
    // One is in flight when the endpoint goes.
    let in_flight = store
        .claim_deliveries("w", 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    store.delete_endpoint(&ws, &endpoint.id).await.unwrap();
    assert!(
        claim_all(store, "w").await.is_empty(),
        "its queue is abandoned"
    );
    let late = store
        .record_attempt(
            &in_flight.delivery_id,
            "w",
            &attempt(Some(500), None),
            DeliveryNext::RetryAt(Timestamp::now()),
        )
        .await
        .unwrap();
    assert!(
        !late,
        "an attempt that finishes after the delete does not reschedule"
    );
    assert!(claim_all(store, "w").await.is_empty());
    assert!(
        store
            .list_deliveries(&ws, &endpoint.id, &PageRequest::first())
            .await
            .is_err()
    );
    assert!(
        store
            .record_event(&event(&ws, EventType::MessageReceived))
            .await
            .unwrap()
            == 0
    );
}

pub async fn deliveries_paginate_newest_first(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let endpoint = catch_all(store, &ws).await;
    let mut events = Vec::new();
    for _ in 0..5 {
        let e = event(&ws, EventType::MessageReceived);
        store.record_event(&e).await.unwrap();
        events.push(e.id);
    }
    let pages = collect_pages(2, |page| {
        let (store, ws, id) = (store.clone(), ws.clone(), endpoint.id.clone());
        async move { store.list_deliveries(&ws, &id, &page).await.unwrap() }
    })
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let listed: Vec<_> = pages.into_iter().flatten().map(|d| d.event_id).collect();
    events.reverse();
    assert_eq!(listed, events);
    let none_older = store
        .list_deliveries(&ws, &endpoint.id, &far_cursor(5, 0))
        .await
        .unwrap();
    assert!(none_older.data.is_empty());
}

pub async fn commits_with_deliveries_wake_the_worker(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let notify = store.deliveries_notify();
    // Nothing subscribed: no deliveries, so no wake-up is owed (checked after one is).
    assert_eq!(
        store
            .record_event(&event(&ws, EventType::MessageReceived))
            .await
            .unwrap(),
        0
    );
    catch_all(store, &ws).await;
    // The worker is not waiting yet when the commit happens; the permit is kept for it.
    store
        .record_event(&event(&ws, EventType::MessageReceived))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), notify.notified())
        .await
        .expect("a commit that queued deliveries wakes a worker that starts waiting afterwards");
    let account = account(store, &ws, "100").await;
    tokio::time::timeout(Duration::from_secs(5), notify.notified())
        .await
        .expect("account.connected wakes the worker");
    apply(store, &account, vec![incoming("chat-1", "m1", "hi", 1)]).await;
    tokio::time::timeout(Duration::from_secs(5), notify.notified())
        .await
        .expect("inbound events wake the worker");
}
