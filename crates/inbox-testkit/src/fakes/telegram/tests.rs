//! Tests of the fake itself: wire formats, envelopes, offsets, long polls, files.

use super::*;

const TOKEN: &str = "123456:TEST-token_1";

async fn fake() -> FakeTelegram {
    let fake = FakeTelegram::start().await;
    fake.add_bot(TOKEN, 123456, "Support", "support_bot");
    fake.add_user(111, "Alice", Some("Smith"), Some("alice"));
    fake
}

async fn call(fake: &FakeTelegram, method: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/bot{TOKEN}/{method}", fake.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn methods_are_case_insensitive_and_take_every_encoding() {
    let fake = fake().await;
    let client = reqwest::Client::new();
    let url = |method: &str| format!("{}/bot{TOKEN}/{method}", fake.base_url());
    let me: Value = client
        .get(url("GETME"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["result"]["username"], "support_bot");

    let form: Value = client
        .post(url("sendMessage"))
        .form(&[("chat_id", "111"), ("text", "via form")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(form["result"]["text"], "via form");

    let query: Value = client
        .get(format!(
            "{}?chat_id=111&text=via%20query",
            url("sendmessage")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(query["result"]["text"], "via query");
    assert!(query["result"]["message_id"].as_i64() > form["result"]["message_id"].as_i64());

    let upload = reqwest::multipart::Form::new().text("chat_id", "111").part(
        "document",
        reqwest::multipart::Part::bytes(b"%PDF-1.4".to_vec()).file_name("a.pdf"),
    );
    let multipart: Value = client
        .post(url("sendDocument"))
        .multipart(upload)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(multipart["result"]["document"]["file_name"], "a.pdf");
    let file_id = multipart["result"]["document"]["file_id"].as_str().unwrap();
    assert_eq!(fake.file_bytes(file_id).unwrap(), b"%PDF-1.4");
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test]
async fn errors_use_telegrams_envelope_and_words() {
    let fake = fake().await;
    let (status, body) = call(&fake, "noSuchMethod", json!({})).await;
    assert_eq!(
        (status, &body),
        (
            404,
            &json!({"ok": false, "error_code": 404, "description": "Not Found"})
        )
    );

    let (status, body) = call(&fake, "sendMessage", json!({"chat_id": 999, "text": "x"})).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: chat not found"))
    );

    let long = "é".repeat(4097);
    let (status, body) = call(&fake, "sendMessage", json!({"chat_id": 111, "text": long})).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: message is too long"))
    );
    // 2048 emoji are 4096 UTF-16 units: exactly at the limit.
    let (status, _) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 111, "text": "😀".repeat(2048)}),
    )
    .await;
    assert_eq!(status, 200);

    fake.rate_limit_next("sendMessage", 7);
    let (status, body) = call(&fake, "sendMessage", json!({"chat_id": 111, "text": "x"})).await;
    assert_eq!(status, 429);
    assert_eq!(body["parameters"]["retry_after"], 7);
    assert_eq!(body["description"], "Too Many Requests: retry after 7");

    fake.block_user(111);
    let (status, body) = call(&fake, "sendMessage", json!({"chat_id": 111, "text": "x"})).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (403, Some("Forbidden: bot was blocked by the user"))
    );

    fake.revoke_token(TOKEN);
    let (status, body) = call(&fake, "getMe", json!({})).await;
    assert_eq!(
        (status, &body),
        (
            401,
            &json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
        )
    );
    let statuses: Vec<_> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses.last(), Some(&Some(401)));
}

#[tokio::test]
async fn get_updates_confirms_by_offset_and_conflicts_with_a_webhook() {
    let fake = fake().await;
    let (first, pushed) = fake.message(TOKEN, 111).text("one").push().await;
    assert_eq!(pushed, Pushed::Queued);
    fake.message(TOKEN, 111).text("two").push().await;
    let (_, body) = call(&fake, "getUpdates", json!({})).await;
    assert_eq!(body["result"].as_array().unwrap().len(), 2);
    let next = first["update_id"].as_i64().unwrap() + 1;
    let (_, body) = call(&fake, "getUpdates", json!({"offset": next})).await;
    assert_eq!(body["result"][0]["message"]["text"], "two");
    assert_eq!(fake.pending_updates(TOKEN).len(), 1);

    let (status, _) = call(
        &fake,
        "setWebhook",
        json!({"url": "http://127.0.0.1:9/hook", "secret_token": "bad secret"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = call(&fake, "setWebhook", json!({"url": "http://127.0.0.1:9/hook", "secret_token": "good_secret-1", "allowed_updates": ["message"]})).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (200, Some("Webhook was set"))
    );
    let (status, body) = call(&fake, "getUpdates", json!({})).await;
    assert_eq!(status, 409);
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .starts_with("Conflict: can't use getUpdates")
    );
    let info = fake.webhook_info(TOKEN);
    assert_eq!(info.secret_token.as_deref(), Some("good_secret-1"));
    assert_eq!(info.allowed_updates, ["message"]);
}

#[tokio::test]
async fn a_long_poll_wakes_up_for_a_push_and_a_newer_poll_ends_it() {
    let fake = fake().await;
    let waiting = tokio::spawn({
        let fake = fake.clone();
        async move { call(&fake, "getUpdates", json!({"timeout": 30})).await }
    });
    // Wait until the poll is registered, then push.
    while fake.requests_for("getUpdates").is_empty() {
        tokio::task::yield_now().await;
    }
    fake.message(TOKEN, 111).text("wake up").push().await;
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["result"][0]["message"]["text"], "wake up");

    let offset = body["result"][0]["update_id"].as_i64().unwrap() + 1;
    let older = tokio::spawn({
        let fake = fake.clone();
        async move {
            call(
                &fake,
                "getUpdates",
                json!({"timeout": 30, "offset": offset}),
            )
            .await
        }
    });
    while fake.requests_for("getUpdates").len() < 2 {
        tokio::task::yield_now().await;
    }
    let (status, body) = call(&fake, "getUpdates", json!({"offset": offset})).await;
    assert_eq!(
        (status, body["result"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status, body) = older.await.unwrap();
    assert_eq!(status, 409);
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .contains("terminated by other getUpdates")
    );
}

#[tokio::test]
async fn replies_embed_the_replied_message_and_files_download() {
    let fake = fake().await;
    let (update, _) = fake
        .message(TOKEN, 111)
        .photo(b"JPEG bytes".to_vec())
        .caption("look")
        .push()
        .await;
    let sizes = update["message"]["photo"].as_array().unwrap();
    assert_eq!(sizes.len(), 3);
    let largest = sizes[2]["file_id"].as_str().unwrap();
    let (_, file) = call(&fake, "getFile", json!({"file_id": largest})).await;
    let path = file["result"]["file_path"].as_str().unwrap();
    let bytes = reqwest::get(format!("{}/file/bot{TOKEN}/{path}", fake.base_url()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"JPEG bytes");
    // python-telegram-bot percent-encodes the token's colon in download URLs.
    let encoded = format!(
        "{}/file/bot{}/{path}",
        fake.base_url(),
        TOKEN.replace(':', "%3A")
    );
    assert_eq!(
        &reqwest::get(encoded).await.unwrap().bytes().await.unwrap()[..],
        b"JPEG bytes"
    );

    let message_id = update["message"]["message_id"].as_i64().unwrap();
    let (_, sent) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 111, "text": "nice",
        "reply_parameters": {"message_id": message_id}}),
    )
    .await;
    assert_eq!(sent["result"]["reply_to_message"]["caption"], "look");
    let (status, _) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 111, "text": "x",
        "reply_parameters": {"message_id": 9999}}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 111, "text": "x",
        "reply_parameters": {"message_id": 9999, "allow_sending_without_reply": true}}),
    )
    .await;
    assert_eq!(status, 200);

    let url = fake.host_media("cat.png", b"PNG".to_vec(), "image/png");
    let (status, sent) = call(
        &fake,
        "sendPhoto",
        json!({"chat_id": 111, "photo": url, "caption": "cat"}),
    )
    .await;
    assert_eq!(status, 200);
    let photo = sent["result"]["photo"].as_array().unwrap().last().unwrap()["file_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fake.file_bytes(&photo).unwrap(), b"PNG");
    let (status, body) = call(
        &fake,
        "sendPhoto",
        json!({"chat_id": 111, "photo": format!("{}/_media/missing", fake.base_url())}),
    )
    .await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: failed to get HTTP URL content"))
    );
    assert_eq!(fake.sent_messages(TOKEN).len(), 3);
}
