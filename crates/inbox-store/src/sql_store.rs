//! `SqlStore`: the one implementation of [`Store`], for SQLite and PostgreSQL alike.
//!
//! Each operation takes a connection (a read from the pool, or a transaction for anything that
//! writes), runs backend-neutral [`Statement`](crate::db::Statement)s on it, and commits.
//! Operations that record events do so through the outbox in the same transaction, and after
//! the commit call `notify_one` on the matching [`Notify`]: unlike `notify_waiters`, it stores
//! a permit when no worker is waiting at that instant, so a worker that is between two polls
//! still wakes at once instead of missing the signal.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use inbox_core::{
    Account, AccountContext, AccountId, AccountStatus, Conversation, ConversationId,
    ConversationStatus, Credentials, DeliveryId, DeliveryStatus, Direction, EndpointId, Error,
    Event, EventType, InboundKind, Message, MessageId, Page, PageRequest, PlatformKind, RawEventId,
    RefreshedCredentials, Result, Timestamp, WorkspaceId,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Notify;

use crate::{
    AccountFilter, ApiKeyRecord, AppliedInbound, Backend, Cipher, ClaimedDelivery,
    ConnectedAccountRecord, ConversationFilter, Delivery, DeliveryNext, DeliveryState, Endpoint,
    EndpointPatch, IdempotencyBegin, InboundItem, NewAccount, NewAttempt, NewEndpoint,
    NewOAuthState, NewRawEvent, NewSentMessage, NewStartedConversation, OAuthState, RawEvent,
    RoutedEvents, SortOrder, Store, StoredResponse, Workspace,
    db::{Conn, Pooled, Statement, Tx, cached_chunks, db_error, generated_sql, placeholders, sql},
    inbound_batch::{apply_in_savepoints, apply_together},
    messages::{
        FoundConversation, find_or_create_conversation, insert_new_message, message_by_platform_id,
    },
    open::Pool,
    outbox::{
        NewDelivery, insert_deliveries, insert_event, load_delivery, record_event_in_tx,
        with_attempts,
    },
    pending::PendingWrites,
    rows::{
        AccountRow, ApiKeyRow, ConversationRow, DeliveryRow, EndpointRow, MessageRow, RawEventRow,
        WorkspaceRow, json_text, parsed,
    },
};

/// The SQL store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct SqlStore {
    pool: Pool,
    cipher: Cipher,
    deliveries: Arc<Notify>,
    raw_events: Arc<Notify>,
}

/// `Duration` as whole milliseconds, saturating.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Keyset pagination: appends `AND (key, id) > / < (cursor)` when there is a cursor, then the
/// `ORDER BY` and `LIMIT limit + 1` (the extra row only tells whether a next page exists).
fn paginate(statement: &mut Statement, page: &PageRequest, key: &str, id: &str, descending: bool) {
    if let Some(after) = &page.after {
        let sort_key = statement.param(after.sort_key);
        let after_id = statement.param(after.id.as_str());
        let op = if descending { "<" } else { ">" };
        statement.push_sql(&format!(" AND ({key}, {id}) {op} ({sort_key}, {after_id})"));
    }
    let direction = if descending { "DESC" } else { "ASC" };
    let limit = statement.param(i64::from(page.limit) + 1);
    statement.push_sql(&format!(
        " ORDER BY {key} {direction}, {id} {direction} LIMIT {limit}"
    ));
}

/// A page from over-fetched rows, with the cursor taken from the row (whose sort key may not
/// be on the domain type).
fn page_of<R, T>(
    rows: Vec<R>,
    page: &PageRequest,
    cursor: impl Fn(&R) -> inbox_core::Cursor,
    convert: impl Fn(R) -> Result<T>,
) -> Result<Page<T>> {
    let keyed = rows
        .into_iter()
        .map(|row| Ok((cursor(&row), convert(row)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetched(keyed, page.limit, |(cursor, _)| cursor.clone()).map(|(_, v)| v))
}

/// `EXISTS` clause that hides rows of deleted accounts; `table` names the outer table.
macro_rules! visible_account {
    ($table:literal) => {
        concat!(
            " EXISTS (SELECT 1 FROM accounts WHERE accounts.id = ",
            $table,
            ".account_id AND accounts.deleted_at IS NULL)"
        )
    };
}

impl SqlStore {
    pub(crate) fn new(pool: Pool, cipher: Cipher) -> Self {
        SqlStore {
            pool,
            cipher,
            deliveries: Arc::new(Notify::new()),
            raw_events: Arc::new(Notify::new()),
        }
    }

    /// A connection for reads: SQLite's read pool, or the PostgreSQL pool.
    async fn read(&self) -> Result<Pooled> {
        match &self.pool {
            Pool::Sqlite { read, .. } => read.acquire().await.map(Pooled::Sqlite),
            Pool::Postgres(pool) => pool.acquire().await.map(Pooled::Postgres),
        }
        .map_err(db_error)
    }

    /// A transaction: on SQLite always on the single writer connection.
    async fn begin(&self) -> Result<Tx<'static>> {
        match &self.pool {
            Pool::Sqlite { write, .. } => write.begin().await.map(Tx::Sqlite),
            Pool::Postgres(pool) => pool.begin().await.map(Tx::Postgres),
        }
        .map_err(db_error)
    }

    /// Commits, then wakes the delivery worker if the transaction queued deliveries.
    async fn commit_and_notify(&self, tx: Tx<'_>, deliveries_created: usize) -> Result<()> {
        tx.commit().await?;
        if deliveries_created > 0 {
            self.deliveries.notify_one();
        }
        Ok(())
    }

    fn encrypt_secret(&self, secret: &SecretString) -> Result<String> {
        self.cipher.encrypt(secret.expose_secret())
    }

    async fn visible_account(
        conn: &mut Conn<'_>,
        workspace: &WorkspaceId,
        id: &AccountId,
    ) -> Result<Account> {
        sql(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL"
        ))
        .bind(id.as_str())
        .bind(workspace.as_str())
        .fetch_optional::<AccountRow>(conn)
        .await?
        .ok_or_else(|| Error::not_found("account", id.as_str()))?
        .into_domain()
    }

    async fn account_by_id(conn: &mut Conn<'_>, id: &AccountId) -> Result<Option<Account>> {
        sql(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id.as_str())
        .fetch_optional::<AccountRow>(conn)
        .await?
        .map(AccountRow::into_domain)
        .transpose()
    }

    async fn visible_conversation(
        conn: &mut Conn<'_>,
        workspace: &WorkspaceId,
        id: &ConversationId,
    ) -> Result<Conversation> {
        sql(concat!(
            "SELECT ",
            conversation_columns!(),
            " FROM conversations WHERE id = $1 AND workspace_id = $2 AND",
            visible_account!("conversations")
        ))
        .bind(id.as_str())
        .bind(workspace.as_str())
        .fetch_optional::<ConversationRow>(conn)
        .await?
        .ok_or_else(|| Error::not_found("conversation", id.as_str()))?
        .into_domain()
    }

    async fn visible_endpoint_row(
        conn: &mut Conn<'_>,
        workspace: &WorkspaceId,
        id: &EndpointId,
    ) -> Result<EndpointRow> {
        sql(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL"
        ))
        .bind(id.as_str())
        .bind(workspace.as_str())
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::not_found("webhook endpoint", id.as_str()))
    }

    /// Inserts raw events with multi-row `INSERT`s inside the caller's transaction, in
    /// [`cached_chunks`]: a few statement texts, prepared once and reused by every group
    /// commit, each small enough that binding stays cheap.
    async fn insert_raw_rows(
        conn: &mut Conn<'_>,
        events: &[NewRawEvent],
    ) -> Result<Vec<RawEventId>> {
        const COLUMNS: usize = 5;
        let mut ids = Vec::with_capacity(events.len());
        for chunk in cached_chunks(events, COLUMNS) {
            let mut statement = generated_sql(String::from(
                "INSERT INTO raw_events (id, platform, account_id, payload, received_at) VALUES ",
            ))
            .cached();
            for (index, event) in chunk.iter().enumerate() {
                let id = RawEventId::new();
                let values = [
                    statement.param(id.as_str()),
                    statement.param(event.platform.as_str()),
                    statement.param(event.account_id.as_ref().map(AccountId::as_str)),
                    statement.param(event.payload.clone()),
                    statement.param(event.received_at),
                ];
                let separator = if index == 0 { "" } else { ", " };
                statement.push_sql(&format!("{separator}({})", values.join(", ")));
                ids.push(id);
            }
            statement.execute(conn).await?;
        }
        Ok(ids)
    }

    /// Runs `update` on a conversation the workspace can see, and returns it as updated.
    async fn update_conversation(
        &self,
        workspace: &WorkspaceId,
        id: &ConversationId,
        update: Statement,
    ) -> Result<Conversation> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        Self::visible_conversation(&mut conn, workspace, id).await?;
        update.execute(&mut conn).await?;
        let conversation = Self::visible_conversation(&mut conn, workspace, id).await?;
        tx.commit().await?;
        Ok(conversation)
    }

    /// A conversation of `account` by id, for recording a send into it.
    async fn conversation_of_account(
        conn: &mut Conn<'_>,
        account: &Account,
        id: &ConversationId,
    ) -> Result<Conversation> {
        sql(concat!(
            "SELECT ",
            conversation_columns!(),
            " FROM conversations WHERE id = $1 AND account_id = $2"
        ))
        .bind(id.as_str())
        .bind(account.id.as_str())
        .fetch_optional::<ConversationRow>(conn)
        .await?
        .ok_or_else(|| Error::not_found("conversation", id.as_str()))?
        .into_domain()
    }

    /// The shared tail of `record_sent_message` and `record_started_conversation`: insert the
    /// outgoing message unless the platform's echo of it is stored already.
    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of both send inputs, spelled out once"
    )]
    async fn record_outgoing(
        conn: &mut Conn<'_>,
        writes: &mut PendingWrites,
        account: &Account,
        found: &FoundConversation,
        text: &str,
        attachments: &[inbox_core::Attachment],
        sender: &inbox_core::Participant,
        sent: &inbox_core::SentMessage,
        reply_to: Option<MessageId>,
    ) -> Result<Message> {
        if let Some(echo) = message_by_platform_id(conn, account, &sent.platform_message_id).await?
        {
            return Ok(echo);
        }
        let message = Message {
            id: MessageId::new(),
            workspace_id: account.workspace_id.clone(),
            conversation_id: found.conversation.id.clone(),
            account_id: account.id.clone(),
            platform: account.platform,
            direction: Direction::Outgoing,
            text: text.to_owned(),
            attachments: attachments.to_vec(),
            sender: sender.clone(),
            timestamp: sent.timestamp,
            platform_message_id: sent.platform_message_id.clone(),
            reply_to,
            delivery_status: Some(DeliveryStatus::Sent),
            is_edited: false,
            is_deleted: false,
        };
        if insert_new_message(conn, writes, found, &message, Timestamp::now()).await? {
            Ok(message)
        } else {
            // The echo won a race between our check and our insert.
            message_by_platform_id(conn, account, &sent.platform_message_id)
                .await?
                .ok_or_else(|| Error::internal_msg("a conflicting message vanished"))
        }
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.pool.backend()
    }

    async fn ping(&self) -> Result<()> {
        let mut pooled = self.read().await?;
        sql("SELECT CAST(1 AS BIGINT)")
            .fetch_one::<(i64,)>(&mut pooled.conn())
            .await?;
        Ok(())
    }

    fn deliveries_notify(&self) -> Arc<Notify> {
        self.deliveries.clone()
    }

    fn raw_events_notify(&self) -> Arc<Notify> {
        self.raw_events.clone()
    }

    // ----- workspaces and API keys ------------------------------------------------------

    async fn ensure_workspace(&self, name: &str) -> Result<Workspace> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::invalid(
                "workspace",
                "the workspace name must not be empty",
            ));
        }
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        sql(
            "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(WorkspaceId::new().as_str())
        .bind(name)
        .bind(Timestamp::now())
        .execute(&mut conn)
        .await?;
        let row: WorkspaceRow = sql("SELECT id, name, created_at FROM workspaces WHERE name = $1")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
        tx.commit().await?;
        row.into_domain()
    }

    async fn create_api_key(
        &self,
        workspace: &WorkspaceId,
        key_hash: &str,
        key_prefix: &str,
    ) -> Result<ApiKeyRecord> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let exists: Option<(String,)> = sql("SELECT id FROM workspaces WHERE id = $1")
            .bind(workspace.as_str())
            .fetch_optional(&mut conn)
            .await?;
        if exists.is_none() {
            return Err(Error::not_found("workspace", workspace.as_str()));
        }
        let record = ApiKeyRecord {
            id: inbox_core::ApiKeyId::new(),
            workspace_id: workspace.clone(),
            key_prefix: key_prefix.to_owned(),
            key_hash: key_hash.to_owned(),
            created_at: Timestamp::now(),
        };
        sql(
            "INSERT INTO api_keys (id, workspace_id, key_prefix, key_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(record.id.as_str())
        .bind(workspace.as_str())
        .bind(key_prefix)
        .bind(key_hash)
        .bind(record.created_at)
        .execute(&mut conn)
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let mut pooled = self.read().await?;
        sql(
            "SELECT id, workspace_id, key_prefix, key_hash, created_at FROM api_keys \
             WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional::<ApiKeyRow>(&mut pooled.conn())
        .await?
        .map(ApiKeyRow::into_domain)
        .transpose()
    }

    // ----- accounts -------------------------------------------------------------------

    async fn connect_account(&self, new: NewAccount) -> Result<ConnectedAccountRecord> {
        let credentials = self.cipher.encrypt(new.credentials.expose_json())?;
        let inbound_secret = new
            .inbound_secret
            .as_ref()
            .map(|secret| self.encrypt_secret(secret))
            .transpose()?;
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let elsewhere: Option<(String,)> = sql("SELECT workspace_id FROM accounts \
             WHERE platform = $1 AND platform_account_id = $2 AND deleted_at IS NULL \
             AND workspace_id <> $3")
        .bind(new.platform.as_str())
        .bind(new.platform_account_id.as_str())
        .bind(new.workspace_id.as_str())
        .fetch_optional(&mut conn)
        .await?;
        let conflict = || Error::Conflict {
            message: format!(
                "this {} account ({}) is already connected to another workspace; disconnect it \
                 there first",
                new.platform, new.platform_account_id
            ),
        };
        if elsewhere.is_some() {
            return Err(conflict());
        }
        // A row of this workspace, deleted or not, is reconnected in place (same id, history
        // back); otherwise a new row. The unique index over connected rows still refuses a
        // second workspace that raced past the check above.
        let existing: Option<(String,)> = sql("SELECT id FROM accounts \
             WHERE workspace_id = $1 AND platform = $2 AND platform_account_id = $3")
        .bind(new.workspace_id.as_str())
        .bind(new.platform.as_str())
        .bind(new.platform_account_id.as_str())
        .fetch_optional(&mut conn)
        .await?;
        let created = existing.is_none();
        let (id,): (String,) = sql(
            "INSERT INTO accounts (id, workspace_id, platform, platform_account_id, name, \
             username, status, credentials, inbound_secret, created_at, updated_at, \
             credentials_expires_at, credentials_refreshed_at, refresh_due_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $10, $12) \
             ON CONFLICT (workspace_id, platform, platform_account_id) DO UPDATE SET \
             name = excluded.name, username = excluded.username, status = excluded.status, \
             credentials = excluded.credentials, inbound_secret = excluded.inbound_secret, \
             updated_at = excluded.updated_at, deleted_at = NULL, \
             credentials_expires_at = excluded.credentials_expires_at, \
             credentials_refreshed_at = excluded.credentials_refreshed_at, \
             refresh_due_at = excluded.refresh_due_at RETURNING id",
        )
        .bind(AccountId::new().as_str())
        .bind(new.workspace_id.as_str())
        .bind(new.platform.as_str())
        .bind(new.platform_account_id.as_str())
        .bind(new.name.as_str())
        .bind(new.username.as_deref())
        .bind(AccountStatus::Active.as_str())
        .bind(credentials)
        .bind(inbound_secret)
        .bind(now)
        .bind(new.credentials_expire_at)
        .bind(new.refresh_due_at)
        .fetch_one(&mut conn)
        .await
        .map_err(|err| match err {
            Error::Conflict { .. } => conflict(),
            other => other,
        })?;
        let id: AccountId = parsed(&id, "accounts.id")?;
        let account = Self::visible_account(&mut conn, &new.workspace_id, &id).await?;
        let deliveries = record_event_in_tx(
            &mut conn,
            &Event::for_account(EventType::AccountConnected, &account, None),
        )
        .await?;
        self.commit_and_notify(tx, deliveries).await?;
        Ok(ConnectedAccountRecord { account, created })
    }

    async fn get_account(&self, workspace: &WorkspaceId, id: &AccountId) -> Result<Account> {
        let mut pooled = self.read().await?;
        Self::visible_account(&mut pooled.conn(), workspace, id).await
    }

    async fn list_accounts(
        &self,
        workspace: &WorkspaceId,
        filter: &AccountFilter,
        page: &PageRequest,
    ) -> Result<Page<Account>> {
        let mut statement = generated_sql(String::from(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE deleted_at IS NULL"
        )));
        let workspace_param = statement.param(workspace.as_str());
        statement.push_sql(&format!(" AND workspace_id = {workspace_param}"));
        if let Some(platform) = filter.platform {
            let platform_param = statement.param(platform.as_str());
            statement.push_sql(&format!(" AND platform = {platform_param}"));
        }
        paginate(&mut statement, page, "created_at", "id", false);
        let mut pooled = self.read().await?;
        let rows: Vec<AccountRow> = statement.fetch_all(&mut pooled.conn()).await?;
        page_of(rows, page, AccountRow::cursor, AccountRow::into_domain)
    }

    async fn find_account(&self, id: &AccountId) -> Result<Option<Account>> {
        let mut pooled = self.read().await?;
        Self::account_by_id(&mut pooled.conn(), id).await
    }

    async fn find_account_by_platform_id(
        &self,
        platform: PlatformKind,
        platform_account_id: &str,
    ) -> Result<Option<Account>> {
        let mut pooled = self.read().await?;
        sql(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE platform = $1 AND platform_account_id = $2 AND deleted_at IS NULL"
        ))
        .bind(platform.as_str())
        .bind(platform_account_id)
        .fetch_optional::<AccountRow>(&mut pooled.conn())
        .await?
        .map(AccountRow::into_domain)
        .transpose()
    }

    async fn list_all_accounts(&self, platform: Option<PlatformKind>) -> Result<Vec<Account>> {
        let mut pooled = self.read().await?;
        let rows: Vec<AccountRow> = sql(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE deleted_at IS NULL AND ($1 IS NULL OR platform = $1) \
             ORDER BY created_at, id"
        ))
        .bind(platform.map(PlatformKind::as_str))
        .fetch_all(&mut pooled.conn())
        .await?;
        rows.into_iter().map(AccountRow::into_domain).collect()
    }

    async fn account_context(&self, id: &AccountId) -> Result<AccountContext> {
        let mut pooled = self.read().await?;
        let row: Option<(String, Option<String>, Option<String>)> = sql(
            "SELECT platform_account_id, credentials, inbound_secret FROM accounts \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.as_str())
        .fetch_optional(&mut pooled.conn())
        .await?;
        let (platform_account_id, credentials, inbound_secret) =
            row.ok_or_else(|| Error::not_found("account", id.as_str()))?;
        let credentials = credentials.ok_or_else(|| {
            Error::internal_msg(format!("account {id} has no stored credentials"))
        })?;
        let credentials = self
            .cipher
            .decrypt(&credentials, &format!("credentials of account {id}"))?;
        let inbound_secret = inbound_secret
            .map(|secret| {
                self.cipher
                    .decrypt(&secret, &format!("inbound secret of account {id}"))
            })
            .transpose()?
            .map(SecretString::from);
        Ok(AccountContext {
            id: id.clone(),
            platform_account_id,
            credentials: Credentials::from_json_text(credentials),
            inbound_secret,
        })
    }

    async fn update_account_credentials(
        &self,
        id: &AccountId,
        refreshed: &RefreshedCredentials,
        refresh_due_at: Option<Timestamp>,
    ) -> Result<()> {
        let sealed = self.cipher.encrypt(refreshed.credentials.expose_json())?;
        let mut tx = self.begin().await?;
        let changed = sql("UPDATE accounts SET credentials = $2, updated_at = $3, \
                           credentials_refreshed_at = $3, credentials_expires_at = $4, \
                           refresh_due_at = $5 WHERE id = $1 AND deleted_at IS NULL")
        .bind(id.as_str())
        .bind(sealed)
        .bind(Timestamp::now())
        .bind(refreshed.expires_at)
        .bind(refresh_due_at)
        .execute(&mut tx.conn())
        .await?;
        if changed == 0 {
            return Err(Error::not_found("account", id.as_str()));
        }
        tx.commit().await
    }

    async fn accounts_due_for_refresh(&self, now: Timestamp, limit: u32) -> Result<Vec<Account>> {
        let mut pooled = self.read().await?;
        let rows: Vec<AccountRow> = sql(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE refresh_due_at IS NOT NULL AND refresh_due_at <= $1 \
             AND deleted_at IS NULL AND status = $2 ORDER BY refresh_due_at, id LIMIT $3"
        ))
        .bind(now)
        .bind(AccountStatus::Active.as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut pooled.conn())
        .await?;
        rows.into_iter().map(AccountRow::into_domain).collect()
    }

    async fn postpone_refresh(&self, id: &AccountId, until: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sql(
            "UPDATE accounts SET refresh_due_at = $2 WHERE id = $1 AND deleted_at IS NULL \
             AND refresh_due_at IS NOT NULL",
        )
        .bind(id.as_str())
        .bind(until)
        .execute(&mut tx.conn())
        .await?;
        tx.commit().await
    }

    async fn credentials_expiry(&self, id: &AccountId) -> Result<Option<(Timestamp, Timestamp)>> {
        let mut pooled = self.read().await?;
        let row: Option<(Option<i64>, Option<i64>, i64)> = sql(
            "SELECT credentials_expires_at, credentials_refreshed_at, updated_at FROM accounts \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.as_str())
        .fetch_optional(&mut pooled.conn())
        .await?;
        let (expires, refreshed, updated) =
            row.ok_or_else(|| Error::not_found("account", id.as_str()))?;
        Ok(expires.map(|expires| {
            (
                Timestamp::from_unix_millis(expires),
                Timestamp::from_unix_millis(refreshed.unwrap_or(updated)),
            )
        }))
    }

    async fn create_oauth_state(&self, new: NewOAuthState) -> Result<()> {
        let verifier = new
            .code_verifier
            .as_ref()
            .map(|verifier| self.encrypt_secret(verifier))
            .transpose()?;
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        // Expired flows are dropped here, so the table stays as small as the flows in progress.
        sql("DELETE FROM oauth_states WHERE expires_at < $1")
            .bind(now)
            .execute(&mut conn)
            .await?;
        sql(
            "INSERT INTO oauth_states (state, workspace_id, platform, redirect_url, \
             code_verifier, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new.state.as_str())
        .bind(new.workspace_id.as_str())
        .bind(new.platform.as_str())
        .bind(new.redirect_url.as_str())
        .bind(verifier)
        .bind(now)
        .bind(new.expires_at)
        .execute(&mut conn)
        .await?;
        tx.commit().await
    }

    async fn take_oauth_state(&self, state: &str) -> Result<Option<OAuthState>> {
        let mut tx = self.begin().await?;
        let row: Option<(String, String, String, Option<String>, i64, i64)> = sql(
            "DELETE FROM oauth_states WHERE state = $1 RETURNING workspace_id, platform, \
             redirect_url, code_verifier, created_at, expires_at",
        )
        .bind(state)
        .fetch_optional(&mut tx.conn())
        .await?;
        tx.commit().await?;
        let Some((workspace, platform, redirect_url, verifier, created, expires)) = row else {
            return Ok(None);
        };
        if Timestamp::from_unix_millis(expires) < Timestamp::now() {
            return Ok(None);
        }
        let code_verifier = verifier
            .map(|sealed| self.cipher.decrypt(&sealed, "an OAuth code verifier"))
            .transpose()?
            .map(SecretString::from);
        Ok(Some(OAuthState {
            workspace_id: parsed(&workspace, "oauth_states.workspace_id")?,
            platform: parsed(&platform, "oauth_states.platform")?,
            redirect_url,
            code_verifier,
            created_at: Timestamp::from_unix_millis(created),
        }))
    }

    async fn find_conversation(
        &self,
        account: &AccountId,
        platform_conversation_id: &str,
    ) -> Result<Option<Conversation>> {
        let mut pooled = self.read().await?;
        sql(concat!(
            "SELECT ",
            conversation_columns!(),
            " FROM conversations WHERE account_id = $1 AND platform_conversation_id = $2"
        ))
        .bind(account.as_str())
        .bind(platform_conversation_id)
        .fetch_optional::<ConversationRow>(&mut pooled.conn())
        .await?
        .map(ConversationRow::into_domain)
        .transpose()
    }

    async fn mark_account_reauth_required(&self, id: &AccountId, reason: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        // Conditional on `active`: of concurrent callers exactly one sees the row change.
        let row: Option<AccountRow> = sql(concat!(
            "UPDATE accounts SET status = $2, updated_at = $3 \
             WHERE id = $1 AND status = $4 AND deleted_at IS NULL RETURNING ",
            account_columns!()
        ))
        .bind(id.as_str())
        .bind(AccountStatus::ReauthRequired.as_str())
        .bind(Timestamp::now())
        .bind(AccountStatus::Active.as_str())
        .fetch_optional(&mut conn)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let account = row.into_domain()?;
        let event = Event::for_account(EventType::AccountDisconnected, &account, Some(reason));
        let deliveries = record_event_in_tx(&mut conn, &event).await?;
        self.commit_and_notify(tx, deliveries).await?;
        Ok(true)
    }

    async fn delete_account(&self, workspace: &WorkspaceId, id: &AccountId) -> Result<()> {
        let mut tx = self.begin().await?;
        let changed = sql(
            "UPDATE accounts SET deleted_at = $3, updated_at = $3, credentials = NULL, \
                           inbound_secret = NULL \
                           WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL",
        )
        .bind(id.as_str())
        .bind(workspace.as_str())
        .bind(Timestamp::now())
        .execute(&mut tx.conn())
        .await?;
        if changed == 0 {
            return Err(Error::not_found("account", id.as_str()));
        }
        tx.commit().await
    }

    // ----- pollers and leases ----------------------------------------------------------

    async fn poll_cursor(&self, account: &AccountId) -> Result<Option<String>> {
        let mut pooled = self.read().await?;
        let row: Option<(Option<String>,)> =
            sql("SELECT poll_cursor FROM accounts WHERE id = $1 AND deleted_at IS NULL")
                .bind(account.as_str())
                .fetch_optional(&mut pooled.conn())
                .await?;
        row.map(|(cursor,)| cursor)
            .ok_or_else(|| Error::not_found("account", account.as_str()))
    }

    async fn store_polled(
        &self,
        account: &Account,
        payloads: Vec<Vec<u8>>,
        next_cursor: Option<String>,
    ) -> Result<Vec<RawEventId>> {
        let received_at = Timestamp::now();
        let events: Vec<NewRawEvent> = payloads
            .into_iter()
            .map(|payload| NewRawEvent {
                platform: account.platform,
                account_id: Some(account.id.clone()),
                payload,
                received_at,
            })
            .collect();
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let ids = Self::insert_raw_rows(&mut conn, &events).await?;
        if let Some(cursor) = next_cursor {
            let changed =
                sql("UPDATE accounts SET poll_cursor = $2 WHERE id = $1 AND deleted_at IS NULL")
                    .bind(account.id.as_str())
                    .bind(cursor)
                    .execute(&mut conn)
                    .await?;
            if changed == 0 {
                // Disconnected while polling: store nothing, so nothing is processed for it.
                return Err(Error::not_found("account", account.id.as_str()));
            }
        }
        tx.commit().await?;
        if !ids.is_empty() {
            self.raw_events.notify_one();
        }
        Ok(ids)
    }

    async fn try_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        // Takes the row when it is new, expired, or already ours; otherwise changes nothing
        // and returns no row.
        let taken: Option<(String,)> = sql(
            "INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE leases.owner = excluded.owner OR leases.expires_at <= $4 RETURNING owner",
        )
        .bind(name)
        .bind(owner)
        .bind(now + ttl)
        .bind(now)
        .fetch_optional(&mut tx.conn())
        .await?;
        tx.commit().await?;
        Ok(taken.is_some())
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sql("DELETE FROM leases WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(&mut tx.conn())
            .await?;
        tx.commit().await
    }

    // ----- raw inbound events ------------------------------------------------------------

    async fn insert_raw_events(&self, events: Vec<NewRawEvent>) -> Result<Vec<RawEventId>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let ids = Self::insert_raw_rows(&mut tx.conn(), &events).await?;
        tx.commit().await?;
        self.raw_events.notify_one();
        Ok(ids)
    }

    async fn claim_raw_events(
        &self,
        owner: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<RawEvent>> {
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let skip_locked = conn.skip_locked("r");
        let mut statement = generated_sql(format!(
            "UPDATE raw_events SET locked_by = $1, locked_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT r.id FROM raw_events r WHERE r.processed_at IS NULL \
                 AND (r.locked_until IS NULL OR r.locked_until <= $3) \
                 ORDER BY r.received_at, r.id LIMIT $4{skip_locked}) \
             RETURNING {}",
            raw_event_columns!()
        ));
        statement.push_bind(owner);
        statement.push_bind(now + lease);
        statement.push_bind(now);
        statement.push_bind(i64::from(limit));
        let mut rows: Vec<RawEventRow> = statement.fetch_all(&mut conn).await?;
        tx.commit().await?;
        rows.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
        rows.into_iter()
            .map(|row| {
                let before = row.attempts - 1;
                row.into_domain(before)
            })
            .collect()
    }

    async fn apply_inbound(
        &self,
        raw: &RawEventId,
        account: &Account,
        events: Vec<InboundKind>,
    ) -> Result<AppliedInbound> {
        let item = InboundItem {
            raw: raw.clone(),
            routed: vec![RoutedEvents {
                account: account.clone(),
                events,
            }],
            error: None,
        };
        self.apply_inbound_batch(vec![item])
            .await?
            .pop()
            .unwrap_or_else(|| Err(Error::internal_msg("a batch of one gave no outcome")))
    }

    async fn apply_inbound_batch(
        &self,
        items: Vec<InboundItem>,
    ) -> Result<Vec<Result<AppliedInbound>>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let together = apply_together(&mut tx.conn(), &items).await;
        match together {
            Ok((applied, recorded)) => {
                self.commit_and_notify(tx, recorded.deliveries).await?;
                return Ok(applied.into_iter().map(Ok).collect());
            }
            // A lone item has nobody to be isolated from: its rollback is its outcome.
            Err(err) if items.len() == 1 => {
                tx.rollback().await?;
                return Ok(vec![Err(err)]);
            }
            Err(_) => tx.rollback().await?,
        }
        // Something in the batch failed: again, each item on its own (see `inbound_batch`).
        let mut tx = self.begin().await?;
        let (outcomes, deliveries) = apply_in_savepoints(&mut tx, &items).await?;
        self.commit_and_notify(tx, deliveries).await?;
        Ok(outcomes)
    }

    async fn finish_raw_event(&self, id: &RawEventId, error: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        sql(
            "UPDATE raw_events SET processed_at = $2, error = $3, locked_by = NULL, \
             locked_until = NULL WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(Timestamp::now())
        .bind(error)
        .execute(&mut tx.conn())
        .await?;
        tx.commit().await
    }

    // ----- conversations and messages -------------------------------------------------

    async fn list_conversations(
        &self,
        workspace: &WorkspaceId,
        filter: &ConversationFilter,
        page: &PageRequest,
    ) -> Result<Page<Conversation>> {
        let mut statement = generated_sql(String::from(concat!(
            "SELECT ",
            conversation_columns!(),
            " FROM conversations WHERE",
            visible_account!("conversations")
        )));
        let workspace_param = statement.param(workspace.as_str());
        statement.push_sql(&format!(" AND workspace_id = {workspace_param}"));
        if let Some(platform) = filter.platform {
            let param = statement.param(platform.as_str());
            statement.push_sql(&format!(" AND platform = {param}"));
        }
        if let Some(account) = &filter.account_id {
            let param = statement.param(account.as_str());
            statement.push_sql(&format!(" AND account_id = {param}"));
        }
        if let Some(status) = filter.status {
            let param = statement.param(status.as_str());
            statement.push_sql(&format!(" AND status = {param}"));
        }
        paginate(&mut statement, page, "activity_at", "id", true);
        let mut pooled = self.read().await?;
        let rows: Vec<ConversationRow> = statement.fetch_all(&mut pooled.conn()).await?;
        page_of(
            rows,
            page,
            ConversationRow::cursor,
            ConversationRow::into_domain,
        )
    }

    async fn get_conversation(
        &self,
        workspace: &WorkspaceId,
        id: &ConversationId,
    ) -> Result<Conversation> {
        let mut pooled = self.read().await?;
        Self::visible_conversation(&mut pooled.conn(), workspace, id).await
    }

    async fn set_conversation_status(
        &self,
        workspace: &WorkspaceId,
        id: &ConversationId,
        status: ConversationStatus,
    ) -> Result<Conversation> {
        let update = sql("UPDATE conversations SET status = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(status.as_str())
            .bind(Timestamp::now());
        self.update_conversation(workspace, id, update).await
    }

    async fn mark_conversation_read(
        &self,
        workspace: &WorkspaceId,
        id: &ConversationId,
    ) -> Result<Conversation> {
        let update =
            sql("UPDATE conversations SET unread_count = 0, updated_at = $2 WHERE id = $1")
                .bind(id.as_str())
                .bind(Timestamp::now());
        self.update_conversation(workspace, id, update).await
    }

    async fn list_messages(
        &self,
        workspace: &WorkspaceId,
        conversation: &ConversationId,
        order: SortOrder,
        page: &PageRequest,
    ) -> Result<Page<Message>> {
        let mut pooled = self.read().await?;
        let mut conn = pooled.conn();
        Self::visible_conversation(&mut conn, workspace, conversation).await?;
        let mut statement = generated_sql(String::from(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1"
        )));
        statement.push_bind(conversation.as_str());
        paginate(
            &mut statement,
            page,
            "sent_at",
            "id",
            order == SortOrder::Desc,
        );
        let rows: Vec<MessageRow> = statement.fetch_all(&mut conn).await?;
        page_of(rows, page, MessageRow::cursor, MessageRow::into_domain)
    }

    async fn get_message(&self, workspace: &WorkspaceId, id: &MessageId) -> Result<Message> {
        let mut pooled = self.read().await?;
        sql(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE id = $1 AND workspace_id = $2 AND",
            visible_account!("messages")
        ))
        .bind(id.as_str())
        .bind(workspace.as_str())
        .fetch_optional::<MessageRow>(&mut pooled.conn())
        .await?
        .ok_or_else(|| Error::not_found("message", id.as_str()))?
        .into_domain()
    }

    async fn record_sent_message(&self, sent: NewSentMessage) -> Result<Message> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let conversation =
            Self::conversation_of_account(&mut conn, &sent.account, &sent.conversation_id).await?;
        let found = FoundConversation {
            conversation,
            created: false,
        };
        let mut writes = PendingWrites::default();
        let message = Self::record_outgoing(
            &mut conn,
            &mut writes,
            &sent.account,
            &found,
            &sent.text,
            &sent.attachments,
            &sent.sender,
            &sent.sent,
            sent.reply_to,
        )
        .await?;
        let recorded = writes.flush(&mut conn, Timestamp::now()).await?;
        self.commit_and_notify(tx, recorded.deliveries).await?;
        Ok(message)
    }

    async fn record_started_conversation(
        &self,
        started: NewStartedConversation,
    ) -> Result<(Conversation, Message)> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let found = find_or_create_conversation(
            &mut conn,
            &started.account,
            &started.platform_conversation_id,
            &started.participant,
            Timestamp::now(),
        )
        .await?;
        let mut writes = PendingWrites::default();
        let message = Self::record_outgoing(
            &mut conn,
            &mut writes,
            &started.account,
            &found,
            &started.text,
            &started.attachments,
            &started.sender,
            &started.sent,
            None,
        )
        .await?;
        // The conversation is returned as the message left it.
        let recorded = writes.flush(&mut conn, Timestamp::now()).await?;
        let conversation =
            Self::conversation_of_account(&mut conn, &started.account, &found.conversation.id)
                .await?;
        self.commit_and_notify(tx, recorded.deliveries).await?;
        Ok((conversation, message))
    }

    // ----- idempotency ------------------------------------------------------------------

    async fn idempotency_begin(
        &self,
        workspace: &WorkspaceId,
        key: &str,
        request_hash: &str,
        ttl: Duration,
    ) -> Result<IdempotencyBegin> {
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        // New key, or an expired one taken over: the request starts. Otherwise no row.
        let started: Option<(String,)> = sql(
            "INSERT INTO idempotency_keys (workspace_id, idempotency_key, request_hash, state, \
             created_at) VALUES ($1, $2, $3, 'in_flight', $4) \
             ON CONFLICT (workspace_id, idempotency_key) DO UPDATE SET \
             request_hash = excluded.request_hash, state = 'in_flight', response_status = NULL, \
             response_body = NULL, created_at = excluded.created_at \
             WHERE idempotency_keys.created_at <= $5 RETURNING state",
        )
        .bind(workspace.as_str())
        .bind(key)
        .bind(request_hash)
        .bind(now)
        .bind(now.unix_millis() - millis(ttl))
        .fetch_optional(&mut conn)
        .await?;
        if started.is_some() {
            tx.commit().await?;
            return Ok(IdempotencyBegin::Started);
        }
        let (stored_hash, state, status, body): (String, String, Option<i64>, Option<String>) =
            sql(
                "SELECT request_hash, state, response_status, response_body FROM idempotency_keys \
             WHERE workspace_id = $1 AND idempotency_key = $2",
            )
            .bind(workspace.as_str())
            .bind(key)
            .fetch_one(&mut conn)
            .await?;
        tx.commit().await?;
        Ok(if stored_hash != request_hash {
            IdempotencyBegin::Mismatch
        } else if state != "completed" {
            IdempotencyBegin::InFlight
        } else {
            IdempotencyBegin::Replay(StoredResponse {
                status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
                body: body.unwrap_or_default(),
            })
        })
    }

    async fn idempotency_complete(
        &self,
        workspace: &WorkspaceId,
        key: &str,
        response: &StoredResponse,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sql(
            "UPDATE idempotency_keys SET state = 'completed', response_status = $3, \
             response_body = $4 WHERE workspace_id = $1 AND idempotency_key = $2",
        )
        .bind(workspace.as_str())
        .bind(key)
        .bind(i64::from(response.status))
        .bind(response.body.as_str())
        .execute(&mut tx.conn())
        .await?;
        tx.commit().await
    }

    async fn idempotency_release(&self, workspace: &WorkspaceId, key: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sql("DELETE FROM idempotency_keys \
             WHERE workspace_id = $1 AND idempotency_key = $2 AND state = 'in_flight'")
        .bind(workspace.as_str())
        .bind(key)
        .execute(&mut tx.conn())
        .await?;
        tx.commit().await
    }

    // ----- housekeeping -----------------------------------------------------------------

    async fn prune_raw_events(&self, before: Timestamp, limit: u32) -> Result<u64> {
        // Ids are time-ordered, so `id <` the first id at `before` walks the primary key over
        // the payloads received before then (a payload is processed after it is received).
        let mut tx = self.begin().await?;
        let deleted = sql(
            "DELETE FROM raw_events WHERE id IN (SELECT id FROM raw_events \
             WHERE id < $1 AND processed_at IS NOT NULL AND processed_at < $2 LIMIT $3)",
        )
        .bind(RawEventId::first_at(before).as_str())
        .bind(before)
        .bind(i64::from(limit))
        .execute(&mut tx.conn())
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn prune_idempotency_keys(&self, before: Timestamp, limit: u32) -> Result<u64> {
        let mut tx = self.begin().await?;
        let deleted = sql(
            "DELETE FROM idempotency_keys WHERE (workspace_id, idempotency_key) IN \
             (SELECT workspace_id, idempotency_key FROM idempotency_keys \
             WHERE created_at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&mut tx.conn())
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    // ----- webhook endpoints -----------------------------------------------------------

    async fn create_endpoint(&self, workspace: &WorkspaceId, new: NewEndpoint) -> Result<Endpoint> {
        let secret = self.encrypt_secret(&new.secret)?;
        let now = Timestamp::now();
        let endpoint = Endpoint {
            id: EndpointId::new(),
            workspace_id: workspace.clone(),
            url: new.url,
            events: new.events,
            description: new.description,
            enabled: new.enabled,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.begin().await?;
        sql(
            "INSERT INTO webhook_endpoints (id, workspace_id, url, events, description, enabled, \
             secret, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(endpoint.id.as_str())
        .bind(workspace.as_str())
        .bind(endpoint.url.as_str())
        .bind(json_text(&endpoint.events)?)
        .bind(endpoint.description.as_str())
        .bind(endpoint.enabled)
        .bind(secret)
        .bind(now)
        .execute(&mut tx.conn())
        .await?;
        tx.commit().await?;
        Ok(endpoint)
    }

    async fn list_endpoints(
        &self,
        workspace: &WorkspaceId,
        page: &PageRequest,
    ) -> Result<Page<Endpoint>> {
        let mut statement = generated_sql(String::from(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE workspace_id = $1 AND deleted_at IS NULL"
        )));
        statement.push_bind(workspace.as_str());
        paginate(&mut statement, page, "created_at", "id", false);
        let mut pooled = self.read().await?;
        let rows: Vec<EndpointRow> = statement.fetch_all(&mut pooled.conn()).await?;
        page_of(rows, page, EndpointRow::cursor, EndpointRow::into_domain)
    }

    async fn get_endpoint(&self, workspace: &WorkspaceId, id: &EndpointId) -> Result<Endpoint> {
        let mut pooled = self.read().await?;
        Self::visible_endpoint_row(&mut pooled.conn(), workspace, id)
            .await?
            .into_domain()
    }

    async fn update_endpoint(
        &self,
        workspace: &WorkspaceId,
        id: &EndpointId,
        patch: EndpointPatch,
    ) -> Result<Endpoint> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let mut endpoint = Self::visible_endpoint_row(&mut conn, workspace, id)
            .await?
            .into_domain()?;
        if let Some(url) = patch.url {
            endpoint.url = url;
        }
        if let Some(events) = patch.events {
            endpoint.events = events;
        }
        if let Some(description) = patch.description {
            endpoint.description = description;
        }
        if let Some(enabled) = patch.enabled {
            endpoint.enabled = enabled;
        }
        endpoint.updated_at = Timestamp::now();
        sql(
            "UPDATE webhook_endpoints SET url = $2, events = $3, description = $4, enabled = $5, \
             updated_at = $6 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(endpoint.url.as_str())
        .bind(json_text(&endpoint.events)?)
        .bind(endpoint.description.as_str())
        .bind(endpoint.enabled)
        .bind(endpoint.updated_at)
        .execute(&mut conn)
        .await?;
        tx.commit().await?;
        Ok(endpoint)
    }

    async fn delete_endpoint(&self, workspace: &WorkspaceId, id: &EndpointId) -> Result<()> {
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let changed = sql(
            "UPDATE webhook_endpoints SET deleted_at = $3, updated_at = $3 \
                           WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL",
        )
        .bind(id.as_str())
        .bind(workspace.as_str())
        .bind(now)
        .execute(&mut conn)
        .await?;
        if changed == 0 {
            return Err(Error::not_found("webhook endpoint", id.as_str()));
        }
        // Abandon what is queued, and take away any claim so an in-flight attempt's
        // `record_attempt` is ignored instead of rescheduling it.
        sql(
            "UPDATE deliveries SET status = $2, next_attempt_at = NULL, locked_by = NULL, \
             locked_until = NULL, updated_at = $3 WHERE endpoint_id = $1 AND status = $4",
        )
        .bind(id.as_str())
        .bind(DeliveryState::Failed.as_str())
        .bind(now)
        .bind(DeliveryState::Pending.as_str())
        .execute(&mut conn)
        .await?;
        tx.commit().await
    }

    async fn rotate_endpoint_secret(
        &self,
        workspace: &WorkspaceId,
        id: &EndpointId,
        new_secret: SecretString,
        previous_valid_for: Duration,
    ) -> Result<Endpoint> {
        let sealed = self.encrypt_secret(&new_secret)?;
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let mut endpoint = Self::visible_endpoint_row(&mut conn, workspace, id)
            .await?
            .into_domain()?;
        // The current ciphertext moves over as is: no need to decrypt it.
        sql("UPDATE webhook_endpoints SET previous_secret = secret, \
             previous_secret_expires_at = $3, secret = $2, updated_at = $4 WHERE id = $1")
        .bind(id.as_str())
        .bind(sealed)
        .bind(now + previous_valid_for)
        .bind(now)
        .execute(&mut conn)
        .await?;
        tx.commit().await?;
        endpoint.updated_at = now;
        Ok(endpoint)
    }

    // ----- events and deliveries --------------------------------------------------------

    async fn record_event(&self, event: &Event) -> Result<usize> {
        let mut tx = self.begin().await?;
        let deliveries = record_event_in_tx(&mut tx.conn(), event).await?;
        self.commit_and_notify(tx, deliveries).await?;
        Ok(deliveries)
    }

    async fn record_test_event(
        &self,
        workspace: &WorkspaceId,
        endpoint: &EndpointId,
    ) -> Result<Delivery> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        Self::visible_endpoint_row(&mut conn, workspace, endpoint).await?;
        let event = Event::webhook_test(workspace.clone(), endpoint.as_str());
        insert_event(&mut conn, &event).await?;
        let delivery = NewDelivery {
            id: DeliveryId::new(),
            endpoint_id: endpoint.as_str().to_owned(),
            event_id: event.id.clone(),
            event_type: event.event_type,
        };
        insert_deliveries(
            &mut conn,
            workspace,
            std::slice::from_ref(&delivery),
            Timestamp::now(),
            false,
        )
        .await?;
        let stored = load_delivery(&mut conn, endpoint, &delivery.id)
            .await?
            .ok_or_else(|| Error::internal_msg("the test delivery vanished"))?;
        self.commit_and_notify(tx, 1).await?;
        Ok(stored)
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>> {
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let skip_locked = conn.skip_locked("d");
        // Disabled endpoints get nothing but `webhook.test`; their queue waits for re-enabling.
        let mut claim = generated_sql(format!(
            "UPDATE deliveries SET locked_by = $1, locked_until = $2 \
             WHERE id IN (SELECT d.id FROM deliveries d \
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                 WHERE d.status = 'pending' AND d.next_attempt_at <= $3 \
                 AND (d.locked_until IS NULL OR d.locked_until <= $3) \
                 AND e.deleted_at IS NULL AND (e.enabled OR d.event_type = 'webhook.test') \
                 ORDER BY d.next_attempt_at, d.id LIMIT $4{skip_locked}) \
             RETURNING id"
        ));
        claim.push_bind(owner);
        claim.push_bind(now + lease);
        claim.push_bind(now);
        claim.push_bind(i64::from(limit));
        let claimed: Vec<(String,)> = claim.fetch_all(&mut conn).await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let mut details = generated_sql(format!(
            "SELECT d.id, d.endpoint_id, e.url, e.secret, e.previous_secret, \
             e.previous_secret_expires_at, d.event_id, d.event_type, ev.payload, d.attempt_count, \
             d.one_shot FROM deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             JOIN events ev ON ev.id = d.event_id \
             WHERE d.id IN ({}) ORDER BY d.next_attempt_at, d.id",
            placeholders(1, claimed.len())
        ));
        for (id,) in &claimed {
            details.push_bind(id.as_str());
        }
        let rows: Vec<ClaimRow> = details.fetch_all(&mut conn).await?;
        // Decrypt before committing: if the key is wrong the claim is undone at once.
        match rows
            .into_iter()
            .map(|row| row.into_claimed(&self.cipher, now))
            .collect()
        {
            Ok(deliveries) => {
                tx.commit().await?;
                Ok(deliveries)
            }
            Err(err) => {
                tx.rollback().await?;
                Err(err)
            }
        }
    }

    async fn record_attempt(
        &self,
        delivery: &DeliveryId,
        owner: &str,
        attempt: &NewAttempt,
        next: DeliveryNext,
    ) -> Result<bool> {
        let (status, next_attempt_at) = match next {
            DeliveryNext::Succeeded => (DeliveryState::Succeeded, None),
            DeliveryNext::RetryAt(at) => (DeliveryState::Pending, Some(at)),
            DeliveryNext::Failed => (DeliveryState::Failed, None),
        };
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let updated: Option<(i64,)> =
            sql("UPDATE deliveries SET status = $3, next_attempt_at = $4, \
             attempt_count = attempt_count + 1, one_shot = FALSE, locked_by = NULL, \
             locked_until = NULL, updated_at = $5 \
             WHERE id = $1 AND locked_by = $2 RETURNING attempt_count")
            .bind(delivery.as_str())
            .bind(owner)
            .bind(status.as_str())
            .bind(next_attempt_at)
            .bind(Timestamp::now())
            .fetch_optional(&mut conn)
            .await?;
        let Some((attempt_number,)) = updated else {
            return Ok(false);
        };
        sql(
            "INSERT INTO delivery_attempts (delivery_id, attempt_number, attempted_at, \
             status_code, error, duration_ms, response_body) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(delivery.as_str())
        .bind(attempt_number)
        .bind(attempt.attempted_at)
        .bind(attempt.status_code.map(i64::from))
        .bind(attempt.error.as_deref())
        .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
        .bind(attempt.response_body.as_deref())
        .execute(&mut conn)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_deliveries(
        &self,
        workspace: &WorkspaceId,
        endpoint: &EndpointId,
        page: &PageRequest,
    ) -> Result<Page<Delivery>> {
        let mut pooled = self.read().await?;
        let mut conn = pooled.conn();
        Self::visible_endpoint_row(&mut conn, workspace, endpoint).await?;
        let mut statement = generated_sql(String::from(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE endpoint_id = $1"
        )));
        statement.push_bind(endpoint.as_str());
        paginate(&mut statement, page, "created_at", "id", true);
        let rows: Vec<DeliveryRow> = statement.fetch_all(&mut conn).await?;
        let page = Page::from_overfetched(rows, page.limit, DeliveryRow::cursor);
        let data = with_attempts(&mut conn, page.data).await?;
        Ok(Page {
            data,
            next_cursor: page.next_cursor,
        })
    }

    async fn retry_delivery(
        &self,
        workspace: &WorkspaceId,
        endpoint: &EndpointId,
        delivery: &DeliveryId,
    ) -> Result<Delivery> {
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        Self::visible_endpoint_row(&mut conn, workspace, endpoint).await?;
        // Pending: due now, schedule kept. Finished: one more attempt (`one_shot`).
        let changed = sql("UPDATE deliveries SET \
                           one_shot = CASE WHEN status = 'pending' THEN one_shot ELSE TRUE END, \
                           status = 'pending', next_attempt_at = $3, updated_at = $3 \
                           WHERE id = $1 AND endpoint_id = $2")
        .bind(delivery.as_str())
        .bind(endpoint.as_str())
        .bind(now)
        .execute(&mut conn)
        .await?;
        if changed == 0 {
            return Err(Error::not_found("delivery", delivery.as_str()));
        }
        let stored = load_delivery(&mut conn, endpoint, delivery)
            .await?
            .ok_or_else(|| Error::not_found("delivery", delivery.as_str()))?;
        self.commit_and_notify(tx, 1).await?;
        Ok(stored)
    }

    async fn recover_deliveries(
        &self,
        workspace: &WorkspaceId,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let target = Self::visible_endpoint_row(&mut conn, workspace, endpoint)
            .await?
            .into_domain()?;
        // `webhook.test` events belong to the endpoint they tested; they are not replayed.
        let events: Vec<(String, String)> = sql(
            "SELECT id, event_type FROM events WHERE workspace_id = $1 AND created_at >= $2 \
             AND created_at < $3 AND event_type <> 'webhook.test' ORDER BY created_at, id",
        )
        .bind(workspace.as_str())
        .bind(since)
        .bind(until)
        .fetch_all(&mut conn)
        .await?;
        let mut deliveries = Vec::new();
        for (event_id, event_type) in events {
            let event_type: EventType = parsed(&event_type, "events.event_type")?;
            if target.subscribes_to(event_type) {
                deliveries.push(NewDelivery {
                    id: DeliveryId::new(),
                    endpoint_id: endpoint.as_str().to_owned(),
                    event_id: parsed(&event_id, "events.id")?,
                    event_type,
                });
            }
        }
        insert_deliveries(&mut conn, workspace, &deliveries, Timestamp::now(), false).await?;
        self.commit_and_notify(tx, deliveries.len()).await?;
        Ok(deliveries.len() as u64)
    }
}

/// A claimed delivery joined with its endpoint and event.
#[derive(Debug, sqlx::FromRow)]
struct ClaimRow {
    id: String,
    endpoint_id: String,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<i64>,
    event_id: String,
    event_type: String,
    payload: String,
    attempt_count: i64,
    one_shot: bool,
}

impl ClaimRow {
    fn into_claimed(self, cipher: &Cipher, now: Timestamp) -> Result<ClaimedDelivery> {
        let what = format!("signing secret of webhook endpoint {}", self.endpoint_id);
        let mut secrets = vec![SecretString::from(cipher.decrypt(&self.secret, &what)?)];
        if let (Some(previous), Some(expires)) =
            (&self.previous_secret, self.previous_secret_expires_at)
            && expires > now.unix_millis()
        {
            secrets.push(SecretString::from(
                cipher.decrypt(previous, &format!("previous {what}"))?,
            ));
        }
        Ok(ClaimedDelivery {
            delivery_id: parsed(&self.id, "deliveries.id")?,
            endpoint_id: parsed(&self.endpoint_id, "deliveries.endpoint_id")?,
            url: self.url,
            secrets,
            event_id: parsed(&self.event_id, "deliveries.event_id")?,
            event_type: parsed(&self.event_type, "deliveries.event_type")?,
            payload: self.payload,
            previous_attempts: u32::try_from(self.attempt_count.max(0)).unwrap_or(u32::MAX),
            one_shot: self.one_shot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_compares_key_and_id_tuples_in_the_requested_direction() {
        let page = PageRequest {
            limit: 10,
            after: Some(inbox_core::Cursor {
                sort_key: 5,
                id: "x".into(),
            }),
        };
        let mut statement = generated_sql(String::from("SELECT 1 FROM t WHERE a = $1"));
        statement.push_bind("a");
        paginate(&mut statement, &page, "k", "id", true);
        let debug = format!("{statement:?}");
        assert!(
            debug.contains("AND (k, id) < ($2, $3) ORDER BY k DESC, id DESC LIMIT $4"),
            "{debug}"
        );
    }
}
