//! `POST /api/v1/connect/{platform}` and `GET /api/v1/oauth/{platform}/callback`: connecting
//! an account through the platform's OAuth consent screen instead of pasting credentials.
//!
//! No adapter implements an OAuth flow yet (Instagram, Facebook, X and Reddit get theirs with
//! their adapters), so both routes resolve the platform and answer `422
//! not_supported_by_platform`; an unknown platform name is `400` on `platform`. When a flow
//! lands, `oauth_flow_unavailable` is the one place that becomes a dispatch to it, and the
//! routes, their paths and their error contract stay as they are.

use axum::extract::State;
use inbox_core::{Error, PlatformKind};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::Workspace,
    error::{ApiError, responses::*},
    extract::Path,
};

fn platform_from_path(raw: &str) -> Result<PlatformKind, Error> {
    raw.parse::<PlatformKind>()
        .map_err(|err| Error::invalid("platform", err.to_string()))
}

/// The answer for a platform without an OAuth flow in this gateway — currently all of them.
fn oauth_flow_unavailable(platform: PlatformKind) -> Error {
    Error::NotSupported {
        platform,
        operation: "connecting through OAuth in this gateway version; connect the account with \
                    `POST /api/v1/accounts` and its credentials",
    }
}

/// Starts connecting an account through the platform's OAuth consent screen.
///
/// Will return `{authorizationUrl, state}` for Instagram, Facebook, X and Reddit. No platform
/// adapter offers OAuth in this version, so every platform answers `422
/// not_supported_by_platform`; connect accounts with `POST /api/v1/accounts` and their
/// credentials instead.
#[utoipa::path(
    post,
    path = "/api/v1/connect/{platform}",
    tag = "connect",
    params(("platform" = PlatformKind, Path, description = "The platform to connect.")),
    responses(
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, response = Unprocessable),
    )
)]
pub async fn start_oauth(
    State(_state): State<AppState>,
    _workspace: Workspace,
    Path(platform): Path<String>,
) -> Result<(), ApiError> {
    Err(oauth_flow_unavailable(platform_from_path(&platform)?).into())
}

/// The OAuth redirect target (public; checked by `state`).
///
/// Will create the account, emit `account.connected` and redirect to the `redirectUrl` given
/// at start. No platform adapter offers OAuth in this version, so every platform answers
/// `422 not_supported_by_platform`.
#[utoipa::path(
    get,
    path = "/api/v1/oauth/{platform}/callback",
    tag = "connect",
    params(("platform" = PlatformKind, Path, description = "The platform redirecting back.")),
    responses(
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
    )
)]
pub async fn complete_oauth(Path(platform): Path<String>) -> Result<(), ApiError> {
    Err(oauth_flow_unavailable(platform_from_path(&platform)?).into())
}

/// `POST /connect/{platform}`, behind the API key.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start_oauth))
}

/// `GET /oauth/{platform}/callback`: public, since the platform's redirect carries no API key.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(complete_oauth))
}
