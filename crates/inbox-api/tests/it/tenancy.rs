//! Tenancy: a key sees only its workspace. Every resource of another workspace answers 404
//! (never 403, never data) on every route, and lists never show it.

use axum::http::Method;
use serde_json::{Value, json};

use crate::common::{TestApp, hours_ago};

#[tokio::test]
async fn another_workspaces_ids_are_404_on_every_route() {
    let app = TestApp::new().await;
    // Everything below belongs to `globex`; requests are made with `acme`'s key.
    let account = app.connect_other("telegram", "globex-bot").await;
    let conversation = app.receive(&account, "c", "hi", hours_ago(1)).await;
    let messages = app
        .call(
            Method::GET,
            &format!("/api/v1/inbox/conversations/{conversation}/messages"),
            Some(&app.other_key),
            None,
            &[],
        )
        .await;
    let message = messages.ok(200)["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let webhook = app
        .call(
            Method::POST,
            "/api/v1/webhooks",
            Some(&app.other_key),
            Some(json!({"url": "http://127.0.0.1:4000/x"}).to_string()),
            &[],
        )
        .await;
    let webhook = webhook.ok(201)["id"].as_str().unwrap().to_owned();
    let delivery = app
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{webhook}/test"),
            Some(&app.other_key),
            None,
            &[],
        )
        .await;
    let delivery = delivery.ok(202)["id"].as_str().unwrap().to_owned();
    let before = app.snapshot_of(&app.other_workspace).await;

    let conv = format!("/api/v1/inbox/conversations/{conversation}");
    let hook = format!("/api/v1/webhooks/{webhook}");
    let status = Some(json!({"status": "archived"}));
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/accounts/{account}"), None),
        (Method::DELETE, format!("/api/v1/accounts/{account}"), None),
        (Method::GET, conv.clone(), None),
        (Method::PATCH, conv.clone(), status.clone()),
        (Method::PUT, conv.clone(), status),
        (Method::POST, format!("{conv}/read"), None),
        (Method::GET, format!("{conv}/messages"), None),
        (
            Method::POST,
            format!("{conv}/messages"),
            Some(json!({"message": "hi"})),
        ),
        (
            Method::GET,
            format!("{conv}/messages/{message}/attachments/0"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/inbox/conversations".to_owned(),
            Some(json!({"accountId": account, "participant": "x", "message": "hi"})),
        ),
        (Method::GET, hook.clone(), None),
        (Method::PATCH, hook.clone(), Some(json!({"enabled": false}))),
        (Method::DELETE, hook.clone(), None),
        (Method::POST, format!("{hook}/rotate-secret"), None),
        (Method::POST, format!("{hook}/test"), None),
        (Method::GET, format!("{hook}/deliveries"), None),
        (
            Method::POST,
            format!("{hook}/deliveries/{delivery}/retry"),
            None,
        ),
        (
            Method::POST,
            format!("{hook}/recover"),
            Some(json!({"since": hours_ago(2).to_string()})),
        ),
    ];
    for (method, path, body) in cases {
        let response = app
            .call(
                method.clone(),
                &path,
                Some(&app.key),
                body.map(|b| b.to_string()),
                &[],
            )
            .await;
        assert_eq!(
            response.status.as_u16(),
            404,
            "{method} {path}: {}",
            response.text
        );
        response.problem(404, "not_found");
    }
    assert_eq!(
        app.snapshot_of(&app.other_workspace).await,
        before,
        "nothing of globex changed"
    );
    assert!(app.telegram.sends().is_empty());

    let accounts = app.get("/api/v1/accounts").await;
    assert_eq!(accounts.ok(200)["data"], json!([]));
    let conversations = app.get("/api/v1/inbox/conversations").await;
    assert_eq!(conversations.ok(200)["data"], json!([]));
    let filtered = app
        .get(&format!("/api/v1/inbox/conversations?accountId={account}"))
        .await;
    assert_eq!(filtered.ok(200)["data"], json!([]));
    let webhooks = app.get("/api/v1/webhooks").await;
    assert!(!webhooks.ok(200).to_string().contains(&webhook));
}
