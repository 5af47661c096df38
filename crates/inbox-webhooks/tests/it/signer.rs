//! The signer against the Standard Webhooks test vector and the official Rust verifier.

use secrecy::{ExposeSecret, SecretString};
use standardwebhooks::Webhook;

use inbox_webhooks::{generate_secret, sign};

use crate::support::signed_headers;

const VECTOR_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const VECTOR_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const VECTOR_TIMESTAMP: i64 = 1_649_367_553;
const VECTOR_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;

#[test]
fn signs_the_standard_webhooks_test_vector() {
    let header = sign(
        &[SecretString::from(VECTOR_SECRET)],
        VECTOR_ID,
        VECTOR_TIMESTAMP,
        VECTOR_BODY.as_bytes(),
    )
    .unwrap();
    assert_eq!(header, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
}

#[test]
fn rotation_signs_once_per_secret_current_first() {
    let current = generate_secret();
    let previous = SecretString::from(VECTOR_SECRET);
    let header = sign(
        &[current.clone(), previous],
        VECTOR_ID,
        VECTOR_TIMESTAMP,
        VECTOR_BODY.as_bytes(),
    )
    .unwrap();
    let signatures: Vec<&str> = header.split(' ').collect();
    assert_eq!(signatures.len(), 2);
    assert_eq!(
        signatures[1],
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
    let only_current = sign(
        &[current],
        VECTOR_ID,
        VECTOR_TIMESTAMP,
        VECTOR_BODY.as_bytes(),
    )
    .unwrap();
    assert_eq!(signatures[0], only_current);
}

#[test]
fn the_official_rust_verifier_accepts_every_secret_of_a_rotation() {
    let current = generate_secret();
    let previous = generate_secret();
    let stranger = generate_secret();
    let body = r#"{"id":"evt_1","event":"message.received","data":{"text":"héllo 👋 мир"}}"#;
    let (headers, _) = signed_headers(&[current.clone(), previous.clone()], "evt_1", body);

    for secret in [&current, &previous] {
        Webhook::new(secret.expose_secret())
            .unwrap()
            .verify(body.as_bytes(), &headers)
            .expect("a receiver holding either secret verifies");
    }
    assert!(
        Webhook::new(stranger.expose_secret())
            .unwrap()
            .verify(body.as_bytes(), &headers)
            .is_err(),
        "another secret does not verify"
    );
    let tampered = body.replace("мир", "world");
    assert!(
        Webhook::new(current.expose_secret())
            .unwrap()
            .verify(tampered.as_bytes(), &headers)
            .is_err(),
        "a changed body does not verify"
    );
}
