//! The limiter's Prometheus metrics. Counter handles are made once, when a limiter is built
//! (after the server installed its recorder), so a decision costs an atomic add rather than a
//! registry lookup — the in-process limiter answers in well under a microsecond.

use std::time::Duration;

use metrics::{
    Counter, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge,
};

use crate::Backend;

/// Decisions, by `backend` (`redis`, `local`) and `outcome` (`allowed`, `limited`).
pub const DECISIONS: &str = "inbox_ratelimit_decisions_total";
/// 1 for the backend answering now, 0 for the other.
pub const BACKEND: &str = "inbox_ratelimit_backend";
/// Switches from Redis to the in-process limiter.
pub const FALLBACKS: &str = "inbox_ratelimit_fallbacks_total";
/// Redis failures, by `reason` (`error`, `timeout`, `malformed`).
pub const REDIS_ERRORS: &str = "inbox_ratelimit_redis_errors_total";
/// Time of one Redis round trip (script run), successful or not.
pub const REDIS_DURATION: &str = "inbox_ratelimit_redis_duration_seconds";
/// Platform pushback recorded, by `platform`.
pub const PUSHBACK: &str = "inbox_ratelimit_pushback_total";
/// Decisions carried by one Redis script run.
pub const BATCH_SIZE: &str = "inbox_ratelimit_redis_batch_size";
/// Full buckets deleted from Redis by the sweep.
pub const BUCKETS_SWEPT: &str = "inbox_ratelimit_buckets_swept_total";

/// Describes the metrics for `/metrics`. Call once after installing the recorder.
pub fn describe_metrics() {
    describe_counter!(DECISIONS, "Rate-limit decisions, by backend and outcome.");
    describe_gauge!(
        BACKEND,
        "1 for the rate-limit backend answering now (redis or local)."
    );
    describe_counter!(
        FALLBACKS,
        "Switches from Redis to the in-process rate limiter."
    );
    describe_counter!(REDIS_ERRORS, "Redis rate-limiter failures, by reason.");
    describe_histogram!(
        REDIS_DURATION,
        metrics::Unit::Seconds,
        "Duration of one rate-limit script run in Redis."
    );
    describe_counter!(
        PUSHBACK,
        "Platform throttling signals recorded in the budgets."
    );
    describe_histogram!(
        BATCH_SIZE,
        "Rate-limit decisions carried by one Redis script run (batching under load)."
    );
    describe_counter!(
        BUCKETS_SWEPT,
        "Full rate-limit buckets deleted from Redis by the periodic sweep."
    );
}

/// The allowed/limited counters of one backend.
#[derive(Debug, Clone)]
pub(crate) struct DecisionCounters {
    allowed: Counter,
    limited: Counter,
}

impl DecisionCounters {
    pub(crate) fn new(backend: Backend) -> Self {
        DecisionCounters {
            allowed: counter!(DECISIONS, "backend" => backend.as_str(), "outcome" => "allowed"),
            limited: counter!(DECISIONS, "backend" => backend.as_str(), "outcome" => "limited"),
        }
    }

    pub(crate) fn record(&self, allowed: bool) {
        if allowed {
            self.allowed.increment(1);
        } else {
            self.limited.increment(1);
        }
    }
}

/// The Redis backend's latency histogram.
#[derive(Debug, Clone)]
pub(crate) struct RedisTimer(Histogram);

impl RedisTimer {
    pub(crate) fn new() -> Self {
        RedisTimer(metrics::histogram!(REDIS_DURATION))
    }

    pub(crate) fn record(&self, elapsed: Duration) {
        self.0.record(elapsed.as_secs_f64());
    }
}

/// Sets the backend gauge: 1 for `active`, 0 for the other. The fallback keeps it current;
/// a gateway without Redis sets it once to `local`.
pub fn set_backend_gauge(active: Backend) {
    for backend in [Backend::Redis, Backend::Local] {
        let value = if backend == active { 1.0 } else { 0.0 };
        gauge!(BACKEND, "backend" => backend.as_str()).set(value);
    }
}

/// Counts a Redis failure by reason.
pub(crate) fn redis_error(reason: &'static str) {
    counter!(REDIS_ERRORS, "reason" => reason).increment(1);
}

/// Counts buckets the sweep deleted from Redis.
pub(crate) fn buckets_swept(count: u64) {
    counter!(BUCKETS_SWEPT).increment(count);
}

/// Records how many decisions one Redis script run carried.
pub(crate) fn batch_size(decisions: usize) {
    metrics::histogram!(BATCH_SIZE).record(decisions as f64);
}
