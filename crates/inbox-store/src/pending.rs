//! Writes that applying inbound messages defers to the end of its transaction, so that a batch
//! of hundreds of raw events shares one multi-row statement per kind of write instead of paying
//! a round trip each: the outbound events and their deliveries (the outbox), the conversation
//! summaries (preview, `lastMessageAt`, `lastInboundAt`, unread count) that new messages move,
//! and the marking of raw events as processed.
//!
//! They are flushed inside the same transaction as the changes that caused them, before it
//! commits (or, when a batch is applied item by item, before the item's savepoint is released),
//! so the outbox guarantee holds: an event is queued exactly when its change commits. Nothing
//! in the transaction reads them back before the flush: events and deliveries are read by the
//! delivery worker, summaries by the API and raw-event marks by claims, all in other
//! transactions; an operation that returns a summary flushes before reading it.
//!
//! Each summary change is folded per conversation so that one `UPDATE` has exactly the effect
//! of the per-message updates it replaces, applied in insertion order (see
//! [`PendingWrites::touch_conversation`]).
//!
//! A batch applied in one transaction that is rolled back as a whole on any error (see
//! `inbound_batch`) goes further ([`PendingWrites::for_batch`]): it reads up front which of its
//! messages are stored and their threads, and defers the message rows too. A new message in a
//! known thread then costs no statement of its own. Anything that reads messages (an edit, a
//! status, a reply's target) first flushes the deferred message rows
//! ([`PendingWrites::flush_messages`]), so it sees them as if they had been inserted at once.

use std::collections::{HashMap, HashSet};

use inbox_core::{
    AccountId, Conversation, ConversationId, DeliveryStatus, Event, InboundKind, Message,
    MessageId, RawEventId, Result, Timestamp, WorkspaceId,
};

use crate::{
    InboundItem,
    db::{Conn, cached_chunks, generated_sql, placeholders},
    outbox::{
        NewDelivery, Recorded, Subscriber, deliveries_for, insert_deliveries, insert_events,
        subscribers,
    },
    rows::{ConversationRow, json_text},
};

/// What a batch applied as a whole knows without asking the database again: which of its
/// messages are stored (read up front, plus those it inserted) and the threads they belong to.
/// Valid only while nothing is rolled back to a savepoint, which is why the item-by-item pass
/// never has one.
#[derive(Debug, Default)]
struct KnownRows {
    stored_messages: HashSet<(AccountId, String)>,
    threads: HashMap<(AccountId, String), Conversation>,
}

/// The folded effect of new messages on one conversation's summary.
#[derive(Debug)]
struct SummaryChange {
    conversation_id: ConversationId,
    /// The newest message's timestamp and preview; of equally new messages the one inserted
    /// last, because each per-message update replaced the preview when not older (`<=`).
    newest_at: Timestamp,
    newest_preview: String,
    /// The newest incoming message's timestamp.
    newest_inbound_at: Option<Timestamp>,
    /// Incoming messages, each one more unread.
    incoming: i64,
}

/// Writes waiting for [`PendingWrites::flush`]. One per transaction: it also remembers each
/// workspace's endpoints, read on the first event of that workspace.
#[derive(Debug, Default)]
pub(crate) struct PendingWrites {
    /// The enabled endpoints per workspace, as read in this transaction. Kept across flushes
    /// and discards: nothing in an inbound transaction changes endpoints.
    subscribers: HashMap<WorkspaceId, Vec<Subscriber>>,
    events: Vec<Event>,
    /// Deliveries in the order their events were recorded (their ids are ordered the same way,
    /// and the delivery worker takes due deliveries by id).
    deliveries: Vec<(WorkspaceId, NewDelivery)>,
    summaries: Vec<SummaryChange>,
    summary_index: HashMap<ConversationId, usize>,
    /// Raw events to mark processed, with the error to keep on each (`None`: applied).
    processed: Vec<(RawEventId, Option<String>)>,
    recorded: Recorded,
    /// Set for a batch applied as a whole: then message rows are deferred too.
    known: Option<KnownRows>,
    /// Deferred message rows with their insertion time, in insertion order.
    messages: Vec<(Message, Timestamp)>,
}

impl PendingWrites {
    /// Pending writes for `items` applied in one transaction that is rolled back as a whole on
    /// any error: reads which of their messages are stored and the threads of their messages
    /// (a few statements for the batch instead of one per message), and defers message rows.
    pub(crate) async fn for_batch(conn: &mut Conn<'_>, items: &[InboundItem]) -> Result<Self> {
        let mut wanted: HashMap<&AccountId, (Vec<&str>, Vec<&str>)> = HashMap::new();
        for routed in items.iter().flat_map(|item| &item.routed) {
            for event in &routed.events {
                let (InboundKind::Message(message) | InboundKind::Edited { message, .. }) = event
                else {
                    continue;
                };
                let (message_ids, thread_ids) = wanted.entry(&routed.account.id).or_default();
                message_ids.push(&message.platform_message_id);
                thread_ids.push(&message.platform_conversation_id);
            }
        }
        let mut known = KnownRows::default();
        for (account, (mut message_ids, mut thread_ids)) in wanted {
            message_ids.sort_unstable();
            message_ids.dedup();
            thread_ids.sort_unstable();
            thread_ids.dedup();
            for chunk in cached_chunks(&message_ids, 1) {
                let mut statement = generated_sql(format!(
                    "SELECT platform_message_id FROM messages \
                     WHERE account_id = $1 AND platform_message_id IN ({})",
                    placeholders(2, chunk.len())
                ));
                statement.push_bind(account.as_str());
                for id in chunk {
                    statement.push_bind(*id);
                }
                let stored: Vec<(String,)> = statement.cached().fetch_all(conn).await?;
                known
                    .stored_messages
                    .extend(stored.into_iter().map(|(id,)| (account.clone(), id)));
            }
            for chunk in cached_chunks(&thread_ids, 1) {
                let mut statement = generated_sql(format!(
                    concat!(
                        "SELECT ",
                        conversation_columns!(),
                        " FROM conversations \
                         WHERE account_id = $1 AND platform_conversation_id IN ({})"
                    ),
                    placeholders(2, chunk.len())
                ));
                statement.push_bind(account.as_str());
                for id in chunk {
                    statement.push_bind(*id);
                }
                let rows: Vec<ConversationRow> = statement.cached().fetch_all(conn).await?;
                for row in rows {
                    let conversation = row.into_domain()?;
                    known.threads.insert(
                        (
                            account.clone(),
                            conversation.platform_conversation_id.clone(),
                        ),
                        conversation,
                    );
                }
            }
        }
        Ok(PendingWrites {
            known: Some(known),
            ..PendingWrites::default()
        })
    }

    /// Whether the account's message is stored, when this batch knows (`None`: ask the
    /// database).
    pub(crate) fn knows_stored(
        &self,
        account: &AccountId,
        platform_message_id: &str,
    ) -> Option<bool> {
        let known = self.known.as_ref()?;
        Some(
            known
                .stored_messages
                .contains(&(account.clone(), platform_message_id.to_owned())),
        )
    }

    /// The account's thread, when this batch read or created it.
    pub(crate) fn known_thread(
        &self,
        account: &AccountId,
        platform_conversation_id: &str,
    ) -> Option<&Conversation> {
        self.known
            .as_ref()?
            .threads
            .get(&(account.clone(), platform_conversation_id.to_owned()))
    }

    /// Remembers a thread as it now is (found, created or with its participant refreshed).
    pub(crate) fn remember_thread(&mut self, conversation: &Conversation) {
        if let Some(known) = &mut self.known {
            known.threads.insert(
                (
                    conversation.account_id.clone(),
                    conversation.platform_conversation_id.clone(),
                ),
                conversation.clone(),
            );
        }
    }

    /// Takes `message` to insert at the flush, if this batch defers message rows; `false`
    /// when the caller must insert it now. Only for a message [`Self::knows_stored`] said is
    /// not stored.
    pub(crate) fn insert_message_later(&mut self, message: &Message, now: Timestamp) -> bool {
        let Some(known) = &mut self.known else {
            return false;
        };
        known.stored_messages.insert((
            message.account_id.clone(),
            message.platform_message_id.clone(),
        ));
        self.messages.push((message.clone(), now));
        true
    }

    /// Inserts the deferred message rows now, before something reads messages. A row that
    /// exists after all (another replica inserted it since the batch read) fails the whole
    /// batch, which is then applied item by item, where the insert settles the race itself.
    pub(crate) async fn flush_messages(&mut self, conn: &mut Conn<'_>) -> Result<()> {
        const PARAMETERS_PER_ROW: usize = 15;
        for chunk in cached_chunks(&self.messages, PARAMETERS_PER_ROW) {
            let mut statement = generated_sql(String::from(
                "INSERT INTO messages (id, workspace_id, conversation_id, account_id, platform, \
                 direction, text, attachments, sender, sent_at, platform_message_id, reply_to, \
                 delivery_status, is_edited, is_deleted, created_at, updated_at) VALUES ",
            ));
            for (index, (message, now)) in chunk.iter().enumerate() {
                let values = [
                    statement.param(message.id.as_str()),
                    statement.param(message.workspace_id.as_str()),
                    statement.param(message.conversation_id.as_str()),
                    statement.param(message.account_id.as_str()),
                    statement.param(message.platform.as_str()),
                    statement.param(message.direction.as_str()),
                    statement.param(message.text.as_str()),
                    statement.param(json_text(&message.attachments)?),
                    statement.param(json_text(&message.sender)?),
                    statement.param(message.timestamp),
                    statement.param(message.platform_message_id.as_str()),
                    statement.param(message.reply_to.as_ref().map(MessageId::as_str)),
                    statement.param(message.delivery_status.map(DeliveryStatus::as_str)),
                    statement.param(message.is_edited),
                ];
                let created_at = statement.param(*now);
                let separator = if index == 0 { "" } else { ", " };
                // `is_deleted` is FALSE; `updated_at` repeats `created_at`'s placeholder.
                statement.push_sql(&format!(
                    "{separator}({}, FALSE, {created_at}, {created_at})",
                    values.join(", ")
                ));
            }
            statement.cached().execute(conn).await?;
        }
        self.messages.clear();
        Ok(())
    }

    /// What is recorded and not flushed yet.
    pub(crate) fn recorded(&self) -> Recorded {
        self.recorded
    }

    /// Records `event` with one delivery per endpoint of its workspace subscribed to its type.
    /// Returns the number of deliveries.
    pub(crate) async fn record(&mut self, conn: &mut Conn<'_>, event: Event) -> Result<usize> {
        if !self.subscribers.contains_key(&event.workspace_id) {
            let found = subscribers(conn, &event.workspace_id).await?;
            self.subscribers.insert(event.workspace_id.clone(), found);
        }
        let deliveries = deliveries_for(&self.subscribers[&event.workspace_id], &event);
        let count = deliveries.len();
        self.deliveries.extend(
            deliveries
                .into_iter()
                .map(|delivery| (event.workspace_id.clone(), delivery)),
        );
        self.events.push(event);
        self.recorded.events += 1;
        self.recorded.deliveries += count;
        Ok(count)
    }

    /// A new message in `conversation`: moves its preview and `lastMessageAt` when the message
    /// is not older than the newest one, its `lastInboundAt` and unread count when incoming.
    pub(crate) fn touch_conversation(
        &mut self,
        conversation: &ConversationId,
        sent_at: Timestamp,
        preview: String,
        incoming: bool,
    ) {
        let index = *self
            .summary_index
            .entry(conversation.clone())
            .or_insert_with(|| {
                self.summaries.push(SummaryChange {
                    conversation_id: conversation.clone(),
                    newest_at: sent_at,
                    newest_preview: preview.clone(),
                    newest_inbound_at: None,
                    incoming: 0,
                });
                self.summaries.len() - 1
            });
        let change = &mut self.summaries[index];
        if sent_at >= change.newest_at {
            change.newest_at = sent_at;
            change.newest_preview = preview;
        }
        if incoming {
            change.incoming += 1;
            change.newest_inbound_at = change.newest_inbound_at.max(Some(sent_at));
        }
    }

    /// Marks a raw event processed, keeping `error` on it (`None` clears an earlier one).
    pub(crate) fn finish_raw_event(&mut self, id: RawEventId, error: Option<String>) {
        self.processed.push((id, error));
    }

    /// Forgets every pending write (after the savepoint they belonged to rolled back), and
    /// what the batch knew, which the rollback may have made untrue.
    pub(crate) fn discard(&mut self) {
        self.known = None;
        self.messages.clear();
        self.clear_flushed();
    }

    /// Writes everything pending, stamped `now`, and returns what was recorded.
    pub(crate) async fn flush(&mut self, conn: &mut Conn<'_>, now: Timestamp) -> Result<Recorded> {
        self.flush_messages(conn).await?;
        insert_events(conn, &self.events).await?;
        for (workspace, deliveries) in by_workspace(&self.deliveries) {
            insert_deliveries(conn, workspace, &deliveries, now, false).await?;
        }
        update_summaries(conn, &mut self.summaries, now).await?;
        mark_processed(conn, &self.processed, now).await?;
        let recorded = self.recorded;
        self.clear_flushed();
        Ok(recorded)
    }

    /// Forgets the writes [`Self::flush`] writes (besides message rows).
    fn clear_flushed(&mut self) {
        self.events.clear();
        self.deliveries.clear();
        self.summaries.clear();
        self.summary_index.clear();
        self.processed.clear();
        self.recorded = Recorded::default();
    }
}

/// Deliveries grouped by workspace, each group in recording order.
fn by_workspace(
    deliveries: &[(WorkspaceId, NewDelivery)],
) -> Vec<(&WorkspaceId, Vec<NewDelivery>)> {
    let mut groups: Vec<(&WorkspaceId, Vec<NewDelivery>)> = Vec::new();
    for (workspace, delivery) in deliveries {
        match groups.iter_mut().find(|(w, _)| *w == workspace) {
            Some((_, group)) => group.push(delivery.clone()),
            None => groups.push((workspace, vec![delivery.clone()])),
        }
    }
    groups
}

/// Applies the folded summary changes with multi-row `UPDATE … FROM (VALUES …)`s. Each `CASE`
/// is the per-message update's, so the result is the same as applying the messages one by one;
/// every right-hand side sees the row as it was before the `UPDATE` (in both databases), and
/// the row lock orders concurrent updates, so "newest wins" holds under races.
async fn update_summaries(
    conn: &mut Conn<'_>,
    summaries: &mut [SummaryChange],
    now: Timestamp,
) -> Result<()> {
    if summaries.is_empty() {
        return Ok(());
    }
    // On PostgreSQL the rows are locked in id order first: an `UPDATE … FROM` locks them in
    // whatever order its plan visits them, and two replicas' batches sharing conversations
    // must wait for each other, not deadlock.
    summaries.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
    const PARAMETERS_PER_ROW: usize = 5;
    for chunk in cached_chunks(summaries, PARAMETERS_PER_ROW) {
        if conn.has_row_locks() && chunk.len() > 1 {
            let mut lock = generated_sql(format!(
                "SELECT id FROM conversations WHERE id IN ({}) ORDER BY id FOR NO KEY UPDATE",
                placeholders(1, chunk.len())
            ));
            for change in chunk {
                lock.push_bind(change.conversation_id.as_str());
            }
            lock.cached().execute(conn).await?;
        }
        let mut statement = generated_sql(String::from(
            "UPDATE conversations SET \
             last_message = CASE WHEN last_message_at IS NULL OR last_message_at <= v.column2 \
                 THEN v.column3 ELSE last_message END, \
             last_message_at = CASE WHEN last_message_at IS NULL OR last_message_at < v.column2 \
                 THEN v.column2 ELSE last_message_at END, \
             activity_at = CASE WHEN last_message_at IS NULL OR last_message_at < v.column2 \
                 THEN v.column2 ELSE last_message_at END, \
             last_inbound_at = CASE WHEN v.column4 IS NOT NULL AND \
                 (last_inbound_at IS NULL OR last_inbound_at < v.column4) \
                 THEN v.column4 ELSE last_inbound_at END, \
             unread_count = unread_count + v.column5, ",
        ));
        let updated_at = statement.param(now);
        statement.push_sql(&format!("updated_at = {updated_at} FROM (VALUES "));
        for (index, change) in chunk.iter().enumerate() {
            let values = [
                statement.param(change.conversation_id.as_str()),
                statement.param(change.newest_at),
                statement.param(change.newest_preview.as_str()),
                statement.param(change.newest_inbound_at),
                statement.param(change.incoming),
            ];
            let separator = if index == 0 { "" } else { ", " };
            statement.push_sql(&format!("{separator}({})", values.join(", ")));
        }
        // VALUES columns are called column1, column2, … in both databases.
        statement.push_sql(") AS v WHERE conversations.id = v.column1");
        statement.cached().execute(conn).await?;
    }
    Ok(())
}

/// Marks raw events processed: one `UPDATE` per distinct error (nearly always just `None`).
async fn mark_processed(
    conn: &mut Conn<'_>,
    processed: &[(RawEventId, Option<String>)],
    now: Timestamp,
) -> Result<()> {
    let mut by_error: Vec<(Option<&str>, Vec<&RawEventId>)> = Vec::new();
    for (id, error) in processed {
        let error = error.as_deref();
        match by_error.iter_mut().find(|(e, _)| *e == error) {
            Some((_, ids)) => ids.push(id),
            None => by_error.push((error, vec![id])),
        }
    }
    for (error, ids) in by_error {
        for chunk in cached_chunks(&ids, 1) {
            let mut statement = generated_sql(String::from(
                "UPDATE raw_events SET processed_at = $1, error = $2, locked_by = NULL, \
                 locked_until = NULL WHERE id IN (",
            ));
            statement.push_bind(now);
            statement.push_bind(error);
            statement.push_sql(&placeholders(3, chunk.len()));
            statement.push_sql(")");
            for id in chunk {
                statement.push_bind(id.as_str());
            }
            statement.cached().execute(conn).await?;
        }
    }
    Ok(())
}
