//! Telegram through the real binary: connect a bot, receive by webhook and by long polling,
//! reply, and the platform's failure modes as a customer sees them through the API.

use inbox_testkit::{fakes::telegram::SECRET_HEADER, receiver::WebhookReceiver};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{
    Gateway, TOKEN, USER, event_types, eventually, fake_telegram, verify_with_python,
};

#[tokio::test]
async fn webhook_mode_round_trip_with_signed_deliveries() {
    let fake = fake_telegram().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(
        dir.path(),
        true,
        &[("INBOX_TELEGRAM_API_BASE", fake.base_url().to_owned())],
    )
    .await;
    let api = gateway.client(&gateway.create_api_key("acme"));
    let receiver = WebhookReceiver::start_without_secret().await;
    let endpoint = api.register(&receiver).await;

    // Connecting registers the per-account webhook with its secret token.
    let account = api.connect_bot().await;
    let account_id = account["id"].as_str().unwrap();
    assert_eq!(account["platform"], "telegram");
    assert_eq!(account["username"], "support_bot");
    assert_eq!(account["status"], "active");
    let info = fake.webhook_info(TOKEN);
    assert_eq!(
        info.url,
        format!("{}/webhooks/telegram/{account_id}", gateway.base)
    );
    let secret = info.secret_token.clone().expect("a secret_token is set");
    assert!(
        secret.len() >= 32
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "Telegram accepts 1-256 chars of A-Za-z0-9_-: {secret}"
    );

    // A user writes; Telegram pushes; the customer is told, signed.
    let (update, _) = fake
        .message(TOKEN, USER)
        .text("Hi, I have a question")
        .push()
        .await;
    receiver
        .wait_for(3, std::time::Duration::from_secs(30))
        .await;
    // Deliveries run concurrently, so their order is not guaranteed (consumers order by the
    // event's own timestamps): compare them as a set.
    let mut types = event_types(&receiver);
    types.sort();
    assert_eq!(
        types,
        [
            "account.connected",
            "conversation.started",
            "message.received"
        ]
    );
    let received = receiver.verified_events();
    assert_eq!(
        received.len(),
        3,
        "every delivery verifies: {:?}",
        receiver.received()
    );
    let data = &received
        .iter()
        .find(|event| event["event"] == "message.received")
        .expect("a message.received event")["data"];
    assert_eq!(data["text"], "Hi, I have a question");
    assert_eq!(
        data["sender"],
        json!({"id": USER.to_string(), "name": "Alice Smith", "username": "alice"})
    );
    assert_eq!(
        data["platformMessageId"],
        format!("{USER}:{}", update["message"]["message_id"])
    );
    assert_eq!(data["accountId"], account_id);

    // The inbox shows it.
    let conversations = api.get("/inbox/conversations").await;
    let conversation = &conversations["data"][0];
    assert_eq!(conversation["participant"]["name"], "Alice Smith");
    assert_eq!(conversation["unreadCount"], 1);
    assert_eq!(conversation["lastMessage"], "Hi, I have a question");
    assert_eq!(conversation["windowExpiresAt"], json!(null));
    let conversation_id = conversation["id"].as_str().unwrap().to_owned();
    let incoming_id = data["messageId"].as_str().unwrap().to_owned();

    // Telegram redelivers: still one message, no new event.
    fake.redeliver(TOKEN, update["update_id"].as_i64().unwrap())
        .await;

    // A forged push is refused and stores nothing.
    let forged = reqwest::Client::new()
        .post(&info.url)
        .header(SECRET_HEADER, "wrong")
        .json(&fake.message(TOKEN, USER).text("forged").build())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // The customer replies, threaded, idempotently.
    let reply = json!({"message": "Sure — what is it?", "replyTo": incoming_id});
    let path = format!("/inbox/conversations/{conversation_id}/messages");
    let (status, sent) = api
        .call_with(
            Method::POST,
            &path,
            Some(reply.clone()),
            &[("Idempotency-Key", "reply-1")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["deliveryStatus"], "sent");
    assert_eq!(sent["direction"], "outgoing");
    let (status, again) = api
        .call_with(
            Method::POST,
            &path,
            Some(reply),
            &[("Idempotency-Key", "reply-1")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["id"], sent["id"]);
    let sends = fake.requests_for("sendMessage");
    assert_eq!(sends.len(), 1, "the idempotent retry sent nothing");
    assert_eq!(
        sends[0].params["reply_parameters"]["message_id"],
        update["message"]["message_id"]
    );
    assert_eq!(fake.sent_messages(TOKEN)[0]["text"], "Sure — what is it?");

    receiver
        .wait_for(4, std::time::Duration::from_secs(30))
        .await;
    assert_eq!(event_types(&receiver)[3], "message.sent");
    let messages = api.all_messages().await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(
        event_types(&receiver).len(),
        4,
        "the redelivery and the forgery emitted nothing"
    );

    // Marking read zeroes the count (Telegram has no read call).
    let (status, read) = api
        .post(
            &format!("/inbox/conversations/{conversation_id}/read"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["unreadCount"], 0);

    verify_with_python(&receiver, endpoint["secret"].as_str().unwrap());

    // Disconnecting removes the webhook; the account is gone.
    let (status, _) = api
        .call(Method::DELETE, &format!("/accounts/{account_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(fake.webhook_info(TOKEN).url.is_empty());
    let (status, _) = api
        .call(Method::GET, &format!("/accounts/{account_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn polling_mode_loses_and_repeats_nothing_across_a_crash() {
    let fake = fake_telegram().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = Gateway::start(
        dir.path(),
        false,
        &[("INBOX_TELEGRAM_API_BASE", fake.base_url().to_owned())],
    )
    .await;
    let api = gateway.client(&gateway.create_api_key("acme"));
    let receiver = WebhookReceiver::start_without_secret().await;
    api.register(&receiver).await;
    api.connect_bot().await;
    assert!(
        fake.webhook_info(TOKEN).url.is_empty(),
        "polling mode sets no webhook"
    );

    for text in ["one", "two"] {
        fake.message(TOKEN, USER).text(text).push().await;
    }
    eventually(&gateway, "two messages", || async {
        api.all_messages().await.len() == 2
    })
    .await;

    gateway.kill();
    for text in ["three", "four"] {
        fake.message(TOKEN, USER).text(text).push().await;
    }
    gateway.restart().await;
    eventually(&gateway, "four messages", || async {
        api.all_messages().await.len() == 4
    })
    .await;
    receiver
        .wait_for(6, std::time::Duration::from_secs(30))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let texts: Vec<_> = api
        .all_messages()
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["one", "two", "three", "four"]);
    let received = event_types(&receiver)
        .iter()
        .filter(|t| *t == "message.received")
        .count();
    assert_eq!(received, 4, "{:?}", event_types(&receiver));
}

#[tokio::test]
async fn platform_refusals_reach_the_customer_as_documented_errors() {
    let fake = fake_telegram().await;
    let dir = tempfile::tempdir().unwrap();
    // The replies below follow each other faster than Telegram's one message per chat per
    // second, which the gateway would refuse with 429 (tests/e2e/ratelimit.rs covers that).
    let gateway = Gateway::start(
        dir.path(),
        true,
        &[
            ("INBOX_TELEGRAM_API_BASE", fake.base_url().to_owned()),
            (
                "INBOX_RATE_BUDGETS",
                "telegram.send_per_chat=100000/1s burst 10".to_owned(),
            ),
        ],
    )
    .await;
    let api = gateway.client(&gateway.create_api_key("acme"));
    let receiver = WebhookReceiver::start_without_secret().await;
    api.register(&receiver).await;
    let account = api.connect_bot().await;
    fake.message(TOKEN, USER).text("hello").push().await;
    eventually(&gateway, "the conversation", || async {
        api.all_messages().await.len() == 1
    })
    .await;
    let conversation = api.get("/inbox/conversations").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/inbox/conversations/{conversation}/messages");

    // Too long: refused before any call to Telegram.
    let (status, problem) = api.post(&path, json!({"message": "x".repeat(4097)})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "message_too_long");
    assert!(fake.requests_for("sendMessage").is_empty());

    // Throttled once: retried after retry_after, then sent.
    fake.rate_limit_next("sendMessage", 1);
    let (status, sent) = api.post(&path, json!({"message": "after a pause"})).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(fake.requests_for("sendMessage").len(), 2);

    // The user blocked the bot: 502 with Telegram's own code and description.
    fake.block_user(USER);
    let (status, problem) = api.post(&path, json!({"message": "are you there?"})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{problem}");
    assert_eq!(problem["code"], "platform_error");
    assert_eq!(problem["platform"]["code"], "403");
    assert_eq!(
        problem["platform"]["message"],
        "Forbidden: bot was blocked by the user"
    );
    fake.unblock_user(USER);

    // The token is revoked: 409, the account needs reauthorisation, one account.disconnected.
    fake.revoke_token(TOKEN);
    for _ in 0..2 {
        let (status, problem) = api.post(&path, json!({"message": "hello?"})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(problem["code"], "account_reauth_required");
    }
    let account = api
        .get(&format!("/accounts/{}", account["id"].as_str().unwrap()))
        .await;
    assert_eq!(account["status"], "reauth_required");
    eventually(&gateway, "account.disconnected", || async {
        event_types(&receiver).contains(&"account.disconnected".to_owned())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let disconnected = event_types(&receiver)
        .iter()
        .filter(|t| *t == "account.disconnected")
        .count();
    assert_eq!(disconnected, 1);
    let sent_events = event_types(&receiver)
        .iter()
        .filter(|t| *t == "message.sent")
        .count();
    assert_eq!(
        sent_events, 1,
        "only the successful send emitted message.sent"
    );
}
