//! Cases for the gateway's own bookkeeping: health, migrations, workspaces and API keys,
//! idempotency keys, leases, raw inbound events and poll cursors.

use std::{collections::HashSet, time::Duration};

use inbox_core::{Error, PlatformKind, Timestamp};
use inbox_store::{Backend, IdempotencyBegin, NewRawEvent, StoredResponse, migrate};

use crate::support::*;

pub async fn ping_backend_and_migrations(db: TestDb) {
    db.store.ping().await.unwrap();
    let expected = if db.config.url.starts_with("sqlite:") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    assert_eq!(db.store.backend(), expected);
    // Applying migrations again is a no-op, and the data stays.
    let ws = workspace(&db.store, "acme").await;
    migrate(&db.config).await.unwrap();
    assert_eq!(db.store.ensure_workspace("acme").await.unwrap().id, ws);
}

pub async fn workspaces_and_api_keys(db: TestDb) {
    let store = &db.store;
    let acme = store.ensure_workspace("acme").await.unwrap();
    assert_eq!(acme.name, "acme");
    assert_eq!(
        store.ensure_workspace("acme").await.unwrap(),
        acme,
        "ensure is idempotent"
    );
    let other = store.ensure_workspace("other").await.unwrap();
    assert_ne!(other.id, acme.id);
    assert!(matches!(
        store.ensure_workspace("  ").await,
        Err(Error::InvalidInput { .. })
    ));

    let key = store
        .create_api_key(&acme.id, "ab12hash", "igk_ab12")
        .await
        .unwrap();
    assert_eq!(key.workspace_id, acme.id);
    let found = store.find_api_key("ab12hash").await.unwrap().unwrap();
    assert_eq!(found, key);
    assert_eq!(store.find_api_key("nothash").await.unwrap(), None);
    assert!(matches!(
        store
            .create_api_key(&inbox_core::WorkspaceId::new(), "h2", "igk_h2")
            .await,
        Err(Error::NotFound {
            resource: "workspace",
            ..
        })
    ));
    // The hash is unique.
    assert!(
        store
            .create_api_key(&other.id, "ab12hash", "igk_ab12")
            .await
            .is_err()
    );
}

pub async fn idempotency_keys_move_through_their_states(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let other = workspace(store, "other").await;
    let day = Duration::from_secs(86_400);

    assert_eq!(
        store
            .idempotency_begin(&ws, "k1", "hash-a", day)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        store
            .idempotency_begin(&ws, "k1", "hash-a", day)
            .await
            .unwrap(),
        IdempotencyBegin::InFlight
    );
    assert_eq!(
        store
            .idempotency_begin(&ws, "k1", "hash-b", day)
            .await
            .unwrap(),
        IdempotencyBegin::Mismatch
    );
    // Keys are per workspace.
    assert_eq!(
        store
            .idempotency_begin(&other, "k1", "hash-b", day)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );

    let response = StoredResponse {
        status: 201,
        body: "{\"id\":\"msg_1\"}".into(),
    };
    store
        .idempotency_complete(&ws, "k1", &response)
        .await
        .unwrap();
    assert_eq!(
        store
            .idempotency_begin(&ws, "k1", "hash-a", day)
            .await
            .unwrap(),
        IdempotencyBegin::Replay(response.clone())
    );
    assert_eq!(
        store
            .idempotency_begin(&ws, "k1", "hash-b", day)
            .await
            .unwrap(),
        IdempotencyBegin::Mismatch
    );
    // A completed key is not released by a failing retry.
    store.idempotency_release(&ws, "k1").await.unwrap();
    assert_eq!(
        store
            .idempotency_begin(&ws, "k1", "hash-a", day)
            .await
            .unwrap(),
        IdempotencyBegin::Replay(response)
    );

    // A released in-flight key starts again.
    assert_eq!(
        store
            .idempotency_begin(&ws, "k2", "hash-a", day)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
    store.idempotency_release(&ws, "k2").await.unwrap();
    assert_eq!(
        store
            .idempotency_begin(&ws, "k2", "hash-a", day)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );

    // An expired key counts as unused, whatever it held.
    assert_eq!(
        store
            .idempotency_begin(&ws, "k1", "hash-c", Duration::ZERO)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        store
            .idempotency_begin(&ws, "k1", "hash-c", day)
            .await
            .unwrap(),
        IdempotencyBegin::InFlight
    );
}

pub async fn leases_are_exclusive_until_released_or_expired(db: TestDb) {
    let store = &db.store;
    let minute = Duration::from_secs(60);
    assert!(
        store
            .try_lease("poll:acc_1", "replica-a", minute)
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_lease("poll:acc_1", "replica-b", minute)
            .await
            .unwrap()
    );
    assert!(
        store
            .try_lease("poll:acc_1", "replica-a", minute)
            .await
            .unwrap(),
        "the owner renews"
    );
    assert!(
        store
            .try_lease("poll:acc_2", "replica-b", minute)
            .await
            .unwrap(),
        "leases are per name"
    );
    store
        .release_lease("poll:acc_1", "replica-b")
        .await
        .unwrap();
    assert!(
        !store
            .try_lease("poll:acc_1", "replica-b", minute)
            .await
            .unwrap(),
        "only the owner releases"
    );
    store
        .release_lease("poll:acc_1", "replica-a")
        .await
        .unwrap();
    assert!(
        store
            .try_lease("poll:acc_1", "replica-b", Duration::from_millis(1))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        store
            .try_lease("poll:acc_1", "replica-a", minute)
            .await
            .unwrap(),
        "an expired lease is free"
    );
    assert!(
        !store
            .try_lease("poll:acc_1", "replica-b", minute)
            .await
            .unwrap()
    );
}

pub async fn raw_events_are_batched_claimed_and_finished(db: TestDb) {
    let store = &db.store;
    let notify = store.raw_events_notify();
    let base = Timestamp::now();
    // More rows than one multi-row INSERT carries, in one call (one transaction).
    let batch: Vec<NewRawEvent> = (0..1_200)
        .map(|i| NewRawEvent {
            platform: PlatformKind::Facebook,
            account_id: None,
            payload: format!("{{\"n\":{i}}}").into_bytes(),
            received_at: Timestamp::from_unix_millis(base.unix_millis() + i),
        })
        .collect();
    let ids = store.insert_raw_events(batch).await.unwrap();
    assert_eq!(ids.len(), 1_200);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1_200);
    tokio::time::timeout(Duration::from_secs(5), notify.notified())
        .await
        .expect("storing raw events wakes the processor");
    assert!(store.insert_raw_events(vec![]).await.unwrap().is_empty());

    let first = store
        .claim_raw_events("worker-a", 1_000, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(first.len(), 1_000);
    assert_eq!(first[0].payload, b"{\"n\":0}");
    assert_eq!(first[999].payload, b"{\"n\":999}", "oldest first");
    assert!(
        first
            .iter()
            .all(|e| e.attempts == 0 && e.platform == PlatformKind::Facebook)
    );
    let rest = store
        .claim_raw_events("worker-b", 1_000, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(rest.len(), 200, "claimed events are not claimed twice");
    assert!(
        store
            .claim_raw_events("worker-b", 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );

    // Finish most; let a short claim on the rest expire, as if its worker died.
    for event in first.iter().chain(&rest[..190]) {
        store.finish_raw_event(&event.id, None).await.unwrap();
    }
    store
        .finish_raw_event(&rest[190].id, Some("unparseable"))
        .await
        .unwrap();
    let expiring = vec![NewRawEvent {
        platform: PlatformKind::Telegram,
        account_id: Some(unknown_account()),
        payload: b"late".to_vec(),
        received_at: Timestamp::now(),
    }];
    let late_id = store.insert_raw_events(expiring).await.unwrap().remove(0);
    // The rest of the batch is still claimed by worker-b; only the late one is free.
    let short = store
        .claim_raw_events("worker-c", 100, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(short.len(), 1);
    assert_eq!(short[0].id, late_id);
    assert_eq!(short[0].attempts, 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = store
        .claim_raw_events("worker-d", 100, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "an expired claim is claimed again");
    assert_eq!(again[0].attempts, 1, "the crash-loop guard counts claims");
    let late = again.iter().find(|e| e.id == late_id).unwrap();
    assert_eq!(late.payload, b"late");
    assert_eq!(late.platform, PlatformKind::Telegram);
    assert!(late.account_id.is_some());
}

pub async fn polls_store_payloads_and_cursor_together(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let account = account(store, &ws, "100").await;
    assert_eq!(store.poll_cursor(&account.id).await.unwrap(), None);

    let ids = store
        .store_polled(
            &account,
            vec![b"one".to_vec(), b"two".to_vec()],
            Some("cursor-2".into()),
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        store.poll_cursor(&account.id).await.unwrap().as_deref(),
        Some("cursor-2")
    );
    let claimed = store
        .claim_raw_events("w", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|e| e.payload.clone())
            .collect::<Vec<_>>(),
        [b"one".to_vec(), b"two".to_vec()]
    );
    assert!(
        claimed
            .iter()
            .all(|e| e.account_id.as_ref() == Some(&account.id))
    );

    // No new cursor keeps the old one.
    store
        .store_polled(&account, vec![b"three".to_vec()], None)
        .await
        .unwrap();
    assert_eq!(
        store.poll_cursor(&account.id).await.unwrap().as_deref(),
        Some("cursor-2")
    );

    // A poll that finishes after the account was disconnected stores nothing at all.
    store.delete_account(&ws, &account.id).await.unwrap();
    assert!(
        store
            .store_polled(&account, vec![b"four".to_vec()], Some("cursor-4".into()))
            .await
            .is_err()
    );
    let pending = store
        .claim_raw_events("w2", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|e| e.payload.clone())
            .collect::<Vec<_>>(),
        [b"three".to_vec()]
    );
    assert!(matches!(
        store.poll_cursor(&account.id).await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn housekeeping_prunes_processed_payloads_and_stale_idempotency_keys(db: TestDb) {
    let store = &db.store;
    let raw = |n: u32| NewRawEvent {
        platform: PlatformKind::Telegram,
        account_id: None,
        payload: format!("{{\"n\":{n}}}").into_bytes(),
        received_at: Timestamp::now(),
    };
    store
        .insert_raw_events((0..4).map(raw).collect())
        .await
        .unwrap();
    let claimed = store
        .claim_raw_events("worker", 3, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    for event in &claimed {
        store.finish_raw_event(&event.id, None).await.unwrap();
    }
    let hour_ago = Timestamp::from_unix_millis(Timestamp::now().unix_millis() - 3_600_000);
    let soon = Timestamp::from_unix_millis(Timestamp::now().unix_millis() + 60_000);
    // Nothing was processed an hour ago.
    assert_eq!(store.prune_raw_events(hour_ago, 100).await.unwrap(), 0);
    // In chunks: the three processed payloads go, the unprocessed one stays.
    assert_eq!(store.prune_raw_events(soon, 2).await.unwrap(), 2);
    assert_eq!(store.prune_raw_events(soon, 2).await.unwrap(), 1);
    assert_eq!(store.prune_raw_events(soon, 2).await.unwrap(), 0);
    let left = store
        .claim_raw_events("worker", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].payload, b"{\"n\":3}");

    let ws = workspace(store, "acme").await;
    let day = Duration::from_secs(86_400);
    for key in ["k1", "k2"] {
        store
            .idempotency_begin(&ws, key, "hash-a", day)
            .await
            .unwrap();
    }
    store
        .idempotency_complete(
            &ws,
            "k1",
            &StoredResponse {
                status: 201,
                body: "{}".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.prune_idempotency_keys(hour_ago, 100).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .idempotency_begin(&ws, "k1", "hash-a", day)
            .await
            .unwrap(),
        IdempotencyBegin::Replay(StoredResponse {
            status: 201,
            body: "{}".into(),
        }),
        "a key younger than the cutoff is kept"
    );
    assert_eq!(store.prune_idempotency_keys(soon, 100).await.unwrap(), 2);
    assert_eq!(
        store
            .idempotency_begin(&ws, "k1", "hash-b", day)
            .await
            .unwrap(),
        IdempotencyBegin::Started,
        "a pruned key is unused"
    );
}
