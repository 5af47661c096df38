//! Bad input and the problem documents: malformed bodies, sizes, unknown routes and methods,
//! authentication, pagination parameters, request ids and panics.

use axum::{
    Router,
    body::Body,
    http::{Method, Request},
    routing::get,
};
use serde_json::json;
use tower::ServiceExt;

use crate::common::{Resp, TestApp, hours_ago};

async fn patch_raw(app: &TestApp, path: &str, body: &str) -> Resp {
    app.call(
        Method::PATCH,
        path,
        Some(&app.key),
        Some(body.to_owned()),
        &[],
    )
    .await
}

#[tokio::test]
async fn malformed_bodies_are_400_with_a_clear_detail() {
    let app = TestApp::new().await;
    let account = app.connect("telegram", "t").await;
    let conversation = app.receive(&account, "c", "hi", hours_ago(1)).await;
    let path = format!("/api/v1/inbox/conversations/{conversation}");
    let before = app.snapshot().await;
    let broken = patch_raw(&app, &path, r#"{"status": "archived""#).await;
    let problem = broken.problem(400, "invalid_request");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{problem}"
    );
    assert!(problem.get("param").is_none());
    let array = patch_raw(&app, &path, r#"["archived"]"#).await;
    assert!(
        array.problem(400, "invalid_request")["detail"]
            .as_str()
            .unwrap()
            .contains("object")
    );
    let empty = app
        .call(Method::PATCH, &path, Some(&app.key), None, &[])
        .await;
    assert!(
        empty.problem(400, "invalid_request")["detail"]
            .as_str()
            .unwrap()
            .contains("required")
    );
    patch_raw(&app, &path, r#"{"status": ["archived"]}"#)
        .await
        .invalid("status");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let app = TestApp::builder()
        .config(|config| config.max_body_bytes = 1024)
        .build()
        .await;
    let account = app.connect("telegram", "t").await;
    let conversation = app.receive(&account, "c", "hi", hours_ago(1)).await;
    let before = app.snapshot().await;
    let path = format!("/api/v1/inbox/conversations/{conversation}/messages");
    let response = app.post(&path, json!({"message": "x".repeat(2000)})).await;
    response.problem(413, "payload_too_large");
    assert!(app.telegram.sends().is_empty());
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_problems() {
    let app = TestApp::new().await;
    let missing = app.get("/api/v1/nothing-here").await;
    missing.problem(404, "not_found");
    let unauthenticated = app.call(Method::GET, "/nope", None, None, &[]).await;
    unauthenticated.problem(404, "not_found");
    let wrong = app
        .call(
            Method::DELETE,
            "/api/v1/inbox/conversations",
            Some(&app.key),
            None,
            &[],
        )
        .await;
    wrong.problem(405, "method_not_allowed");
    let allow = wrong.header("allow").unwrap_or_default();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow}"
    );
}

#[tokio::test]
async fn missing_malformed_and_unknown_keys_are_401() {
    let app = TestApp::new().await;
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("authorization", "igk_whatever")],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
        vec![("authorization", "Bearer ")],
        vec![(
            "authorization",
            "Bearer igk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )],
    ];
    for headers in cases {
        let response = app
            .call(Method::GET, "/api/v1/accounts", None, None, &headers)
            .await;
        response.problem(401, "unauthorized");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
    let lowercase = app
        .call(
            Method::GET,
            "/api/v1/accounts",
            None,
            None,
            &[("authorization", &format!("bearer {}", app.key))],
        )
        .await;
    lowercase.ok(200);
}

#[tokio::test]
async fn bad_pagination_parameters_are_400() {
    let app = TestApp::new().await;
    for path in [
        "/api/v1/accounts",
        "/api/v1/inbox/conversations",
        "/api/v1/webhooks",
    ] {
        app.get(&format!("{path}?cursor=garbage!"))
            .await
            .invalid("cursor");
        app.get(&format!("{path}?limit=0")).await.invalid("limit");
        app.get(&format!("{path}?limit=101")).await.invalid("limit");
        app.get(&format!("{path}?limit=ten")).await.invalid("limit");
        app.get(&format!("{path}?limit=100")).await.ok(200);
    }
}

#[tokio::test]
async fn request_ids_are_echoed_or_made_and_match_the_problem() {
    let app = TestApp::new().await;
    let echoed = app
        .call(
            Method::GET,
            "/api/v1/accounts",
            Some(&app.key),
            None,
            &[("x-request-id", "client-abc-123")],
        )
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("client-abc-123"));
    let made = app
        .call(
            Method::GET,
            "/api/v1/accounts",
            Some(&app.key),
            None,
            &[("x-request-id", "has spaces")],
        )
        .await;
    let id = made.header("x-request-id").unwrap();
    assert!(id.starts_with("req_"), "{id}");
    let problem = app
        .call(
            Method::GET,
            "/api/v1/accounts/acc_x",
            Some(&app.key),
            None,
            &[("x-request-id", "trace-7")],
        )
        .await;
    assert_eq!(problem.problem(404, "not_found")["requestId"], "trace-7");
    let healthz = app.call(Method::GET, "/healthz", None, None, &[]).await;
    assert!(healthz.header("x-request-id").is_some());
}

#[tokio::test]
async fn a_panic_becomes_a_500_problem_without_details() {
    async fn explode() -> &'static str {
        panic!("secret internals")
    }
    let router = inbox_api::with_common_layers(Router::new().route("/boom", get(explode)));
    let request = Request::builder()
        .uri("/boom")
        .header("x-request-id", "panic-1")
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert_eq!(response.headers()["x-request-id"], "panic-1");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(problem["code"], "internal_error");
    assert_eq!(problem["requestId"], "panic-1");
    assert!(!problem.to_string().contains("secret internals"));
}
