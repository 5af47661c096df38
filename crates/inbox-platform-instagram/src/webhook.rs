//! Inbound verification for `/webhooks/instagram`: the hub handshake with the verify token,
//! and `X-Hub-Signature-256` with either the Instagram app secret or the Meta app secret.
//! Which one signs Instagram Login webhooks is UNCONFIRMED (practitioners report the
//! Instagram app secret, the docs say "your app's App Secret", and Instagram reached through a
//! Page uses the Meta app's), so both are accepted and the one that matched is logged.

use inbox_core::{HandshakeResponse, Result, WebhookRequest};

use crate::InstagramConfig;

pub(crate) fn handshake(
    config: &InstagramConfig,
    request: &WebhookRequest<'_>,
) -> Result<HandshakeResponse> {
    inbox_platform_meta::handshake(request.query, config.verify_token.as_ref())
}

pub(crate) fn verify(config: &InstagramConfig, request: &WebhookRequest<'_>) -> Result<()> {
    let mut candidates = Vec::with_capacity(2);
    if let Some(secret) = &config.app_secret {
        candidates.push(("the Instagram app secret", secret));
    }
    if let Some(secret) = &config.meta_app_secret {
        candidates.push(("the Meta app secret", secret));
    }
    let matched =
        inbox_platform_meta::verify_signature(request.headers, request.body, &candidates)?;
    tracing::debug!(secret = matched, "Instagram webhook signature verified");
    Ok(())
}
