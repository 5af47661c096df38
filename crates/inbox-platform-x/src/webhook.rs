//! X webhook security (<https://docs.x.com/x-api/webhooks/introduction>): the CRC challenge
//! (`GET ?crc_token=…` answered with `{"response_token":"sha256=<base64 HMAC-SHA256(consumer
//! secret, crc_token)>"}`) and the `x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256
//! (consumer secret, raw body)>` header on every event POST, compared in constant time.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use inbox_core::{Error, Result};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header X signs event deliveries with.
pub const SIGNATURE_HEADER: &str = "x-twitter-webhooks-signature";

/// `sha256=` + base64 of HMAC-SHA256 over `message` keyed by the consumer secret.
pub fn sign(secret: &SecretString, message: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(message);
    format!("sha256={}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The CRC answer for the query string of a challenge.
///
/// # Errors
/// `WebhookVerification` when the query has no `crc_token`.
pub(crate) fn crc_response(secret: &SecretString, query: Option<&str>) -> Result<String> {
    let token = query
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(key, _)| key == "crc_token")
                .map(|(_, value)| value.into_owned())
        })
        .filter(|token| !token.is_empty())
        .ok_or_else(|| Error::WebhookVerification {
            message: "an X webhook challenge without `crc_token`".into(),
        })?;
    Ok(serde_json::json!({"response_token": sign(secret, token.as_bytes())}).to_string())
}

/// Checks the signature header of an event delivery against the raw body.
///
/// # Errors
/// `WebhookVerification` for a missing, malformed or wrong signature.
pub(crate) fn verify(secret: &SecretString, headers: &HeaderMap, body: &[u8]) -> Result<()> {
    let given = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::WebhookVerification {
            message: format!("no {SIGNATURE_HEADER} header"),
        })?;
    let expected = sign(secret, body);
    if bool::from(given.trim().as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(Error::WebhookVerification {
            message: format!("the {SIGNATURE_HEADER} does not match the body"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of the platform reference (§1.2), cross-checked with `openssl dgst`.
    #[test]
    fn known_vectors() {
        let secret = SecretString::from("test_consumer_secret");
        assert_eq!(
            sign(&secret, b"challenge_string"),
            "sha256=583uAmerwtjpykYEAEm+CEIRm6dOywK4QKRr0ha/Pd4="
        );
        let body = br#"{"for_user_id":"4337869213","direct_message_events":[]}"#;
        assert_eq!(
            sign(&secret, body),
            "sha256=62uSzi0ITsKqyj5ZDmb8qN7BOCF3cOEmF4n/++nCpFE="
        );
        let response = crc_response(&secret, Some("crc_token=challenge_string&nonce=1")).unwrap();
        assert_eq!(
            response,
            r#"{"response_token":"sha256=583uAmerwtjpykYEAEm+CEIRm6dOywK4QKRr0ha/Pd4="}"#
        );
        assert!(crc_response(&secret, Some("nonce=1")).is_err());

        let mut headers = HeaderMap::new();
        assert!(verify(&secret, &headers, body).is_err());
        headers.insert(SIGNATURE_HEADER, sign(&secret, body).parse().unwrap());
        assert!(verify(&secret, &headers, body).is_ok());
        assert!(verify(&secret, &headers, b"{}").is_err());
    }
}
