//! `FakeTelegram` as the conformance suite drives it: each seeded account is a new bot, each
//! conversation a new user's private chat.

use std::time::Duration;

use serde_json::{Value, json};

use super::{FakeTelegram, SECRET_HEADER};
use crate::conformance::{
    CapturedPush, FakeControl, InboundContent, Operation, SeededAccount, SeededConversation,
    SentRecord,
};

/// The Bot API methods behind each conformance [`Operation`].
fn methods(op: Operation) -> &'static [&'static str] {
    match op {
        Operation::Connect => &["getMe"],
        Operation::Send => &["sendMessage", "sendPhoto", "sendDocument"],
        Operation::Poll => &["getUpdates"],
        Operation::FetchAttachment => &["getFile"],
    }
}

/// The suite's view of the fake: each seeded account is a new bot, each conversation a new
/// user's private chat.
#[async_trait::async_trait]
impl FakeControl for FakeTelegram {
    async fn seed_account(&self) -> SeededAccount {
        let n = self.next_seed();
        let id = 7_000_000_000 + n;
        let token = format!("{id}:AAH-conformance_token_{n}");
        let bot = self.add_bot(
            &token,
            id,
            &format!("Conformance Bot {n}"),
            &format!("conformance{n}_bot"),
        );
        SeededAccount {
            key: token.clone(),
            credentials: json!({"botToken": token}),
            platform_account_id: id.to_string(),
            name: bot.first_name,
            username: Some(bot.username),
        }
    }

    fn rejected_credentials(&self) -> Value {
        json!({"botToken": "999999:AAH-nobody-has-this-token"})
    }

    fn malformed_credentials(&self) -> Vec<(Value, String)> {
        let param = "credentials.botToken".to_owned();
        [
            json!({}),
            json!({"bot_token": "123:abc"}),
            json!({"botToken": ""}),
            json!({"botToken": "   "}),
            json!({"botToken": 123456}),
            json!({"botToken": "no-colon-here"}),
            json!({"botToken": "123:has space"}),
            json!({"botToken": "123:../../getMe"}),
        ]
        .into_iter()
        .map(|credentials| (credentials, param.clone()))
        .collect()
    }

    async fn seed_conversation(&self, _account: &SeededAccount) -> SeededConversation {
        let n = self.next_seed();
        let id = 500_000_000 + n;
        let last = format!("User {n}");
        let username = format!("conformance_user_{n}");
        self.add_user(id, "Conformance", Some(&last), Some(&username));
        SeededConversation {
            target: inbox_core::ConversationTarget {
                platform_conversation_id: id.to_string(),
                participant_id: id.to_string(),
                last_inbound_platform_message_id: None,
            },
            participant: inbox_core::Participant {
                id: id.to_string(),
                name: format!("Conformance {last}"),
                username: Some(username),
                picture: None,
            },
        }
    }

    async fn route_pushes_to(&self, _account: &SeededAccount, _url: &str) {
        // setWebhook, called by the adapter's start_inbound, already did.
    }

    async fn push_inbound(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        content: InboundContent,
    ) {
        let user = user_id(conversation);
        let builder = self.message(&account.key, user);
        let builder = match content {
            InboundContent::Text(text) => builder.text(&text),
            InboundContent::Image { bytes, caption, .. } => {
                let builder = builder.photo(bytes);
                match caption {
                    Some(caption) => builder.caption(&caption),
                    None => builder,
                }
            }
        };
        builder.push().await;
    }

    async fn reference_sent(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        platform_message_id: &str,
    ) {
        // A bot sees no echo of its own messages; the user's reply references them.
        let message_id = platform_message_id
            .rsplit_once(':')
            .and_then(|(_, id)| id.parse().ok())
            .unwrap_or_else(|| panic!("not a `chat:message` id: {platform_message_id}"));
        self.message(&account.key, user_id(conversation))
            .text("thanks, got it")
            .reply_to(message_id)
            .push()
            .await;
    }

    async fn redeliver_last(&self, account: &SeededAccount) {
        let update = self
            .last_update(&account.key)
            .expect("nothing was pushed yet");
        let update_id = update["update_id"].as_i64().expect("update_id");
        self.redeliver(&account.key, update_id).await;
    }

    fn forge(&self, push: &CapturedPush) -> Vec<(String, CapturedPush)> {
        let genuine = push
            .headers
            .get(SECRET_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let with_secret = |secret: Option<&str>| {
            let mut forged = push.clone();
            forged.headers.remove(SECRET_HEADER);
            if let Some(secret) = secret {
                forged
                    .headers
                    .insert(SECRET_HEADER, secret.parse().expect("a valid header value"));
            }
            forged
        };
        vec![
            ("secret header missing".to_owned(), with_secret(None)),
            ("wrong secret".to_owned(), with_secret(Some("wrong_secret"))),
            (
                "secret with a suffix".to_owned(),
                with_secret(Some(&format!("{genuine}x"))),
            ),
            (
                "secret truncated".to_owned(),
                with_secret(Some(&genuine[..genuine.len() / 2])),
            ),
        ]
    }

    fn fail_next(&self, op: Operation, status: u16, message: &str) {
        self.fail_times(methods(op), 1, status, message);
    }

    fn rate_limit_next(&self, op: Operation, retry_after: Duration) {
        self.rate_limit_times(methods(op), 1, retry_after.as_secs());
    }

    fn revoke(&self, account: &SeededAccount) {
        self.revoke_token(&account.key);
    }

    fn refuse_sends(
        &self,
        _account: &SeededAccount,
        conversation: &SeededConversation,
    ) -> (String, String) {
        self.block_user(user_id(conversation));
        (
            "403".to_owned(),
            "Forbidden: bot was blocked by the user".to_owned(),
        )
    }

    fn calls(&self, op: Operation) -> usize {
        let methods = methods(op);
        self.requests()
            .iter()
            .filter(|r| methods.iter().any(|m| r.is(m)))
            .count()
    }

    fn sent(&self, account: &SeededAccount) -> Vec<SentRecord> {
        self.sent_messages(&account.key)
            .iter()
            .map(|message| {
                let chat = message["chat"]["id"].as_i64().unwrap_or_default();
                let mut attachments = Vec::new();
                if message.get("photo").is_some() {
                    attachments.push(inbox_core::AttachmentKind::Image);
                }
                if message.get("document").is_some() {
                    attachments.push(inbox_core::AttachmentKind::File);
                }
                SentRecord {
                    platform_message_id: format!("{chat}:{}", message["message_id"]),
                    text: message["text"]
                        .as_str()
                        .or_else(|| message["caption"].as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    attachments,
                    reply_to: message["reply_to_message"]["message_id"]
                        .as_i64()
                        .map(|id| format!("{chat}:{id}")),
                }
            })
            .collect()
    }

    fn host_media(&self, name: &str, bytes: Vec<u8>, mime: &str) -> String {
        FakeTelegram::host_media(self, name, bytes, mime)
    }
}

fn user_id(conversation: &SeededConversation) -> i64 {
    conversation
        .participant
        .id
        .parse()
        .expect("Telegram user ids are numbers")
}

impl FakeTelegram {
    /// A fresh number for seeded bots and users.
    fn next_seed(&self) -> i64 {
        let mut state = self.shared.lock();
        state.next_seed += 1;
        state.next_seed
    }
}
