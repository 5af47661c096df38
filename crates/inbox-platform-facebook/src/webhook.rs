//! Inbound verification for `/webhooks/facebook`: the hub handshake with the verify token and
//! `X-Hub-Signature-256` with the Meta app secret
//! (<https://developers.facebook.com/docs/messenger-platform/webhooks#validate-payloads>).

use inbox_core::{HandshakeResponse, Result, WebhookRequest};

use crate::FacebookConfig;

pub(crate) fn handshake(
    config: &FacebookConfig,
    request: &WebhookRequest<'_>,
) -> Result<HandshakeResponse> {
    inbox_platform_meta::handshake(request.query, config.verify_token.as_ref())
}

pub(crate) fn verify(config: &FacebookConfig, request: &WebhookRequest<'_>) -> Result<()> {
    let candidates: Vec<_> = config
        .app_secret
        .iter()
        .map(|secret| ("the Meta app secret", secret))
        .collect();
    inbox_platform_meta::verify_signature(request.headers, request.body, &candidates).map(|_| ())
}
