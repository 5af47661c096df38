//! Runs the shared `Platform` conformance suite against `FakeGraph` faking Messenger, one test
//! per case.

use inbox_platform_facebook::{Facebook, FacebookConfig};
use inbox_testkit::fakes::graph::{APP_ID, APP_SECRET, FakeGraph, FakeMessenger};
use secrecy::SecretString;

/// A fresh fake and an adapter pointed at it, with the production retry budget.
async fn setup() -> (Facebook, FakeMessenger) {
    let fake = FakeGraph::start().await;
    let config = FacebookConfig::builder()
        .graph_base(fake.base_url())
        .oauth_base(fake.base_url())
        .app(
            Some(APP_ID.to_owned()),
            Some(SecretString::from(APP_SECRET)),
        )
        .verify_token(Some(SecretString::from("verify-token")))
        .build()
        .expect("valid configuration");
    (Facebook::new(config).expect("adapter"), FakeMessenger(fake))
}

inbox_testkit::platform_conformance!(setup);
