//! Rate limiting for the gateway: per-account platform budgets and per-API-key limits, in
//! Redis (shared by every replica) or in process.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod budgets;
mod fallback;
pub mod gcra;
pub mod key;
mod limiter;
mod local;
pub mod metrics;
mod overrides;
mod redis;

pub use budgets::{DEFAULT_APP_ID, EnforcedBudget, PlatformBudgets};
pub use fallback::{DEFAULT_PROBE_INTERVAL, FallbackLimiter, RedisHealth};
pub use gcra::{Decision, MAX_PERIOD, Quota, QuotaError};
pub use limiter::{Backend, Bucket, LimitError, RateLimiter};
pub use local::LocalLimiter;
pub use metrics::describe_metrics;
pub use overrides::{BudgetOverride, parse_overrides};
pub use redis::{
    BUCKETS, CHECK_SCRIPT, CheckReply, PENALIZE_SCRIPT, RedisConfig, RedisLimiter, SWEEP_EVERY,
    SWEEP_SCRIPT, parse_check_reply, parse_penalize_reply, redact_url,
};
