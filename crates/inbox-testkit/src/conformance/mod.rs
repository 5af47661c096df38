//! The shared `Platform` conformance suite. **Not stable API**: it changes with the contract it
//! checks.
//!
//! Every adapter runs the same cases against its own stateful fake platform server, modelled on
//! `object_store`'s `integration.rs`: each case is a plain `pub async fn(&dyn Platform, &dyn
//! FakeControl)`, and capability differences come from
//! [`Platform::capabilities`](inbox_core::Platform::capabilities) (a case that does not apply to
//! a platform returns early, saying so on stderr). The fake is driven through [`FakeControl`]:
//! seed accounts and conversations, make a participant write, inject failures, throttling and
//! revocation, and inspect what the platform received.
//!
//! An adapter crate expands the suite into one named `#[tokio::test]` per case in its
//! `tests/conformance.rs`:
//!
//! ```text
//! async fn setup() -> (Telegram, FakeTelegram) {
//!     let fake = FakeTelegram::start().await;
//!     let config = TelegramConfig::builder(fake.base_url())
//!         .long_poll_timeout(Duration::from_secs(1))
//!         .build()
//!         .unwrap();
//!     (Telegram::new(config).unwrap(), fake)
//! }
//!
//! inbox_testkit::platform_conformance!(setup);
//! ```
//!
//! The setup should configure a short long-poll timeout: one case polls when nothing is new.
//! The throttling cases use a 1 s hint that must be waited for, and a 1 h hint that must not.

mod attachments;
mod capabilities;
mod connect;
mod errors;
mod harness;
mod inbound;
mod meta;
mod send;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method};
use inbox_core::{AttachmentKind, ConversationTarget, Participant, WebhookRequest};
use serde_json::Value;

pub use attachments::{images_are_sent_by_url, inbound_images_download_through_fetch_attachment};
pub use capabilities::{capabilities_agree_with_unsupported_operations, capabilities_are_coherent};
pub use connect::{
    connect_accepts_valid_credentials, connect_rejects_malformed_credentials,
    connect_rejects_refused_credentials,
};
pub use errors::{
    refusals_keep_the_platform_code_and_message, revoked_credentials_require_reauth,
    server_errors_are_retried, throttling_beyond_the_budget_is_unavailable,
    throttling_is_retried_within_the_budget,
};
pub use harness::{Connected, PushCapture, connect};
pub use inbound::{
    backlogs_arrive_complete_in_order_once, polling_returns_each_update_once,
    redelivery_parses_to_the_same_ids, webhook_pushes_are_verified_then_parsed,
};
pub use meta::{
    echoes_of_sends_are_outgoing, per_app_pushes_name_their_account,
    platform_window_refusals_are_window_closed,
};
pub use send::{
    replies_thread_when_supported, send_text_returns_a_platform_id,
    sent_ids_match_later_inbound_references, text_over_the_limit_is_message_too_long,
};

/// A platform call the suite injects failures into or counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Validating credentials (Telegram `getMe`).
    Connect,
    /// Sending a message, with or without attachments (Telegram `sendMessage`, `sendPhoto`,
    /// `sendDocument`).
    Send,
    /// Polling for new events (Telegram `getUpdates`).
    Poll,
    /// Looking up media for download (Telegram `getFile`).
    FetchAttachment,
}

/// An account the fake created, with the credentials document `POST /accounts` would carry.
#[derive(Debug, Clone)]
pub struct SeededAccount {
    /// The fake's own handle for the account (Telegram: the bot token).
    pub key: String,
    /// The `credentials` document the adapter's `connect` takes.
    pub credentials: Value,
    /// The platform's id for the account, as `connect` must report it.
    pub platform_account_id: String,
    /// The display name `connect` must report.
    pub name: String,
    /// The handle `connect` must report.
    pub username: Option<String>,
}

/// A thread between a seeded account and a participant who may be written to.
#[derive(Debug, Clone)]
pub struct SeededConversation {
    /// Where sends go.
    pub target: ConversationTarget,
    /// The participant, as inbound messages must name them.
    pub participant: Participant,
}

/// What a participant writes in [`FakeControl::push_inbound`].
#[derive(Debug, Clone)]
pub enum InboundContent {
    /// A text message.
    Text(String),
    /// A picture, with an optional caption.
    Image {
        /// The image file.
        bytes: Vec<u8>,
        /// Its MIME type.
        mime: String,
        /// The caption.
        caption: Option<String>,
    },
}

/// A message the fake says the account sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    /// The platform message id, in the adapter's form.
    pub platform_message_id: String,
    /// The text or caption.
    pub text: String,
    /// The kinds of its attachments.
    pub attachments: Vec<AttachmentKind>,
    /// The platform message id it replies to.
    pub reply_to: Option<String>,
}

/// An inbound HTTP request the platform pushed, captured by [`PushCapture`].
#[derive(Debug, Clone)]
pub struct CapturedPush {
    /// The HTTP method.
    pub method: Method,
    /// The headers.
    pub headers: HeaderMap,
    /// The raw query string.
    pub query: Option<String>,
    /// The raw body.
    pub body: Bytes,
}

impl CapturedPush {
    /// The request as `Platform::verify_webhook` takes it.
    pub fn request(&self) -> WebhookRequest<'_> {
        WebhookRequest {
            method: &self.method,
            headers: &self.headers,
            query: self.query.as_deref(),
            body: &self.body,
        }
    }
}

/// The suite's handle on a fake platform server.
#[async_trait]
pub trait FakeControl: Send + Sync {
    /// Creates a fresh account on the platform.
    async fn seed_account(&self) -> SeededAccount;

    /// A credentials document of the right shape that the platform refuses (an unknown or
    /// revoked token).
    fn rejected_credentials(&self) -> Value;

    /// Malformed credentials documents, each with the `param` the adapter's `InvalidInput`
    /// must name (e.g. `credentials.botToken`). The adapter must refuse them without calling
    /// the platform.
    fn malformed_credentials(&self) -> Vec<(Value, String)>;

    /// Creates a participant the account may write to (on platforms where the participant
    /// must write first, the fake records that they did, without emitting an event).
    async fn seed_conversation(&self, account: &SeededAccount) -> SeededConversation;

    /// Points the platform's pushes for the account at `url`, where the platform configures
    /// that outside the adapter (Meta app subscriptions). A no-op where
    /// `Platform::start_inbound` registers the webhook (Telegram).
    async fn route_pushes_to(&self, account: &SeededAccount, url: &str);

    /// Makes the participant write to the account. The message reaches the gateway the way
    /// the account's inbound was arranged: pushed to the registered webhook, or queued for
    /// the next poll.
    async fn push_inbound(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        content: InboundContent,
    );

    /// Makes the platform emit, the same way, an event that references a message the account
    /// sent: an echo, an edit, or the participant's reply to it.
    async fn reference_sent(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
        platform_message_id: &str,
    );

    /// Delivers the account's last pushed event once more, as platforms do when they did not
    /// see a timely 2xx.
    async fn redeliver_last(&self, account: &SeededAccount);

    /// Forgeries of a genuine push that verification must reject (secret header missing or
    /// wrong, signature over another body, …), each with a short description.
    fn forge(&self, push: &CapturedPush) -> Vec<(String, CapturedPush)>;

    /// Makes the next call of `op` fail with `status` and the platform's error body carrying
    /// `message`.
    fn fail_next(&self, op: Operation, status: u16, message: &str);

    /// Makes the next call of `op` answer the platform's throttling error with this hint.
    fn rate_limit_next(&self, op: Operation, retry_after: Duration);

    /// Revokes the account's credentials: every later call is refused as unauthenticated.
    fn revoke(&self, account: &SeededAccount);

    /// Makes the platform refuse sends into the conversation for a reason retrying will not
    /// fix (the user blocked the account). Returns the `(code, message)` the adapter must
    /// report in `Error::Platform`.
    fn refuse_sends(
        &self,
        account: &SeededAccount,
        conversation: &SeededConversation,
    ) -> (String, String);

    /// How many calls of `op` the fake has answered so far (retries included).
    fn calls(&self, op: Operation) -> usize;

    /// The messages the platform accepted from the account, oldest first.
    fn sent(&self, account: &SeededAccount) -> Vec<SentRecord>;

    /// Serves `bytes` at a URL the platform can fetch (for sends by URL).
    fn host_media(&self, name: &str, bytes: Vec<u8>, mime: &str) -> String;

    /// Makes the platform emit its echo of a message the account sent (Meta's `is_echo`),
    /// the way inbound events arrive. `false` where the platform has no echoes.
    async fn push_echo(
        &self,
        _account: &SeededAccount,
        _conversation: &SeededConversation,
        _platform_message_id: &str,
    ) -> bool {
        false
    }

    /// Makes the platform refuse the next send into the conversation because its messaging
    /// window is closed (Messenger 10/2018278, Instagram 10/2534022, WhatsApp 131047). `false`
    /// where the platform has no window.
    fn close_window(&self, _account: &SeededAccount, _conversation: &SeededConversation) -> bool {
        false
    }

    /// Whether participants can send media in a DM on this platform (Reddit messages and
    /// Bluesky chats carry text only); the inbound media case does not apply otherwise.
    fn inbound_media(&self) -> bool {
        true
    }
}

/// A 1×1 PNG, for attachment cases.
pub const TINY_PNG: [u8; 69] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xdf, 0xc0, 0x00,
    0x00, 0x04, 0x01, 0x01, 0x80, 0xc5, 0x2a, 0x18, 0x5d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// How long one case may run before it is failed as hung.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Expands the suite into one `#[tokio::test]` per case, named after the case.
///
/// `$setup` is a path to an `async fn() -> (P, F)` where `P: Platform` and `F: FakeControl`;
/// it runs once per case, so every case gets a fresh fake. The adapter crate needs `tokio` (with
/// the `macros` and `rt` features) among its dev-dependencies.
///
/// ```text
/// inbox_testkit::platform_conformance!(setup);
/// ```
#[macro_export]
macro_rules! platform_conformance {
    ($setup:path) => {
        $crate::platform_conformance!(@cases $setup;
            connect_accepts_valid_credentials,
            connect_rejects_malformed_credentials,
            connect_rejects_refused_credentials,
            capabilities_are_coherent,
            capabilities_agree_with_unsupported_operations,
            send_text_returns_a_platform_id,
            sent_ids_match_later_inbound_references,
            replies_thread_when_supported,
            text_over_the_limit_is_message_too_long,
            throttling_is_retried_within_the_budget,
            throttling_beyond_the_budget_is_unavailable,
            server_errors_are_retried,
            revoked_credentials_require_reauth,
            refusals_keep_the_platform_code_and_message,
            webhook_pushes_are_verified_then_parsed,
            polling_returns_each_update_once,
            backlogs_arrive_complete_in_order_once,
            redelivery_parses_to_the_same_ids,
            images_are_sent_by_url,
            inbound_images_download_through_fetch_attachment,
            per_app_pushes_name_their_account,
            echoes_of_sends_are_outgoing,
            platform_window_refusals_are_window_closed,
        );
    };
    (@cases $setup:path; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                let (platform, fake) = $setup().await;
                let case = $crate::conformance::$case(&platform, &fake);
                if ::tokio::time::timeout($crate::conformance::CASE_TIMEOUT, case).await.is_err() {
                    panic!("conformance case `{}` did not finish", stringify!($case));
                }
            }
        )+
    };
}
