//! Runs `tests/python/whatsapp_fidelity.py` (pywa) against `FakeGraph`, so the fake's WhatsApp
//! answers, error envelopes and signed webhooks are checked by an SDK that real WhatsApp
//! integrations use, not only by our own adapter. Skips (or, with `CI=true`, fails) when the
//! test Python is missing; see `inbox_testkit::requirements`.

use std::time::Duration;

use inbox_testkit::{
    conformance::PushCapture,
    fakes::graph::{APP_SECRET, FakeGraph, WHATSAPP_OBJECT, WhatsAppContact},
    requirements,
};
use serde_json::{Value, json};

const PHONE: &str = "106540352242922";
const CONTACT: &str = "16505551234";
const BLOCKED: &str = "16505559999";
const VERSION: &str = "v24.0";

#[tokio::test]
async fn pywa_reads_the_fake_like_the_cloud_api() {
    let Some(python) = requirements::python() else {
        return;
    };
    let script = requirements::workspace_root().join("tests/python/whatsapp_fidelity.py");
    let fake = FakeGraph::start().await;
    let capture = PushCapture::start().await;
    fake.subscribe_app(WHATSAPP_OBJECT, capture.url());
    let token = fake.add_phone_number(PHONE, "15550783881", "Fidelity Shop", "102290129340398");
    fake.add_contact(
        PHONE,
        WhatsAppContact {
            wa_id: Some(CONTACT.into()),
            user_id: None,
            name: "Sheena Nelson".into(),
        },
    );
    fake.add_contact(
        PHONE,
        WhatsAppContact {
            wa_id: Some(BLOCKED.into()),
            user_id: None,
            name: "Bob".into(),
        },
    );
    fake.block_contact(PHONE, BLOCKED);
    let media_id = fake.upload_media(b"fidelity jpeg".to_vec(), "image/jpeg");

    // An inbound message (which opens the window for the script's sends), delivered signed.
    let (inbound_id, value) = fake.whatsapp_message(
        PHONE,
        CONTACT,
        json!({"type": "text", "text": {"body": "Hi from the fake ✓"}}),
        None,
    );
    fake.deliver_whatsapp(vec![value]).await;
    let message_push = capture.next().await;
    // A message sent as the gateway would, then reported failed by a status webhook.
    let sent: Value = reqwest::Client::new()
        .post(format!("{}/{VERSION}/{PHONE}/messages", fake.base_url()))
        .bearer_auth(&token)
        .json(&json!({"messaging_product": "whatsapp", "to": CONTACT, "type": "text", "text": {"body": "will fail"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failed_id = sent["messages"][0]["id"].as_str().unwrap().to_owned();
    let status = fake.whatsapp_status(
        PHONE,
        &failed_id,
        "failed",
        Some((
            131_047,
            "Re-engagement message",
            "More than 24 hours have passed",
        )),
    );
    fake.deliver_whatsapp(vec![status]).await;
    let status_push = capture.next().await;
    let delivery = |push: &inbox_testkit::conformance::CapturedPush| {
        json!({
            "body": String::from_utf8(push.body.to_vec()).unwrap(),
            "signature": push.headers["x-hub-signature-256"].to_str().unwrap(),
        })
    };
    let config = json!({
        "phone_id": PHONE, "token": token, "app_secret": APP_SECRET, "verify_token": "fidelity",
        "version": VERSION, "contact": CONTACT, "contact_name": "Sheena Nelson", "blocked": BLOCKED,
        "inbound_id": inbound_id, "inbound_text": "Hi from the fake ✓", "failed_id": failed_id,
        "media_id": media_id, "media_bytes": "fidelity jpeg",
        "deliveries": [delivery(&message_push), delivery(&status_push)],
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), config.to_string()).unwrap();
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(fake.base_url())
        .arg(file.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the fidelity script did not finish within 120 s")
        .expect("the test Python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let calls: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
        .collect();
    assert!(
        output.status.success() && stdout.contains("whatsapp fidelity: ok"),
        "pywa disagreed with the fake ({}):\n{stdout}\n{stderr}\ncalls: {calls:#?}",
        output.status
    );

    // What pywa sent reached the fake intact.
    let sent = fake.whatsapp_sent(PHONE);
    let kinds: Vec<&str> = sent.iter().filter_map(|m| m["type"].as_str()).collect();
    assert_eq!(kinds, ["text", "text", "image", "template"], "{sent:#?}");
    assert_eq!(sent[1]["text"]["body"], "hello from pywa");
    assert_eq!(
        sent[2]["image"],
        json!({"link": "https://cdn.example.com/fidelity.png", "caption": "look"})
    );
    assert_eq!(fake.whatsapp_read(PHONE), [inbound_id]);
    let pywa_calls = fake
        .requests()
        .iter()
        .filter(|r| {
            r.headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|agent| agent.starts_with("PyWa/"))
        })
        .count();
    assert!(
        pywa_calls >= 7,
        "pywa's own requests reached the fake: {calls:#?}"
    );
}
