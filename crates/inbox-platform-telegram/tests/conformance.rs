//! Runs the shared `Platform` conformance suite against `FakeTelegram`, one test per case.

use std::time::Duration;

use inbox_platform_telegram::{Telegram, TelegramConfig};
use inbox_testkit::fakes::telegram::FakeTelegram;

/// A fresh fake and an adapter pointed at it. The short long poll keeps the "nothing new"
/// poll quick; everything else is the production default (20 s retry budget).
async fn setup() -> (Telegram, FakeTelegram) {
    let fake = FakeTelegram::start().await;
    let config = TelegramConfig::builder(fake.base_url())
        .long_poll_timeout(Duration::from_secs(1))
        .build()
        .expect("valid configuration");
    (Telegram::new(config).expect("adapter"), fake)
}

inbox_testkit::platform_conformance!(setup);
