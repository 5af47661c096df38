//! Credential refresh: renewing expiring tokens before they lapse, one refresh per account at
//! a time across every replica.
//!
//! The refresh token of some platforms rotates on every use (X, Bluesky): two replicas
//! refreshing the same account at once would leave the loser with a dead token and a falsely
//! "revoked" account. So a refresh takes the lease `refresh:{accountId}`, re-reads the stored
//! credentials under it (another replica may have just refreshed), calls the platform, and
//! persists the new pair *before* anything uses it. A caller that finds the lease taken waits
//! for the holder and uses what it stored.
//!
//! The scheduler asks the store for accounts whose refresh is due (computed from each
//! platform's `RefreshPolicy`) and refreshes them; a permanent refusal marks the account
//! `reauth_required` (one `account.disconnected`), a transient failure postpones the attempt.

use std::{sync::Arc, time::Duration};

use inbox_core::{Account, AccountContext, Error, PlatformRegistry, Result, Timestamp};
use inbox_store::Store;
use tokio_util::sync::CancellationToken;

/// Refresh settings.
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    /// This process's lease owner name.
    pub owner: String,
    /// How long a refresh may hold its lease (longer than any platform call).
    pub lease: Duration,
    /// How long a caller waits for another replica's refresh of the same account.
    pub wait: Duration,
    /// How often the scheduler looks for due refreshes.
    pub interval: Duration,
    /// The longest a transient failure postpones the next attempt.
    pub max_postpone: Duration,
}

impl RefreshConfig {
    /// Defaults for `owner`.
    pub fn new(owner: impl Into<String>) -> Self {
        RefreshConfig {
            owner: owner.into(),
            lease: Duration::from_secs(60),
            wait: Duration::from_secs(30),
            interval: Duration::from_secs(30),
            max_postpone: Duration::from_secs(300),
        }
    }
}

/// Refreshes accounts' credentials, single-flight per account across replicas.
#[derive(Debug, Clone)]
pub struct CredentialRefresher {
    store: Arc<dyn Store>,
    platforms: Arc<PlatformRegistry>,
    config: RefreshConfig,
}

impl CredentialRefresher {
    /// A refresher over the store and adapters.
    pub fn new(
        store: Arc<dyn Store>,
        platforms: Arc<PlatformRegistry>,
        config: RefreshConfig,
    ) -> Self {
        CredentialRefresher {
            store,
            platforms,
            config,
        }
    }

    /// Refreshes `account` now (or waits for a refresh another replica is running) and returns
    /// the credentials to use.
    ///
    /// # Errors
    /// `NotSupported` where the platform's credentials do not expire; `ReauthRequired` when the
    /// platform refused for good (the account is then marked); `Unavailable` when the platform
    /// or another replica's refresh did not finish in time (the next attempt is postponed).
    pub async fn refresh(&self, account: &Account) -> Result<AccountContext> {
        let platform = self.platforms.get(account.platform)?.clone();
        let Some(policy) = platform.capabilities().credential_refresh else {
            return Err(Error::NotSupported {
                platform: account.platform,
                operation: "refreshing credentials",
            });
        };
        // Any refresh that completes after this call began is as good as our own: a caller that
        // looked after another replica's refresh finished must not refresh a second time.
        let started = Timestamp::now();
        let lease = format!("refresh:{}", account.id);
        let seen = self
            .store
            .credentials_expiry(&account.id)
            .await?
            .map(|(_, refreshed)| refreshed);
        let deadline = tokio::time::Instant::now() + self.config.wait;
        while !self
            .store
            .try_lease(&lease, &self.config.owner, self.config.lease)
            .await?
        {
            // Another replica refreshes this account: wait for it and use its result.
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unavailable {
                    message: format!(
                        "another replica's credential refresh of {} did not finish in time",
                        account.id
                    ),
                    retry_after: Some(Duration::from_secs(5)),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now_seen = self
                .store
                .credentials_expiry(&account.id)
                .await?
                .map(|(_, refreshed)| refreshed);
            if now_seen != seen {
                return self.store.account_context(&account.id).await;
            }
        }
        let result = self
            .refresh_holding_lease(account, &platform, policy, seen, started)
            .await;
        if let Err(err) = self.store.release_lease(&lease, &self.config.owner).await {
            tracing::warn!(account = %account.id, error = %err, "releasing a refresh lease failed; it will expire");
        }
        result
    }

    async fn refresh_holding_lease(
        &self,
        account: &Account,
        platform: &inbox_core::DynPlatform,
        policy: inbox_core::RefreshPolicy,
        seen: Option<Timestamp>,
        started: Timestamp,
    ) -> Result<AccountContext> {
        // Under the lease, re-read: if another replica refreshed between our first look and
        // taking the lease (or since this call began), its credentials are current and the
        // refresh token may be spent.
        let expiry = self.store.credentials_expiry(&account.id).await?;
        let refreshed = expiry.map(|(_, refreshed)| refreshed);
        if refreshed != seen || refreshed.is_some_and(|at| at >= started) {
            return self.store.account_context(&account.id).await;
        }
        let context = self.store.account_context(&account.id).await?;
        match platform.refresh_credentials(&context).await {
            Ok(refreshed) => {
                let due = refreshed
                    .expires_at
                    .map(|expires| policy.due_at(Timestamp::now(), expires));
                self.store
                    .update_account_credentials(&account.id, &refreshed, due)
                    .await?;
                metrics::counter!("inbox_credential_refreshes_total", "platform" => account.platform.as_str(), "outcome" => "success")
                    .increment(1);
                tracing::info!(account = %account.id, platform = %account.platform, expires_at = ?refreshed.expires_at, "credentials refreshed");
                Ok(AccountContext {
                    credentials: refreshed.credentials,
                    ..context
                })
            }
            Err(Error::ReauthRequired {
                platform: kind,
                message,
            }) => {
                metrics::counter!("inbox_credential_refreshes_total", "platform" => account.platform.as_str(), "outcome" => "revoked")
                    .increment(1);
                if self
                    .store
                    .mark_account_reauth_required(&account.id, &message)
                    .await?
                {
                    tracing::warn!(account = %account.id, reason = %message, "credential refresh refused for good; account marked reauth_required");
                }
                Err(Error::ReauthRequired {
                    platform: kind,
                    message,
                })
            }
            Err(err) => {
                metrics::counter!("inbox_credential_refreshes_total", "platform" => account.platform.as_str(), "outcome" => "failure")
                    .increment(1);
                // Try again soon, but well before the credentials lapse when they are close to it.
                let now = Timestamp::now();
                let until_expiry = expiry.map_or(self.config.max_postpone, |(expires, _)| {
                    expires.saturating_since(now)
                });
                let pause =
                    (until_expiry / 4).clamp(Duration::from_secs(30), self.config.max_postpone);
                self.store
                    .postpone_refresh(&account.id, now + pause)
                    .await?;
                tracing::warn!(account = %account.id, error = %err, retry_in_s = pause.as_secs(), "credential refresh failed; will retry");
                Err(err)
            }
        }
    }
}

/// Runs the refresh scheduler until `shutdown`: every `interval`, refreshes the accounts whose
/// refresh is due. Failures are logged per account and never stop the loop.
pub async fn run_refresh_scheduler(refresher: CredentialRefresher, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match refresher
            .store
            .accounts_due_for_refresh(Timestamp::now(), 50)
            .await
        {
            Ok(due) => {
                for account in due {
                    if shutdown.is_cancelled() {
                        return;
                    }
                    // Errors are logged and bookkept inside `refresh`.
                    let _ = refresher.refresh(&account).await;
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "listing accounts due for a credential refresh failed")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(refresher.config.interval) => {}
            () = shutdown.cancelled() => {}
        }
    }
}
