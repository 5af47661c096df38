//! Conversations and messages inside a transaction: find-or-create a thread, insert a message
//! once per platform id, keep the thread's preview and counters, and apply each kind of
//! normalised inbound event with the events it emits.
//!
//! Every write is idempotent by the platform's ids (`UNIQUE (account_id, platform_message_id)`
//! and `UNIQUE (account_id, platform_conversation_id)` with `ON CONFLICT DO NOTHING`), so a
//! redelivered webhook, an echo of a message the gateway sent itself, or two workers racing on
//! PostgreSQL all end with one row and one event.
//!
//! Events, conversation summaries and raw-event marks go to [`PendingWrites`], which the caller
//! flushes before committing; in a batch applied as a whole the message rows do too, and the
//! batch knows its stored messages and threads, so a new message in a known thread costs no
//! statement of its own.

use inbox_core::{
    Account, ConversationId, ConversationStatus, DeliveryStatus, Direction, Event, EventType,
    InboundKind, InboundMessage, Message, MessageId, Participant, Result, Timestamp,
};

use crate::{
    AppliedInbound,
    db::Conn,
    db::sql,
    pending::PendingWrites,
    rows::{ConversationRow, MessageRow, json_text},
};

/// Characters of a message's text kept as its conversation's `lastMessage` preview.
const PREVIEW_CHARS: usize = 200;

/// A conversation as found or created, and whether it was created now.
#[derive(Debug)]
pub(crate) struct FoundConversation {
    pub conversation: inbox_core::Conversation,
    pub created: bool,
}

/// The thread `(account, platform_conversation_id)`, created with `participant` when new; an
/// existing thread's participant is refreshed when the platform now reports it differently.
pub(crate) async fn find_or_create_conversation(
    conn: &mut Conn<'_>,
    account: &Account,
    platform_conversation_id: &str,
    participant: &Participant,
    now: Timestamp,
) -> Result<FoundConversation> {
    let id = ConversationId::new();
    let participant_json = json_text(participant)?;
    let inserted: Option<(String,)> = sql(
        "INSERT INTO conversations (id, workspace_id, account_id, platform, \
         platform_conversation_id, participant, activity_at, status, unread_count, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $7, $7) \
         ON CONFLICT (account_id, platform_conversation_id) DO NOTHING RETURNING id",
    )
    .bind(id.as_str())
    .bind(account.workspace_id.as_str())
    .bind(account.id.as_str())
    .bind(account.platform.as_str())
    .bind(platform_conversation_id)
    .bind(participant_json.as_str())
    .bind(now)
    .bind(ConversationStatus::Active.as_str())
    .fetch_optional(conn)
    .await?;
    if inserted.is_some() {
        let conversation = inbox_core::Conversation {
            id,
            workspace_id: account.workspace_id.clone(),
            account_id: account.id.clone(),
            platform: account.platform,
            platform_conversation_id: platform_conversation_id.to_owned(),
            participant: participant.clone(),
            last_message: None,
            last_message_at: None,
            last_inbound_at: None,
            status: ConversationStatus::Active,
            unread_count: 0,
            window_expires_at: None,
            created_at: now,
        };
        return Ok(FoundConversation {
            conversation,
            created: true,
        });
    }
    let row: ConversationRow = sql(concat!(
        "SELECT ",
        conversation_columns!(),
        " FROM conversations WHERE account_id = $1 AND platform_conversation_id = $2"
    ))
    .bind(account.id.as_str())
    .bind(platform_conversation_id)
    .fetch_one(conn)
    .await?;
    existing_conversation(conn, row.into_domain()?, participant, now).await
}

/// A stored thread, its participant refreshed when the platform now reports it differently.
async fn existing_conversation(
    conn: &mut Conn<'_>,
    mut conversation: inbox_core::Conversation,
    participant: &Participant,
    now: Timestamp,
) -> Result<FoundConversation> {
    if conversation.participant != *participant {
        sql("UPDATE conversations SET participant = $2, updated_at = $3 WHERE id = $1")
            .bind(conversation.id.as_str())
            .bind(json_text(participant)?)
            .bind(now)
            .execute(conn)
            .await?;
        conversation.participant = participant.clone();
    }
    Ok(FoundConversation {
        conversation,
        created: false,
    })
}

/// A conversation row and whether a given message of its account is stored already.
#[derive(Debug, sqlx::FromRow)]
struct ConversationAndSeenRow {
    #[sqlx(flatten)]
    conversation: ConversationRow,
    message_seen: bool,
}

/// The thread of an inbound message, found or created as [`find_or_create_conversation`]
/// does, or `None` when the message is stored already: a duplicate never creates (or
/// refreshes) a thread. A batch that knows its messages and threads answers from memory;
/// otherwise, for the usual case of a message in a known thread, one statement answers both
/// questions.
async fn thread_unless_stored(
    conn: &mut Conn<'_>,
    writes: &mut PendingWrites,
    account: &Account,
    inbound: &InboundMessage,
    now: Timestamp,
) -> Result<Option<FoundConversation>> {
    if let Some(stored) = writes.knows_stored(&account.id, &inbound.platform_message_id) {
        if stored {
            return Ok(None);
        }
        let found = match writes
            .known_thread(&account.id, &inbound.platform_conversation_id)
            .cloned()
        {
            Some(thread) => existing_conversation(conn, thread, &inbound.participant, now).await?,
            None => {
                find_or_create_conversation(
                    conn,
                    account,
                    &inbound.platform_conversation_id,
                    &inbound.participant,
                    now,
                )
                .await?
            }
        };
        writes.remember_thread(&found.conversation);
        return Ok(Some(found));
    }
    let known: Option<ConversationAndSeenRow> = sql(concat!(
        "SELECT ",
        conversation_columns!(),
        ", EXISTS (SELECT 1 FROM messages WHERE account_id = $1 AND platform_message_id = $3) \
         AS message_seen FROM conversations \
         WHERE account_id = $1 AND platform_conversation_id = $2"
    ))
    .bind(account.id.as_str())
    .bind(inbound.platform_conversation_id.as_str())
    .bind(inbound.platform_message_id.as_str())
    .fetch_optional(conn)
    .await?;
    match known {
        Some(row) if row.message_seen => Ok(None),
        Some(row) => existing_conversation(
            conn,
            row.conversation.into_domain()?,
            &inbound.participant,
            now,
        )
        .await
        .map(Some),
        None => {
            // A new thread, unless the message is stored under another one of this account.
            if message_by_platform_id(conn, account, &inbound.platform_message_id)
                .await?
                .is_some()
            {
                return Ok(None);
            }
            find_or_create_conversation(
                conn,
                account,
                &inbound.platform_conversation_id,
                &inbound.participant,
                now,
            )
            .await
            .map(Some)
        }
    }
}

/// The account's message with this platform id, if stored.
pub(crate) async fn message_by_platform_id(
    conn: &mut Conn<'_>,
    account: &Account,
    platform_message_id: &str,
) -> Result<Option<Message>> {
    sql(concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE account_id = $1 AND platform_message_id = $2"
    ))
    .bind(account.id.as_str())
    .bind(platform_message_id)
    .fetch_optional::<MessageRow>(conn)
    .await?
    .map(MessageRow::into_domain)
    .transpose()
}

/// The `lastMessage` preview of a message: its text cut to 200 characters, or a placeholder
/// naming its first attachment's kind when it has no text.
pub(crate) fn preview(text: &str, attachments: &[inbox_core::Attachment]) -> String {
    if text.is_empty() {
        return attachments
            .first()
            .map(|a| format!("[{}]", a.kind.as_str()))
            .unwrap_or_default();
    }
    text.chars().take(PREVIEW_CHARS).collect()
}

/// Inserts `message` unless its platform id is already stored; then moves its conversation's
/// preview, `lastMessageAt` and (incoming) `lastInboundAt`/`unreadCount`, and records
/// `conversation.started` (when `conversation_created`) and `message.received`/`message.sent`,
/// all three through `writes`. Returns whether it was inserted.
pub(crate) async fn insert_new_message(
    conn: &mut Conn<'_>,
    writes: &mut PendingWrites,
    found: &FoundConversation,
    message: &Message,
    now: Timestamp,
) -> Result<bool> {
    // A batch that defers message rows has checked that this one is not stored.
    let inserted =
        writes.insert_message_later(message, now) || insert_message_now(conn, message, now).await?;
    if !inserted {
        return Ok(false);
    }
    let incoming = message.direction == Direction::Incoming;
    writes.touch_conversation(
        &message.conversation_id,
        message.timestamp,
        preview(&message.text, &message.attachments),
        incoming,
    );
    if found.created {
        writes
            .record(
                conn,
                Event::conversation_started(&found.conversation, message),
            )
            .await?;
    }
    let event_type = if incoming {
        EventType::MessageReceived
    } else {
        EventType::MessageSent
    };
    writes
        .record(conn, Event::for_message(event_type, message))
        .await?;
    Ok(true)
}

/// Inserts `message` unless its platform id is already stored; returns whether it was.
async fn insert_message_now(
    conn: &mut Conn<'_>,
    message: &Message,
    now: Timestamp,
) -> Result<bool> {
    let inserted: Option<(String,)> = sql(
        "INSERT INTO messages (id, workspace_id, conversation_id, account_id, platform, \
         direction, text, attachments, sender, sent_at, platform_message_id, reply_to, \
         delivery_status, is_edited, is_deleted, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, FALSE, $15, $15) \
         ON CONFLICT (account_id, platform_message_id) DO NOTHING RETURNING id",
    )
    .bind(message.id.as_str())
    .bind(message.workspace_id.as_str())
    .bind(message.conversation_id.as_str())
    .bind(message.account_id.as_str())
    .bind(message.platform.as_str())
    .bind(message.direction.as_str())
    .bind(message.text.as_str())
    .bind(json_text(&message.attachments)?)
    .bind(json_text(&message.sender)?)
    .bind(message.timestamp)
    .bind(message.platform_message_id.as_str())
    .bind(message.reply_to.as_ref().map(MessageId::as_str))
    .bind(message.delivery_status.map(DeliveryStatus::as_str))
    .bind(message.is_edited)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(inserted.is_some())
}

/// Applies one inbound `Message` (or an `Edited` of a message never seen, with
/// `is_edited`). Returns whether a message was inserted.
async fn apply_message(
    conn: &mut Conn<'_>,
    writes: &mut PendingWrites,
    account: &Account,
    inbound: &InboundMessage,
    is_edited: bool,
    now: Timestamp,
) -> Result<bool> {
    // A stored message is recognised before its thread is touched; the insert's
    // `ON CONFLICT DO NOTHING` still settles races.
    let Some(found) = thread_unless_stored(conn, writes, account, inbound, now).await? else {
        return Ok(false);
    };
    let reply_to = match &inbound.reply_to_platform_message_id {
        Some(platform_id) => {
            writes.flush_messages(conn).await?;
            message_by_platform_id(conn, account, platform_id)
                .await?
                .map(|m| m.id)
        }
        None => None,
    };
    let message = Message {
        id: MessageId::new(),
        workspace_id: account.workspace_id.clone(),
        conversation_id: found.conversation.id.clone(),
        account_id: account.id.clone(),
        platform: account.platform,
        direction: inbound.direction,
        text: inbound.text.clone(),
        attachments: inbound.attachments.clone(),
        sender: inbound.sender.clone(),
        timestamp: inbound.timestamp,
        platform_message_id: inbound.platform_message_id.clone(),
        reply_to,
        delivery_status: (inbound.direction == Direction::Outgoing).then_some(DeliveryStatus::Sent),
        is_edited,
        is_deleted: false,
    };
    insert_new_message(conn, writes, &found, &message, now).await
}

/// Whether the platform's report `next` moves an outgoing message forward: sent < delivered <
/// read; failed from any state but read; nothing leaves read or failed.
pub(crate) fn status_advances(current: Option<DeliveryStatus>, next: DeliveryStatus) -> bool {
    fn rank(status: DeliveryStatus) -> u8 {
        match status {
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Delivered => 2,
            DeliveryStatus::Read => 3,
            DeliveryStatus::Failed => 4,
        }
    }
    match (current, next) {
        (Some(DeliveryStatus::Read | DeliveryStatus::Failed), _) => false,
        (_, DeliveryStatus::Failed) => true,
        (current, next) => rank(next) > current.map_or(0, rank),
    }
}

/// Applies parsed inbound events for `account`, in order, inside the caller's transaction;
/// what they record waits in `writes` for the caller's flush.
pub(crate) async fn apply_inbound_events(
    conn: &mut Conn<'_>,
    writes: &mut PendingWrites,
    account: &Account,
    events: &[InboundKind],
    now: Timestamp,
) -> Result<AppliedInbound> {
    let mut applied = AppliedInbound::default();
    let before = writes.recorded();
    for event in events {
        // Every kind but a new message reads stored messages: deferred rows go in first.
        if !matches!(event, InboundKind::Message(_)) {
            writes.flush_messages(conn).await?;
        }
        match event {
            InboundKind::Message(inbound) => {
                if apply_message(conn, writes, account, inbound, false, now).await? {
                    applied.messages_created += 1;
                }
            }
            InboundKind::Edited {
                message: inbound,
                edited_at: _,
            } => match message_by_platform_id(conn, account, &inbound.platform_message_id).await? {
                Some(mut message) => {
                    if message.text != inbound.text || message.attachments != inbound.attachments {
                        sql(
                            "UPDATE messages SET text = $2, attachments = $3, is_edited = TRUE, \
                                 updated_at = $4 WHERE id = $1",
                        )
                        .bind(message.id.as_str())
                        .bind(inbound.text.as_str())
                        .bind(json_text(&inbound.attachments)?)
                        .bind(now)
                        .execute(conn)
                        .await?;
                        message.text = inbound.text.clone();
                        message.attachments = inbound.attachments.clone();
                        message.is_edited = true;
                        writes
                            .record(conn, Event::for_message(EventType::MessageEdited, &message))
                            .await?;
                        applied.messages_updated += 1;
                    }
                }
                None => {
                    if apply_message(conn, writes, account, inbound, true, now).await? {
                        applied.messages_created += 1;
                    }
                }
            },
            InboundKind::Deleted {
                platform_message_id,
                at: _,
            } => {
                if let Some(mut message) =
                    message_by_platform_id(conn, account, platform_message_id).await?
                    && !message.is_deleted
                {
                    let changed = sql("UPDATE messages SET is_deleted = TRUE, updated_at = $2 \
                                       WHERE id = $1 AND NOT is_deleted")
                    .bind(message.id.as_str())
                    .bind(now)
                    .execute(conn)
                    .await?;
                    if changed > 0 {
                        message.is_deleted = true;
                        writes
                            .record(
                                conn,
                                Event::for_message(EventType::MessageDeleted, &message),
                            )
                            .await?;
                        applied.messages_updated += 1;
                    }
                }
            }
            InboundKind::Status {
                platform_message_id,
                status,
                error,
                at: _,
            } => {
                let Some(mut message) =
                    message_by_platform_id(conn, account, platform_message_id).await?
                else {
                    continue;
                };
                if message.direction != Direction::Outgoing
                    || !status_advances(message.delivery_status, *status)
                {
                    continue;
                }
                // Conditional on the status we read, so a concurrent report cannot be undone.
                let changed = sql("UPDATE messages SET delivery_status = $2, updated_at = $3 \
                                   WHERE id = $1 AND (delivery_status IS NULL OR delivery_status = $4)")
                .bind(message.id.as_str())
                .bind(status.as_str())
                .bind(now)
                .bind(message.delivery_status.map_or("", DeliveryStatus::as_str))
                .execute(conn)
                .await?;
                if changed == 0 {
                    continue;
                }
                message.delivery_status = Some(*status);
                applied.messages_updated += 1;
                let event = match status {
                    DeliveryStatus::Delivered => {
                        Some(Event::for_message(EventType::MessageDelivered, &message))
                    }
                    DeliveryStatus::Read => {
                        Some(Event::for_message(EventType::MessageRead, &message))
                    }
                    DeliveryStatus::Failed => {
                        let (code, reason) = error.clone().unwrap_or_else(|| {
                            (
                                "unknown".to_owned(),
                                "the platform reported the message as failed".to_owned(),
                            )
                        });
                        Some(Event::message_failed(&message, &code, &reason))
                    }
                    DeliveryStatus::Sent => None,
                };
                if let Some(event) = event {
                    writes.record(conn, event).await?;
                }
            }
            InboundKind::ReadUpTo {
                platform_conversation_id,
                watermark,
            } => {
                let mut read: Vec<MessageRow> = sql(concat!(
                    "UPDATE messages SET delivery_status = 'read', updated_at = $4 \
                     WHERE conversation_id = (SELECT id FROM conversations \
                         WHERE account_id = $1 AND platform_conversation_id = $2) \
                     AND direction = 'outgoing' AND sent_at <= $3 \
                     AND delivery_status IN ('sent', 'delivered') RETURNING ",
                    message_columns!()
                ))
                .bind(account.id.as_str())
                .bind(platform_conversation_id.as_str())
                .bind(*watermark)
                .bind(now)
                .fetch_all(conn)
                .await?;
                // RETURNING has no defined order; emit oldest first.
                read.sort_by(|a, b| (a.sent_at, &a.id).cmp(&(b.sent_at, &b.id)));
                for row in read {
                    let message = row.into_domain()?;
                    writes
                        .record(conn, Event::for_message(EventType::MessageRead, &message))
                        .await?;
                    applied.messages_updated += 1;
                }
            }
            InboundKind::Reaction {
                platform_message_id,
                sender_id,
                emoji,
                at: _,
            } => {
                if let Some(message) =
                    message_by_platform_id(conn, account, platform_message_id).await?
                {
                    writes
                        .record(conn, Event::reaction(&message, sender_id, emoji.as_deref()))
                        .await?;
                }
            }
            InboundKind::Ignored { reason: _ } => {}
        }
    }
    let after = writes.recorded();
    applied.events_recorded = after.events - before.events;
    applied.deliveries_queued = after.deliveries - before.deliveries;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use inbox_core::{Attachment, AttachmentKind};

    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        use DeliveryStatus::*;
        assert!(status_advances(Some(Sent), Delivered));
        assert!(status_advances(Some(Sent), Read));
        assert!(status_advances(Some(Delivered), Read));
        assert!(status_advances(Some(Delivered), Failed));
        assert!(!status_advances(Some(Delivered), Sent));
        assert!(!status_advances(Some(Read), Delivered));
        assert!(!status_advances(Some(Read), Failed));
        assert!(!status_advances(Some(Failed), Read));
        assert!(!status_advances(Some(Sent), Sent));
    }

    #[test]
    fn previews_cut_text_and_name_attachments() {
        let long = "é".repeat(250);
        assert_eq!(preview(&long, &[]).chars().count(), 200);
        let image = Attachment {
            kind: AttachmentKind::Image,
            url: "https://x/y.png".into(),
            mime_type: None,
            name: None,
        };
        assert_eq!(preview("", &[image]), "[image]");
        assert_eq!(preview("", &[]), "");
    }
}
