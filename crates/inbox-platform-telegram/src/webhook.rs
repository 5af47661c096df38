//! Inbound webhook verification. Telegram does not sign bodies; instead `setWebhook` takes a
//! `secret_token` that Telegram sends back in `X-Telegram-Bot-Api-Secret-Token` on every push
//! (<https://core.telegram.org/bots/api#setwebhook>). The gateway generates one per account.

use inbox_core::{Error, Result};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// The header carrying the account's secret.
pub(crate) const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Whether `secret` satisfies Telegram's rule for `secret_token`: 1–256 characters from
/// `A-Z`, `a-z`, `0-9`, `_` and `-`.
pub(crate) fn is_valid_secret(secret: &str) -> bool {
    (1..=256).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks the secret header against the account's secret, in constant time with respect to
/// the secret's content.
///
/// # Errors
/// `WebhookVerification` when the account has no secret, or the header is missing or wrong.
pub(crate) fn verify(headers: &http::HeaderMap, expected: Option<&SecretString>) -> Result<()> {
    let fail = |message: &str| {
        Err(Error::WebhookVerification {
            message: message.to_owned(),
        })
    };
    let Some(expected) = expected else {
        return fail("the account has no inbound secret");
    };
    let Some(given) = headers.get(SECRET_HEADER) else {
        return fail("the X-Telegram-Bot-Api-Secret-Token header is missing");
    };
    // `ct_eq` on slices of different lengths returns false at once; only the length leaks, and
    // every secret the gateway generates has the same length.
    if bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
        Ok(())
    } else {
        fail("the X-Telegram-Bot-Api-Secret-Token header does not match")
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::*;

    fn headers(secret: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(secret) = secret {
            headers.insert(SECRET_HEADER, HeaderValue::from_static(secret));
        }
        headers
    }

    #[test]
    fn secret_rule() {
        assert!(is_valid_secret("abc_DEF-123"));
        assert!(is_valid_secret(&"a".repeat(256)));
        assert!(!is_valid_secret(""));
        assert!(!is_valid_secret(&"a".repeat(257)));
        assert!(!is_valid_secret("has space"));
        assert!(!is_valid_secret("whsec_abc+/="));
    }

    #[test]
    fn matching_secret_passes_and_others_fail() {
        let secret = SecretString::from("s3cret_value");
        assert!(verify(&headers(Some("s3cret_value")), Some(&secret)).is_ok());
        for (given, account) in [
            (None, Some(&secret)),
            (Some("s3cret_valuE"), Some(&secret)),
            (Some("s3cret_value_longer"), Some(&secret)),
            (Some(""), Some(&secret)),
            (Some("s3cret_value"), None),
        ] {
            assert!(
                matches!(
                    verify(&headers(given), account),
                    Err(Error::WebhookVerification { .. })
                ),
                "{given:?}"
            );
        }
    }
}
