//! Failure mapping: throttling and 5xx are retried within the budget and then `Unavailable`
//! with the hint; revoked credentials are `ReauthRequired`; other refusals are `Platform` with
//! the platform's own code and message, and are not retried.

use std::time::Duration;

use inbox_core::{Error, InboundMode, Platform};

use super::{
    FakeControl, Operation,
    harness::{connect, text},
};

/// A throttling answer with a short hint is waited for and retried.
pub async fn throttling_is_retried_within_the_budget(
    platform: &dyn Platform,
    fake: &dyn FakeControl,
) {
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    fake.rate_limit_next(Operation::Send, Duration::from_secs(1));
    let sent = platform
        .send(
            &account.context,
            &conversation.target,
            &text("after a pause"),
        )
        .await
        .unwrap_or_else(|err| panic!("a 1 s throttle must be retried: {err:?}"));
    assert_eq!(
        fake.calls(Operation::Send),
        2,
        "one throttled attempt, one retry"
    );
    let records = fake.sent(&account.seeded);
    assert_eq!(records.len(), 1, "sent exactly once");
    assert_eq!(records[0].platform_message_id, sent.platform_message_id);
}

/// A hint longer than the retry budget is not waited for: the send fails at once as
/// `Unavailable` (or `RateLimited`) carrying the hint, and nothing is sent.
pub async fn throttling_beyond_the_budget_is_unavailable(
    platform: &dyn Platform,
    fake: &dyn FakeControl,
) {
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let hint = Duration::from_secs(3600);
    fake.rate_limit_next(Operation::Send, hint);
    let result = platform
        .send(&account.context, &conversation.target, &text("not now"))
        .await;
    match result {
        Err(Error::Unavailable {
            retry_after: Some(after),
            ..
        })
        | Err(Error::RateLimited { retry_after: after }) => {
            assert_eq!(after, hint, "the platform's hint is passed on");
        }
        other => panic!("expected Unavailable with retry_after, got {other:?}"),
    }
    assert_eq!(
        fake.calls(Operation::Send),
        1,
        "a wait past the budget is not started"
    );
    assert!(fake.sent(&account.seeded).is_empty());
}

/// A server error is retried with backoff.
pub async fn server_errors_are_retried(platform: &dyn Platform, fake: &dyn FakeControl) {
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    fake.fail_next(Operation::Send, 500, "Internal Server Error");
    platform
        .send(
            &account.context,
            &conversation.target,
            &text("second time lucky"),
        )
        .await
        .unwrap_or_else(|err| panic!("a single 500 must be retried: {err:?}"));
    assert_eq!(fake.calls(Operation::Send), 2);
    assert_eq!(fake.sent(&account.seeded).len(), 1);
}

/// Revoked credentials are `ReauthRequired`, for sends and polls alike.
pub async fn revoked_credentials_require_reauth(platform: &dyn Platform, fake: &dyn FakeControl) {
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    fake.revoke(&account.seeded);
    match platform
        .send(&account.context, &conversation.target, &text("anyone?"))
        .await
    {
        Err(Error::ReauthRequired {
            platform: kind,
            message,
        }) => {
            assert_eq!(kind, platform.kind());
            assert!(!message.is_empty());
        }
        other => panic!("expected ReauthRequired from send, got {other:?}"),
    }
    if platform
        .capabilities()
        .inbound_modes
        .contains(&InboundMode::Polling)
    {
        let result = platform.poll(&account.context, None).await;
        assert!(
            matches!(result, Err(Error::ReauthRequired { .. })),
            "expected ReauthRequired from poll, got {result:?}"
        );
    }
}

/// A refusal retrying cannot fix (a blocked user) keeps the platform's code and message and is
/// tried once.
pub async fn refusals_keep_the_platform_code_and_message(
    platform: &dyn Platform,
    fake: &dyn FakeControl,
) {
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let (expected_code, expected_message) = fake.refuse_sends(&account.seeded, &conversation);
    match platform
        .send(&account.context, &conversation.target, &text("hello?"))
        .await
    {
        Err(Error::Platform {
            platform: kind,
            code,
            message,
        }) => {
            assert_eq!(kind, platform.kind());
            assert_eq!(code, expected_code);
            assert_eq!(message, expected_message);
        }
        other => panic!("expected Platform, got {other:?}"),
    }
    assert_eq!(fake.calls(Operation::Send), 1, "refusals are not retried");
}
