//! Runs the shared `Platform` conformance suite against `FakeBluesky`, one test per case.

use inbox_platform_bluesky::{Bluesky, BlueskyConfig};
use inbox_testkit::fakes::bluesky::FakeBluesky;

async fn setup() -> (Bluesky, FakeBluesky) {
    let fake = FakeBluesky::start().await;
    let config = BlueskyConfig::builder(fake.base_url())
        .build()
        .expect("valid configuration");
    (Bluesky::new(config).expect("adapter"), fake)
}

inbox_testkit::platform_conformance!(setup);
