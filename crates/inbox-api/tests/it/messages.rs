//! Reading messages (order, cursor) and attachments: platform references are rewritten to
//! the attachment route, which streams them; web URLs redirect.

use inbox_core::{Attachment, AttachmentKind, FetchedMedia, MessageId};
use serde_json::{Value, json};

use crate::common::{TestApp, hours_ago};

fn texts(response: &Value) -> Vec<String> {
    response["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn messages_are_newest_first_by_default_asc_on_request_and_paged() {
    let app = TestApp::new().await;
    let account = app.connect("telegram", "t").await;
    let id = app.receive(&account, "c", "one", hours_ago(3)).await;
    app.receive(&account, "c", "two", hours_ago(2)).await;
    app.receive(&account, "c", "three", hours_ago(1)).await;
    let path = format!("/api/v1/inbox/conversations/{id}/messages");

    let desc = app.get(&path).await;
    assert_eq!(texts(desc.ok(200)), ["three", "two", "one"]);
    let first = &desc.json["data"][0];
    assert!(first["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(first["conversationId"], id.as_str());
    assert_eq!(first["direction"], "incoming");
    assert_eq!(first["sender"]["id"], "user-c");
    assert!(
        first.get("deliveryStatus").is_none(),
        "incoming messages have no delivery status"
    );
    assert_eq!(first["isEdited"], false);

    let asc = app.get(&format!("{path}?sortOrder=asc")).await;
    assert_eq!(texts(asc.ok(200)), ["one", "two", "three"]);

    let page1 = app.get(&format!("{path}?sortOrder=asc&limit=2")).await;
    assert_eq!(texts(page1.ok(200)), ["one", "two"]);
    let cursor = page1.json["nextCursor"].as_str().unwrap().to_owned();
    let page2 = app
        .get(&format!("{path}?sortOrder=asc&limit=2&cursor={cursor}"))
        .await;
    assert_eq!(texts(page2.ok(200)), ["three"]);

    app.get(&format!("{path}?sortOrder=sideways"))
        .await
        .invalid("sortOrder");
    app.get("/api/v1/inbox/conversations/conv_01jd3k5n8q2w4e6r8t0y2u4i6o/messages")
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn platform_media_references_are_served_through_the_gateway() {
    let app = TestApp::new().await;
    let account = app.connect("telegram", "t").await;
    let conversation = app
        .receive_with_attachments(
            &account,
            "c",
            vec![
                Attachment {
                    kind: AttachmentKind::Image,
                    url: "tg-file:AgACAgQAAxkBAAIB".into(),
                    mime_type: Some("image/jpeg".into()),
                    name: Some("photo.jpg".into()),
                },
                Attachment {
                    kind: AttachmentKind::File,
                    url: "https://cdn.example.com/report.pdf".into(),
                    mime_type: None,
                    name: None,
                },
            ],
        )
        .await;
    app.telegram.add_media(
        "tg-file:AgACAgQAAxkBAAIB",
        FetchedMedia {
            bytes: b"\xff\xd8jpeg".to_vec(),
            mime_type: Some("image/jpeg".into()),
            name: None,
        },
    );
    let list = app
        .get(&format!(
            "/api/v1/inbox/conversations/{conversation}/messages"
        ))
        .await;
    let message = &list.ok(200)["data"][0];
    let message_id = message["id"].as_str().unwrap();
    let rewritten =
        format!("/api/v1/inbox/conversations/{conversation}/messages/{message_id}/attachments/0");
    assert_eq!(message["attachments"][0]["url"], rewritten.as_str());
    assert!(
        !list.text.contains("tg-file"),
        "platform references never leave the gateway"
    );
    assert_eq!(
        message["attachments"][1]["url"],
        "https://cdn.example.com/report.pdf"
    );

    let media = app.get(&rewritten).await;
    assert_eq!(media.status.as_u16(), 200);
    assert_eq!(media.header("content-type"), Some("image/jpeg"));
    assert_eq!(
        media.header("content-disposition"),
        Some("inline; filename=\"photo.jpg\"")
    );
    assert_eq!(media.bytes, b"\xff\xd8jpeg");

    let web = app
        .get(&rewritten.replace("/attachments/0", "/attachments/1"))
        .await;
    assert_eq!(web.status.as_u16(), 302);
    assert_eq!(
        web.header("location"),
        Some("https://cdn.example.com/report.pdf")
    );

    app.get(&rewritten.replace("/attachments/0", "/attachments/2"))
        .await
        .problem(404, "not_found");
    app.get(&rewritten.replace("/attachments/0", "/attachments/x"))
        .await
        .problem(404, "not_found");
    let elsewhere = app.receive(&account, "other", "hi", hours_ago(1)).await;
    app.get(&rewritten.replace(&conversation, &elsewhere))
        .await
        .problem(404, "not_found");
    let unknown = format!(
        "/api/v1/inbox/conversations/{conversation}/messages/{}/attachments/0",
        MessageId::new()
    );
    app.get(&unknown).await.problem(404, "not_found");
}

#[tokio::test]
async fn a_platform_failure_fetching_media_is_a_problem() {
    let app = TestApp::new().await;
    let account = app.connect("telegram", "t").await;
    let conversation = app
        .receive_with_attachments(
            &account,
            "c",
            vec![Attachment {
                kind: AttachmentKind::Image,
                url: "tg-file:gone".into(),
                mime_type: None,
                name: None,
            }],
        )
        .await;
    let list = app
        .get(&format!(
            "/api/v1/inbox/conversations/{conversation}/messages"
        ))
        .await;
    let path = list.ok(200)["data"][0]["attachments"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let problem = app.get(&path).await;
    assert_eq!(
        problem.problem(502, "platform_error")["platform"]["code"],
        json!("404")
    );
}
