//! Capabilities are coherent, and every operation they say is absent answers `NotSupported`
//! (and every one they say is present does not).

use std::collections::HashSet;

use http::{HeaderMap, Method};
use inbox_core::{Error, InboundMode, Platform, WebhookRequest};

use super::{
    FakeControl,
    harness::{connect, text},
};

/// The capability document makes sense on its own.
pub async fn capabilities_are_coherent(platform: &dyn Platform, _fake: &dyn FakeControl) {
    let caps = platform.capabilities();
    assert!(!caps.text_limits.is_empty(), "at least one text limit");
    assert!(caps.text_limits.iter().all(|limit| limit.max > 0));
    if let Some(captions) = &caps.caption_limits {
        // A caption limit of 0 says the platform takes no text with an attachment.
        assert!(!captions.is_empty());
        if captions.iter().any(|limit| limit.max == 0) {
            assert!(
                !caps.outbound_attachments.is_empty(),
                "a caption rule needs attachments"
            );
        }
    }
    assert_eq!(
        caps.outbound_attachments.is_empty(),
        caps.max_outbound_attachments == 0,
        "attachment kinds and the attachment count must agree"
    );
    assert!(!caps.inbound_modes.is_empty(), "at least one inbound mode");
    let modes: HashSet<_> = caps.inbound_modes.iter().collect();
    assert_eq!(
        modes.len(),
        caps.inbound_modes.len(),
        "inbound modes are listed once"
    );
    let names: HashSet<_> = caps.rate_budgets.iter().map(|budget| budget.name).collect();
    assert_eq!(
        names.len(),
        caps.rate_budgets.len(),
        "budget names are unique"
    );
    for budget in &caps.rate_budgets {
        assert!(budget.count > 0 && !budget.period.is_zero(), "{budget:?}");
    }
    assert_eq!(platform.capabilities(), caps, "capabilities are constant");
}

fn assert_support<T: std::fmt::Debug>(
    operation: &str,
    supported: bool,
    result: inbox_core::Result<T>,
) {
    let not_supported = matches!(result, Err(Error::NotSupported { .. }));
    assert_eq!(
        not_supported, !supported,
        "{operation}: capabilities say supported={supported}, the adapter answered {result:?}"
    );
}

/// Operations absent from the capabilities answer `NotSupported`; present ones do not.
pub async fn capabilities_agree_with_unsupported_operations(
    platform: &dyn Platform,
    fake: &dyn FakeControl,
) {
    let caps = platform.capabilities().clone();
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let ctx = &account.context;

    let started = platform
        .start_conversation(ctx, &conversation.participant.id, &text("hello, first"))
        .await;
    assert_support("start_conversation", caps.start_conversation, started);
    assert_support(
        "mark_read",
        caps.mark_read,
        platform.mark_read(ctx, &conversation.target).await,
    );
    assert_support(
        "refresh_credentials",
        caps.credential_refresh.is_some(),
        platform.refresh_credentials(ctx).await,
    );
    assert_support(
        "fetch_participant",
        caps.profile_lookup,
        platform
            .fetch_participant(ctx, &conversation.participant.id)
            .await,
    );
    let oauth = inbox_core::OAuthRequest {
        state: "state-1".into(),
        redirect_uri: "https://gateway.example/api/v1/oauth/callback".into(),
        code_challenge: caps
            .oauth
            .is_some_and(|flow| flow.pkce)
            .then(|| "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
    };
    assert_support(
        "oauth_authorize_url",
        caps.oauth.is_some(),
        platform.oauth_authorize_url(&oauth),
    );
    if !caps.inbound_modes.contains(&InboundMode::Polling) {
        assert_support("poll", false, platform.poll(ctx, None).await);
    }
    if !caps.inbound_modes.contains(&InboundMode::WebhookPerApp) {
        // Handshakes (Meta hub.challenge, X CRC) belong to per-app webhooks.
        let headers = HeaderMap::new();
        let request = WebhookRequest {
            method: &Method::GET,
            headers: &headers,
            query: Some("hub.mode=subscribe&hub.challenge=1&crc_token=x"),
            body: b"",
        };
        assert_support("handshake", false, platform.handshake(&request));
    }
}
