//! `FakeInstagram` as the conformance suite drives it: each seeded account a new professional
//! account with a fresh long-lived token, each conversation a new person who wrote to it.

use std::time::Duration;

use inbox_core::{ConversationTarget, Participant};
use serde_json::{Value, json};

use super::FakeInstagram;
use crate::{
    conformance::{
        CapturedPush, FakeControl, InboundContent, Operation, SeededAccount, SeededConversation,
        SentRecord,
    },
    fakes::{
        graph::attachment_kind,
        meta::{Injected, forgeries, injected_failure, meta_op, now_ms},
    },
};

#[async_trait::async_trait]
impl FakeControl for FakeInstagram {
    async fn seed_account(&self) -> SeededAccount {
        let n = self.lock().core.next();
        let id = format!("178414{n:011}");
        let username = format!("conformance.ig.{n}");
        let name = format!("Conformance IG {n}");
        let token = self.add_account(&id, &username, &name);
        SeededAccount {
            key: id.clone(),
            credentials: json!({"accessToken": token}),
            platform_account_id: id,
            name,
            username: Some(username),
        }
    }

    fn rejected_credentials(&self) -> Value {
        json!({"accessToken": "IGAAnobodyHasThisToken"})
    }

    fn malformed_credentials(&self) -> Vec<(Value, String)> {
        let param = "credentials.accessToken".to_owned();
        [
            json!({}),
            json!({"access_token": "IGAAx"}),
            json!({"accessToken": ""}),
            json!({"accessToken": "   "}),
            json!({"accessToken": 12345}),
            json!({"accessToken": "has space"}),
            json!({"accessToken": "IGAA/../me"}),
        ]
        .into_iter()
        .map(|credentials| (credentials, param.clone()))
        .collect()
    }

    async fn seed_conversation(&self, account: &SeededAccount) -> SeededConversation {
        let n = self.lock().core.next();
        let igsid = format!("87654321{n:08}");
        self.add_user(
            &account.key,
            &igsid,
            &format!("Conformance Person {n}"),
            &format!("person.{n}"),
        );
        self.set_last_inbound(&account.key, &igsid, now_ms());
        SeededConversation {
            target: ConversationTarget {
                platform_conversation_id: igsid.clone(),
                participant_id: igsid.clone(),
                last_inbound_platform_message_id: None,
            },
            // Instagram webhooks carry ids only.
            participant: Participant {
                id: igsid.clone(),
                name: igsid,
                username: None,
                picture: None,
            },
        }
    }

    async fn route_pushes_to(&self, _account: &SeededAccount, url: &str) {
        self.subscribe_app(url);
    }

    async fn push_inbound(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        content: InboundContent,
    ) {
        let igsid = &conversation.participant.id;
        let events = match content {
            InboundContent::Text(text) => vec![self.text(&account.key, igsid, &text, None).1],
            InboundContent::Image {
                bytes,
                mime,
                caption,
            } => self.image(&account.key, igsid, bytes, &mime, caption.as_deref()),
        };
        self.deliver(vec![(account.key.clone(), events)]).await;
    }

    async fn reference_sent(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        platform_message_id: &str,
    ) {
        // Instagram's read receipt names the last message read.
        let event = json!({
            "sender": {"id": conversation.participant.id}, "recipient": {"id": account.key},
            "timestamp": now_ms(), "read": {"mid": platform_message_id},
        });
        self.deliver(vec![(account.key.clone(), vec![event])]).await;
    }

    async fn redeliver_last(&self, account: &SeededAccount) {
        FakeInstagram::redeliver_last(self, &account.key).await;
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
                    code: 4,
                    retry_after,
                },
            );
        }
    }

    fn revoke(&self, account: &SeededAccount) {
        self.revoke_account(&account.key);
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
        meta_op(op).map_or(0, |op| FakeInstagram::calls(self, op))
    }

    fn sent(&self, account: &SeededAccount) -> Vec<SentRecord> {
        FakeInstagram::sent(self, &account.key)
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
        FakeInstagram::host_media(self, name, bytes, mime)
    }

    async fn push_echo(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        platform_message_id: &str,
    ) -> bool {
        let text = FakeInstagram::sent(self, &account.key)
            .into_iter()
            .find(|sent| sent["mid"] == platform_message_id)
            .and_then(|sent| sent["text"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let event = json!({
            "sender": {"id": account.key}, "recipient": {"id": conversation.participant.id},
            "timestamp": now_ms(),
            "message": {"mid": platform_message_id, "is_echo": true, "text": text},
        });
        self.deliver(vec![(account.key.clone(), vec![event])]).await;
        true
    }

    fn close_window(&self, account: &SeededAccount, conversation: &SeededConversation) -> bool {
        self.set_last_inbound(
            &account.key,
            &conversation.participant.id,
            now_ms() - 2 * 86_400_000,
        );
        true
    }
}
