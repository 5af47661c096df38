//! Runs the shared `Platform` conformance suite against `FakeX` twice: with the adapter polling
//! `GET /2/dm_events` (the default) and with it receiving Account Activity webhooks (a
//! consumer secret configured).

use inbox_platform_x::{X, XConfig};
use inbox_testkit::fakes::x::{CLIENT_ID, CLIENT_SECRET, CONSUMER_SECRET, FakeX};
use secrecy::SecretString;

async fn adapter(webhooks: bool) -> (X, FakeX) {
    let fake = FakeX::start().await;
    let config = XConfig::builder(fake.base_url(), CLIENT_ID)
        .authorize_url(fake.authorize_url())
        .client_secret(Some(SecretString::from(CLIENT_SECRET)))
        .consumer_secret(webhooks.then(|| SecretString::from(CONSUMER_SECRET)))
        .build()
        .expect("valid configuration");
    (X::new(config).expect("adapter"), fake)
}

async fn polling() -> (X, FakeX) {
    adapter(false).await
}

async fn webhooks() -> (X, FakeX) {
    adapter(true).await
}

mod polled {
    inbox_testkit::platform_conformance!(super::polling);
}

mod pushed {
    inbox_testkit::platform_conformance!(super::webhooks);
}
