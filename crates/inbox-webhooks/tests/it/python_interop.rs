//! Interoperability with the official `standardwebhooks` Python package: payloads signed here
//! are verified by `tests/python/standardwebhooks_verify.py`, and a tampered one is rejected.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use inbox_testkit::requirements::{missing, python, workspace_root};
use inbox_webhooks::generate_secret;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::support::signed_headers;

fn case(
    name: &str,
    signing: &[SecretString],
    verifying: &SecretString,
    body: &str,
    expect: &str,
) -> Value {
    let (headers, _) = signed_headers(signing, "evt_01jd3k5n8q2w4e6r8t0y2u4i6o", body);
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap())))
        .collect();
    json!({
        "name": name,
        "secret": verifying.expose_secret(),
        "headers": headers,
        "body": body,
        "expect": expect,
    })
}

#[test]
fn the_official_python_library_verifies_our_signatures() {
    let Some(python) = python() else { return };
    let current = generate_secret();
    let previous = generate_secret();
    let ascii =
        r#"{"id":"evt_1","event":"message.received","data":{"text":"Hi, I have a question"}}"#;
    let unicode = json!({"id": "evt_2", "event": "message.received",
        "data": {"text": "héllo 👋 мир — 你好 \"quoted\"\nnew line", "sender": {"name": "Zoë"}}})
    .to_string();
    let escaped = r#"{"text":"\u00e9\u2603 and raw é☃"}"#;
    let rotation = [current.clone(), previous.clone()];
    // Signed over one body, sent with another: the verifier must refuse it.
    let mut tampered = case(
        "tampered body",
        std::slice::from_ref(&current),
        &current,
        &unicode,
        "invalid",
    );
    tampered["body"] = json!(unicode.replace("мир", "mir"));
    let cases = json!({"cases": [
        case("ascii", std::slice::from_ref(&current), &current, ascii, "valid"),
        case("unicode", std::slice::from_ref(&current), &current, &unicode, "valid"),
        case("escaped and raw unicode", std::slice::from_ref(&current), &current, escaped, "valid"),
        case("rotation, receiver on the current secret", &rotation, &current, &unicode, "valid"),
        case("rotation, receiver on the previous secret", &rotation, &previous, &unicode, "valid"),
        tampered,
        case("wrong secret", std::slice::from_ref(&current), &generate_secret(), ascii, "invalid"),
    ]});

    let script = workspace_root().join("tests/python/standardwebhooks_verify.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("running {}: {err}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(3) {
        missing("the `standardwebhooks` Python package", &stderr);
        return;
    }
    assert!(
        output.status.success(),
        "standardwebhooks rejected our signatures:\n{stdout}{stderr}"
    );
    assert!(stdout.contains("7 case(s) behaved as expected"), "{stdout}");
}
