//! The one error type every layer speaks. Variants are semantic (what went wrong for the user),
//! not technical; `inbox-api/src/error.rs` is the only place that turns them into HTTP statuses
//! and SPEC.md's `code` strings. Adapters keep private error enums and convert into this one.

use std::time::Duration;

use crate::{PlatformKind, TextUnit};

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with the core error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, by what it means to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The resource does not exist, or belongs to another workspace.
    #[error("{resource} `{id}` was not found")]
    NotFound {
        /// What was looked up (`conversation`, `webhook endpoint`, …).
        resource: &'static str,
        /// The id as given.
        id: String,
    },

    /// A request field or parameter is invalid.
    #[error("{message}")]
    InvalidInput {
        /// The offending field or query parameter, by its name in the request.
        param: Option<String>,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// The request conflicts with the current state (e.g. the platform account is already
    /// connected to another workspace).
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
    },

    /// An `Idempotency-Key` was reused with a different request, or its first use is still in
    /// flight.
    #[error("{message}")]
    IdempotencyConflict {
        /// What happened.
        message: String,
    },

    /// The platform's messaging window is closed for this conversation.
    #[error("{message}")]
    MessagingWindowClosed {
        /// Which window and what would still be allowed.
        message: String,
    },

    /// The text is longer than the platform allows.
    #[error("the message is {actual} {} long; {platform} allows at most {limit}", unit.describe())]
    MessageTooLong {
        /// The platform.
        platform: PlatformKind,
        /// The limit.
        limit: usize,
        /// The unit the limit counts.
        unit: TextUnit,
        /// The text's length in that unit.
        actual: usize,
    },

    /// The content cannot be sent on this platform (an attachment kind it does not take, …).
    #[error("{message}")]
    UnsupportedContent {
        /// What is unsupported.
        message: String,
    },

    /// An inbound platform request failed verification (missing or wrong signature or secret).
    /// Nothing from it is stored.
    #[error("webhook verification failed: {message}")]
    WebhookVerification {
        /// Why, for the logs (never echoed to the caller in detail).
        message: String,
    },

    /// The platform has no such operation.
    #[error("{platform} does not support {operation}")]
    NotSupported {
        /// The platform.
        platform: PlatformKind,
        /// The operation, in words (`starting conversations`, `marking messages read`).
        operation: &'static str,
    },

    /// A budget is exhausted: the gateway's own (API key, platform budget) or, after retries,
    /// the platform's.
    #[error("rate limited; retry after {} s", retry_after.as_secs_f64().ceil())]
    RateLimited {
        /// When a retry may succeed.
        retry_after: Duration,
    },

    /// The account's credentials were revoked or expired for good.
    #[error("the {platform} account needs to be connected again: {message}")]
    ReauthRequired {
        /// The platform.
        platform: PlatformKind,
        /// The platform's explanation.
        message: String,
    },

    /// The platform refused the request for a reason that retrying will not fix.
    #[error("{platform} refused the request ({code}): {message}")]
    Platform {
        /// The platform.
        platform: PlatformKind,
        /// The platform's own error code, as text (`403`, `190/2018278`, …).
        code: String,
        /// The platform's own message.
        message: String,
    },

    /// The platform (or a dependency such as the database) is unavailable or throttling, and
    /// retries within the time allowed did not help.
    #[error("{message}")]
    Unavailable {
        /// What is unavailable.
        message: String,
        /// When a retry may succeed, if known.
        retry_after: Option<Duration>,
    },

    /// A bug or an unexpected failure; logged with the request id, never shown in detail.
    #[error("internal error: {message}")]
    Internal {
        /// What failed, for the logs.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// An `InvalidInput` naming the offending parameter.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            param: Some(param.into()),
            message: message.into(),
        }
    }

    /// A `NotFound`.
    pub fn not_found(resource: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            resource,
            id: id.into(),
        }
    }

    /// An `Internal` error wrapping a source.
    pub fn internal(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Internal {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An `Internal` error without a source.
    pub fn internal_msg(message: impl Into<String>) -> Self {
        Error::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::RateLimited { .. } | Error::Unavailable { .. })
    }
}
