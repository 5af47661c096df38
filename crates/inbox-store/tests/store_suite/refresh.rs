//! Cases for expiring credentials and OAuth connect flows: refresh scheduling, postponing,
//! single-use OAuth states with encrypted verifiers, and finding a conversation by its
//! platform id.

use std::time::Duration;

use inbox_core::{AccountStatus, Credentials, PlatformKind, RefreshedCredentials, Timestamp};
use inbox_store::NewOAuthState;
use secrecy::{ExposeSecret, SecretString};

use crate::support::*;

fn refreshed(token: &str, expires_at: Option<Timestamp>) -> RefreshedCredentials {
    RefreshedCredentials {
        credentials: Credentials::from_json_text(format!("{{\"accessToken\":\"{token}\"}}")),
        expires_at,
    }
}

pub async fn refreshes_come_due_in_order_and_can_be_postponed(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let now = Timestamp::now();
    let mut due_soon = new_account(&ws, PlatformKind::X, "1");
    due_soon.credentials_expire_at = Some(now + Duration::from_secs(3600));
    due_soon.refresh_due_at = Some(now - Duration::from_secs(10));
    let mut due_first = new_account(&ws, PlatformKind::X, "2");
    due_first.credentials_expire_at = Some(now + Duration::from_secs(60));
    due_first.refresh_due_at = Some(now - Duration::from_secs(60));
    let mut later = new_account(&ws, PlatformKind::X, "3");
    later.refresh_due_at = Some(now + Duration::from_secs(3600));
    let never = new_account(&ws, PlatformKind::Telegram, "4");
    let a = store.connect_account(due_soon).await.unwrap().account;
    let b = store.connect_account(due_first).await.unwrap().account;
    store.connect_account(later).await.unwrap();
    store.connect_account(never).await.unwrap();

    let due: Vec<_> = store
        .accounts_due_for_refresh(now, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(due, [b.id.clone(), a.id.clone()]);
    assert_eq!(
        store.accounts_due_for_refresh(now, 1).await.unwrap().len(),
        1
    );

    // A refresh moves the next due time and the expiry; the new credentials are what is read.
    let expires = now + Duration::from_secs(7200);
    store
        .update_account_credentials(
            &b.id,
            &refreshed("new", Some(expires)),
            Some(expires - Duration::from_secs(600)),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .account_context(&b.id)
            .await
            .unwrap()
            .credentials
            .expose_json(),
        "{\"accessToken\":\"new\"}"
    );
    let (expiry, refreshed_at) = store.credentials_expiry(&b.id).await.unwrap().unwrap();
    assert_eq!(expiry, expires);
    assert!(refreshed_at >= now);

    // A transient failure postpones; accounts needing reauthorisation are never due.
    store
        .postpone_refresh(&a.id, now + Duration::from_secs(300))
        .await
        .unwrap();
    assert!(
        store
            .accounts_due_for_refresh(now, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due_later = store
        .accounts_due_for_refresh(now + Duration::from_secs(301), 10)
        .await
        .unwrap();
    assert_eq!(due_later.len(), 1);
    assert!(
        store
            .mark_account_reauth_required(&a.id, "invalid_grant")
            .await
            .unwrap()
    );
    assert!(
        store
            .accounts_due_for_refresh(now + Duration::from_secs(301), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.find_account(&a.id).await.unwrap().unwrap().status,
        AccountStatus::ReauthRequired
    );

    // Credentials that never expire have no expiry.
    let telegram = store
        .list_all_accounts(Some(PlatformKind::Telegram))
        .await
        .unwrap();
    assert_eq!(
        store.credentials_expiry(&telegram[0].id).await.unwrap(),
        None
    );
}

pub async fn oauth_states_are_single_use_expire_and_keep_verifiers_secret(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let now = Timestamp::now();
    let state = |name: &str, expires_at: Timestamp| NewOAuthState {
        state: name.to_owned(),
        workspace_id: ws.clone(),
        platform: PlatformKind::X,
        redirect_url: "https://app.example/connected".into(),
        code_verifier: Some(SecretString::from(format!("verifier-of-{name}"))),
        expires_at,
    };
    store
        .create_oauth_state(state("live", now + Duration::from_secs(600)))
        .await
        .unwrap();
    store
        .create_oauth_state(state("stale", now - Duration::from_secs(1)))
        .await
        .unwrap();
    let texts = db.raw_texts("SELECT code_verifier FROM oauth_states").await;
    assert!(
        texts.iter().all(|t| !t.contains("verifier-of")),
        "{texts:?}"
    );

    let taken = store
        .take_oauth_state("live")
        .await
        .unwrap()
        .expect("a live state is taken");
    assert_eq!(taken.workspace_id, ws);
    assert_eq!(taken.platform, PlatformKind::X);
    assert_eq!(taken.redirect_url, "https://app.example/connected");
    assert_eq!(
        taken.code_verifier.unwrap().expose_secret(),
        "verifier-of-live"
    );
    assert!(
        store.take_oauth_state("live").await.unwrap().is_none(),
        "single use"
    );
    assert!(
        store.take_oauth_state("stale").await.unwrap().is_none(),
        "expired"
    );
    assert!(
        store
            .take_oauth_state("never-issued")
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn conversations_are_found_by_platform_id_within_their_account(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let first = account(store, &ws, "100").await;
    let second = account(store, &ws, "200").await;
    apply(store, &first, vec![incoming("chat-1", "m-1", "hello", 10)]).await;

    let found = store
        .find_conversation(&first.id, "chat-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.platform_conversation_id, "chat-1");
    assert_eq!(found.account_id, first.id);
    assert!(
        store
            .find_conversation(&second.id, "chat-1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_conversation(&first.id, "chat-2")
            .await
            .unwrap()
            .is_none()
    );
}
