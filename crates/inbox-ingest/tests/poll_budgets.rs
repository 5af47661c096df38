//! Pollers draw from the platform's read budgets, in the same limiter as the API: X's 15 DM
//! lookups per 15 minutes become the poll cadence, and a poll over budget waits instead of
//! calling the platform.

use std::{sync::Arc, time::Duration};

use inbox_core::{
    BudgetCall, BudgetOperation, BudgetScope, Error, PlatformKind, PlatformRegistry, RateBudget,
    RateBudgets,
};
use inbox_ingest::{PollerConfig, Pollers};
use inbox_ratelimit::{LocalLimiter, PlatformBudgets};
use inbox_store::{Cipher, NewAccount, StoreConfig};
use inbox_testkit::memory_platform::MemoryPlatform;
use secrecy::SecretString;

async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn a_poll_over_the_read_budget_waits_instead_of_calling_the_platform() {
    let dir = tempfile::tempdir().unwrap();
    let store = inbox_store::open_and_migrate(&StoreConfig {
        url: format!("sqlite://{}", dir.path().join("inbox.db").display()),
        cipher: Cipher::from_base64_key(&Cipher::generate_key()).unwrap(),
        max_connections: 4,
    })
    .await
    .unwrap();
    // One DM lookup per hour: after the first poll the next one is an hour away.
    let lookups = RateBudget::new(
        "dm_lookups",
        BudgetScope::Account,
        BudgetOperation::Read,
        1,
        Duration::from_secs(3_600),
    );
    let x = Arc::new(
        MemoryPlatform::open_dm(PlatformKind::X)
            .configure(|caps| caps.rate_budgets = vec![lookups]),
    );
    let mut registry = PlatformRegistry::new();
    registry.register(x.clone());
    let registry = Arc::new(registry);
    let budgets = Arc::new(PlatformBudgets::new(
        Arc::new(LocalLimiter::new()),
        Vec::new(),
    ));
    budgets.register_all(&registry).unwrap();

    let workspace = store.ensure_workspace("acme").await.unwrap().id;
    let account = store
        .connect_account(NewAccount {
            workspace_id: workspace,
            platform: PlatformKind::X,
            platform_account_id: "2244994945".into(),
            name: "Support".into(),
            username: None,
            credentials: inbox_core::Credentials::from_json_text("{}".into()),
            inbound_secret: Some(SecretString::from("s3cret")),
            credentials_expire_at: None,
            refresh_due_at: None,
        })
        .await
        .unwrap()
        .account;
    x.queue_poll("2244994945", b"first".to_vec());

    let mut config = PollerConfig::new("replica-a");
    config.lease = Duration::from_millis(600);
    config.budgets = budgets.clone();
    let pollers = Pollers::new(store.clone(), registry, config);
    pollers.start(&account);

    eventually("the first poll is stored", || async {
        store.poll_cursor(&account.id).await.unwrap().as_deref() == Some("1")
    })
    .await;
    // The poller spent the account's lookup: the budget now refuses for about an hour.
    let call = BudgetCall::new(PlatformKind::X, BudgetOperation::Read, "2244994945");
    match budgets.acquire(&call).await {
        Err(Error::RateLimited { retry_after }) => {
            assert!(retry_after > Duration::from_secs(3_500), "{retry_after:?}");
        }
        other => panic!("expected the budget to be spent, got {other:?}"),
    }
    // A message arrives; the poller keeps its lease and waits rather than polling. Several
    // lease renewals later the payload is still unpolled.
    x.queue_poll("2244994945", b"second".to_vec());
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(pollers.is_running(&account.id));
    assert_eq!(
        store.poll_cursor(&account.id).await.unwrap().as_deref(),
        Some("1"),
        "no poll happened over budget"
    );
    pollers.shutdown().await;
}
