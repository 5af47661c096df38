//! Checking an outgoing message against what its platform allows, before the platform is
//! called: content present, attachment kinds and count, text length (caption limits when
//! there are attachments), message tags and templates, and the messaging window. Each check
//! fails with the error SPEC.md names, so a request the platform would refuse is refused here,
//! fast and precisely, and nothing is sent.

use inbox_core::{
    Attachment, AttachmentKind, Capabilities, Error, OutboundAttachment, OutboundMessage,
    PlatformKind, Template, TextLimit, Timestamp, WindowRule,
};

/// The `messageTag` that extends Meta's window to 7 days.
pub const HUMAN_AGENT_TAG: &str = "HUMAN_AGENT";

/// An outgoing message as the request described it, before the checks.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    /// The text (caption when there are attachments).
    pub text: String,
    /// Attachments, each with the name its fields have in the request (`attachments[0]`,
    /// or `attachment` for the flat Zernio fields), for error messages.
    pub attachments: Vec<(OutboundAttachment, String)>,
    /// Messenger/Instagram tag.
    pub message_tag: Option<String>,
    /// WhatsApp template.
    pub template: Option<Template>,
}

/// The content fields send and start share, including the flat Zernio forms.
#[derive(Debug, Clone, Default)]
pub struct DraftFields {
    /// `message`.
    pub message: Option<String>,
    /// `attachments`.
    pub attachments: Option<Vec<OutboundAttachment>>,
    /// `attachmentUrl`.
    pub attachment_url: Option<String>,
    /// `attachmentType`.
    pub attachment_type: Option<AttachmentKind>,
    /// `attachmentName`.
    pub attachment_name: Option<String>,
    /// `messageTag`.
    pub message_tag: Option<String>,
    /// `template`.
    pub template: Option<Template>,
    /// `templateName`.
    pub template_name: Option<String>,
    /// `templateLanguage`.
    pub template_language: Option<String>,
    /// `templateParams`.
    pub template_params: Option<Vec<String>>,
}

/// The template language when `templateName` comes without `templateLanguage`.
pub const DEFAULT_TEMPLATE_LANGUAGE: &str = "en_US";

impl DraftFields {
    /// Folds the flat fields into the structured ones: `attachmentUrl`/`attachmentType`
    /// (default `file`)/`attachmentName` become one more attachment, and
    /// `templateName`/`templateLanguage`/`templateParams` a template whose parameters fill
    /// the body component in order.
    pub fn into_draft(self) -> Result<Draft, Error> {
        let mut attachments: Vec<(OutboundAttachment, String)> = self
            .attachments
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, attachment)| (attachment, format!("attachments[{index}]")))
            .collect();
        match self.attachment_url {
            Some(url) => attachments.push((
                OutboundAttachment {
                    kind: self.attachment_type.unwrap_or(AttachmentKind::File),
                    url,
                    name: self.attachment_name,
                },
                "attachment".to_owned(),
            )),
            None if self.attachment_type.is_some() || self.attachment_name.is_some() => {
                return Err(Error::invalid(
                    "attachmentUrl",
                    "`attachmentUrl` is required with `attachmentType` or `attachmentName`",
                ));
            }
            None => {}
        }
        let flat_template = self.template_name.map(|name| Template {
            name,
            language: self
                .template_language
                .clone()
                .unwrap_or_else(|| DEFAULT_TEMPLATE_LANGUAGE.to_owned()),
            components: body_components(self.template_params.clone().unwrap_or_default()),
        });
        let template = match (self.template, flat_template) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "templateName",
                    "give either `template` or `templateName`, not both",
                ));
            }
            (Some(template), None) | (None, Some(template)) => Some(template),
            (None, None) if self.template_language.is_some() || self.template_params.is_some() => {
                return Err(Error::invalid(
                    "templateName",
                    "`templateName` is required with `templateLanguage` or `templateParams`",
                ));
            }
            (None, None) => None,
        };
        Ok(Draft {
            text: self.message.unwrap_or_default(),
            attachments,
            message_tag: self.message_tag.filter(|tag| !tag.is_empty()),
            template,
        })
    }
}

/// WhatsApp's `components` for positional body parameters.
fn body_components(params: Vec<String>) -> Vec<serde_json::Value> {
    if params.is_empty() {
        return Vec::new();
    }
    let parameters: Vec<_> = params
        .into_iter()
        .map(|text| serde_json::json!({"type": "text", "text": text}))
        .collect();
    vec![serde_json::json!({"type": "body", "parameters": parameters})]
}

impl Draft {
    /// The checks that do not depend on the conversation, in the contract's order: content
    /// present (400), attachments (422), text length (422), tags and templates (422).
    pub fn check_content(&self, platform: PlatformKind, caps: &Capabilities) -> Result<(), Error> {
        let has_text = !self.text.trim().is_empty();
        if !has_text && self.attachments.is_empty() && self.template.is_none() {
            return Err(Error::invalid(
                "message",
                "`message` (text), an attachment or a template is required",
            ));
        }
        for (attachment, param) in &self.attachments {
            check_attachment_url(attachment, param)?;
        }
        self.check_attachments(platform, caps)?;
        let limits = if self.attachments.is_empty() {
            &caps.text_limits
        } else {
            caps.caption_limits.as_ref().unwrap_or(&caps.text_limits)
        };
        // A caption limit of 0: the platform has no captions (Instagram, Messenger), and
        // sending text and attachment as two messages would store one message for two.
        if has_text && !self.attachments.is_empty() && limits.iter().any(|limit| limit.max == 0) {
            return Err(Error::UnsupportedContent {
                message: format!(
                    "{platform} cannot send text and an attachment in one message; send them \
                     as two messages"
                ),
            });
        }
        TextLimit::check_all(limits, &self.text).map_err(|too_long| Error::MessageTooLong {
            platform,
            limit: too_long.limit.max,
            unit: too_long.limit.unit,
            actual: too_long.actual,
        })?;
        if self.message_tag.is_some() && !caps.message_tags {
            return Err(Error::UnsupportedContent {
                message: format!(
                    "`messageTag` is not supported on {platform}; only Instagram and Facebook \
                     have message tags"
                ),
            });
        }
        if self.template.is_some() && !caps.templates {
            return Err(Error::UnsupportedContent {
                message: format!(
                    "`template` is not supported on {platform}; only WhatsApp sends templates"
                ),
            });
        }
        Ok(())
    }

    fn check_attachments(&self, platform: PlatformKind, caps: &Capabilities) -> Result<(), Error> {
        if self.attachments.is_empty() {
            return Ok(());
        }
        if caps.outbound_attachments.is_empty() {
            return Err(Error::UnsupportedContent {
                message: format!("{platform} does not accept attachments; send text only"),
            });
        }
        if self.attachments.len() > caps.max_outbound_attachments {
            return Err(Error::UnsupportedContent {
                message: format!(
                    "{platform} accepts at most {} attachment(s) per message, got {}",
                    caps.max_outbound_attachments,
                    self.attachments.len()
                ),
            });
        }
        for (attachment, param) in &self.attachments {
            if !caps.outbound_attachments.contains(&attachment.kind) {
                let accepted: Vec<_> = caps
                    .outbound_attachments
                    .iter()
                    .map(|kind| kind.as_str())
                    .collect();
                return Err(Error::UnsupportedContent {
                    message: format!(
                        "{platform} does not accept {} attachments (`{param}`); it accepts {}",
                        attachment.kind.as_str(),
                        accepted.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// The messaging-window check: free-form within the standard window; with `HUMAN_AGENT`
    /// within the extended one where the platform has it; a template outside the window where
    /// the platform allows that; otherwise `MessagingWindowClosed`.
    pub fn check_window(
        &self,
        platform: PlatformKind,
        caps: &Capabilities,
        last_inbound_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), Error> {
        let WindowRule::Window {
            standard,
            human_agent,
            templates_outside,
        } = caps.window
        else {
            return Ok(());
        };
        let open_until = |window| last_inbound_at.map(|at| at + window);
        let is_open = |window| open_until(window).is_some_and(|until| now < until);
        if is_open(standard) {
            return Ok(());
        }
        let tagged_human_agent = self.message_tag.as_deref() == Some(HUMAN_AGENT_TAG);
        if tagged_human_agent && human_agent.is_some_and(is_open) {
            return Ok(());
        }
        if self.template.is_some() && templates_outside {
            return Ok(());
        }
        let hours = standard.as_secs() / 3600;
        let when = match open_until(standard) {
            Some(until) => format!("closed at {until}"),
            None => "is not open: the participant has not written yet".to_owned(),
        };
        let mut message = format!("the {hours}-hour {platform} messaging window {when}");
        if let Some(extended) = human_agent {
            let days = extended.as_secs() / 86_400;
            match open_until(extended) {
                Some(until) if now < until => message.push_str(&format!(
                    "; `messageTag: \"{HUMAN_AGENT_TAG}\"` allows a reply until {until}"
                )),
                Some(until) => message.push_str(&format!(
                    "; the {days}-day `{HUMAN_AGENT_TAG}` window closed at {until} too"
                )),
                None => {}
            }
        }
        if templates_outside {
            message.push_str("; send an approved `template` instead");
        }
        Err(Error::MessagingWindowClosed { message })
    }

    /// The message to hand the adapter.
    pub fn to_outbound(&self, reply_to_platform_message_id: Option<String>) -> OutboundMessage {
        OutboundMessage {
            text: self.text.clone(),
            attachments: self.attachments.iter().map(|(a, _)| a.clone()).collect(),
            reply_to_platform_message_id,
            message_tag: self.message_tag.clone(),
            template: self.template.clone(),
        }
    }

    /// The attachments as stored on the sent message.
    pub fn stored_attachments(&self) -> Vec<Attachment> {
        self.attachments
            .iter()
            .map(|(attachment, _)| Attachment {
                kind: attachment.kind,
                url: attachment.url.clone(),
                mime_type: None,
                name: attachment.name.clone(),
            })
            .collect()
    }
}

/// Platforms fetch outgoing media themselves, so only absolute http(s) URLs make sense.
fn check_attachment_url(attachment: &OutboundAttachment, param: &str) -> Result<(), Error> {
    let param = if param == "attachment" {
        "attachmentUrl".to_owned()
    } else {
        format!("{param}.url")
    };
    match url::Url::parse(&attachment.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(()),
        _ => Err(Error::invalid(
            param.clone(),
            format!("`{param}` must be an absolute http(s) URL the platform can fetch"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use inbox_core::TextUnit;

    use super::*;

    fn meta_caps() -> Capabilities {
        Capabilities {
            text_limits: vec![TextLimit {
                max: 10,
                unit: TextUnit::Chars,
            }],
            caption_limits: Some(vec![TextLimit {
                max: 4,
                unit: TextUnit::Chars,
            }]),
            window: WindowRule::Window {
                standard: Duration::from_secs(86_400),
                human_agent: Some(Duration::from_secs(7 * 86_400)),
                templates_outside: false,
            },
            outbound_attachments: vec![AttachmentKind::Image],
            max_outbound_attachments: 1,
            inbound_modes: vec![],
            reply_threading: false,
            mark_read: true,
            start_conversation: false,
            message_tags: true,
            templates: false,
            credential_refresh: None,
            oauth: None,
            profile_lookup: false,
            rate_budgets: vec![],
        }
    }

    fn image(url: &str) -> (OutboundAttachment, String) {
        (
            OutboundAttachment {
                kind: AttachmentKind::Image,
                url: url.into(),
                name: None,
            },
            "attachments[0]".into(),
        )
    }

    #[test]
    fn captions_use_their_own_limit() {
        let caps = meta_caps();
        let mut draft = Draft {
            text: "hello".into(),
            ..Draft::default()
        };
        assert!(draft.check_content(PlatformKind::Instagram, &caps).is_ok());
        draft.attachments.push(image("https://example.com/a.png"));
        assert!(matches!(
            draft.check_content(PlatformKind::Instagram, &caps),
            Err(Error::MessageTooLong {
                limit: 4,
                actual: 5,
                ..
            })
        ));
    }

    #[test]
    fn a_zero_caption_limit_means_no_captions() {
        let mut caps = meta_caps();
        caps.caption_limits = Some(vec![TextLimit {
            max: 0,
            unit: TextUnit::Bytes,
        }]);
        let mut draft = Draft {
            attachments: vec![image("https://example.com/a.png")],
            ..Draft::default()
        };
        assert!(draft.check_content(PlatformKind::Facebook, &caps).is_ok());
        draft.text = "look".into();
        assert!(matches!(
            draft.check_content(PlatformKind::Facebook, &caps),
            Err(Error::UnsupportedContent { .. })
        ));
    }

    #[test]
    fn window_rules() {
        let caps = meta_caps();
        let now = Timestamp::from_unix_seconds(10 * 86_400);
        let draft = Draft {
            text: "hi".into(),
            ..Draft::default()
        };
        let recent = Some(Timestamp::from_unix_seconds(10 * 86_400 - 3600));
        let two_days = Some(Timestamp::from_unix_seconds(8 * 86_400));
        let ten_days = Some(Timestamp::from_unix_seconds(0));
        let p = PlatformKind::Instagram;
        assert!(draft.check_window(p, &caps, recent, now).is_ok());
        assert!(draft.check_window(p, &caps, two_days, now).is_err());
        assert!(draft.check_window(p, &caps, None, now).is_err());
        let tagged = Draft {
            message_tag: Some(HUMAN_AGENT_TAG.into()),
            ..draft.clone()
        };
        assert!(tagged.check_window(p, &caps, two_days, now).is_ok());
        assert!(tagged.check_window(p, &caps, ten_days, now).is_err());
    }

    #[test]
    fn attachment_urls_must_be_http() {
        let caps = meta_caps();
        let draft = Draft {
            attachments: vec![image("file:///etc/passwd")],
            ..Draft::default()
        };
        assert!(matches!(
            draft.check_content(PlatformKind::Instagram, &caps),
            Err(Error::InvalidInput { param: Some(p), .. }) if p == "attachments[0].url"
        ));
    }
}
