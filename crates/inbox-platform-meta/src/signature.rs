//! `X-Hub-Signature-256`: Meta signs every webhook POST with
//! `sha256=<hex HMAC-SHA256(app secret, raw body)>`
//! (<https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads>).
//!
//! The HMAC runs over the raw bytes as received. Meta computes it over an escaped-unicode
//! form of the JSON (`\u00e4`), which is also what it sends, so hashing the body as received
//! always works while hashing re-serialised JSON breaks on any accent or emoji. Several
//! candidate secrets may be configured (Instagram Login webhooks are reportedly signed with the
//! Instagram app secret, Page-level ones with the Meta app secret: UNCONFIRMED, so both are
//! accepted); each comparison is constant-time and every candidate is tried.

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use inbox_core::{Error, Result};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

fn mac(secret: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC-SHA256 takes keys of any length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The header value Meta would send for `body` signed with `secret`: `sha256=<64 hex>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let digest = mac(secret.as_bytes(), body);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// Checks the `X-Hub-Signature-256` header of a POST against every configured candidate
/// secret and returns the label of the one that matched.
///
/// # Errors
/// `WebhookVerification` when no secret is configured, the header is missing or malformed, or
/// no candidate matches.
pub fn verify_signature<'a>(
    headers: &HeaderMap,
    body: &[u8],
    candidates: &[(&'a str, &SecretString)],
) -> Result<&'a str> {
    let fail = |message: String| Err(Error::WebhookVerification { message });
    if candidates.is_empty() {
        return fail(
            "no app secret is configured, so no Meta webhook can be verified (set INBOX_META_APP_SECRET)"
                .to_owned(),
        );
    }
    let Some(header) = headers.get(SIGNATURE_HEADER) else {
        return fail("the X-Hub-Signature-256 header is missing".to_owned());
    };
    let Some(given) = header
        .to_str()
        .ok()
        .map(str::trim)
        .and_then(|value| value.strip_prefix("sha256="))
        .and_then(decode_hex)
    else {
        return fail("the X-Hub-Signature-256 header is not `sha256=<64 hex digits>`".to_owned());
    };
    let mut matched = None;
    // Every candidate is computed and compared, so the time taken does not say which matched.
    for (label, secret) in candidates {
        let expected = mac(secret.expose_secret().as_bytes(), body);
        if bool::from(expected.ct_eq(&given)) && matched.is_none() {
            matched = Some(*label);
        }
    }
    matched.map_or_else(
        || fail("the X-Hub-Signature-256 signature does not match the body".to_owned()),
        Ok,
    )
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    /// A real Meta-signed WhatsApp delivery from pywa's test suite (the app secret has since
    /// been reset); `shared/reference/platforms-meta.md` §0.2.
    const VECTOR_SECRET: &str = "1222e786b144d0e85b9f365372d93676";
    const VECTOR_BODY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"264937493375603","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550953877","phone_number_id":"277321005464405"},"contacts":[{"profile":{"name":"PyWa Tests"},"wa_id":"972544401243"}],"messages":[{"from":"972544401243","id":"wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA","timestamp":"1730231903","text":{"body":"Hey there! I am using PyWa."},"type":"text"}]},"field":"messages"}]}]}"#;
    const VECTOR_SIGNATURE: &str =
        "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441";

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_meta_signed_vector_verifies() {
        assert_eq!(
            sign(VECTOR_SECRET, VECTOR_BODY.as_bytes()),
            VECTOR_SIGNATURE
        );
        let secret = SecretString::from(VECTOR_SECRET);
        let matched = verify_signature(
            &headers(Some(VECTOR_SIGNATURE)),
            VECTOR_BODY.as_bytes(),
            &[("meta", &secret)],
        );
        assert_eq!(matched.unwrap(), "meta");
        // Upper-case hex is the same digest.
        let upper = format!("sha256={}", VECTOR_SIGNATURE[7..].to_ascii_uppercase());
        assert!(
            verify_signature(
                &headers(Some(&upper)),
                VECTOR_BODY.as_bytes(),
                &[("m", &secret)]
            )
            .is_ok()
        );
    }

    #[test]
    fn any_candidate_may_match_and_reports_which() {
        let wrong = SecretString::from("not-the-secret");
        let right = SecretString::from(VECTOR_SECRET);
        let matched = verify_signature(
            &headers(Some(VECTOR_SIGNATURE)),
            VECTOR_BODY.as_bytes(),
            &[("instagram", &wrong), ("meta", &right)],
        );
        assert_eq!(matched.unwrap(), "meta");
    }

    #[test]
    fn forgeries_fail() {
        let secret = SecretString::from(VECTOR_SECRET);
        let body = VECTOR_BODY.as_bytes();
        let reserialised =
            serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(body).unwrap())
                .unwrap();
        let cases: Vec<(HeaderMap, &[u8])> = vec![
            (headers(None), body),
            (headers(Some("")), body),
            (headers(Some(&VECTOR_SIGNATURE[7..])), body),
            (
                headers(Some("sha1=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12")),
                body,
            ),
            (headers(Some("sha256=zz")), body),
            (headers(Some(VECTOR_SIGNATURE)), b"{}"),
            (headers(Some(VECTOR_SIGNATURE)), &body[..body.len() - 1]),
        ];
        for (headers, body) in cases {
            assert!(matches!(
                verify_signature(&headers, body, &[("meta", &secret)]),
                Err(Error::WebhookVerification { .. })
            ));
        }
        let other = SecretString::from("another app");
        assert!(
            verify_signature(&headers(Some(VECTOR_SIGNATURE)), body, &[("x", &other)]).is_err()
        );
        assert!(verify_signature(&headers(Some(VECTOR_SIGNATURE)), body, &[]).is_err());
        // Signing is over raw bytes: a body with non-ASCII characters as Meta escapes them
        // does not verify once re-serialised with the characters unescaped.
        let escaped = br#"{"text":"gr\u00fc\u00dfe"}"#;
        let signature = sign("k", escaped);
        let k = SecretString::from("k");
        assert!(verify_signature(&headers(Some(&signature)), escaped, &[("k", &k)]).is_ok());
        let unescaped = "{\"text\":\"grüße\"}".as_bytes();
        assert!(verify_signature(&headers(Some(&signature)), unescaped, &[("k", &k)]).is_err());
        let _ = reserialised;
    }
}
