//! Sending: the happy path, every pre-send check in its order (the platform is never called
//! and nothing is written when one fails), messaging windows, platform failures, reauth
//! marking and `Idempotency-Key`.

use axum::http::Method;
use inbox_core::{AttachmentKind, EventType};
use inbox_testkit::memory_platform::{Failure, Operation};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{SHORT_DEADLINE, TestApp, hours_ago, read};

struct Thread {
    account: String,
    conversation: String,
    path: String,
}

async fn thread(app: &TestApp, platform: &str, last_inbound_hours_ago: u64) -> Thread {
    let account = app.connect(platform, &format!("{platform}-token")).await;
    let conversation = app
        .receive(
            &account,
            "chat-1",
            "hello?",
            hours_ago(last_inbound_hours_ago),
        )
        .await;
    let path = format!("/api/v1/inbox/conversations/{conversation}/messages");
    Thread {
        account,
        conversation,
        path,
    }
}

#[tokio::test]
async fn a_reply_is_sent_recorded_and_emitted() {
    let app = TestApp::new().await;
    let t = thread(&app, "telegram", 1).await;
    let response = app
        .post(
            &t.path,
            json!({"message": "Hey! How can I help you today?"}),
        )
        .await;
    let message = response.ok(201);
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["conversationId"], t.conversation.as_str());
    assert_eq!(message["accountId"], t.account.as_str());
    assert_eq!(message["direction"], "outgoing");
    assert_eq!(message["deliveryStatus"], "sent");
    assert_eq!(message["platformMessageId"], "mem-1");
    assert_eq!(message["text"], "Hey! How can I help you today?");
    assert_eq!(message["sender"]["id"], "telegram-telegram-token");

    let sends = app.telegram.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].target.platform_conversation_id, "chat-1");
    assert_eq!(sends[0].target.participant_id, "user-chat-1");
    assert_eq!(sends[0].message.text, "Hey! How can I help you today?");

    let conversation = app
        .get(&format!("/api/v1/inbox/conversations/{}", t.conversation))
        .await;
    assert_eq!(
        conversation.ok(200)["lastMessage"],
        "Hey! How can I help you today?"
    );
    let listed = app.get(&t.path).await;
    assert_eq!(listed.ok(200)["data"][0]["id"], message["id"]);
    assert_eq!(app.events().await.last(), Some(&EventType::MessageSent));
}

#[tokio::test]
async fn attachments_are_sent_with_their_caption() {
    let app = TestApp::new().await;
    let t = thread(&app, "telegram", 1).await;
    let body = json!({
        "message": "the invoice",
        "attachments": [{"type": "file", "url": "https://example.com/invoice.pdf", "name": "invoice.pdf"}]
    });
    let message = app.post(&t.path, body).await;
    assert_eq!(
        message.ok(201)["attachments"],
        json!([{"type": "file", "url": "https://example.com/invoice.pdf", "name": "invoice.pdf"}])
    );
    let sent = &app.telegram.sends()[0].message;
    assert_eq!(sent.attachments[0].kind, AttachmentKind::File);
    assert_eq!(sent.text, "the invoice");
}

/// One refused send: what it looks like and what it must answer.
struct Refusal {
    name: &'static str,
    body: Value,
    status: u16,
    code: &'static str,
    param: Option<&'static str>,
}

#[tokio::test]
async fn each_check_refuses_without_calling_the_platform_or_writing() {
    let app = TestApp::new().await;
    let tg = thread(&app, "telegram", 1).await;
    let ig = thread(&app, "instagram", 1).await;
    let long = "x".repeat(4097);
    let caption = "x".repeat(1025);
    let image = |n: usize| {
        json!(
            (0..n)
                .map(|i| json!({"type": "image", "url": format!("https://e.com/{i}.png")}))
                .collect::<Vec<_>>()
        )
    };
    let cases = vec![
        Refusal {
            name: "empty",
            body: json!({"message": "  "}),
            status: 400,
            code: "invalid_request",
            param: Some("message"),
        },
        Refusal {
            name: "no content at all",
            body: json!({}),
            status: 400,
            code: "invalid_request",
            param: Some("message"),
        },
        Refusal {
            name: "bad attachment url",
            body: json!({"attachments": [{"type": "image", "url": "tg-file:x"}]}),
            status: 400,
            code: "invalid_request",
            param: Some("attachments[0].url"),
        },
        Refusal {
            name: "unknown attachment type",
            body: json!({"attachments": [{"type": "gif", "url": "https://e.com/a.gif"}]}),
            status: 400,
            code: "invalid_request",
            param: Some("attachments[0].type"),
        },
        Refusal {
            name: "too many attachments",
            body: json!({"attachments": image(2)}),
            status: 422,
            code: "unsupported_content",
            param: None,
        },
        Refusal {
            name: "text too long",
            body: json!({"message": long}),
            status: 422,
            code: "message_too_long",
            param: None,
        },
        Refusal {
            name: "caption too long",
            body: json!({"message": caption, "attachments": image(1)}),
            status: 422,
            code: "message_too_long",
            param: None,
        },
        Refusal {
            name: "message tag on telegram",
            body: json!({"message": "hi", "messageTag": "HUMAN_AGENT"}),
            status: 422,
            code: "unsupported_content",
            param: None,
        },
        Refusal {
            name: "template on telegram",
            body: json!({"template": {"name": "t", "language": "en"}}),
            status: 422,
            code: "unsupported_content",
            param: None,
        },
        Refusal {
            name: "reply to an unknown message",
            body: json!({"message": "hi", "replyTo": "msg_01jd3k5n8q2w4e6r8t0y2u4i6o"}),
            status: 400,
            code: "invalid_request",
            param: Some("replyTo"),
        },
        Refusal {
            name: "reply to garbage",
            body: json!({"message": "hi", "replyTo": "nope"}),
            status: 400,
            code: "invalid_request",
            param: Some("replyTo"),
        },
        Refusal {
            name: "another account",
            body: json!({"message": "hi", "accountId": ig.account}),
            status: 400,
            code: "invalid_request",
            param: Some("accountId"),
        },
        Refusal {
            name: "wrong type",
            body: json!({"message": 42}),
            status: 400,
            code: "invalid_request",
            param: Some("message"),
        },
    ];
    let before = app.snapshot().await;
    for case in cases {
        let response = app.post(&tg.path, case.body).await;
        let problem = response.problem(case.status, case.code);
        assert_eq!(
            problem.get("param").and_then(Value::as_str),
            case.param,
            "{}: {}",
            case.name,
            response.text
        );
    }
    assert!(
        app.telegram.sends().is_empty(),
        "no refused send reached the platform"
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "no refused send wrote anything"
    );

    // A reply to a message of another conversation is refused too.
    let other_message = app.get(&ig.path).await.ok(200)["data"][0]["id"].clone();
    app.post(&tg.path, json!({"message": "hi", "replyTo": other_message}))
        .await
        .invalid("replyTo");
    // Instagram takes no stickers.
    let sticker = json!({"attachments": [{"type": "sticker", "url": "https://e.com/s.webp"}]});
    app.post(&ig.path, sticker)
        .await
        .problem(422, "unsupported_content");
    app.post(
        &ig.path,
        json!({"template": {"name": "t", "language": "en"}}),
    )
    .await
    .problem(422, "unsupported_content");
    assert!(app.instagram.sends().is_empty());
}

#[tokio::test]
async fn too_long_names_the_limit_the_unit_and_the_length() {
    let app = TestApp::new().await;
    let t = thread(&app, "telegram", 1).await;
    // 2049 emoji are 4098 UTF-16 code units (Telegram's unit) but only 2049 characters.
    let response = app
        .post(&t.path, json!({"message": "😀".repeat(2049)}))
        .await;
    let detail = response.problem(422, "message_too_long")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("4098"), "{detail}");
    assert!(detail.contains("4096"), "{detail}");
    assert!(detail.contains("UTF-16"), "{detail}");
}

#[tokio::test]
async fn checks_run_in_the_contract_order() {
    let app = TestApp::new().await;
    let t = thread(&app, "instagram", 30).await;
    let other = thread(&app, "telegram", 1).await;
    // Every later check would fail too (empty, closed window); the earliest wins.
    app.post(
        "/api/v1/inbox/conversations/conv_01jd3k5n8q2w4e6r8t0y2u4i6o/messages",
        json!({}),
    )
    .await
    .problem(404, "not_found");
    app.post(&t.path, json!({"accountId": other.account}))
        .await
        .invalid("accountId");
    app.post(&t.path, json!({})).await.invalid("message");
    let sticker = json!({"message": "x".repeat(1001), "attachments": [{"type": "sticker", "url": "https://e.com/s"}]});
    app.post(&t.path, sticker)
        .await
        .problem(422, "unsupported_content");
    app.post(&t.path, json!({"message": "x".repeat(1001)}))
        .await
        .problem(422, "message_too_long");
    app.post(
        &t.path,
        json!({"message": "hi", "template": {"name": "a", "language": "en"}}),
    )
    .await
    .problem(422, "unsupported_content");
    app.post(&t.path, json!({"message": "hi", "replyTo": "nope"}))
        .await
        .problem(422, "messaging_window_closed");
    app.store
        .mark_account_reauth_required(&t.account.parse().unwrap(), "revoked")
        .await
        .unwrap();
    app.post(&t.path, json!({}))
        .await
        .problem(409, "account_reauth_required");
    assert!(app.instagram.sends().is_empty());
}

#[tokio::test]
async fn meta_window_open_closed_and_human_agent() {
    let app = TestApp::new().await;
    let open = thread(&app, "instagram", 23).await;
    app.post(&open.path, json!({"message": "within 24 h"}))
        .await
        .ok(201);

    let account = open.account.clone();
    let closed = app.receive(&account, "chat-2", "old", hours_ago(30)).await;
    let closed_path = format!("/api/v1/inbox/conversations/{closed}/messages");
    let response = app.post(&closed_path, json!({"message": "too late"})).await;
    let detail = response.problem(422, "messaging_window_closed")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("closed at"), "{detail}");
    assert!(
        detail.contains("HUMAN_AGENT"),
        "the detail says what is still allowed: {detail}"
    );
    let tagged = app
        .post(
            &closed_path,
            json!({"message": "agent reply", "messageTag": "HUMAN_AGENT"}),
        )
        .await;
    tagged.ok(201);
    assert_eq!(
        app.instagram
            .sends()
            .last()
            .unwrap()
            .message
            .message_tag
            .as_deref(),
        Some("HUMAN_AGENT")
    );

    let ancient = app
        .receive(&account, "chat-3", "older", hours_ago(8 * 24))
        .await;
    let ancient_path = format!("/api/v1/inbox/conversations/{ancient}/messages");
    app.post(
        &ancient_path,
        json!({"message": "agent", "messageTag": "HUMAN_AGENT"}),
    )
    .await
    .problem(422, "messaging_window_closed");
    assert_eq!(app.instagram.sends().len(), 2);
}

#[tokio::test]
async fn whatsapp_window_allows_templates_outside() {
    let app = TestApp::new().await;
    let t = thread(&app, "whatsapp", 30).await;
    let free_form = app.post(&t.path, json!({"message": "hi again"})).await;
    let detail = free_form.problem(422, "messaging_window_closed")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("template"), "{detail}");
    let template = json!({"name": "follow_up", "language": "en_US", "components": []});
    app.post(&t.path, json!({"template": template}))
        .await
        .ok(201);
    assert_eq!(app.whatsapp.sends().len(), 1);
    assert_eq!(
        app.whatsapp.sends()[0]
            .message
            .template
            .as_ref()
            .unwrap()
            .name,
        "follow_up"
    );
}

#[tokio::test]
async fn reply_to_is_passed_where_the_platform_threads_replies() {
    let app = TestApp::new().await;
    let tg = thread(&app, "telegram", 1).await;
    let incoming = app.get(&tg.path).await.ok(200)["data"][0].clone();
    let sent = app
        .post(
            &tg.path,
            json!({"message": "re", "replyTo": incoming["id"]}),
        )
        .await;
    assert_eq!(sent.ok(201)["replyTo"], incoming["id"]);
    assert_eq!(
        app.telegram.sends()[0]
            .message
            .reply_to_platform_message_id
            .as_deref(),
        incoming["platformMessageId"].as_str()
    );

    let ig = thread(&app, "instagram", 1).await;
    let incoming = app.get(&ig.path).await.ok(200)["data"][0].clone();
    let sent = app
        .post(
            &ig.path,
            json!({"message": "re", "replyTo": incoming["id"]}),
        )
        .await;
    assert!(
        sent.ok(201).get("replyTo").is_none(),
        "Instagram does not thread replies"
    );
    assert_eq!(
        app.instagram.sends()[0]
            .message
            .reply_to_platform_message_id,
        None
    );
}

#[tokio::test]
async fn platform_failures_map_to_their_problems_and_store_nothing() {
    let app = TestApp::new().await;
    let t = thread(&app, "telegram", 1).await;
    let before = app.snapshot().await;

    app.telegram.fail_next(
        Operation::Send,
        Failure::platform("400", "Bad Request: chat not found"),
    );
    let refused = app.post(&t.path, json!({"message": "hi"})).await;
    assert_eq!(
        refused.problem(502, "platform_error")["platform"],
        json!({"code": "400", "message": "Bad Request: chat not found"})
    );

    app.telegram.fail_next(
        Operation::Send,
        Failure::Unavailable {
            retry_after: Some(std::time::Duration::from_secs(7)),
        },
    );
    let down = app.post(&t.path, json!({"message": "hi"})).await;
    down.problem(503, "platform_unavailable");
    assert_eq!(down.header("retry-after"), Some("7"));

    app.telegram.fail_next(
        Operation::Send,
        Failure::RateLimited(std::time::Duration::from_millis(1500)),
    );
    let limited = app.post(&t.path, json!({"message": "hi"})).await;
    limited.problem(429, "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("2"));

    assert_eq!(app.telegram.sends().len(), 3);
    assert_eq!(
        app.snapshot().await,
        before,
        "a rejected send is never stored nor emitted"
    );
}

#[tokio::test]
async fn a_send_slower_than_the_deadline_is_503() {
    let app = TestApp::builder()
        .config(|config| config.send_deadline = SHORT_DEADLINE)
        .build()
        .await;
    let t = thread(&app, "telegram", 1).await;
    let before = app.snapshot().await;
    app.telegram
        .set_send_delay(Some(std::time::Duration::from_secs(30)));
    let response = app.post(&t.path, json!({"message": "hi"})).await;
    let detail = response.problem(503, "platform_unavailable")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("did not answer"), "{detail}");
    assert_eq!(app.telegram.sends().len(), 1);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn revoked_credentials_mark_the_account_once_and_stop_later_sends() {
    let app = TestApp::new().await;
    let t = thread(&app, "telegram", 1).await;
    app.telegram.fail_next(
        Operation::Send,
        Failure::ReauthRequired("Forbidden: bot was blocked".into()),
    );
    let response = app.post(&t.path, json!({"message": "hi"})).await;
    response.problem(409, "account_reauth_required");
    let account = app.get(&format!("/api/v1/accounts/{}", t.account)).await;
    assert_eq!(account.ok(200)["status"], "reauth_required");

    let again = app.post(&t.path, json!({"message": "hi"})).await;
    again.problem(409, "account_reauth_required");
    assert_eq!(
        app.telegram.sends().len(),
        1,
        "the second send never reached the platform"
    );
    let disconnected = app
        .events()
        .await
        .into_iter()
        .filter(|e| *e == EventType::AccountDisconnected)
        .count();
    assert_eq!(disconnected, 1);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response() {
    let app = TestApp::new().await;
    let t = thread(&app, "telegram", 1).await;
    let key = [("idempotency-key", "order-42-reply")];
    let body = r#"{"message": "Your order shipped", "attachments": []}"#;
    let first = app
        .call(
            Method::POST,
            &t.path,
            Some(&app.key),
            Some(body.into()),
            &key,
        )
        .await;
    first.ok(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    // Same meaning, different key order and spacing.
    let same = r#"{"attachments":[],"message":"Your order shipped"}"#;
    let replay = app
        .call(
            Method::POST,
            &t.path,
            Some(&app.key),
            Some(same.into()),
            &key,
        )
        .await;
    assert_eq!(replay.status.as_u16(), 201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json, first.json);
    assert_eq!(app.telegram.sends().len(), 1, "sent once");
    assert_eq!(
        app.get(&t.path).await.ok(200)["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let other = r#"{"message": "Something else"}"#;
    let conflict = app
        .call(
            Method::POST,
            &t.path,
            Some(&app.key),
            Some(other.into()),
            &key,
        )
        .await;
    conflict.problem(409, "idempotency_conflict");
    assert_eq!(app.telegram.sends().len(), 1);
}

#[tokio::test]
async fn a_failed_request_releases_its_idempotency_key() {
    let app = TestApp::new().await;
    let t = thread(&app, "telegram", 1).await;
    let key = [("idempotency-key", "retry-me")];
    let body = json!({"message": "hi"}).to_string();
    app.telegram
        .fail_next(Operation::Send, Failure::Unavailable { retry_after: None });
    let failed = app
        .call(
            Method::POST,
            &t.path,
            Some(&app.key),
            Some(body.clone()),
            &key,
        )
        .await;
    failed.problem(503, "platform_unavailable");
    let retried = app
        .call(Method::POST, &t.path, Some(&app.key), Some(body), &key)
        .await;
    retried.ok(201);
    assert_eq!(retried.header("idempotent-replayed"), None);
    assert_eq!(app.telegram.sends().len(), 2);

    // A refused request releases its key too: the key is free for a corrected request.
    let empty = [("idempotency-key", "fix-me")];
    let refused = app
        .call(
            Method::POST,
            &t.path,
            Some(&app.key),
            Some(json!({"message": ""}).to_string()),
            &empty,
        )
        .await;
    refused.invalid("message");
    let fixed = app
        .call(
            Method::POST,
            &t.path,
            Some(&app.key),
            Some(json!({"message": "ok"}).to_string()),
            &empty,
        )
        .await;
    fixed.ok(201);
    assert_eq!(app.telegram.sends().len(), 3);
}

#[tokio::test]
async fn idempotency_keys_are_checked_and_scoped_to_the_workspace() {
    let app = TestApp::new().await;
    let t = thread(&app, "telegram", 1).await;
    let long = "k".repeat(256);
    let body = json!({"message": "hi"}).to_string();
    let response = app
        .call(
            Method::POST,
            &t.path,
            Some(&app.key),
            Some(body),
            &[("idempotency-key", long.as_str())],
        )
        .await;
    response.invalid("Idempotency-Key");
    assert!(app.telegram.sends().is_empty());

    let key = [("idempotency-key", "shared-key")];
    let body = json!({"message": "hi"}).to_string();
    app.call(
        Method::POST,
        &t.path,
        Some(&app.key),
        Some(body.clone()),
        &key,
    )
    .await
    .ok(201);
    let other_account = app.connect_other("telegram", "globex-bot").await;
    let other_conversation = app
        .receive(&other_account, "chat-9", "hello?", hours_ago(1))
        .await;
    let other_path = format!("/api/v1/inbox/conversations/{other_conversation}/messages");
    let other = app
        .call(
            Method::POST,
            &other_path,
            Some(&app.other_key),
            Some(body),
            &key,
        )
        .await;
    other.ok(201);
    assert_eq!(
        other.header("idempotent-replayed"),
        None,
        "keys do not cross workspaces"
    );
    assert_eq!(app.telegram.sends().len(), 2);
}

#[tokio::test]
async fn a_key_whose_first_request_is_still_running_is_a_conflict() {
    let app = TestApp::new().await;
    let t = thread(&app, "telegram", 1).await;
    let key = [("idempotency-key", "in-flight")];
    let body = json!({"message": "hi"}).to_string();
    app.telegram.hold_sends();
    let request = TestApp::request(
        Method::POST,
        &t.path,
        Some(&app.key),
        Some(body.clone()),
        &key,
    );
    let first = tokio::spawn(app.router.clone().oneshot(request));
    // The first request is in flight once the platform has it.
    while app.telegram.sends().is_empty() {
        tokio::task::yield_now().await;
    }
    let second = app
        .call(
            Method::POST,
            &t.path,
            Some(&app.key),
            Some(body.clone()),
            &key,
        )
        .await;
    let detail = second.problem(409, "idempotency_conflict")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("in progress"), "{detail}");

    app.telegram.release_sends();
    let first = read(first.await.unwrap().unwrap()).await;
    first.ok(201);
    let third = app
        .call(Method::POST, &t.path, Some(&app.key), Some(body), &key)
        .await;
    assert_eq!(third.header("idempotent-replayed"), Some("true"));
    assert_eq!(third.json, first.json);
    assert_eq!(app.telegram.sends().len(), 1);
}

#[tokio::test]
async fn an_adapter_panic_is_a_500_and_frees_the_idempotency_key() {
    let app = TestApp::new().await;
    let t = thread(&app, "telegram", 1).await;
    let before = app.snapshot().await;
    let key = [("idempotency-key", "after-a-bug")];
    let body = json!({"message": "hi"}).to_string();
    app.telegram
        .fail_next(Operation::Send, Failure::Panic("adapter bug".into()));
    let crashed = app
        .call(
            Method::POST,
            &t.path,
            Some(&app.key),
            Some(body.clone()),
            &key,
        )
        .await;
    let problem = crashed.problem(500, "internal_error");
    assert!(!problem.to_string().contains("adapter bug"));
    assert_eq!(app.snapshot().await, before);

    // The key is released in the background; until then a retry is told it is in flight.
    let mut retried = app
        .call(
            Method::POST,
            &t.path,
            Some(&app.key),
            Some(body.clone()),
            &key,
        )
        .await;
    for _ in 0..1000 {
        if retried.status.as_u16() != 409 {
            break;
        }
        tokio::task::yield_now().await;
        retried = app
            .call(
                Method::POST,
                &t.path,
                Some(&app.key),
                Some(body.clone()),
                &key,
            )
            .await;
    }
    retried.ok(201);
}

#[tokio::test]
async fn expired_credentials_are_refreshed_once_and_the_send_retried() {
    let app = TestApp::new().await;
    let t = thread(&app, "x", 1).await;
    app.x.fail_next(
        Operation::Send,
        Failure::ReauthRequired("access token expired".into()),
    );
    let sent = app.post(&t.path, json!({"message": "hi"})).await;
    sent.ok(201);
    assert_eq!(app.hooks.refreshed.lock().unwrap().len(), 1);
    assert_eq!(
        app.x.sends().len(),
        2,
        "the send was retried after the refresh"
    );
    let account = app.get(&format!("/api/v1/accounts/{}", t.account)).await;
    assert_eq!(account.ok(200)["status"], "active");
}

#[tokio::test]
async fn a_refusal_that_survives_the_refresh_needs_reauthorisation() {
    let app = TestApp::new().await;
    let t = thread(&app, "x", 1).await;
    for _ in 0..2 {
        app.x.fail_next(
            Operation::Send,
            Failure::ReauthRequired("invalid_grant".into()),
        );
    }
    let refused = app.post(&t.path, json!({"message": "hi"})).await;
    refused.problem(409, "account_reauth_required");
    assert_eq!(app.hooks.refreshed.lock().unwrap().len(), 1);
    let account = app.get(&format!("/api/v1/accounts/{}", t.account)).await;
    assert_eq!(account.ok(200)["status"], "reauth_required");
}

#[tokio::test]
async fn platforms_whose_credentials_do_not_expire_are_not_refreshed() {
    let app = TestApp::new().await;
    let t = thread(&app, "telegram", 1).await;
    app.telegram.fail_next(
        Operation::Send,
        Failure::ReauthRequired("Unauthorized".into()),
    );
    let refused = app.post(&t.path, json!({"message": "hi"})).await;
    refused.problem(409, "account_reauth_required");
    assert!(app.hooks.refreshed.lock().unwrap().is_empty());
}
