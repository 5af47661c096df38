//! The REST API of the inbox gateway: axum routers, API-key auth, problem+json errors and the
//! OpenAPI document, generated from the same route registrations that serve requests.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::sync::Arc;

use axum::{Router, extract::DefaultBodyLimit, middleware};
use utoipa::openapi::{
    OpenApi,
    security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_scalar::{Scalar, Servable};

pub mod auth;
pub mod compose;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod layers;
pub mod ratelimit;
pub mod routes;
mod state;

pub use auth::create_api_key;
pub use error::{ApiError, ApiResult, ErrorCode, Problem};
pub use layers::with_common_layers;
pub use ratelimit::{ApiKeyLimits, RedisReadiness};
pub use state::{
    AccountHooks, ApiConfig, AppState, DEFAULT_MAX_BODY_BYTES, MetricsRenderer, NoopAccountHooks,
    ReadinessCheck, StoreReadiness,
};

/// The security scheme name in the document.
const BEARER_SCHEME: &str = "bearerAuth";

/// The document's top-level description: the conventions every operation shares.
const API_DESCRIPTION: &str = "\
Read and answer direct messages on Instagram, Facebook Messenger, WhatsApp, X, Reddit, Bluesky \
and Telegram through one API.

* **Auth**: `Authorization: Bearer igk_…` on every `/api/v1` route except the OAuth callback.
* **Errors**: `application/problem+json` (RFC 9457) with a stable `code`, `error` (= `detail`), \
`param` on `invalid_request`, `platform` on `platform_error`, and `requestId`.
* **Lists**: `{\"data\": [...], \"nextCursor\": \"…\" | null}`, `limit` 1–100 (default 50), \
`cursor`.
* **Compatibility**: unknown body fields and query parameters are ignored; every response \
carries `X-Request-Id` (a sane client-sent one is reused).
* **Idempotency**: `Idempotency-Key` on sends and conversation starts replays the first \
successful response for 24 h.
* **Rate limits**: each API key may make a configured number of requests per minute (600 by \
default); every response behind the key carries `RateLimit-Limit`, `RateLimit-Remaining`, \
`RateLimit-Reset` (seconds) and `X-RateLimit-Limit`, `X-RateLimit-Remaining`, \
`X-RateLimit-Reset` (Unix time). Beyond the limit, and when a platform's budget for the account \
(or chat, or recipient) is spent, the answer is `429 rate_limited` with `Retry-After`; nothing \
is sent then.";

/// The routers and the document, built together from the same `routes!` registrations.
struct Parts {
    /// `/api/v1` routes behind the API key.
    authenticated: Router<AppState>,
    /// The OAuth callback and the ops routes.
    public: Router<AppState>,
    /// `/openapi.json`, over the rendered document.
    document_route: Router<Arc<String>>,
    openapi: OpenApi,
}

/// What the document says beyond its operations: info, shared schemas, tags.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Inbox Gateway API", license(name = "Apache-2.0", identifier = "Apache-2.0")),
    components(schemas(error::Problem, error::ErrorCode, error::PlatformErrorDetail)),
    tags(
        (name = "accounts", description = "Connected platform accounts."),
        (name = "connect", description = "Connecting accounts through the platform's OAuth."),
        (name = "conversations", description = "The unified inbox: threads with one participant each."),
        (name = "messages", description = "Reading and sending messages."),
        (name = "webhooks", description = "Customer webhook endpoints, deliveries and recovery."),
        (name = "ops", description = "Health, readiness, metrics and this document (no API key)."),
    )
)]
struct BaseDocument;

fn parts() -> Parts {
    use utoipa::OpenApi as _;

    let authenticated = OpenApiRouter::with_openapi(BaseDocument::openapi())
        .merge(routes::accounts::router())
        .merge(routes::connect::router())
        .merge(routes::conversations::router())
        .merge(routes::messages::router())
        .merge(routes::webhooks::router());
    let public = routes::connect::public_router().merge(routes::ops::router());
    let (authenticated, mut openapi) = authenticated.split_for_parts();
    let (public, public_doc) = public.split_for_parts();
    let (document_route, document_doc) = routes::ops::openapi_router().split_for_parts();
    openapi.merge(public_doc);
    openapi.merge(document_doc);
    finish_document(&mut openapi);
    Parts {
        authenticated,
        public,
        document_route,
        openapi,
    }
}

/// What the route registrations cannot say: the description, the bearer scheme and which
/// operations need it, and the shared error responses.
fn finish_document(openapi: &mut OpenApi) {
    openapi.info.description = Some(API_DESCRIPTION.to_owned());
    let components = openapi.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER_SCHEME.to_owned(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("igk_ API key")
                .description(Some("An API key made with `inboxgw api-key create`."))
                .build(),
        )
        .into(),
    );
    components.responses.extend(error::responses::all());
    ratelimit::document(openapi, |path| {
        path.starts_with("/api/v1/") && !path.starts_with("/api/v1/oauth/")
    });
    for (path, item) in openapi.paths.paths.iter_mut() {
        let needs_key = path.starts_with("/api/v1/") && !path.starts_with("/api/v1/oauth/");
        if !needs_key {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            operation.security = Some(vec![SecurityRequirement::new(
                BEARER_SCHEME,
                Vec::<String>::new(),
            )]);
        }
    }
}

/// The OpenAPI document of the whole API (what `/openapi.json` serves).
pub fn openapi() -> OpenApi {
    parts().openapi
}

/// The OpenAPI document as pretty-printed JSON with a trailing newline: exactly what
/// `openapi/openapi.json` holds and `inboxgw openapi` prints.
pub fn openapi_json() -> String {
    openapi_json_of(&openapi())
}

/// The API router: `/api/v1/*` (behind the API key, except the OAuth callback), `/healthz`,
/// `/readyz`, `/metrics`, `/openapi.json` and `/docs`.
///
/// Wrap it (merged with the inbound routes) in [`with_common_layers`] for request ids, the
/// problem documents of unmatched routes, and panic handling.
pub fn router(state: AppState) -> Router {
    let Parts {
        authenticated,
        public,
        document_route,
        openapi,
    } = parts();
    let document = Arc::new(openapi_json_of(&openapi));
    // Layers run outermost last-added: the key is checked first, then counted.
    let authenticated = authenticated
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit_api_key,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ));
    let body_limit = DefaultBodyLimit::max(state.config.max_body_bytes);
    Router::new()
        .merge(authenticated)
        .merge(public)
        .layer(body_limit)
        .with_state(state)
        .merge(document_route.with_state(document))
        .merge(Scalar::with_url("/docs", openapi).title("Inbox Gateway API"))
}

fn openapi_json_of(openapi: &OpenApi) -> String {
    let mut json = openapi
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    json.push('\n');
    json
}
