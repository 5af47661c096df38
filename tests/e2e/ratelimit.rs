//! Rate limits across real processes: two gateway replicas sharing one Redis (and one
//! PostgreSQL) send into one Telegram chat and together stay within the chat's budget; a
//! gateway whose Redis is killed mid-run keeps answering on its in-process limiter, says so
//! in `/readyz`, `/metrics` and its log (once), and returns to Redis when it is back.

use std::time::Instant;

use inbox_testkit::services::{PostgresServer, RedisServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Gateway, TOKEN, USER, eventually, fake_telegram};

/// The budget both tests use: 2 messages per chat in any 10 s, both at once.
const CHAT_BUDGET: &str = "telegram.send_per_chat=2/10s burst 2";

/// A send through the API with its status and `Retry-After`.
async fn send(
    gateway: &Gateway,
    key: &str,
    conversation: &str,
    text: &str,
) -> (StatusCode, Option<u64>, Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/inbox/conversations/{conversation}/messages",
            gateway.base
        ))
        .bearer_auth(key)
        .json(&json!({ "message": text }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok()?.parse().ok());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn two_replicas_sharing_redis_stay_within_one_chat_budget() {
    let (Some(redis), Some(postgres)) = (RedisServer::start(), PostgresServer::start()) else {
        return;
    };
    let fake = fake_telegram().await;
    let env = [
        ("DATABASE_URL", postgres.create_database()),
        ("INBOX_ENCRYPTION_KEY", inbox_store::Cipher::generate_key()),
        ("INBOX_TELEGRAM_API_BASE", fake.base_url().to_owned()),
        ("REDIS_URL", redis.url()),
        ("INBOX_RATE_BUDGETS", CHAT_BUDGET.to_owned()),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Gateway::start(dir_a.path(), true, &env).await;
    let b = Gateway::start(dir_b.path(), true, &env).await;
    let key = a.create_api_key("acme");
    b.client(&key).connect_bot().await;
    fake.message(TOKEN, USER).text("hello?").push().await;
    let api = a.client(&key);
    eventually(&a, "the conversation exists", || async {
        api.get("/inbox/conversations").await["data"]
            .as_array()
            .is_some_and(|data| data.len() == 1)
    })
    .await;
    let conversation = api.get("/inbox/conversations").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Six replies through each replica at once.
    let texts: Vec<String> = (0..12).map(|n| format!("reply {n}")).collect();
    let started = Instant::now();
    let sends = texts.iter().enumerate().map(|(n, text)| {
        let gateway = if n % 2 == 0 { &a } else { &b };
        send(gateway, &key, &conversation, text)
    });
    let outcomes = futures::future::join_all(sends).await;
    let elapsed = started.elapsed();

    let sent = outcomes
        .iter()
        .filter(|(status, ..)| *status == StatusCode::CREATED)
        .count();
    for (status, retry_after, body) in &outcomes {
        match *status {
            StatusCode::CREATED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["code"], "rate_limited", "{body}");
                let retry_after = retry_after.expect("a 429 says when to retry");
                assert!((1..=10).contains(&retry_after), "{retry_after}");
            }
            other => panic!("unexpected {other}: {body}\n{}\n{}", a.logs(), b.logs()),
        }
    }
    // One budget for both replicas: two at once, then one per 10 s. (Each replica alone
    // would have let two through: four in all.)
    let allowed = 2 + usize::try_from(elapsed.as_secs() / 10).unwrap();
    assert!(
        (2..=allowed).contains(&sent),
        "{sent} sent in {elapsed:?}, at most {allowed} allowed"
    );
    assert_eq!(
        fake.requests_for("sendMessage").len(),
        sent,
        "every refused reply was refused before Telegram was called"
    );
    // Only what was sent is stored: the participant's message and the replies that went out.
    assert_eq!(api.all_messages().await.len(), 1 + sent);
}

/// The value of one series in a Prometheus text page.
fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn redis_killed_mid_run_the_gateway_keeps_answering_and_returns_to_redis() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let fake = fake_telegram().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("INBOX_TELEGRAM_API_BASE", fake.base_url().to_owned()),
        ("REDIS_URL", redis.url()),
        ("INBOX_RATE_BUDGETS", CHAT_BUDGET.to_owned()),
    ];
    let gateway = Gateway::start(dir.path(), true, &env).await;
    let key = gateway.create_api_key("acme");
    let api = gateway.client(&key);
    api.connect_bot().await;
    fake.message(TOKEN, USER).text("hello?").push().await;
    eventually(&gateway, "the conversation exists", || async {
        api.get("/inbox/conversations").await["data"]
            .as_array()
            .is_some_and(|data| data.len() == 1)
    })
    .await;
    let conversation = api.get("/inbox/conversations").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let request = http.get(format!("{}{path}", gateway.base));
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };

    let (status, ready) = get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["status"], "ok", "{ready}");
    let (_, metrics) = get("/metrics").await;
    assert_eq!(
        metric(&metrics, "inbox_ratelimit_backend{backend=\"redis\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        send(&gateway, &key, &conversation, "before").await.0,
        StatusCode::CREATED
    );

    redis.kill();
    // The gateway keeps answering: sends within the budget, reads, the key's headers.
    assert_eq!(
        send(&gateway, &key, &conversation, "during").await.0,
        StatusCode::CREATED
    );
    for _ in 0..3 {
        let response = http
            .get(format!("{}/api/v1/accounts", gateway.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("ratelimit-remaining"));
    }
    // The chat's budget still holds, now in process (whose bucket started full: the one
    // charged before the outage lives in Redis).
    assert_eq!(
        send(&gateway, &key, &conversation, "during 2").await.0,
        StatusCode::CREATED
    );
    let (status, retry_after, _) = send(&gateway, &key, &conversation, "over").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some());
    let (status, ready) = get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "degraded is still ready: {ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    let check = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == "redis")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "degraded", "{ready}");
    let (_, metrics) = get("/metrics").await;
    assert_eq!(
        metric(&metrics, "inbox_ratelimit_backend{backend=\"local\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "inbox_ratelimit_backend{backend=\"redis\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&metrics, "inbox_ratelimit_fallbacks_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        gateway
            .logs()
            .matches("rate limits fall back to this process")
            .count(),
        1,
        "the switch is logged once:\n{}",
        gateway.logs()
    );

    redis.restart();
    eventually(&gateway, "the gateway is back on Redis", || async {
        let (_, ready) = get("/readyz").await;
        serde_json::from_str::<Value>(&ready).is_ok_and(|ready| ready["status"] == "ok")
    })
    .await;
    let (_, metrics) = get("/metrics").await;
    assert_eq!(
        metric(&metrics, "inbox_ratelimit_backend{backend=\"redis\"}"),
        Some(1.0)
    );
    assert!(gateway.logs().contains("Redis answers again"));
    // The restarted Redis starts empty, so the chat's budget is fresh again.
    assert_eq!(
        send(&gateway, &key, &conversation, "after").await.0,
        StatusCode::CREATED
    );
    assert_eq!(fake.requests_for("sendMessage").len(), 4);
}

#[tokio::test]
async fn an_override_naming_no_budget_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_inboxgw"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env(
            "INBOX_LISTEN",
            format!("127.0.0.1:{}", crate::support::free_port()),
        )
        .env("INBOX_RATE_BUDGETS", "telegram.send_per_chatt=1/s")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|line| line.starts_with("inboxgw:"))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    assert!(line.contains("INBOX_RATE_BUDGETS"), "{line}");
    assert!(line.contains("send_per_chat, send_per_bot"), "{line}");
    // A malformed value is refused before anything starts, naming the setting too.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_inboxgw"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("INBOX_RATE_BUDGETS", "telegram.send_per_chat=fast")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("INBOX_RATE_BUDGETS"), "{stderr}");
}
