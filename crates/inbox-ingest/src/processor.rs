//! The processor turns stored raw payloads into messages and events.
//!
//! It claims unprocessed raw events (a lease, so a crashed replica's claims are taken over),
//! parses each with its platform adapter, routes the events to their account, and hands them
//! to `Store::apply_inbound`, which writes the messages, the outbound events and their
//! deliveries in one transaction and marks the raw event processed. A payload that cannot be
//! parsed or routed is marked done with the reason and kept for inspection; a database failure
//! leaves it claimed until the lease expires, so it is retried, never lost.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use inbox_core::{InboundKind, PlatformRegistry, RateBudgets, Unlimited};
use inbox_store::{RawEvent, Store};
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
        for raw in claimed {
            process(
                store.as_ref(),
                &platforms,
                &profiles,
                &raw,
                config.max_attempts,
            )
            .await;
        }
    }
}

/// Processes one raw event. Errors are logged here: the processor never stops on one event.
/// Participants the payload names only by id are named through `profiles` first.
pub async fn process(
    store: &dyn Store,
    platforms: &PlatformRegistry,
    profiles: &Profiles,
    raw: &RawEvent,
    max_attempts: u32,
) {
    let platform_name = raw.platform.as_str();
    if raw.attempts >= max_attempts {
        tracing::error!(raw_event = %raw.id, attempts = raw.attempts, "giving up on a raw inbound event");
        finish(
            store,
            raw,
            Some(&format!("gave up after {} attempts", raw.attempts)),
        )
        .await;
        return;
    }
    let platform = match platforms.get(raw.platform) {
        Ok(platform) => platform,
        Err(_) => {
            finish(
                store,
                raw,
                Some("the platform is not configured on this gateway"),
            )
            .await;
            return;
        }
    };
    let events = match platform.parse_inbound(&raw.payload) {
        Ok(events) => events,
        Err(err) => {
            tracing::warn!(raw_event = %raw.id, platform = platform_name, account = ?raw.account_id, error = %err, "inbound payload not parseable; kept raw");
            metrics::counter!("inbox_inbound_unparseable_total", "platform" => platform_name)
                .increment(1);
            finish(store, raw, Some(&err.to_string())).await;
            return;
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

    let mut applied_any = false;
    let mut unrouted = Vec::new();
    for (platform_account_id, mut kinds) in by_account {
        let account = match (&raw.account_id, &platform_account_id) {
            (Some(id), _) => store.find_account(id).await,
            (None, Some(platform_id)) => {
                store
                    .find_account_by_platform_id(raw.platform, platform_id)
                    .await
            }
            (None, None) => Ok(None),
        };
        let account = match account {
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
                return;
            }
        };
        profiles
            .name_participants(store, platform, &account, &mut kinds)
            .await;
        match store.apply_inbound(&raw.id, &account, kinds).await {
            Ok(applied) => {
                applied_any = true;
                metrics::counter!("inbox_inbound_messages_total", "platform" => platform_name)
                    .increment(applied.messages_created as u64);
                tracing::debug!(raw_event = %raw.id, account = %account.id, ?applied, "inbound applied");
            }
            Err(err) => {
                tracing::error!(raw_event = %raw.id, account = %account.id, error = %err, "applying inbound events failed; will retry");
                return;
            }
        }
    }
    if !applied_any {
        let reason = (!unrouted.is_empty())
            .then(|| format!("no connected account for {}", unrouted.join(", ")));
        finish(store, raw, reason.as_deref()).await;
    }
}

async fn finish(store: &dyn Store, raw: &RawEvent, error: Option<&str>) {
    if let Err(err) = store.finish_raw_event(&raw.id, error).await {
        tracing::error!(raw_event = %raw.id, error = %err, "marking a raw event done failed; it will be retried");
    }
}
