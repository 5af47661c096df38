//! What every handler shares: the store, the platform adapters, the hooks into inbound
//! delivery, the webhook URL guard, the metrics renderer, readiness checks, the rate limits
//! and the API's own tunables. The server builds one [`AppState`]; tests build one over a temporary store.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use inbox_core::{Account, PlatformRegistry, RateBudgets};
use inbox_ratelimit::{LocalLimiter, RateLimiter};
use inbox_store::Store;
use inbox_webhooks::UrlGuard;

use crate::ratelimit::ApiKeyLimits;

/// The API's tunables. The defaults are the contract's numbers; the server may override them
/// from configuration and tests shorten the send deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Largest accepted request body; larger ones answer `413 payload_too_large`.
    pub max_body_bytes: usize,
    /// How long an `Idempotency-Key` and its stored response are kept.
    pub idempotency_ttl: Duration,
    /// How long a synchronous platform call (send, start, mark read, attachment fetch) may
    /// take before the API answers `503 platform_unavailable`. 25 s keeps the answer inside
    /// the Zernio SDKs' 30 s client timeout.
    pub send_deadline: Duration,
    /// How long a rotated-out webhook secret keeps signing beside the new one.
    pub secret_rotation_overlap: Duration,
    /// `INBOX_PUBLIC_URL`: the base of the OAuth callback URL platforms redirect to. OAuth
    /// connect flows need it.
    pub public_url: Option<String>,
    /// How long a started OAuth flow may take before its callback is refused.
    pub oauth_state_ttl: Duration,
}

/// 1 MiB: far above any message the platforms accept, small enough to bound memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            idempotency_ttl: Duration::from_secs(24 * 60 * 60),
            send_deadline: Duration::from_secs(25),
            secret_rotation_overlap: Duration::from_secs(24 * 60 * 60),
            public_url: None,
            oauth_state_ttl: Duration::from_secs(15 * 60),
        }
    }
}

/// Hooks the API calls around an account's lifetime, so inbound delivery (webhook
/// registration, pollers) follows connects and disconnects. Implemented by `inbox-ingest`.
#[async_trait]
pub trait AccountHooks: Send + Sync + 'static {
    /// After an account is stored: arrange inbound delivery (webhook registration or a
    /// poller). An error undoes the connect.
    async fn connected(&self, account: &Account) -> Result<(), inbox_core::Error>;

    /// Before an account is deleted: unregister platform webhooks, stop pollers.
    async fn disconnecting(&self, account: &Account) -> Result<(), inbox_core::Error>;

    /// Renews an account's expiring credentials now, when a platform call found them expired;
    /// one refresh per account at a time across replicas. `NotSupported` where there is
    /// nothing to renew.
    async fn refresh_credentials(&self, account: &Account) -> Result<(), inbox_core::Error>;
}

/// Hooks that do nothing, for tests and tools that run the API without inbound delivery.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopAccountHooks;

#[async_trait]
impl AccountHooks for NoopAccountHooks {
    async fn connected(&self, _account: &Account) -> Result<(), inbox_core::Error> {
        Ok(())
    }

    async fn disconnecting(&self, _account: &Account) -> Result<(), inbox_core::Error> {
        Ok(())
    }

    async fn refresh_credentials(&self, account: &Account) -> Result<(), inbox_core::Error> {
        Err(inbox_core::Error::NotSupported {
            platform: account.platform,
            operation: "refreshing credentials without inbound hooks",
        })
    }
}

/// One dependency `/readyz` checks. The store is always checked; the server adds Redis once
/// it is used.
#[async_trait]
pub trait ReadinessCheck: Send + Sync + 'static {
    /// A short stable name (`database`, `redis`), shown in the readiness report.
    fn name(&self) -> &'static str;

    /// `Ok` when the dependency answers; otherwise what failed, safe to show to operators.
    async fn check(&self) -> Result<(), String>;

    /// Whether the gateway cannot serve without it. A failed critical check makes `/readyz`
    /// answer `503`; a failed non-critical one (Redis, whose absence the in-process rate
    /// limiter covers) is reported as `degraded` with `200`.
    fn critical(&self) -> bool {
        true
    }
}

/// The database check: `Store::ping`.
#[derive(Debug, Clone)]
pub struct StoreReadiness(pub Arc<dyn Store>);

#[async_trait]
impl ReadinessCheck for StoreReadiness {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|err| err.to_string())
    }
}

/// Renders the Prometheus text exposition for `/metrics`.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// The configured platform adapters.
    pub platforms: Arc<PlatformRegistry>,
    /// Inbound-delivery hooks around connect and disconnect.
    pub hooks: Arc<dyn AccountHooks>,
    /// Refuses webhook endpoint URLs that resolve to private or metadata addresses.
    pub url_guard: Arc<UrlGuard>,
    /// The Prometheus renderer behind `/metrics`, installed by the server.
    pub metrics: MetricsRenderer,
    /// What `/readyz` checks, in order.
    pub readiness: Arc<Vec<Arc<dyn ReadinessCheck>>>,
    /// The API's tunables.
    pub config: ApiConfig,
    /// The platforms' rate budgets, drawn from before every platform call.
    pub budgets: Arc<dyn RateBudgets>,
    /// The per-API-key request limit.
    pub api_limits: ApiKeyLimits,
}

impl AppState {
    /// A state with the default [`ApiConfig`], an empty metrics page, the store as the only
    /// readiness check, and rate limits in process: the platforms' declared budgets and
    /// 600 requests per minute per API key.
    pub fn new(
        store: Arc<dyn Store>,
        platforms: Arc<PlatformRegistry>,
        hooks: Arc<dyn AccountHooks>,
        url_guard: Arc<UrlGuard>,
    ) -> Self {
        let readiness: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(StoreReadiness(store.clone()))];
        let limiter: Arc<dyn RateLimiter> = Arc::new(LocalLimiter::new());
        let budgets = crate::ratelimit::default_budgets(limiter.clone(), &platforms);
        let api_limits = ApiKeyLimits::new(limiter, crate::ratelimit::DEFAULT_REQUESTS_PER_MINUTE)
            .expect("600 per minute is a valid quota");
        AppState {
            store,
            platforms,
            hooks,
            url_guard,
            metrics: Arc::new(String::new),
            readiness: Arc::new(readiness),
            config: ApiConfig::default(),
            budgets,
            api_limits,
        }
    }

    /// Replaces the rate limits: the platforms' budgets (shared with the pollers and the
    /// adapters) and the per-API-key limit, on the server's limiter (Redis when configured).
    pub fn with_rate_limits(
        mut self,
        budgets: Arc<dyn RateBudgets>,
        api_limits: ApiKeyLimits,
    ) -> Self {
        self.budgets = budgets;
        self.api_limits = api_limits;
        self
    }

    /// Replaces the tunables.
    pub fn with_config(mut self, config: ApiConfig) -> Self {
        self.config = config;
        self
    }

    /// Installs the Prometheus renderer.
    pub fn with_metrics(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.metrics = Arc::new(render);
        self
    }

    /// Adds a readiness check after the existing ones.
    pub fn with_readiness_check(mut self, check: impl ReadinessCheck) -> Self {
        Arc::make_mut(&mut self.readiness).push(Arc::new(check));
        self
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let checks: Vec<_> = self.readiness.iter().map(|check| check.name()).collect();
        f.debug_struct("AppState")
            .field("store", &self.store)
            .field("platforms", &self.platforms)
            .field("readiness", &checks)
            .field("config", &self.config)
            .field("budgets", &self.budgets)
            .field("api_limits", &self.api_limits.per_minute())
            .finish_non_exhaustive()
    }
}
