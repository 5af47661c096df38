//! `FakeX` as the conformance suite drives it: each seeded account is a new user with a fresh
//! token pair, each conversation a new user who may be written to.

use std::time::Duration;

use inbox_core::{ConversationTarget, Participant};
use serde_json::{Value, json};

use super::{FakeX, SIGNATURE_HEADER, XEndpoint, one_to_one, problem};
use crate::conformance::{
    CapturedPush, FakeControl, InboundContent, Operation, SeededAccount, SeededConversation,
    SentRecord,
};
use crate::fakes::common::rfc3339_millis;

fn endpoints(op: Operation) -> &'static [XEndpoint] {
    match op {
        Operation::Connect => &[XEndpoint::Me, XEndpoint::Token],
        Operation::Send => &[XEndpoint::Send],
        Operation::Poll => &[XEndpoint::DmEvents],
        Operation::FetchAttachment => &[XEndpoint::Media],
    }
}

impl FakeX {
    fn next_seed(&self) -> u64 {
        self.shared.lock().seq()
    }
}

#[async_trait::async_trait]
impl FakeControl for FakeX {
    async fn seed_account(&self) -> SeededAccount {
        let n = self.next_seed();
        let id = format!("{}", 1_500_000_000 + n);
        let user = self.add_user(
            &id,
            &format!("Conformance Account {n}"),
            &format!("conf_acct_{n}"),
        );
        let (access, refresh) = self.issue_tokens(&id);
        let expires = rfc3339_millis((super::unix_now() + 7000) * 1000);
        SeededAccount {
            key: id.clone(),
            credentials: json!({"accessToken": access, "refreshToken": refresh, "expiresAt": expires}),
            platform_account_id: id,
            name: user.name,
            username: Some(user.username),
        }
    }

    fn rejected_credentials(&self) -> Value {
        json!({"accessToken": "xat-nobody", "refreshToken": "xrt-nobody",
               "expiresAt": "2099-01-01T00:00:00Z"})
    }

    fn malformed_credentials(&self) -> Vec<(Value, String)> {
        let at = "credentials.accessToken".to_owned();
        let rt = "credentials.refreshToken".to_owned();
        let exp = "credentials.expiresAt".to_owned();
        vec![
            (json!({}), at.clone()),
            (
                json!({"accessToken": "", "refreshToken": "r", "expiresAt": 1}),
                at.clone(),
            ),
            (
                json!({"accessToken": 7, "refreshToken": "r", "expiresAt": 1}),
                at,
            ),
            (json!({"accessToken": "a", "expiresAt": 1}), rt.clone()),
            (
                json!({"accessToken": "a", "refreshToken": ["r"], "expiresAt": 1}),
                rt,
            ),
            (
                json!({"accessToken": "a", "refreshToken": "r"}),
                exp.clone(),
            ),
            (
                json!({"accessToken": "a", "refreshToken": "r", "expiresAt": "soon"}),
                exp.clone(),
            ),
            (
                json!({"accessToken": "a", "refreshToken": "r", "expiresAt": -5}),
                exp,
            ),
        ]
    }

    async fn seed_conversation(&self, account: &SeededAccount) -> SeededConversation {
        let n = self.next_seed();
        let id = format!("{}", 2_600_000_000_000u64 + n);
        let user = self.add_user(
            &id,
            &format!("Conformance User {n}"),
            &format!("conf_user_{n}"),
        );
        SeededConversation {
            target: ConversationTarget {
                platform_conversation_id: one_to_one(&account.key, &id),
                participant_id: id.clone(),
                last_inbound_platform_message_id: None,
            },
            participant: Participant {
                id,
                name: user.name,
                username: Some(user.username),
                picture: user.profile_image_url,
            },
        }
    }

    async fn route_pushes_to(&self, account: &SeededAccount, url: &str) {
        self.route_webhook(&account.key, url);
    }

    async fn push_inbound(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        content: InboundContent,
    ) {
        let from = &conversation.participant.id;
        match content {
            InboundContent::Text(text) => {
                self.dm(from, &account.key, &text).await;
            }
            InboundContent::Image {
                bytes,
                mime,
                caption,
            } => {
                self.dm_with_media(
                    from,
                    &account.key,
                    caption.as_deref().unwrap_or_default(),
                    Some((bytes, &mime)),
                )
                .await;
            }
        }
    }

    async fn reference_sent(
        &self,
        account: &SeededAccount,
        _conversation: &SeededConversation,
        platform_message_id: &str,
    ) {
        // X echoes the account's own DMs: in `GET /2/dm_events` they are simply there; an
        // Account Activity webhook delivers them.
        let id = platform_message_id
            .parse()
            .expect("X event ids are numbers");
        self.push_existing(&account.key, id).await;
    }

    async fn redeliver_last(&self, account: &SeededAccount) {
        FakeX::redeliver_last(self, &account.key).await;
    }

    fn forge(&self, push: &CapturedPush) -> Vec<(String, CapturedPush)> {
        let with_signature = |signature: Option<&str>, body: Option<&str>| {
            let mut forged = push.clone();
            forged.headers.remove(SIGNATURE_HEADER);
            if let Some(signature) = signature {
                forged
                    .headers
                    .insert(SIGNATURE_HEADER, signature.parse().expect("header value"));
            }
            if let Some(body) = body {
                forged.body = body.to_owned().into_bytes().into();
            }
            forged
        };
        let genuine = push
            .headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        vec![
            ("signature missing".into(), with_signature(None, None)),
            (
                "signature of another secret".into(),
                with_signature(Some(&super::sign("not-the-secret", &push.body)), None),
            ),
            (
                "genuine signature over another body".into(),
                with_signature(
                    Some(&genuine),
                    Some(r#"{"for_user_id":"1","direct_message_events":[]}"#),
                ),
            ),
            (
                "signature without its prefix".into(),
                with_signature(Some(genuine.trim_start_matches("sha256=")), None),
            ),
        ]
    }

    fn fail_next(&self, op: Operation, status: u16, message: &str) {
        for endpoint in endpoints(op).iter().take(1) {
            self.inject(
                *endpoint,
                1,
                status,
                &problem(status, message, message),
                &[],
            );
        }
    }

    fn rate_limit_next(&self, op: Operation, retry_after: Duration) {
        if let Some(endpoint) = endpoints(op).first() {
            FakeX::rate_limit_next(self, *endpoint, retry_after);
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
            "403".into(),
            "You are not allowed to create a Direct Message with this user.".into(),
        )
    }

    fn calls(&self, op: Operation) -> usize {
        endpoints(op)
            .iter()
            .map(|endpoint| self.requests(*endpoint).len())
            .sum()
    }

    fn sent(&self, account: &SeededAccount) -> Vec<SentRecord> {
        self.sent_by(&account.key)
            .into_iter()
            .map(|dm| SentRecord {
                platform_message_id: dm.id.to_string(),
                text: dm.text,
                attachments: Vec::new(),
                reply_to: None,
            })
            .collect()
    }

    fn host_media(&self, name: &str, bytes: Vec<u8>, mime: &str) -> String {
        FakeX::host_media(self, name, bytes, mime)
    }

    async fn push_echo(
        &self,
        account: &SeededAccount,
        _conversation: &SeededConversation,
        platform_message_id: &str,
    ) -> bool {
        let id = platform_message_id
            .parse()
            .expect("X event ids are numbers");
        self.push_existing(&account.key, id).await;
        true
    }
}
