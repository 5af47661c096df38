//! Scaled out: two gateway replicas against one real PostgreSQL. Telegram pushes to either;
//! the customer's endpoint gets each event exactly once although both replicas run delivery
//! workers and processors, and both replicas serve the same inbox.

use std::time::Duration;

use inbox_testkit::{receiver::WebhookReceiver, services::PostgresServer};
use serde_json::json;

use crate::support::{Gateway, TOKEN, USER, event_types, eventually, fake_telegram};

#[tokio::test]
async fn two_replicas_on_postgres_share_one_inbox_and_deliver_each_event_once() {
    let Some(postgres) = PostgresServer::start() else {
        return;
    };
    let database_url = postgres.create_database();
    let fake = fake_telegram().await;
    let key = inbox_store::Cipher::generate_key();
    let env = [
        ("DATABASE_URL", database_url),
        ("INBOX_ENCRYPTION_KEY", key),
        ("INBOX_TELEGRAM_API_BASE", fake.base_url().to_owned()),
    ];
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = Gateway::start(dir_a.path(), true, &env).await;
    let b = Gateway::start(dir_b.path(), true, &env).await;

    let api_key = a.create_api_key("acme");
    let api_a = a.client(&api_key);
    let api_b = b.client(&api_key);
    let receiver = WebhookReceiver::start_without_secret().await;
    api_a.register(&receiver).await;
    let account = api_b.connect_bot().await; // the webhook points at replica b
    assert_eq!(account["platform"], "telegram");

    for n in 0..10 {
        fake.message(TOKEN, USER)
            .text(&format!("message {n}"))
            .push()
            .await;
    }
    eventually(&a, "ten messages, seen from replica a", || async {
        api_a.all_messages().await.len() == 10
    })
    .await;
    // account.connected + conversation.started + 10 × message.received
    receiver.wait_for(12, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut ids: Vec<_> = receiver
        .received()
        .iter()
        .filter_map(|r| r.webhook_id().map(str::to_owned))
        .collect();
    let delivered = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (delivered, ids.len()),
        (12, 12),
        "each event exactly once: {:?}",
        event_types(&receiver)
    );
    assert_eq!(receiver.verified_events().len(), 12);

    // A reply through replica a goes out once.
    let conversation = api_a.get("/inbox/conversations").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, sent) = api_a
        .post(
            &format!("/inbox/conversations/{conversation}/messages"),
            json!({"message": "hi"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{sent}");
    assert_eq!(fake.requests_for("sendMessage").len(), 1);
    assert_eq!(api_b.all_messages().await.len(), 11);
}
