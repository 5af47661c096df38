//! Inbound: everything between a platform and `Store::apply_inbound_batch`.
//!
//! * [`endpoints`]: the public `/webhooks/...` routes. Verify over raw bytes, persist through
//!   the group-commit [`RawWriter`], acknowledge.
//! * [`processor`]: claims stored raw payloads in batches, parses them with their adapter, routes
//!   events to accounts and applies each batch (messages + events + deliveries) in one
//!   transaction, a failing payload rolled back alone.
//! * [`pollers`]: one leased poll loop per polled account, storing payloads and cursor together.
//! * [`profiles`]: names participants the payload knows only by id (stored name, cache, or
//!   the platform's profile API within the account's read budget).
//! * [`refresh`]: renews expiring credentials before they lapse, one refresh per account at a
//!   time across replicas.
//! * [`Inbound`]: ties them together and decides, per account, between webhook and polling when
//!   an account is connected, disconnected, or the gateway starts.
#![warn(missing_docs)]

pub mod endpoints;
pub mod pollers;
pub mod processor;
pub mod profiles;
mod raw_writer;
pub mod refresh;

use std::sync::Arc;

use inbox_core::{Account, AccountStatus, Error, InboundMode, InboundSetup, PlatformRegistry};
use inbox_store::Store;
use secrecy::SecretString;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use endpoints::InboundState;
pub use pollers::{PollerConfig, Pollers};
pub use processor::ProcessorConfig;
pub use raw_writer::RawWriter;
pub use refresh::{CredentialRefresher, RefreshConfig};

/// Inbound settings.
#[derive(Debug, Clone)]
pub struct InboundConfig {
    /// `INBOX_PUBLIC_URL`: where platforms can reach this gateway. `None` means every platform
    /// that can poll is polled.
    pub public_url: Option<String>,
    /// Largest group commit of raw payloads.
    pub raw_batch: usize,
    /// Processor settings.
    pub processor: ProcessorConfig,
    /// Poller settings.
    pub pollers: PollerConfig,
    /// Credential refresh settings.
    pub refresh: RefreshConfig,
}

impl InboundConfig {
    /// Defaults for a process whose claims and leases are named `owner`.
    pub fn new(public_url: Option<String>, owner: &str) -> Self {
        InboundConfig {
            public_url: public_url.map(|url| url.trim_end_matches('/').to_owned()),
            raw_batch: 1024,
            processor: ProcessorConfig::new(owner),
            pollers: PollerConfig::new(owner),
            refresh: RefreshConfig::new(owner),
        }
    }
}

/// The running inbound side of one gateway process.
#[derive(Debug, Clone)]
pub struct Inbound {
    store: Arc<dyn Store>,
    platforms: Arc<PlatformRegistry>,
    public_url: Option<String>,
    state: InboundState,
    pollers: Pollers,
    refresher: CredentialRefresher,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Inbound {
    /// Starts the raw writer and the processor. Pollers start with [`Inbound::resume_all`] and
    /// [`Inbound::activate`].
    pub fn start(
        store: Arc<dyn Store>,
        platforms: Arc<PlatformRegistry>,
        config: InboundConfig,
    ) -> Self {
        let writer = RawWriter::start(store.clone(), config.raw_batch);
        let state = InboundState::new(store.clone(), platforms.clone(), writer);

        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(processor::run_processor(
            store.clone(),
            platforms.clone(),
            config.processor,
            shutdown.clone(),
        ));
        let refresher = CredentialRefresher::new(store.clone(), platforms.clone(), config.refresh);
        let pollers = Pollers::new(store.clone(), platforms.clone(), config.pollers)
            .with_refresher(refresher.clone());
        tasks.spawn(refresh::run_refresh_scheduler(
            refresher.clone(),
            shutdown.clone(),
        ));
        Inbound {
            store,
            platforms,
            public_url: config.public_url,
            state,
            pollers,
            refresher,
            shutdown,
            tasks,
        }
    }

    /// The public inbound routes.
    pub fn router(&self) -> axum::Router {
        endpoints::router(self.state.clone())
    }

    /// Renews an account's credentials now (the API calls this when a platform says they
    /// expired mid-request), sharing the scheduler's single-flight lease.
    ///
    /// # Errors
    /// As [`CredentialRefresher::refresh`].
    pub async fn refresh_credentials(&self, account: &Account) -> Result<(), Error> {
        self.refresher.refresh(account).await.map(|_| ())
    }

    /// The poll loops (for inspection in tests).
    pub fn pollers(&self) -> &Pollers {
        &self.pollers
    }

    /// Arranges inbound delivery for a newly connected (or reconnected) account: registers
    /// its per-account webhook when the gateway has a public URL and the platform supports
    /// one, otherwise starts polling it.
    ///
    /// # Errors
    /// The platform's refusal (e.g. Telegram rejecting the webhook URL); the caller undoes the
    /// connect so the customer can fix the configuration and try again.
    pub async fn activate(&self, account: &Account) -> Result<InboundMode, Error> {
        let platform = self.platforms.get(account.platform)?;
        let modes = &platform.capabilities().inbound_modes;
        let context = self.store.account_context(&account.id).await?;
        let webhook_url = match &self.public_url {
            Some(base) if modes.contains(&InboundMode::WebhookPerAccount) => Some(format!(
                "{base}/webhooks/{}/{}",
                account.platform, account.id
            )),
            _ => None,
        };
        let secret = context
            .inbound_secret
            .clone()
            .unwrap_or_else(|| SecretString::from(""));
        let mode = platform
            .start_inbound(
                &context,
                &InboundSetup {
                    webhook_url,
                    secret,
                },
            )
            .await?;
        self.state.forget_account(&account.id);
        if mode == InboundMode::Polling {
            self.pollers.start(account);
        }
        tracing::info!(account = %account.id, platform = %account.platform, ?mode, "inbound active");
        Ok(mode)
    }

    /// Stops inbound delivery for an account being disconnected: stops its poller and
    /// unregisters its platform webhook.
    ///
    /// # Errors
    /// The platform's refusal to unregister; the poller is stopped regardless.
    pub async fn deactivate(&self, account: &Account) -> Result<(), Error> {
        self.pollers.stop(&account.id).await;
        self.state.forget_account(&account.id);
        let platform = self.platforms.get(account.platform)?;
        let context = self.store.account_context(&account.id).await?;
        platform.stop_inbound(&context).await
    }

    /// At start-up: re-arranges inbound delivery for every active account, in the background,
    /// so a changed `INBOX_PUBLIC_URL` moves accounts between webhook and polling and every
    /// polled account gets its loop. Failures are logged per account and never stop the rest.
    pub fn resume_all(&self) {
        let this = self.clone();
        self.tasks.spawn(async move {
            let accounts = match this.store.list_all_accounts(None).await {
                Ok(accounts) => accounts,
                Err(err) => {
                    tracing::error!(error = %err, "listing accounts to resume inbound failed");
                    return;
                }
            };
            for account in accounts {
                if this.shutdown.is_cancelled() {
                    return;
                }
                if account.status != AccountStatus::Active || this.platforms.get(account.platform).is_err() {
                    continue;
                }
                if let Err(err) = this.activate(&account).await {
                    if let Error::ReauthRequired { message, .. } = &err {
                        let _ = this.store.mark_account_reauth_required(&account.id, message).await;
                    }
                    tracing::warn!(account = %account.id, platform = %account.platform, error = %err, "resuming inbound failed");
                }
            }
            this.watch_polled_accounts().await;
        });
    }

    /// Keeps a poll loop running in this process for every active polled account, also those
    /// connected through another replica after this one started: each replica runs a loop per
    /// account and the `poll:{accountId}` lease picks the one that polls, so when that replica
    /// dies another takes its accounts over once the lease expires. Loops end by themselves
    /// when an account is disconnected or needs reauthorisation.
    async fn watch_polled_accounts(&self) {
        const RESCAN: std::time::Duration = std::time::Duration::from_secs(10);
        loop {
            tokio::select! {
                () = tokio::time::sleep(RESCAN) => {}
                () = self.shutdown.cancelled() => return,
            }
            let accounts = match self.store.list_all_accounts(None).await {
                Ok(accounts) => accounts,
                Err(err) => {
                    tracing::warn!(error = %err, "listing accounts for the pollers failed");
                    continue;
                }
            };
            for account in accounts {
                if account.status != AccountStatus::Active || self.pollers.is_running(&account.id) {
                    continue;
                }
                let Ok(platform) = self.platforms.get(account.platform) else {
                    continue;
                };
                let modes = &platform.capabilities().inbound_modes;
                let pushed = modes.first() == Some(&InboundMode::WebhookPerApp)
                    || (self.public_url.is_some()
                        && modes.contains(&InboundMode::WebhookPerAccount));
                if modes.contains(&InboundMode::Polling) && !pushed {
                    self.pollers.start(&account);
                }
            }
        }
    }

    /// Stops the processor and the pollers after the work in hand.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.pollers.shutdown().await;
        self.tasks.close();
        self.tasks.wait().await;
    }
}
