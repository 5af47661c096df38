//! `FakeReddit` as the conformance suite drives it: each seeded account is a new user with a
//! refresh token, each conversation a thread another new user started with it.

use std::time::Duration;

use inbox_core::{ConversationTarget, Participant};
use serde_json::{Value, json};

use super::{FakeReddit, RedditEndpoint};
use crate::conformance::{
    CapturedPush, FakeControl, InboundContent, Operation, SeededAccount, SeededConversation,
    SentRecord,
};

fn endpoints(op: Operation) -> &'static [RedditEndpoint] {
    match op {
        Operation::Connect => &[RedditEndpoint::Token, RedditEndpoint::Me],
        Operation::Send => &[RedditEndpoint::Send],
        Operation::Poll => &[RedditEndpoint::Listing],
        Operation::FetchAttachment => &[],
    }
}

impl FakeReddit {
    fn next_seed(&self) -> u64 {
        self.shared.lock().seq()
    }
}

#[async_trait::async_trait]
impl FakeControl for FakeReddit {
    async fn seed_account(&self) -> SeededAccount {
        let n = self.next_seed();
        let username = format!("conf_bot_{n}");
        let refresh = self.add_user(&username, &format!("Conformance Bot {n}"));
        SeededAccount {
            key: username.clone(),
            credentials: json!({"refreshToken": refresh}),
            platform_account_id: username.clone(),
            name: format!("Conformance Bot {n}"),
            username: Some(username),
        }
    }

    fn rejected_credentials(&self) -> Value {
        json!({"refreshToken": "rrt-nobody-has-this"})
    }

    fn malformed_credentials(&self) -> Vec<(Value, String)> {
        let param = "credentials.refreshToken".to_owned();
        [
            json!({}),
            json!({"refresh_token": "abc"}),
            json!({"refreshToken": ""}),
            json!({"refreshToken": "   "}),
            json!({"refreshToken": 12}),
        ]
        .into_iter()
        .map(|credentials| (credentials, param.clone()))
        .collect()
    }

    async fn seed_conversation(&self, account: &SeededAccount) -> SeededConversation {
        let n = self.next_seed();
        let username = format!("conf_user_{n}");
        self.add_user(&username, "");
        // The participant wrote first; the thread is history by the time inbound starts.
        let root = self.compose(&username, &account.key, "Hello", "a first question");
        SeededConversation {
            target: ConversationTarget {
                platform_conversation_id: root.name(),
                participant_id: username.clone(),
                last_inbound_platform_message_id: None,
            },
            participant: Participant {
                id: username.clone(),
                name: username.clone(),
                username: Some(username),
                picture: None,
            },
        }
    }

    async fn route_pushes_to(&self, _account: &SeededAccount, _url: &str) {
        // Reddit has no webhooks.
    }

    async fn push_inbound(
        &self,
        _account: &SeededAccount,
        conversation: &SeededConversation,
        content: InboundContent,
    ) {
        let text = match content {
            InboundContent::Text(text) => text,
            // Reddit messages carry no media: a participant pastes a link.
            InboundContent::Image { caption, .. } => {
                format!(
                    "{} https://i.redd.it/picture.png",
                    caption.unwrap_or_default()
                )
            }
        };
        let last = self
            .messages()
            .into_iter()
            .rev()
            .find(|m| {
                m.first_message_name.as_deref()
                    == Some(conversation.target.platform_conversation_id.as_str())
                    || m.name() == conversation.target.platform_conversation_id
            })
            .map(|m| m.name())
            .unwrap_or_else(|| conversation.target.platform_conversation_id.clone());
        self.reply(&conversation.participant.id, &last, &text);
    }

    async fn reference_sent(
        &self,
        _account: &SeededAccount,
        conversation: &SeededConversation,
        platform_message_id: &str,
    ) {
        // Reddit shows no echoes in the inbox; the participant's answer references the message.
        self.reply(
            &conversation.participant.id,
            platform_message_id,
            "thanks, got it",
        );
    }

    async fn redeliver_last(&self, _account: &SeededAccount) {
        // Polling only: a redelivery is a poll from the same cursor.
    }

    fn forge(&self, _push: &CapturedPush) -> Vec<(String, CapturedPush)> {
        Vec::new()
    }

    fn fail_next(&self, op: Operation, status: u16, message: &str) {
        if let Some(endpoint) = endpoints(op).first() {
            let body = json!({"message": message, "error": status}).to_string();
            self.inject(*endpoint, 1, status, &body, &[]);
        }
    }

    fn rate_limit_next(&self, op: Operation, retry_after: Duration) {
        if let Some(endpoint) = endpoints(op).first() {
            FakeReddit::rate_limit_next(self, *endpoint, retry_after);
        }
    }

    fn revoke(&self, account: &SeededAccount) {
        self.revoke_user(&account.key);
    }

    fn refuse_sends(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
    ) -> (String, String) {
        self.block(&conversation.participant.id, &account.key);
        (
            "NOT_WHITELISTED_BY_USER_MESSAGE".into(),
            "You can't send a message to that user.".into(),
        )
    }

    fn calls(&self, op: Operation) -> usize {
        endpoints(op)
            .iter()
            .map(|endpoint| self.requests(*endpoint).len())
            .sum()
    }

    fn sent(&self, account: &SeededAccount) -> Vec<SentRecord> {
        self.messages()
            .into_iter()
            .filter(|m| m.author == account.key)
            .map(|m| SentRecord {
                platform_message_id: m.name(),
                text: m.body,
                attachments: Vec::new(),
                reply_to: m.parent_id,
            })
            .collect()
    }

    fn host_media(&self, name: &str, _bytes: Vec<u8>, _mime: &str) -> String {
        format!("{}/_media/{name}", self.base_url)
    }

    fn inbound_media(&self) -> bool {
        false
    }
}
