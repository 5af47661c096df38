//! The `Platform` trait: the one interface between the gateway and a messaging platform, and
//! the manual for adapter authors.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::{
    AccountContext, Capabilities, ConnectedAccount, ConversationTarget, FetchedMedia,
    HandshakeResponse, InboundEvent, InboundMode, InboundSetup, OAuthCallback, OAuthRequest,
    OutboundMessage, Participant, PlatformKind, PollBatch, RefreshedCredentials, Result,
    SentMessage, StartedConversation, WebhookRequest,
};

/// One messaging platform, as the rest of the gateway sees it.
///
/// Everything above the adapters holds an `Arc<dyn Platform>` from the registry in
/// `inbox-server`; nothing else names a concrete platform. Every method is required: an
/// operation the platform lacks returns [`Error::NotSupported`](crate::Error::NotSupported), and
/// must agree with [`capabilities`](Platform::capabilities) (the conformance suite in
/// `inbox-testkit` checks both).
///
/// # Contract
///
/// * **No hidden state per account.** Everything account-specific arrives in an
///   [`AccountContext`]; an adapter may cache (e.g. profile names) but must work without it.
/// * **No persistence.** Adapters never touch the database. They return what they learned
///   (new credentials, cursors, events) and the gateway stores it.
/// * **Base URLs are configuration.** Every adapter's config has a mandatory base-URL override
///   so tests run against a fake server and production can pin an API version.
/// * **Verify before anything else.** [`verify_webhook`](Platform::verify_webhook) runs on the
///   raw bytes, compares secrets in constant time, and parses nothing before it passes.
/// * **Decode leniently.** Unknown fields and unknown update types are not errors: they become
///   [`InboundKind::Ignored`](crate::InboundKind::Ignored) so the raw payload stays stored.
/// * **Retries inside, bounded.** Adapters retry platform throttling and 5xx (honouring
///   `retry_after`/`Retry-After`) within a bounded time so a synchronous send answers within
///   25 s, then return [`Error::Unavailable`](crate::Error::Unavailable) or
///   [`Error::RateLimited`](crate::Error::RateLimited).
///
/// # Errors
///
/// | situation | error |
/// |---|---|
/// | credentials revoked or expired for good | `ReauthRequired` (the gateway marks the account `reauth_required` and emits `account.disconnected` once) |
/// | the platform refuses for a reason retrying will not fix | `Platform { code, message }` with the platform's own code and text |
/// | the platform says the messaging window is closed | `MessagingWindowClosed` |
/// | throttled or 5xx after bounded retries | `RateLimited` / `Unavailable` |
/// | operation absent on this platform | `NotSupported` |
/// | bad credentials document or parameters | `InvalidInput` naming the field |
/// | failed inbound verification | `WebhookVerification` |
///
/// # Differences between platforms
///
/// | | inbound | verification | account id | conversation id | message id |
/// |---|---|---|---|---|---|
/// | Telegram | per-account webhook or `getUpdates` | `X-Telegram-Bot-Api-Secret-Token` | bot user id | `chat.id` | `{chat.id}:{message_id}` |
/// | Instagram, Facebook, WhatsApp | per-app Meta webhook | `X-Hub-Signature-256` | IG user id / page id / phone number id | participant id | `mid` / `wamid` |
/// | X | per-app webhook or polling | CRC + `x-twitter-webhooks-signature` | user id | `dm_conversation_id` | `dm_event` id |
/// | Reddit, Bluesky | polling | — | username / DID | thread name / `convoId` | `t4_…` / message id |
#[async_trait]
pub trait Platform: Debug + Send + Sync + 'static {
    /// Which platform this is.
    fn kind(&self) -> PlatformKind;

    /// What the platform can do and allows. Constant for the adapter's lifetime.
    fn capabilities(&self) -> &Capabilities;

    /// Validates a `credentials` document from `POST /accounts` against the platform (e.g.
    /// Telegram `getMe`) and describes the account.
    ///
    /// # Errors
    /// `InvalidInput` (param `credentials.<field>`) for a malformed document;
    /// `Platform`/`ReauthRequired` when the platform rejects the credentials.
    async fn connect(&self, credentials: &serde_json::Value) -> Result<ConnectedAccount>;

    /// Arranges inbound delivery for an account and says which mode is in effect: registers the
    /// webhook when `setup.webhook_url` is set and the platform has per-account webhooks
    /// (Telegram `setWebhook` with `secret_token`), otherwise prepares polling (Telegram
    /// `deleteWebhook`, since `getUpdates` fails while a webhook is set). Idempotent.
    async fn start_inbound(
        &self,
        account: &AccountContext,
        setup: &InboundSetup,
    ) -> Result<InboundMode>;

    /// Undoes [`start_inbound`](Platform::start_inbound) when an account is disconnected
    /// (Telegram `deleteWebhook`). Idempotent; `Ok` where there is nothing to undo.
    async fn stop_inbound(&self, account: &AccountContext) -> Result<()>;

    /// Answers a subscription handshake (`GET` with Meta's `hub.challenge` or X's
    /// `crc_token`). `NotSupported` for platforms without one (Telegram).
    ///
    /// # Errors
    /// `WebhookVerification` when the handshake's token is wrong.
    fn handshake(&self, request: &WebhookRequest<'_>) -> Result<HandshakeResponse>;

    /// Checks that an inbound push really comes from the platform. `account` is the addressed
    /// account for per-account webhooks, `None` for per-app webhooks (whose secret is app
    /// configuration). Must run in constant time with respect to the secret.
    ///
    /// # Errors
    /// `WebhookVerification` for a missing or wrong signature or secret.
    fn verify_webhook(
        &self,
        request: &WebhookRequest<'_>,
        account: Option<&AccountContext>,
    ) -> Result<()>;

    /// Parses a verified raw payload (a webhook body or one item of a [`PollBatch`]) into
    /// normalised events. Pure: no network, so the gateway can re-run it on stored payloads.
    ///
    /// # Errors
    /// `InvalidInput` only when the payload is not parseable at all; unknown parts become
    /// `Ignored` events instead.
    fn parse_inbound(&self, payload: &[u8]) -> Result<Vec<InboundEvent>>;

    /// Fetches what happened after `cursor`. `None` means the platform's default start: for
    /// Telegram every pending (unconfirmed) update, since those are real messages nobody has
    /// processed yet; for platforms with a browsable history, the current position, never the
    /// beginning of history. May wait for the platform's long-poll time (Telegram: up to 50 s).
    /// `NotSupported` for webhook-only platforms.
    async fn poll(&self, account: &AccountContext, cursor: Option<&str>) -> Result<PollBatch>;

    /// Sends a message into an existing thread.
    ///
    /// The gateway has already checked the text limits, attachment kinds and messaging window
    /// against [`capabilities`](Platform::capabilities); adapters map the platform's own
    /// refusals of the same kind (`message is too long`, window codes) to the same errors.
    async fn send(
        &self,
        account: &AccountContext,
        target: &ConversationTarget,
        message: &OutboundMessage,
    ) -> Result<SentMessage>;

    /// Starts a thread with `participant` (an X user id or username, a Bluesky handle or DID, a
    /// Reddit username, a WhatsApp phone number) with a first message. `NotSupported` where the
    /// platform does not let businesses write first (Telegram, Instagram, Facebook).
    async fn start_conversation(
        &self,
        account: &AccountContext,
        participant: &str,
        message: &OutboundMessage,
    ) -> Result<StartedConversation>;

    /// Marks the thread read on the platform (Messenger/Instagram `mark_seen`, WhatsApp `read`,
    /// Reddit `read_message`, Bluesky `updateRead`). `NotSupported` where there is no such call
    /// (Telegram, X); the gateway then only zeroes its own unread count.
    async fn mark_read(&self, account: &AccountContext, target: &ConversationTarget) -> Result<()>;

    /// Renews expiring credentials and returns them; the gateway persists them before using
    /// them (X refresh tokens rotate on every use), runs at most one refresh per account at a
    /// time across replicas, and schedules it by `capabilities().credential_refresh`.
    /// `NotSupported` where credentials do not expire (Telegram).
    ///
    /// # Errors
    /// `ReauthRequired` when the platform refuses for good (e.g. `invalid_grant`, Meta code
    /// 190); transient errors (`Unavailable`) are retried by the scheduler.
    async fn refresh_credentials(&self, account: &AccountContext) -> Result<RefreshedCredentials>;

    /// The platform's authorization URL for the OAuth connect flow (`POST /connect/{platform}`),
    /// carrying `request.state`, `request.redirect_uri` and, with PKCE, the code challenge.
    /// `NotSupported` where `capabilities().oauth` is `None`.
    fn oauth_authorize_url(&self, request: &OAuthRequest) -> Result<String>;

    /// Exchanges the callback's code for credentials and describes every account they grant
    /// (Facebook: one per page granted; Instagram: short-lived tokens already exchanged for
    /// long-lived ones). `NotSupported` where `capabilities().oauth` is `None`.
    ///
    /// # Errors
    /// `InvalidInput` when the platform refuses the code (expired, reused, wrong verifier).
    async fn oauth_exchange(&self, callback: &OAuthCallback) -> Result<Vec<ConnectedAccount>>;

    /// Looks up a participant's profile (name, username, picture) by their platform id, for
    /// inbound payloads that carry only ids. The gateway caches results and counts the call
    /// against the account's read budget. `NotSupported` where `capabilities().profile_lookup`
    /// is false.
    async fn fetch_participant(
        &self,
        account: &AccountContext,
        participant_id: &str,
    ) -> Result<Participant>;

    /// Downloads media the platform only serves with the account's credentials (Telegram
    /// `file_id` references, which would otherwise expose the bot token). `url` is an
    /// attachment URL this adapter produced.
    async fn fetch_attachment(&self, account: &AccountContext, url: &str) -> Result<FetchedMedia>;
}
