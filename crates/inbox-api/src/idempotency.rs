//! `Idempotency-Key`: a retried request with the same key and the same body gets the first
//! response back (with `Idempotent-Replayed: true`) instead of running again; the same key
//! with another body, or while the first request still runs, is `409 idempotency_conflict`.
//!
//! Only 2xx responses are kept (24 h by default). A failed request releases its key, so a
//! retry runs again — which is what the client wants after a `503`.

use std::sync::Arc;

use axum::{
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use inbox_core::{Error, WorkspaceId};
use inbox_store::{IdempotencyBegin, Store, StoredResponse};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{AppState, error::ApiError};

/// The request header.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a replayed response.
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

const MAX_KEY_LEN: usize = 255;

/// The `Idempotency-Key` of a request, if it sent one.
///
/// # Errors
/// `InvalidInput` on `Idempotency-Key` when it is empty, longer than 255 characters or not
/// visible ASCII.
pub fn key_from_headers(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let invalid = |why: &str| Error::invalid("Idempotency-Key", why.to_owned());
    let text = value
        .to_str()
        .map_err(|_| invalid("`Idempotency-Key` must be visible ASCII"))?;
    if text.is_empty() || text.len() > MAX_KEY_LEN {
        return Err(invalid("`Idempotency-Key` must be 1 to 255 characters"));
    }
    if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(invalid(
            "`Idempotency-Key` must be visible ASCII without spaces",
        ));
    }
    Ok(Some(text.to_owned()))
}

/// What a key is bound to: SHA-256 over the method, the path and the canonical JSON body.
pub fn request_hash(method: &Method, path: &str, canonical_body: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_body.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// One request's idempotency scope.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The workspace the key belongs to.
    pub workspace: WorkspaceId,
    /// The key, when the request sent one.
    pub key: Option<String>,
    /// The request hash.
    pub request_hash: String,
}

impl Idempotency {
    /// Runs `operation` at most once per key: replays a stored success, refuses a conflicting
    /// reuse, stores a new success and releases the key after a failure.
    pub async fn run<T, F>(self, state: &AppState, operation: F) -> Response
    where
        T: Serialize,
        F: Future<Output = Result<(StatusCode, T), ApiError>>,
    {
        let Some(key) = self.key else {
            return json_response(operation.await);
        };
        let store = &state.store;
        let ttl = state.config.idempotency_ttl;
        match store
            .idempotency_begin(&self.workspace, &key, &self.request_hash, ttl)
            .await
        {
            Err(err) => return ApiError::from(err).into_response(),
            Ok(IdempotencyBegin::Replay(stored)) => return replay(stored),
            Ok(IdempotencyBegin::Mismatch) => {
                return ApiError::from(Error::IdempotencyConflict {
                    message: "this Idempotency-Key was already used with a different request; \
                              use a new key for a new request"
                        .to_owned(),
                })
                .into_response();
            }
            Ok(IdempotencyBegin::InFlight) => {
                return ApiError::from(Error::IdempotencyConflict {
                    message: "a request with this Idempotency-Key is still in progress; \
                              retry after it finishes"
                        .to_owned(),
                })
                .into_response();
            }
            Ok(IdempotencyBegin::Started) => {}
        }
        // If the operation panics (or is dropped), the key must not stay "in flight" for the
        // whole TTL; the guard releases it unless the outcome below is handled.
        let mut guard = InFlightGuard {
            store: Some(state.store.clone()),
            workspace: self.workspace.clone(),
            key: key.clone(),
        };
        let outcome = operation.await.and_then(|(status, body)| {
            serde_json::to_string(&body)
                .map(|text| (status, text))
                .map_err(|err| Error::internal("response does not serialise", err).into())
        });
        guard.store = None;
        match outcome {
            Ok((status, body)) if status.is_success() => {
                let stored = StoredResponse {
                    status: status.as_u16(),
                    body: body.clone(),
                };
                // The operation already happened (the message was sent): a failure to keep
                // the response must not turn the success into an error. A retry with the same
                // key would then run again; the log says why.
                if let Err(err) = store
                    .idempotency_complete(&self.workspace, &key, &stored)
                    .await
                {
                    tracing::error!(error = %err, "could not store the idempotent response");
                }
                raw_json(status, body)
            }
            Ok((status, body)) => {
                release(state, &self.workspace, &key).await;
                raw_json(status, body)
            }
            Err(err) => {
                release(state, &self.workspace, &key).await;
                err.into_response()
            }
        }
    }
}

/// Releases an idempotency key when dropped while armed (`store` set).
struct InFlightGuard {
    store: Option<Arc<dyn Store>>,
    workspace: WorkspaceId,
    key: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (workspace, key) = (self.workspace.clone(), std::mem::take(&mut self.key));
        runtime.spawn(async move {
            if let Err(err) = store.idempotency_release(&workspace, &key).await {
                tracing::error!(error = %err, "could not release an abandoned idempotency key");
            }
        });
    }
}

async fn release(state: &AppState, workspace: &WorkspaceId, key: &str) {
    if let Err(err) = state.store.idempotency_release(workspace, key).await {
        tracing::error!(error = %err, "could not release an idempotency key");
    }
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = raw_json(status, stored.body);
    response.headers_mut().insert(
        IDEMPOTENT_REPLAYED.clone(),
        HeaderValue::from_static("true"),
    );
    response
}

fn json_response<T: Serialize>(outcome: Result<(StatusCode, T), ApiError>) -> Response {
    match outcome {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(err) => err.into_response(),
    }
}

fn raw_json(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        let mut headers = HeaderMap::new();
        assert_eq!(key_from_headers(&headers).unwrap(), None);
        headers.insert(&IDEMPOTENCY_KEY, HeaderValue::from_static("order-42"));
        assert_eq!(
            key_from_headers(&headers).unwrap().as_deref(),
            Some("order-42")
        );
        headers.insert(
            &IDEMPOTENCY_KEY,
            HeaderValue::from_str(&"k".repeat(256)).unwrap(),
        );
        assert!(key_from_headers(&headers).is_err());
    }

    #[test]
    fn hash_binds_method_path_and_body() {
        let a = request_hash(&Method::POST, "/api/v1/x", "{}");
        assert_eq!(a, request_hash(&Method::POST, "/api/v1/x", "{}"));
        assert_ne!(a, request_hash(&Method::POST, "/api/v1/y", "{}"));
        assert_ne!(a, request_hash(&Method::POST, "/api/v1/x", r#"{"a":1}"#));
    }
}
