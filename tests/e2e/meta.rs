//! Instagram, Facebook Messenger and WhatsApp through the real binary, against the stateful
//! fakes (`FakeGraph`, `FakeInstagram`) and a receiver that verifies every delivery: per-app
//! webhooks with their handshake and signatures, batches routed to several accounts (and an
//! unknown one acknowledged), names looked up, echoes of the gateway's own sends stored once,
//! windows checked before calling, WhatsApp statuses, templates and media, OAuth connects
//! through the public callback, and the Instagram token lifecycle (refresh by the scheduler,
//! a revoked token → `reauth_required` and exactly one `account.disconnected`).

use std::{future::Future, time::Duration};

use inbox_testkit::{
    fakes::{
        graph::{self, FakeGraph, PAGE_OBJECT, WHATSAPP_OBJECT, WhatsAppContact},
        instagram::{self, FakeInstagram},
        meta::{MetaOp, hub_signature, now_ms},
    },
    receiver::WebhookReceiver,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Api, Gateway};

const VERIFY_TOKEN: &str = "e2e-verify-token";
const PAGE_A: &str = "104857600000001";
const PAGE_B: &str = "104857600000002";
const PHONE: &str = "106540352242922";
const WABA: &str = "102290129340398";
const IG_A: &str = "17841400000000001";
const IG_B: &str = "17841400000000002";

/// The gateway with every Meta host pointed at the fakes and both apps configured.
async fn meta_gateway(
    dir: &std::path::Path,
    graph: &FakeGraph,
    ig: &FakeInstagram,
    extra: &[(&str, String)],
) -> Gateway {
    let mut env = vec![
        ("INBOX_GRAPH_API_BASE", graph.base_url().to_owned()),
        ("INBOX_FACEBOOK_OAUTH_BASE", graph.base_url().to_owned()),
        ("INBOX_INSTAGRAM_API_BASE", ig.base_url().to_owned()),
        ("INBOX_INSTAGRAM_OAUTH_BASE", ig.base_url().to_owned()),
        ("INBOX_GRAPH_API_VERSION", "v24.0".to_owned()),
        ("INBOX_META_APP_ID", graph::APP_ID.to_owned()),
        ("INBOX_META_APP_SECRET", graph::APP_SECRET.to_owned()),
        ("INBOX_META_VERIFY_TOKEN", VERIFY_TOKEN.to_owned()),
        ("INBOX_INSTAGRAM_APP_ID", instagram::APP_ID.to_owned()),
        (
            "INBOX_INSTAGRAM_APP_SECRET",
            instagram::APP_SECRET.to_owned(),
        ),
    ];
    env.extend(extra.iter().cloned());
    let gateway = Gateway::start(dir, true, &env).await;
    graph.subscribe_app(PAGE_OBJECT, &format!("{}/webhooks/facebook", gateway.base));
    graph.subscribe_app(
        WHATSAPP_OBJECT,
        &format!("{}/webhooks/whatsapp", gateway.base),
    );
    ig.subscribe_app(&format!("{}/webhooks/instagram", gateway.base));
    gateway
}

/// Polls `check` until it holds; panics after `limit` with `what` and the gateway's logs. The
/// refresh scheduler looks every 30 s, so its cases wait longer than `support::eventually`.
async fn wait_until<F, Fut>(gateway: &Gateway, what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}\n--- gateway logs ---\n{}",
            gateway.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn conversations(api: &Api) -> Vec<Value> {
    api.get("/inbox/conversations?limit=100").await["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn conversation_of(api: &Api, participant: &str) -> Option<Value> {
    conversations(api)
        .await
        .into_iter()
        .find(|c| c["participant"]["id"] == participant)
}

async fn messages_of(api: &Api, conversation: &str) -> Vec<Value> {
    api.get(&format!(
        "/inbox/conversations/{conversation}/messages?sortOrder=asc&limit=100"
    ))
    .await["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn events_of(receiver: &WebhookReceiver, kind: &str) -> Vec<Value> {
    receiver
        .verified_events()
        .into_iter()
        .filter(|event| event["event"] == kind)
        .collect()
}

async fn connect(api: &Api, body: Value) -> Value {
    let (status, account) = api.post("/accounts", body).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    account
}

/// Follows an OAuth flow as a browser would (every redirect), returning the final URL.
async fn follow(url: &str) -> url::Url {
    let response = reqwest::Client::new().get(url).send().await.unwrap();
    let final_url = response.url().clone();
    assert!(
        response.status().is_success(),
        "{} at {final_url}",
        response.status()
    );
    final_url
}

fn query(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn facebook_batches_names_echoes_windows_and_forgeries() {
    let graph = FakeGraph::start().await;
    let ig = FakeInstagram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = meta_gateway(dir.path(), &graph, &ig, &[]).await;
    let http = reqwest::Client::new();

    // The subscription handshake: the challenge with the right token, 403 otherwise.
    let handshake = |token: &str| {
        format!(
            "{}/webhooks/facebook?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={token}",
            gateway.base
        )
    };
    let answer = http.get(handshake(VERIFY_TOKEN)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.text().await.unwrap(), "1158201444");
    assert_eq!(
        http.get(handshake("wrong")).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    let api = gateway.client(&gateway.create_api_key("acme"));
    let receiver = WebhookReceiver::start_without_secret().await;
    api.register(&receiver).await;
    let token_a = graph.add_page(PAGE_A, "Shop A", Some("shop.a"));
    let token_b = graph.add_page(PAGE_B, "Shop B", None);
    graph.add_psid(PAGE_A, "2001", "Ada", Some("Lovelace"));
    graph.add_psid(PAGE_A, "2003", "Alan", Some("Turing"));
    graph.add_psid(PAGE_B, "2002", "Grace", Some("Hopper"));

    // Credentials are validated against the Graph API before anything is stored.
    let (status, problem) = api
        .post("/accounts", json!({"platform": "facebook", "credentials": {"pageId": PAGE_A, "pageAccessToken": "EAAwrong"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["param"], "credentials.pageAccessToken");
    let account_a = connect(&api, json!({"platform": "facebook", "credentials": {"pageId": PAGE_A, "pageAccessToken": token_a}})).await;
    let account_b = connect(&api, json!({"platform": "facebook", "credentials": {"pageId": PAGE_B, "pageAccessToken": token_b}})).await;
    assert_eq!(account_a["platformAccountId"], PAGE_A);
    assert_eq!(account_a["username"], "shop.a");
    assert!(
        graph
            .page_subscription(PAGE_A)
            .is_some_and(|f| f.contains("message_echoes"))
    );

    // One batch: an entry for each Page and one for a Page nobody connected.
    let (_, to_a) = graph.page_text(PAGE_A, "2001", "Hello A", None);
    let (_, to_b) = graph.page_text(PAGE_B, "2002", "Hello B", None);
    let to_unknown = json!({"sender": {"id": "777"}, "recipient": {"id": "104857699999999"}, "timestamp": now_ms(),
                            "message": {"mid": "m_unknown", "text": "nobody here"}});
    let delivery = graph
        .deliver_pages(vec![
            (PAGE_A.to_owned(), vec![to_a]),
            (PAGE_B.to_owned(), vec![to_b]),
            ("104857699999999".to_owned(), vec![to_unknown]),
        ])
        .await
        .unwrap();
    assert!(
        delivery.delivered(),
        "the batch is acknowledged: {:?}",
        delivery.statuses
    );
    crate::support::eventually(&gateway, "both messages routed", || async {
        conversations(&api).await.len() == 2
    })
    .await;
    let conversation_a = conversation_of(&api, "2001").await.unwrap();
    let conversation_b = conversation_of(&api, "2002").await.unwrap();
    assert_eq!(conversation_a["accountId"], account_a["id"]);
    assert_eq!(conversation_b["accountId"], account_b["id"]);
    // Webhooks carry ids only; the names come from the profile API.
    assert_eq!(conversation_a["participant"]["name"], "Ada Lovelace");
    assert_eq!(conversation_b["participant"]["name"], "Grace Hopper");
    assert!(conversation_a["windowExpiresAt"].is_string());
    let conversation_a = conversation_a["id"].as_str().unwrap().to_owned();

    // Redelivery yields one message: a later message arrives after it, and the count is two.
    graph.redeliver_last(PAGE_A).await.unwrap();
    let (_, later) = graph.page_text(PAGE_A, "2001", "Are you there?", None);
    graph
        .deliver_pages(vec![(PAGE_A.to_owned(), vec![later])])
        .await
        .unwrap();
    crate::support::eventually(&gateway, "the later message", || async {
        messages_of(&api, &conversation_a).await.len() == 2
    })
    .await;

    // A reply: sent as RESPONSE; Meta's echo of it is not a second message.
    let path = format!("/inbox/conversations/{conversation_a}/messages");
    let (status, sent) = api
        .post(&path, json!({"message": "Hi Ada, how can I help?"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let mid = sent["platformMessageId"].as_str().unwrap().to_owned();
    assert_eq!(
        graph.page_sent(PAGE_A).last().unwrap()["messaging_type"],
        "RESPONSE"
    );
    crate::support::eventually(&gateway, "the echo delivered", || async {
        graph
            .deliveries()
            .iter()
            .any(|d| String::from_utf8_lossy(&d.body).contains(&mid))
    })
    .await;
    // A message the Page sent from Business Suite (another app) is recorded as sent.
    let suite_echo = json!({"sender": {"id": PAGE_A}, "recipient": {"id": "2001"}, "timestamp": now_ms(),
                            "message": {"mid": "m_from_suite", "is_echo": true, "app_id": 263_902_037_430_900_u64, "text": "Sent from Business Suite"}});
    graph
        .deliver_pages(vec![(PAGE_A.to_owned(), vec![suite_echo])])
        .await
        .unwrap();
    crate::support::eventually(&gateway, "the Business Suite echo", || async {
        messages_of(&api, &conversation_a).await.len() == 4
    })
    .await;
    let all = messages_of(&api, &conversation_a).await;
    assert_eq!(
        all.iter()
            .filter(|m| m["platformMessageId"] == mid.as_str())
            .count(),
        1,
        "one message per send: {all:#?}"
    );
    let suite = all
        .iter()
        .find(|m| m["platformMessageId"] == "m_from_suite")
        .unwrap();
    assert_eq!(suite["direction"], "outgoing");
    assert_eq!(
        suite["sender"]["name"], "Shop A",
        "echoes are sent by the account"
    );
    crate::support::eventually(&gateway, "message.sent for both", || async {
        events_of(&receiver, "message.sent").len() == 2
    })
    .await;

    // Outside 24 h: refused without calling Meta; HUMAN_AGENT goes through within 7 days.
    let (_, old) = graph.page_text(
        PAGE_A,
        "2003",
        "Two days ago",
        Some(now_ms() - 2 * 86_400_000),
    );
    graph
        .deliver_pages(vec![(PAGE_A.to_owned(), vec![old])])
        .await
        .unwrap();
    crate::support::eventually(&gateway, "the old message", || async {
        conversation_of(&api, "2003").await.is_some()
    })
    .await;
    let late = conversation_of(&api, "2003").await.unwrap();
    let late_path = format!(
        "/inbox/conversations/{}/messages",
        late["id"].as_str().unwrap()
    );
    let sends = graph.calls(MetaOp::Send);
    let (status, problem) = api
        .post(&late_path, json!({"message": "Sorry for the wait"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "messaging_window_closed");
    assert_eq!(graph.calls(MetaOp::Send), sends, "no platform call");
    let (status, sent) = api
        .post(
            &late_path,
            json!({"message": "Sorry for the wait", "messageTag": "HUMAN_AGENT"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(
        graph.page_sent(PAGE_A).last().unwrap()["tag"],
        "HUMAN_AGENT"
    );
    // Limits and content rules, also before any call.
    let (status, problem) = api.post(&path, json!({"message": "a".repeat(2001)})).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("message_too_long"))
    );
    let (status, problem) = api
        .post(&path, json!({"message": "look", "attachments": [{"type": "image", "url": "https://cdn.example.com/a.png"}]}))
        .await;
    assert_eq!(
        (status, problem["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("unsupported_content")
        )
    );

    // Unsigned and wrongly signed pushes are refused and store nothing.
    let before = conversations(&api).await.len();
    let forged = json!({"object": "page", "entry": [{"id": PAGE_A, "time": now_ms(), "messaging": [
        {"sender": {"id": "6666"}, "recipient": {"id": PAGE_A}, "timestamp": now_ms(), "message": {"mid": "m_forged", "text": "forged"}}]}]})
    .to_string();
    let url = format!("{}/webhooks/facebook", gateway.base);
    let unsigned = http.post(&url).body(forged.clone()).send().await.unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    let wrong = http
        .post(&url)
        .header(
            "x-hub-signature-256",
            hub_signature("not-the-secret", forged.as_bytes()),
        )
        .body(forged.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // Unknown objects, fields and event types are acknowledged, never an error.
    let unknown = graph
        .deliver_raw(PAGE_OBJECT, json!({"object": "page", "entry": [{"id": PAGE_A, "time": now_ms(), "new_field": 1,
            "messaging": [{"sender": {"id": "2001"}, "recipient": {"id": PAGE_A}, "timestamp": now_ms(), "game_play": {"score": 1}}]}]}))
        .await
        .unwrap();
    assert!(unknown.delivered());
    let not_json = http
        .post(&url)
        .header(
            "x-hub-signature-256",
            hub_signature(graph::APP_SECRET, b"not json"),
        )
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::OK, "kept raw, never a 500");
    assert_eq!(
        conversations(&api).await.len(),
        before,
        "nothing stored from forgeries"
    );
    assert!(
        messages_of(&api, &conversation_a)
            .await
            .iter()
            .all(|m| m["text"] != "forged")
    );
}

#[tokio::test]
async fn facebook_login_connects_one_account_per_page_granted() {
    let graph = FakeGraph::start().await;
    let ig = FakeInstagram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = meta_gateway(dir.path(), &graph, &ig, &[]).await;
    let api = gateway.client(&gateway.create_api_key("acme"));
    let receiver = WebhookReceiver::start_without_secret().await;
    api.register(&receiver).await;
    graph.add_page(PAGE_A, "Shop A", None);
    graph.add_page(PAGE_B, "Shop B", None);
    graph.add_page("104857600000003", "Analytics only", None);
    graph.add_login_user(
        "u1",
        "Ada",
        &[
            (PAGE_A, &["MESSAGING"]),
            (PAGE_B, &["MANAGE", "MESSAGING"]),
            ("104857600000003", &["ANALYZE"]),
        ],
    );
    let landing = graph.host_media("landing", b"done".to_vec(), "text/plain");
    let (status, started) = api
        .post("/connect/facebook", json!({"redirectUrl": landing}))
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let authorize = started["authorizationUrl"].as_str().unwrap();
    assert!(authorize.contains("/v24.0/dialog/oauth"), "{authorize}");
    let done = follow(authorize).await;
    assert_eq!(query(&done, "connected").as_deref(), Some("true"), "{done}");
    let ids = query(&done, "accountIds").unwrap();
    assert_eq!(
        ids.split(',').count(),
        2,
        "the Page without MESSAGING is skipped: {done}"
    );
    crate::support::eventually(&gateway, "account.connected twice", || async {
        events_of(&receiver, "account.connected").len() == 2
    })
    .await;
    assert!(graph.page_subscription(PAGE_B).is_some());
    assert!(graph.page_subscription("104857600000003").is_none());
}

#[tokio::test]
async fn whatsapp_statuses_templates_media_and_reads() {
    let graph = FakeGraph::start().await;
    let ig = FakeInstagram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = meta_gateway(dir.path(), &graph, &ig, &[]).await;
    let key = gateway.create_api_key("acme");
    let api = gateway.client(&key);
    let receiver = WebhookReceiver::start_without_secret().await;
    api.register(&receiver).await;
    let token = graph.add_phone_number(PHONE, "15550783881", "Shop", WABA);
    graph.add_contact(
        PHONE,
        WhatsAppContact {
            wa_id: Some("16505551234".into()),
            user_id: Some("US.13491208655302741918".into()),
            name: "Sheena Nelson".into(),
        },
    );
    graph.add_contact(
        PHONE,
        WhatsAppContact {
            wa_id: None,
            user_id: Some("US.99999999999999999999".into()),
            name: "Kai".into(),
        },
    );
    graph.add_template(PHONE, "order_update");
    let account = connect(&api, json!({"platform": "whatsapp", "credentials": {"phoneNumberId": PHONE, "accessToken": token, "wabaId": WABA}})).await;
    assert_eq!(account["name"], "Shop");
    assert!(graph.waba_subscribed(WABA));

    // Inbound text and an image in one batch; the contact's name comes with the message.
    let (_, text) = graph.whatsapp_message(
        PHONE,
        "16505551234",
        json!({"type": "text", "text": {"body": "Does it come in blue?"}}),
        None,
    );
    let media = graph.upload_media(b"jpeg bytes".to_vec(), "image/jpeg");
    let (image_id, image) = graph.whatsapp_message(PHONE, "16505551234", json!({"type": "image", "image": {"id": media, "mime_type": "image/jpeg", "sha256": "x", "caption": "like this"}}), None);
    let (_, hidden) = graph.whatsapp_message(
        PHONE,
        "US.99999999999999999999",
        json!({"type": "text", "text": {"body": "no number shown"}}),
        None,
    );
    graph
        .deliver_whatsapp(vec![text, image, hidden])
        .await
        .unwrap();
    crate::support::eventually(&gateway, "two WhatsApp conversations", || async {
        conversations(&api).await.len() == 2
    })
    .await;
    let sheena = conversation_of(&api, "16505551234").await.unwrap();
    assert_eq!(sheena["participant"]["name"], "Sheena Nelson");
    assert!(
        conversation_of(&api, "US.99999999999999999999")
            .await
            .is_some(),
        "business-scoped ids name the thread"
    );
    let conversation = sheena["id"].as_str().unwrap().to_owned();
    let messages = messages_of(&api, &conversation).await;
    let picture = messages
        .iter()
        .find(|m| m["platformMessageId"] == image_id.as_str())
        .unwrap();
    assert_eq!(picture["text"], "like this");
    // Media references are served through the gateway with the account's token.
    let attachment = reqwest::Client::new()
        .get(format!(
            "{}{}",
            gateway.base,
            picture["attachments"][0]["url"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(attachment.status(), StatusCode::OK);
    assert_eq!(&attachment.bytes().await.unwrap()[..], b"jpeg bytes");

    // Replies and their statuses: delivered, read, and a failure with WhatsApp's error.
    let path = format!("/inbox/conversations/{conversation}/messages");
    let (status, first) = api
        .post(&path, json!({"message": "Yes, in navy blue."}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, second) = api.post(&path, json!({"message": "Here is a picture", "attachments": [{"type": "image", "url": "https://cdn.example.com/navy.png"}]})).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(
        graph.whatsapp_sent(PHONE).last().unwrap()["image"]["caption"],
        "Here is a picture"
    );
    let first_id = first["platformMessageId"].as_str().unwrap();
    let second_id = second["platformMessageId"].as_str().unwrap();
    graph
        .deliver_whatsapp(vec![
            graph.whatsapp_status(PHONE, first_id, "sent", None),
            graph.whatsapp_status(PHONE, first_id, "delivered", None),
            graph.whatsapp_status(PHONE, first_id, "read", None),
            graph.whatsapp_status(
                PHONE,
                second_id,
                "failed",
                Some((
                    131_026,
                    "Message undeliverable",
                    "The recipient's phone is off",
                )),
            ),
        ])
        .await
        .unwrap();
    crate::support::eventually(&gateway, "delivered, read and failed", || async {
        !events_of(&receiver, "message.failed").is_empty()
            && !events_of(&receiver, "message.read").is_empty()
    })
    .await;
    let delivered = events_of(&receiver, "message.delivered");
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["data"]["platformMessageId"], first_id);
    let failed = &events_of(&receiver, "message.failed")[0]["data"];
    assert_eq!(failed["platformMessageId"], second_id);
    assert!(
        failed.to_string().contains("131026"),
        "the platform's error code: {failed}"
    );
    // A late `delivered` after `read` changes nothing.
    graph
        .deliver_whatsapp(vec![graph.whatsapp_status(
            PHONE,
            first_id,
            "delivered",
            None,
        )])
        .await
        .unwrap();

    // Marking read sends `status: read` for the newest inbound message.
    let (status, _) = api
        .post(
            &format!("/inbox/conversations/{conversation}/read"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(graph.whatsapp_read(PHONE), std::slice::from_ref(&image_id));

    // Starting a conversation: only with a template, which WhatsApp sends outside the window.
    let start = |body: Value| api.post("/inbox/conversations", body);
    let (status, problem) = start(
        json!({"accountId": account["id"], "participant": "+1 650 555 0000", "message": "hello"}),
    )
    .await;
    assert_eq!(
        (status, problem["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("messaging_window_closed")
        )
    );
    let (status, started) = start(json!({"accountId": account["id"], "participant": "+1 650 555 0000",
        "template": {"name": "order_update", "language": "en_US", "components": [{"type": "body", "parameters": [{"type": "text", "text": "#1234"}]}]}})).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_eq!(
        started["conversation"]["platformConversationId"],
        "16505550000"
    );
    let template = graph.whatsapp_sent(PHONE).last().cloned().unwrap();
    assert_eq!(template["type"], "template");
    assert_eq!(template["template"]["language"]["code"], "en_US");
    // Its window is closed for free-form text until the contact writes.
    let started_path = format!(
        "/inbox/conversations/{}/messages",
        started["conversation"]["id"].as_str().unwrap()
    );
    let sends = graph.calls(MetaOp::Send);
    let (status, problem) = api
        .post(&started_path, json!({"message": "any news?"}))
        .await;
    assert_eq!(
        (status, problem["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("messaging_window_closed")
        )
    );
    assert_eq!(graph.calls(MetaOp::Send), sends);
    // The platform's own window refusal maps the same way.
    graph.inject(
        MetaOp::Send,
        1,
        inbox_testkit::fakes::meta::Injected::Error {
            status: 400,
            code: 131_047,
            subcode: None,
            message: "(#131047) Re-engagement message".into(),
        },
    );
    let (status, problem) = api.post(&path, json!({"message": "one more thing"})).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("messaging_window_closed")
        )
    );
}

#[tokio::test]
async fn instagram_oauth_refresh_and_revocation() {
    let graph = FakeGraph::start().await;
    let ig = FakeInstagram::start().await;
    // Tokens a day old and an hour long: due for renewal at once, and refreshable.
    ig.set_issued_age(Duration::from_secs(2 * 86_400));
    ig.set_long_lived_lifetime(Duration::from_secs(3600));
    let dir = tempfile::tempdir().unwrap();
    let gateway = meta_gateway(
        dir.path(),
        &graph,
        &ig,
        &[
            (
                "INBOX_INSTAGRAM_REFRESH_LEAD_SECS",
                (30 * 86_400).to_string(),
            ),
            ("INBOX_INSTAGRAM_REFRESH_MIN_AGE_SECS", "0".to_owned()),
        ],
    )
    .await;
    let api = gateway.client(&gateway.create_api_key("acme"));
    let receiver = WebhookReceiver::start_without_secret().await;
    api.register(&receiver).await;
    ig.add_account(IG_A, "shop.a", "Shop A");
    ig.add_user(IG_A, "8765432109876543", "Ada Lovelace", "ada");
    // The answer shape of the code exchange is UNCONFIRMED; the wrapped one is used here.
    ig.set_oauth_wrapped(true);

    // Instagram Login end to end: authorize → public callback → the customer's page.
    ig.login_as(IG_A);
    let landing = ig.host_media("landing", b"done".to_vec(), "text/plain");
    let (status, started) = api
        .post("/connect/instagram", json!({"redirectUrl": landing}))
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let done = follow(started["authorizationUrl"].as_str().unwrap()).await;
    assert_eq!(query(&done, "connected").as_deref(), Some("true"), "{done}");
    let account_a = query(&done, "accountId").unwrap();
    let account = api.get(&format!("/accounts/{account_a}")).await;
    assert_eq!(
        (
            account["platformAccountId"].clone(),
            account["username"].clone()
        ),
        (json!(IG_A), json!("shop.a"))
    );
    assert!(
        ig.subscription(IG_A).is_some(),
        "the account subscribed the app"
    );
    // The short-lived token from the code was exchanged for a long-lived one.
    assert!(ig.tokens_of(IG_A).iter().any(|(_, info)| !info.long_lived));
    crate::support::eventually(&gateway, "account.connected", || async {
        events_of(&receiver, "account.connected").len() == 1
    })
    .await;

    // A second account, by credentials; its token is then revoked (the user removed the app).
    let token_b = ig.add_account(IG_B, "shop.b", "Shop B");
    let account_b = connect(
        &api,
        json!({"platform": "instagram", "credentials": {"accessToken": token_b}}),
    )
    .await;
    let account_b = account_b["id"].as_str().unwrap().to_owned();
    ig.revoke_account(IG_B);

    // The scheduler refreshes A (ig_refresh_token) and marks B reauth_required, once.
    let refreshes_before = ig.calls(MetaOp::TokenRefresh);
    wait_until(
        &gateway,
        "A refreshed and B marked",
        Duration::from_secs(90),
        || async {
            ig.calls(MetaOp::TokenRefresh) > refreshes_before + 1
                && api.get(&format!("/accounts/{account_b}")).await["status"] == "reauth_required"
        },
    )
    .await;
    assert_eq!(
        api.get(&format!("/accounts/{account_a}")).await["status"],
        "active"
    );
    let disconnected = events_of(&receiver, "account.disconnected");
    assert_eq!(disconnected.len(), 1, "{disconnected:#?}");
    assert_eq!(disconnected[0]["data"]["accountId"], account_b.as_str());

    // A's newest token is the one in use; Instagram webhooks verify with either secret.
    ig.sign_with(graph::APP_SECRET);
    let (_, event) = ig.text(IG_A, "8765432109876543", "Hi from Instagram 👋", None);
    let delivery = ig
        .deliver(vec![(IG_A.to_owned(), vec![event])])
        .await
        .unwrap();
    assert!(
        delivery.delivered(),
        "signed with the Meta app secret: {:?}",
        delivery.statuses
    );
    crate::support::eventually(&gateway, "the Instagram message", || async {
        conversation_of(&api, "8765432109876543").await.is_some()
    })
    .await;
    let conversation = conversation_of(&api, "8765432109876543").await.unwrap();
    assert_eq!(conversation["participant"]["name"], "Ada Lovelace");
    assert_eq!(conversation["participant"]["username"], "ada");
    let path = format!(
        "/inbox/conversations/{}/messages",
        conversation["id"].as_str().unwrap()
    );
    let (status, sent) = api.post(&path, json!({"message": "Hello Ada!"})).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let newest = ig
        .tokens_of(IG_A)
        .last()
        .map(|(token, _)| token.clone())
        .unwrap();
    let send = ig
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.op == Some(MetaOp::Send))
        .unwrap();
    assert_eq!(
        send.headers["authorization"].to_str().unwrap(),
        format!("Bearer {newest}")
    );
    // 1000 bytes of UTF-8 at most.
    let (status, problem) = api.post(&path, json!({"message": "é".repeat(501)})).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("message_too_long"))
    );

    // B is refused without a call, and its disconnection is not repeated.
    let (status, problem) = api
        .call(Method::GET, &format!("/accounts/{account_b}"), None)
        .await;
    assert_eq!(
        (status, problem["status"].clone()),
        (StatusCode::OK, json!("reauth_required"))
    );
    assert_eq!(events_of(&receiver, "account.disconnected").len(), 1);
}
