//! OAuth connect: the start returns the platform's authorization URL (with PKCE where the
//! platform uses it) and stores a single-use state; the public callback exchanges the code,
//! connects every granted account and redirects to the customer's URL with the outcome.

use axum::http::Method;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use inbox_core::EventType;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use crate::common::{Resp, TestApp};

const REDIRECT: &str = "https://app.example/connected?session=7";

async fn app() -> TestApp {
    TestApp::builder()
        .config(|config| config.public_url = Some("https://gw.example".into()))
        .build()
        .await
}

fn query(url: &str) -> Vec<(String, String)> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(url: &str, name: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

async fn callback(app: &TestApp, platform: &str, query: &str) -> Resp {
    app.call(
        Method::GET,
        &format!("/api/v1/oauth/{platform}/callback?{query}"),
        None,
        None,
        &[],
    )
    .await
}

fn location(response: &Resp) -> String {
    assert_eq!(response.status, 302, "{}", response.text);
    response.header("location").unwrap().to_owned()
}

#[tokio::test]
async fn x_connects_through_oauth_with_pkce_and_redirects_back() {
    let app = app().await;
    let started = app
        .post("/api/v1/connect/x", json!({"redirectUrl": REDIRECT}))
        .await;
    let body: &Value = started.ok(200);
    let authorization = body["authorizationUrl"].as_str().unwrap();
    assert_eq!(body["authUrl"], body["authorizationUrl"]);
    let state = body["state"].as_str().unwrap();
    assert_eq!(param(authorization, "state").as_deref(), Some(state));
    assert_eq!(
        param(authorization, "redirect_uri").as_deref(),
        Some("https://gw.example/api/v1/oauth/x/callback")
    );
    let challenge = param(authorization, "code_challenge").expect("PKCE challenge");

    let response = callback(&app, "x", &format!("code=accounts:4242&state={state}")).await;
    let back = location(&response);
    assert!(
        back.starts_with("https://app.example/connected?session=7&"),
        "{back}"
    );
    assert_eq!(param(&back, "connected").as_deref(), Some("true"));
    assert_eq!(param(&back, "platform").as_deref(), Some("x"));
    let account_id = param(&back, "accountId").unwrap();

    // The verifier sent to the platform matches the challenge it saw.
    let verifiers = app.x.oauth_verifiers();
    let verifier = verifiers[0].clone().expect("a PKCE verifier");
    assert_eq!(
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        challenge
    );

    let account = app.get(&format!("/api/v1/accounts/{account_id}")).await;
    let account = account.ok(200);
    assert_eq!(account["platformAccountId"], "4242");
    assert_eq!(account["platform"], "x");
    assert!(app.events().await.contains(&EventType::AccountConnected));
    assert_eq!(app.hooks.connected.lock().unwrap().len(), 1);

    // The state is single use.
    let again = callback(&app, "x", &format!("code=accounts:4242&state={state}")).await;
    again.invalid("state");
}

#[tokio::test]
async fn one_grant_can_connect_several_accounts_without_pkce() {
    let app = app().await;
    let started = app
        .post("/api/v1/connect/facebook", json!({"redirectUrl": REDIRECT}))
        .await;
    let body = started.ok(200);
    assert_eq!(
        param(body["authorizationUrl"].as_str().unwrap(), "code_challenge"),
        None
    );
    let state = body["state"].as_str().unwrap().to_owned();

    let back = location(
        &callback(
            &app,
            "facebook",
            &format!("code=accounts:page-1,page-2&state={state}"),
        )
        .await,
    );
    let ids = param(&back, "accountIds").unwrap();
    assert_eq!(ids.split(',').count(), 2);
    assert_eq!(app.facebook.oauth_verifiers(), [None]);
    let accounts = app.get("/api/v1/accounts?platform=facebook").await;
    assert_eq!(accounts.ok(200)["data"].as_array().unwrap().len(), 2);
}

async fn start(app: &TestApp) -> String {
    let started = app
        .post("/api/v1/connect/x", json!({"redirectUrl": REDIRECT}))
        .await;
    started.ok(200)["state"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn refusals_and_failed_exchanges_redirect_with_the_error_and_connect_nothing() {
    let app = app().await;

    let state = start(&app).await;
    let denied = location(
        &callback(
            &app,
            "x",
            &format!("error=access_denied&error_description=The+user+said+no&state={state}"),
        )
        .await,
    );
    assert_eq!(param(&denied, "error").as_deref(), Some("access_denied"));
    assert_eq!(
        param(&denied, "error_description").as_deref(),
        Some("The user said no")
    );

    let state = start(&app).await;
    let failed = location(&callback(&app, "x", &format!("code=expired&state={state}")).await);
    assert_eq!(param(&failed, "error").as_deref(), Some("exchange_failed"));
    assert!(
        param(&failed, "error_description")
            .unwrap()
            .contains("invalid or expired")
    );

    let state = start(&app).await;
    let missing = location(&callback(&app, "x", &format!("state={state}")).await);
    assert_eq!(param(&missing, "error").as_deref(), Some("invalid_request"));

    let accounts = app.get("/api/v1/accounts").await;
    assert_eq!(accounts.ok(200)["data"], json!([]));
}

#[tokio::test]
async fn bad_starts_and_callbacks_are_refused_with_clear_problems() {
    let app = app().await;
    // Platforms without OAuth, unknown platforms, a missing or relative redirect URL.
    let telegram = app
        .post("/api/v1/connect/telegram", json!({"redirectUrl": REDIRECT}))
        .await;
    telegram.problem(422, "not_supported_by_platform");
    app.post("/api/v1/connect/myspace", json!({"redirectUrl": REDIRECT}))
        .await
        .invalid("platform");
    app.post("/api/v1/connect/x", json!({}))
        .await
        .invalid("redirectUrl");
    app.post("/api/v1/connect/x", json!({"redirectUrl": "/relative"}))
        .await
        .invalid("redirectUrl");
    let unauthenticated = app
        .call(
            Method::POST,
            "/api/v1/connect/x",
            None,
            Some(json!({"redirectUrl": REDIRECT}).to_string()),
            &[("content-type", "application/json")],
        )
        .await;
    unauthenticated.problem(401, "unauthorized");

    // The callback: no state, an unknown state, a state of another platform.
    callback(&app, "x", "code=accounts:1")
        .await
        .invalid("state");
    callback(&app, "x", "code=accounts:1&state=never-issued")
        .await
        .invalid("state");
    let started = app
        .post("/api/v1/connect/x", json!({"redirectUrl": REDIRECT}))
        .await;
    let state = started.ok(200)["state"].as_str().unwrap().to_owned();
    callback(&app, "facebook", &format!("code=accounts:1&state={state}"))
        .await
        .invalid("state");
    callback(&app, "nope", "code=c&state=s")
        .await
        .invalid("platform");
}

#[tokio::test]
async fn oauth_needs_the_public_url_to_build_its_callback() {
    let app = TestApp::new().await;
    let problem = app
        .post("/api/v1/connect/x", json!({"redirectUrl": REDIRECT}))
        .await;
    let body = problem.invalid("platform");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("INBOX_PUBLIC_URL"),
        "{body}"
    );
}

#[tokio::test]
async fn the_zernio_sdk_query_form_starts_the_same_flow() {
    let app = app().await;
    let encoded: String = url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect();
    let started = app
        .get(&format!("/api/v1/connect/x?redirect_url={encoded}"))
        .await;
    let body = started.ok(200);
    let state = body["state"].as_str().unwrap().to_owned();
    let back = location(&callback(&app, "x", &format!("code=accounts:9&state={state}")).await);
    assert_eq!(param(&back, "connected").as_deref(), Some("true"));
}
