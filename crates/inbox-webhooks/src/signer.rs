//! Standard Webhooks signing: endpoint secrets (`whsec_…`) and the `webhook-signature` header.
//!
//! The signed content is `"{webhook-id}.{webhook-timestamp}.{body}"`, exactly the bytes sent;
//! the signature is `v1,` followed by the standard base64 of its HMAC-SHA256 under the secret's
//! decoded key. During a rotation an endpoint has two valid secrets, and the header carries one
//! signature per secret, space-separated, so a receiver holding either one verifies the
//! delivery (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The prefix of every endpoint secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a generated secret. Standard Webhooks asks for 24 to 64; 32 matches the
/// HMAC-SHA256 block of security.
const SECRET_BYTES: usize = 32;

/// A secret that cannot sign: not base64 after `whsec_`, or empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "webhook secret #{index} is not a valid `whsec_` secret (expected `whsec_` followed by standard base64)"
)]
pub struct InvalidSecret {
    /// Its position in the list given to [`sign`] (0 is the current secret). The secret itself
    /// is never part of the error, so the error can be logged.
    pub index: usize,
}

/// A new endpoint secret: `whsec_` followed by the standard base64 of 32 random bytes.
pub fn generate_secret() -> SecretString {
    // `rand::random` draws from the thread-local ChaCha generator seeded by the OS, a CSPRNG.
    let bytes: [u8; SECRET_BYTES] = rand::random();
    SecretString::from(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The HMAC key of a secret: the base64 part after `whsec_` decoded. A secret without the prefix
/// is accepted as bare base64, as the reference libraries do.
fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD.decode(encoded).ok().filter(|key| !key.is_empty())
}

/// The `webhook-signature` header value for one attempt: `v1,<base64>` per secret, joined by
/// spaces, current secret first.
///
/// `event_id` and `timestamp_secs` must be the `webhook-id` and `webhook-timestamp` sent with
/// the same request, and `body` the exact bytes sent.
///
/// # Errors
/// [`InvalidSecret`] when a secret is not `whsec_` + base64; nothing is signed then, because a
/// header missing the current secret's signature would fail for receivers silently.
pub fn sign(
    secrets: &[SecretString],
    event_id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> Result<String, InvalidSecret> {
    let prefix = format!("{event_id}.{timestamp_secs}.");
    let mut header = String::new();
    for (index, secret) in secrets.iter().enumerate() {
        let key = secret_key(secret.expose_secret()).ok_or(InvalidSecret { index })?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
            .expect("HMAC accepts keys of any length");
        mac.update(prefix.as_bytes());
        mac.update(body);
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str("v1,");
        header.push_str(&STANDARD.encode(mac.finalize().into_bytes()));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_prefixed_base64_of_32_bytes_and_differ() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a.expose_secret(), b.expose_secret());
        let key = secret_key(a.expose_secret()).expect("generated secret decodes");
        assert_eq!(key.len(), SECRET_BYTES);
        assert!(a.expose_secret().starts_with(SECRET_PREFIX));
    }

    #[test]
    fn invalid_secrets_are_reported_by_position() {
        let good = generate_secret();
        let bad = SecretString::from("whsec_not base64!");
        let err = sign(&[good, bad], "evt_1", 1, b"{}").unwrap_err();
        assert_eq!(err, InvalidSecret { index: 1 });
        assert!(
            !err.to_string().contains("not base64!"),
            "the secret never appears in errors"
        );
        assert_eq!(
            sign(&[SecretString::from("whsec_")], "evt_1", 1, b"{}")
                .unwrap_err()
                .index,
            0
        );
    }
}
