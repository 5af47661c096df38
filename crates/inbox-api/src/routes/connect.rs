//! `POST /api/v1/connect/{platform}` and `GET /api/v1/oauth/{platform}/callback`: connecting
//! an account through the platform's OAuth consent screen instead of pasting credentials.
//!
//! The start stores a single-use `state` (with the PKCE verifier where the platform uses PKCE,
//! encrypted) for 15 minutes and returns the platform's authorization URL. The platform sends
//! the browser back to the public callback, which consumes the state, exchanges the code
//! through the adapter, connects every account the grant covers (Facebook: one per page) —
//! each emits `account.connected` — and redirects the browser to the customer's
//! `redirectUrl` with the outcome in its query string. Platforms without OAuth answer `422
//! not_supported_by_platform`.

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use inbox_core::{
    AccountId, DynPlatform, Error, OAuthCallback, OAuthRequest, PlatformKind, Timestamp,
};
use inbox_store::NewOAuthState;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::Workspace,
    error::{ApiError, ApiResult, responses::*},
    extract::{Json, Path, Query},
    routes::{accounts::store_connected, within_deadline},
};

fn platform_from_path(raw: &str) -> Result<PlatformKind, Error> {
    raw.parse::<PlatformKind>()
        .map_err(|err| Error::invalid("platform", err.to_string()))
}

/// The adapter, if this gateway runs one for `kind` and it has an OAuth flow.
fn oauth_platform(state: &AppState, kind: PlatformKind) -> Result<DynPlatform, Error> {
    let platform = state.platforms.get(kind)?.clone();
    if platform.capabilities().oauth.is_none() {
        return Err(Error::NotSupported {
            platform: kind,
            operation: "connecting through OAuth; connect the account with `POST /api/v1/accounts` \
                        and its credentials",
        });
    }
    Ok(platform)
}

/// `n` random bytes as URL-safe text (valid in `state` and as a PKCE verifier).
fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Body of `POST /connect/{platform}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartOAuth {
    /// Where to send the browser when the flow ends: with `connected=true&accountId=…` on
    /// success, `error=…&error_description=…` otherwise. An absolute http(s) URL.
    pub redirect_url: Option<String>,
}

/// Query of `GET /connect/{platform}` (the Zernio SDKs' form of the start).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartOAuthQuery {
    /// As `redirectUrl` in the body form.
    pub redirect_url: Option<String>,
    /// Zernio's camelCase spelling of the same.
    #[serde(rename = "redirectUrl")]
    pub redirect_url_camel: Option<String>,
}

/// Where to send the user to grant access.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthStarted {
    /// The platform's consent page.
    pub authorization_url: String,
    /// The same URL under Zernio's name.
    pub auth_url: String,
    /// The single-use state the callback checks; valid for 15 minutes.
    pub state: String,
}

/// Starts connecting an account through the platform's OAuth consent screen.
///
/// Returns the platform's authorization URL; send the user's browser there. The platform
/// redirects back to `{INBOX_PUBLIC_URL}/api/v1/oauth/{platform}/callback` (register that URL
/// with your platform app), which connects the account and redirects to `redirectUrl`.
/// Instagram, Facebook, X and Reddit have OAuth; others answer `422
/// not_supported_by_platform`.
#[utoipa::path(
    post,
    path = "/api/v1/connect/{platform}",
    tag = "connect",
    params(("platform" = PlatformKind, Path, description = "The platform to connect.")),
    request_body = StartOAuth,
    responses(
        (status = 200, description = "Where to send the user.", body = OAuthStarted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, response = Unprocessable),
    )
)]
pub async fn start_oauth(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(platform): Path<String>,
    Json(body): Json<StartOAuth>,
) -> ApiResult<axum::Json<OAuthStarted>> {
    begin(
        &state,
        &workspace,
        &platform,
        body.redirect_url,
        "redirectUrl",
    )
    .await
}

/// Starts the OAuth connect flow (query form, as the Zernio SDKs call it).
///
/// Same as `POST /api/v1/connect/{platform}`, with `redirect_url` in the query string.
#[utoipa::path(
    get,
    path = "/api/v1/connect/{platform}",
    tag = "connect",
    params(("platform" = PlatformKind, Path, description = "The platform to connect."), StartOAuthQuery),
    responses(
        (status = 200, description = "Where to send the user.", body = OAuthStarted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, response = Unprocessable),
    )
)]
pub async fn start_oauth_by_query(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(platform): Path<String>,
    Query(query): Query<StartOAuthQuery>,
) -> ApiResult<axum::Json<OAuthStarted>> {
    let redirect = query.redirect_url.or(query.redirect_url_camel);
    begin(&state, &workspace, &platform, redirect, "redirect_url").await
}

async fn begin(
    state: &AppState,
    workspace: &Workspace,
    platform: &str,
    redirect_url: Option<String>,
    redirect_param: &str,
) -> ApiResult<axum::Json<OAuthStarted>> {
    let kind = platform_from_path(platform)?;
    let adapter = oauth_platform(state, kind)?;
    let redirect_url = redirect_url
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
        .ok_or_else(|| {
            Error::invalid(
                redirect_param,
                format!(
                    "`{redirect_param}` is required: where to send the browser when the flow ends"
                ),
            )
        })?;
    let parsed = Url::parse(&redirect_url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
    if parsed.is_none() {
        return Err(Error::invalid(
            redirect_param,
            format!("`{redirect_param}` must be an absolute http(s) URL"),
        )
        .into());
    }
    let callback = callback_uri(state, kind)?;
    let pkce = adapter.capabilities().oauth.is_some_and(|flow| flow.pkce);
    let oauth_state = random_token(24);
    let verifier = pkce.then(|| random_token(48));
    let authorization_url = adapter.oauth_authorize_url(&OAuthRequest {
        state: oauth_state.clone(),
        redirect_uri: callback,
        code_challenge: verifier.as_deref().map(pkce_challenge),
    })?;
    state
        .store
        .create_oauth_state(NewOAuthState {
            state: oauth_state.clone(),
            workspace_id: workspace.id.clone(),
            platform: kind,
            redirect_url,
            code_verifier: verifier.map(SecretString::from),
            expires_at: Timestamp::now() + state.config.oauth_state_ttl,
        })
        .await?;
    Ok(axum::Json(OAuthStarted {
        auth_url: authorization_url.clone(),
        authorization_url,
        state: oauth_state,
    }))
}

/// The callback URI registered with the platform app; needs `INBOX_PUBLIC_URL`.
fn callback_uri(state: &AppState, kind: PlatformKind) -> Result<String, Error> {
    let base = state.config.public_url.as_deref().ok_or_else(|| {
        Error::invalid(
            "platform",
            format!(
                "OAuth needs the gateway's public address: set INBOX_PUBLIC_URL, and register \
                 `{{INBOX_PUBLIC_URL}}/api/v1/oauth/{kind}/callback` with the {kind} app"
            ),
        )
    })?;
    Ok(format!(
        "{}/api/v1/oauth/{kind}/callback",
        base.trim_end_matches('/')
    ))
}

/// What the platform appends to the callback.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OAuthCallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The state from the start.
    pub state: Option<String>,
    /// Set by the platform when the user refused or the request was invalid.
    pub error: Option<String>,
    /// The platform's explanation of `error`.
    pub error_description: Option<String>,
}

/// The OAuth redirect target (public; checked by `state`).
///
/// Consumes the single-use state, exchanges the code, connects every account the grant covers
/// (each emits `account.connected`) and redirects (`302`) to the `redirectUrl` given at the
/// start with `connected=true&platform=…&accountId=…&accountIds=…`, or with
/// `error=…&error_description=…` when the user refused or the exchange failed. An unknown,
/// used or expired `state` is `400`: there is nowhere safe to redirect to.
#[utoipa::path(
    get,
    path = "/api/v1/oauth/{platform}/callback",
    tag = "connect",
    params(("platform" = PlatformKind, Path, description = "The platform redirecting back."), OAuthCallbackQuery),
    responses(
        (status = 302, description = "Back to the customer's `redirectUrl`, with the outcome."),
        (status = 400, response = BadRequest),
    )
)]
pub async fn complete_oauth(
    State(state): State<AppState>,
    Path(platform): Path<String>,
    Query(query): Query<OAuthCallbackQuery>,
) -> Result<Response, ApiError> {
    let kind = platform_from_path(&platform)?;
    let state_token = query
        .state
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::invalid(
                "state",
                "the callback carries no `state`; start again with POST /api/v1/connect/{platform}",
            )
        })?;
    let stored = state
        .store
        .take_oauth_state(&state_token)
        .await?
        .filter(|stored| stored.platform == kind)
        .ok_or_else(|| {
            Error::invalid("state", "this connect flow is unknown, was already completed or expired (15 minutes); start again")
        })?;
    let outcome = super::run_to_completion({
        let state = state.clone();
        async move { finish(&state, kind, stored, query).await }
    })
    .await?;
    Ok(outcome)
}

async fn finish(
    state: &AppState,
    kind: PlatformKind,
    stored: inbox_store::OAuthState,
    query: OAuthCallbackQuery,
) -> Response {
    let fail = |error: &str, description: String| {
        tracing::warn!(platform = %kind, error, description = %description, "OAuth connect failed");
        redirect(
            &stored.redirect_url,
            &[
                ("error", error),
                ("error_description", &description),
                ("platform", kind.as_str()),
            ],
        )
    };
    if let Some(error) = query.error.as_deref().filter(|e| !e.is_empty()) {
        return fail(
            error,
            query
                .error_description
                .unwrap_or_else(|| "the platform refused the authorization".into()),
        );
    }
    let Some(code) = query.code.filter(|c| !c.is_empty()) else {
        return fail(
            "invalid_request",
            "the platform sent no authorization code".into(),
        );
    };
    let adapter = match oauth_platform(state, kind) {
        Ok(adapter) => adapter,
        Err(err) => return fail("not_supported", err.to_string()),
    };
    let redirect_uri = match callback_uri(state, kind) {
        Ok(uri) => uri,
        Err(err) => return fail("server_error", err.to_string()),
    };
    let callback = OAuthCallback {
        code,
        redirect_uri,
        code_verifier: stored
            .code_verifier
            .as_ref()
            .map(|v| v.expose_secret().to_owned()),
    };
    let connected = match within_deadline(state, kind, adapter.oauth_exchange(&callback)).await {
        Ok(connected) if !connected.is_empty() => connected,
        Ok(_) => {
            return fail(
                "access_denied",
                "the grant covers no account the gateway can use".into(),
            );
        }
        Err(err) => return fail("exchange_failed", err.to_string()),
    };
    let mut ids: Vec<AccountId> = Vec::with_capacity(connected.len());
    for account in connected {
        match store_connected(state, &stored.workspace_id, &adapter, account, None).await {
            Ok(record) => ids.push(record.account.id),
            Err(err) => return fail("connect_failed", err.to_string()),
        }
    }
    tracing::info!(platform = %kind, accounts = ids.len(), "accounts connected through OAuth");
    let all = ids
        .iter()
        .map(AccountId::as_str)
        .collect::<Vec<_>>()
        .join(",");
    redirect(
        &stored.redirect_url,
        &[
            ("connected", "true"),
            ("platform", kind.as_str()),
            ("accountId", ids[0].as_str()),
            ("accountIds", &all),
        ],
    )
}

/// A `302` to `base` with `pairs` added to its query string.
fn redirect(base: &str, pairs: &[(&str, &str)]) -> Response {
    let mut url = match Url::parse(base) {
        Ok(url) => url,
        Err(_) => return (StatusCode::BAD_REQUEST, "invalid redirect URL").into_response(),
    };
    url.query_pairs_mut().extend_pairs(pairs);
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `POST|GET /connect/{platform}`, behind the API key.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start_oauth, start_oauth_by_query))
}

/// `GET /oauth/{platform}/callback`: public, since the platform's redirect carries no API key.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(complete_oauth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn redirects_keep_the_customers_query() {
        let response = redirect(
            "https://app.example/done?session=7",
            &[("connected", "true"), ("accountId", "acc_1")],
        );
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://app.example/done?session=7&connected=true&accountId=acc_1"
        );
    }
}
