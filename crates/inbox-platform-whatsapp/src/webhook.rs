//! Inbound verification for `/webhooks/whatsapp`: the hub handshake with the verify token and
//! `X-Hub-Signature-256` with the Meta app secret
//! (<https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/create-webhook-endpoint>).

use inbox_core::{HandshakeResponse, Result, WebhookRequest};

use crate::WhatsAppConfig;

pub(crate) fn handshake(
    config: &WhatsAppConfig,
    request: &WebhookRequest<'_>,
) -> Result<HandshakeResponse> {
    inbox_platform_meta::handshake(request.query, config.verify_token.as_ref())
}

pub(crate) fn verify(config: &WhatsAppConfig, request: &WebhookRequest<'_>) -> Result<()> {
    let candidates: Vec<_> = config
        .app_secret
        .iter()
        .map(|secret| ("the Meta app secret", secret))
        .collect();
    inbox_platform_meta::verify_signature(request.headers, request.body, &candidates).map(|_| ())
}
