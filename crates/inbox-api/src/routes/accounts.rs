//! `/api/v1/accounts`: connecting platform accounts with their credentials, listing them, and
//! disconnecting them.
//!
//! Connecting validates the credentials against the platform first, then stores the account
//! (encrypted credentials, a fresh inbound secret) and asks the inbound side to start
//! delivery; if that fails a newly created account is removed again, so a failed connect
//! leaves nothing behind.

use axum::{extract::State, http::StatusCode};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use inbox_core::{
    Account, AccountId, ConnectedAccount, DynPlatform, Error, PlatformKind, Timestamp, WorkspaceId,
};
use inbox_store::{AccountFilter, ConnectedAccountRecord, NewAccount};
use rand::RngCore;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::Workspace,
    error::{ApiResult, responses::*},
    extract::{Json, Path, Query, parse_id},
    routes::{list_type, within_deadline},
};

list_type!(
    /// One page of accounts.
    AccountList,
    Account
);

/// Query parameters of `GET /accounts`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountListQuery {
    /// Only accounts of this platform.
    pub platform: Option<PlatformKind>,
    /// Rows per page, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `nextCursor` from the previous page, unchanged.
    pub cursor: Option<String>,
}

/// Body of `POST /accounts`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateAccount {
    /// The platform.
    pub platform: PlatformKind,
    /// The platform's credentials document: telegram `{botToken}`; whatsapp `{phoneNumberId,
    /// accessToken, wabaId?}`; instagram `{accessToken}`; facebook `{pageId,
    /// pageAccessToken}`; x `{accessToken, refreshToken, expiresAt}`; reddit
    /// `{refreshToken}`; bluesky `{identifier, appPassword, service?}`. Validated against the
    /// platform before anything is stored; never returned or logged.
    #[schema(value_type = Object, example = json!({"botToken": "123456:ABC-DEF"}))]
    pub credentials: serde_json::Value,
    /// A display name; defaults to the name the platform reports.
    pub name: Option<String>,
}

/// Lists the workspace's connected accounts, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/accounts",
    tag = "accounts",
    params(AccountListQuery),
    responses(
        (status = 200, description = "One page of accounts.", body = AccountList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    )
)]
pub async fn list_accounts(
    State(state): State<AppState>,
    workspace: Workspace,
    Query(query): Query<AccountListQuery>,
) -> ApiResult<axum::Json<AccountList>> {
    let page = inbox_core::PageRequest::from_query(query.limit, query.cursor.as_deref())?;
    let filter = AccountFilter {
        platform: query.platform,
    };
    let accounts = state
        .store
        .list_accounts(&workspace.id, &filter, &page)
        .await?;
    Ok(axum::Json(accounts.into()))
}

/// Returns one connected account.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{accountId}",
    tag = "accounts",
    params(("accountId" = String, Path, description = "The account id (`acc_…`).")),
    responses(
        (status = 200, description = "The account.", body = Account),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn get_account(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(account_id): Path<String>,
) -> ApiResult<axum::Json<Account>> {
    let id: AccountId = parse_id(&account_id, "account")?;
    Ok(axum::Json(
        state.store.get_account(&workspace.id, &id).await?,
    ))
}

/// Connects a platform account with its credentials.
///
/// The gateway validates the credentials against the platform (e.g. Telegram `getMe`)
/// before saving anything, then arranges inbound delivery (a webhook or a poller). Answers
/// `201` for a new account and `200` when the same platform account was connected to this
/// workspace before (credentials are replaced, the id and history kept). Credentials the
/// platform rejects are `400 invalid_request` on `credentials`; an account connected in
/// another workspace is `409 conflict`.
#[utoipa::path(
    post,
    path = "/api/v1/accounts",
    tag = "accounts",
    request_body = CreateAccount,
    responses(
        (status = 201, description = "The account was connected.", body = Account),
        (status = 200, description = "An existing account was reconnected.", body = Account),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 429, response = RateLimited),
        (status = 502, response = PlatformError),
        (status = 503, response = PlatformUnavailable),
    )
)]
pub async fn create_account(
    State(state): State<AppState>,
    workspace: Workspace,
    Json(body): Json<CreateAccount>,
) -> ApiResult<(StatusCode, axum::Json<Account>)> {
    if !body.credentials.is_object() {
        return Err(Error::invalid("credentials", "`credentials` must be a JSON object").into());
    }
    // Registry lookup errors name `platform`: the platform is valid but not configured here.
    let platform = state.platforms.get(body.platform)?.clone();
    super::run_to_completion(connect(state, workspace, body, platform)).await?
}

async fn connect(
    state: AppState,
    workspace: Workspace,
    body: CreateAccount,
    platform: inbox_core::DynPlatform,
) -> ApiResult<(StatusCode, axum::Json<Account>)> {
    let kind = body.platform;
    let connected = within_deadline(&state, kind, platform.connect(&body.credentials))
        .await
        .map_err(|err| match err {
            // At connect time "revoked" simply means the credentials are wrong.
            Error::ReauthRequired { platform, message } => Error::invalid(
                "credentials",
                format!("{platform} rejected the credentials: {message}"),
            ),
            other => other,
        })?;
    let record = store_connected(&state, &workspace.id, &platform, connected, body.name).await?;
    let account = record.account;
    tracing::info!(account_id = %account.id, platform = %kind, created = record.created, "account connected");
    let status = if record.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(account)))
}

/// Stores an account the platform vouched for (from credentials or an OAuth exchange) and
/// arranges its inbound delivery; when that fails, a newly created account is removed again,
/// so a failed connect leaves nothing behind. `name` overrides the platform's display name.
pub(crate) async fn store_connected(
    state: &AppState,
    workspace: &WorkspaceId,
    platform: &DynPlatform,
    connected: ConnectedAccount,
    name: Option<String>,
) -> Result<ConnectedAccountRecord, Error> {
    let kind = platform.kind();
    let name = name
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or(connected.name);
    let record = state
        .store
        .connect_account(NewAccount {
            workspace_id: workspace.clone(),
            platform: kind,
            platform_account_id: connected.platform_account_id,
            name,
            username: connected.username,
            credentials: connected.credentials,
            inbound_secret: Some(new_inbound_secret()),
            refresh_due_at: platform
                .capabilities()
                .refresh_due(Timestamp::now(), connected.credentials_expire_at),
            credentials_expire_at: connected.credentials_expire_at,
        })
        .await?;
    let hooked = within_deadline(state, kind, state.hooks.connected(&record.account)).await;
    if let Err(err) = hooked {
        if record.created
            && let Err(undo_err) = state
                .store
                .delete_account(workspace, &record.account.id)
                .await
        {
            tracing::error!(error = %undo_err, account_id = %record.account.id, "could not undo a failed connect");
        }
        return Err(err);
    }
    Ok(record)
}

/// Disconnects an account.
///
/// Unregisters what the gateway registered on the platform (webhooks) and stops pollers,
/// then deletes the credentials; afterwards the account answers `404`. Disconnecting always
/// succeeds locally: when the platform cannot be reached or refuses (revoked token), that is
/// logged and the account is removed anyway, because a customer must always be able to get
/// rid of an account. A leftover platform webhook then points at an account that no longer
/// exists, and its deliveries are refused.
#[utoipa::path(
    delete,
    path = "/api/v1/accounts/{accountId}",
    tag = "accounts",
    params(("accountId" = String, Path, description = "The account id (`acc_…`).")),
    responses(
        (status = 204, description = "The account was disconnected."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn delete_account(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(account_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: AccountId = parse_id(&account_id, "account")?;
    let account = state.store.get_account(&workspace.id, &id).await?;
    let kind = account.platform;
    let unhooked = super::run_to_completion({
        let state = state.clone();
        async move {
            if let Err(err) = within_deadline(&state, kind, state.hooks.disconnecting(&account)).await {
                tracing::warn!(error = %err, account_id = %account.id, "platform clean-up failed; disconnecting anyway");
            }
            state.store.delete_account(&workspace.id, &account.id).await
        }
    })
    .await?;
    unhooked?;
    Ok(StatusCode::NO_CONTENT)
}

/// A per-account secret the platform sends back with every push: 32 characters of
/// `[A-Za-z0-9_-]` (24 random bytes, base64url), which Telegram's `secret_token` accepts.
fn new_inbound_secret() -> SecretString {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// The accounts routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, delete_account))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn inbound_secrets_fit_telegram_secret_token() {
        let secret = new_inbound_secret();
        let text = secret.expose_secret();
        assert_eq!(text.len(), 32);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
        assert_ne!(text, new_inbound_secret().expose_secret());
    }
}
