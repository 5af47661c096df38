//! `/api/v1/inbox/conversations`: listing with filters and cursors, reading with the
//! messaging-window expiry, archiving, marking read, and starting conversations.

use inbox_core::Timestamp;
use inbox_testkit::memory_platform::{Failure, Operation};
use serde_json::{Value, json};

use crate::common::{TestApp, hours_ago};

fn ids(response: &Value) -> Vec<String> {
    response["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_is_newest_activity_first_with_filters_and_cursor() {
    let app = TestApp::new().await;
    let telegram = app.connect("telegram", "t").await;
    let instagram = app.connect("instagram", "i").await;
    let old = app.receive(&telegram, "c1", "old", hours_ago(3)).await;
    let newest = app.receive(&instagram, "c2", "newest", hours_ago(1)).await;
    let middle = app.receive(&telegram, "c3", "middle", hours_ago(2)).await;

    let all = app.get("/api/v1/inbox/conversations").await;
    assert_eq!(
        ids(all.ok(200)),
        vec![newest.clone(), middle.clone(), old.clone()]
    );
    let first = &all.json["data"][0];
    assert_eq!(first["lastMessage"], "newest");
    assert_eq!(first["unreadCount"], 1);
    assert_eq!(first["participant"]["id"], "user-c2");
    assert_eq!(first["status"], "active");

    let by_platform = app
        .get("/api/v1/inbox/conversations?platform=telegram")
        .await;
    assert_eq!(ids(by_platform.ok(200)), vec![middle.clone(), old.clone()]);
    let by_account = app
        .get(&format!(
            "/api/v1/inbox/conversations?accountId={instagram}"
        ))
        .await;
    assert_eq!(ids(by_account.ok(200)), vec![newest.clone()]);

    let page1 = app.get("/api/v1/inbox/conversations?limit=2").await;
    assert_eq!(ids(page1.ok(200)), vec![newest, middle]);
    let cursor = page1.json["nextCursor"].as_str().unwrap().to_owned();
    let page2 = app
        .get(&format!(
            "/api/v1/inbox/conversations?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(ids(page2.ok(200)), vec![old]);
    assert_eq!(page2.json["nextCursor"], Value::Null);
}

#[tokio::test]
async fn a_malformed_account_filter_is_400_on_account_id() {
    let app = TestApp::new().await;
    app.get("/api/v1/inbox/conversations?accountId=acc_bad")
        .await
        .invalid("accountId");
    app.get("/api/v1/inbox/conversations?platform=myspace")
        .await
        .invalid("platform");
    app.get("/api/v1/inbox/conversations?status=closed")
        .await
        .invalid("status");
}

#[tokio::test]
async fn window_expiry_is_24_hours_after_the_last_inbound_message_where_there_is_a_window() {
    let app = TestApp::new().await;
    let instagram = app.connect("instagram", "i").await;
    let telegram = app.connect("telegram", "t").await;
    let at = Timestamp::from_unix_millis(hours_ago(2).unix_millis() / 1000 * 1000);
    let meta = app.receive(&instagram, "c1", "hi", at).await;
    let tg = app.receive(&telegram, "c2", "hi", at).await;

    let response = app
        .get(&format!("/api/v1/inbox/conversations/{meta}"))
        .await;
    let conversation = response.ok(200);
    assert_eq!(conversation["lastInboundAt"], json!(at));
    let expected = at + std::time::Duration::from_secs(24 * 3600);
    assert_eq!(conversation["windowExpiresAt"], json!(expected));

    let response = app.get(&format!("/api/v1/inbox/conversations/{tg}")).await;
    assert_eq!(response.ok(200)["windowExpiresAt"], Value::Null);

    let listed = app
        .get("/api/v1/inbox/conversations?platform=instagram")
        .await;
    assert_eq!(
        listed.ok(200)["data"][0]["windowExpiresAt"],
        json!(expected)
    );
}

#[tokio::test]
async fn unknown_and_malformed_conversation_ids_are_404() {
    let app = TestApp::new().await;
    app.get("/api/v1/inbox/conversations/conv_01jd3k5n8q2w4e6r8t0y2u4i6o")
        .await
        .problem(404, "not_found");
    app.get("/api/v1/inbox/conversations/garbage")
        .await
        .problem(404, "not_found");
    app.patch(
        "/api/v1/inbox/conversations/garbage",
        json!({"status": "archived"}),
    )
    .await
    .problem(404, "not_found");
    app.post_empty("/api/v1/inbox/conversations/garbage/read")
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn patch_archives_and_the_status_filter_follows() {
    let app = TestApp::new().await;
    let account = app.connect("telegram", "t").await;
    let a = app.receive(&account, "a", "hi", hours_ago(2)).await;
    let b = app.receive(&account, "b", "hi", hours_ago(1)).await;

    let archived = app
        .patch(
            &format!("/api/v1/inbox/conversations/{a}"),
            json!({"status": "archived"}),
        )
        .await;
    assert_eq!(archived.ok(200)["status"], "archived");
    let active = app.get("/api/v1/inbox/conversations?status=active").await;
    assert_eq!(ids(active.ok(200)), vec![b.clone()]);
    let archived = app.get("/api/v1/inbox/conversations?status=archived").await;
    assert_eq!(ids(archived.ok(200)), vec![a.clone()]);

    let back = app
        .patch(
            &format!("/api/v1/inbox/conversations/{a}"),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(back.ok(200)["status"], "active");
}

#[tokio::test]
async fn a_bad_status_is_400_on_status_and_changes_nothing() {
    let app = TestApp::new().await;
    let account = app.connect("telegram", "t").await;
    let id = app.receive(&account, "a", "hi", hours_ago(1)).await;
    let before = app.snapshot().await;
    let path = format!("/api/v1/inbox/conversations/{id}");
    let unknown = app.patch(&path, json!({"status": "closed"})).await;
    assert!(
        unknown.invalid("status")["detail"]
            .as_str()
            .unwrap()
            .contains("closed")
    );
    app.patch(&path, json!({"status": true}))
        .await
        .invalid("status");
    app.patch(&path, json!({})).await.invalid("status");
    app.patch(&path, json!({"state": "archived"}))
        .await
        .invalid("status");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn mark_read_zeroes_unread_and_calls_the_platform_where_it_can() {
    let app = TestApp::new().await;
    let instagram = app.connect("instagram", "i").await;
    let telegram = app.connect("telegram", "t").await;
    let meta = app.receive(&instagram, "c1", "hi", hours_ago(1)).await;
    app.receive(&instagram, "c1", "again", Timestamp::now())
        .await;
    let tg = app.receive(&telegram, "c2", "hi", hours_ago(1)).await;

    let before = app
        .get(&format!("/api/v1/inbox/conversations/{meta}"))
        .await;
    assert_eq!(before.ok(200)["unreadCount"], 2);
    let read = app
        .post_empty(&format!("/api/v1/inbox/conversations/{meta}/read"))
        .await;
    assert_eq!(read.ok(200)["unreadCount"], 0);
    let marks = app.instagram.mark_reads();
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0].platform_conversation_id, "c1");
    assert_eq!(marks[0].participant_id, "user-c1");

    let read = app
        .post_empty(&format!("/api/v1/inbox/conversations/{tg}/read"))
        .await;
    assert_eq!(read.ok(200)["unreadCount"], 0);
    assert!(
        app.telegram.mark_reads().is_empty(),
        "Telegram has no read call"
    );
}

#[tokio::test]
async fn a_platform_failure_while_marking_read_is_logged_not_fatal() {
    let app = TestApp::new().await;
    let instagram = app.connect("instagram", "i").await;
    let id = app.receive(&instagram, "c1", "hi", hours_ago(1)).await;
    app.instagram.fail_next(
        Operation::MarkRead,
        Failure::platform("100", "Invalid parameter"),
    );
    let read = app
        .post_empty(&format!("/api/v1/inbox/conversations/{id}/read"))
        .await;
    assert_eq!(read.ok(200)["unreadCount"], 0);

    app.receive(&instagram, "c1", "more", Timestamp::now())
        .await;
    app.instagram.fail_next(
        Operation::MarkRead,
        Failure::ReauthRequired("token expired".into()),
    );
    app.post_empty(&format!("/api/v1/inbox/conversations/{id}/read"))
        .await
        .ok(200);
    let account = app.get(&format!("/api/v1/accounts/{instagram}")).await;
    assert_eq!(account.ok(200)["status"], "reauth_required");
}

#[tokio::test]
async fn starting_a_conversation_sends_and_answers_201_with_both() {
    let app = TestApp::new().await;
    let x = app.connect("x", "x1").await;
    let response = app
        .post(
            "/api/v1/inbox/conversations",
            json!({"accountId": x, "participant": "@jack", "message": "Hello from support"}),
        )
        .await;
    let body = response.ok(201);
    let conversation = &body["conversation"];
    let message = &body["message"];
    assert!(conversation["id"].as_str().unwrap().starts_with("conv_"));
    assert_eq!(conversation["accountId"], x.as_str());
    assert_eq!(conversation["platformConversationId"], "dm-jack");
    assert_eq!(conversation["participant"]["username"], "jack");
    assert_eq!(message["conversationId"], conversation["id"]);
    assert_eq!(message["direction"], "outgoing");
    assert_eq!(message["text"], "Hello from support");
    assert_eq!(message["deliveryStatus"], "sent");
    let starts = app.x.starts();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].participant, "@jack");
    assert_eq!(starts[0].message.text, "Hello from support");

    let listed = app.get("/api/v1/inbox/conversations").await;
    assert_eq!(listed.ok(200)["data"][0]["id"], conversation["id"]);
    let events = app.events().await;
    assert!(
        events.contains(&inbox_core::EventType::ConversationStarted),
        "{events:?}"
    );
    assert!(
        events.contains(&inbox_core::EventType::MessageSent),
        "{events:?}"
    );
}

#[tokio::test]
async fn starting_where_the_platform_does_not_allow_it_is_422() {
    let app = TestApp::new().await;
    let telegram = app.connect("telegram", "t").await;
    let before = app.snapshot().await;
    let response = app
        .post(
            "/api/v1/inbox/conversations",
            json!({"accountId": telegram, "participant": "123", "message": "hi"}),
        )
        .await;
    response.problem(422, "not_supported_by_platform");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn whatsapp_needs_a_template_to_write_first() {
    let app = TestApp::new().await;
    let whatsapp = app.connect("whatsapp", "w").await;
    let before = app.snapshot().await;
    let free_form = app
        .post(
            "/api/v1/inbox/conversations",
            json!({"accountId": whatsapp, "participantId": "15551234567", "message": "hi"}),
        )
        .await;
    let problem = free_form.problem(422, "messaging_window_closed");
    assert!(
        problem["detail"].as_str().unwrap().contains("template"),
        "{problem}"
    );
    assert_eq!(app.snapshot().await, before);
    assert!(app.whatsapp.starts().is_empty());

    let templated = app
        .post(
            "/api/v1/inbox/conversations",
            json!({
                "accountId": whatsapp,
                "participantId": "15551234567",
                "templateName": "order_update",
                "templateParams": ["Ada", "#42"]
            }),
        )
        .await;
    templated.ok(201);
    let starts = app.whatsapp.starts();
    assert_eq!(starts[0].participant, "15551234567");
    let template = starts[0]
        .message
        .template
        .clone()
        .expect("a template was sent");
    assert_eq!(template.name, "order_update");
    assert_eq!(template.language, "en_US");
    assert_eq!(
        template.components,
        vec![json!({"type": "body", "parameters": [
            {"type": "text", "text": "Ada"}, {"type": "text", "text": "#42"}
        ]})]
    );
}

#[tokio::test]
async fn starting_checks_account_participant_and_content() {
    let app = TestApp::new().await;
    let x = app.connect("x", "x1").await;
    let before = app.snapshot().await;
    let path = "/api/v1/inbox/conversations";
    app.post(path, json!({"accountId": x, "message": "hi"}))
        .await
        .invalid("participant");
    app.post(path, json!({"accountId": x, "participant": "jack"}))
        .await
        .invalid("message");
    app.post(path, json!({"participant": "jack", "message": "hi"}))
        .await
        .invalid("accountId");
    app.post(
        path,
        json!({"accountId": "acc_bad", "participant": "jack", "message": "hi"}),
    )
    .await
    .problem(404, "not_found");
    let template = json!({"name": "hello", "language": "en_US"});
    app.post(
        path,
        json!({"accountId": x, "participant": "jack", "template": template}),
    )
    .await
    .problem(422, "unsupported_content");
    assert_eq!(app.snapshot().await, before);
    assert!(app.x.starts().is_empty());
}
