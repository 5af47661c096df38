//! The fake's own wire behaviour, checked with plain HTTP: paths and versions, tokens, the
//! error envelope, windows, echoes, WhatsApp statuses and the Login flow.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::conformance::PushCapture;

async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(json!(text)),
        headers,
    )
}

#[tokio::test]
async fn pages_answer_with_the_graph_envelope_and_usage_headers() {
    let fake = FakeGraph::start().await;
    let token = fake.add_page("111", "Shop", Some("shop"));
    let base = fake.base_url().to_owned();
    let (status, page, headers) = call(
        reqwest::Method::GET,
        format!("{base}/v24.0/111?fields=id,name"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((status, page["name"].clone()), (200, json!("Shop")));
    assert!(headers.get("x-app-usage").is_some());
    let (status, error, _) = call(
        reqwest::Method::GET,
        format!("{base}/v24.0/111"),
        Some("bogus"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["code"], 190);
    let (status, error, _) = call(
        reqwest::Method::GET,
        format!("{base}/111"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((status, error["error"]["code"].clone()), (400, json!(2500)));
}

#[tokio::test]
async fn the_send_api_checks_windows_tags_and_lengths_and_echoes() {
    let fake = FakeGraph::start().await;
    let capture = PushCapture::start().await;
    fake.subscribe_app(PAGE_OBJECT, capture.url());
    let token = fake.add_page("111", "Shop", None);
    fake.add_psid("111", "222", "Ada", Some("Lovelace"));
    let url = format!("{}/v24.0/111/messages", fake.base_url());
    let send = |body: Value| call(reqwest::Method::POST, url.clone(), Some(&token), Some(body));
    // Nobody wrote yet: the window is closed.
    let (status, error, _) = send(json!({"recipient": {"id": "222"}, "messaging_type": "RESPONSE", "message": {"text": "hi"}})).await;
    assert_eq!(
        (status, error["error"]["error_subcode"].clone()),
        (400, json!(2_018_278))
    );
    // Two days ago: only HUMAN_AGENT.
    fake.set_last_inbound("111", "222", now_ms() - 2 * 86_400_000);
    let (status, _, _) = send(json!({"recipient": {"id": "222"}, "messaging_type": "RESPONSE", "message": {"text": "hi"}})).await;
    assert_eq!(status, 400);
    let (status, sent, _) = send(json!({"recipient": {"id": "222"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT", "message": {"text": "hi"}})).await;
    assert_eq!(status, 200, "{sent}");
    let mid = sent["message_id"].as_str().unwrap().to_owned();
    let (status, error, _) = send(json!({"recipient": {"id": "222"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT", "message": {"text": "a".repeat(2001)}})).await;
    assert_eq!((status, error["error"]["code"].clone()), (400, json!(100)));
    let (status, error, _) =
        send(json!({"recipient": {"id": "222"}, "message": {"text": "hi"}})).await;
    assert_eq!(status, 400, "messaging_type is required: {error}");
    // The echo follows, signed over the escaped body.
    let push = capture.next().await;
    let signature = push.headers["x-hub-signature-256"].to_str().unwrap();
    assert_eq!(
        signature,
        super::super::meta::hub_signature(APP_SECRET, &push.body)
    );
    let body: Value = serde_json::from_slice(&push.body).unwrap();
    assert_eq!(
        body["entry"][0]["messaging"][0]["message"]["mid"],
        json!(mid)
    );
    assert_eq!(
        body["entry"][0]["messaging"][0]["message"]["is_echo"],
        json!(true)
    );
}

#[tokio::test]
async fn throttling_carries_retry_hints() {
    let fake = FakeGraph::start().await;
    let token = fake.add_page("111", "Shop", None);
    fake.inject(
        MetaOp::Connect,
        1,
        Injected::Throttle {
            code: 613,
            retry_after: Duration::from_secs(90),
        },
    );
    let (status, error, headers) = call(
        reqwest::Method::GET,
        format!("{}/v24.0/111", fake.base_url()),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((status, error["error"]["code"].clone()), (400, json!(613)));
    assert_eq!(headers["retry-after"], "90");
    let usage: Value =
        serde_json::from_str(headers["x-business-use-case-usage"].to_str().unwrap()).unwrap();
    assert_eq!(usage["0"][0]["estimated_time_to_regain_access"], 2);
    assert_eq!(fake.calls(MetaOp::Connect), 1);
}

#[tokio::test]
async fn whatsapp_sends_statuses_and_media() {
    let fake = FakeGraph::start().await;
    let capture = PushCapture::start().await;
    fake.subscribe_app(WHATSAPP_OBJECT, capture.url());
    let token = fake.add_phone_number("999", "15550001111", "Shop", "888");
    let url = format!("{}/v24.0/999/messages", fake.base_url());
    // Outside the window a free-form message is accepted, then fails with 131047.
    let (status, sent, _) = call(reqwest::Method::POST, url.clone(), Some(&token),
        Some(json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "text", "text": {"body": "hi"}}))).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["contacts"][0]["wa_id"], "16505551234");
    let push = capture.next().await;
    let body: Value = serde_json::from_slice(&push.body).unwrap();
    let status_item = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
    assert_eq!(status_item["status"], "failed");
    assert_eq!(status_item["errors"][0]["code"], 131_047);
    // Templates are sent outside it; unknown templates are refused.
    let (status, _, _) = call(reqwest::Method::POST, url.clone(), Some(&token),
        Some(json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}))).await;
    assert_eq!(status, 200);
    let (status, error, _) = call(reqwest::Method::POST, url, Some(&token),
        Some(json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template", "template": {"name": "nope", "language": {"code": "en_US"}}}))).await;
    assert_eq!(
        (status, error["error"]["code"].clone()),
        (404, json!(132_001))
    );
    // Media: the id gives a URL that serves the bytes with the same token only.
    let id = fake.upload_media(b"bytes".to_vec(), "image/jpeg");
    let (_, info, _) = call(
        reqwest::Method::GET,
        format!("{}/v24.0/{id}", fake.base_url()),
        Some(&token),
        None,
    )
    .await;
    let media_url = info["url"].as_str().unwrap().to_owned();
    let (status, _, _) = call(reqwest::Method::GET, media_url.clone(), None, None).await;
    assert_eq!(status, 400);
    let bytes = reqwest::Client::new()
        .get(media_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"bytes");
}

#[tokio::test]
async fn facebook_login_grants_pages() {
    let fake = FakeGraph::start().await;
    fake.add_page("111", "Shop", None);
    fake.add_page("112", "Other", None);
    fake.add_login_user(
        "u1",
        "Ada",
        &[("111", &["MESSAGING", "ADVERTISE"]), ("112", &["ANALYZE"])],
    );
    let base = fake.base_url().to_owned();
    let redirect = "https://gw.example/api/v1/oauth/facebook/callback";
    let dialog =
        format!("{base}/v24.0/dialog/oauth?client_id={APP_ID}&redirect_uri={redirect}&state=s1");
    let (status, _, headers) = call(reqwest::Method::GET, dialog, None, None).await;
    assert_eq!(status, 302);
    let location = url::Url::parse(headers["location"].to_str().unwrap()).unwrap();
    let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "s1");
    let code = &pairs["code"];
    let exchange = format!(
        "{base}/v24.0/oauth/access_token?client_id={APP_ID}&client_secret={APP_SECRET}&redirect_uri={redirect}&code={code}"
    );
    let (status, short, _) = call(reqwest::Method::GET, exchange.clone(), None, None).await;
    assert_eq!(status, 200, "{short}");
    let (status, _, _) = call(reqwest::Method::GET, exchange, None, None).await;
    assert_eq!(status, 400, "codes are single-use");
    let long_url = format!(
        "{base}/v24.0/oauth/access_token?grant_type=fb_exchange_token&client_id={APP_ID}&client_secret={APP_SECRET}&fb_exchange_token={}",
        short["access_token"].as_str().unwrap()
    );
    let (_, long, _) = call(reqwest::Method::GET, long_url, None, None).await;
    let (_, accounts, _) = call(
        reqwest::Method::GET,
        format!("{base}/v24.0/me/accounts"),
        long["access_token"].as_str(),
        None,
    )
    .await;
    let ids: Vec<_> = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(ids, [json!("111"), json!("112")]);
    assert_eq!(
        accounts["data"][0]["tasks"],
        json!(["MESSAGING", "ADVERTISE"])
    );
}
