//! Operations endpoints: liveness, readiness, metrics, the document and the rendered
//! reference, all without an API key.

use axum::http::Method;
use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn healthz_answers_ok_without_a_key() {
    let app = TestApp::new().await;
    let response = app.call(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(response.ok(200), &json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_reports_each_dependency() {
    let app = TestApp::new().await;
    let ready = app.call(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(
        ready.ok(200),
        &json!({"status": "ok", "checks": [{"name": "database", "status": "ok"}]})
    );

    let app = TestApp::builder().failing_readiness().build().await;
    let unready = app.call(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(unready.status.as_u16(), 503);
    assert_eq!(unready.json["status"], "unavailable");
    assert_eq!(
        unready.json["checks"][0],
        json!({"name": "database", "status": "ok"})
    );
    assert_eq!(
        unready.json["checks"][1],
        json!({"name": "redis", "status": "error", "error": "connection refused"})
    );
}

#[tokio::test]
async fn metrics_serve_the_installed_renderer() {
    let app = TestApp::new().await;
    let response = app.call(Method::GET, "/metrics", None, None, &[]).await;
    assert_eq!(response.status.as_u16(), 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(response.text.contains("inbox_test_total 7"));
}

#[tokio::test]
async fn the_document_and_its_rendering_are_served() {
    let app = TestApp::new().await;
    let document = app
        .call(Method::GET, "/openapi.json", None, None, &[])
        .await;
    assert_eq!(document.status.as_u16(), 200);
    assert_eq!(document.header("content-type"), Some("application/json"));
    assert_eq!(document.text, inbox_api::openapi_json());
    let docs = app.call(Method::GET, "/docs", None, None, &[]).await;
    assert_eq!(docs.status.as_u16(), 200);
    assert!(
        docs.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(docs.text.contains("Inbox Gateway API"));
}
