//! The store's own records and inputs: workspaces, API keys, webhook endpoints, deliveries, raw
//! inbound events, idempotency records, and the arguments of the `Store` operations.

use std::fmt;

use inbox_core::{
    Account, AccountId, ApiKeyId, Attachment, ConversationId, ConversationStatus, Credentials,
    DeliveryId, EndpointId, EventId, EventType, InboundKind, MessageId, Participant, PlatformKind,
    RawEventId, SentMessage, Timestamp, WorkspaceId,
};
use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// Scaled out.
    Postgres,
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Its id.
    pub id: WorkspaceId,
    /// Its unique name.
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A stored API key (its hash, never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key's public id.
    pub id: ApiKeyId,
    /// The workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// The first characters of the key, to tell keys apart in listings.
    pub key_prefix: String,
    /// SHA-256 of the key, hex.
    pub key_hash: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Input of `connect_account`.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The workspace connecting it.
    pub workspace_id: WorkspaceId,
    /// The platform.
    pub platform: PlatformKind,
    /// The platform's id for the account.
    pub platform_account_id: String,
    /// Display name.
    pub name: String,
    /// Handle.
    pub username: Option<String>,
    /// Credentials to encrypt and store.
    pub credentials: Credentials,
    /// Secret the platform must send with pushes (Telegram `secret_token`), encrypted too.
    pub inbound_secret: Option<SecretString>,
    /// When the credentials expire, if they do.
    pub credentials_expire_at: Option<Timestamp>,
    /// When the refresh scheduler should renew them (from the platform's refresh policy).
    pub refresh_due_at: Option<Timestamp>,
}

/// A started OAuth connect flow, to store until its callback.
#[derive(Clone)]
pub struct NewOAuthState {
    /// The random `state` sent to the platform (the row's key).
    pub state: String,
    /// The workspace connecting.
    pub workspace_id: WorkspaceId,
    /// The platform.
    pub platform: PlatformKind,
    /// Where to send the browser after the callback.
    pub redirect_url: String,
    /// The PKCE verifier, encrypted at rest.
    pub code_verifier: Option<SecretString>,
    /// After this the state is refused.
    pub expires_at: Timestamp,
}

impl fmt::Debug for NewOAuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewOAuthState")
            .field("workspace_id", &self.workspace_id)
            .field("platform", &self.platform)
            .field("redirect_url", &self.redirect_url)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A stored OAuth connect flow, as its callback consumes it.
#[derive(Clone)]
pub struct OAuthState {
    /// The workspace connecting.
    pub workspace_id: WorkspaceId,
    /// The platform.
    pub platform: PlatformKind,
    /// Where to send the browser after the callback.
    pub redirect_url: String,
    /// The decrypted PKCE verifier.
    pub code_verifier: Option<SecretString>,
    /// When the flow started.
    pub created_at: Timestamp,
}

impl fmt::Debug for OAuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthState")
            .field("workspace_id", &self.workspace_id)
            .field("platform", &self.platform)
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

/// Output of `connect_account`.
#[derive(Debug, Clone)]
pub struct ConnectedAccountRecord {
    /// The account as stored.
    pub account: Account,
    /// `false` when an existing account was reconnected.
    pub created: bool,
}

/// Filters for `list_accounts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFilter {
    /// Only this platform.
    pub platform: Option<PlatformKind>,
}

/// Filters for `list_conversations`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    /// Only this platform.
    pub platform: Option<PlatformKind>,
    /// Only this account.
    pub account_id: Option<AccountId>,
    /// Only this status.
    pub status: Option<ConversationStatus>,
}

/// Message order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Oldest first.
    Asc,
    /// Newest first (the default).
    #[default]
    Desc,
}

/// A verified raw inbound payload to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRawEvent {
    /// The platform it came from.
    pub platform: PlatformKind,
    /// The addressed account, when the request named one (per-account webhooks, polls).
    pub account_id: Option<AccountId>,
    /// The raw bytes as received.
    pub payload: Vec<u8>,
    /// When it arrived.
    pub received_at: Timestamp,
}

/// A stored raw inbound payload, as claimed for processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// Its id.
    pub id: RawEventId,
    /// The platform it came from.
    pub platform: PlatformKind,
    /// The addressed account, if the request named one.
    pub account_id: Option<AccountId>,
    /// The raw bytes.
    pub payload: Vec<u8>,
    /// When it arrived.
    pub received_at: Timestamp,
    /// How many times it was claimed before (a crash-loop guard).
    pub attempts: u32,
}

/// One claimed raw event, parsed and routed, for [`Store::apply_inbound_batch`](crate::Store::apply_inbound_batch).
#[derive(Debug, Clone)]
pub struct InboundItem {
    /// The raw event; marked processed when the item is applied.
    pub raw: RawEventId,
    /// Its events per account they are for, each group in the payload's order. Empty when
    /// there is nothing to apply (unparseable, unroutable, or only ignored events).
    pub routed: Vec<RoutedEvents>,
    /// Why nothing was applied, kept on the raw event for inspection (`None` clears it).
    pub error: Option<String>,
}

/// Parsed inbound events for one account.
#[derive(Debug, Clone)]
pub struct RoutedEvents {
    /// The account they are for.
    pub account: Account,
    /// The events, in the payload's order.
    pub events: Vec<InboundKind>,
}

/// What `apply_inbound` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedInbound {
    /// Messages inserted.
    pub messages_created: usize,
    /// Messages changed (edits, deletions, statuses).
    pub messages_updated: usize,
    /// Events recorded.
    pub events_recorded: usize,
    /// Deliveries queued.
    pub deliveries_queued: usize,
}

/// Input of `record_sent_message`.
#[derive(Debug, Clone)]
pub struct NewSentMessage {
    /// The account that sent it.
    pub account: Account,
    /// The conversation it went to.
    pub conversation_id: ConversationId,
    /// Its text.
    pub text: String,
    /// Its attachments.
    pub attachments: Vec<Attachment>,
    /// The account as sender.
    pub sender: Participant,
    /// What the platform answered.
    pub sent: SentMessage,
    /// The message it replies to.
    pub reply_to: Option<MessageId>,
}

/// Input of `record_started_conversation`.
#[derive(Debug, Clone)]
pub struct NewStartedConversation {
    /// The account that started it.
    pub account: Account,
    /// The platform's id for the thread.
    pub platform_conversation_id: String,
    /// The other party.
    pub participant: Participant,
    /// The first message's text.
    pub text: String,
    /// Its attachments.
    pub attachments: Vec<Attachment>,
    /// The account as sender.
    pub sender: Participant,
    /// What the platform answered.
    pub sent: SentMessage,
}

/// A stored API response, replayed for a repeated `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

/// What `idempotency_begin` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// The key is new: run the request, then `idempotency_complete` or `_release`.
    Started,
    /// The same request completed before: answer this.
    Replay(StoredResponse),
    /// The key was used with a different request.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

/// A customer webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Its id.
    pub id: EndpointId,
    /// The owning workspace; never shown through the API.
    #[serde(skip)]
    pub workspace_id: WorkspaceId,
    /// Where events are POSTed.
    pub url: String,
    /// Subscribed event types; empty means every type.
    pub events: Vec<EventType>,
    /// Free text.
    pub description: String,
    /// Disabled endpoints receive nothing (except `webhook.test`).
    pub enabled: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Endpoint {
    /// Whether the endpoint wants events of this type.
    pub fn subscribes_to(&self, event_type: EventType) -> bool {
        self.events.is_empty() || self.events.contains(&event_type)
    }
}

/// Input of `create_endpoint`.
#[derive(Clone)]
pub struct NewEndpoint {
    /// Where to POST.
    pub url: String,
    /// Subscribed types; empty means every type.
    pub events: Vec<EventType>,
    /// Free text.
    pub description: String,
    /// Whether it receives events.
    pub enabled: bool,
    /// The signing secret (`whsec_…`).
    pub secret: SecretString,
}

impl fmt::Debug for NewEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEndpoint")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// Input of `update_endpoint`; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointPatch {
    /// New URL.
    pub url: Option<String>,
    /// New subscriptions.
    pub events: Option<Vec<EventType>>,
    /// New description.
    pub description: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// Every scheduled attempt failed.
    Failed,
}

impl DeliveryState {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One try at delivering an event to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    /// 1 for the first try.
    pub attempt_number: u32,
    /// When it started.
    pub attempted_at: Timestamp,
    /// The endpoint's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// What went wrong (timeout, connection refused, non-2xx …), if anything.
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The start of the endpoint's response body (at most 2 KiB).
    pub response_body: Option<String>,
}

/// One event's delivery to one endpoint, with its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Its id.
    pub id: DeliveryId,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// The event (also the `webhook-id` header).
    pub event_id: EventId,
    /// The event's type.
    pub event_type: EventType,
    /// `pending`, `succeeded` or `failed`.
    pub status: DeliveryState,
    /// Attempts made so far.
    pub attempt_count: u32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<Timestamp>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Every attempt, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

/// A delivery claimed by a worker, with everything needed to send it.
#[derive(Clone)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Where to POST.
    pub url: String,
    /// Secrets to sign with: the current one first, then a rotated-out one still valid.
    pub secrets: Vec<SecretString>,
    /// The event id (`webhook-id`).
    pub event_id: EventId,
    /// The event type.
    pub event_type: EventType,
    /// The exact body to send.
    pub payload: String,
    /// Attempts made before this one.
    pub previous_attempts: u32,
    /// A manual retry of a finished delivery: one attempt, no further schedule.
    pub one_shot: bool,
}

impl fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("delivery_id", &self.delivery_id)
            .field("endpoint_id", &self.endpoint_id)
            .field("url", &self.url)
            .field("event_id", &self.event_id)
            .field("previous_attempts", &self.previous_attempts)
            .field("one_shot", &self.one_shot)
            .finish_non_exhaustive()
    }
}

/// The outcome of one attempt, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt {
    /// When it started.
    pub attempted_at: Timestamp,
    /// The endpoint's status, if it answered.
    pub status_code: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// The start of the response body (callers truncate to 2 KiB).
    pub response_body: Option<String>,
}

/// What happens after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryNext {
    /// Done.
    Succeeded,
    /// Try again at this time.
    RetryAt(Timestamp),
    /// Give up.
    Failed,
}
