//! `/api/v1/webhooks`: the customer's webhook endpoints — where events are POSTed, which
//! events, the signing secret (shown on create and rotate only), the delivery log with its
//! attempts, a manual retry, a test event, and recovery (re-sending a span of events).

use axum::{extract::State, http::StatusCode};
use inbox_core::{DeliveryId, EndpointId, Error, EventType, Timestamp};
use inbox_store::{Delivery, Endpoint, EndpointPatch, NewEndpoint};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::Workspace,
    error::{ApiResult, responses::*},
    extract::{Json, Path, Query, parse_id},
    routes::{PageQuery, list_type},
};

/// A webhook endpoint. The signing secret is never shown here; it comes back only from
/// create and rotate-secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// The id (`whk_…`).
    pub id: EndpointId,
    /// Where events are POSTed.
    pub url: String,
    /// Subscribed event types; empty means every type.
    pub events: Vec<EventType>,
    /// Free text.
    pub description: String,
    /// Disabled endpoints receive nothing (except `webhook.test`).
    pub enabled: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl From<Endpoint> for Webhook {
    fn from(endpoint: Endpoint) -> Self {
        Webhook {
            id: endpoint.id,
            url: endpoint.url,
            events: endpoint.events,
            description: endpoint.description,
            enabled: endpoint.enabled,
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
        }
    }
}

/// A webhook endpoint with its signing secret: the answer to create and rotate-secret, the
/// only times the secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The Standard Webhooks signing secret (`whsec_…`). Store it now: it is not shown again.
    pub secret: String,
}

list_type!(
    /// One page of webhook endpoints, oldest first.
    WebhookList,
    Webhook
);

list_type!(
    /// One page of deliveries, newest first, each with its attempts.
    DeliveryList,
    Delivery
);

/// Body of `POST /webhooks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhook {
    /// An absolute http(s) URL. Addresses that resolve to loopback, private, link-local or
    /// metadata ranges are refused unless the operator set `INBOX_WEBHOOK_ALLOW_PRIVATE=true`.
    pub url: String,
    /// Event types to receive (`message.received`, …); omitted or empty means every type.
    #[schema(value_type = Option<Vec<EventType>>)]
    pub events: Option<Vec<String>>,
    /// Free text.
    pub description: Option<String>,
    /// Whether it receives events (default `true`).
    pub enabled: Option<bool>,
}

/// Body of `PATCH /webhooks/{id}`; absent fields stay unchanged.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateWebhook {
    /// A new URL, checked like on create.
    pub url: Option<String>,
    /// New subscriptions; empty means every type.
    #[schema(value_type = Option<Vec<EventType>>)]
    pub events: Option<Vec<String>>,
    /// New description.
    pub description: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Body of `POST /webhooks/{id}/recover`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverWebhook {
    /// Start of the span (RFC 3339, inclusive); not in the future.
    pub since: Timestamp,
    /// End of the span (RFC 3339, exclusive); default now.
    pub until: Option<Timestamp>,
}

/// The answer to recover.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecoverQueued {
    /// How many deliveries were queued.
    pub queued: u64,
}

/// Event names → types; unknown names are `400` on `events`, duplicates collapse.
fn parse_events(names: Vec<String>) -> Result<Vec<EventType>, Error> {
    let mut events = Vec::with_capacity(names.len());
    for name in names {
        let event = name.parse::<EventType>().map_err(|err| {
            let known: Vec<_> = EventType::ALL.iter().map(|event| event.as_str()).collect();
            Error::invalid(
                "events",
                format!("{err}; known types: {}", known.join(", ")),
            )
        })?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    Ok(events)
}

fn endpoint_id(raw: &str) -> Result<EndpointId, Error> {
    parse_id(raw, "webhook endpoint")
}

/// Creates a webhook endpoint.
///
/// Answers `201` with the endpoint and its signing secret (`whsec_…`), shown this once.
/// Deliveries are signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature`).
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "The endpoint, with its secret.", body = WebhookWithSecret),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
    )
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    workspace: Workspace,
    Json(body): Json<CreateWebhook>,
) -> ApiResult<(StatusCode, axum::Json<WebhookWithSecret>)> {
    let events = parse_events(body.events.unwrap_or_default())?;
    let url = state.url_guard.check(&body.url).await?;
    let secret = inbox_webhooks::generate_secret();
    let shown = secret.expose_secret().to_owned();
    let endpoint = state
        .store
        .create_endpoint(
            &workspace.id,
            NewEndpoint {
                url: url.to_string(),
                events,
                description: body.description.unwrap_or_default(),
                enabled: body.enabled.unwrap_or(true),
                secret,
            },
        )
        .await?;
    let created = WebhookWithSecret {
        webhook: endpoint.into(),
        secret: shown,
    };
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Lists the workspace's webhook endpoints, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    params(PageQuery),
    responses(
        (status = 200, description = "One page of endpoints.", body = WebhookList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    )
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    workspace: Workspace,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<WebhookList>> {
    let page = state
        .store
        .list_endpoints(&workspace.id, &query.page()?)
        .await?;
    Ok(axum::Json(page.map(Webhook::from).into()))
}

/// Returns one webhook endpoint (without its secret).
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{webhookId}",
    tag = "webhooks",
    params(("webhookId" = String, Path, description = "The endpoint id (`whk_…`).")),
    responses(
        (status = 200, description = "The endpoint.", body = Webhook),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn get_webhook(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(webhook_id): Path<String>,
) -> ApiResult<axum::Json<Webhook>> {
    let endpoint = state
        .store
        .get_endpoint(&workspace.id, &endpoint_id(&webhook_id)?)
        .await?;
    Ok(axum::Json(endpoint.into()))
}

/// Changes a webhook endpoint's URL, events, description or enabled flag.
#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/{webhookId}",
    tag = "webhooks",
    params(("webhookId" = String, Path, description = "The endpoint id (`whk_…`).")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The updated endpoint.", body = Webhook),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn update_webhook(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(webhook_id): Path<String>,
    Json(body): Json<UpdateWebhook>,
) -> ApiResult<axum::Json<Webhook>> {
    let id = endpoint_id(&webhook_id)?;
    // Existence first, so an unknown id is 404 even when the body is also wrong.
    state.store.get_endpoint(&workspace.id, &id).await?;
    let events = body.events.map(parse_events).transpose()?;
    let url = match body.url {
        Some(url) => Some(state.url_guard.check(&url).await?.to_string()),
        None => None,
    };
    let patch = EndpointPatch {
        url,
        events,
        description: body.description,
        enabled: body.enabled,
    };
    let endpoint = state
        .store
        .update_endpoint(&workspace.id, &id, patch)
        .await?;
    Ok(axum::Json(endpoint.into()))
}

/// Deletes a webhook endpoint; its pending deliveries are abandoned.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{webhookId}",
    tag = "webhooks",
    params(("webhookId" = String, Path, description = "The endpoint id (`whk_…`).")),
    responses(
        (status = 204, description = "The endpoint was deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(webhook_id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_endpoint(&workspace.id, &endpoint_id(&webhook_id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the signing secret.
///
/// Answers with the endpoint and the new secret, shown this once. The previous secret keeps
/// signing beside the new one (a second `v1,` signature) for 24 hours, so the receiver can
/// switch without dropping deliveries.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{webhookId}/rotate-secret",
    tag = "webhooks",
    params(("webhookId" = String, Path, description = "The endpoint id (`whk_…`).")),
    responses(
        (status = 200, description = "The endpoint, with its new secret.", body = WebhookWithSecret),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(webhook_id): Path<String>,
) -> ApiResult<axum::Json<WebhookWithSecret>> {
    let id = endpoint_id(&webhook_id)?;
    let secret = inbox_webhooks::generate_secret();
    let shown = secret.expose_secret().to_owned();
    let overlap = state.config.secret_rotation_overlap;
    let endpoint = state
        .store
        .rotate_endpoint_secret(&workspace.id, &id, secret, overlap)
        .await?;
    Ok(axum::Json(WebhookWithSecret {
        webhook: endpoint.into(),
        secret: shown,
    }))
}

/// Sends a `webhook.test` event to this endpoint (even if it is disabled or not subscribed
/// to `webhook.test`). Answers `202` with the queued delivery.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{webhookId}/test",
    tag = "webhooks",
    params(("webhookId" = String, Path, description = "The endpoint id (`whk_…`).")),
    responses(
        (status = 202, description = "The queued delivery.", body = Delivery),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn test_webhook(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(webhook_id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<Delivery>)> {
    let delivery = state
        .store
        .record_test_event(&workspace.id, &endpoint_id(&webhook_id)?)
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(delivery)))
}

/// Lists an endpoint's deliveries, newest first, each with all its attempts.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{webhookId}/deliveries",
    tag = "webhooks",
    params(("webhookId" = String, Path, description = "The endpoint id (`whk_…`)."), PageQuery),
    responses(
        (status = 200, description = "One page of deliveries.", body = DeliveryList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn list_webhook_deliveries(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(webhook_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<DeliveryList>> {
    let id = endpoint_id(&webhook_id)?;
    let page = query.page()?;
    state.store.get_endpoint(&workspace.id, &id).await?;
    let deliveries = state
        .store
        .list_deliveries(&workspace.id, &id, &page)
        .await?;
    Ok(axum::Json(deliveries.into()))
}

/// Makes one delivery due now.
///
/// A pending delivery keeps its schedule from there; a succeeded or failed one gets exactly
/// one more attempt. Answers `202` with the delivery.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{webhookId}/deliveries/{deliveryId}/retry",
    tag = "webhooks",
    params(
        ("webhookId" = String, Path, description = "The endpoint id (`whk_…`)."),
        ("deliveryId" = String, Path, description = "The delivery id (`dlv_…`)."),
    ),
    responses(
        (status = 202, description = "The delivery, due now.", body = Delivery),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn retry_webhook_delivery(
    State(state): State<AppState>,
    workspace: Workspace,
    Path((webhook_id, delivery_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, axum::Json<Delivery>)> {
    let endpoint = endpoint_id(&webhook_id)?;
    let delivery: DeliveryId = parse_id(&delivery_id, "delivery")?;
    let delivery = state
        .store
        .retry_delivery(&workspace.id, &endpoint, &delivery)
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(delivery)))
}

/// Re-sends every event recorded in `[since, until)` that the endpoint subscribes to,
/// delivered before or not (e.g. after the receiver lost data).
///
/// `since` must not be in the future and must be before `until` (default now). Answers
/// `202` with the number of deliveries queued.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{webhookId}/recover",
    tag = "webhooks",
    params(("webhookId" = String, Path, description = "The endpoint id (`whk_…`).")),
    request_body = RecoverWebhook,
    responses(
        (status = 202, description = "How many deliveries were queued.", body = RecoverQueued),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn recover_webhook(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(webhook_id): Path<String>,
    Json(body): Json<RecoverWebhook>,
) -> ApiResult<(StatusCode, axum::Json<RecoverQueued>)> {
    let id = endpoint_id(&webhook_id)?;
    state.store.get_endpoint(&workspace.id, &id).await?;
    let now = super::now();
    if body.since > now {
        return Err(Error::invalid(
            "since",
            format!("`since` ({}) is in the future", body.since),
        )
        .into());
    }
    let until = body.until.unwrap_or(now);
    if body.since >= until {
        return Err(Error::invalid(
            "until",
            format!("`since` ({}) must be before `until` ({until})", body.since),
        )
        .into());
    }
    let queued = state
        .store
        .recover_deliveries(&workspace.id, &id, body.since, until)
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(RecoverQueued { queued })))
}

/// The webhooks routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(test_webhook))
        .routes(routes!(list_webhook_deliveries))
        .routes(routes!(retry_webhook_delivery))
        .routes(routes!(recover_webhook))
}
