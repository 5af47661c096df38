//! Operations endpoints, outside `/api/v1` and without an API key: liveness (`/healthz`),
//! readiness (`/readyz`: the database and whatever else the server registered, such as
//! Redis, whose absence degrades the gateway without stopping it), Prometheus
//! metrics (`/metrics`) and the OpenAPI document (`/openapi.json`; the rendered reference at
//! `/docs` is mounted in `lib.rs`).

use std::sync::Arc;

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::AppState;

/// `{status: "ok"}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
}

/// The readiness report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` when every check passed; `degraded` when only non-critical ones failed (Redis:
    /// rate limits are then enforced per replica, in process); `unavailable` when a critical
    /// one failed (the database).
    pub status: String,
    /// Each dependency's result, in check order.
    pub checks: Vec<ReadinessResult>,
}

/// One dependency's readiness.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadinessResult {
    /// The dependency (`database`, `redis`).
    pub name: String,
    /// `ok`, `error` (a critical dependency failed) or `degraded` (a non-critical one did).
    pub status: String,
    /// What failed, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Liveness: answers `200` whenever the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    responses((status = 200, description = "The process is up.", body = Health))
)]
pub async fn get_health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".to_owned(),
    })
}

/// Readiness: `200` when the database answers — with `status: "degraded"` when a
/// non-critical dependency (Redis) does not, since the gateway keeps serving on its
/// in-process rate limiter — otherwise `503` with the report saying which failed.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, description = "The gateway serves: every dependency answers (`ok`), or only a non-critical one does not (`degraded`).", body = Readiness),
        (status = 503, description = "A critical dependency (the database) does not answer.", body = Readiness),
    )
)]
pub async fn get_readiness(State(state): State<AppState>) -> (StatusCode, axum::Json<Readiness>) {
    let mut checks = Vec::with_capacity(state.readiness.len());
    let (mut failed, mut degraded) = (false, false);
    for check in state.readiness.iter() {
        let outcome = check.check().await;
        let word = match (&outcome, check.critical()) {
            (Ok(()), _) => "ok",
            (Err(_), true) => {
                failed = true;
                "error"
            }
            (Err(_), false) => {
                degraded = true;
                "degraded"
            }
        };
        // A degraded dependency was logged when it went away (once); probes every few
        // seconds must not repeat it.
        match &outcome {
            Err(error) if word == "error" => {
                tracing::warn!(dependency = check.name(), error, "readiness check failed");
            }
            Err(error) => {
                tracing::debug!(dependency = check.name(), error, "dependency degraded");
            }
            Ok(()) => {}
        }
        checks.push(ReadinessResult {
            name: check.name().to_owned(),
            status: word.to_owned(),
            error: outcome.err(),
        });
    }
    let (status, word) = match (failed, degraded) {
        (true, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (false, true) => (StatusCode::OK, "degraded"),
        (false, false) => (StatusCode::OK, "ok"),
    };
    (
        status,
        axum::Json(Readiness {
            status: word.to_owned(),
            checks,
        }),
    )
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Prometheus text format.", body = String, content_type = "text/plain; version=0.0.4"))
)]
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    let text = (state.metrics)();
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    responses((status = 200, description = "The OpenAPI document.", body = Object))
)]
pub async fn get_openapi(State(document): State<Arc<String>>) -> Response {
    let mut response = document.as_str().to_owned().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The ops routes that read the application state.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_health))
        .routes(routes!(get_readiness))
        .routes(routes!(get_metrics))
}

/// `/openapi.json`, over the rendered document.
pub fn openapi_router() -> OpenApiRouter<Arc<String>> {
    OpenApiRouter::new().routes(routes!(get_openapi))
}
