//! Rate limits through the API: the per-key limit and its headers on successes and errors,
//! `429` beyond it; platform budgets checked before the platform is called (nothing sent,
//! stored or emitted over budget); platform pushback holding a budget back; Redis's absence
//! reported by `/readyz` as degraded, not down.

use std::time::Duration;

use axum::http::Method;
use inbox_core::{BudgetOperation, BudgetScope, RateBudget};
use inbox_testkit::memory_platform::{Failure, Operation};
use serde_json::json;

use crate::common::{Resp, TestApp, hours_ago};

/// The six headers, as numbers.
fn limits(response: &Resp) -> [u64; 6] {
    [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ]
    .map(|name| {
        response
            .header(name)
            .unwrap_or_else(|| panic!("{name} is missing: {:?}", response.headers))
            .parse()
            .unwrap()
    })
}

#[tokio::test]
async fn every_authenticated_response_carries_the_keys_budget() {
    let app = TestApp::new().await;
    let ok = app.get("/api/v1/accounts").await;
    ok.ok(200);
    let [limit, remaining, reset, x_limit, x_remaining, x_reset] = limits(&ok);
    assert_eq!((limit, x_limit), (600, 600), "the SPEC's default");
    assert_eq!((remaining, x_remaining), (599, 599));
    assert_eq!(reset, 1, "one request refills in 100 ms, rounded up");
    let now = u64::try_from(inbox_core::Timestamp::now().unix_seconds()).unwrap();
    assert!((now..=now + 2).contains(&x_reset), "{x_reset} vs {now}");

    // Errors carry them too, counted like any request.
    let missing = app
        .get("/api/v1/inbox/conversations/conv_01jd000000000000000000000")
        .await;
    missing.problem(404, "not_found");
    assert_eq!(limits(&missing)[1], 598);
    let invalid = app.post("/api/v1/webhooks", json!({"url": 5})).await;
    invalid.problem(400, "invalid_request");
    assert_eq!(limits(&invalid)[1], 597);

    // No key, no budget to show; ops routes are not API routes.
    let anonymous = app
        .call(Method::GET, "/api/v1/accounts", None, None, &[])
        .await;
    anonymous.problem(401, "unauthorized");
    assert_eq!(anonymous.header("ratelimit-limit"), None);
    assert_eq!(
        app.call(Method::GET, "/healthz", None, None, &[])
            .await
            .header("ratelimit-limit"),
        None
    );
}

#[tokio::test]
async fn beyond_the_limit_a_key_gets_429_and_others_are_unaffected() {
    let app = TestApp::builder().api_rate_limit(3).build().await;
    for expected_remaining in [2, 1, 0] {
        let response = app.get("/api/v1/accounts").await;
        response.ok(200);
        assert_eq!(limits(&response)[1], expected_remaining);
    }
    let refused = app.get("/api/v1/accounts").await;
    let problem = refused.problem(429, "rate_limited");
    assert!(problem["detail"].as_str().unwrap().contains("retry after"));
    // 3 per minute: one more in 20 s.
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((19..=20).contains(&retry), "{retry}");
    let [limit, remaining, reset, ..] = limits(&refused);
    assert_eq!((limit, remaining), (3, 0));
    assert!((59..=60).contains(&reset), "{reset}");
    // A refused request runs no handler: connecting would have created an account.
    let before = app.snapshot().await;
    let refused_write = app
        .post(
            "/api/v1/accounts",
            json!({"platform": "telegram", "credentials": {"token": "t"}}),
        )
        .await;
    refused_write.problem(429, "rate_limited");
    assert_eq!(app.snapshot().await, before);
    // The other workspace's key has its own budget.
    let other = app
        .call(
            Method::GET,
            "/api/v1/accounts",
            Some(&app.other_key),
            None,
            &[],
        )
        .await;
    other.ok(200);
    assert_eq!(limits(&other)[1], 2);
}

fn per_chat(count: u32, period: Duration) -> RateBudget {
    RateBudget::new(
        "send_per_chat",
        BudgetScope::Conversation,
        BudgetOperation::Send,
        count,
        period,
    )
}

#[tokio::test]
async fn a_send_over_budget_is_429_and_calls_nothing() {
    let app = TestApp::builder()
        .telegram_budgets(vec![per_chat(1, Duration::from_secs(3_600))])
        .build()
        .await;
    let account = app.connect("telegram", "bot").await;
    let conversation = app.receive(&account, "chat-1", "hi", hours_ago(1)).await;
    let path = format!("/api/v1/inbox/conversations/{conversation}/messages");
    app.post(&path, json!({"message": "first"})).await.ok(201);
    let before = app.snapshot().await;
    let events = app.events().await;

    let refused = app.post(&path, json!({"message": "second"})).await;
    refused.problem(429, "rate_limited");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((3_595..=3_600).contains(&retry), "{retry}");
    assert_eq!(app.telegram.sends().len(), 1, "the platform was not called");
    assert_eq!(app.snapshot().await, before, "nothing was stored");
    assert_eq!(app.events().await, events, "no message.sent");

    // Another chat of the same bot has its own budget.
    let other = app.receive(&account, "chat-2", "hi", hours_ago(1)).await;
    app.post(
        &format!("/api/v1/inbox/conversations/{other}/messages"),
        json!({"message": "hello"}),
    )
    .await
    .ok(201);
    assert_eq!(app.telegram.sends().len(), 2);
}

#[tokio::test]
async fn budget_checks_come_after_the_content_checks() {
    let app = TestApp::builder()
        .telegram_budgets(vec![per_chat(1, Duration::from_secs(3_600))])
        .build()
        .await;
    let account = app.connect("telegram", "bot").await;
    let conversation = app.receive(&account, "chat-1", "hi", hours_ago(1)).await;
    let path = format!("/api/v1/inbox/conversations/{conversation}/messages");
    // A refused message does not spend the budget: the next valid one still goes.
    app.post(&path, json!({"message": ""}))
        .await
        .invalid("message");
    app.post(&path, json!({"message": "x".repeat(5_000)}))
        .await
        .problem(422, "message_too_long");
    app.post(&path, json!({"message": "valid"})).await.ok(201);
    app.post(&path, json!({"message": "again"}))
        .await
        .problem(429, "rate_limited");
}

#[tokio::test]
async fn platform_pushback_holds_the_budget_until_the_platforms_reset() {
    let app = TestApp::builder()
        .telegram_budgets(vec![per_chat(100, Duration::from_secs(1))])
        .build()
        .await;
    let account = app.connect("telegram", "bot").await;
    let conversation = app.receive(&account, "chat-1", "hi", hours_ago(1)).await;
    let path = format!("/api/v1/inbox/conversations/{conversation}/messages");
    app.telegram.fail_next(
        Operation::Send,
        Failure::Unavailable {
            retry_after: Some(Duration::from_secs(120)),
        },
    );
    let throttled = app.post(&path, json!({"message": "one"})).await;
    throttled.problem(503, "platform_unavailable");
    assert_eq!(throttled.header("retry-after"), Some("120"));
    // The next send waits for the platform's reset instead of calling it.
    let calls = app.telegram.sends().len();
    let held = app.post(&path, json!({"message": "two"})).await;
    held.problem(429, "rate_limited");
    let retry: u64 = held.header("retry-after").unwrap().parse().unwrap();
    assert!((118..=120).contains(&retry), "{retry}");
    assert_eq!(app.telegram.sends().len(), calls);
}

#[tokio::test]
async fn redis_away_is_degraded_not_down() {
    let app = TestApp::builder().degraded_readiness().build().await;
    let response = app.call(Method::GET, "/readyz", None, None, &[]).await;
    let report = response.ok(200);
    assert_eq!(report["status"], "degraded");
    let redis = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == "redis")
        .unwrap();
    assert_eq!(redis["status"], "degraded");
    assert!(
        redis["error"]
            .as_str()
            .unwrap()
            .contains("Redis is unreachable")
    );
    let database = &report["checks"][0];
    assert_eq!(
        (database["name"].as_str(), database["status"].as_str()),
        (Some("database"), Some("ok"))
    );
}
