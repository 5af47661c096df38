//! Shared outbound HTTP for platform adapters: client construction, bounded retries honouring
//! `Retry-After`, and the mapping of exhausted retries onto the core error.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod metered;
mod retry;
mod retry_after;
mod send;

#[cfg(test)]
mod scripted;

pub use client::{ClientOptions, DEFAULT_USER_AGENT};
pub use metered::{Meter, UsageReader, send_metered};
pub use retry::{Attempt, AttemptContext, BackoffConfig, RetryConfig, RetryError, retry};
pub use retry_after::{header_number, parse_retry_after, retry_after};
pub use send::{
    HttpFailure, Snapshot, Transience, classify_status, classify_transport, send_with_retry,
    unavailable,
};
