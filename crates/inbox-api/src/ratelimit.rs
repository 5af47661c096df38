//! Rate limits in the API: the per-API-key request limit (a middleware behind the API-key
//! check), the platform budgets around every platform call, and Redis in `/readyz`.
//!
//! **Per key.** Every authenticated response — successes and errors alike — carries the key's
//! budget twice: as the IETF draft's `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset` (seconds until the budget is full again), and as the `X-RateLimit-Limit`,
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset` (a Unix time in seconds) that Zernio's
//! SDKs read. Beyond the limit the request answers `429 rate_limited` with `Retry-After`
//! (whole seconds, rounded up) and runs no handler.
//!
//! **Per platform budget.** [`call_within_budget`] draws from the account's budgets before a
//! platform call (nothing is called, sent or stored when one is exhausted: `429` with
//! `Retry-After`) and, when the call comes back throttled with a hint, holds the budgets back
//! until then so other requests and replicas wait instead of hitting the platform.

use std::{future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use inbox_core::{
    Account, AccountContext, BudgetCall, BudgetReport, DynPlatform, Error, Pushback, RateBudgets,
    Timestamp,
};
use inbox_ratelimit::{Decision, FallbackLimiter, Quota, RateLimiter, key};

use crate::{
    AppState, ReadinessCheck,
    auth::Workspace,
    error::{ApiError, retry_after_seconds},
    routes::call_platform,
};

/// The SPEC's default: requests per minute per API key.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 600;

/// `RateLimit-Limit`: the most requests the key can make at once.
pub static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests left right now.
pub static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the budget is full again.
pub static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
/// `X-RateLimit-Limit` (Zernio).
pub static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining` (Zernio).
pub static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset` (Zernio): the Unix time, in seconds, when the budget is full again.
pub static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The per-API-key request limit: `per_minute` requests, all at once if need be, refilled
/// evenly over the minute (600/min: one more every 100 ms).
#[derive(Debug, Clone)]
pub struct ApiKeyLimits {
    limiter: Arc<dyn RateLimiter>,
    quota: Option<Quota>,
}

impl ApiKeyLimits {
    /// `per_minute` requests per key on `limiter`; 0 turns the limit off.
    ///
    /// # Errors
    /// A message when `per_minute` makes no quota (more than 60 million).
    pub fn new(limiter: Arc<dyn RateLimiter>, per_minute: u32) -> Result<Self, String> {
        let quota = match per_minute {
            0 => None,
            n => {
                Some(Quota::per_period(n, Duration::from_secs(60)).map_err(|err| err.to_string())?)
            }
        };
        Ok(ApiKeyLimits { limiter, quota })
    }

    /// The limit per minute, `None` when off.
    pub fn per_minute(&self) -> Option<u32> {
        self.quota.map(|quota| quota.burst())
    }
}

/// Sets the six rate-limit headers from a decision.
fn set_headers(headers: &mut HeaderMap, decision: &Decision) {
    let reset = retry_after_seconds(decision.reset_after);
    let reset_at = u64::try_from(Timestamp::now().unix_seconds())
        .unwrap_or(0)
        .saturating_add(reset);
    for (name, value) in [
        (&RATELIMIT_LIMIT, u64::from(decision.limit)),
        (&RATELIMIT_REMAINING, u64::from(decision.remaining)),
        (&RATELIMIT_RESET, reset),
        (&X_RATELIMIT_LIMIT, u64::from(decision.limit)),
        (&X_RATELIMIT_REMAINING, u64::from(decision.remaining)),
        (&X_RATELIMIT_RESET, reset_at),
    ] {
        headers.insert(name.clone(), HeaderValue::from(value));
    }
}

/// Middleware (after the API-key check): counts the request against its key and answers
/// `429` beyond the limit; the key's headers go on every response.
pub(crate) async fn limit_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(quota) = state.api_limits.quota else {
        return next.run(request).await;
    };
    // `require_api_key` runs first and always sets the workspace; without it there is no key
    // to count, and the handler refuses the request anyway.
    let Some(key_id) = request
        .extensions()
        .get::<Workspace>()
        .map(|workspace| key::api_key_key(workspace.key_id.as_str()))
    else {
        return next.run(request).await;
    };
    match state.api_limits.limiter.check_key(&key_id, quota, 1).await {
        Ok(decision) if decision.allowed => {
            let mut response = next.run(request).await;
            set_headers(response.headers_mut(), &decision);
            response
        }
        Ok(decision) => {
            let mut response = ApiError::from(Error::RateLimited {
                retry_after: decision.retry_after,
            })
            .into_response();
            set_headers(response.headers_mut(), &decision);
            response
        }
        // Never "allowed" without a decision. The fallback limiter answers from memory when
        // Redis is down, so this only happens for a bug.
        Err(err) => ApiError::from(Error::Unavailable {
            message: format!("the rate limiter could not decide: {err}"),
            retry_after: Some(Duration::from_secs(1)),
        })
        .into_response(),
    }
}

/// Runs one platform call within the account's budgets: draws from them first (the call is
/// not made when one is exhausted), then the call as `call_platform` makes it, and records
/// the platform's pushback (`RateLimited`, or `Unavailable` with a retry hint) in the budgets.
///
/// # Errors
/// `RateLimited` from the budgets, or the call's own error.
pub(crate) async fn call_within_budget<T, F, Fut>(
    state: &AppState,
    budget: &BudgetCall<'_>,
    account: &Account,
    platform: &DynPlatform,
    call: F,
) -> Result<T, Error>
where
    F: Fn(AccountContext) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    state.budgets.acquire(budget).await?;
    let outcome = call_platform(state, account, platform, call).await;
    if let Err(
        Error::RateLimited { retry_after }
        | Error::Unavailable {
            retry_after: Some(retry_after),
            ..
        },
    ) = &outcome
    {
        state
            .budgets
            .report(&BudgetReport {
                call: *budget,
                budget: None,
                pushback: Pushback::Exhausted {
                    retry_after: *retry_after,
                },
            })
            .await;
    }
    outcome
}

/// `/readyz`'s Redis check. Not critical: while Redis is away the gateway serves on the
/// in-process limiter, so `/readyz` stays `200` and reports the check as `degraded`.
#[derive(Debug, Clone)]
pub struct RedisReadiness(pub FallbackLimiter);

#[async_trait]
impl ReadinessCheck for RedisReadiness {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.readiness().await
    }

    fn critical(&self) -> bool {
        false
    }
}

/// The default budgets of a state: the registry's declared budgets on `limiter`.
pub(crate) fn default_budgets(
    limiter: Arc<dyn RateLimiter>,
    platforms: &inbox_core::PlatformRegistry,
) -> Arc<dyn RateBudgets> {
    let budgets = inbox_ratelimit::PlatformBudgets::new(limiter, Vec::new());
    if let Err(err) = budgets.register_all(platforms) {
        tracing::error!(error = %err, "a platform declares an invalid rate budget");
    }
    Arc::new(budgets)
}

/// The rate-limit headers in the OpenAPI document: defined once under
/// `components/headers`, referenced from every response of the routes behind the API key (the
/// shared problem responses included), with `Retry-After` on `429` and `503`; every such
/// operation lists `429`.
pub(crate) fn document(openapi: &mut utoipa::openapi::OpenApi, needs_key: impl Fn(&str) -> bool) {
    use utoipa::openapi::{
        Ref, RefOr,
        header::HeaderBuilder,
        schema::{ObjectBuilder, Type},
    };

    const KEY_HEADERS: [(&str, &str); 6] = [
        (
            "RateLimit-Limit",
            "The most requests this API key can make at once (the per-minute limit).",
        ),
        (
            "RateLimit-Remaining",
            "Requests this API key can still make right now.",
        ),
        (
            "RateLimit-Reset",
            "Seconds until this API key's budget is full again.",
        ),
        (
            "X-RateLimit-Limit",
            "As `RateLimit-Limit` (the form Zernio's SDKs read).",
        ),
        ("X-RateLimit-Remaining", "As `RateLimit-Remaining`."),
        (
            "X-RateLimit-Reset",
            "The Unix time, in seconds, when this API key's budget is full again.",
        ),
    ];
    const RETRY_AFTER: (&str, &str) = (
        "Retry-After",
        "Whole seconds (rounded up) to wait before retrying.",
    );
    let reference = |name: &str| RefOr::Ref(Ref::new(format!("#/components/headers/{name}")));
    let components = openapi.components.get_or_insert_with(Default::default);
    for (name, description) in KEY_HEADERS.iter().chain([&RETRY_AFTER]) {
        let header = HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            ))
            .description(Some(*description))
            .build();
        components
            .headers
            .insert((*name).to_owned(), RefOr::T(header));
    }
    let add_headers = |response: &mut utoipa::openapi::Response, retry: bool| {
        for (name, _) in KEY_HEADERS {
            response.headers.insert(name.to_owned(), reference(name));
        }
        if retry {
            response
                .headers
                .insert(RETRY_AFTER.0.to_owned(), reference(RETRY_AFTER.0));
        }
    };
    for (name, response) in components.responses.iter_mut() {
        if let RefOr::T(response) = response {
            add_headers(
                response,
                matches!(name.as_str(), "RateLimited" | "PlatformUnavailable"),
            );
        }
    }
    for (path, item) in openapi.paths.paths.iter_mut() {
        if !needs_key(path) {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            responses
                .entry("429".to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name("RateLimited")));
            for response in responses.values_mut() {
                if let RefOr::T(response) = response {
                    add_headers(response, false);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_the_decision_in_both_forms() {
        let mut headers = HeaderMap::new();
        set_headers(
            &mut headers,
            &Decision {
                allowed: true,
                limit: 600,
                remaining: 599,
                retry_after: Duration::ZERO,
                reset_after: Duration::from_millis(100),
            },
        );
        let get = |name: &HeaderName| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(get(&RATELIMIT_LIMIT), "600");
        assert_eq!(get(&RATELIMIT_REMAINING), "599");
        assert_eq!(get(&RATELIMIT_RESET), "1");
        assert_eq!(get(&X_RATELIMIT_LIMIT), "600");
        assert_eq!(get(&X_RATELIMIT_REMAINING), "599");
        let reset_at: i64 = get(&X_RATELIMIT_RESET).parse().unwrap();
        let now = Timestamp::now().unix_seconds();
        assert!((now..=now + 2).contains(&reset_at));
    }

    #[test]
    fn zero_turns_the_key_limit_off() {
        let limiter: Arc<dyn RateLimiter> = Arc::new(inbox_ratelimit::LocalLimiter::new());
        assert_eq!(
            ApiKeyLimits::new(limiter.clone(), 0).unwrap().per_minute(),
            None
        );
        assert_eq!(
            ApiKeyLimits::new(limiter, 600).unwrap().per_minute(),
            Some(600)
        );
    }
}
