//! Instagram-specific behaviour the shared conformance suite does not cover: the token
//! lifecycle (exchange of short-lived tokens, refresh, 190), both shapes of the OAuth code
//! exchange, the exact Send API bodies (`HUMAN_AGENT`), profile lookups, signatures with
//! either secret, and the handshake.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use inbox_core::{
    AccountContext, AccountId, ConversationTarget, Error, OAuthCallback, OAuthRequest,
    OutboundMessage, Platform, Timestamp, WebhookRequest,
};
use inbox_platform_instagram::{Instagram, InstagramConfig};
use inbox_testkit::fakes::{
    instagram::{APP_ID, APP_SECRET, FakeInstagram, MetaOp},
    meta::{hub_signature, now_ms},
};
use secrecy::SecretString;
use serde_json::{Value, json};

const IG: &str = "17841400000000001";
const USER: &str = "8765432109876543";
const META_SECRET: &str = "the-meta-app-secret";

async fn setup() -> (Instagram, FakeInstagram) {
    let fake = FakeInstagram::start().await;
    let config = InstagramConfig::builder()
        .api_base(fake.base_url())
        .oauth_base(fake.base_url())
        .app(
            Some(APP_ID.to_owned()),
            Some(SecretString::from(APP_SECRET)),
        )
        .meta_app_secret(Some(SecretString::from(META_SECRET)))
        .verify_token(Some(SecretString::from("verify-token")))
        .build()
        .unwrap();
    (Instagram::new(config).unwrap(), fake)
}

fn context(account: inbox_core::ConnectedAccount) -> AccountContext {
    AccountContext {
        id: AccountId::new(),
        platform_account_id: account.platform_account_id,
        credentials: account.credentials,
        inbound_secret: None,
    }
}

fn token_of(context: &AccountContext) -> String {
    let value: Value = serde_json::from_str(context.credentials.expose_json()).unwrap();
    value["accessToken"].as_str().unwrap().to_owned()
}

fn text(text: &str, tag: Option<&str>) -> OutboundMessage {
    OutboundMessage {
        text: text.to_owned(),
        attachments: Vec::new(),
        reply_to_platform_message_id: None,
        message_tag: tag.map(str::to_owned),
        template: None,
    }
}

#[tokio::test]
async fn short_lived_tokens_are_exchanged_and_expiry_is_known() {
    let (instagram, fake) = setup().await;
    fake.add_account(IG, "shop", "Shop");
    let short = fake.issue_token(IG, false);
    let connected = instagram
        .connect(&json!({"accessToken": short}))
        .await
        .unwrap();
    assert_eq!(
        connected.platform_account_id, IG,
        "`user_id`, not the app-scoped `id`"
    );
    let stored = token_of(&context(connected.clone()));
    assert_ne!(stored, short);
    assert!(fake.token_info(&stored).unwrap().long_lived);
    let expires = connected.credentials_expire_at.unwrap();
    let in_60_days = Timestamp::now() + Duration::from_secs(60 * 86_400);
    assert!(expires <= in_60_days && expires > in_60_days - Duration::from_secs(60));
}

#[tokio::test]
async fn refresh_renews_and_190_requires_reauth() {
    let (instagram, fake) = setup().await;
    let token = fake.add_account(IG, "shop", "Shop");
    let account = context(
        instagram
            .connect(&json!({"accessToken": token}))
            .await
            .unwrap(),
    );
    // Younger than a day: Instagram refuses, which is not a revocation.
    let refused = instagram.refresh_credentials(&account).await;
    assert!(
        matches!(refused, Err(Error::Platform { .. })),
        "{refused:?}"
    );
    fake.age_token(&token_of(&account), Duration::from_secs(2 * 86_400));
    let refreshed = instagram.refresh_credentials(&account).await.unwrap();
    let new_token: Value = serde_json::from_str(refreshed.credentials.expose_json()).unwrap();
    assert_ne!(new_token["accessToken"], token_of(&account));
    assert!(refreshed.expires_at.unwrap() > Timestamp::now() + Duration::from_secs(59 * 86_400));
    fake.expire_token(&token_of(&account));
    assert!(matches!(
        instagram.refresh_credentials(&account).await,
        Err(Error::ReauthRequired { .. })
    ));
}

#[tokio::test]
async fn oauth_reads_both_answer_shapes_and_strips_the_fragment() {
    let (instagram, fake) = setup().await;
    fake.add_account(IG, "shop", "Shop");
    let redirect = "https://gw.example/api/v1/oauth/instagram/callback";
    for wrapped in [false, true] {
        fake.set_oauth_wrapped(wrapped);
        let url = instagram
            .oauth_authorize_url(&OAuthRequest {
                state: "s1".into(),
                redirect_uri: redirect.into(),
                code_challenge: None,
            })
            .unwrap();
        assert!(
            url.contains("scope=instagram_business_basic%2Cinstagram_business_manage_messages"),
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
        let location = answer.headers()["location"].to_str().unwrap().to_owned();
        let code = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let accounts = instagram
            .oauth_exchange(&OAuthCallback {
                code: format!("{code}#_"),
                redirect_uri: redirect.into(),
                code_verifier: None,
            })
            .await
            .unwrap();
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].username.as_deref(), Some("shop"));
        assert!(accounts[0].credentials_expire_at.is_some());
    }
    let reused = instagram
        .oauth_exchange(&OAuthCallback {
            code: "AQBnever".into(),
            redirect_uri: redirect.into(),
            code_verifier: None,
        })
        .await;
    assert!(
        matches!(&reused, Err(Error::InvalidInput { param: Some(p), .. }) if p == "code"),
        "{reused:?}"
    );
}

#[tokio::test]
async fn oauth_without_the_app_is_a_clear_error() {
    let fake = FakeInstagram::start().await;
    let config = InstagramConfig::builder()
        .api_base(fake.base_url())
        .build()
        .unwrap();
    let instagram = Instagram::new(config).unwrap();
    let request = OAuthRequest {
        state: "s".into(),
        redirect_uri: "https://gw.example/cb".into(),
        code_challenge: None,
    };
    match instagram.oauth_authorize_url(&request) {
        Err(Error::Unavailable { message, .. }) => {
            assert!(message.contains("INBOX_INSTAGRAM_APP_ID"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn sends_carry_the_human_agent_tag_and_windows_map() {
    let (instagram, fake) = setup().await;
    let token = fake.add_account(IG, "shop", "Shop");
    fake.add_user(IG, USER, "Ada", "ada");
    let account = context(
        instagram
            .connect(&json!({"accessToken": token}))
            .await
            .unwrap(),
    );
    let target = ConversationTarget {
        platform_conversation_id: USER.into(),
        participant_id: USER.into(),
        last_inbound_platform_message_id: None,
    };
    fake.set_last_inbound(IG, USER, now_ms() - 3 * 86_400_000);
    let refused = instagram.send(&account, &target, &text("late", None)).await;
    assert!(
        matches!(refused, Err(Error::MessagingWindowClosed { .. })),
        "{refused:?}"
    );
    instagram
        .send(&account, &target, &text("late", Some("HUMAN_AGENT")))
        .await
        .unwrap();
    let body = fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.op == Some(MetaOp::Send) && r.status == 200)
        .unwrap()
        .body;
    assert_eq!(
        body,
        json!({"recipient": {"id": USER}, "message": {"text": "late"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"})
    );
    let profile = instagram.fetch_participant(&account, USER).await.unwrap();
    assert_eq!(
        (profile.name.as_str(), profile.username.as_deref()),
        ("Ada", Some("ada"))
    );
    instagram.mark_read(&account, &target).await.unwrap();
    assert_eq!(fake.calls(MetaOp::MarkRead), 1);
}

fn signed(body: &[u8], secret: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&hub_signature(secret, body)).unwrap(),
    );
    headers
}

#[tokio::test]
async fn either_secret_verifies_and_the_handshake_needs_the_token() {
    let (instagram, _fake) = setup().await;
    let body = br#"{"object":"instagram","entry":[]}"#;
    for secret in [APP_SECRET, META_SECRET] {
        let headers = signed(body, secret);
        let request = WebhookRequest {
            method: &Method::POST,
            headers: &headers,
            query: None,
            body,
        };
        assert!(instagram.verify_webhook(&request, None).is_ok(), "{secret}");
    }
    let headers = signed(body, "someone-else");
    let request = WebhookRequest {
        method: &Method::POST,
        headers: &headers,
        query: None,
        body,
    };
    assert!(matches!(
        instagram.verify_webhook(&request, None),
        Err(Error::WebhookVerification { .. })
    ));
    let empty = HeaderMap::new();
    let handshake = |query: &'static str| {
        instagram.handshake(&WebhookRequest {
            method: &Method::GET,
            headers: &empty,
            query: Some(query),
            body: b"",
        })
    };
    assert_eq!(
        handshake("hub.mode=subscribe&hub.challenge=42&hub.verify_token=verify-token")
            .unwrap()
            .body,
        "42"
    );
    assert!(handshake("hub.mode=subscribe&hub.challenge=42&hub.verify_token=nope").is_err());
}
