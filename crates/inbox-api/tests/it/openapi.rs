//! The OpenAPI document: the committed `openapi/openapi.json` must equal what the code
//! generates, and every documented operation must be routed, named after its handler, and
//! declare its auth.

use std::path::PathBuf;

use axum::http::Method;
use utoipa::openapi::path::Operation;

use crate::common::TestApp;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json")
}

#[test]
fn openapi_document_matches_the_committed_file() {
    let generated = inbox_api::openapi_json();
    let path = committed_path();
    if std::env::var("INBOX_UPDATE_OPENAPI").is_ok_and(|value| value == "1") {
        std::fs::write(&path, &generated).expect("openapi/openapi.json is writable");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json differs from the generated document. Regenerate it with \
         `INBOX_UPDATE_OPENAPI=1 cargo test -p inbox-api openapi` (or `inboxgw openapi > \
         openapi/openapi.json`) and review the diff."
    );
}

fn operations() -> Vec<(String, Method, Operation)> {
    let document = inbox_api::openapi();
    let mut out = Vec::new();
    for (path, item) in document.paths.paths {
        let methods = [
            (Method::GET, item.get),
            (Method::POST, item.post),
            (Method::PUT, item.put),
            (Method::PATCH, item.patch),
            (Method::DELETE, item.delete),
        ];
        for (method, operation) in methods {
            if let Some(operation) = operation {
                out.push((path.clone(), method, operation));
            }
        }
    }
    out
}

#[test]
fn operations_are_named_after_handlers_and_declare_auth() {
    let operations = operations();
    assert!(operations.len() >= 29, "{} operations", operations.len());
    let mut ids = Vec::new();
    for (path, method, operation) in &operations {
        let id = operation
            .operation_id
            .clone()
            .expect("every operation has an id");
        assert!(
            id.chars().all(|c| c.is_ascii_lowercase() || c == '_') && id.contains('_'),
            "{method} {path}: operation id `{id}` is not <verb>_<resource>"
        );
        assert!(
            operation.description.is_some() || operation.summary.is_some(),
            "{id} is undocumented"
        );
        let needs_key = path.starts_with("/api/v1/") && !path.starts_with("/api/v1/oauth/");
        assert_eq!(
            operation.security.is_some(),
            needs_key,
            "{id}: security declared wrongly"
        );
        if needs_key {
            assert!(
                operation.responses.responses.contains_key("401"),
                "{id} documents no 401"
            );
        }
        ids.push(id);
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique");
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::new().await;
    for (path, method, operation) in operations() {
        let concrete = path
            .replace("{accountId}", "acc_01jd3k5n8q2w4e6r8t0y2u4i6o")
            .replace("{conversationId}", "conv_01jd3k5n8q2w4e6r8t0y2u4i6o")
            .replace("{messageId}", "msg_01jd3k5n8q2w4e6r8t0y2u4i6o")
            .replace("{webhookId}", "whk_01jd3k5n8q2w4e6r8t0y2u4i6o")
            .replace("{deliveryId}", "dlv_01jd3k5n8q2w4e6r8t0y2u4i6o")
            .replace("{platform}", "telegram")
            .replace("{index}", "0");
        assert!(!concrete.contains('{'), "unhandled parameter in {path}");
        let id = operation.operation_id.unwrap_or_default();
        let response = app.call(method.clone(), &concrete, None, None, &[]).await;
        let needs_key = path.starts_with("/api/v1/") && !path.starts_with("/api/v1/oauth/");
        if needs_key {
            assert_eq!(
                response.status.as_u16(),
                401,
                "{id}: {method} {concrete} is not routed behind the key"
            );
        } else {
            assert!(
                ![404, 405].contains(&response.status.as_u16()),
                "{id}: {method} {concrete} is not routed ({})",
                response.status
            );
        }
    }
}
