//! WhatsApp-specific behaviour the shared conformance suite does not cover: starting
//! conversations with templates, `to` versus `recipient` for business-scoped ids, marking read
//! by the newest inbound message, media downloads with the account's token, the WABA
//! subscription, and the Cloud API's window and template errors.

use inbox_core::{
    AccountContext, AccountId, ConversationTarget, Error, InboundSetup, OutboundMessage, Platform,
    Template,
};
use inbox_platform_whatsapp::{WhatsApp, WhatsAppConfig};
use inbox_testkit::fakes::{
    graph::{APP_SECRET, FakeGraph, MetaOp, WhatsAppContact},
    meta::Injected,
};
use secrecy::SecretString;
use serde_json::json;

const PHONE: &str = "106540352242922";
const WABA: &str = "102290129340398";
const CONTACT: &str = "16505551234";

async fn setup() -> (WhatsApp, FakeGraph, AccountContext) {
    let fake = FakeGraph::start().await;
    let config = WhatsAppConfig::builder()
        .graph_base(fake.base_url())
        .app_secret(Some(SecretString::from(APP_SECRET)))
        .build()
        .unwrap();
    let whatsapp = WhatsApp::new(config).unwrap();
    let token = fake.add_phone_number(PHONE, "15550783881", "Shop", WABA);
    fake.add_contact(
        PHONE,
        WhatsAppContact {
            wa_id: Some(CONTACT.into()),
            user_id: None,
            name: "Sheena".into(),
        },
    );
    let connected = whatsapp
        .connect(&json!({"phoneNumberId": PHONE, "accessToken": token, "wabaId": WABA}))
        .await
        .unwrap();
    assert_eq!(
        (connected.name.as_str(), connected.username.as_deref()),
        ("Shop", Some("15550783881"))
    );
    let context = AccountContext {
        id: AccountId::new(),
        platform_account_id: connected.platform_account_id,
        credentials: connected.credentials,
        inbound_secret: None,
    };
    (whatsapp, fake, context)
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

fn template(name: &str) -> OutboundMessage {
    OutboundMessage {
        template: Some(Template {
            name: name.into(),
            language: "en_US".into(),
            components: vec![
                json!({"type": "body", "parameters": [{"type": "text", "text": "Ada"}]}),
            ],
        }),
        ..message("")
    }
}

#[tokio::test]
async fn conversations_start_with_a_template_only() {
    let (whatsapp, fake, account) = setup().await;
    let refused = whatsapp
        .start_conversation(&account, "+1 650 555 0000", &message("hi"))
        .await;
    assert!(
        matches!(refused, Err(Error::MessagingWindowClosed { .. })),
        "{refused:?}"
    );
    assert_eq!(fake.calls(MetaOp::Send), 0);
    let started = whatsapp
        .start_conversation(&account, "+1 (650) 555-0000", &template("hello_world"))
        .await
        .unwrap();
    assert_eq!(started.platform_conversation_id, "16505550000");
    let sent = fake.whatsapp_sent(PHONE).pop().unwrap();
    assert_eq!(sent["to"], "16505550000");
    assert_eq!(sent["template"]["components"][0]["type"], "body");
    let unknown = whatsapp
        .start_conversation(&account, "16505550000", &template("nope"))
        .await;
    assert!(
        matches!(&unknown, Err(Error::InvalidInput { param: Some(p), .. }) if p == "template"),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn business_scoped_ids_go_in_recipient() {
    let (whatsapp, fake, account) = setup().await;
    let bsuid = "US.13491208655302741918";
    fake.open_window(PHONE, bsuid);
    let target = ConversationTarget {
        platform_conversation_id: bsuid.into(),
        participant_id: bsuid.into(),
        last_inbound_platform_message_id: None,
    };
    whatsapp
        .send(&account, &target, &message("hi"))
        .await
        .unwrap();
    let sent = fake.whatsapp_sent(PHONE).pop().unwrap();
    assert_eq!(
        (sent["recipient"].clone(), sent.get("to").cloned()),
        (json!(bsuid), None)
    );
}

#[tokio::test]
async fn reads_media_subscriptions_and_window_errors() {
    let (whatsapp, fake, account) = setup().await;
    let setup = InboundSetup {
        webhook_url: None,
        secret: SecretString::from("x"),
    };
    whatsapp.start_inbound(&account, &setup).await.unwrap();
    assert!(fake.waba_subscribed(WABA));
    let target = ConversationTarget {
        platform_conversation_id: CONTACT.into(),
        participant_id: CONTACT.into(),
        last_inbound_platform_message_id: Some("wamid.newest".into()),
    };
    whatsapp.mark_read(&account, &target).await.unwrap();
    assert_eq!(fake.whatsapp_read(PHONE), ["wamid.newest"]);
    let id = fake.upload_media(b"voice bytes".to_vec(), "audio/ogg");
    let media = whatsapp
        .fetch_attachment(&account, &format!("wa-media:{id}"))
        .await
        .unwrap();
    assert_eq!(
        (media.bytes.as_slice(), media.mime_type.as_deref()),
        (&b"voice bytes"[..], Some("audio/ogg"))
    );
    assert!(
        whatsapp
            .fetch_attachment(&account, "wa-media:../../me")
            .await
            .is_err()
    );
    fake.open_window(PHONE, CONTACT);
    fake.inject(
        MetaOp::Send,
        1,
        Injected::Error {
            status: 400,
            code: 131_047,
            subcode: None,
            message: "(#131047) Re-engagement message".into(),
        },
    );
    let refused = whatsapp.send(&account, &target, &message("late")).await;
    assert!(
        matches!(refused, Err(Error::MessagingWindowClosed { .. })),
        "{refused:?}"
    );
}
