//! The layers every HTTP route of the gateway runs under, API and inbound platform webhooks
//! alike: a request id (echoed in `X-Request-Id`, carried by the tracing span and by every
//! problem document), a body-size limit, a panic catcher, and the translation of the bare
//! 404/405/413 answers axum produces on its own into problem documents.

use std::{any::Any, time::Instant};

use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::{
    error::{ApiError, PROBLEM_CONTENT_TYPE},
    state::DEFAULT_MAX_BODY_BYTES,
};

/// The request id header, in both directions.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-sent request id the gateway reuses.
const MAX_CLIENT_REQUEST_ID_LEN: usize = 200;

tokio::task_local! {
    /// The id of the request the current task serves, so error responses and log lines can
    /// carry it without threading it through every call.
    static REQUEST_ID: String;
}

/// The current request's id, or a fresh one outside a request (a router used without
/// [`with_common_layers`]).
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| new_request_id())
}

/// Runs `future` as part of the current request: with its id, so work spawned to outlive a
/// client disconnect still logs and answers under the right id.
pub(crate) fn in_current_request<F: Future>(future: F) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(current_request_id(), future)
}

fn new_request_id() -> String {
    format!("req_{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}

/// A client's id is reused when it is 1–200 visible ASCII characters, so it can go into a
/// header and a log line unchanged.
fn client_request_id(request: &Request) -> Option<String> {
    let value = request.headers().get(&X_REQUEST_ID)?.to_str().ok()?;
    let sane = !value.is_empty()
        && value.len() <= MAX_CLIENT_REQUEST_ID_LEN
        && value.bytes().all(|byte| byte.is_ascii_graphic());
    sane.then(|| value.to_owned())
}

/// Wraps `router` in the gateway's common layers (outermost first): request id and tracing
/// span, bare-error translation, panic catcher, and a default body limit of 1 MiB (a router
/// may set its own with `DefaultBodyLimit`; the inner one wins, as the API router does with
/// `ApiConfig::max_body_bytes`).
pub fn with_common_layers(router: Router) -> Router {
    router
        .layer(DefaultBodyLimit::max(DEFAULT_MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(bare_errors_as_problems))
        .layer(middleware::from_fn(request_context))
}

async fn request_context(request: Request, next: Next) -> Response {
    let id = client_request_id(&request).unwrap_or_else(new_request_id);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        workspace_id = tracing::field::Empty,
    );
    // The route template (`/api/v1/inbox/conversations/{id}`), not the path, keeps the metric
    // labels bounded.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(request).instrument(span.clone()))
        .await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16().to_string();
    metrics::counter!("inbox_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("inbox_http_request_duration_seconds", "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = elapsed.as_millis() as u64,
            "request finished"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

/// axum answers unmatched routes (404), wrong methods (405) and over-limit bodies read by its
/// own extractors (413, as text) by itself; clients of this API only ever get problem
/// documents. Responses a handler made deliberately (any with a content type, other than a
/// text 413) pass through untouched.
async fn bare_errors_as_problems(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let is_problem = content_type.as_ref().is_some_and(|value| {
        value
            .to_str()
            .is_ok_and(|value| value.starts_with(PROBLEM_CONTENT_TYPE))
    });
    let replacement = match status {
        StatusCode::NOT_FOUND if content_type.is_none() => {
            ApiError::route_not_found(method.as_str(), &path)
        }
        StatusCode::METHOD_NOT_ALLOWED if content_type.is_none() => {
            ApiError::method_not_allowed(method.as_str(), &path)
        }
        StatusCode::PAYLOAD_TOO_LARGE if !is_problem => ApiError::payload_too_large(None),
        _ => return response,
    };
    let (mut parts, _) = response.into_parts();
    let (new_parts, body) = replacement.into_response().into_parts();
    // Keep what axum set (the `Allow` header on 405), take the problem's body and type.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(new_parts.headers);
    Response::from_parts(parts, Body::new(body))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned());
    ApiError::panic(&message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with_id(value: &str) -> Request {
        Request::builder()
            .header("x-request-id", value)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn sane_client_ids_are_reused_and_others_replaced() {
        assert_eq!(
            client_request_id(&request_with_id("abc-123")).as_deref(),
            Some("abc-123")
        );
        assert_eq!(client_request_id(&request_with_id("has space")), None);
        assert_eq!(client_request_id(&request_with_id(&"x".repeat(201))), None);
        assert_eq!(client_request_id(&request_with_id("")), None);
        assert!(new_request_id().starts_with("req_"));
    }
}
