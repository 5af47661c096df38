//! `UrlGuard::check`: URL form, literal addresses of every blocked class, names that resolve to
//! loopback, and the `allow_private` switch.

use inbox_core::Error;
use inbox_webhooks::UrlGuard;

/// The `InvalidInput` message for `url`, asserting the variant and the `url` param.
async fn refusal(guard: UrlGuard, url: &str) -> String {
    match guard.check(url).await {
        Err(Error::InvalidInput { param, message }) => {
            assert_eq!(param.as_deref(), Some("url"), "{url}");
            message
        }
        other => panic!("{url} should be refused as invalid input, got {other:?}"),
    }
}

#[tokio::test]
async fn literal_addresses_of_every_blocked_class_are_refused() {
    let guard = UrlGuard::new(false);
    for host in [
        "127.0.0.1",
        "127.1",
        "0.0.0.0",
        "10.1.2.3",
        "172.16.5.4",
        "172.31.255.254",
        "192.168.0.10",
        "169.254.169.254",
        "169.254.10.10",
        "100.64.0.1",
        "192.0.0.1",
        "192.0.2.10",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.251",
        "255.255.255.255",
        "240.0.0.1",
        "0x7f000001",
        "[::1]",
        "[::]",
        "[fd00::1]",
        "[fc00::1]",
        "[fe80::1]",
        "[ff02::1]",
        "[2001:db8::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[::ffff:10.0.0.1]",
        "[::127.0.0.1]",
        "[64:ff9b::a9fe:a9fe]",
    ] {
        let url = format!("http://{host}:8080/hook");
        let message = refusal(guard, &url).await;
        assert!(
            message.contains("INBOX_WEBHOOK_ALLOW_PRIVATE=true"),
            "{url}: the message names the switch: {message}"
        );
        assert!(message.contains("blocked"), "{url}: {message}");
    }
}

#[tokio::test]
async fn the_message_names_the_refused_address() {
    let message = refusal(
        UrlGuard::new(false),
        "https://169.254.169.254/latest/meta-data",
    )
    .await;
    assert!(message.contains("169.254.169.254"), "{message}");
    assert!(message.contains("link-local"), "{message}");
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_by_name() {
    let message = refusal(UrlGuard::new(false), "http://localhost:9000/hook").await;
    assert!(
        message.contains("`localhost` resolves to private address"),
        "{message}"
    );
    assert!(
        message.contains("INBOX_WEBHOOK_ALLOW_PRIVATE=true"),
        "{message}"
    );
}

#[tokio::test]
async fn allow_private_accepts_loopback_and_private_addresses() {
    let guard = UrlGuard::new(true);
    assert!(guard.allows_private());
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost:9000/hook",
        "http://10.0.0.5/hook",
        "https://[::1]:8443/x",
        "http://169.254.169.254/",
    ] {
        let parsed = guard
            .check(url)
            .await
            .unwrap_or_else(|err| panic!("{url}: {err}"));
        assert_eq!(parsed.scheme(), url.split(':').next().unwrap());
    }
}

#[tokio::test]
async fn public_literal_addresses_pass_without_dns() {
    let guard = UrlGuard::new(false);
    let parsed = guard
        .check("https://93.184.215.14/hooks?token=abc")
        .await
        .unwrap();
    assert_eq!(parsed.host_str(), Some("93.184.215.14"));
    assert_eq!(parsed.query(), Some("token=abc"));
    guard
        .check("https://[2606:4700:4700::1111]/hooks")
        .await
        .unwrap();
}

#[tokio::test]
async fn only_absolute_http_urls_with_a_host_are_accepted() {
    // Even with private addresses allowed, the form is checked.
    let guard = UrlGuard::new(true);
    for (url, expected) in [
        ("ftp://example.com/hook", "must use http or https"),
        ("file:///etc/passwd", "must use http or https"),
        ("gopher://127.0.0.1:70/", "must use http or https"),
        ("/relative/path", "not a valid absolute URL"),
        ("not a url", "not a valid absolute URL"),
        ("http://", "not a valid absolute URL"),
    ] {
        let message = refusal(guard, url).await;
        assert!(message.contains(expected), "{url}: {message}");
    }
}

#[tokio::test]
async fn an_unresolvable_host_is_invalid_input() {
    // `.invalid` never resolves (RFC 6761), with or without a network.
    for guard in [UrlGuard::new(false), UrlGuard::new(true)] {
        let message = refusal(guard, "https://no-such-host.invalid/hook").await;
        assert!(message.contains("could not be resolved"), "{message}");
        assert!(message.contains("no-such-host.invalid"), "{message}");
    }
}
