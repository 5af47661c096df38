//! The REST API: axum routers, API-key auth, problem+json errors, the OpenAPI document.
