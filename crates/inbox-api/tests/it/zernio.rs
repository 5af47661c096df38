//! Drop-in compatibility with Zernio SDK requests: PUT as PATCH, the status filter, flat
//! attachment and participant fields, extra fields ignored, `error`/`param` in problems.

use axum::http::Method;
use serde_json::json;

use crate::common::{TestApp, hours_ago};

#[tokio::test]
async fn put_does_what_patch_does() {
    let app = TestApp::new().await;
    let account = app.connect("telegram", "t").await;
    let id = app.receive(&account, "c", "hi", hours_ago(1)).await;
    let path = format!("/api/v1/inbox/conversations/{id}");
    let archived = app
        .put(&path, json!({"status": "archived", "accountId": account}))
        .await;
    assert_eq!(archived.ok(200)["status"], "archived");
    let listed = app
        .get("/api/v1/inbox/conversations?status=archived&profileId=p1&folder=inbox")
        .await;
    assert_eq!(listed.ok(200)["data"][0]["id"], id.as_str());
    app.put(&path, json!({"status": "gone"}))
        .await
        .invalid("status");
}

#[tokio::test]
async fn the_flat_attachment_fields_make_one_attachment() {
    let app = TestApp::new().await;
    let account = app.connect("telegram", "t").await;
    let id = app.receive(&account, "c", "hi", hours_ago(1)).await;
    let path = format!("/api/v1/inbox/conversations/{id}/messages");
    let sent = app
        .post(
            &path,
            json!({
                "accountId": account,
                "message": "see attached",
                "attachmentUrl": "https://example.com/pic.png",
                "attachmentType": "image",
                "attachmentName": "pic.png",
                "linkPreview": false,
                "profileId": "p1",
                "quickReplies": []
            }),
        )
        .await;
    assert_eq!(
        sent.ok(201)["attachments"],
        json!([{"type": "image", "url": "https://example.com/pic.png", "name": "pic.png"}])
    );
    let recorded = &app.telegram.sends()[0].message;
    assert_eq!(recorded.attachments.len(), 1);

    let defaulted = app
        .post(
            &path,
            json!({"attachmentUrl": "https://example.com/doc.pdf"}),
        )
        .await;
    assert_eq!(defaulted.ok(201)["attachments"][0]["type"], "file");

    app.post(&path, json!({"attachmentType": "image"}))
        .await
        .invalid("attachmentUrl");
    app.post(
        &path,
        json!({"attachmentUrl": "https://e.com/x", "attachmentType": "gif"}),
    )
    .await
    .invalid("attachmentType");
    app.post(&path, json!({"attachmentUrl": "not a url"}))
        .await
        .invalid("attachmentUrl");
}

#[tokio::test]
async fn start_accepts_participant_id_and_username() {
    let app = TestApp::new().await;
    let x = app.connect("x", "x1").await;
    let by_id = app
        .post("/api/v1/inbox/conversations", json!({"accountId": x, "participantId": "783214", "message": "hi", "skipDmCheck": true}))
        .await;
    by_id.ok(201);
    let by_name = app
        .post(
            "/api/v1/inbox/conversations",
            json!({"accountId": x, "participantUsername": "@jack", "message": "hi"}),
        )
        .await;
    by_name.ok(201);
    let starts = app.x.starts();
    assert_eq!(starts[0].participant, "783214");
    assert_eq!(starts[1].participant, "@jack");
}

#[tokio::test]
async fn problems_carry_error_and_param_and_the_request_id() {
    let app = TestApp::new().await;
    let response = app
        .call(
            Method::GET,
            "/api/v1/inbox/conversations?status=closed",
            Some(&app.key),
            None,
            &[("x-request-id", "sdk-req-1")],
        )
        .await;
    let problem = response.invalid("status");
    assert_eq!(problem["error"], problem["detail"]);
    assert_eq!(problem["requestId"], "sdk-req-1");
    assert_eq!(response.header("x-request-id"), Some("sdk-req-1"));
}
