//! Runs the shared `Platform` conformance suite against `FakeReddit`, one test per case.

use inbox_platform_reddit::{Reddit, RedditConfig};
use inbox_testkit::fakes::reddit::{CLIENT_ID, CLIENT_SECRET, FakeReddit};
use secrecy::SecretString;

/// The User-Agent the tests identify with, as operators must.
pub const USER_AGENT: &str = "linux:dev.inboxgw.conformance:v0.1.0 (by /u/inboxgw)";

async fn setup() -> (Reddit, FakeReddit) {
    let fake = FakeReddit::start().await;
    let config = RedditConfig::builder(CLIENT_ID, USER_AGENT)
        .api_base(fake.base_url())
        .www_base(fake.base_url())
        .client_secret(Some(SecretString::from(CLIENT_SECRET)))
        .build()
        .expect("valid configuration");
    (Reddit::new(config).expect("adapter"), fake)
}

inbox_testkit::platform_conformance!(setup);
