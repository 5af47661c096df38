//! What a platform can do and what it allows: text limits, messaging windows, attachment kinds,
//! inbound modes and rate budgets. The gateway enforces these *before* calling a platform, so a
//! request that would fail there fails fast here with a precise error.

use std::time::Duration;

use serde::Serialize;
use unicode_segmentation::UnicodeSegmentation;

use crate::{AttachmentKind, Timestamp};

/// How a platform counts the length of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextUnit {
    /// Unicode scalar values (Rust `char`s).
    Chars,
    /// UTF-16 code units (Telegram counts this way, as JavaScript does).
    Utf16,
    /// UTF-8 bytes.
    Bytes,
    /// Extended grapheme clusters (what a reader sees as one character).
    Graphemes,
}

impl TextUnit {
    /// The length of `text` in this unit.
    pub fn measure(self, text: &str) -> usize {
        match self {
            TextUnit::Chars => text.chars().count(),
            TextUnit::Utf16 => text.encode_utf16().count(),
            TextUnit::Bytes => text.len(),
            TextUnit::Graphemes => text.graphemes(true).count(),
        }
    }

    /// A word for messages to users.
    pub fn describe(self) -> &'static str {
        match self {
            TextUnit::Chars => "characters",
            TextUnit::Utf16 => "UTF-16 code units",
            TextUnit::Bytes => "UTF-8 bytes",
            TextUnit::Graphemes => "graphemes",
        }
    }
}

/// One maximum length. A platform may have several (Bluesky: graphemes *and* bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TextLimit {
    /// The largest allowed length.
    pub max: usize,
    /// The unit `max` is counted in.
    pub unit: TextUnit,
}

/// A text longer than a platform allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextTooLong {
    /// The limit that was exceeded.
    pub limit: TextLimit,
    /// The text's length in the limit's unit.
    pub actual: usize,
}

impl TextLimit {
    /// Checks one text against this limit.
    pub fn check(self, text: &str) -> Result<(), TextTooLong> {
        let actual = self.unit.measure(text);
        if actual > self.max {
            Err(TextTooLong {
                limit: self,
                actual,
            })
        } else {
            Ok(())
        }
    }

    /// Checks a text against every limit in `limits`, reporting the first one exceeded.
    pub fn check_all(limits: &[TextLimit], text: &str) -> Result<(), TextTooLong> {
        limits.iter().try_for_each(|limit| limit.check(text))
    }
}

/// A platform's rule on when the business may write free-form messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum WindowRule {
    /// Messages may be sent at any time.
    None,
    /// Free-form messages only within `standard` of the participant's last message.
    Window {
        /// The standard window (24 h on Meta platforms).
        standard: Duration,
        /// A longer window available with the `HUMAN_AGENT` tag (7 days on Instagram and
        /// Facebook), if the platform has one.
        human_agent: Option<Duration>,
        /// Whether a template may be sent outside the window (WhatsApp).
        templates_outside: bool,
    },
}

impl WindowRule {
    /// When the standard window closes for a conversation whose participant last wrote at
    /// `last_inbound_at`; `None` where the platform has no window or nobody has written.
    pub fn expires_at(self, last_inbound_at: Option<Timestamp>) -> Option<Timestamp> {
        match (self, last_inbound_at) {
            (WindowRule::Window { standard, .. }, Some(at)) => Some(at + standard),
            _ => None,
        }
    }
}

/// How inbound messages reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundMode {
    /// The platform pushes to `/webhooks/{platform}/{accountId}`, one URL per account, which the
    /// gateway registers itself (Telegram `setWebhook`).
    WebhookPerAccount,
    /// The platform pushes every account of one app to `/webhooks/{platform}`; events are routed
    /// by the platform account id inside the payload (Meta, X).
    WebhookPerApp,
    /// The gateway polls the platform from a persisted cursor.
    Polling,
}

/// What a rate budget is counted per, mirroring how the platform counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// One budget per connected account (Instagram token, X user, Telegram bot).
    Account,
    /// One budget per conversation of an account (Telegram: per chat).
    Conversation,
    /// One budget per recipient of an account (WhatsApp pair rate).
    Recipient,
    /// One budget shared by every account of one OAuth client (Reddit).
    App,
}

/// Which calls a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetOperation {
    /// Sending messages.
    Send,
    /// Reading (polling, profile lookups).
    Read,
    /// Every call. As the operation of a *call* (see [`BudgetCall`](crate::BudgetCall)): one
    /// that is neither a send nor a read, such as marking a thread read, which only `Any`
    /// budgets count.
    Any,
}

/// A published platform limit: at most `count` calls in any window of `period`, counted per
/// `scope`, of which up to `burst` may go at once.
///
/// The gateway enforces it with GCRA so that no window of `period` ever sees more than
/// `count` calls: with `burst` 1 the calls are spaced evenly (`period / count` apart), and a
/// larger `burst` lets that many go back to back at the price of a slightly lower sustained
/// rate (`(count − burst + 1) / period`). Operators can override any budget
/// (`INBOX_RATE_BUDGETS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateBudget {
    /// A stable name, used in limiter keys and configuration overrides (e.g. `send_per_chat`).
    pub name: &'static str,
    /// What the budget is counted per.
    pub scope: BudgetScope,
    /// Which calls it counts.
    pub operation: BudgetOperation,
    /// Calls allowed in any window of `period`.
    pub count: u32,
    /// The window.
    pub period: Duration,
    /// How many calls may go back to back, 1..=`count`.
    pub burst: u32,
}

impl RateBudget {
    /// A budget of `count` calls per `period`, spaced evenly (`burst` 1).
    pub const fn new(
        name: &'static str,
        scope: BudgetScope,
        operation: BudgetOperation,
        count: u32,
        period: Duration,
    ) -> Self {
        RateBudget {
            name,
            scope,
            operation,
            count,
            period,
            burst: 1,
        }
    }

    /// The same budget with another burst.
    pub const fn with_burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// Whether this budget counts a call of `operation`: budgets of the same operation and
    /// `Any` budgets count every call.
    pub fn counts(&self, operation: BudgetOperation) -> bool {
        self.operation == BudgetOperation::Any || self.operation == operation
    }
}

/// When the gateway renews an account's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RefreshPolicy {
    /// Renew this long before the credentials expire (X: minutes before a 2 h token lapses;
    /// Instagram: weeks before a 60-day token does).
    pub lead_time: Duration,
    /// Never renew credentials younger than this (Instagram refuses to refresh tokens less
    /// than 24 h old).
    pub min_age: Duration,
}

impl RefreshPolicy {
    /// When credentials obtained at `refreshed_at` and expiring at `expires_at` are due for
    /// renewal: `lead_time` before expiry, but not before they are `min_age` old.
    pub fn due_at(self, refreshed_at: Timestamp, expires_at: Timestamp) -> Timestamp {
        (expires_at - self.lead_time).max(refreshed_at + self.min_age)
    }
}

impl Capabilities {
    /// When credentials obtained at `refreshed_at` that expire at `expires_at` are due for
    /// renewal under this platform's policy; `None` when they do not expire or the platform
    /// cannot renew them.
    pub fn refresh_due(
        &self,
        refreshed_at: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Option<Timestamp> {
        Some(self.credential_refresh?.due_at(refreshed_at, expires_at?))
    }
}

/// How a platform's OAuth connect flow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OAuthFlow {
    /// Whether the authorization request carries a PKCE `code_challenge` (S256) and the code
    /// exchange its `code_verifier` (X).
    pub pkce: bool,
}

/// Everything the gateway needs to know about a platform before talking to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capabilities {
    /// Limits on a message's text; every one must hold.
    pub text_limits: Vec<TextLimit>,
    /// Limits on the text when it travels as an attachment's caption, if they differ. A limit
    /// of 0 means the platform takes no text with an attachment (Instagram and Messenger send
    /// text and attachments as separate messages), so the gateway refuses the combination.
    pub caption_limits: Option<Vec<TextLimit>>,
    /// The messaging-window rule.
    pub window: WindowRule,
    /// Attachment kinds `send` accepts; empty when the platform takes text only.
    pub outbound_attachments: Vec<AttachmentKind>,
    /// How many attachments one send may carry.
    pub max_outbound_attachments: usize,
    /// Inbound modes the adapter supports, preferred first.
    pub inbound_modes: Vec<InboundMode>,
    /// Whether `send` honours a reply target (`replyTo`).
    pub reply_threading: bool,
    /// Whether `mark_read` does something on the platform.
    pub mark_read: bool,
    /// Whether `start_conversation` is possible.
    pub start_conversation: bool,
    /// Whether `send` accepts `messageTag`.
    pub message_tags: bool,
    /// Whether `send` accepts `template`.
    pub templates: bool,
    /// How expiring credentials are renewed by `refresh_credentials`; `None` where they do not
    /// expire (Telegram bot tokens, WhatsApp system-user tokens, Facebook page tokens).
    pub credential_refresh: Option<RefreshPolicy>,
    /// The OAuth connect flow (`POST /connect/{platform}`), where the platform has one.
    pub oauth: Option<OAuthFlow>,
    /// Whether `fetch_participant` looks up names the inbound payloads lack (Meta webhooks
    /// carry only ids).
    pub profile_lookup: bool,
    /// Published rate budgets, enforced before each call.
    pub rate_budgets: Vec<RateBudget>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_count_differently() {
        let text = "héllo 👋🏽";
        assert_eq!(TextUnit::Chars.measure(text), 8);
        assert_eq!(TextUnit::Utf16.measure(text), 10);
        assert_eq!(TextUnit::Bytes.measure(text), 15);
        assert_eq!(TextUnit::Graphemes.measure(text), 7);
    }

    #[test]
    fn check_all_reports_the_first_exceeded_limit() {
        let limits = [
            TextLimit {
                max: 5,
                unit: TextUnit::Graphemes,
            },
            TextLimit {
                max: 8,
                unit: TextUnit::Bytes,
            },
        ];
        assert!(TextLimit::check_all(&limits, "hello").is_ok());
        let err = TextLimit::check_all(&limits, "héllo!").unwrap_err();
        assert_eq!(err.limit.unit, TextUnit::Graphemes);
        let err = TextLimit::check_all(&limits, "ééééé").unwrap_err();
        assert_eq!((err.limit.unit, err.actual), (TextUnit::Bytes, 10));
    }

    #[test]
    fn refresh_is_due_before_expiry_but_never_too_young() {
        let policy = RefreshPolicy {
            lead_time: Duration::from_secs(7 * 86_400),
            min_age: Duration::from_secs(86_400),
        };
        let issued = Timestamp::from_unix_seconds(0);
        let sixty_days = Timestamp::from_unix_seconds(60 * 86_400);
        assert_eq!(
            policy.due_at(issued, sixty_days),
            Timestamp::from_unix_seconds(53 * 86_400)
        );
        // A token that expires in 2 days but is brand new waits until it is a day old.
        let soon = Timestamp::from_unix_seconds(2 * 86_400);
        assert_eq!(
            policy.due_at(issued, soon),
            Timestamp::from_unix_seconds(86_400)
        );
    }

    #[test]
    fn window_expiry_follows_last_inbound() {
        let rule = WindowRule::Window {
            standard: Duration::from_secs(86_400),
            human_agent: None,
            templates_outside: false,
        };
        let at = Timestamp::from_unix_seconds(1_000);
        assert_eq!(
            rule.expires_at(Some(at)),
            Some(Timestamp::from_unix_seconds(87_400))
        );
        assert_eq!(rule.expires_at(None), None);
        assert_eq!(WindowRule::None.expires_at(Some(at)), None);
    }
}
