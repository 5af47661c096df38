//! Runs the shared `Platform` conformance suite against `FakeInstagram`, one test per case.

use inbox_platform_instagram::{Instagram, InstagramConfig};
use inbox_testkit::fakes::instagram::{APP_ID, APP_SECRET, FakeInstagram};
use secrecy::SecretString;

/// A fresh fake and an adapter pointed at it, with the production retry budget.
async fn setup() -> (Instagram, FakeInstagram) {
    let fake = FakeInstagram::start().await;
    let config = InstagramConfig::builder()
        .api_base(fake.base_url())
        .oauth_base(fake.base_url())
        .app(
            Some(APP_ID.to_owned()),
            Some(SecretString::from(APP_SECRET)),
        )
        .meta_app_secret(Some(SecretString::from("the-meta-app-secret")))
        .verify_token(Some(SecretString::from("verify-token")))
        .build()
        .expect("valid configuration");
    (Instagram::new(config).expect("adapter"), fake)
}

inbox_testkit::platform_conformance!(setup);
