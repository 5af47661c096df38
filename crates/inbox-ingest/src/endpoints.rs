//! The public inbound endpoints platforms push to: `POST /webhooks/{platform}/{accountId}` for
//! per-account webhooks (Telegram) and `GET|POST /webhooks/{platform}` for per-app webhooks
//! (Meta, X). Never behind the API key: each request is verified by its platform adapter over
//! the raw bytes, then persisted (group commit), then acknowledged. Parsing and everything
//! after it happen later, in the processor, so the platform gets its answer in milliseconds.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use inbox_core::{
    AccountContext, AccountId, Error, InboundMode, PlatformKind, PlatformRegistry, Timestamp,
    WebhookRequest,
};
use inbox_store::{NewRawEvent, Store};
use serde_json::json;

use crate::RawWriter;

/// How long a verified account's secret is reused without asking the database again. Short,
/// because a disconnected account must stop being accepted soon; anything accepted meanwhile
/// is dropped by the processor, which re-checks the account.
const ACCOUNT_CACHE_TTL: Duration = Duration::from_secs(10);

/// State of the inbound routes.
#[derive(Debug, Clone)]
pub struct InboundState {
    store: Arc<dyn Store>,
    platforms: Arc<PlatformRegistry>,
    writer: RawWriter,
    accounts: Arc<Mutex<AccountCache>>,
}

/// Recently verified accounts: when each was loaded, and what was found (`None`: not connected).
type AccountCache = HashMap<AccountId, (Instant, Option<CachedAccount>)>;

#[derive(Debug, Clone)]
struct CachedAccount {
    platform: PlatformKind,
    context: AccountContext,
}

impl InboundState {
    /// State over a store, the adapters and the raw writer.
    pub fn new(store: Arc<dyn Store>, platforms: Arc<PlatformRegistry>, writer: RawWriter) -> Self {
        InboundState {
            store,
            platforms,
            writer,
            accounts: Arc::default(),
        }
    }

    /// Forgets a cached account at once (called when it is disconnected).
    pub fn forget_account(&self, id: &AccountId) {
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    async fn account(&self, id: &AccountId) -> Result<Option<CachedAccount>, Error> {
        if let Some((at, cached)) = self
            .accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            && at.elapsed() < ACCOUNT_CACHE_TTL
        {
            return Ok(cached);
        }
        let loaded = match self.store.find_account(id).await? {
            Some(account) => Some(CachedAccount {
                platform: account.platform,
                context: self.store.account_context(id).await?,
            }),
            None => None,
        };
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), (Instant::now(), loaded.clone()));
        Ok(loaded)
    }
}

/// The inbound routes, to merge into the server's router.
pub fn router(state: InboundState) -> Router {
    Router::new()
        .route(
            "/webhooks/{platform}",
            get(handshake).post(receive_app_push),
        )
        .route(
            "/webhooks/{platform}/{account_id}",
            post(receive_account_push),
        )
        .with_state(state)
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn ok() -> Response {
    (StatusCode::OK, Json(json!({ "ok": true }))).into_response()
}

/// Maps a failure to a status the platform understands: verification failures 401 (the
/// platform must not retry a forged request forever, and nothing was stored), storage
/// failures 503 (retry later: nothing was stored, so a redelivery loses nothing).
fn failure(err: &Error) -> Response {
    match err {
        Error::WebhookVerification { message } => {
            tracing::warn!(reason = %message, "inbound request failed verification");
            metrics::counter!("inbox_inbound_rejected_total", "reason" => "verification")
                .increment(1);
            answer(StatusCode::UNAUTHORIZED, "verification failed")
        }
        Error::NotSupported { .. } => answer(StatusCode::NOT_FOUND, "not found"),
        other => {
            tracing::error!(error = %other, "inbound request could not be stored");
            answer(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable")
        }
    }
}

fn adapter_for<'a>(
    platforms: &'a PlatformRegistry,
    name: &str,
    mode: InboundMode,
) -> Option<&'a inbox_core::DynPlatform> {
    let kind: PlatformKind = name.parse().ok()?;
    let platform = platforms.get(kind).ok()?;
    platform
        .capabilities()
        .inbound_modes
        .contains(&mode)
        .then_some(platform)
}

async fn receive_account_push(
    State(state): State<InboundState>,
    Path((platform_name, account_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(platform) = adapter_for(
        &state.platforms,
        &platform_name,
        InboundMode::WebhookPerAccount,
    ) else {
        return answer(StatusCode::NOT_FOUND, "not found");
    };
    let Ok(account_id) = AccountId::parse(&account_id) else {
        return answer(StatusCode::NOT_FOUND, "unknown account");
    };
    let account = match state.account(&account_id).await {
        Ok(Some(account)) if account.platform == platform.kind() => account,
        Ok(_) => return answer(StatusCode::NOT_FOUND, "unknown account"),
        Err(err) => return failure(&err),
    };
    let request = WebhookRequest {
        method: &method,
        headers: &headers,
        query: uri.query(),
        body: &body,
    };
    if let Err(err) = platform.verify_webhook(&request, Some(&account.context)) {
        return failure(&err);
    }
    store_push(&state, platform.kind(), Some(account_id), body).await
}

async fn receive_app_push(
    State(state): State<InboundState>,
    Path(platform_name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(platform) = adapter_for(&state.platforms, &platform_name, InboundMode::WebhookPerApp)
    else {
        return answer(StatusCode::NOT_FOUND, "not found");
    };
    let request = WebhookRequest {
        method: &method,
        headers: &headers,
        query: uri.query(),
        body: &body,
    };
    if let Err(err) = platform.verify_webhook(&request, None) {
        return failure(&err);
    }
    store_push(&state, platform.kind(), None, body).await
}

async fn store_push(
    state: &InboundState,
    platform: PlatformKind,
    account_id: Option<AccountId>,
    body: Bytes,
) -> Response {
    let event = NewRawEvent {
        platform,
        account_id,
        payload: body.to_vec(),
        received_at: Timestamp::now(),
    };
    match state.writer.write(event).await {
        Ok(_) => {
            metrics::counter!("inbox_inbound_accepted_total", "platform" => platform.as_str())
                .increment(1);
            ok()
        }
        Err(err) => failure(&err),
    }
}

async fn handshake(
    State(state): State<InboundState>,
    Path(platform_name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(platform) = adapter_for(&state.platforms, &platform_name, InboundMode::WebhookPerApp)
    else {
        return answer(StatusCode::NOT_FOUND, "not found");
    };
    let request = WebhookRequest {
        method: &method,
        headers: &headers,
        query: uri.query(),
        body: &[],
    };
    match platform.handshake(&request) {
        Ok(response) => (
            [(header::CONTENT_TYPE, response.content_type)],
            response.body,
        )
            .into_response(),
        Err(Error::WebhookVerification { message }) => {
            tracing::warn!(reason = %message, platform = %platform.kind(), "handshake refused");
            answer(StatusCode::FORBIDDEN, "verification failed")
        }
        Err(err) => failure(&err),
    }
}
