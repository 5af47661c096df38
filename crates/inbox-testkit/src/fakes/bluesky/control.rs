//! `FakeBluesky` as the conformance suite drives it: each seeded account is a new account with
//! a DM-enabled app password, each conversation a one-to-one convo with a new user.

use std::time::Duration;

use inbox_core::{ConversationTarget, Participant};
use serde_json::{Value, json};

use super::{BlueskyMethod, FakeBluesky};
use crate::conformance::{
    CapturedPush, FakeControl, InboundContent, Operation, SeededAccount, SeededConversation,
    SentRecord,
};

fn methods(op: Operation) -> &'static [BlueskyMethod] {
    match op {
        Operation::Connect => &[BlueskyMethod::CreateSession],
        Operation::Send => &[BlueskyMethod::SendMessage],
        Operation::Poll => &[BlueskyMethod::GetLog],
        Operation::FetchAttachment => &[],
    }
}

impl FakeBluesky {
    fn next_seed(&self) -> u64 {
        self.shared.lock().seq()
    }
}

#[async_trait::async_trait]
impl FakeControl for FakeBluesky {
    async fn seed_account(&self) -> SeededAccount {
        let n = self.next_seed();
        let handle = format!("conf-bot-{n}.bsky.social");
        let name = format!("Conformance Bot {n}");
        let did = self.add_account(&handle, &name, "abcd-efgh-ijkl-mnop", true);
        SeededAccount {
            key: did.clone(),
            credentials: json!({"identifier": handle, "appPassword": "abcd-efgh-ijkl-mnop",
                                "service": self.base_url()}),
            platform_account_id: did,
            name,
            username: Some(handle),
        }
    }

    fn rejected_credentials(&self) -> Value {
        json!({"identifier": "nobody.bsky.social", "appPassword": "zzzz-zzzz-zzzz-zzzz"})
    }

    fn malformed_credentials(&self) -> Vec<(Value, String)> {
        vec![
            (json!({}), "credentials.identifier".into()),
            (
                json!({"identifier": "", "appPassword": "x"}),
                "credentials.identifier".into(),
            ),
            (
                json!({"identifier": 5, "appPassword": "x"}),
                "credentials.identifier".into(),
            ),
            (
                json!({"identifier": "a.bsky.social"}),
                "credentials.appPassword".into(),
            ),
            (
                json!({"identifier": "a.bsky.social", "password": "x"}),
                "credentials.appPassword".into(),
            ),
            (
                json!({"identifier": "a.bsky.social", "appPassword": "x", "service": "bsky.social"}),
                "credentials.service".into(),
            ),
            (
                json!({"identifier": "a.bsky.social", "appPassword": "x", "service": 443}),
                "credentials.service".into(),
            ),
        ]
    }

    async fn seed_conversation(&self, account: &SeededAccount) -> SeededConversation {
        let n = self.next_seed();
        let handle = format!("conf-user-{n}.bsky.social");
        let name = format!("Conformance User {n}");
        let did = self.add_user(&handle, &name);
        let convo = self.convo(&did, &account.key);
        SeededConversation {
            target: ConversationTarget {
                platform_conversation_id: convo,
                participant_id: did.clone(),
                last_inbound_platform_message_id: None,
            },
            participant: Participant {
                id: did,
                name,
                username: Some(handle),
                picture: None,
            },
        }
    }

    async fn route_pushes_to(&self, _account: &SeededAccount, _url: &str) {
        // Bluesky chat has no webhooks.
    }

    async fn push_inbound(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        content: InboundContent,
    ) {
        let text = match content {
            InboundContent::Text(text) => text,
            InboundContent::Image { caption, .. } => caption.unwrap_or_default(),
        };
        self.message(&conversation.participant.id, &account.key, &text);
    }

    async fn reference_sent(
        &self,
        _account: &SeededAccount,
        _conversation: &SeededConversation,
        _platform_message_id: &str,
    ) {
        // getLog lists the account's own messages: the echo is already there.
    }

    async fn redeliver_last(&self, _account: &SeededAccount) {
        // Polling only: a redelivery is a poll from the same cursor.
    }

    fn forge(&self, _push: &CapturedPush) -> Vec<(String, CapturedPush)> {
        Vec::new()
    }

    fn fail_next(&self, op: Operation, status: u16, message: &str) {
        if let Some(method) = methods(op).first() {
            let body = json!({"error": "InternalServerError", "message": message}).to_string();
            self.inject(*method, 1, status, &body, &[]);
        }
    }

    fn rate_limit_next(&self, op: Operation, retry_after: Duration) {
        if let Some(method) = methods(op).first() {
            FakeBluesky::rate_limit_next(self, *method, retry_after);
        }
    }

    fn revoke(&self, account: &SeededAccount) {
        self.revoke_sessions(&account.key);
    }

    fn refuse_sends(
        &self,
        _account: &SeededAccount,
        conversation: &SeededConversation,
    ) -> (String, String) {
        self.lock_convo(&conversation.target.platform_conversation_id);
        ("ConvoLocked".into(), "convo is locked".into())
    }

    fn calls(&self, op: Operation) -> usize {
        methods(op)
            .iter()
            .map(|method| self.requests(*method).len())
            .sum()
    }

    fn sent(&self, account: &SeededAccount) -> Vec<SentRecord> {
        self.messages()
            .into_iter()
            .filter(|m| m.sender == account.key)
            .map(|m| SentRecord {
                platform_message_id: m.id,
                text: m.text,
                attachments: Vec::new(),
                reply_to: m.reply_to,
            })
            .collect()
    }

    fn host_media(&self, name: &str, _bytes: Vec<u8>, _mime: &str) -> String {
        format!("{}/_media/{name}", self.base_url)
    }

    async fn push_echo(
        &self,
        _account: &SeededAccount,
        _conversation: &SeededConversation,
        _platform_message_id: &str,
    ) -> bool {
        // The account's own message is in its log already.
        true
    }

    fn inbound_media(&self) -> bool {
        false
    }
}
