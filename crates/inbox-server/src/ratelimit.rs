//! Rate-limit wiring: one limiter per process — Redis with the in-process fallback when
//! `REDIS_URL` is set, in process otherwise — and on it the platforms' budgets (handed to the
//! adapters, the pollers and the API) and the per-API-key limit.

use std::sync::Arc;

use inbox_api::{ApiKeyLimits, AppState, RedisReadiness};
use inbox_core::{PlatformKind, PlatformRegistry, RateBudgets};
use inbox_ratelimit::{
    Backend, DEFAULT_PROBE_INTERVAL, FallbackLimiter, LocalLimiter, PlatformBudgets, RateLimiter,
    RedisConfig, RedisLimiter,
};

use crate::config::Settings;

/// The process's rate limits.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// The platforms' budgets. Platforms register once the adapters are built.
    pub budgets: Arc<PlatformBudgets>,
    /// The per-API-key limit.
    pub api_limits: ApiKeyLimits,
    /// The Redis fallback, when Redis is configured (for `/readyz`).
    pub fallback: Option<FallbackLimiter>,
}

impl RateLimits {
    /// Builds the limiter and the (still empty) budgets. With `REDIS_URL` it probes Redis once;
    /// a Redis down at start-up is logged and the gateway starts on the in-process limiter.
    ///
    /// # Errors
    /// An invalid `INBOX_API_RATE_LIMIT` or `REDIS_URL`, naming the variable.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        inbox_ratelimit::describe_metrics();
        let (limiter, fallback): (Arc<dyn RateLimiter>, _) = match &settings.redis_url {
            Some(url) => {
                let redis = RedisLimiter::new(&RedisConfig::new(url.clone()))
                    .map_err(|err| anyhow::anyhow!("invalid configuration: REDIS_URL: {err}"))?;
                let fallback =
                    FallbackLimiter::start(redis, LocalLimiter::new(), DEFAULT_PROBE_INTERVAL)
                        .await;
                (Arc::new(fallback.clone()), Some(fallback))
            }
            None => {
                inbox_ratelimit::metrics::set_backend_gauge(Backend::Local);
                tracing::info!(
                    "rate limits are kept in this process (set REDIS_URL to share them between replicas)"
                );
                (Arc::new(LocalLimiter::new()), None)
            }
        };
        let api_limits = ApiKeyLimits::new(limiter.clone(), settings.api_rate_limit)
            .map_err(|err| anyhow::anyhow!("invalid configuration: INBOX_API_RATE_LIMIT: {err}"))?;
        let budgets = Arc::new(PlatformBudgets::new(limiter, settings.rate_budgets.clone()));
        Ok(RateLimits {
            budgets,
            api_limits,
            fallback,
        })
    }

    /// The budgets as the adapters and pollers take them.
    pub fn handle(&self) -> Arc<dyn RateBudgets> {
        self.budgets.clone()
    }

    /// Registers every adapter's budgets, applying the overrides, and logs what is enforced.
    /// Budgets shared by all accounts of an OAuth client are keyed by the client id, so
    /// gateways with different clients sharing one Redis keep separate budgets.
    ///
    /// # Errors
    /// An override of a budget or platform this gateway does not have, naming
    /// `INBOX_RATE_BUDGETS`.
    pub fn register(
        &self,
        settings: &Settings,
        platforms: &PlatformRegistry,
    ) -> anyhow::Result<()> {
        self.budgets
            .register_all(platforms)
            .map_err(|err| anyhow::anyhow!("invalid configuration: INBOX_RATE_BUDGETS: {err}"))?;
        if let Some(x) = &settings.x {
            self.budgets
                .set_app_id(PlatformKind::X, x.client_id.clone());
        }
        if let Some(reddit) = &settings.reddit {
            self.budgets
                .set_app_id(PlatformKind::Reddit, reddit.client_id.clone());
        }
        for platform in platforms.iter() {
            for enforced in self.budgets.budgets_of(platform.kind()) {
                let budget = enforced.budget;
                tracing::debug!(
                    platform = %platform.kind(),
                    budget = budget.name,
                    count = budget.count,
                    period_ms = budget.period.as_millis() as u64,
                    burst = budget.burst,
                    overridden = enforced.overridden,
                    "rate budget"
                );
            }
        }
        Ok(())
    }

    /// Puts the limits into the API's state, with Redis in `/readyz` when configured.
    pub fn apply(&self, state: AppState) -> AppState {
        let state = state.with_rate_limits(self.handle(), self.api_limits.clone());
        match &self.fallback {
            Some(fallback) => state.with_readiness_check(RedisReadiness(fallback.clone())),
            None => state,
        }
    }
}
