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
    /// Every call.
    Any,
}

/// A published platform limit: `count` calls per `period`, counted per `scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateBudget {
    /// A stable name, used in limiter keys and configuration overrides (e.g. `send_per_chat`).
    pub name: &'static str,
    /// What the budget is counted per.
    pub scope: BudgetScope,
    /// Which calls it counts.
    pub operation: BudgetOperation,
    /// Calls allowed per period.
    pub count: u32,
    /// The period.
    pub period: Duration,
}

/// Everything the gateway needs to know about a platform before talking to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capabilities {
    /// Limits on a message's text; every one must hold.
    pub text_limits: Vec<TextLimit>,
    /// Limits on the text when it travels as an attachment's caption, if they differ.
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
    /// Whether credentials expire and `refresh_credentials` renews them.
    pub refreshable_credentials: bool,
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
