//! Conversations and messages inside a transaction: find-or-create a thread, insert a message
//! once per platform id, keep the thread's preview and counters, and apply each kind of
//! normalised inbound event with the events it emits.
//!
//! Every write is idempotent by the platform's ids (`UNIQUE (account_id, platform_message_id)`
//! and `UNIQUE (account_id, platform_conversation_id)` with `ON CONFLICT DO NOTHING`), so a
//! redelivered webhook, an echo of a message the gateway sent itself, or two workers racing on
//! PostgreSQL all end with one row and one event.

use inbox_core::{
    Account, ConversationId, ConversationStatus, DeliveryStatus, Direction, Event, EventType,
    InboundKind, InboundMessage, Message, MessageId, Participant, Result, Timestamp,
};

use crate::{
    AppliedInbound,
    db::Conn,
    db::sql,
    outbox::Recorded,
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
    let mut conversation = row.into_domain()?;
    if conversation.participant != *participant {
        sql("UPDATE conversations SET participant = $2, updated_at = $3 WHERE id = $1")
            .bind(conversation.id.as_str())
            .bind(participant_json)
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
/// `conversation.started` (when `conversation_created`) and `message.received`/`message.sent`.
/// Returns whether it was inserted.
pub(crate) async fn insert_new_message(
    conn: &mut Conn<'_>,
    recorded: &mut Recorded,
    found: &FoundConversation,
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
    if inserted.is_none() {
        return Ok(false);
    }
    let incoming = message.direction == Direction::Incoming;
    // Every right-hand side sees the row as it was before this UPDATE (in both databases), and
    // the row lock orders concurrent updates, so "newest wins" holds under races.
    sql("UPDATE conversations SET \
         last_message = CASE WHEN last_message_at IS NULL OR last_message_at <= $2 \
             THEN $3 ELSE last_message END, \
         last_message_at = CASE WHEN last_message_at IS NULL OR last_message_at < $2 \
             THEN $2 ELSE last_message_at END, \
         activity_at = CASE WHEN last_message_at IS NULL OR last_message_at < $2 \
             THEN $2 ELSE last_message_at END, \
         last_inbound_at = CASE WHEN $4 AND (last_inbound_at IS NULL OR last_inbound_at < $2) \
             THEN $2 ELSE last_inbound_at END, \
         unread_count = unread_count + CASE WHEN $4 THEN 1 ELSE 0 END, \
         updated_at = $5 \
         WHERE id = $1")
    .bind(message.conversation_id.as_str())
    .bind(message.timestamp)
    .bind(preview(&message.text, &message.attachments))
    .bind(incoming)
    .bind(now)
    .execute(conn)
    .await?;
    if found.created {
        recorded
            .record(
                conn,
                &Event::conversation_started(&found.conversation, message),
            )
            .await?;
    }
    let event_type = if incoming {
        EventType::MessageReceived
    } else {
        EventType::MessageSent
    };
    recorded
        .record(conn, &Event::for_message(event_type, message))
        .await?;
    Ok(true)
}

/// Applies one inbound `Message` (or an `Edited` of a message never seen, with
/// `is_edited`). Returns whether a message was inserted.
async fn apply_message(
    conn: &mut Conn<'_>,
    recorded: &mut Recorded,
    account: &Account,
    inbound: &InboundMessage,
    is_edited: bool,
    now: Timestamp,
) -> Result<bool> {
    // Checked first so a duplicate never creates (or refreshes) a thread; the insert's
    // `ON CONFLICT DO NOTHING` still settles races.
    if message_by_platform_id(conn, account, &inbound.platform_message_id)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let found = find_or_create_conversation(
        conn,
        account,
        &inbound.platform_conversation_id,
        &inbound.participant,
        now,
    )
    .await?;
    let reply_to = match &inbound.reply_to_platform_message_id {
        Some(platform_id) => message_by_platform_id(conn, account, platform_id)
            .await?
            .map(|m| m.id),
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
    insert_new_message(conn, recorded, &found, &message, now).await
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

/// Applies parsed inbound events for `account`, in order, inside the caller's transaction.
pub(crate) async fn apply_inbound_events(
    conn: &mut Conn<'_>,
    account: &Account,
    events: &[InboundKind],
    now: Timestamp,
) -> Result<AppliedInbound> {
    let mut applied = AppliedInbound::default();
    let mut recorded = Recorded::default();
    for event in events {
        match event {
            InboundKind::Message(inbound) => {
                if apply_message(conn, &mut recorded, account, inbound, false, now).await? {
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
                        recorded
                            .record(
                                conn,
                                &Event::for_message(EventType::MessageEdited, &message),
                            )
                            .await?;
                        applied.messages_updated += 1;
                    }
                }
                None => {
                    if apply_message(conn, &mut recorded, account, inbound, true, now).await? {
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
                        recorded
                            .record(
                                conn,
                                &Event::for_message(EventType::MessageDeleted, &message),
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
                    recorded.record(conn, &event).await?;
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
                    recorded
                        .record(conn, &Event::for_message(EventType::MessageRead, &message))
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
                    recorded
                        .record(
                            conn,
                            &Event::reaction(&message, sender_id, emoji.as_deref()),
                        )
                        .await?;
                }
            }
            InboundKind::Ignored { reason: _ } => {}
        }
    }
    applied.events_recorded = recorded.events;
    applied.deliveries_queued = recorded.deliveries;
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
