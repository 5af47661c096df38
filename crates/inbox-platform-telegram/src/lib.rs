//! Telegram Bot API adapter.
