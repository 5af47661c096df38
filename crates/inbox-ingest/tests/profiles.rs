//! Naming participants the payload knows only by id: the processor asks the platform's
//! profile API once (within the read budget), reuses the stored name afterwards, never
//! overwrites a known name with a bare id, and never fails a batch over a lookup.

use std::sync::Arc;

use async_trait::async_trait;
use inbox_core::{
    Account, BudgetCall, BudgetReport, Direction, Error, InboundMessage, PlatformKind,
    PlatformRegistry, RateBudgets, Timestamp, Unlimited,
};
use inbox_ingest::{
    processor,
    profiles::{ProfileCache, Profiles},
};
use inbox_store::{Cipher, NewAccount, NewRawEvent, Store, StoreConfig};
use inbox_testkit::memory_platform::{Failure, MemoryPlatform, Operation};

struct Harness {
    store: Arc<dyn Store>,
    platform: Arc<MemoryPlatform>,
    registry: PlatformRegistry,
    account: Account,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        url: format!("sqlite://{}", dir.path().join("inbox.db").display()),
        cipher: Cipher::from_base64_key(&Cipher::generate_key()).unwrap(),
        max_connections: 4,
    };
    let store = inbox_store::open_and_migrate(&config).await.unwrap();
    let platform =
        Arc::new(MemoryPlatform::meta_like(PlatformKind::Instagram).with_profile_lookup());
    let mut registry = PlatformRegistry::new();
    registry.register(platform.clone());
    let workspace = store.ensure_workspace("acme").await.unwrap().id;
    let account = store
        .connect_account(NewAccount {
            workspace_id: workspace,
            platform: PlatformKind::Instagram,
            platform_account_id: "17841400000000001".into(),
            name: "Shop".into(),
            username: Some("shop".into()),
            credentials: inbox_core::Credentials::from_json_text("{}".into()),
            inbound_secret: None,
            credentials_expire_at: None,
            refresh_due_at: None,
        })
        .await
        .unwrap()
        .account;
    Harness {
        store,
        platform,
        registry,
        account,
        _dir: dir,
    }
}

/// A message as Meta webhooks give it: the participant named by id.
fn unnamed(participant: &str, n: i64) -> InboundMessage {
    let mut message = MemoryPlatform::text_message(
        participant,
        participant,
        &format!("message {n}"),
        Timestamp::from_unix_seconds(1_700_000_000 + n),
    );
    message.participant.name = participant.to_owned();
    message.sender.name = participant.to_owned();
    message
}

impl Harness {
    async fn process(&self, profiles: &Profiles, messages: &[InboundMessage]) {
        self.store
            .insert_raw_events(vec![NewRawEvent {
                platform: PlatformKind::Instagram,
                account_id: Some(self.account.id.clone()),
                payload: MemoryPlatform::payload(messages),
                received_at: Timestamp::now(),
            }])
            .await
            .unwrap();
        for raw in self
            .store
            .claim_raw_events("test", 10, std::time::Duration::from_secs(30))
            .await
            .unwrap()
        {
            processor::process(self.store.as_ref(), &self.registry, profiles, &raw, 10).await;
        }
    }

    async fn participant_name(&self, id: &str) -> Option<String> {
        self.store
            .find_conversation(&self.account.id, id)
            .await
            .unwrap()
            .map(|conversation| conversation.participant.name)
    }
}

fn profiles(budgets: Arc<dyn RateBudgets>) -> Profiles {
    Profiles {
        cache: ProfileCache::new(std::time::Duration::from_secs(3600), 100),
        budgets,
    }
}

#[tokio::test]
async fn names_are_looked_up_once_then_reused_and_never_overwritten() {
    let h = harness().await;
    let names = profiles(Arc::new(Unlimited));
    h.process(&names, &[unnamed("42", 1), unnamed("42", 2)])
        .await;
    assert_eq!(
        h.participant_name("42").await.as_deref(),
        Some("Name of 42")
    );
    assert_eq!(
        h.platform.profile_lookups(),
        ["42"],
        "one lookup for the batch"
    );

    // A new process (cold cache) whose lookups fail: the stored name is used, not the id.
    h.platform.fail_next(
        Operation::FetchParticipant,
        Failure::platform("230", "no consent"),
    );
    let cold = profiles(Arc::new(Unlimited));
    h.process(&cold, &[unnamed("42", 3)]).await;
    assert_eq!(
        h.participant_name("42").await.as_deref(),
        Some("Name of 42")
    );
    assert_eq!(
        h.platform.profile_lookups().len(),
        1,
        "the stored name needs no lookup"
    );
}

#[tokio::test]
async fn failed_lookups_keep_the_id_and_the_batch() {
    let h = harness().await;
    let names = profiles(Arc::new(Unlimited));
    h.platform.fail_next(
        Operation::FetchParticipant,
        Failure::platform("230", "no consent"),
    );
    h.process(&names, &[unnamed("7", 1)]).await;
    assert_eq!(
        h.participant_name("7").await.as_deref(),
        Some("7"),
        "stored, named by id"
    );
    // The failure is remembered: the next message does not ask again.
    h.process(&names, &[unnamed("7", 2)]).await;
    assert_eq!(h.platform.profile_lookups(), ["7"]);
}

#[derive(Debug)]
struct Exhausted;

#[async_trait]
impl RateBudgets for Exhausted {
    async fn acquire(&self, _call: &BudgetCall<'_>) -> inbox_core::Result<()> {
        Err(Error::RateLimited {
            retry_after: std::time::Duration::from_secs(60),
        })
    }
    async fn report(&self, _report: &BudgetReport<'_>) {}
}

#[tokio::test]
async fn lookups_wait_for_the_read_budget() {
    let h = harness().await;
    h.process(&profiles(Arc::new(Exhausted)), &[unnamed("9", 1)])
        .await;
    assert!(
        h.platform.profile_lookups().is_empty(),
        "nothing is called without budget"
    );
    assert_eq!(h.participant_name("9").await.as_deref(), Some("9"));
}

#[tokio::test]
async fn echoes_are_named_after_the_account() {
    let h = harness().await;
    let mut echo = unnamed("42", 1);
    echo.direction = Direction::Outgoing;
    echo.sender = inbox_core::Participant {
        id: h.account.platform_account_id.clone(),
        name: h.account.platform_account_id.clone(),
        username: None,
        picture: None,
    };
    h.process(&profiles(Arc::new(Unlimited)), &[echo]).await;
    let conversation = h
        .store
        .find_conversation(&h.account.id, "42")
        .await
        .unwrap()
        .unwrap();
    let page = h
        .store
        .list_messages(
            &h.account.workspace_id,
            &conversation.id,
            inbox_store::SortOrder::Asc,
            &inbox_core::PageRequest::from_query(None, None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(page.data[0].sender.name, "Shop");
    assert_eq!(page.data[0].sender.username.as_deref(), Some("shop"));
    assert_eq!(conversation.participant.name, "Name of 42");
}
