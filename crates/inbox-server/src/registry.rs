//! The adapter registry: the only place that names concrete platform adapters. Each adapter is
//! built from validated settings, with its base URL from configuration so the gateway can be
//! pointed at a fake platform in tests or a pinned API version in production.

use inbox_core::PlatformRegistry;
use inbox_platform_telegram::{Telegram, TelegramConfig};
use std::sync::Arc;

use crate::config::Settings;

/// Builds every configured adapter.
///
/// # Errors
/// An adapter's configuration error, naming the variable.
pub fn build(settings: &Settings) -> anyhow::Result<PlatformRegistry> {
    let mut registry = PlatformRegistry::new();
    let telegram = TelegramConfig::builder(settings.telegram_api_base.as_str())
        .long_poll_timeout(settings.telegram_poll_timeout)
        .build()
        .map_err(|err| anyhow::anyhow!("invalid configuration: INBOX_TELEGRAM_API_BASE: {err}"))?;
    let telegram = Telegram::new(telegram)
        .map_err(|err| anyhow::anyhow!("cannot start the Telegram adapter: {err}"))?;
    registry.register(Arc::new(telegram));
    Ok(registry)
}
