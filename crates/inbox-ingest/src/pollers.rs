//! One poll loop per polled account.
//!
//! Each loop holds a lease named `poll:{accountId}` in the database, so with several replicas
//! an account is polled by exactly one of them, and a crashed replica's accounts are taken
//! over once its leases expire. A poll's payloads and the cursor that follows them are stored
//! in one transaction before the next poll, so a restart neither loses nor repeats events.
//! Errors back off with jitter; an account whose credentials were revoked is marked
//! `reauth_required` and its loop stops.
//!
//! Polls draw from the account's `Read` (and `Any`) rate budgets — the same budgets, in the
//! same store, as the API's calls — before each call, and wait while they are exhausted, so a
//! platform's read limit becomes the poll cadence (X: 15 DM lookups per 15 minutes, one a
//! minute). A throttled poll (a retry hint from the platform) holds those budgets back until
//! the platform's reset.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use inbox_core::{
    Account, AccountId, AccountStatus, BudgetCall, BudgetOperation, BudgetReport, Error,
    PlatformRegistry, Pushback, RateBudgets, Unlimited,
};
use inbox_store::Store;
use rand::Rng;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Poller settings.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// This process's lease owner name (unique per process).
    pub owner: String,
    /// Lease length. The lease is renewed every third of it while a poll waits, so it can be
    /// much shorter than a long poll: it bounds how long a crashed replica's accounts go
    /// unpolled.
    pub lease: Duration,
    /// How often a replica that does not hold an account's lease checks whether it expired.
    pub standby_interval: Duration,
    /// First backoff after an error.
    pub backoff_min: Duration,
    /// Largest backoff.
    pub backoff_max: Duration,
    /// The platforms' rate budgets polls draw from (the server's, shared with the API).
    pub budgets: Arc<dyn RateBudgets>,
}

impl PollerConfig {
    /// Defaults for `owner`.
    pub fn new(owner: impl Into<String>) -> Self {
        PollerConfig {
            owner: owner.into(),
            lease: Duration::from_secs(15),
            standby_interval: Duration::from_secs(5),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            budgets: Arc::new(Unlimited),
        }
    }
}

/// The running poll loops of this process.
#[derive(Debug, Clone)]
pub struct Pollers {
    store: Arc<dyn Store>,
    platforms: Arc<PlatformRegistry>,
    config: PollerConfig,
    running: Arc<Mutex<HashMap<AccountId, CancellationToken>>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    refresher: Option<crate::CredentialRefresher>,
}

impl Pollers {
    /// No loops yet.
    pub fn new(
        store: Arc<dyn Store>,
        platforms: Arc<PlatformRegistry>,
        config: PollerConfig,
    ) -> Self {
        Pollers {
            store,
            platforms,
            config,
            running: Arc::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            refresher: None,
        }
    }

    /// Renews credentials a poll finds expired (X and Reddit `401`, Bluesky `ExpiredToken`)
    /// through `refresher` — single-flight across replicas — and polls once more, instead of
    /// taking the refusal for a revocation. Without it such a refusal marks the account.
    pub fn with_refresher(mut self, refresher: crate::CredentialRefresher) -> Self {
        self.refresher = Some(refresher);
        self
    }

    /// Starts the loop for `account` unless one is running.
    pub fn start(&self, account: &Account) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(&account.id) || self.shutdown.is_cancelled() {
            return;
        }
        let stop = self.shutdown.child_token();
        running.insert(account.id.clone(), stop.clone());
        let this = self.clone();
        let account_id = account.id.clone();
        self.tasks.spawn(async move {
            this.poll_loop(&account_id, &stop).await;
            this.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&account_id);
            if let Err(err) =
                this.store.release_lease(&lease_name(&account_id), &this.config.owner).await
            {
                tracing::warn!(account = %account_id, error = %err, "releasing a poll lease failed; it will expire");
            }
        });
    }

    /// Stops the loop for `account` (on disconnect) and waits until no poll of it is running.
    pub async fn stop(&self, account: &AccountId) {
        let token = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
            .cloned();
        if let Some(token) = token {
            token.cancel();
            while self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(account)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Whether a loop is running for `account` in this process.
    pub fn is_running(&self, account: &AccountId) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(account)
    }

    /// Stops every loop and waits for them.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    async fn poll_loop(&self, account_id: &AccountId, stop: &CancellationToken) {
        let lease = lease_name(account_id);
        let mut failures = 0u32;
        let mut holding = false;
        while !stop.is_cancelled() {
            match self
                .store
                .try_lease(&lease, &self.config.owner, self.config.lease)
                .await
            {
                Ok(true) => {
                    if !holding {
                        // Said once per takeover, so operators (and the scale-out tests) see
                        // which replica polls which account.
                        tracing::info!(account = %account_id, owner = %self.config.owner, "took the poll lease; this replica polls the account");
                        holding = true;
                    }
                }
                Ok(false) => {
                    holding = false;
                    // Another replica polls this account; check again later in case it died.
                    sleep_or_stop(self.config.standby_interval, stop).await;
                    continue;
                }
                Err(err) => {
                    failures += 1;
                    tracing::warn!(account = %account_id, error = %err, "taking the poll lease failed");
                    sleep_or_stop(self.backoff(failures), stop).await;
                    continue;
                }
            }
            match self.poll_once(account_id, stop).await {
                Ok(true) => failures = 0,
                Ok(false) => return,
                Err(err) => {
                    failures += 1;
                    let pause = self.backoff(failures);
                    tracing::warn!(account = %account_id, error = %err, retry_in_ms = pause.as_millis() as u64, "poll failed; backing off");
                    metrics::counter!("inbox_poll_errors_total").increment(1);
                    sleep_or_stop(pause, stop).await;
                }
            }
        }
    }

    /// One poll. `Ok(false)` means the loop should end (account gone, revoked or unpollable).
    async fn poll_once(
        &self,
        account_id: &AccountId,
        stop: &CancellationToken,
    ) -> Result<bool, Error> {
        let Some(account) = self.store.find_account(account_id).await? else {
            tracing::info!(account = %account_id, "account disconnected; its poller stops");
            return Ok(false);
        };
        if account.status == AccountStatus::ReauthRequired {
            tracing::info!(account = %account_id, "account needs reauthorisation; its poller stops");
            return Ok(false);
        }
        let platform = self.platforms.get(account.platform)?.clone();
        let budget = BudgetCall::new(
            account.platform,
            BudgetOperation::Read,
            &account.platform_account_id,
        );
        match self.config.budgets.acquire(&budget).await {
            Ok(()) => {}
            Err(Error::RateLimited { retry_after }) => {
                // Wait in slices of a third of the lease, so the loop renews the lease
                // between them and no other replica takes the account over meanwhile.
                metrics::counter!("inbox_poll_budget_waits_total", "platform" => account.platform.as_str())
                    .increment(1);
                sleep_or_stop(retry_after.min(self.config.lease / 3), stop).await;
                return Ok(true);
            }
            Err(err) => return Err(err),
        }
        let context = self.store.account_context(account_id).await?;
        let cursor = self.store.poll_cursor(account_id).await?;
        // Keep the lease alive while the platform holds the long poll; if another replica
        // took it meanwhile (this one stalled), drop the poll so only the owner stores.
        let lease = lease_name(account_id);
        let poll = platform.poll(&context, cursor.as_deref());
        tokio::pin!(poll);
        let mut renew = tokio::time::interval(self.config.lease / 3);
        renew.tick().await;
        let batch = loop {
            tokio::select! {
                batch = &mut poll => break batch,
                _ = renew.tick() => {
                    if !self.store.try_lease(&lease, &self.config.owner, self.config.lease).await? {
                        tracing::warn!(account = %account_id, "poll lease lost to another replica; dropping this poll");
                        return Ok(true);
                    }
                }
                () = stop.cancelled() => return Ok(false),
            }
        };
        // A refusal of credentials that renew may only mean they expired (a token that
        // lapsed while the gateway was down): renew them and poll once more; a second refusal,
        // or a refused renewal (which marks the account itself), is final.
        let batch = match (batch, &self.refresher) {
            (Err(err @ Error::ReauthRequired { .. }), Some(refresher))
                if platform.capabilities().credential_refresh.is_some() =>
            {
                tracing::info!(account = %account_id, error = %err, "the platform refused the credentials; renewing them");
                match refresher.refresh(&account).await {
                    Ok(context) => platform.poll(&context, cursor.as_deref()).await,
                    Err(Error::ReauthRequired { .. }) => return Ok(false),
                    Err(other) => Err(other),
                }
            }
            (batch, _) => batch,
        };
        match batch {
            Ok(batch) => {
                let moved = batch.next_cursor.is_some() && batch.next_cursor != cursor;
                if !batch.payloads.is_empty() || moved {
                    metrics::counter!("inbox_poll_payloads_total", "platform" => account.platform.as_str())
                        .increment(batch.payloads.len() as u64);
                    self.store
                        .store_polled(&account, batch.payloads, batch.next_cursor)
                        .await?;
                }
                Ok(true)
            }
            Err(Error::ReauthRequired { message, .. }) => {
                if self
                    .store
                    .mark_account_reauth_required(account_id, &message)
                    .await?
                {
                    tracing::warn!(account = %account_id, reason = %message, "credentials revoked; account marked reauth_required");
                }
                Ok(false)
            }
            Err(Error::NotSupported { .. }) => Ok(false),
            Err(err) => {
                if let Error::RateLimited { retry_after }
                | Error::Unavailable {
                    retry_after: Some(retry_after),
                    ..
                } = &err
                {
                    self.config
                        .budgets
                        .report(&BudgetReport {
                            call: budget,
                            budget: None,
                            pushback: Pushback::Exhausted {
                                retry_after: *retry_after,
                            },
                        })
                        .await;
                }
                Err(err)
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let base = self
            .config
            .backoff_min
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)));
        let capped = base.min(self.config.backoff_max);
        // Full jitter in [50 %, 100 %] keeps replicas and accounts from retrying in lockstep.
        capped.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

fn lease_name(account: &AccountId) -> String {
    format!("poll:{account}")
}

async fn sleep_or_stop(duration: Duration, stop: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = stop.cancelled() => {}
    }
}
