//! Rate budgets at run time: the one interface through which everything that calls a platform
//! draws from the platform's budgets and feeds the platform's pushback back into them — the
//! API before a send, the pollers before a poll, the adapters when the platform throttles.
//!
//! It lives here, not in the limiter crate, so that adapters and the ingest side can use it
//! without depending on how budgets are stored (Redis shared by every replica, or in
//! process). The server wires the limiter-backed implementation; tests and tools may use
//! [`Unlimited`].
//!
//! # For adapter authors
//!
//! Report every throttling signal the platform gives, as soon as it is seen (before waiting
//! to retry), so other requests and other replicas stop calling:
//!
//! | platform signal | report |
//! |---|---|
//! | HTTP 429 with `Retry-After`; Telegram `parameters.retry_after` | [`Pushback::Exhausted`] for the call's budget |
//! | Meta error codes 4, 17, 32, 613, 80002/80006/80007; WhatsApp 130429, 131056 | [`Pushback::Exhausted`] with the usage header's time to regain access (or the backoff used) |
//! | X `x-rate-limit-remaining` / `x-rate-limit-reset`; Reddit `X-Ratelimit-Remaining` / `X-Ratelimit-Reset` | [`Pushback::Remaining`] on every answer |
//!
//! Reporting never fails and never blocks for long: a limiter that cannot record a report logs
//! it and carries on.

use std::{fmt::Debug, time::Duration};

use async_trait::async_trait;

use crate::{BudgetOperation, PlatformKind, Result};

/// One call about to be made to a platform, described by the identities platforms count by.
/// Which budgets apply follows from the platform's
/// [`rate_budgets`](crate::Capabilities::rate_budgets): those that count `operation`, for
/// every scope the call names (a budget per conversation does not apply to a call about no
/// conversation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetCall<'a> {
    /// The platform.
    pub platform: PlatformKind,
    /// What kind of call it is: `Send` for sends and conversation starts, `Read` for polls and
    /// lookups, `Any` for everything else (marking read).
    pub operation: BudgetOperation,
    /// The platform's id for the account (bot id, page or phone-number id, X user id): budgets
    /// follow the platform account, not the gateway's `acc_` id, which changes on reconnect.
    pub account: &'a str,
    /// The platform's id for the thread, where the call is about one.
    pub conversation: Option<&'a str>,
    /// The participant's platform id, where the call addresses one recipient.
    pub recipient: Option<&'a str>,
}

impl<'a> BudgetCall<'a> {
    /// A call of `operation` by `account`, about no thread or recipient in particular.
    pub fn new(platform: PlatformKind, operation: BudgetOperation, account: &'a str) -> Self {
        BudgetCall {
            platform,
            operation,
            account,
            conversation: None,
            recipient: None,
        }
    }

    /// The same call, in the thread `conversation`.
    pub fn in_conversation(mut self, conversation: &'a str) -> Self {
        self.conversation = Some(conversation);
        self
    }

    /// The same call, addressed to `recipient`.
    pub fn to_recipient(mut self, recipient: &'a str) -> Self {
        self.recipient = Some(recipient);
        self
    }
}

/// What a platform said about its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushback {
    /// Throttled: no call may succeed before `retry_after` has passed.
    Exhausted {
        /// When the platform will take calls again.
        retry_after: Duration,
    },
    /// A usage report: `remaining` calls are left until the platform's window resets in
    /// `reset_after`. The gateway then spaces calls so that no more than `remaining` go before
    /// the reset; with `remaining` 0 this is the same as [`Pushback::Exhausted`].
    Remaining {
        /// Calls left in the platform's window.
        remaining: u64,
        /// Time until the window resets.
        reset_after: Duration,
    },
}

/// Platform pushback on one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetReport<'a> {
    /// The call the platform answered.
    pub call: BudgetCall<'a>,
    /// The budget the signal is about, by its name in the capabilities (`send_per_chat`);
    /// `None` for every budget that counts the call.
    pub budget: Option<&'a str>,
    /// What the platform said.
    pub pushback: Pushback,
}

/// Draws from and feeds back into the platforms' rate budgets.
#[async_trait]
pub trait RateBudgets: Debug + Send + Sync + 'static {
    /// Charges one call against every budget that applies to it, before the platform is
    /// called.
    ///
    /// # Errors
    /// [`Error::RateLimited`](crate::Error::RateLimited) with the time until the call would
    /// be allowed when a budget is exhausted; the platform must not be called then.
    /// [`Error::Unavailable`](crate::Error::Unavailable) when no decision could be made at
    /// all (never "allowed" by default).
    async fn acquire(&self, call: &BudgetCall<'_>) -> Result<()>;

    /// Records platform pushback, so later calls wait until the platform's reset.
    async fn report(&self, report: &BudgetReport<'_>);
}

/// Budgets that allow every call and ignore reports: for tests and tools that run adapters
/// without a limiter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

#[async_trait]
impl RateBudgets for Unlimited {
    async fn acquire(&self, _call: &BudgetCall<'_>) -> Result<()> {
        Ok(())
    }

    async fn report(&self, _report: &BudgetReport<'_>) {}
}
