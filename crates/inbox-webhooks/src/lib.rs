//! Outbound webhooks: Standard Webhooks signing, the SSRF guard, the SSRF-safe sender, the retry
//! schedule and the durable delivery worker.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod guard;
mod schedule;
mod sender;
mod signer;
mod worker;

pub use guard::{BlockedAddress, UrlGuard, blocked_address_class};
pub use schedule::{DEFAULT_JITTER, RetrySchedule, clamp_retry_after, parse_retry_after};
pub use sender::{
    DEFAULT_TIMEOUT, MAX_RESPONSE_BODY, OutgoingWebhook, SendError, SendOutcome, SenderConfig,
    WebhookSender,
};
pub use signer::{InvalidSecret, SECRET_PREFIX, generate_secret, sign};
pub use worker::{
    DeliveryWorker, DeliveryWorkerConfig, METRIC_ATTEMPT_DURATION, METRIC_ATTEMPTS,
    METRIC_IN_FLIGHT, describe_metrics,
};
