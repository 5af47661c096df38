//! Cases for accounts: connecting, listing, tenancy, soft deletion and revival, the
//! one-workspace rule, `reauth_required`, and encryption of what they keep secret.

use std::sync::Arc;

use inbox_core::{
    AccountStatus, Credentials, Error, EventType, PageRequest, PlatformKind, RefreshedCredentials,
};
use inbox_store::{AccountFilter, ConversationFilter};
use secrecy::ExposeSecret;

use crate::support::*;

pub async fn accounts_connect_list_and_stay_in_their_workspace(db: TestDb) {
    let store = &db.store;
    let acme = workspace(store, "acme").await;
    let other = workspace(store, "other").await;
    let hooks = catch_all(store, &acme).await;

    let connected = store
        .connect_account(new_account(&acme, PlatformKind::Telegram, "100"))
        .await
        .unwrap();
    assert!(connected.created);
    let first = connected.account;
    assert_eq!(first.status, AccountStatus::Active);
    assert_eq!(first.workspace_id, acme);
    assert_eq!(first.username.as_deref(), Some("user_100"));
    let second = store
        .connect_account(new_account(&acme, PlatformKind::Reddit, "alice"))
        .await
        .unwrap()
        .account;
    let foreign = account(store, &other, "900").await;

    assert_eq!(store.get_account(&acme, &first.id).await.unwrap(), first);
    assert!(matches!(
        store.get_account(&other, &first.id).await,
        Err(Error::NotFound { resource: "account", id }) if id == first.id.as_str()
    ));
    assert!(matches!(
        store.get_account(&acme, &unknown_account()).await,
        Err(Error::NotFound { .. })
    ));

    let listed = store
        .list_accounts(&acme, &AccountFilter::default(), &PageRequest::first())
        .await
        .unwrap();
    assert_eq!(listed.data, vec![first.clone(), second.clone()]);
    assert_eq!(listed.next_cursor, None);
    let reddit_only = AccountFilter {
        platform: Some(PlatformKind::Reddit),
    };
    let listed = store
        .list_accounts(&acme, &reddit_only, &PageRequest::first())
        .await
        .unwrap();
    assert_eq!(listed.data, vec![second.clone()]);

    assert_eq!(
        store.find_account(&foreign.id).await.unwrap(),
        Some(foreign.clone())
    );
    assert_eq!(store.find_account(&unknown_account()).await.unwrap(), None);
    assert_eq!(
        store
            .find_account_by_platform_id(PlatformKind::Reddit, "alice")
            .await
            .unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        store
            .find_account_by_platform_id(PlatformKind::X, "alice")
            .await
            .unwrap(),
        None
    );
    let telegram = store
        .list_all_accounts(Some(PlatformKind::Telegram))
        .await
        .unwrap();
    assert_eq!(telegram, vec![first.clone(), foreign.clone()]);
    assert_eq!(store.list_all_accounts(None).await.unwrap().len(), 3);

    // `account.connected` for each, to this workspace's endpoint only.
    let deliveries = all_deliveries(store, &acme, &hooks).await;
    assert_eq!(
        deliveries.iter().map(|d| d.event_type).collect::<Vec<_>>(),
        [EventType::AccountConnected; 2]
    );
    let claimed = claim_all(store, "worker").await;
    let payload: serde_json::Value = serde_json::from_str(&claimed[0].payload).unwrap();
    assert_eq!(payload["event"], "account.connected");
    assert_eq!(payload["data"]["accountId"], first.id.as_str());
    assert_eq!(payload["data"]["platform"], "telegram");
}

pub async fn accounts_paginate_oldest_first(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let mut expected = Vec::new();
    for n in 0..5 {
        expected.push(account(store, &ws, &format!("bot-{n}")).await.id);
    }
    let pages = collect_pages(2, |page| {
        let store = store.clone();
        let ws = ws.clone();
        async move {
            store
                .list_accounts(&ws, &AccountFilter::default(), &page)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let ids: Vec<_> = pages.into_iter().flatten().map(|a| a.id).collect();
    assert_eq!(ids, expected);
    // A cursor past every row gives an empty last page rather than an error.
    let past = store
        .list_accounts(&ws, &AccountFilter::default(), &far_cursor(2, i64::MAX))
        .await
        .unwrap();
    assert!(past.data.is_empty());
    assert_eq!(past.next_cursor, None);
}

pub async fn reconnecting_a_deleted_account_revives_its_history(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let account = account(store, &ws, "100").await;
    apply(store, &account, vec![incoming("chat-1", "m1", "hello", 1)]).await;
    let conversation = store
        .list_conversations(&ws, &ConversationFilter::default(), &PageRequest::first())
        .await
        .unwrap()
        .data
        .remove(0);
    let message = store
        .list_messages(
            &ws,
            &conversation.id,
            inbox_store::SortOrder::Asc,
            &PageRequest::first(),
        )
        .await
        .unwrap()
        .data
        .remove(0);

    store.delete_account(&ws, &account.id).await.unwrap();
    assert!(matches!(
        store.delete_account(&ws, &account.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.get_account(&ws, &account.id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(store.find_account(&account.id).await.unwrap(), None);
    assert_eq!(
        store
            .find_account_by_platform_id(PlatformKind::Telegram, "100")
            .await
            .unwrap(),
        None
    );
    assert!(store.list_all_accounts(None).await.unwrap().is_empty());
    assert!(matches!(
        store.account_context(&account.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        store
            .list_accounts(&ws, &AccountFilter::default(), &PageRequest::first())
            .await
            .unwrap()
            .data
            .is_empty()
    );
    assert!(
        store
            .list_conversations(&ws, &ConversationFilter::default(), &PageRequest::first())
            .await
            .unwrap()
            .data
            .is_empty()
    );
    assert!(matches!(
        store.get_conversation(&ws, &conversation.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.get_message(&ws, &message.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store
            .list_messages(
                &ws,
                &conversation.id,
                inbox_store::SortOrder::Asc,
                &PageRequest::first()
            )
            .await,
        Err(Error::NotFound { .. })
    ));
    // Credentials and the inbound secret are erased, not just hidden.
    assert!(
        db.raw_texts("SELECT credentials FROM accounts")
            .await
            .is_empty()
    );
    assert!(
        db.raw_texts("SELECT inbound_secret FROM accounts")
            .await
            .is_empty()
    );

    let mut again = new_account(&ws, PlatformKind::Telegram, "100");
    again.credentials = Credentials::from_json_text("{\"botToken\":\"new-token\"}".into());
    again.name = "Renamed".into();
    let revived = store.connect_account(again).await.unwrap();
    assert!(!revived.created);
    assert_eq!(revived.account.id, account.id);
    assert_eq!(revived.account.name, "Renamed");
    assert_eq!(revived.account.status, AccountStatus::Active);
    assert_eq!(
        store
            .get_conversation(&ws, &conversation.id)
            .await
            .unwrap()
            .id,
        conversation.id
    );
    assert_eq!(store.get_message(&ws, &message.id).await.unwrap(), message);
    let context = store.account_context(&account.id).await.unwrap();
    assert_eq!(
        context.credentials.expose_json(),
        "{\"botToken\":\"new-token\"}"
    );
}

pub async fn an_account_connected_elsewhere_conflicts(db: TestDb) {
    let store = &db.store;
    let acme = workspace(store, "acme").await;
    let other = workspace(store, "other").await;
    let other_hooks = catch_all(store, &other).await;
    let original = account(store, &acme, "100").await;
    apply(
        store,
        &original,
        vec![incoming("chat-1", "m1", "for acme only", 1)],
    )
    .await;

    let attempt = store
        .connect_account(new_account(&other, PlatformKind::Telegram, "100"))
        .await;
    assert!(
        matches!(attempt, Err(Error::Conflict { .. })),
        "{attempt:?}"
    );
    assert!(
        event_types(store, &other, &other_hooks).await.is_empty(),
        "a refused connect emits nothing"
    );
    // Also while it needs reauthentication: it is still connected there.
    store
        .mark_account_reauth_required(&original.id, "revoked")
        .await
        .unwrap();
    assert!(matches!(
        store
            .connect_account(new_account(&other, PlatformKind::Telegram, "100"))
            .await,
        Err(Error::Conflict { .. })
    ));
    // The same platform id on another platform is another account.
    store
        .connect_account(new_account(&other, PlatformKind::Reddit, "100"))
        .await
        .unwrap();

    store.delete_account(&acme, &original.id).await.unwrap();
    let moved = store
        .connect_account(new_account(&other, PlatformKind::Telegram, "100"))
        .await
        .unwrap();
    assert!(moved.created, "another workspace gets its own account");
    assert_ne!(moved.account.id, original.id);
    assert!(
        store
            .list_conversations(
                &other,
                &ConversationFilter::default(),
                &PageRequest::first()
            )
            .await
            .unwrap()
            .data
            .is_empty(),
        "the first workspace's history stays with it"
    );
    // And now the first workspace is the one that conflicts.
    assert!(matches!(
        store
            .connect_account(new_account(&acme, PlatformKind::Telegram, "100"))
            .await,
        Err(Error::Conflict { .. })
    ));
}

pub async fn reauth_is_recorded_once_under_concurrent_failures(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let account = account(store, &ws, "100").await;
    let hooks = store
        .create_endpoint(
            &ws,
            new_endpoint(vec![EventType::AccountDisconnected], true, "whsec_x"),
        )
        .await
        .unwrap();

    let attempts = (0..8).map(|_| {
        let store = Arc::clone(store);
        let id = account.id.clone();
        tokio::spawn(async move {
            store
                .mark_account_reauth_required(&id, "token revoked")
                .await
                .unwrap()
        })
    });
    let changed = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(changed, 1, "exactly one caller flips the status");
    assert_eq!(
        store.get_account(&ws, &account.id).await.unwrap().status,
        AccountStatus::ReauthRequired
    );
    assert!(
        !store
            .mark_account_reauth_required(&account.id, "again")
            .await
            .unwrap()
    );

    let claimed = claim_all(store, "worker").await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].endpoint_id, hooks.id);
    let payload: serde_json::Value = serde_json::from_str(&claimed[0].payload).unwrap();
    assert_eq!(payload["event"], "account.disconnected");
    assert_eq!(payload["data"]["reason"], "token revoked");
    assert_eq!(payload["data"]["status"], "reauth_required");

    // Connecting again makes it active, and a later failure is recorded again.
    store
        .connect_account(new_account(&ws, PlatformKind::Telegram, "100"))
        .await
        .unwrap();
    assert_eq!(
        store.get_account(&ws, &account.id).await.unwrap().status,
        AccountStatus::Active
    );
    assert!(
        store
            .mark_account_reauth_required(&account.id, "expired")
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_account_reauth_required(&unknown_account(), "x")
            .await
            .unwrap()
    );
}

pub async fn secrets_are_encrypted_at_rest(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let mut new = new_account(&ws, PlatformKind::Telegram, "100");
    new.credentials = Credentials::from_json_text("{\"botToken\":\"plain-bot-token-123\"}".into());
    new.inbound_secret = Some("plain-inbound-secret".to_owned().into());
    let account = store.connect_account(new).await.unwrap().account;
    store
        .create_endpoint(
            &ws,
            new_endpoint(vec![], true, "whsec_plain_endpoint_secret"),
        )
        .await
        .unwrap();

    let stored: Vec<String> = [
        db.raw_texts("SELECT credentials FROM accounts").await,
        db.raw_texts("SELECT inbound_secret FROM accounts").await,
        db.raw_texts("SELECT secret FROM webhook_endpoints").await,
    ]
    .concat();
    assert_eq!(stored.len(), 3);
    for value in &stored {
        assert!(value.starts_with("v1:"), "{value}");
        for plaintext in [
            "plain-bot-token-123",
            "plain-inbound-secret",
            "whsec_plain_endpoint_secret",
        ] {
            assert!(!value.contains(plaintext));
        }
    }

    let context = store.account_context(&account.id).await.unwrap();
    assert_eq!(context.id, account.id);
    assert_eq!(context.platform_account_id, "100");
    assert_eq!(
        context.credentials.expose_json(),
        "{\"botToken\":\"plain-bot-token-123\"}"
    );
    assert_eq!(
        context.inbound_secret.unwrap().expose_secret(),
        "plain-inbound-secret"
    );

    store
        .update_account_credentials(
            &account.id,
            &RefreshedCredentials {
                credentials: Credentials::from_json_text("{\"botToken\":\"refreshed\"}".into()),
                expires_at: None,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .account_context(&account.id)
            .await
            .unwrap()
            .credentials
            .expose_json(),
        "{\"botToken\":\"refreshed\"}"
    );
    assert!(!db.raw_texts("SELECT credentials FROM accounts").await[0].contains("refreshed"));
    assert!(matches!(
        store
            .update_account_credentials(
                &unknown_account(),
                &RefreshedCredentials {
                    credentials: Credentials::from_json_text("{}".into()),
                    expires_at: None,
                },
                None,
            )
            .await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn a_different_key_cannot_read_secrets(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let account = account(store, &ws, "100").await;
    catch_all(store, &ws).await;
    store
        .record_event(&inbox_core::Event::webhook_test(ws.clone(), "whk_x"))
        .await
        .unwrap();

    let wrong = db.reopen_with_another_key().await;
    let err = wrong.account_context(&account.id).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("INBOX_ENCRYPTION_KEY does not match"),
        "{err}"
    );
    let err = wrong
        .claim_deliveries("worker", 10, std::time::Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("INBOX_ENCRYPTION_KEY does not match"),
        "{err}"
    );
    // The failed claim rolled back: the right key still gets the delivery.
    assert_eq!(claim_all(store, "worker").await.len(), 1);
}
