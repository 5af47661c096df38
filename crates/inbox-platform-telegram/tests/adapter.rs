//! Telegram-specific behaviour the shared conformance suite does not cover: the exact Bot API
//! parameters the adapter sends, webhook and polling set-up, caption limits, persistent
//! failures within a small retry budget, and that the bot token never leaks into errors.

use std::time::Duration;

use inbox_core::{
    AccountContext, AccountId, AttachmentKind, Error, InboundKind, InboundMode, InboundSetup,
    OutboundAttachment, OutboundMessage, Platform,
};
use inbox_http::{BackoffConfig, RetryConfig};
use inbox_platform_telegram::{Telegram, TelegramConfig};
use inbox_testkit::fakes::telegram::FakeTelegram;
use secrecy::SecretString;
use serde_json::{Value, json};

const TOKEN: &str = "4242:AAH-adapter-test_token";
const ALICE: i64 = 111_222_333;

struct Setup {
    fake: FakeTelegram,
    telegram: Telegram,
    account: AccountContext,
}

async fn setup_with(
    configure: impl FnOnce(
        inbox_platform_telegram::TelegramConfigBuilder,
    ) -> inbox_platform_telegram::TelegramConfigBuilder,
) -> Setup {
    let fake = FakeTelegram::start().await;
    fake.add_bot(TOKEN, 4242, "Support", "support_bot");
    fake.add_user(ALICE, "Alice", Some("Smith"), Some("alice"));
    let config = configure(
        TelegramConfig::builder(fake.base_url()).long_poll_timeout(Duration::from_secs(1)),
    )
    .build()
    .unwrap();
    let telegram = Telegram::new(config).unwrap();
    let connected = telegram.connect(&json!({"botToken": TOKEN})).await.unwrap();
    let account = AccountContext {
        id: AccountId::new(),
        platform_account_id: connected.platform_account_id,
        credentials: connected.credentials,
        inbound_secret: Some(SecretString::from("adapter_secret-1")),
    };
    Setup {
        fake,
        telegram,
        account,
    }
}

async fn setup() -> Setup {
    setup_with(|builder| builder).await
}

fn target() -> inbox_core::ConversationTarget {
    inbox_core::ConversationTarget {
        platform_conversation_id: ALICE.to_string(),
        participant_id: ALICE.to_string(),
        last_inbound_platform_message_id: None,
    }
}

fn message(text: &str) -> OutboundMessage {
    OutboundMessage {
        text: text.to_owned(),
        attachments: Vec::new(),
        reply_to_platform_message_id: None,
        message_tag: None,
        template: None,
    }
}

fn params(fake: &FakeTelegram, method: &str) -> Value {
    let requests = fake.requests_for(method);
    Value::Object(
        requests
            .last()
            .unwrap_or_else(|| panic!("no {method} call"))
            .params
            .clone(),
    )
}

fn setup_webhook(url: Option<&str>, secret: &str) -> InboundSetup {
    InboundSetup {
        webhook_url: url.map(str::to_owned),
        secret: SecretString::from(secret),
    }
}

#[tokio::test]
async fn connect_reports_the_bot_and_normalises_the_token() {
    let s = setup().await;
    let connected = s
        .telegram
        .connect(&json!({"botToken": format!("  {TOKEN}\n")}))
        .await
        .unwrap();
    assert_eq!(connected.platform_account_id, "4242");
    assert_eq!(connected.name, "Support");
    assert_eq!(connected.username.as_deref(), Some("support_bot"));
    let stored: Value = serde_json::from_str(connected.credentials.expose_json()).unwrap();
    assert_eq!(
        stored,
        json!({"botToken": TOKEN}),
        "whitespace around a pasted token is dropped"
    );
}

#[tokio::test]
async fn start_inbound_registers_the_webhook_then_switches_to_polling() {
    let s = setup().await;
    let mode = s
        .telegram
        .start_inbound(
            &s.account,
            &setup_webhook(Some("http://127.0.0.1:9/hook"), "adapter_secret-1"),
        )
        .await
        .unwrap();
    assert_eq!(mode, InboundMode::WebhookPerAccount);
    let info = s.fake.webhook_info(TOKEN);
    assert_eq!(info.url, "http://127.0.0.1:9/hook");
    assert_eq!(info.secret_token.as_deref(), Some("adapter_secret-1"));
    assert_eq!(info.allowed_updates, ["message", "edited_message"]);

    let mode = s
        .telegram
        .start_inbound(&s.account, &setup_webhook(None, "adapter_secret-1"))
        .await
        .unwrap();
    assert_eq!(mode, InboundMode::Polling);
    assert_eq!(s.fake.webhook_info(TOKEN).url, "");
    assert_eq!(
        params(&s.fake, "deleteWebhook")["drop_pending_updates"],
        false,
        "pending messages are kept"
    );

    s.telegram.stop_inbound(&s.account).await.unwrap();
    assert_eq!(
        s.fake.requests_for("deleteWebhook").len(),
        2,
        "stopping is idempotent"
    );
}

#[tokio::test]
async fn a_secret_telegram_would_refuse_is_caught_before_calling() {
    let s = setup().await;
    let result = s
        .telegram
        .start_inbound(
            &s.account,
            &setup_webhook(Some("http://127.0.0.1:9/hook"), "whsec_abc+/="),
        )
        .await;
    match result {
        Err(Error::Internal { message, .. }) => {
            assert!(message.contains("secret_token"), "{message}")
        }
        other => panic!("expected Internal, got {other:?}"),
    }
    assert!(s.fake.requests_for("setWebhook").is_empty());
}

#[tokio::test]
async fn polling_while_a_webhook_is_set_is_unavailable_in_telegrams_words() {
    let s = setup().await;
    s.telegram
        .start_inbound(
            &s.account,
            &setup_webhook(Some("http://127.0.0.1:9/hook"), "adapter_secret-1"),
        )
        .await
        .unwrap();
    match s.telegram.poll(&s.account, None).await {
        Err(Error::Unavailable {
            message,
            retry_after: None,
        }) => {
            assert!(
                message.contains("Conflict: can't use getUpdates method while webhook is active"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(
        s.fake.requests_for("getUpdates").len(),
        1,
        "a conflict is not retried"
    );
}

#[tokio::test]
async fn polls_send_offset_timeout_and_update_types_and_keep_raw_updates() {
    let s = setup().await;
    s.telegram
        .start_inbound(&s.account, &setup_webhook(None, "adapter_secret-1"))
        .await
        .unwrap();
    let mut update = s.fake.message(TOKEN, ALICE).text("hi").build();
    update["message"]["field_from_the_future"] = json!({"nested": [1, 2]});
    s.fake.push_update(TOKEN, update.clone()).await;

    let batch = s.telegram.poll(&s.account, None).await.unwrap();
    let sent = params(&s.fake, "getUpdates");
    assert_eq!(sent["timeout"], 1);
    assert_eq!(
        sent["allowed_updates"],
        json!(["message", "edited_message"])
    );
    assert!(
        sent.get("offset").is_none(),
        "no cursor: every pending update"
    );
    assert_eq!(batch.payloads.len(), 1);
    let payload: Value = serde_json::from_slice(&batch.payloads[0]).unwrap();
    assert_eq!(payload, update, "the update is stored as Telegram sent it");
    let next = update["update_id"].as_i64().unwrap() + 1;
    assert_eq!(batch.next_cursor, Some(next.to_string()));

    let batch = s
        .telegram
        .poll(&s.account, Some(&next.to_string()))
        .await
        .unwrap();
    assert_eq!(params(&s.fake, "getUpdates")["offset"], next);
    assert!(batch.payloads.is_empty());
    assert_eq!(batch.next_cursor, None, "an empty poll keeps the cursor");
    assert!(
        s.fake.pending_updates(TOKEN).is_empty(),
        "the offset confirmed the update"
    );

    let result = s.telegram.poll(&s.account, Some("not-a-number")).await;
    assert!(
        matches!(result, Err(Error::InvalidInput { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn edits_and_group_messages_arrive_as_edits_and_ignored_events() {
    let s = setup().await;
    s.telegram
        .start_inbound(&s.account, &setup_webhook(None, "adapter_secret-1"))
        .await
        .unwrap();
    s.fake.add_group(-100_555, "Team");
    let (original, _) = s.fake.message(TOKEN, ALICE).text("typo").push().await;
    let edit = s.fake.edited(TOKEN, &original, "fixed");
    s.fake.push_update(TOKEN, edit).await;
    s.fake
        .message(TOKEN, ALICE)
        .in_group(-100_555)
        .text("hello team")
        .push()
        .await;

    let batch = s.telegram.poll(&s.account, None).await.unwrap();
    let kinds: Vec<InboundKind> = batch
        .payloads
        .iter()
        .flat_map(|payload| s.telegram.parse_inbound(payload).unwrap())
        .map(|event| event.kind)
        .collect();
    assert_eq!(kinds.len(), 3);
    let InboundKind::Message(first) = &kinds[0] else {
        panic!("{:?}", kinds[0])
    };
    let InboundKind::Edited {
        message: edited, ..
    } = &kinds[1]
    else {
        panic!("{:?}", kinds[1])
    };
    assert_eq!(first.platform_message_id, edited.platform_message_id);
    assert_eq!(edited.text, "fixed");
    assert!(matches!(&kinds[2], InboundKind::Ignored { reason } if reason.contains("supergroup")));
}

#[tokio::test]
async fn documents_go_by_url_with_a_caption_and_replies_use_reply_parameters() {
    let s = setup().await;
    let url = s
        .fake
        .host_media("terms.pdf", b"%PDF-1.7".to_vec(), "application/pdf");
    let (question, _) = s.fake.message(TOKEN, ALICE).text("terms?").push().await;
    let question_id = question["message"]["message_id"].as_i64().unwrap();
    let mut reply = message("here you go");
    reply.attachments = vec![OutboundAttachment {
        kind: AttachmentKind::File,
        url: url.clone(),
        name: None,
    }];
    reply.reply_to_platform_message_id = Some(format!("{ALICE}:{question_id}"));
    let sent = s
        .telegram
        .send(&s.account, &target(), &reply)
        .await
        .unwrap();

    let sent_params = params(&s.fake, "sendDocument");
    assert_eq!(sent_params["chat_id"], ALICE);
    assert_eq!(sent_params["document"], url);
    assert_eq!(sent_params["caption"], "here you go");
    assert_eq!(
        sent_params["reply_parameters"],
        json!({"message_id": question_id, "allow_sending_without_reply": true})
    );
    let stored = s.fake.sent_messages(TOKEN).pop().unwrap();
    assert_eq!(
        sent.platform_message_id,
        format!("{ALICE}:{}", stored["message_id"])
    );
    assert_eq!(stored["document"]["file_name"], "terms.pdf");

    let mut bad = message("x");
    bad.reply_to_platform_message_id = Some("msg_123".into());
    let result = s.telegram.send(&s.account, &target(), &bad).await;
    assert!(
        matches!(&result, Err(Error::InvalidInput { param: Some(p), .. }) if p == "replyTo"),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_caption_over_1024_is_message_too_long_with_the_caption_limit() {
    let s = setup().await;
    let url = s.fake.host_media("cat.png", b"PNG".to_vec(), "image/png");
    let mut long = message(&"a".repeat(1025));
    long.attachments = vec![OutboundAttachment {
        kind: AttachmentKind::Image,
        url,
        name: None,
    }];
    match s.telegram.send(&s.account, &target(), &long).await {
        Err(Error::MessageTooLong { limit, actual, .. }) => {
            assert_eq!((limit, actual), (1024, 1025))
        }
        other => panic!("expected MessageTooLong, got {other:?}"),
    }
}

#[tokio::test]
async fn content_telegram_cannot_take_is_refused_without_a_call() {
    let s = setup().await;
    let attachment = |kind| OutboundAttachment {
        kind,
        url: "https://example.com/x".into(),
        name: None,
    };
    let mut video = message("clip");
    video.attachments = vec![attachment(AttachmentKind::Video)];
    let mut two = message("two");
    two.attachments = vec![
        attachment(AttachmentKind::Image),
        attachment(AttachmentKind::Image),
    ];
    let mut tagged = message("tagged");
    tagged.message_tag = Some("HUMAN_AGENT".into());
    for refused in [video, two, tagged] {
        let result = s.telegram.send(&s.account, &target(), &refused).await;
        assert!(
            matches!(result, Err(Error::UnsupportedContent { .. })),
            "{result:?}"
        );
    }
    let result = s.telegram.send(&s.account, &target(), &message("")).await;
    assert!(
        matches!(result, Err(Error::InvalidInput { .. })),
        "{result:?}"
    );
    let sends = s
        .fake
        .requests()
        .iter()
        .filter(|r| r.method.starts_with("send"))
        .count();
    assert_eq!(sends, 0);
}

#[tokio::test]
async fn persistent_server_errors_end_as_unavailable_within_the_budget() {
    let s = setup_with(|builder| {
        builder.retry(RetryConfig {
            budget: Duration::from_millis(300),
            max_attempts: 50,
            backoff: BackoffConfig {
                initial: Duration::from_millis(5),
                max: Duration::from_millis(20),
                multiplier: 2.0,
                jitter: false,
            },
        })
    })
    .await;
    s.fake
        .fail_times(&["sendMessage"], 1000, 502, "Bad Gateway");
    match s
        .telegram
        .send(&s.account, &target(), &message("hello?"))
        .await
    {
        Err(Error::Unavailable {
            message,
            retry_after: None,
        }) => {
            assert!(message.contains("Bad Gateway"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let attempts = s.fake.requests_for("sendMessage").len();
    assert!(
        attempts > 1,
        "retried before giving up ({attempts} attempts)"
    );
    assert!(s.fake.sent_messages(TOKEN).is_empty());
}

#[tokio::test]
async fn inbound_documents_download_with_a_type_and_name() {
    let s = setup().await;
    let (update, _) = s
        .fake
        .message(TOKEN, ALICE)
        .document(
            b"%PDF-1.4 invoice".to_vec(),
            "invoice.pdf",
            "application/pdf",
        )
        .push()
        .await;
    let events = s
        .telegram
        .parse_inbound(&serde_json::to_vec(&update).unwrap())
        .unwrap();
    let InboundKind::Message(inbound) = &events[0].kind else {
        panic!("{events:?}")
    };
    let attachment = &inbound.attachments[0];
    assert_eq!(attachment.kind, AttachmentKind::File);
    assert_eq!(attachment.name.as_deref(), Some("invoice.pdf"));
    assert!(attachment.url.starts_with("tg-file:"));
    assert!(!attachment.url.contains(TOKEN));

    let media = s
        .telegram
        .fetch_attachment(&s.account, &attachment.url)
        .await
        .unwrap();
    assert_eq!(media.bytes, b"%PDF-1.4 invoice");
    assert_eq!(media.mime_type.as_deref(), Some("application/pdf"));
    assert!(media.name.unwrap().ends_with(".pdf"));

    for bad in ["https://example.com/a.png", "tg-file:", "tg-file:has space"] {
        let result = s.telegram.fetch_attachment(&s.account, bad).await;
        assert!(
            matches!(result, Err(Error::InvalidInput { .. })),
            "{bad}: {result:?}"
        );
    }
    let result = s
        .telegram
        .fetch_attachment(&s.account, "tg-file:unknown")
        .await;
    assert!(
        matches!(&result, Err(Error::Platform { code, .. }) if code == "400"),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_token_never_appears_in_errors_or_debug_output() {
    // A port nothing listens on: every call fails in transport, whose errors carry URLs.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let config = TelegramConfig::builder(closed)
        .retry(RetryConfig {
            max_attempts: 2,
            ..RetryConfig::default()
        })
        .build()
        .unwrap();
    let telegram = Telegram::new(config).unwrap();
    let error = telegram
        .connect(&json!({"botToken": TOKEN}))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    for text in [
        error.to_string(),
        format!("{error:?}"),
        format!("{telegram:?}"),
    ] {
        assert!(
            !text.contains("AAH-adapter-test_token"),
            "the token leaked: {text}"
        );
    }
}
