//! The processor turns stored raw payloads into messages and events.
//!
//! It claims unprocessed raw events in batches (a lease, so a crashed replica's claims are
//! taken over), parses each with its platform adapter, routes the events to their account, and
//! hands the whole batch to `Store::apply_inbound_batch`, which writes the messages, the
//! outbound events and their deliveries and marks each raw event processed in one transaction
//! (one commit per batch is what lets it keep up with the webhook acknowledgements on SQLite).
//! A payload that cannot be parsed or routed is marked done with the reason and kept for
//! inspection; a database failure leaves it claimed until the lease expires, so it is retried,
//! never lost, and never holds back the rest of its batch.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use inbox_core::{
    Account, AccountId, InboundKind, PlatformKind, PlatformRegistry, RateBudgets, Unlimited,
};
use inbox_store::{InboundItem, RawEvent, RoutedEvents, Store};
use tokio_util::sync::CancellationToken;

use crate::profiles::{ProfileCache, Profiles};

/// Processor settings.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// This process's claim owner name (unique per process).
    pub owner: String,
    /// Raw events claimed at once.
    pub batch: u32,
    /// How long a claim lasts before another worker may take it over.
    pub lease: Duration,
    /// How often to look for work when nothing signalled it (other replicas' writes).
    pub idle_poll: Duration,
    /// Claims of one raw event before it is given up as undeliverable.
    pub max_attempts: u32,
    /// The rate budgets profile lookups are charged to (the server's limiter).
    pub budgets: Arc<dyn RateBudgets>,
    /// How long a looked-up participant name is reused.
    pub profile_ttl: Duration,
}

impl ProcessorConfig {
    /// Defaults for `owner`.
    pub fn new(owner: impl Into<String>) -> Self {
        ProcessorConfig {
            owner: owner.into(),
            batch: 200,
            // A batch takes well under a second; the lease only bounds how long a crashed
            // replica's claimed payloads wait before another replica processes them.
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_millis(500),
            max_attempts: 10,
            budgets: Arc::new(Unlimited),
            // Names change rarely; a day keeps lookups to about one per person per day.
            profile_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Runs the processor until `shutdown` is cancelled; the batch in hand is finished first.
pub async fn run_processor(
    store: Arc<dyn Store>,
    platforms: Arc<PlatformRegistry>,
    config: ProcessorConfig,
    shutdown: CancellationToken,
) {
    let wake = store.raw_events_notify();
    let profiles = Profiles {
        cache: ProfileCache::new(config.profile_ttl, 50_000),
        budgets: config.budgets.clone(),
    };
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        let claimed = match store
            .claim_raw_events(&config.owner, config.batch, config.lease)
            .await
        {
            Ok(claimed) => {
                failures = 0;
                claimed
            }
            Err(err) => {
                failures += 1;
                tracing::error!(error = %err, "claiming raw inbound events failed");
                let pause = Duration::from_millis(200 * 2u64.pow(failures.min(6)));
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shutdown.cancelled() => {}
                }
                continue;
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(config.idle_poll) => {}
                () = shutdown.cancelled() => {}
            }
            continue;
        }
        process_batch(
            store.as_ref(),
            &platforms,
            &profiles,
            &claimed,
            config.max_attempts,
        )
        .await;
    }
}

/// Processes one raw event: [`process_batch`] of one.
pub async fn process(
    store: &dyn Store,
    platforms: &PlatformRegistry,
    profiles: &Profiles,
    raw: &RawEvent,
    max_attempts: u32,
) {
    process_batch(
        store,
        platforms,
        profiles,
        std::slice::from_ref(raw),
        max_attempts,
    )
    .await;
}

/// Processes claimed raw events: parses and routes each (every distinct account is looked up
/// once per batch; participants the payload names only by id are named through `profiles`),
/// then applies them all with one [`Store::apply_inbound_batch`]. Errors are logged here: the
/// processor never stops on one event, and an event that fails stays claimed and is retried
/// once its lease expires.
pub async fn process_batch(
    store: &dyn Store,
    platforms: &PlatformRegistry,
    profiles: &Profiles,
    claimed: &[RawEvent],
    max_attempts: u32,
) {
    let mut accounts = AccountLookups::default();
    let mut items = Vec::with_capacity(claimed.len());
    let mut sources = Vec::with_capacity(claimed.len());
    for raw in claimed {
        if let Some(item) =
            route(store, platforms, profiles, &mut accounts, raw, max_attempts).await
        {
            sources.push(raw);
            items.push(item);
        }
    }
    if items.is_empty() {
        return;
    }
    let applies: Vec<bool> = items.iter().map(|item| !item.routed.is_empty()).collect();
    let outcomes = match store.apply_inbound_batch(items).await {
        Ok(outcomes) => outcomes,
        Err(err) => {
            tracing::error!(raw_events = sources.len(), error = %err, "applying a batch of inbound events failed; will retry");
            return;
        }
    };
    for ((raw, applies), outcome) in sources.into_iter().zip(applies).zip(outcomes) {
        match (outcome, applies) {
            (Ok(applied), true) => {
                metrics::counter!("inbox_inbound_messages_total", "platform" => raw.platform.as_str())
                    .increment(applied.messages_created as u64);
                tracing::debug!(raw_event = %raw.id, ?applied, "inbound applied");
            }
            (Ok(_), false) => {}
            (Err(err), true) => {
                tracing::error!(raw_event = %raw.id, error = %err, "applying inbound events failed; will retry");
            }
            (Err(err), false) => {
                tracing::error!(raw_event = %raw.id, error = %err, "marking a raw event done failed; it will be retried");
            }
        }
    }
}

/// Parses one raw event and routes its events to their accounts. `None` leaves it claimed, to
/// be retried (an account lookup failed); a payload that cannot be parsed or routed becomes an
/// item with nothing to apply and the reason as its error.
async fn route(
    store: &dyn Store,
    platforms: &PlatformRegistry,
    profiles: &Profiles,
    accounts: &mut AccountLookups,
    raw: &RawEvent,
    max_attempts: u32,
) -> Option<InboundItem> {
    let platform_name = raw.platform.as_str();
    let finished = |error: String| InboundItem {
        raw: raw.id.clone(),
        routed: Vec::new(),
        error: Some(error),
    };
    if raw.attempts >= max_attempts {
        tracing::error!(raw_event = %raw.id, attempts = raw.attempts, "giving up on a raw inbound event");
        return Some(finished(format!("gave up after {} attempts", raw.attempts)));
    }
    let Ok(platform) = platforms.get(raw.platform) else {
        return Some(finished(
            "the platform is not configured on this gateway".into(),
        ));
    };
    let events = match platform.parse_inbound(&raw.payload) {
        Ok(events) => events,
        Err(err) => {
            tracing::warn!(raw_event = %raw.id, platform = platform_name, account = ?raw.account_id, error = %err, "inbound payload not parseable; kept raw");
            metrics::counter!("inbox_inbound_unparseable_total", "platform" => platform_name)
                .increment(1);
            return Some(finished(err.to_string()));
        }
    };

    // Group by addressed account, keeping the payload's order within each account.
    let mut by_account: BTreeMap<Option<String>, Vec<InboundKind>> = BTreeMap::new();
    for event in events {
        if let InboundKind::Ignored { reason } = &event.kind {
            tracing::info!(raw_event = %raw.id, platform = platform_name, account = ?raw.account_id, reason = %reason, "inbound event not mapped; kept raw");
            metrics::counter!("inbox_inbound_ignored_total", "platform" => platform_name)
                .increment(1);
            continue;
        }
        by_account
            .entry(event.platform_account_id)
            .or_default()
            .push(event.kind);
    }

    let mut routed = Vec::new();
    let mut unrouted = Vec::new();
    for (platform_account_id, mut kinds) in by_account {
        let account = match accounts
            .find(store, raw, platform_account_id.as_deref())
            .await
        {
            Ok(Some(account)) => account,
            Ok(None) => {
                let who = raw
                    .account_id
                    .as_ref()
                    .map(ToString::to_string)
                    .or(platform_account_id)
                    .unwrap_or_else(|| "an unnamed account".into());
                tracing::warn!(raw_event = %raw.id, platform = platform_name, account = %who, "inbound events for an account that is not connected; acknowledged and dropped");
                unrouted.push(who);
                continue;
            }
            Err(err) => {
                tracing::error!(raw_event = %raw.id, error = %err, "looking up the inbound account failed; will retry");
                return None;
            }
        };
        profiles
            .name_participants(store, platform, &account, &mut kinds)
            .await;
        routed.push(RoutedEvents {
            account,
            events: kinds,
        });
    }
    // The reason is kept only when nothing at all was applied.
    let error = (routed.is_empty() && !unrouted.is_empty())
        .then(|| format!("no connected account for {}", unrouted.join(", ")));
    Some(InboundItem {
        raw: raw.id.clone(),
        routed,
        error,
    })
}

/// The accounts one batch routes to, each read from the store once (absent ones too).
#[derive(Debug, Default)]
struct AccountLookups {
    by_id: HashMap<AccountId, Option<Account>>,
    by_platform_id: HashMap<(PlatformKind, String), Option<Account>>,
}

impl AccountLookups {
    /// The account `raw` is addressed to: the one it names, else the one its event names.
    async fn find(
        &mut self,
        store: &dyn Store,
        raw: &RawEvent,
        platform_account_id: Option<&str>,
    ) -> inbox_core::Result<Option<Account>> {
        match (&raw.account_id, platform_account_id) {
            (Some(id), _) => {
                if let Some(found) = self.by_id.get(id) {
                    return Ok(found.clone());
                }
                let found = store.find_account(id).await?;
                self.by_id.insert(id.clone(), found.clone());
                Ok(found)
            }
            (None, Some(platform_id)) => {
                let key = (raw.platform, platform_id.to_owned());
                if let Some(found) = self.by_platform_id.get(&key) {
                    return Ok(found.clone());
                }
                let found = store
                    .find_account_by_platform_id(raw.platform, platform_id)
                    .await?;
                self.by_platform_id.insert(key, found.clone());
                Ok(found)
            }
            (None, None) => Ok(None),
        }
    }
}
