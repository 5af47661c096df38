//! The `Store` trait: every read and write the gateway makes, as domain operations.
//!
//! Operations that change messages, accounts or events write the change, its outbound events
//! and one delivery row per subscribed endpoint in **one transaction** (the outbox), so an
//! event is never lost between "stored" and "queued for delivery", and never queued for a
//! change that rolled back.
//!
//! Tenancy: every method that takes a `workspace` only sees that workspace's rows; another
//! workspace's id answers `Error::NotFound`, exactly like an id that does not exist. Methods
//! without a workspace are for the gateway's own workers (routing, pollers, delivery).

use std::{fmt::Debug, sync::Arc, time::Duration};

use async_trait::async_trait;
use inbox_core::{
    Account, AccountContext, AccountId, Conversation, ConversationId, ConversationStatus,
    DeliveryId, EndpointId, Event, InboundKind, Message, MessageId, Page, PageRequest,
    PlatformKind, RawEventId, RefreshedCredentials, Result, Timestamp, WorkspaceId,
};
use secrecy::SecretString;
use tokio::sync::Notify;

use crate::model::*;

/// Persistence for the whole gateway. Implemented for SQLite and PostgreSQL; both pass the
/// same conformance suite (`crates/inbox-store/tests`).
#[async_trait]
pub trait Store: Debug + Send + Sync + 'static {
    // ----- operations -------------------------------------------------------------------

    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Checks the database answers (`/readyz`).
    async fn ping(&self) -> Result<()>;

    /// Notified after every commit that created deliveries, so an in-process delivery worker
    /// wakes at once instead of waiting for its next poll.
    fn deliveries_notify(&self) -> Arc<Notify>;

    /// Notified after every commit that stored raw inbound events.
    fn raw_events_notify(&self) -> Arc<Notify>;

    // ----- workspaces and API keys ------------------------------------------------------

    /// The workspace called `name`, created if new.
    async fn ensure_workspace(&self, name: &str) -> Result<Workspace>;

    /// Stores an API key by its SHA-256 hash (hex). The key itself is never stored.
    async fn create_api_key(
        &self,
        workspace: &WorkspaceId,
        key_hash: &str,
        key_prefix: &str,
    ) -> Result<ApiKeyRecord>;

    /// The key whose hash is `key_hash`, if any (revoked keys are absent).
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;

    // ----- accounts -------------------------------------------------------------------

    /// Connects an account, encrypting its credentials, and records `account.connected`.
    ///
    /// One platform account belongs to at most one workspace. Connecting it again in the
    /// same workspace (also after it was deleted) updates credentials and name, sets the
    /// status `active` and keeps the id and history (`created: false`). Connecting it while it
    /// is connected in another workspace is `Error::Conflict`.
    async fn connect_account(&self, new: NewAccount) -> Result<ConnectedAccountRecord>;

    /// One account of the workspace (not deleted).
    async fn get_account(&self, workspace: &WorkspaceId, id: &AccountId) -> Result<Account>;

    /// The workspace's accounts, oldest first.
    async fn list_accounts(
        &self,
        workspace: &WorkspaceId,
        filter: &AccountFilter,
        page: &PageRequest,
    ) -> Result<Page<Account>>;

    /// An account by id in any workspace (not deleted), for inbound routing.
    async fn find_account(&self, id: &AccountId) -> Result<Option<Account>>;

    /// An account by its platform id (not deleted), for routing per-app webhooks.
    async fn find_account_by_platform_id(
        &self,
        platform: PlatformKind,
        platform_account_id: &str,
    ) -> Result<Option<Account>>;

    /// Every connected (not deleted) account of a platform, any status, for starting pollers.
    async fn list_all_accounts(&self, platform: Option<PlatformKind>) -> Result<Vec<Account>>;

    /// The decrypted credentials and inbound secret of an account, for its adapter.
    async fn account_context(&self, id: &AccountId) -> Result<AccountContext>;

    /// Replaces an account's credentials after a refresh, with their expiry and when the next
    /// refresh is due (`None`: never). Called before the new credentials are used, because
    /// some platforms' refresh tokens are single-use.
    async fn update_account_credentials(
        &self,
        id: &AccountId,
        refreshed: &RefreshedCredentials,
        refresh_due_at: Option<Timestamp>,
    ) -> Result<()>;

    /// Active accounts whose refresh is due at or before `now`, most overdue first.
    async fn accounts_due_for_refresh(&self, now: Timestamp, limit: u32) -> Result<Vec<Account>>;

    /// Moves an account's next refresh to `until` (after a transient refresh failure).
    async fn postpone_refresh(&self, id: &AccountId, until: Timestamp) -> Result<()>;

    /// When an account's credentials expire and were last obtained, if they expire.
    async fn credentials_expiry(&self, id: &AccountId) -> Result<Option<(Timestamp, Timestamp)>>;

    /// Sets `reauth_required` and records `account.disconnected` with `reason` — only when the
    /// account was `active`, so concurrent failures emit the event once. Returns whether it
    /// changed.
    async fn mark_account_reauth_required(&self, id: &AccountId, reason: &str) -> Result<bool>;

    /// Disconnects: marks the account deleted and erases its credentials. Its conversations
    /// and messages stay, hidden, and come back if the same platform account is connected
    /// again in this workspace.
    async fn delete_account(&self, workspace: &WorkspaceId, id: &AccountId) -> Result<()>;

    // ----- pollers and leases ----------------------------------------------------------

    /// The account's persisted poll cursor.
    async fn poll_cursor(&self, account: &AccountId) -> Result<Option<String>>;

    /// Stores a poll's raw payloads and the cursor that follows them in one transaction.
    async fn store_polled(
        &self,
        account: &Account,
        payloads: Vec<Vec<u8>>,
        next_cursor: Option<String>,
    ) -> Result<Vec<RawEventId>>;

    /// Takes or renews the lease `name` for `owner` for `ttl`. Returns `false` while another
    /// owner holds an unexpired lease. Used so one replica polls or refreshes an account.
    async fn try_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool>;

    /// Gives a lease up early (on shutdown or when an account is disconnected).
    async fn release_lease(&self, name: &str, owner: &str) -> Result<()>;

    // ----- raw inbound events ------------------------------------------------------------

    /// Stores verified raw inbound payloads, all in one transaction (group commit). The
    /// caller acknowledges the platform only after this returns.
    async fn insert_raw_events(&self, events: Vec<NewRawEvent>) -> Result<Vec<RawEventId>>;

    /// Claims up to `limit` unprocessed raw events, oldest first, for `lease`. An event whose
    /// claim expired (its worker died) is claimed again.
    async fn claim_raw_events(
        &self,
        owner: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<RawEvent>>;

    /// Applies parsed inbound events for one account and marks the raw event processed, in one
    /// transaction (see [`InboundKind`] for what each does). Duplicates — the same platform
    /// message twice, an edit that changes nothing — change nothing and emit nothing.
    async fn apply_inbound(
        &self,
        raw: &RawEventId,
        account: &Account,
        events: Vec<InboundKind>,
    ) -> Result<AppliedInbound>;

    /// Applies many claimed raw events in one transaction, in order: for each item its events
    /// per account (as [`Store::apply_inbound`] does) and the marking of its raw event
    /// processed, with the item's `error`. Items are independent: one that fails is rolled
    /// back alone and stays claimed (so it is retried once its lease expires) while the others
    /// commit. Returns one result per item, in order; `Err` for the whole call only when the
    /// transaction itself failed, and then nothing was applied.
    ///
    /// The delivery worker is notified once, after the commit, when any item queued
    /// deliveries.
    async fn apply_inbound_batch(
        &self,
        items: Vec<InboundItem>,
    ) -> Result<Vec<Result<AppliedInbound>>>;

    /// Marks a raw event done without applying anything: `error` set when it could not be
    /// parsed or routed (kept for inspection), `None` when there was nothing to apply.
    async fn finish_raw_event(&self, id: &RawEventId, error: Option<&str>) -> Result<()>;

    // ----- OAuth connect flows ---------------------------------------------------------

    /// Stores a started OAuth flow until its callback.
    async fn create_oauth_state(&self, new: NewOAuthState) -> Result<()>;

    /// Consumes a stored OAuth flow: returns it once and deletes it; `None` when unknown,
    /// already used or expired.
    async fn take_oauth_state(&self, state: &str) -> Result<Option<OAuthState>>;

    // ----- conversations and messages -------------------------------------------------

    /// A conversation by its platform id within an account (for the processor, which fills
    /// in a participant's name from a profile lookup only when it does not know it yet).
    async fn find_conversation(
        &self,
        account: &AccountId,
        platform_conversation_id: &str,
    ) -> Result<Option<Conversation>>;

    /// Conversations, newest activity first.
    async fn list_conversations(
        &self,
        workspace: &WorkspaceId,
        filter: &ConversationFilter,
        page: &PageRequest,
    ) -> Result<Page<Conversation>>;

    /// One conversation. `window_expires_at` is left `None`: the API fills it from the
    /// platform's capabilities.
    async fn get_conversation(
        &self,
        workspace: &WorkspaceId,
        id: &ConversationId,
    ) -> Result<Conversation>;

    /// Archives or unarchives.
    async fn set_conversation_status(
        &self,
        workspace: &WorkspaceId,
        id: &ConversationId,
        status: ConversationStatus,
    ) -> Result<Conversation>;

    /// Zeroes the unread count.
    async fn mark_conversation_read(
        &self,
        workspace: &WorkspaceId,
        id: &ConversationId,
    ) -> Result<Conversation>;

    /// A conversation's messages by timestamp (then id).
    async fn list_messages(
        &self,
        workspace: &WorkspaceId,
        conversation: &ConversationId,
        order: SortOrder,
        page: &PageRequest,
    ) -> Result<Page<Message>>;

    /// One message.
    async fn get_message(&self, workspace: &WorkspaceId, id: &MessageId) -> Result<Message>;

    /// Records a message the gateway sent, with `message.sent`, and updates the conversation.
    /// If the platform's echo of it was recorded first, returns that message instead of a
    /// second copy.
    async fn record_sent_message(&self, sent: NewSentMessage) -> Result<Message>;

    /// Records a conversation the gateway started with its first message: creates the
    /// conversation if new (`conversation.started`), then as `record_sent_message`.
    async fn record_started_conversation(
        &self,
        started: NewStartedConversation,
    ) -> Result<(Conversation, Message)>;

    // ----- idempotency ------------------------------------------------------------------

    /// Starts a request under an `Idempotency-Key`. Keys older than `ttl` count as unused.
    async fn idempotency_begin(
        &self,
        workspace: &WorkspaceId,
        key: &str,
        request_hash: &str,
        ttl: Duration,
    ) -> Result<IdempotencyBegin>;

    /// Stores the response of a request started with `idempotency_begin`.
    async fn idempotency_complete(
        &self,
        workspace: &WorkspaceId,
        key: &str,
        response: &StoredResponse,
    ) -> Result<()>;

    /// Forgets a key whose request failed, so a retry runs again.
    async fn idempotency_release(&self, workspace: &WorkspaceId, key: &str) -> Result<()>;

    // ----- housekeeping -----------------------------------------------------------------

    /// Deletes up to `limit` raw inbound payloads processed before `before` (the messages
    /// and events they became stay; unprocessed payloads are never deleted). Returns how
    /// many went; fewer than `limit` means none are left to delete.
    async fn prune_raw_events(&self, before: Timestamp, limit: u32) -> Result<u64>;

    /// Deletes up to `limit` idempotency keys created before `before` (past their time to
    /// live they count as unused anyway). Returns how many went.
    async fn prune_idempotency_keys(&self, before: Timestamp, limit: u32) -> Result<u64>;

    // ----- webhook endpoints -----------------------------------------------------------

    /// Creates an endpoint; its secret is encrypted at rest.
    async fn create_endpoint(&self, workspace: &WorkspaceId, new: NewEndpoint) -> Result<Endpoint>;

    /// The workspace's endpoints, oldest first.
    async fn list_endpoints(
        &self,
        workspace: &WorkspaceId,
        page: &PageRequest,
    ) -> Result<Page<Endpoint>>;

    /// One endpoint.
    async fn get_endpoint(&self, workspace: &WorkspaceId, id: &EndpointId) -> Result<Endpoint>;

    /// Changes url, events, description or enabled.
    async fn update_endpoint(
        &self,
        workspace: &WorkspaceId,
        id: &EndpointId,
        patch: EndpointPatch,
    ) -> Result<Endpoint>;

    /// Deletes an endpoint; its pending deliveries are abandoned.
    async fn delete_endpoint(&self, workspace: &WorkspaceId, id: &EndpointId) -> Result<()>;

    /// Replaces the secret. The previous one keeps signing (as a second signature) for
    /// `previous_valid_for`, so receivers can switch without dropping deliveries.
    async fn rotate_endpoint_secret(
        &self,
        workspace: &WorkspaceId,
        id: &EndpointId,
        new_secret: SecretString,
        previous_valid_for: Duration,
    ) -> Result<Endpoint>;

    // ----- events and deliveries --------------------------------------------------------

    /// Records an event and one delivery per enabled endpoint of its workspace subscribed to
    /// its type, in one transaction. Returns the number of deliveries.
    async fn record_event(&self, event: &Event) -> Result<usize>;

    /// Records `webhook.test` with one delivery, to `endpoint` only (even if it is disabled
    /// or not subscribed to `webhook.test`).
    async fn record_test_event(
        &self,
        workspace: &WorkspaceId,
        endpoint: &EndpointId,
    ) -> Result<Delivery>;

    /// Claims up to `limit` deliveries due now for `lease`, oldest due first. A delivery whose
    /// claim expired (its worker died mid-attempt) is due again. PostgreSQL claims with
    /// `FOR UPDATE SKIP LOCKED`, so replicas never claim the same delivery.
    async fn claim_deliveries(
        &self,
        owner: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>>;

    /// Records one attempt and what follows it, releasing the claim. Ignored (returns `false`)
    /// when `owner` no longer holds the claim.
    async fn record_attempt(
        &self,
        delivery: &DeliveryId,
        owner: &str,
        attempt: &NewAttempt,
        next: DeliveryNext,
    ) -> Result<bool>;

    /// An endpoint's deliveries with all their attempts, newest first.
    async fn list_deliveries(
        &self,
        workspace: &WorkspaceId,
        endpoint: &EndpointId,
        page: &PageRequest,
    ) -> Result<Page<Delivery>>;

    /// Makes one delivery due now. A pending delivery keeps its schedule from there; a
    /// succeeded or failed one gets exactly one more attempt.
    async fn retry_delivery(
        &self,
        workspace: &WorkspaceId,
        endpoint: &EndpointId,
        delivery: &DeliveryId,
    ) -> Result<Delivery>;

    /// Queues a new delivery to `endpoint` for every event of the workspace recorded in
    /// `[since, until)` that the endpoint subscribes to, delivered before or not. Returns how
    /// many.
    async fn recover_deliveries(
        &self,
        workspace: &WorkspaceId,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<u64>;
}
