//! `FakeGraph` as the conformance suite drives it, once per platform it fakes:
//! [`FakeMessenger`] (each seeded account a new Page, each conversation a new person who
//! wrote to it) and [`FakeWhatsApp`] (each account a new business number, each conversation a
//! new contact who wrote to it).

use std::{ops::Deref, time::Duration};

use inbox_core::{AttachmentKind, ConversationTarget, Participant};
use serde_json::{Value, json};

use super::{FakeGraph, PAGE_OBJECT, WHATSAPP_OBJECT, WhatsAppContact};
use crate::{
    conformance::{
        CapturedPush, FakeControl, InboundContent, Operation, SeededAccount, SeededConversation,
        SentRecord,
    },
    fakes::meta::{Injected, MetaOp, forgeries, injected_failure, meta_op},
};

/// `FakeGraph` faking Facebook Messenger for the conformance suite.
#[derive(Debug, Clone)]
pub struct FakeMessenger(pub FakeGraph);

impl Deref for FakeMessenger {
    type Target = FakeGraph;
    fn deref(&self) -> &FakeGraph {
        &self.0
    }
}

/// `FakeGraph` faking the WhatsApp Cloud API for the conformance suite.
#[derive(Debug, Clone)]
pub struct FakeWhatsApp(pub FakeGraph);

impl Deref for FakeWhatsApp {
    type Target = FakeGraph;
    fn deref(&self) -> &FakeGraph {
        &self.0
    }
}

impl FakeGraph {
    fn seed(&self) -> u64 {
        self.lock().core.next()
    }
}

#[async_trait::async_trait]
impl FakeControl for FakeMessenger {
    async fn seed_account(&self) -> SeededAccount {
        let n = self.seed();
        let id = format!("10485760{n:07}");
        let name = format!("Conformance Page {n}");
        let username = format!("conformance.page.{n}");
        let token = self.add_page(&id, &name, Some(&username));
        SeededAccount {
            key: id.clone(),
            credentials: json!({"pageId": id, "pageAccessToken": token}),
            platform_account_id: id,
            name,
            username: Some(username),
        }
    }

    fn rejected_credentials(&self) -> Value {
        json!({"pageId": "104857699999999", "pageAccessToken": "EAAnobodyHasThisToken"})
    }

    fn malformed_credentials(&self) -> Vec<(Value, String)> {
        let page = "credentials.pageId".to_owned();
        let token = "credentials.pageAccessToken".to_owned();
        vec![
            (json!({}), page.clone()),
            (json!({"pageAccessToken": "EAAx"}), page.clone()),
            (
                json!({"pageId": "", "pageAccessToken": "EAAx"}),
                page.clone(),
            ),
            (
                json!({"pageId": "my-page", "pageAccessToken": "EAAx"}),
                page.clone(),
            ),
            (
                json!({"pageId": 104_857_600, "pageAccessToken": "EAAx"}),
                page,
            ),
            (json!({"pageId": "104857600"}), token.clone()),
            (
                json!({"pageId": "104857600", "pageAccessToken": "has space"}),
                token.clone(),
            ),
            (
                json!({"pageId": "104857600", "pageAccessToken": "../me"}),
                token,
            ),
        ]
    }

    async fn seed_conversation(&self, account: &SeededAccount) -> SeededConversation {
        let n = self.seed();
        let psid = format!("24681357{n:08}");
        self.add_psid(
            &account.key,
            &psid,
            "Conformance",
            Some(&format!("Person {n}")),
        );
        self.set_last_inbound(&account.key, &psid, super::now_ms());
        SeededConversation {
            target: ConversationTarget {
                platform_conversation_id: psid.clone(),
                participant_id: psid.clone(),
                last_inbound_platform_message_id: None,
            },
            // Messenger webhooks carry ids only.
            participant: Participant {
                id: psid.clone(),
                name: psid,
                username: None,
                picture: None,
            },
        }
    }

    async fn route_pushes_to(&self, _account: &SeededAccount, url: &str) {
        self.subscribe_app(PAGE_OBJECT, url);
    }

    async fn push_inbound(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        content: InboundContent,
    ) {
        let psid = &conversation.participant.id;
        let events = match content {
            InboundContent::Text(text) => vec![self.page_text(&account.key, psid, &text, None).1],
            InboundContent::Image {
                bytes,
                mime,
                caption,
            } => self.page_image(&account.key, psid, bytes, &mime, caption.as_deref()),
        };
        self.deliver_pages(vec![(account.key.clone(), events)])
            .await;
    }

    async fn reference_sent(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        platform_message_id: &str,
    ) {
        let event = json!({
            "sender": {"id": conversation.participant.id}, "recipient": {"id": account.key},
            "delivery": {"mids": [platform_message_id], "watermark": super::now_ms()},
        });
        self.deliver_pages(vec![(account.key.clone(), vec![event])])
            .await;
    }

    async fn redeliver_last(&self, account: &SeededAccount) {
        FakeGraph::redeliver_last(self, &account.key).await;
    }

    fn forge(&self, push: &CapturedPush) -> Vec<(String, CapturedPush)> {
        forgeries(push)
    }

    fn fail_next(&self, op: Operation, status: u16, message: &str) {
        if let Some(op) = meta_op(op) {
            self.inject(op, 1, injected_failure(status, message));
        }
    }

    fn rate_limit_next(&self, op: Operation, retry_after: Duration) {
        if let Some(op) = meta_op(op) {
            self.inject(
                op,
                1,
                Injected::Throttle {
                    code: 613,
                    retry_after,
                },
            );
        }
    }

    fn revoke(&self, account: &SeededAccount) {
        self.revoke_token(&self.page_token(&account.key));
    }

    fn refuse_sends(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
    ) -> (String, String) {
        self.block(&account.key, &conversation.participant.id);
        (
            "551/1545041".to_owned(),
            "(#551) This person isn't available right now.".to_owned(),
        )
    }

    fn calls(&self, op: Operation) -> usize {
        meta_op(op).map_or(0, |op| FakeGraph::calls(self, op))
    }

    fn sent(&self, account: &SeededAccount) -> Vec<SentRecord> {
        self.page_sent(&account.key)
            .iter()
            .map(|sent| SentRecord {
                platform_message_id: sent["mid"].as_str().unwrap_or_default().to_owned(),
                text: sent["text"].as_str().unwrap_or_default().to_owned(),
                attachments: sent["attachment_type"]
                    .as_str()
                    .map(attachment_kind)
                    .into_iter()
                    .collect(),
                reply_to: None,
            })
            .collect()
    }

    fn host_media(&self, name: &str, bytes: Vec<u8>, mime: &str) -> String {
        FakeGraph::host_media(self, name, bytes, mime)
    }

    async fn push_echo(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        platform_message_id: &str,
    ) -> bool {
        let text = self
            .page_sent(&account.key)
            .into_iter()
            .find(|sent| sent["mid"] == platform_message_id)
            .and_then(|sent| sent["text"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let event = json!({
            "sender": {"id": account.key}, "recipient": {"id": conversation.participant.id},
            "timestamp": super::now_ms(),
            "message": {"mid": platform_message_id, "is_echo": true, "app_id": 1_517_776_481_860_111_u64, "text": text},
        });
        self.deliver_pages(vec![(account.key.clone(), vec![event])])
            .await;
        true
    }

    fn close_window(&self, account: &SeededAccount, conversation: &SeededConversation) -> bool {
        // The person last wrote two days ago: outside 24 h, inside HUMAN_AGENT's 7 days.
        self.set_last_inbound(
            &account.key,
            &conversation.participant.id,
            super::now_ms() - 2 * 86_400_000,
        );
        true
    }
}

pub(crate) fn attachment_kind(kind: &str) -> AttachmentKind {
    match kind {
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        "file" | "document" => AttachmentKind::File,
        "sticker" => AttachmentKind::Sticker,
        _ => AttachmentKind::Other,
    }
}

#[async_trait::async_trait]
impl FakeControl for FakeWhatsApp {
    async fn seed_account(&self) -> SeededAccount {
        let n = self.seed();
        let id = format!("10654035{n:07}");
        let display = format!("1555{n:07}");
        let name = format!("Conformance Number {n}");
        let waba = format!("10229012{n:07}");
        let token = self.add_phone_number(&id, &display, &name, &waba);
        SeededAccount {
            key: id.clone(),
            credentials: json!({"phoneNumberId": id, "accessToken": token, "wabaId": waba}),
            platform_account_id: id,
            name,
            username: Some(display),
        }
    }

    fn rejected_credentials(&self) -> Value {
        json!({"phoneNumberId": "106540399999999", "accessToken": "EAAGnobodyHasThisToken"})
    }

    fn malformed_credentials(&self) -> Vec<(Value, String)> {
        let phone = "credentials.phoneNumberId".to_owned();
        let token = "credentials.accessToken".to_owned();
        vec![
            (json!({}), phone.clone()),
            (json!({"accessToken": "EAAx"}), phone.clone()),
            (
                json!({"phoneNumberId": "+1 555", "accessToken": "EAAx"}),
                phone.clone(),
            ),
            (
                json!({"phoneNumberId": 106_540_352, "accessToken": "EAAx"}),
                phone,
            ),
            (json!({"phoneNumberId": "106540352"}), token.clone()),
            (
                json!({"phoneNumberId": "106540352", "accessToken": ""}),
                token.clone(),
            ),
            (
                json!({"phoneNumberId": "106540352", "accessToken": "a b"}),
                token,
            ),
            (
                json!({"phoneNumberId": "106540352", "accessToken": "EAAx", "wabaId": "my waba"}),
                "credentials.wabaId".to_owned(),
            ),
        ]
    }

    async fn seed_conversation(&self, account: &SeededAccount) -> SeededConversation {
        let n = self.seed();
        let wa_id = format!("1650{n:07}");
        let name = format!("Conformance Contact {n}");
        self.add_contact(
            &account.key,
            WhatsAppContact {
                wa_id: Some(wa_id.clone()),
                user_id: Some(format!("US.{n:020}")),
                name: name.clone(),
            },
        );
        self.open_window(&account.key, &wa_id);
        SeededConversation {
            target: ConversationTarget {
                platform_conversation_id: wa_id.clone(),
                participant_id: wa_id.clone(),
                last_inbound_platform_message_id: None,
            },
            participant: Participant {
                id: wa_id,
                name,
                username: None,
                picture: None,
            },
        }
    }

    async fn route_pushes_to(&self, _account: &SeededAccount, url: &str) {
        self.subscribe_app(WHATSAPP_OBJECT, url);
    }

    async fn push_inbound(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        content: InboundContent,
    ) {
        let message = match content {
            InboundContent::Text(text) => json!({"type": "text", "text": {"body": text}}),
            InboundContent::Image {
                bytes,
                mime,
                caption,
            } => {
                let id = self.upload_media(bytes, &mime);
                let mut image = json!({"id": id, "mime_type": mime, "sha256": "0000"});
                if let Some(caption) = caption {
                    image["caption"] = json!(caption);
                }
                json!({"type": "image", "image": image})
            }
        };
        let (_, value) =
            self.whatsapp_message(&account.key, &conversation.participant.id, message, None);
        self.deliver_whatsapp(vec![value]).await;
    }

    async fn reference_sent(
        &self,
        account: &SeededAccount,
        _conversation: &SeededConversation,
        platform_message_id: &str,
    ) {
        let value = self.whatsapp_status(&account.key, platform_message_id, "delivered", None);
        self.deliver_whatsapp(vec![value]).await;
    }

    async fn redeliver_last(&self, account: &SeededAccount) {
        FakeGraph::redeliver_last(self, &account.key).await;
    }

    fn forge(&self, push: &CapturedPush) -> Vec<(String, CapturedPush)> {
        forgeries(push)
    }

    fn fail_next(&self, op: Operation, status: u16, message: &str) {
        if let Some(op) = meta_op(op) {
            self.inject(op, 1, injected_failure(status, message));
        }
    }

    fn rate_limit_next(&self, op: Operation, retry_after: Duration) {
        if let Some(op) = meta_op(op) {
            self.inject(
                op,
                1,
                Injected::Throttle {
                    code: 130_429,
                    retry_after,
                },
            );
        }
    }

    fn revoke(&self, account: &SeededAccount) {
        let token = account.credentials["accessToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.revoke_token(&token);
    }

    fn refuse_sends(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
    ) -> (String, String) {
        self.block_contact(&account.key, &conversation.participant.id);
        (
            "131026".to_owned(),
            "(#131026) Message Undeliverable.".to_owned(),
        )
    }

    fn calls(&self, op: Operation) -> usize {
        meta_op(op).map_or(0, |op| FakeGraph::calls(self, op))
    }

    fn sent(&self, account: &SeededAccount) -> Vec<SentRecord> {
        self.whatsapp_sent(&account.key)
            .iter()
            .map(|sent| {
                let kind = sent["type"].as_str().unwrap_or("text");
                let text = match kind {
                    "text" => sent.pointer("/text/body"),
                    other => sent.get(other).and_then(|media| media.get("caption")),
                }
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
                SentRecord {
                    platform_message_id: sent["id"].as_str().unwrap_or_default().to_owned(),
                    text,
                    attachments: (!matches!(kind, "text" | "template"))
                        .then(|| attachment_kind(kind))
                        .into_iter()
                        .collect(),
                    reply_to: sent
                        .pointer("/context/message_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }
            })
            .collect()
    }

    fn host_media(&self, name: &str, bytes: Vec<u8>, mime: &str) -> String {
        FakeGraph::host_media(self, name, bytes, mime)
    }

    fn close_window(&self, _account: &SeededAccount, _conversation: &SeededConversation) -> bool {
        // The Cloud API reports 131047 mostly as a `failed` status after accepting the send
        // (the fake does that for real window closures); some answers carry it at once. This
        // is the synchronous form.
        self.inject(
            MetaOp::Send,
            1,
            Injected::Error {
                status: 400,
                code: 131_047,
                subcode: None,
                message: "(#131047) Re-engagement message".to_owned(),
            },
        );
        true
    }
}
