//! Runs the shared `Platform` conformance suite against `FakeGraph` faking the WhatsApp Cloud
//! API, one test per case.

use inbox_platform_whatsapp::{WhatsApp, WhatsAppConfig};
use inbox_testkit::fakes::graph::{APP_SECRET, FakeGraph, FakeWhatsApp};
use secrecy::SecretString;

/// A fresh fake and an adapter pointed at it, with the production retry budget.
async fn setup() -> (WhatsApp, FakeWhatsApp) {
    let fake = FakeGraph::start().await;
    let config = WhatsAppConfig::builder()
        .graph_base(fake.base_url())
        .app_secret(Some(SecretString::from(APP_SECRET)))
        .verify_token(Some(SecretString::from("verify-token")))
        .build()
        .expect("valid configuration");
    (WhatsApp::new(config).expect("adapter"), FakeWhatsApp(fake))
}

inbox_testkit::platform_conformance!(setup);
