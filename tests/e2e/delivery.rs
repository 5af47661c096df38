//! Outbound webhooks through the real binary: a delivery in flight when the gateway is killed
//! is delivered after restart; failures follow the retry schedule and are logged; the SSRF
//! guard refuses private endpoints unless allowed; test events and manual retries.

use std::time::Duration;

use inbox_testkit::receiver::{Reply, WebhookReceiver};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Gateway, TOKEN, USER, event_types, eventually, fake_telegram};

#[tokio::test]
async fn a_delivery_claimed_by_a_killed_gateway_is_delivered_after_restart() {
    let fake = fake_telegram().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = Gateway::start(
        dir.path(),
        true,
        &[
            ("INBOX_TELEGRAM_API_BASE", fake.base_url().to_owned()),
            ("INBOX_WEBHOOK_TIMEOUT_SECS", "2".to_owned()),
            ("INBOX_WEBHOOK_LEASE_SECS", "3".to_owned()),
        ],
    )
    .await;
    let api = gateway.client(&gateway.create_api_key("acme"));
    api.connect_bot().await; // before the endpoint exists: no account.connected delivery
    let receiver = WebhookReceiver::start_without_secret().await;
    let endpoint = api.register(&receiver).await;
    let endpoint_id = endpoint["id"].as_str().unwrap();

    // The first delivery hangs at the receiver; the gateway dies holding its claim.
    receiver.respond_with([Reply::hang()]);
    fake.message(TOKEN, USER).text("in flight").push().await;
    let first = receiver.wait_for(1, Duration::from_secs(30)).await;
    let event_id = first[0].webhook_id().unwrap().to_owned();
    gateway.kill();

    // After restart the claim expires and the same event is delivered again, with the same id.
    gateway.restart().await;
    eventually(&gateway, "the delivery is retried", || async {
        receiver
            .received()
            .iter()
            .filter(|r| r.webhook_id() == Some(event_id.as_str()))
            .count()
            >= 2
    })
    .await;
    eventually(&gateway, "every queued event is delivered", || async {
        let log = api
            .get(&format!("/webhooks/{endpoint_id}/deliveries"))
            .await;
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "succeeded")
    })
    .await;
    let log = api
        .get(&format!("/webhooks/{endpoint_id}/deliveries"))
        .await;
    let retried = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["eventId"] == event_id.as_str())
        .unwrap();
    assert_eq!(retried["status"], "succeeded");
    assert_eq!(
        retried["attempts"].as_array().unwrap().last().unwrap()["statusCode"],
        200
    );
}

#[tokio::test]
async fn failures_follow_the_schedule_and_every_attempt_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(
        dir.path(),
        false,
        &[("INBOX_WEBHOOK_RETRY_SCHEDULE", "1,1".to_owned())],
    )
    .await;
    let api = gateway.client(&gateway.create_api_key("acme"));
    let receiver = WebhookReceiver::start_without_secret().await;
    receiver.respond_with(Reply::status(500).times(2));
    let endpoint = api.register(&receiver).await;
    let endpoint_id = endpoint["id"].as_str().unwrap();

    let (status, delivery) = api
        .post(&format!("/webhooks/{endpoint_id}/test"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{delivery}");
    receiver.wait_for(3, Duration::from_secs(30)).await;
    eventually(
        &gateway,
        "the delivery succeeds on its third attempt",
        || async {
            let log = api
                .get(&format!("/webhooks/{endpoint_id}/deliveries"))
                .await;
            log["data"][0]["status"] == "succeeded"
        },
    )
    .await;
    let log = api
        .get(&format!("/webhooks/{endpoint_id}/deliveries"))
        .await;
    let codes: Vec<_> = log["data"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(500), json!(200)]);
    assert_eq!(event_types(&receiver), ["webhook.test"; 3]);
    assert_eq!(receiver.verified_events().len(), 3);

    // A manual retry of a succeeded delivery sends it once more.
    let delivery_id = log["data"][0]["id"].as_str().unwrap();
    let (status, _) = api
        .post(
            &format!("/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    receiver.wait_for(4, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn private_endpoints_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(
        dir.path(),
        false,
        &[("INBOX_WEBHOOK_ALLOW_PRIVATE", "false".to_owned())],
    )
    .await;
    let api = gateway.client(&gateway.create_api_key("acme"));
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost/hook",
        "http://[::1]/hook",
    ] {
        let (status, problem) = api.post("/webhooks", json!({"url": url})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {problem}");
        assert_eq!(problem["code"], "invalid_request");
        assert_eq!(problem["param"], "url");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("INBOX_WEBHOOK_ALLOW_PRIVATE"),
            "{problem}"
        );
    }
    let (status, list) = api.call(Method::GET, "/webhooks", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"], json!([]), "nothing was half-written");
}
