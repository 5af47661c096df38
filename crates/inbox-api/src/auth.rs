//! API keys: making them (`igk_` + 43 url-safe characters, stored only as a SHA-256 hash)
//! and checking them on every `/api/v1` request. A valid key puts its workspace into the
//! request; handlers take it with the [`Workspace`] extractor and pass it to every store call,
//! which is what keeps one workspace from ever seeing another's data.

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use inbox_core::{ApiKeyId, WorkspaceId};
use inbox_store::{ApiKeyRecord, Store};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{AppState, error::ApiError};

/// Every key starts with this, so leaked keys are easy to find with secret scanners.
pub const API_KEY_PREFIX: &str = "igk_";

/// How many leading characters of a key are stored in clear, to tell keys apart.
const STORED_PREFIX_LEN: usize = 12;

/// Creates an API key for the workspace called `workspace_name` (created if new). Returns the
/// key, to show once, and its stored record; the key itself is not kept anywhere.
///
/// # Errors
/// Whatever the store returns.
pub async fn create_api_key(
    store: &dyn Store,
    workspace_name: &str,
) -> Result<(String, ApiKeyRecord), inbox_core::Error> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let workspace = store.ensure_workspace(workspace_name).await?;
    let record = store
        .create_api_key(&workspace.id, &hash_key(&key), &key[..STORED_PREFIX_LEN])
        .await?;
    Ok((key, record))
}

/// SHA-256 of the key, lowercase hex: the form the store keeps and looks up.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The workspace (and key) a request is authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The workspace every store call is scoped to.
    pub id: WorkspaceId,
    /// The key used, for logs.
    pub key_id: ApiKeyId,
}

impl<S: Send + Sync> FromRequestParts<S> for Workspace {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // Only absent when a route was mounted without `require_api_key`: refuse rather than
        // serve it unauthenticated.
        parts
            .extensions
            .get::<Workspace>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("this route requires an API key"))
    }
}

/// Middleware: `Authorization: Bearer <key>` → the key's workspace in the request's
/// extensions, or `401 unauthorized` with `WWW-Authenticate: Bearer`.
pub(crate) async fn require_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticate(&state, request.headers()).await {
        Ok(workspace) => {
            tracing::Span::current().record("workspace_id", workspace.id.as_str());
            request.extensions_mut().insert(workspace);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Workspace, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing API key: send `Authorization: Bearer <key>`",
        ));
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|text| {
            let (scheme, key) = text.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        })
        .filter(|key| !key.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("malformed Authorization header: expected `Bearer <key>`")
        })?;
    let presented = hash_key(key);
    let record = state.store.find_api_key(&presented).await?;
    match record {
        // The lookup is by hash already; comparing again in constant time keeps the answer
        // independent of how the store matched (index collation, prefix scans).
        Some(record) if bool::from(record.key_hash.as_bytes().ct_eq(presented.as_bytes())) => {
            Ok(Workspace {
                id: record.workspace_id,
                key_id: record.id,
            })
        }
        _ => Err(ApiError::unauthorized("invalid API key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_lowercase_hex_sha256() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
