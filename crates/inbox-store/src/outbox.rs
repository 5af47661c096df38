//! The transactional outbox: an event row plus one delivery row per subscribed endpoint,
//! written inside the transaction of the change that caused the event, so an event is queued
//! exactly when its change commits. Also the delivery reads shared by several operations.

use std::collections::HashMap;

use inbox_core::{
    DeliveryId, EndpointId, Event, EventId, EventType, Result, Timestamp, WorkspaceId,
};

use crate::{
    Delivery, DeliveryAttempt, DeliveryState,
    db::{Conn, cached_chunks, generated_sql, placeholders, sql},
    rows::{AttemptRow, DeliveryRow, from_json_text},
};

/// One delivery row to insert.
#[derive(Debug, Clone)]
pub(crate) struct NewDelivery {
    pub id: DeliveryId,
    pub endpoint_id: String,
    pub event_id: EventId,
    pub event_type: EventType,
}

/// Counts what an operation recorded, for `AppliedInbound` and for deciding whether to wake
/// the delivery worker after commit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub events: usize,
    pub deliveries: usize,
}

/// An enabled, not deleted endpoint and the event types it subscribes to (empty: all).
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub endpoint_id: String,
    pub events: Vec<EventType>,
}

/// The enabled, not deleted endpoints of `workspace`, oldest first.
pub(crate) async fn subscribers(
    conn: &mut Conn<'_>,
    workspace: &WorkspaceId,
) -> Result<Vec<Subscriber>> {
    let endpoints: Vec<(String, String)> = sql("SELECT id, events FROM webhook_endpoints \
         WHERE workspace_id = $1 AND enabled AND deleted_at IS NULL ORDER BY created_at, id")
    .bind(workspace.as_str())
    .fetch_all(conn)
    .await?;
    endpoints
        .into_iter()
        .map(|(endpoint_id, events)| {
            Ok(Subscriber {
                endpoint_id,
                events: from_json_text(&events, "webhook_endpoints.events")?,
            })
        })
        .collect()
}

/// One new delivery of `event` per subscriber of its type.
pub(crate) fn deliveries_for(subscribers: &[Subscriber], event: &Event) -> Vec<NewDelivery> {
    subscribers
        .iter()
        .filter(|s| s.events.is_empty() || s.events.contains(&event.event_type))
        .map(|s| NewDelivery {
            id: DeliveryId::new(),
            endpoint_id: s.endpoint_id.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type,
        })
        .collect()
}

/// Inserts the event (its payload is `event.to_json()`, exactly the bytes every delivery sends)
/// and one pending delivery, due now, per enabled, not deleted endpoint of its workspace that
/// subscribes to its type. Returns the number of deliveries.
pub(crate) async fn record_event_in_tx(conn: &mut Conn<'_>, event: &Event) -> Result<usize> {
    insert_event(conn, event).await?;
    let subscribers = subscribers(conn, &event.workspace_id).await?;
    let deliveries = deliveries_for(&subscribers, event);
    insert_deliveries(
        conn,
        &event.workspace_id,
        &deliveries,
        Timestamp::now(),
        false,
    )
    .await?;
    Ok(deliveries.len())
}

/// Inserts the event row only.
pub(crate) async fn insert_event(conn: &mut Conn<'_>, event: &Event) -> Result<()> {
    sql(
        "INSERT INTO events (id, workspace_id, account_id, event_type, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event.id.as_str())
    .bind(event.workspace_id.as_str())
    .bind(event.account_id.as_ref().map(|id| id.as_str()))
    .bind(event.event_type.as_str())
    .bind(event.to_json())
    .bind(event.timestamp)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts event rows only, with multi-row `INSERT`s (the same rows as [`insert_event`]).
pub(crate) async fn insert_events(conn: &mut Conn<'_>, events: &[Event]) -> Result<()> {
    const PARAMETERS_PER_ROW: usize = 6;
    for chunk in cached_chunks(events, PARAMETERS_PER_ROW) {
        let mut statement = generated_sql(String::from(
            "INSERT INTO events (id, workspace_id, account_id, event_type, payload, created_at) \
             VALUES ",
        ));
        for (index, event) in chunk.iter().enumerate() {
            let values = [
                statement.param(event.id.as_str()),
                statement.param(event.workspace_id.as_str()),
                statement.param(event.account_id.as_ref().map(|id| id.as_str())),
                statement.param(event.event_type.as_str()),
                statement.param(event.to_json()),
                statement.param(event.timestamp),
            ];
            let separator = if index == 0 { "" } else { ", " };
            statement.push_sql(&format!("{separator}({})", values.join(", ")));
        }
        statement.cached().execute(conn).await?;
    }
    Ok(())
}

/// Inserts pending deliveries due at `now`, with multi-row `INSERT`s.
pub(crate) async fn insert_deliveries(
    conn: &mut Conn<'_>,
    workspace: &WorkspaceId,
    deliveries: &[NewDelivery],
    now: Timestamp,
    one_shot: bool,
) -> Result<()> {
    const PARAMETERS_PER_ROW: usize = 8;
    for chunk in cached_chunks(deliveries, PARAMETERS_PER_ROW) {
        let mut statement = generated_sql(String::from(
            "INSERT INTO deliveries (id, workspace_id, endpoint_id, event_id, event_type, status, \
             next_attempt_at, one_shot, created_at, updated_at) VALUES ",
        ));
        for (index, delivery) in chunk.iter().enumerate() {
            let values = [
                statement.param(delivery.id.as_str()),
                statement.param(workspace.as_str()),
                statement.param(delivery.endpoint_id.as_str()),
                statement.param(delivery.event_id.as_str()),
                statement.param(delivery.event_type.as_str()),
                format!("'{}'", DeliveryState::Pending.as_str()),
                statement.param(now),
                statement.param(one_shot),
                statement.param(now),
            ];
            let separator = if index == 0 { "" } else { ", " };
            // `updated_at` repeats `created_at`'s placeholder.
            statement.push_sql(&format!(
                "{separator}({}, {})",
                values.join(", "),
                values[8]
            ));
        }
        statement.cached().execute(conn).await?;
    }
    Ok(())
}

/// Deliveries with all their attempts (oldest attempt first), in the order of `rows`: one query
/// for all the attempts, not one per delivery.
pub(crate) async fn with_attempts(
    conn: &mut Conn<'_>,
    rows: Vec<DeliveryRow>,
) -> Result<Vec<Delivery>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut statement = generated_sql(format!(
        "SELECT delivery_id, attempt_number, attempted_at, status_code, error, duration_ms, \
         response_body FROM delivery_attempts WHERE delivery_id IN ({}) \
         ORDER BY delivery_id, attempt_number",
        placeholders(1, rows.len())
    ));
    for row in &rows {
        statement.push_bind(row.id.as_str());
    }
    let mut attempts: HashMap<String, Vec<DeliveryAttempt>> = HashMap::new();
    for attempt in statement.fetch_all::<AttemptRow>(conn).await? {
        attempts
            .entry(attempt.delivery_id.clone())
            .or_default()
            .push(attempt.into_domain());
    }
    rows.into_iter()
        .map(|row| {
            let own = attempts.remove(&row.id).unwrap_or_default();
            row.into_domain(own)
        })
        .collect()
}

/// One delivery of an endpoint, with its attempts.
pub(crate) async fn load_delivery(
    conn: &mut Conn<'_>,
    endpoint: &EndpointId,
    delivery: &DeliveryId,
) -> Result<Option<Delivery>> {
    let row: Option<DeliveryRow> = sql(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE id = $1 AND endpoint_id = $2"
    ))
    .bind(delivery.as_str())
    .bind(endpoint.as_str())
    .fetch_optional(conn)
    .await?;
    match row {
        Some(row) => Ok(with_attempts(conn, vec![row]).await?.pop()),
        None => Ok(None),
    }
}
