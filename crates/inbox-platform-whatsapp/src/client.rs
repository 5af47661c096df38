//! The Cloud API calls the WhatsApp adapter makes, on top of the shared Graph client, and the
//! message bodies it sends
//! (<https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/text-messages>,
//! `…/image-messages`, `…/template-messages`).

use inbox_core::{AttachmentKind, BudgetCall, Error, OutboundMessage, Result};
use inbox_http::Snapshot;
use inbox_platform_meta::{GraphClient, GraphFailure, GraphRequest};
use serde_json::{Value, json};

use crate::{PLATFORM, WhatsAppConfig, wire};

pub(crate) type CallResult<T> = std::result::Result<T, GraphFailure>;

/// Whether `id` is a phone-number `wa_id` (digits) rather than a business-scoped user id
/// (`US.1349…`), which goes in `recipient` instead of `to`.
pub(crate) fn is_wa_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

/// The body of one message to `recipient`.
///
/// # Errors
/// `UnsupportedContent` for attachments WhatsApp cannot take this way, a caption on audio, or
/// an attachment with a template; `InvalidInput` for an empty message.
pub(crate) fn message_body(recipient: &str, message: &OutboundMessage) -> Result<Value> {
    let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual"});
    // `to` takes a phone number; a business-scoped id goes in `recipient` (if both are set,
    // `to` wins), per the business-scoped user id docs.
    if is_wa_id(recipient) {
        body["to"] = json!(recipient);
    } else {
        body["recipient"] = json!(recipient);
    }
    if let Some(template) = &message.template {
        if !message.attachments.is_empty() {
            return Err(Error::UnsupportedContent {
                message:
                    "a WhatsApp template carries its own media; send attachments without a template"
                        .to_owned(),
            });
        }
        let mut object = json!({"name": template.name, "language": {"code": template.language}});
        if !template.components.is_empty() {
            object["components"] = json!(template.components);
        }
        body["type"] = json!("template");
        body["template"] = object;
    } else {
        match message.attachments.as_slice() {
            [] if message.text.is_empty() => {
                return Err(Error::invalid("message", "the message is empty"));
            }
            [] => {
                body["type"] = json!("text");
                body["text"] = json!({"preview_url": false, "body": message.text});
            }
            [attachment] => {
                let kind = match attachment.kind {
                    AttachmentKind::Image => "image",
                    AttachmentKind::Video => "video",
                    AttachmentKind::Audio => "audio",
                    AttachmentKind::File => "document",
                    other => {
                        return Err(Error::UnsupportedContent {
                            message: format!(
                                "WhatsApp attachments by URL can be images, videos, audio or files, not {}",
                                other.as_str()
                            ),
                        });
                    }
                };
                // Hosted media goes by `link` (never `id` and `link` together).
                let mut media = json!({"link": attachment.url});
                if !message.text.is_empty() {
                    if kind == "audio" {
                        return Err(Error::UnsupportedContent {
                            message:
                                "WhatsApp audio messages take no caption; send the text separately"
                                    .to_owned(),
                        });
                    }
                    media["caption"] = json!(message.text);
                }
                if kind == "document"
                    && let Some(name) = &attachment.name
                {
                    media["filename"] = json!(name);
                }
                body["type"] = json!(kind);
                body[kind] = media;
            }
            _ => {
                return Err(Error::UnsupportedContent {
                    message: "WhatsApp takes one attachment per message".to_owned(),
                });
            }
        }
    }
    if let Some(reply_to) = &message.reply_to_platform_message_id {
        body["context"] = json!({"message_id": reply_to});
    }
    Ok(body)
}

#[derive(Debug)]
pub(crate) struct CloudApi {
    pub(crate) graph: GraphClient,
    config: WhatsAppConfig,
}

impl CloudApi {
    pub(crate) fn new(config: &WhatsAppConfig) -> Result<Self> {
        Ok(CloudApi {
            graph: GraphClient::new(
                PLATFORM,
                &config.http,
                config.retry.clone(),
                config.budgets.clone(),
            )?,
            config: config.clone(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.config.graph_base, self.config.version)
    }

    pub(crate) async fn phone_number(
        &self,
        token: &str,
        id: &str,
    ) -> CallResult<wire::PhoneNumber> {
        let request = GraphRequest::get(self.url(id), "phone number")
            .bearer(token)
            .query("fields", "id,display_phone_number,verified_name");
        self.graph.call_as(request).await
    }

    pub(crate) async fn post_messages(
        &self,
        token: &str,
        phone_number_id: &str,
        body: Value,
        budget: BudgetCall<'_>,
        what: &'static str,
    ) -> CallResult<Value> {
        let request = GraphRequest::post(self.url(&format!("{phone_number_id}/messages")), what)
            .bearer(token)
            .json(body)
            .budget(budget);
        self.graph.call(request).await
    }

    pub(crate) async fn subscribe_waba(&self, token: &str, waba_id: &str) -> CallResult<Value> {
        let request = GraphRequest::post(
            self.url(&format!("{waba_id}/subscribed_apps")),
            "subscribed_apps",
        )
        .idempotent(true)
        .bearer(token);
        self.graph.call(request).await
    }

    pub(crate) async fn media(&self, token: &str, media_id: &str) -> CallResult<wire::Media> {
        let request = GraphRequest::get(self.url(media_id), "media").bearer(token);
        self.graph.call_as(request).await
    }

    /// Downloads a media URL; WhatsApp wants the same Bearer token there.
    pub(crate) async fn download(&self, token: &str, url: String) -> CallResult<Snapshot> {
        self.graph
            .fetch(GraphRequest::get(url, "media download").bearer(token))
            .await
    }
}

#[cfg(test)]
mod tests {
    use inbox_core::{OutboundAttachment, Template};

    use super::*;

    fn message(text: &str) -> OutboundMessage {
        OutboundMessage {
            text: text.to_owned(),
            attachments: Vec::new(),
            reply_to_platform_message_id: None,
            message_tag: None,
            template: None,
        }
    }

    #[test]
    fn text_image_document_and_template_bodies() {
        assert_eq!(
            message_body("16505551234", &message("hi")).unwrap(),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
                   "type": "text", "text": {"preview_url": false, "body": "hi"}})
        );
        let mut image = message("a caption");
        image.attachments.push(OutboundAttachment {
            kind: AttachmentKind::Image,
            url: "https://cdn.example.com/a.png".into(),
            name: None,
        });
        image.reply_to_platform_message_id = Some("wamid.1".into());
        assert_eq!(
            message_body("US.1349", &image).unwrap(),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "recipient": "US.1349",
                   "type": "image", "image": {"link": "https://cdn.example.com/a.png", "caption": "a caption"},
                   "context": {"message_id": "wamid.1"}})
        );
        let mut document = message("");
        document.attachments.push(OutboundAttachment {
            kind: AttachmentKind::File,
            url: "https://cdn.example.com/i.pdf".into(),
            name: Some("invoice.pdf".into()),
        });
        assert_eq!(
            message_body("1", &document).unwrap()["document"],
            json!({"link": "https://cdn.example.com/i.pdf", "filename": "invoice.pdf"})
        );
        let mut template = message("");
        template.template = Some(Template {
            name: "order_update".into(),
            language: "en_US".into(),
            components: vec![
                json!({"type": "body", "parameters": [{"type": "text", "text": "Ada"}]}),
            ],
        });
        let body = message_body("1", &template).unwrap();
        assert_eq!(body["type"], "template");
        assert_eq!(body["template"]["language"], json!({"code": "en_US"}));
        assert_eq!(body["template"]["components"][0]["type"], "body");
    }

    #[test]
    fn what_whatsapp_cannot_take_is_refused() {
        let mut audio = message("caption");
        audio.attachments.push(OutboundAttachment {
            kind: AttachmentKind::Audio,
            url: "https://x/a.ogg".into(),
            name: None,
        });
        assert!(matches!(
            message_body("1", &audio),
            Err(Error::UnsupportedContent { .. })
        ));
        let mut sticker = message("");
        sticker.attachments.push(OutboundAttachment {
            kind: AttachmentKind::Sticker,
            url: "https://x/s.webp".into(),
            name: None,
        });
        assert!(matches!(
            message_body("1", &sticker),
            Err(Error::UnsupportedContent { .. })
        ));
        assert!(matches!(
            message_body("1", &message("")),
            Err(Error::InvalidInput { .. })
        ));
    }
}
