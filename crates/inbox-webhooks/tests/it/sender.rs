//! The sender against a real receiver: signed headers that the official verifier accepts,
//! redirects not followed, timeouts, refused connections, truncated bodies, `Retry-After`, and
//! the SSRF guard at send time.

use std::time::Duration;

use inbox_core::EventId;
use inbox_testkit::receiver::{Reply, WebhookReceiver};
use inbox_webhooks::{
    MAX_RESPONSE_BODY, OutgoingWebhook, SendError, SendOutcome, SenderConfig, WebhookSender,
    generate_secret,
};
use secrecy::{ExposeSecret, SecretString};

use crate::support::PATIENCE;

const BODY: &str = r#"{"id":"evt_x","event":"webhook.test","data":{"text":"héllo 👋"}}"#;

fn sender(allow_private: bool) -> WebhookSender {
    WebhookSender::new(SenderConfig {
        allow_private,
        ..SenderConfig::default()
    })
    .unwrap()
}

async fn send(
    sender: &WebhookSender,
    url: &str,
    secrets: &[SecretString],
    event_id: &str,
) -> SendOutcome {
    sender
        .send(OutgoingWebhook {
            url,
            secrets,
            event_id,
            payload: BODY,
        })
        .await
}

#[tokio::test]
async fn sends_signed_standard_webhooks_headers_that_verify() {
    let secret = generate_secret();
    let receiver = WebhookReceiver::start(secret.expose_secret()).await;
    let event_id = EventId::new().to_string();

    let outcome = send(&sender(true), &receiver.url(), &[secret], &event_id).await;
    assert!(outcome.is_success(), "{outcome:?}");
    assert_eq!(outcome.status, Some(200));
    assert_eq!(outcome.error, None);

    let received = receiver.wait_for(1, PATIENCE).await;
    let request = &received[0];
    assert!(request.verified, "{:?}", request.verification_error);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/webhook");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(
        request
            .header("user-agent")
            .unwrap()
            .starts_with("inboxgw-webhooks/")
    );
    assert_eq!(request.webhook_id(), Some(event_id.as_str()));
    assert_eq!(
        request.header("webhook-timestamp"),
        Some(outcome.timestamp.to_string().as_str())
    );
    assert!(
        request
            .header("webhook-signature")
            .unwrap()
            .starts_with("v1,")
    );
    assert_eq!(
        request.body_text(),
        BODY,
        "the exact bytes that were signed"
    );
    assert_eq!(
        receiver.verified_events(),
        vec![serde_json::from_str::<serde_json::Value>(BODY).unwrap()]
    );
}

#[tokio::test]
async fn a_receiver_still_on_the_previous_secret_verifies_during_rotation() {
    let current = generate_secret();
    let previous = generate_secret();
    let receiver = WebhookReceiver::start(previous.expose_secret()).await;
    let outcome = send(
        &sender(true),
        &receiver.url(),
        &[current, previous],
        "evt_rotation",
    )
    .await;
    assert!(outcome.is_success(), "{outcome:?}");
    let received = receiver.wait_for(1, PATIENCE).await;
    assert!(received[0].verified, "{:?}", received[0].verification_error);
    assert_eq!(
        received[0]
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );
}

#[tokio::test]
async fn a_receiver_with_another_secret_does_not_verify() {
    let receiver = WebhookReceiver::start(generate_secret().expose_secret()).await;
    send(
        &sender(true),
        &receiver.url(),
        &[generate_secret()],
        "evt_other",
    )
    .await;
    let received = receiver.wait_for(1, PATIENCE).await;
    assert!(!received[0].verified);
    assert!(received[0].verification_error.is_some());
    assert!(receiver.verified_events().is_empty());
}

#[tokio::test]
async fn redirects_are_failures_and_are_not_followed() {
    let secret = generate_secret();
    let receiver = WebhookReceiver::start(secret.expose_secret()).await;
    let elsewhere = WebhookReceiver::start(secret.expose_secret()).await;
    for status in [301, 302, 307, 308] {
        receiver.respond_with([Reply::redirect(status, &elsewhere.url())]);
        let outcome = send(
            &sender(true),
            &receiver.url(),
            std::slice::from_ref(&secret),
            "evt_redirect",
        )
        .await;
        assert!(!outcome.is_success());
        assert_eq!(outcome.status, Some(status));
        assert_eq!(outcome.error, Some(SendError::Redirect(status)));
        assert_eq!(
            outcome.error.unwrap().to_string(),
            format!("redirect ({status}) not followed")
        );
    }
    // `send` returned, so a followed redirect would already have arrived.
    assert!(
        elsewhere.received().is_empty(),
        "the redirect target was never called"
    );
    assert_eq!(receiver.received().len(), 4);
}

#[tokio::test]
async fn a_hanging_endpoint_times_out_with_a_clear_error() {
    let secret = generate_secret();
    let receiver = WebhookReceiver::start(secret.expose_secret()).await;
    receiver.respond_with([Reply::hang()]);
    let sender = WebhookSender::new(SenderConfig {
        allow_private: true,
        timeout: Duration::from_millis(300),
        ..SenderConfig::default()
    })
    .unwrap();
    let outcome = send(&sender, &receiver.url(), &[secret], "evt_timeout").await;
    assert_eq!(outcome.status, None);
    assert_eq!(
        outcome.error,
        Some(SendError::Timeout(Duration::from_millis(300)))
    );
    assert_eq!(outcome.error.unwrap().to_string(), "timed out after 300ms");
    assert_eq!(receiver.received().len(), 1, "the request did arrive");
}

#[tokio::test]
async fn a_closed_port_is_connection_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let outcome = send(
        &sender(true),
        &format!("http://127.0.0.1:{port}/hook"),
        &[generate_secret()],
        "evt_refused",
    )
    .await;
    assert_eq!(outcome.status, None);
    assert_eq!(
        outcome.error,
        Some(SendError::ConnectionRefused),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn an_unresolvable_host_is_a_dns_error() {
    let outcome = send(
        &sender(true),
        "http://no-such-host.invalid/hook",
        &[generate_secret()],
        "evt_dns",
    )
    .await;
    assert_eq!(outcome.status, None);
    let error = outcome.error.expect("fails");
    assert!(matches!(error, SendError::Dns(_)), "{error:?}");
    assert!(
        !error.to_string().contains("no-such-host.invalid/hook"),
        "no URL in the log: {error}"
    );
}

#[tokio::test]
async fn error_statuses_keep_the_start_of_the_body() {
    let secret = generate_secret();
    let receiver = WebhookReceiver::start(secret.expose_secret()).await;
    let long = "x".repeat(10 * 1024);
    receiver.respond_with([
        Reply::status(500).body(long),
        Reply::status(404).body("no such hook"),
    ]);
    let sender = sender(true);

    let outcome = send(
        &sender,
        &receiver.url(),
        std::slice::from_ref(&secret),
        "evt_500",
    )
    .await;
    assert_eq!(outcome.status, Some(500));
    assert_eq!(
        outcome.error.as_ref().map(ToString::to_string).as_deref(),
        Some("HTTP 500")
    );
    assert_eq!(
        outcome.response_body.as_ref().map(String::len),
        Some(MAX_RESPONSE_BODY)
    );

    let outcome = send(&sender, &receiver.url(), &[secret], "evt_404").await;
    assert_eq!(outcome.error, Some(SendError::Status(404)));
    assert_eq!(outcome.response_body.as_deref(), Some("no such hook"));
}

#[tokio::test]
async fn a_long_success_body_is_truncated_too() {
    let secret = generate_secret();
    let receiver = WebhookReceiver::start(secret.expose_secret()).await;
    receiver.respond_with([Reply::ok().body("é".repeat(5000))]);
    let outcome = send(&sender(true), &receiver.url(), &[secret], "evt_long").await;
    assert!(outcome.is_success());
    let body = outcome.response_body.unwrap();
    assert!(
        body.len() <= MAX_RESPONSE_BODY && body.len() > MAX_RESPONSE_BODY - 4,
        "{}",
        body.len()
    );
    assert!(
        body.chars().all(|c| c == 'é'),
        "cut at a character boundary"
    );
}

#[tokio::test]
async fn retry_after_is_read_on_429_and_503_only() {
    let secret = generate_secret();
    let receiver = WebhookReceiver::start(secret.expose_secret()).await;
    receiver.respond_with([
        Reply::status(429).header("retry-after", "120"),
        Reply::status(503).header("retry-after", "7"),
        Reply::status(500).header("retry-after", "120"),
    ]);
    let sender = sender(true);
    let secrets = [secret];
    let first = send(&sender, &receiver.url(), &secrets, "evt_429").await;
    assert_eq!(
        (first.status, first.retry_after),
        (Some(429), Some(Duration::from_secs(120)))
    );
    let second = send(&sender, &receiver.url(), &secrets, "evt_503").await;
    assert_eq!(
        (second.status, second.retry_after),
        (Some(503), Some(Duration::from_secs(7)))
    );
    let third = send(&sender, &receiver.url(), &secrets, "evt_500").await;
    assert_eq!((third.status, third.retry_after), (Some(500), None));
}

#[tokio::test]
async fn private_addresses_are_blocked_at_send_time() {
    let secret = generate_secret();
    let receiver = WebhookReceiver::start(secret.expose_secret()).await;
    let guarded = sender(false);

    // A literal address: the connector would not resolve it, so the sender checks it.
    let outcome = send(
        &guarded,
        &receiver.url(),
        std::slice::from_ref(&secret),
        "evt_literal",
    )
    .await;
    let message = outcome.error.expect("refused").to_string();
    assert!(
        message.starts_with("blocked: 127.0.0.1 is a private address"),
        "{message}"
    );

    // A name: the resolver drops loopback answers, so nothing is left to dial.
    let by_name = format!("http://localhost:{}/webhook", receiver.addr().port());
    let outcome = send(
        &guarded,
        &by_name,
        std::slice::from_ref(&secret),
        "evt_name",
    )
    .await;
    let message = outcome.error.expect("refused").to_string();
    assert!(
        message.starts_with("blocked: `localhost` resolves to private address"),
        "{message}"
    );
    assert!(
        message.contains("INBOX_WEBHOOK_ALLOW_PRIVATE=true"),
        "{message}"
    );

    assert!(
        receiver.received().is_empty(),
        "nothing reached the private receiver"
    );

    // The same URLs go through when private networks are allowed.
    assert!(
        send(&sender(true), &by_name, &[secret], "evt_allowed")
            .await
            .is_success()
    );
}

#[tokio::test]
async fn malformed_urls_and_secrets_fail_the_attempt_without_a_request() {
    let outcome = send(
        &sender(true),
        "ftp://example.com/x",
        &[generate_secret()],
        "evt_ftp",
    )
    .await;
    assert!(
        matches!(outcome.error, Some(SendError::InvalidUrl(_))),
        "{outcome:?}"
    );

    let secret = generate_secret();
    let receiver = WebhookReceiver::start(secret.expose_secret()).await;
    let outcome = send(
        &sender(true),
        &receiver.url(),
        &[SecretString::from("whsec_%%%")],
        "evt_bad_secret",
    )
    .await;
    assert!(
        matches!(outcome.error, Some(SendError::Signing(_))),
        "{outcome:?}"
    );
    assert!(receiver.received().is_empty());
}
