//! Housekeeping: deletes what the gateway no longer needs, so a long-running database stays
//! the size of what is in use.
//!
//! * Raw inbound payloads, once processed, are kept for `INBOX_RAW_EVENT_RETENTION_DAYS`
//!   (default 30) for inspection and replay, then deleted; the messages and events they became
//!   stay. Unprocessed payloads are never deleted.
//! * Idempotency keys past their 24 hours count as unused anyway; they are deleted.
//!
//! Every [`HOUSEKEEPING_EVERY`] one replica (the lease `housekeeping`) deletes in chunks of
//! [`CHUNK`] rows, one short transaction each, so the writer is never held for long (on
//! SQLite the webhook acknowledgements share it). Counts go to the log and to
//! `inbox_pruned_total{what}`; a failure is logged and the next round starts over.

use std::{sync::Arc, time::Duration};

use inbox_core::{Result, Timestamp};
use inbox_store::Store;
use tokio_util::sync::CancellationToken;

/// How often a replica offers to do the housekeeping.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10 * 60);

/// Rows deleted per transaction.
const CHUNK: u32 = 1_000;

/// What to keep, and for how long.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Processed raw payloads older than this go; `None` keeps them.
    pub raw_events: Option<Duration>,
    /// Idempotency keys older than this go: the API's idempotency time to live.
    pub idempotency_keys: Duration,
}

/// What one round deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Processed raw payloads.
    pub raw_events: u64,
    /// Idempotency keys.
    pub idempotency_keys: u64,
}

fn before(now: Timestamp, age: Duration) -> Timestamp {
    let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_unix_millis(now.unix_millis().saturating_sub(age_ms))
}

/// Deletes everything past its retention at `now`, chunk after chunk, until none is left.
///
/// # Errors
/// The first failing chunk's error; what earlier chunks deleted stays deleted.
pub async fn prune_once(
    store: &dyn Store,
    retention: &Retention,
    now: Timestamp,
) -> Result<Pruned> {
    let mut pruned = Pruned::default();
    if let Some(age) = retention.raw_events {
        pruned.raw_events = in_chunks(store, Kept::RawEvents, before(now, age)).await?;
    }
    pruned.idempotency_keys = in_chunks(
        store,
        Kept::IdempotencyKeys,
        before(now, retention.idempotency_keys),
    )
    .await?;
    Ok(pruned)
}

/// What housekeeping deletes.
#[derive(Debug, Clone, Copy)]
enum Kept {
    RawEvents,
    IdempotencyKeys,
}

/// Deletes `what` from before `cutoff` [`CHUNK`] rows at a time until a chunk comes back
/// short, counting under `inbox_pruned_total{what}`; returns the total.
async fn in_chunks(store: &dyn Store, what: Kept, cutoff: Timestamp) -> Result<u64> {
    let label = match what {
        Kept::RawEvents => "raw_events",
        Kept::IdempotencyKeys => "idempotency_keys",
    };
    let mut total = 0;
    loop {
        let deleted = match what {
            Kept::RawEvents => store.prune_raw_events(cutoff, CHUNK).await?,
            Kept::IdempotencyKeys => store.prune_idempotency_keys(cutoff, CHUNK).await?,
        };
        total += deleted;
        metrics::counter!("inbox_pruned_total", "what" => label).increment(deleted);
        if deleted < u64::from(CHUNK) {
            return Ok(total);
        }
        // Let the acknowledgements in between chunks.
        tokio::task::yield_now().await;
    }
}

/// Runs [`prune_once`] every [`HOUSEKEEPING_EVERY`] (the first round a minute after start) on
/// whichever replica holds the lease, until `shutdown`.
pub async fn run(
    store: Arc<dyn Store>,
    owner: String,
    retention: Retention,
    shutdown: CancellationToken,
) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = HOUSEKEEPING_EVERY;
        match store
            .try_lease("housekeeping", &owner, HOUSEKEEPING_EVERY)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue, // another replica does it this round
            Err(err) => {
                tracing::warn!(error = %err, "housekeeping could not take its lease; trying next round");
                continue;
            }
        }
        match prune_once(store.as_ref(), &retention, Timestamp::now()).await {
            Ok(pruned) if pruned != Pruned::default() => tracing::info!(
                raw_events = pruned.raw_events,
                idempotency_keys = pruned.idempotency_keys,
                "housekeeping deleted what is past its retention"
            ),
            Ok(_) => tracing::debug!("housekeeping found nothing to delete"),
            Err(err) => {
                tracing::warn!(error = %err, "housekeeping failed; it starts over next round");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use inbox_core::PlatformKind;
    use inbox_store::{Cipher, NewRawEvent, StoreConfig};

    use super::*;

    #[tokio::test]
    async fn a_round_deletes_past_retention_in_chunks_and_keeps_the_rest() {
        let store = inbox_store::open_and_migrate(&StoreConfig {
            url: "sqlite::memory:".into(),
            cipher: Cipher::from_base64_key(&Cipher::generate_key()).unwrap(),
            max_connections: 1,
        })
        .await
        .unwrap();
        let events = (0..2_500)
            .map(|n| NewRawEvent {
                platform: PlatformKind::Telegram,
                account_id: None,
                payload: format!("{{\"n\":{n}}}").into_bytes(),
                received_at: Timestamp::now(),
            })
            .collect();
        store.insert_raw_events(events).await.unwrap();
        let claimed = store
            .claim_raw_events("test", 2_400, Duration::from_secs(60))
            .await
            .unwrap();
        for event in &claimed {
            store.finish_raw_event(&event.id, None).await.unwrap();
        }
        let retention = Retention {
            raw_events: Some(Duration::from_secs(30 * 86_400)),
            idempotency_keys: Duration::from_secs(86_400),
        };
        // Today nothing is past its retention.
        assert_eq!(
            prune_once(store.as_ref(), &retention, Timestamp::now())
                .await
                .unwrap(),
            Pruned::default()
        );
        // Thirty-one days on, the processed payloads go (three chunks), the rest stay.
        let later = Timestamp::from_unix_millis(Timestamp::now().unix_millis() + 31 * 86_400_000);
        let pruned = prune_once(store.as_ref(), &retention, later).await.unwrap();
        assert_eq!(pruned.raw_events, 2_400);
        let left = store
            .claim_raw_events("test", 1_000, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(left.len(), 100, "unprocessed payloads are never deleted");
        // Keeping payloads forever deletes none of them.
        let forever = Retention {
            raw_events: None,
            ..retention
        };
        for event in &left {
            store.finish_raw_event(&event.id, None).await.unwrap();
        }
        let pruned = prune_once(store.as_ref(), &forever, later).await.unwrap();
        assert_eq!(pruned.raw_events, 0);
    }
}
