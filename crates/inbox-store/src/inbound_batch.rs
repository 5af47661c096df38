//! Applying a batch of claimed raw events (`Store::apply_inbound_batch`).
//!
//! The common case is one transaction for the whole batch ([`apply_together`]): the batch
//! reads up front which of its messages are stored and their threads, and writes its messages,
//! outbox rows, conversation summaries and processed marks together at the end, with multi-row
//! statements. On SQLite a commit and each statement (a round trip to sqlx's worker thread)
//! are what a processed payload costs, so sharing them is what lets the processor keep up with
//! the webhook acknowledgements.
//!
//! When anything in that transaction fails, it is rolled back and the batch is applied again
//! with each item in a savepoint of its own ([`apply_in_savepoints`]), its writes flushed
//! before the savepoint is released: a failing item is rolled back alone and the others commit,
//! exactly as when every raw event had its own transaction. Failures are rare, so the second
//! pass costs nothing in the common case and keeps one bad payload from holding back a batch.

use inbox_core::{Result, Timestamp};

use crate::{
    AppliedInbound, InboundItem,
    db::{Conn, Tx},
    messages::apply_inbound_events,
    outbox::Recorded,
    pending::PendingWrites,
};

/// Applies `items` in the caller's transaction, with one flush at the end. Returns what each
/// item did and what the flush recorded; on `Err` the transaction must be rolled back.
pub(crate) async fn apply_together(
    conn: &mut Conn<'_>,
    items: &[InboundItem],
) -> Result<(Vec<AppliedInbound>, Recorded)> {
    let mut writes = PendingWrites::for_batch(conn, items).await?;
    let mut applied = Vec::with_capacity(items.len());
    for item in items {
        applied.push(apply_item(conn, &mut writes, item).await?);
    }
    let recorded = writes.flush(conn, Timestamp::now()).await?;
    Ok((applied, recorded))
}

/// Applies `items` in the caller's transaction, each in a savepoint with its own flush.
/// Returns each item's outcome and the deliveries the kept items queued; `Err` only when a
/// savepoint could not be taken, released or rolled back (the transaction is then unusable).
pub(crate) async fn apply_in_savepoints(
    tx: &mut Tx<'_>,
    items: &[InboundItem],
) -> Result<(Vec<Result<AppliedInbound>>, usize)> {
    let mut writes = PendingWrites::default();
    let mut outcomes = Vec::with_capacity(items.len());
    let mut deliveries = 0;
    for item in items {
        let mut savepoint = tx.savepoint().await?;
        let outcome: Result<AppliedInbound> = async {
            let mut conn = savepoint.conn();
            let applied = apply_item(&mut conn, &mut writes, item).await?;
            writes.flush(&mut conn, Timestamp::now()).await?;
            Ok(applied)
        }
        .await;
        match outcome {
            Ok(applied) => {
                savepoint.commit().await?;
                deliveries += applied.deliveries_queued;
                outcomes.push(Ok(applied));
            }
            Err(err) => {
                writes.discard();
                savepoint.rollback().await?;
                outcomes.push(Err(err));
            }
        }
    }
    Ok((outcomes, deliveries))
}

/// One item: its events for each account, then its raw event marked processed.
async fn apply_item(
    conn: &mut Conn<'_>,
    writes: &mut PendingWrites,
    item: &InboundItem,
) -> Result<AppliedInbound> {
    let now = Timestamp::now();
    let mut total = AppliedInbound::default();
    for routed in &item.routed {
        let applied =
            apply_inbound_events(conn, writes, &routed.account, &routed.events, now).await?;
        total.messages_created += applied.messages_created;
        total.messages_updated += applied.messages_updated;
        total.events_recorded += applied.events_recorded;
        total.deliveries_queued += applied.deliveries_queued;
    }
    writes.finish_raw_event(item.raw.clone(), item.error.clone());
    Ok(total)
}
