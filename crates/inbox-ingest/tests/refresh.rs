//! Credential refresh against the real SQLite store and an in-memory platform whose tokens
//! expire: one refresh per account even when two replicas race, the new credentials persisted
//! and used, permanent refusals marking the account once, transient ones postponed, and the
//! scheduler picking up due accounts.

use std::{sync::Arc, time::Duration};

use inbox_core::{
    Account, AccountStatus, Error, PlatformKind, PlatformRegistry, RefreshPolicy, Timestamp,
};
use inbox_ingest::{CredentialRefresher, RefreshConfig, refresh::run_refresh_scheduler};
use inbox_store::{Cipher, NewAccount, Store, StoreConfig};
use inbox_testkit::memory_platform::{Failure, MemoryPlatform, Operation};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Harness {
    store: Arc<dyn Store>,
    platform: Arc<MemoryPlatform>,
    platforms: Arc<PlatformRegistry>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = inbox_store::open_and_migrate(&StoreConfig {
            url: format!("sqlite://{}", dir.path().join("inbox.db").display()),
            cipher: Cipher::from_base64_key(&Cipher::generate_key()).unwrap(),
            max_connections: 4,
        })
        .await
        .unwrap();
        let platform = Arc::new(
            MemoryPlatform::open_dm(PlatformKind::X).with_credential_refresh(
                RefreshPolicy {
                    lead_time: Duration::from_secs(600),
                    min_age: Duration::ZERO,
                },
                Duration::from_secs(7200),
            ),
        );
        let mut platforms = PlatformRegistry::new();
        platforms.register(platform.clone());
        Harness {
            store,
            platform,
            platforms: Arc::new(platforms),
            _dir: dir,
        }
    }

    fn refresher(&self, owner: &str) -> CredentialRefresher {
        let mut config = RefreshConfig::new(owner);
        config.interval = Duration::from_millis(50);
        CredentialRefresher::new(self.store.clone(), self.platforms.clone(), config)
    }

    /// Connects an account whose refresh is due `due_in` from now (negative: overdue).
    async fn account(&self, due_in_secs: i64) -> Account {
        use inbox_core::Platform as _;
        let connected = self
            .platform
            .connect(&json!({"token": "t", "accountId": "42"}))
            .await
            .unwrap();
        let workspace = self.store.ensure_workspace("acme").await.unwrap().id;
        let now = Timestamp::now();
        let due = Timestamp::from_unix_millis(now.unix_millis() + due_in_secs * 1000);
        self.store
            .connect_account(NewAccount {
                workspace_id: workspace,
                platform: PlatformKind::X,
                platform_account_id: connected.platform_account_id,
                name: connected.name,
                username: None,
                credentials: connected.credentials,
                inbound_secret: None,
                credentials_expire_at: connected.credentials_expire_at,
                refresh_due_at: Some(due),
            })
            .await
            .unwrap()
            .account
    }

    async fn generation(&self, account: &Account) -> u64 {
        let context = self.store.account_context(&account.id).await.unwrap();
        let document: serde_json::Value =
            serde_json::from_str(context.credentials.expose_json()).unwrap();
        document["generation"].as_u64().unwrap_or(0)
    }
}

#[tokio::test]
async fn two_replicas_refreshing_at_once_make_one_refresh_and_share_its_result() {
    let h = Harness::new().await;
    let account = h.account(-60).await;
    let (a, b) = (h.refresher("replica-a"), h.refresher("replica-b"));
    let (first, second) = tokio::join!(a.refresh(&account), b.refresh(&account));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(
        h.platform.refreshes().len(),
        1,
        "one refresh for two callers"
    );
    assert_eq!(
        first.credentials.expose_json(),
        second.credentials.expose_json()
    );
    assert_eq!(
        h.generation(&account).await,
        1,
        "the new credentials are persisted"
    );
    // The next refresh is due 10 minutes before the new 2-hour expiry, not now.
    assert!(
        h.store
            .accounts_due_for_refresh(Timestamp::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let (expires, _) = h
        .store
        .credentials_expiry(&account.id)
        .await
        .unwrap()
        .unwrap();
    assert!(expires > Timestamp::now() + Duration::from_secs(7000));
}

#[tokio::test]
async fn a_permanent_refusal_marks_the_account_once() {
    let h = Harness::new().await;
    let account = h.account(-60).await;
    for _ in 0..2 {
        h.platform.fail_next(
            Operation::RefreshCredentials,
            Failure::ReauthRequired("invalid_grant".into()),
        );
    }
    let refresher = h.refresher("replica-a");
    assert!(matches!(
        refresher.refresh(&account).await,
        Err(Error::ReauthRequired { .. })
    ));
    assert!(matches!(
        refresher.refresh(&account).await,
        Err(Error::ReauthRequired { .. })
    ));
    let stored = h.store.find_account(&account.id).await.unwrap().unwrap();
    assert_eq!(stored.status, AccountStatus::ReauthRequired);
    assert!(
        h.store
            .accounts_due_for_refresh(Timestamp::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_transient_failure_postpones_the_next_attempt() {
    let h = Harness::new().await;
    let account = h.account(-60).await;
    h.platform.fail_next(
        Operation::RefreshCredentials,
        Failure::Unavailable { retry_after: None },
    );
    let refresher = h.refresher("replica-a");
    assert!(matches!(
        refresher.refresh(&account).await,
        Err(Error::Unavailable { .. })
    ));
    assert!(
        h.store
            .accounts_due_for_refresh(Timestamp::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let later = Timestamp::now() + Duration::from_secs(301);
    assert_eq!(
        h.store
            .accounts_due_for_refresh(later, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        h.generation(&account).await,
        0,
        "the old credentials stay until a refresh works"
    );
    assert_eq!(
        h.store
            .find_account(&account.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        AccountStatus::Active
    );
}

#[tokio::test]
async fn the_scheduler_refreshes_due_accounts_and_leaves_the_others() {
    let h = Harness::new().await;
    let due = h.account(-1).await;
    let shutdown = CancellationToken::new();
    let scheduler = tokio::spawn(run_refresh_scheduler(
        h.refresher("replica-a"),
        shutdown.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while h.generation(&due).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the due account was not refreshed"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        h.platform.refreshes().len(),
        1,
        "refreshed once, then not due any more"
    );
    shutdown.cancel();
    scheduler.await.unwrap();
}
