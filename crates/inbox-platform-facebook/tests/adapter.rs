//! Messenger-specific behaviour the shared conformance suite does not cover: the exact Send API
//! bodies (`RESPONSE`, `MESSAGE_TAG` + `HUMAN_AGENT`), Page subscriptions, Facebook Login with
//! one account per Page granted, names from first and last name, and mismatched credentials.

use inbox_core::{
    AccountContext, AccountId, AttachmentKind, ConversationTarget, Error, InboundMode,
    InboundSetup, OAuthCallback, OAuthRequest, OutboundAttachment, OutboundMessage, Platform,
};
use inbox_platform_facebook::{Facebook, FacebookConfig};
use inbox_testkit::fakes::{
    graph::{APP_ID, APP_SECRET, FakeGraph, MetaOp},
    meta::now_ms,
};
use secrecy::SecretString;
use serde_json::json;

const PAGE: &str = "104857600000001";
const PSID: &str = "24681357900000001";

async fn setup() -> (Facebook, FakeGraph, AccountContext) {
    let fake = FakeGraph::start().await;
    let config = FacebookConfig::builder()
        .graph_base(fake.base_url())
        .oauth_base(fake.base_url())
        .app(
            Some(APP_ID.to_owned()),
            Some(SecretString::from(APP_SECRET)),
        )
        .build()
        .unwrap();
    let facebook = Facebook::new(config).unwrap();
    let token = fake.add_page(PAGE, "Shop", Some("shop"));
    fake.add_psid(PAGE, PSID, "Ada", Some("Lovelace"));
    let connected = facebook
        .connect(&json!({"pageId": PAGE, "pageAccessToken": token}))
        .await
        .unwrap();
    let context = AccountContext {
        id: AccountId::new(),
        platform_account_id: connected.platform_account_id,
        credentials: connected.credentials,
        inbound_secret: None,
    };
    (facebook, fake, context)
}

fn target() -> ConversationTarget {
    ConversationTarget {
        platform_conversation_id: PSID.into(),
        participant_id: PSID.into(),
        last_inbound_platform_message_id: None,
    }
}

fn message(text: &str, tag: Option<&str>) -> OutboundMessage {
    OutboundMessage {
        text: text.to_owned(),
        attachments: Vec::new(),
        reply_to_platform_message_id: None,
        message_tag: tag.map(str::to_owned),
        template: None,
    }
}

#[tokio::test]
async fn replies_are_responses_and_human_agent_is_a_tag() {
    let (facebook, fake, account) = setup().await;
    fake.set_last_inbound(PAGE, PSID, now_ms());
    facebook
        .send(&account, &target(), &message("hi", None))
        .await
        .unwrap();
    let mut image = message("", None);
    image.attachments.push(OutboundAttachment {
        kind: AttachmentKind::Image,
        url: "https://cdn.example.com/a.png".into(),
        name: None,
    });
    facebook.send(&account, &target(), &image).await.unwrap();
    fake.set_last_inbound(PAGE, PSID, now_ms() - 3 * 86_400_000);
    let refused = facebook
        .send(&account, &target(), &message("late", None))
        .await;
    assert!(
        matches!(refused, Err(Error::MessagingWindowClosed { .. })),
        "{refused:?}"
    );
    facebook
        .send(&account, &target(), &message("late", Some("HUMAN_AGENT")))
        .await
        .unwrap();
    let sent = fake.page_sent(PAGE);
    let shapes: Vec<_> = sent
        .iter()
        .map(|s| {
            (
                s["messaging_type"].clone(),
                s["tag"].clone(),
                s["attachment_type"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            (json!("RESPONSE"), json!(null), json!(null)),
            (json!("RESPONSE"), json!(null), json!("image")),
            (json!("MESSAGE_TAG"), json!("HUMAN_AGENT"), json!(null)),
        ]
    );
}

#[tokio::test]
async fn inbound_subscribes_the_page_and_undoes_it() {
    let (facebook, fake, account) = setup().await;
    let setup = InboundSetup {
        webhook_url: None,
        secret: SecretString::from("unused"),
    };
    assert_eq!(
        facebook.start_inbound(&account, &setup).await.unwrap(),
        InboundMode::WebhookPerApp
    );
    let fields = fake.page_subscription(PAGE).unwrap();
    for field in [
        "messages",
        "message_echoes",
        "message_deliveries",
        "message_reads",
        "message_reactions",
        "message_edits",
    ] {
        assert!(fields.split(',').any(|f| f == field), "{field} in {fields}");
    }
    facebook.stop_inbound(&account).await.unwrap();
    assert_eq!(fake.page_subscription(PAGE), None);
}

#[tokio::test]
async fn facebook_login_gives_one_account_per_page_that_may_message() {
    let (facebook, fake, _) = setup().await;
    fake.add_page("104857600000002", "Other", None);
    fake.add_login_user(
        "u1",
        "Ada",
        &[(PAGE, &["MESSAGING"]), ("104857600000002", &["ANALYZE"])],
    );
    let redirect = "https://gw.example/api/v1/oauth/facebook/callback";
    let url = facebook
        .oauth_authorize_url(&OAuthRequest {
            state: "s1".into(),
            redirect_uri: redirect.into(),
            code_challenge: None,
        })
        .unwrap();
    assert!(
        url.contains("pages_messaging") && url.contains("state=s1"),
        "{url}"
    );
    let answer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let accounts = facebook
        .oauth_exchange(&OAuthCallback {
            code,
            redirect_uri: redirect.into(),
            code_verifier: None,
        })
        .await
        .unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].platform_account_id, PAGE);
    assert_eq!(
        accounts[0].credentials_expire_at, None,
        "Page tokens do not expire"
    );
    assert_eq!(
        fake.calls(MetaOp::TokenExchange),
        2,
        "code, then fb_exchange_token"
    );
}

#[tokio::test]
async fn names_and_mismatched_credentials() {
    let (facebook, fake, account) = setup().await;
    fake.set_last_inbound(PAGE, PSID, now_ms());
    let person = facebook.fetch_participant(&account, PSID).await.unwrap();
    assert_eq!(person.name, "Ada Lovelace");
    let other = fake.add_page("104857600000009", "Another", None);
    let result = facebook
        .connect(&json!({"pageId": PAGE, "pageAccessToken": other}))
        .await;
    assert!(
        matches!(&result, Err(Error::InvalidInput { param: Some(p), .. }) if p.starts_with("credentials.")),
        "{result:?}"
    );
}
