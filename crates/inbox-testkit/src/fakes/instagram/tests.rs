//! The fake's token lifecycle and OAuth endpoints, checked with plain HTTP.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::Client::new().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn tokens_are_exchanged_refreshed_and_expire() {
    let fake = FakeInstagram::start().await;
    let long = fake.add_account("17841400000000001", "shop", "Shop");
    let short = fake.issue_token("17841400000000001", false);
    let base = fake.base_url().to_owned();
    let (status, exchanged) = get(format!("{base}/access_token?grant_type=ig_exchange_token&client_secret={APP_SECRET}&access_token={short}")).await;
    assert_eq!(status, 200, "{exchanged}");
    assert_eq!(exchanged["expires_in"], 5_184_000);
    let (status, _) = get(format!("{base}/access_token?grant_type=ig_exchange_token&client_secret={APP_SECRET}&access_token={long}")).await;
    assert_eq!(status, 400, "long-lived tokens are not exchanged");
    // Too young to refresh; a day later it is refreshed.
    let refresh =
        format!("{base}/refresh_access_token?grant_type=ig_refresh_token&access_token={long}");
    let (status, error) = get(refresh.clone()).await;
    assert_eq!((status, error["error"]["code"].clone()), (400, json!(100)));
    fake.age_token(&long, Duration::from_secs(2 * 86_400));
    let (status, refreshed) = get(refresh.clone()).await;
    assert_eq!(status, 200, "{refreshed}");
    fake.expire_token(&long);
    let (status, error) = get(refresh).await;
    assert_eq!(
        (
            status,
            error["error"]["code"].clone(),
            error["error"]["error_subcode"].clone()
        ),
        (401, json!(190), json!(463))
    );
}

#[tokio::test]
async fn oauth_redirects_with_a_code_and_answers_both_shapes() {
    let fake = FakeInstagram::start().await;
    fake.add_account("17841400000000001", "shop", "Shop");
    let base = fake.base_url().to_owned();
    let redirect = "https://gw.example/api/v1/oauth/instagram/callback";
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for wrapped in [false, true] {
        fake.set_oauth_wrapped(wrapped);
        let answer = client
            .get(format!("{base}/oauth/authorize?client_id={APP_ID}&redirect_uri={redirect}&response_type=code&scope=instagram_business_basic&state=s"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 302);
        let location = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(location.fragment(), Some("_"));
        let code = location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let form = [
            ("client_id", APP_ID),
            ("client_secret", APP_SECRET),
            ("grant_type", "authorization_code"),
            ("redirect_uri", redirect),
            ("code", code.as_str()),
        ];
        let token: Value = client
            .post(format!("{base}/oauth/access_token"))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let inner = if wrapped { &token["data"][0] } else { &token };
        assert!(
            inner["access_token"].as_str().unwrap().starts_with("IGQV"),
            "{token}"
        );
        let again = client
            .post(format!("{base}/oauth/access_token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 400, "codes are single-use");
    }
}

#[tokio::test]
async fn me_and_profiles() {
    let fake = FakeInstagram::start().await;
    let token = fake.add_account("17841400000000001", "shop", "Shop");
    fake.add_user("17841400000000001", "8765", "Ada", "ada");
    let client = reqwest::Client::new();
    let me: Value = client
        .get(format!(
            "{}/v24.0/me?fields=user_id,username,name",
            fake.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], "17841400000000001");
    assert_ne!(me["id"], me["user_id"], "`id` is app-scoped");
    let profile = client
        .get(format!(
            "{}/v24.0/8765?fields=name,username",
            fake.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), 400, "no consent before the person writes");
    fake.set_last_inbound("17841400000000001", "8765", now_ms());
    let profile: Value = client
        .get(format!(
            "{}/v24.0/8765?fields=name,username",
            fake.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        profile,
        json!({"id": "8765", "name": "Ada", "username": "ada"})
    );
}
