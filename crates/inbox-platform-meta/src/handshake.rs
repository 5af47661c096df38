//! The webhook subscription handshake: when a callback URL or verify token is set, Meta calls
//! `GET <callback>?hub.mode=subscribe&hub.challenge=<digits>&hub.verify_token=<token>` and
//! expects the challenge back, as plain text, with `200`
//! (<https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests>).
//! The challenge is documented as an int but echoed as the opaque string it is.

use inbox_core::{Error, HandshakeResponse, Result};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// Answers a handshake whose raw query string is `query`.
///
/// # Errors
/// `WebhookVerification` (the gateway answers `403`) when no verify token is configured, the
/// mode is not `subscribe`, the challenge is missing, or the token does not match.
pub fn handshake(
    query: Option<&str>,
    verify_token: Option<&SecretString>,
) -> Result<HandshakeResponse> {
    let fail = |message: &str| {
        Err(Error::WebhookVerification {
            message: message.to_owned(),
        })
    };
    let Some(expected) = verify_token else {
        return fail("no verify token is configured (INBOX_META_VERIFY_TOKEN)");
    };
    let (mut mode, mut challenge, mut token) = (None, None, None);
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "hub.mode" => mode = Some(value.into_owned()),
            "hub.challenge" => challenge = Some(value.into_owned()),
            "hub.verify_token" => token = Some(value.into_owned()),
            _ => {}
        }
    }
    if mode.as_deref() != Some("subscribe") {
        return fail("hub.mode is not `subscribe`");
    }
    let Some(challenge) = challenge.filter(|c| !c.is_empty()) else {
        return fail("hub.challenge is missing");
    };
    let given = token.unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
        return fail("hub.verify_token does not match");
    }
    Ok(HandshakeResponse {
        content_type: "text/plain; charset=utf-8",
        body: challenge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_token_gets_the_challenge_back() {
        let token = SecretString::from("verify-me");
        let answer = handshake(
            Some("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me"),
            Some(&token),
        )
        .unwrap();
        assert_eq!(answer.body, "1158201444");
        assert!(answer.content_type.starts_with("text/plain"));
        // Percent-encoded tokens are decoded first.
        let spaced = SecretString::from("a b&c");
        let answer = handshake(
            Some("hub.verify_token=a+b%26c&hub.challenge=x&hub.mode=subscribe"),
            Some(&spaced),
        )
        .unwrap();
        assert_eq!(answer.body, "x");
    }

    #[test]
    fn everything_else_is_refused() {
        let token = SecretString::from("verify-me");
        for query in [
            None,
            Some(""),
            Some("hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong"),
            Some("hub.mode=subscribe&hub.challenge=1&hub.verify_token=verify-m"),
            Some("hub.mode=subscribe&hub.challenge=1"),
            Some("hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=verify-me"),
            Some("hub.mode=subscribe&hub.verify_token=verify-me"),
        ] {
            assert!(
                matches!(
                    handshake(query, Some(&token)),
                    Err(Error::WebhookVerification { .. })
                ),
                "{query:?}"
            );
        }
        assert!(
            handshake(
                Some("hub.mode=subscribe&hub.challenge=1&hub.verify_token="),
                None
            )
            .is_err()
        );
    }
}
