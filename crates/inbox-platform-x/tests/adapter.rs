//! X-specific behaviour beyond the shared suite, against `FakeX`: a backlog read over several
//! polls when one poll may read a single page (the resume cursor), refresh-token rotation (a
//! spent token is refused, so only the newest pair works), and the OAuth 2.0 PKCE exchange.

use inbox_core::{
    AccountContext, AccountId, Error, InboundKind, OAuthCallback, OAuthRequest, Platform,
};
use inbox_platform_x::{X, XConfig};
use inbox_testkit::fakes::x::{CLIENT_ID, CLIENT_SECRET, FakeX, XEndpoint};
use secrecy::SecretString;
use serde_json::json;

fn adapter(fake: &FakeX, max_pages: u32) -> X {
    X::new(
        XConfig::builder(fake.base_url(), CLIENT_ID)
            .authorize_url(fake.authorize_url())
            .client_secret(Some(SecretString::from(CLIENT_SECRET)))
            .max_pages(max_pages)
            .build()
            .unwrap(),
    )
    .unwrap()
}

async fn account(x: &X, fake: &FakeX, user: &str) -> AccountContext {
    fake.add_user(user, "Support", "support");
    let (access, refresh) = fake.issue_tokens(user);
    let connected = x
        .connect(&json!({"accessToken": access, "refreshToken": refresh, "expiresAt": "2099-01-01T00:00:00Z"}))
        .await
        .unwrap();
    AccountContext {
        id: AccountId::new(),
        platform_account_id: connected.platform_account_id,
        credentials: connected.credentials,
        inbound_secret: None,
    }
}

fn texts(x: &X, payloads: &[Vec<u8>]) -> Vec<String> {
    payloads
        .iter()
        .flat_map(|p| x.parse_inbound(p).unwrap())
        .filter_map(|e| match e.kind {
            InboundKind::Message(m) => Some(m.text),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_backlog_larger_than_one_poll_continues_without_skipping() {
    let fake = FakeX::start().await;
    fake.set_rate_window(100_000, std::time::Duration::from_secs(60));
    let x = adapter(&fake, 1);
    let ctx = account(&x, &fake, "1001").await;
    fake.add_user("2002", "Alice", "alice");
    let mut cursor = x.poll(&ctx, None).await.unwrap().next_cursor;
    let sent: Vec<String> = (0..250).map(|n| format!("dm {n:03}")).collect();
    for text in &sent {
        fake.dm("2002", "1001", text).await;
    }
    let mut received = Vec::new();
    let mut resumed = false;
    for _ in 0..10 {
        let batch = x.poll(&ctx, cursor.as_deref()).await.unwrap();
        resumed |= batch
            .next_cursor
            .as_deref()
            .is_some_and(|c| c.contains(':'));
        received.extend(texts(&x, &batch.payloads));
        cursor = batch.next_cursor;
    }
    assert!(resumed, "one page per poll needed the resume cursor");
    // A catch-up stores the newest page first, then older ones: every DM exactly once.
    let mut got = received.clone();
    got.sort();
    assert_eq!(got, sent, "every DM once: {received:?}");
    fake.dm("2002", "1001", "after the backlog").await;
    let batch = x.poll(&ctx, cursor.as_deref()).await.unwrap();
    assert_eq!(texts(&x, &batch.payloads), ["after the backlog"]);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_spent_one_is_final() {
    let fake = FakeX::start().await;
    let x = adapter(&fake, 5);
    let ctx = account(&x, &fake, "1001").await;
    let renewed = x.refresh_credentials(&ctx).await.unwrap();
    assert!(renewed.expires_at.is_some());
    let newer = AccountContext {
        credentials: renewed.credentials.clone(),
        ..ctx.clone()
    };
    // The old document's refresh token was spent by the first refresh.
    match x.refresh_credentials(&ctx).await {
        Err(Error::ReauthRequired { message, .. }) => assert!(message.contains("refresh token")),
        other => panic!("a spent refresh token must be final: {other:?}"),
    }
    x.refresh_credentials(&newer).await.unwrap();
    let uses: Vec<bool> = fake.refresh_uses().iter().map(|u| u.accepted).collect();
    assert_eq!(uses, [true, false, true]);
}

#[tokio::test]
async fn the_pkce_exchange_checks_the_verifier() {
    let fake = FakeX::start().await;
    let x = adapter(&fake, 5);
    fake.add_user("1001", "Support", "support");
    fake.consent_as("1001");
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let url = x
        .oauth_authorize_url(&OAuthRequest {
            state: "s1".into(),
            redirect_uri: "https://gw.example/api/v1/oauth/x/callback".into(),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        })
        .unwrap();
    assert!(
        url.contains("offline.access") && url.contains("code_challenge_method=S256"),
        "{url}"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let consent = http.get(&url).send().await.unwrap();
    let location = url::Url::parse(consent.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let callback = |verifier: &str| OAuthCallback {
        code: code.clone(),
        redirect_uri: "https://gw.example/api/v1/oauth/x/callback".into(),
        code_verifier: Some(verifier.into()),
    };
    let wrong = x.oauth_exchange(&callback("not-the-verifier")).await;
    assert!(
        matches!(wrong, Err(Error::InvalidInput { .. })),
        "{wrong:?}"
    );
    // The code is single-use: a wrong verifier spent it, as at X. A fresh consent works.
    let consent = http.get(&url).send().await.unwrap();
    let location = url::Url::parse(consent.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let accounts = x
        .oauth_exchange(&OAuthCallback {
            code,
            redirect_uri: "https://gw.example/api/v1/oauth/x/callback".into(),
            code_verifier: Some(verifier.into()),
        })
        .await
        .unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].platform_account_id, "1001");
    assert!(accounts[0].credentials_expire_at.is_some());
    assert_eq!(fake.requests(XEndpoint::Token).len(), 2);
}
