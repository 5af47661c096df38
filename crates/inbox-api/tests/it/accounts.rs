//! `/api/v1/accounts`: connect, list, get, disconnect, and every way a connect is refused.

use inbox_core::AccountId;
use inbox_testkit::memory_platform::{Failure, Operation};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn connect_validates_with_the_platform_stores_and_starts_inbound() {
    let app = TestApp::new().await;
    let response = app
        .post(
            "/api/v1/accounts",
            json!({"platform": "telegram", "credentials": {"token": "t1", "name": "Support bot", "username": "support_bot"}}),
        )
        .await;
    let account = response.ok(201);
    let id = account["id"].as_str().unwrap();
    assert!(id.starts_with("acc_"));
    assert_eq!(account["platform"], "telegram");
    assert_eq!(account["platformAccountId"], "telegram-t1");
    assert_eq!(account["name"], "Support bot");
    assert_eq!(account["username"], "support_bot");
    assert_eq!(account["status"], "active");
    assert!(
        account.get("credentials").is_none(),
        "credentials are never returned"
    );
    assert!(account.get("workspaceId").is_none());
    assert_eq!(app.telegram.connect_count(), 1);
    let id = AccountId::parse(id).unwrap();
    assert_eq!(*app.hooks.connected.lock().unwrap(), vec![id.clone()]);
    let context = app.store.account_context(&id).await.unwrap();
    let secret = context.inbound_secret.expect("an inbound secret is stored");
    let secret = secret.expose_secret();
    assert_eq!(secret.len(), 32);
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    assert_eq!(
        app.events().await,
        vec![inbox_core::EventType::AccountConnected]
    );
}

#[tokio::test]
async fn a_given_name_overrides_the_platforms() {
    let app = TestApp::new().await;
    let response = app
        .post(
            "/api/v1/accounts",
            json!({"platform": "telegram", "credentials": {"token": "t1"}, "name": "Front desk"}),
        )
        .await;
    assert_eq!(response.ok(201)["name"], "Front desk");
}

#[tokio::test]
async fn reconnecting_the_same_platform_account_answers_200_and_keeps_the_id() {
    let app = TestApp::new().await;
    let first = app.connect("telegram", "t1").await;
    let again = app
        .post(
            "/api/v1/accounts",
            json!({"platform": "telegram", "credentials": {"token": "t1"}}),
        )
        .await;
    assert_eq!(again.ok(200)["id"], first.as_str());
    let list = app.get("/api/v1/accounts").await;
    assert_eq!(list.ok(200)["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn list_filters_by_platform_and_pages_with_a_cursor() {
    let app = TestApp::new().await;
    let first = app.connect("telegram", "a").await;
    let second = app.connect("telegram", "b").await;
    let instagram = app.connect("instagram", "c").await;

    let all = app.get("/api/v1/accounts").await;
    let ids: Vec<_> = all.ok(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!(first), json!(second), json!(instagram)],
        "oldest first"
    );
    assert_eq!(all.json["nextCursor"], serde_json::Value::Null);

    let filtered = app.get("/api/v1/accounts?platform=instagram").await;
    let data = filtered.ok(200)["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], instagram.as_str());

    let page1 = app.get("/api/v1/accounts?limit=2").await;
    assert_eq!(page1.ok(200)["data"].as_array().unwrap().len(), 2);
    let cursor = page1.json["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let page2 = app
        .get(&format!("/api/v1/accounts?limit=2&cursor={cursor}"))
        .await;
    let data = page2.ok(200)["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], instagram.as_str());
    assert_eq!(page2.json["nextCursor"], serde_json::Value::Null);
}

#[tokio::test]
async fn get_returns_the_account_and_unknown_or_malformed_ids_are_404() {
    let app = TestApp::new().await;
    let id = app.connect("telegram", "t1").await;
    let response = app.get(&format!("/api/v1/accounts/{id}")).await;
    assert_eq!(response.ok(200)["id"], id.as_str());
    app.get(&format!("/api/v1/accounts/{}", AccountId::new()))
        .await
        .problem(404, "not_found");
    app.get("/api/v1/accounts/acc_nope")
        .await
        .problem(404, "not_found");
    app.get("/api/v1/accounts/conv_01jd3k5n8q2w4e6r8t0y2u4i6o")
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn disconnect_runs_the_hook_then_the_account_answers_404() {
    let app = TestApp::new().await;
    let id = app.connect("telegram", "t1").await;
    app.delete(&format!("/api/v1/accounts/{id}")).await.ok(204);
    assert_eq!(
        *app.hooks.disconnecting.lock().unwrap(),
        vec![AccountId::parse(&id).unwrap()]
    );
    app.get(&format!("/api/v1/accounts/{id}"))
        .await
        .problem(404, "not_found");
    app.delete(&format!("/api/v1/accounts/{id}"))
        .await
        .problem(404, "not_found");
    assert_eq!(app.get("/api/v1/accounts").await.ok(200)["data"], json!([]));
}

#[tokio::test]
async fn disconnect_succeeds_locally_when_platform_clean_up_fails() {
    let app = TestApp::new().await;
    let id = app.connect("telegram", "t1").await;
    *app.hooks.fail_disconnecting.lock().unwrap() = true;
    app.delete(&format!("/api/v1/accounts/{id}")).await.ok(204);
    app.get(&format!("/api/v1/accounts/{id}"))
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn a_failed_inbound_setup_undoes_a_new_connect() {
    let app = TestApp::new().await;
    *app.hooks.fail_connected.lock().unwrap() = true;
    let response = app
        .post(
            "/api/v1/accounts",
            json!({"platform": "telegram", "credentials": {"token": "t1"}}),
        )
        .await;
    response.problem(503, "platform_unavailable");
    assert_eq!(app.hooks.connected.lock().unwrap().len(), 1);
    assert_eq!(app.get("/api/v1/accounts").await.ok(200)["data"], json!([]));
}

#[tokio::test]
async fn credentials_the_platform_rejects_are_400_on_credentials_and_store_nothing() {
    let app = TestApp::new().await;
    let before = app.snapshot().await;
    app.telegram.fail_next(
        Operation::Connect,
        Failure::ReauthRequired("Unauthorized".into()),
    );
    let response = app
        .post(
            "/api/v1/accounts",
            json!({"platform": "telegram", "credentials": {"token": "bad"}}),
        )
        .await;
    let problem = response.invalid("credentials");
    assert!(
        problem["detail"].as_str().unwrap().contains("Unauthorized"),
        "{problem}"
    );
    assert_eq!(app.snapshot().await, before);
    assert!(app.hooks.connected.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_malformed_credentials_document_names_the_field() {
    let app = TestApp::new().await;
    let before = app.snapshot().await;
    app.post(
        "/api/v1/accounts",
        json!({"platform": "telegram", "credentials": {}}),
    )
    .await
    .invalid("credentials.token");
    app.post(
        "/api/v1/accounts",
        json!({"platform": "telegram", "credentials": "token"}),
    )
    .await
    .invalid("credentials");
    app.post("/api/v1/accounts", json!({"platform": "telegram"}))
        .await
        .invalid("credentials");
    assert_eq!(app.snapshot().await, before);
    assert_eq!(
        app.telegram.connect_count(),
        1,
        "only the well-formed object reached the platform"
    );
}

#[tokio::test]
async fn unknown_or_unconfigured_platforms_are_400_on_platform() {
    let app = TestApp::new().await;
    let before = app.snapshot().await;
    let unknown = app
        .post(
            "/api/v1/accounts",
            json!({"platform": "myspace", "credentials": {"token": "t"}}),
        )
        .await;
    assert!(
        unknown.invalid("platform")["detail"]
            .as_str()
            .unwrap()
            .contains("myspace")
    );
    // A real platform this gateway has no adapter for.
    app.post(
        "/api/v1/accounts",
        json!({"platform": "reddit", "credentials": {"token": "t"}}),
    )
    .await
    .invalid("platform");
    app.post(
        "/api/v1/accounts",
        json!({"platform": 7, "credentials": {"token": "t"}}),
    )
    .await
    .invalid("platform");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn platform_refusals_pass_the_platforms_own_code_through() {
    let app = TestApp::new().await;
    app.telegram.fail_next(
        Operation::Connect,
        Failure::platform("409", "Conflict: terminated by other getUpdates"),
    );
    let response = app
        .post(
            "/api/v1/accounts",
            json!({"platform": "telegram", "credentials": {"token": "t"}}),
        )
        .await;
    let problem = response.problem(502, "platform_error");
    assert_eq!(
        problem["platform"],
        json!({"code": "409", "message": "Conflict: terminated by other getUpdates"})
    );
}

#[tokio::test]
async fn an_account_connected_in_another_workspace_is_a_conflict() {
    let app = TestApp::new().await;
    app.connect_other("telegram", "shared").await;
    let before = app.snapshot().await;
    let response = app
        .post(
            "/api/v1/accounts",
            json!({"platform": "telegram", "credentials": {"token": "shared"}}),
        )
        .await;
    response.problem(409, "conflict");
    assert_eq!(app.snapshot().await, before);
}
