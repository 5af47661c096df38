//! Wiring: opens the store, builds the adapters, starts inbound (writer, processor, pollers)
//! and the delivery worker, serves the API and the inbound endpoints on one listener, and
//! shuts everything down gracefully on SIGINT/SIGTERM: the listener stops accepting, in-flight
//! requests finish, workers finish the deliveries and payloads in hand.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use async_trait::async_trait;
use inbox_api::{AccountHooks, AppState};
use inbox_core::{Account, Error};
use inbox_ingest::{Inbound, InboundConfig};
use inbox_store::{Cipher, Store, StoreConfig};
use inbox_webhooks::{DeliveryWorker, DeliveryWorkerConfig, RetrySchedule, UrlGuard};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::{config::Settings, housekeeping, ratelimit::RateLimits, registry, telemetry};

/// Connects the API's account hooks to inbound delivery.
#[derive(Debug)]
struct InboundHooks(Inbound);

#[async_trait]
impl AccountHooks for InboundHooks {
    async fn connected(&self, account: &Account) -> Result<(), Error> {
        self.0.activate(account).await.map(|_| ())
    }

    async fn disconnecting(&self, account: &Account) -> Result<(), Error> {
        self.0.deactivate(account).await
    }

    async fn refresh_credentials(&self, account: &Account) -> Result<(), Error> {
        self.0.refresh_credentials(account).await
    }
}

/// A name for this process's claims and leases, unique among replicas.
fn process_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "inboxgw".into());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        inbox_core::EventId::new().as_str().get(20..).unwrap_or("0")
    )
}

/// The cipher: `INBOX_ENCRYPTION_KEY`, or in embedded mode a key file beside the database,
/// generated (with a warning) on first start.
fn cipher(settings: &Settings) -> anyhow::Result<Cipher> {
    if let Some(key) = &settings.encryption_key {
        return Cipher::from_base64_key(key.expose_secret())
            .map_err(|err| anyhow::anyhow!("invalid configuration: INBOX_ENCRYPTION_KEY: {err}"));
    }
    let Some(database) = settings.sqlite_path() else {
        tracing::warn!("no INBOX_ENCRYPTION_KEY and an in-memory database: using a throwaway key");
        return Cipher::from_base64_key(&Cipher::generate_key()).map_err(anyhow::Error::from);
    };
    let path = database
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."))
        .join("encryption.key");
    let (cipher, created) = Cipher::load_or_create_key_file(&path).with_context(|| {
        format!(
            "cannot read or create the encryption key file {}",
            path.display()
        )
    })?;
    if created {
        tracing::warn!(
            path = %path.display(),
            "generated a new encryption key for stored credentials; back this file up (without it they cannot be decrypted) or set INBOX_ENCRYPTION_KEY"
        );
    }
    Ok(cipher)
}

fn store_config(settings: &Settings) -> anyhow::Result<StoreConfig> {
    Ok(StoreConfig {
        url: settings.database_url.clone(),
        cipher: cipher(settings)?,
        max_connections: 16,
    })
}

/// `inboxgw migrate`.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    inbox_store::migrate(&store_config(settings)?)
        .await
        .context("migrating the database failed")?;
    tracing::info!("database migrated");
    Ok(())
}

/// `inboxgw api-key create --workspace NAME`: prints the key once on stdout.
pub async fn create_api_key(settings: &Settings, workspace: &str) -> anyhow::Result<()> {
    let workspace = workspace.trim();
    anyhow::ensure!(!workspace.is_empty(), "--workspace must not be empty");
    let store = inbox_store::open_and_migrate(&store_config(settings)?).await?;
    let (key, record) = inbox_api::create_api_key(store.as_ref(), workspace).await?;
    eprintln!(
        "Created API key {} for workspace `{workspace}` ({}). It is shown once; store it now.",
        record.id, record.workspace_id
    );
    println!("{key}");
    Ok(())
}

/// `inboxgw serve`.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let render_metrics = telemetry::init_metrics()?;
    inbox_webhooks::describe_metrics();
    metrics::describe_counter!(
        "inbox_pruned_total",
        "Rows deleted by housekeeping past their retention, by what they were."
    );
    // Before the database: a budget override naming no budget stops start-up at once.
    let limits = RateLimits::build(&settings).await?;
    let platforms = Arc::new(registry::build(&settings, limits.handle())?);
    limits.register(&settings, &platforms)?;
    // Per-client budgets (Reddit's 100 requests a minute, X's daily app cap) are shared under
    // the OAuth client id, so gateways of different clients sharing one Redis stay apart.
    if let Some(reddit) = &settings.reddit {
        (limits.budgets).set_app_id(inbox_core::PlatformKind::Reddit, reddit.client_id.clone());
    }
    if let Some(x) = &settings.x {
        (limits.budgets).set_app_id(inbox_core::PlatformKind::X, x.client_id.clone());
    }
    let store: Arc<dyn Store> = inbox_store::open_and_migrate(&store_config(&settings)?)
        .await
        .context("opening the database failed (check DATABASE_URL)")?;
    let owner = process_owner();

    let mut inbound_config = InboundConfig::new(settings.public_url.clone(), &owner);
    inbound_config.pollers.budgets = limits.handle();
    // Profile lookups (Meta names) count against the accounts' read budgets.
    inbound_config.processor.budgets = limits.handle();
    let inbound = Inbound::start(store.clone(), platforms.clone(), inbound_config);

    let worker_config = DeliveryWorkerConfig {
        owner: owner.clone(),
        timeout: settings.delivery.timeout,
        lease: settings.delivery.lease,
        allow_private: settings.webhook_allow_private,
        shutdown_grace: settings.shutdown_grace,
        schedule: settings
            .delivery
            .retry_schedule
            .clone()
            .map(RetrySchedule::new)
            .unwrap_or_default(),
        ..DeliveryWorkerConfig::default()
    };
    worker_config.validate()?;
    let worker = DeliveryWorker::new(store.clone(), worker_config)?;
    let shutdown = CancellationToken::new();
    let worker_task = tokio::spawn(worker.run(shutdown.child_token()));

    let state = AppState::new(
        store.clone(),
        platforms,
        Arc::new(InboundHooks(inbound.clone())),
        Arc::new(UrlGuard::new(settings.webhook_allow_private)),
    )
    .with_metrics(move || render_metrics());
    // The OAuth connect flows' callback is `{INBOX_PUBLIC_URL}/api/v1/oauth/{platform}/callback`.
    let state = if state.config.public_url.is_none() {
        let config = inbox_api::ApiConfig {
            public_url: settings.public_url.clone(),
            ..state.config.clone()
        };
        state.with_config(config)
    } else {
        state
    };
    let state = limits.apply(state);
    let housekeeping_task = tokio::spawn(housekeeping::run(
        store.clone(),
        owner.clone(),
        housekeeping::Retention {
            raw_events: settings.raw_event_retention,
            idempotency_keys: state.config.idempotency_ttl,
        },
        shutdown.child_token(),
    ));
    let app = inbox_api::with_common_layers(inbox_api::router(state).merge(inbound.router()));

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {} (INBOX_LISTEN)", settings.listen))?;
    tracing::info!(
        address = %listener.local_addr()?,
        database = if settings.is_embedded() { "sqlite" } else { "postgres" },
        inbound = if settings.public_url.is_some() { "webhooks" } else { "polling" },
        rate_limits = if settings.redis_url.is_some() { "redis" } else { "local" },
        "inboxgw listening"
    );
    inbound.resume_all();

    let signal = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing in-flight requests and deliveries");
            signal.cancel();
        })
        .await
        .context("the HTTP server failed")?;

    shutdown.cancel();
    let drained = tokio::time::timeout(settings.shutdown_grace + Duration::from_secs(1), async {
        inbound.shutdown().await;
        let _ = worker_task.await;
        let _ = housekeeping_task.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace elapsed with work in flight; it resumes on the next start");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
