//! `/api/v1/webhooks`: endpoint CRUD, secrets shown on create and rotate only, the URL guard,
//! test events, the delivery log, retries and recovery.

use serde_json::{Value, json};

use crate::common::{TestApp, hours_ago};

async fn create(app: &TestApp, body: Value) -> Value {
    app.post("/api/v1/webhooks", body).await.ok(201).clone()
}

#[tokio::test]
async fn create_shows_the_secret_once_and_crud_works() {
    let app = TestApp::new().await;
    let created = create(
        &app,
        json!({"url": "http://127.0.0.1:4000/hooks", "events": ["message.received", "message.sent"], "description": "crm"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("whk_"));
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["url"], "http://127.0.0.1:4000/hooks");
    assert_eq!(
        created["events"],
        json!(["message.received", "message.sent"])
    );
    assert_eq!(created["description"], "crm");
    assert_eq!(created["enabled"], true);

    let fetched = app.get(&format!("/api/v1/webhooks/{id}")).await;
    assert!(
        fetched.ok(200).get("secret").is_none(),
        "the secret is not shown again"
    );
    assert_eq!(fetched.json["id"], id.as_str());
    let list = app.get("/api/v1/webhooks").await;
    let listed = list.ok(200)["data"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "the catch-all endpoint and this one");
    assert!(!list.text.contains("whsec_"));

    let patched = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            json!({"enabled": false, "events": ["message.failed"]}),
        )
        .await;
    assert_eq!(patched.ok(200)["enabled"], false);
    assert_eq!(patched.json["events"], json!(["message.failed"]));
    assert_eq!(patched.json["description"], "crm", "absent fields stay");

    app.delete(&format!("/api/v1/webhooks/{id}")).await.ok(204);
    app.get(&format!("/api/v1/webhooks/{id}"))
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn events_default_to_everything_and_unknown_names_are_400() {
    let app = TestApp::new().await;
    let all = create(&app, json!({"url": "http://127.0.0.1:4000/a"})).await;
    assert_eq!(all["events"], json!([]));
    let before = app.snapshot().await;
    let response = app
        .post("/api/v1/webhooks", json!({"url": "http://127.0.0.1:4000/b", "events": ["message.received", "message.exploded"]}))
        .await;
    assert!(
        response.invalid("events")["detail"]
            .as_str()
            .unwrap()
            .contains("message.exploded")
    );
    app.post("/api/v1/webhooks", json!({"events": []}))
        .await
        .invalid("url");
    app.post("/api/v1/webhooks", json!({"url": "ftp://example.com/x"}))
        .await
        .invalid("url");
    let id = all["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/webhooks/{id}"),
        json!({"events": ["nope"]}),
    )
    .await
    .invalid("events");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let app = TestApp::builder().refuse_private_webhooks().build().await;
    let before = app.snapshot().await;
    for url in [
        "http://127.0.0.1/hook",
        "http://169.254.169.254/latest",
        "http://10.0.0.7/x",
        "http://[::1]/x",
    ] {
        let response = app.post("/api/v1/webhooks", json!({"url": url})).await;
        response.invalid("url");
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn rotating_returns_a_new_secret() {
    let app = TestApp::new().await;
    let created = create(&app, json!({"url": "http://127.0.0.1:4000/a"})).await;
    let id = created["id"].as_str().unwrap();
    let rotated = app
        .post_empty(&format!("/api/v1/webhooks/{id}/rotate-secret"))
        .await;
    let secret = rotated.ok(200)["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_ne!(secret, created["secret"].as_str().unwrap());
    assert_eq!(rotated.json["id"], id);
}

#[tokio::test]
async fn test_events_are_queued_listed_and_retried() {
    let app = TestApp::new().await;
    let created = create(
        &app,
        json!({"url": "http://127.0.0.1:4000/a", "events": ["message.received"], "enabled": false}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let queued = app.post_empty(&format!("/api/v1/webhooks/{id}/test")).await;
    let delivery = queued.ok(202).clone();
    assert!(delivery["id"].as_str().unwrap().starts_with("dlv_"));
    assert_eq!(delivery["eventType"], "webhook.test");
    assert_eq!(delivery["endpointId"], id);
    assert_eq!(delivery["status"], "pending");

    let log = app.get(&format!("/api/v1/webhooks/{id}/deliveries")).await;
    let deliveries = log.ok(200)["data"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["id"], delivery["id"]);
    assert_eq!(deliveries[0]["attempts"], json!([]));

    let delivery_id = delivery["id"].as_str().unwrap();
    let retried = app
        .post_empty(&format!(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry"
        ))
        .await;
    assert_eq!(retried.ok(202)["id"], delivery["id"]);
    app.post_empty(&format!(
        "/api/v1/webhooks/{id}/deliveries/dlv_01jd3k5n8q2w4e6r8t0y2u4i6o/retry"
    ))
    .await
    .problem(404, "not_found");
    app.post_empty(&format!("/api/v1/webhooks/{id}/deliveries/nope/retry"))
        .await
        .problem(404, "not_found");
    app.get(&format!("/api/v1/webhooks/{id}/deliveries?limit=0"))
        .await
        .invalid("limit");
}

#[tokio::test]
async fn recover_requeues_a_span_and_checks_it() {
    let app = TestApp::new().await;
    let account = app.connect("telegram", "t").await;
    app.receive(&account, "c", "hi", hours_ago(1)).await;
    let created = create(
        &app,
        json!({"url": "http://127.0.0.1:4000/a", "events": ["message.received"]}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/webhooks/{id}/recover");

    let since = hours_ago(2).to_string();
    let queued = app.post(&path, json!({"since": since})).await;
    assert_eq!(
        queued.ok(202)["queued"],
        1,
        "the one message.received, recorded before the endpoint existed"
    );
    let log = app.get(&format!("/api/v1/webhooks/{id}/deliveries")).await;
    assert_eq!(log.ok(200)["data"][0]["eventType"], "message.received");

    let before = app.snapshot().await;
    let future = (inbox_core::Timestamp::now() + std::time::Duration::from_secs(3600)).to_string();
    app.post(&path, json!({"since": future}))
        .await
        .invalid("since");
    app.post(
        &path,
        json!({"since": since, "until": hours_ago(3).to_string()}),
    )
    .await
    .invalid("until");
    app.post(&path, json!({"since": "yesterday"}))
        .await
        .invalid("since");
    app.post(&path, json!({})).await.invalid("since");
    assert_eq!(app.snapshot().await, before);
}
