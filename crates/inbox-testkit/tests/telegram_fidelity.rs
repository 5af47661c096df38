//! Runs `tests/python/telegram_fidelity.py` (python-telegram-bot) against `FakeTelegram`, so
//! the fake's answers are checked by an SDK that real bots use, not only by our own adapter.
//! Skips (or, with `CI=true`, fails) when the test Python is missing; see
//! `inbox_testkit::requirements`.

use std::time::Duration;

use inbox_testkit::{fakes::telegram::FakeTelegram, requirements};
use serde_json::json;

const TOKEN: &str = "5555:AAH-fidelity_token";
const BOT_ID: i64 = 5555;
const ALICE: i64 = 111_222_333;
const BLOCKED: i64 = 444_555_666;

#[tokio::test]
async fn python_telegram_bot_reads_the_fake_like_telegram() {
    let Some(python) = requirements::python() else {
        return;
    };
    let script = requirements::workspace_root().join("tests/python/telegram_fidelity.py");

    let fake = FakeTelegram::start().await;
    fake.add_bot(TOKEN, BOT_ID, "Fidelity Bot", "fidelity_bot");
    fake.add_user(ALICE, "Alice", Some("Smith"), Some("alice"));
    fake.add_user(BLOCKED, "Bob", None, None);
    fake.block_user(BLOCKED);
    fake.message(TOKEN, ALICE)
        .text("hello bot")
        .date(1_767_323_045)
        .push()
        .await;
    fake.message(TOKEN, ALICE)
        .photo(b"fidelity photo bytes".to_vec())
        .caption("look")
        .push()
        .await;
    // The script's first sendMessage must see flood control, as PTB's RetryAfter.
    fake.rate_limit_next("sendMessage", 3);

    let expected = json!({
        "bot_id": BOT_ID, "bot_first_name": "Fidelity Bot", "bot_username": "fidelity_bot",
        "user_id": ALICE, "user_full_name": "Alice Smith", "user_username": "alice",
        "text": "hello bot", "date": 1_767_323_045, "caption": "look",
        "photo_bytes": "fidelity photo bytes", "retry_after": 3,
        "reply_text": "hello from python-telegram-bot",
        "unknown_chat_id": 999, "blocked_user_id": BLOCKED,
    });
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(fake.base_url())
        .arg(TOKEN)
        .arg(expected.to_string())
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
        .map(|r| format!("{} {} -> {:?}", r.http_method, r.method, r.status))
        .collect();
    assert!(
        output.status.success() && stdout.contains("telegram fidelity: ok"),
        "python-telegram-bot disagreed with the fake ({}):\n{stdout}\n{stderr}\ncalls: {calls:#?}",
        output.status
    );

    // What PTB sent reached the fake intact, through its form-encoded bodies.
    let sent = fake.sent_messages(TOKEN);
    assert_eq!(sent.len(), 1, "only the reply was accepted: {sent:#?}");
    assert_eq!(sent[0]["text"], "hello from python-telegram-bot");
    assert_eq!(sent[0]["reply_to_message"]["text"], "hello bot");
    let reply = fake
        .requests_for("sendMessage")
        .into_iter()
        .find(|r| r.status == Some(200))
        .expect("the accepted sendMessage");
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    assert!(
        content_type.is_some_and(|v| v.starts_with("application/x-www-form-urlencoded")),
        "PTB posts forms: {content_type:?}"
    );
    assert_eq!(
        fake.webhook_info(TOKEN).url,
        "",
        "the script removed its webhook"
    );
}
