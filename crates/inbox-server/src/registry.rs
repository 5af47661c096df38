//! The adapter registry: the only place that names concrete platform adapters. Each adapter is
//! built from validated settings, with its base URL from configuration so the gateway can be
//! pointed at a fake platform in tests or a pinned API version in production.

use inbox_core::{PlatformRegistry, RateBudgets};
use inbox_platform_bluesky::{Bluesky, BlueskyConfig};
use inbox_platform_facebook::{Facebook, FacebookConfig};
use inbox_platform_instagram::{Instagram, InstagramConfig};
use inbox_platform_reddit::{Reddit, RedditConfig};
use inbox_platform_telegram::{Telegram, TelegramConfig};
use inbox_platform_whatsapp::{WhatsApp, WhatsAppConfig};
use inbox_platform_x::{X, XConfig};
use std::sync::Arc;

use crate::config::Settings;

/// Builds every configured adapter. `budgets` is where adapters report the platforms'
/// throttling (429s, rate-limit error codes, usage headers).
///
/// # Errors
/// An adapter's configuration error, naming the variable.
pub fn build(
    settings: &Settings,
    budgets: Arc<dyn RateBudgets>,
) -> anyhow::Result<PlatformRegistry> {
    let mut registry = PlatformRegistry::new();
    let telegram = TelegramConfig::builder(settings.telegram_api_base.as_str())
        .long_poll_timeout(settings.telegram_poll_timeout)
        .budgets(budgets.clone())
        .build()
        .map_err(|err| anyhow::anyhow!("invalid configuration: INBOX_TELEGRAM_API_BASE: {err}"))?;
    let telegram = Telegram::new(telegram)
        .map_err(|err| anyhow::anyhow!("cannot start the Telegram adapter: {err}"))?;
    registry.register(Arc::new(telegram));
    register_meta(&mut registry, settings, &budgets)?;
    register_social(&mut registry, settings, &budgets)?;
    Ok(registry)
}

/// X and Reddit (when their OAuth clients are configured: their tokens cannot be renewed
/// without one) and Bluesky (always: accounts bring their own app passwords). See
/// `config::social` for what each setting changes.
fn register_social(
    registry: &mut PlatformRegistry,
    settings: &Settings,
    budgets: &Arc<dyn RateBudgets>,
) -> anyhow::Result<()> {
    let invalid = |variable: &str, err: inbox_core::Error| {
        anyhow::anyhow!("invalid configuration: {variable}: {err}")
    };
    let start = |name: &str, err: inbox_core::Error| {
        anyhow::anyhow!("cannot start the {name} adapter: {err}")
    };
    match &settings.x {
        Some(x) => {
            let config = XConfig::builder(x.api_base.as_str(), x.client_id.as_str())
                .authorize_url(x.authorize_url.as_str())
                .client_secret(x.client_secret.clone())
                .consumer_secret(x.consumer_secret.clone())
                .budgets(budgets.clone())
                .build()
                .map_err(|err| invalid("INBOX_X_API_BASE", err))?;
            tracing::info!(
                inbound = if x.consumer_secret.is_some() {
                    "webhooks"
                } else {
                    "polling"
                },
                "X enabled"
            );
            registry.register(Arc::new(X::new(config).map_err(|e| start("X", e))?));
        }
        None => tracing::info!("X is off: set INBOX_X_CLIENT_ID to connect X accounts"),
    }
    match &settings.reddit {
        Some(reddit) => {
            let config =
                RedditConfig::builder(reddit.client_id.as_str(), reddit.user_agent.as_str())
                    .api_base(reddit.api_base.as_str())
                    .www_base(reddit.www_base.as_str())
                    .client_secret(reddit.client_secret.clone())
                    .budgets(budgets.clone())
                    .build()
                    .map_err(|err| invalid("INBOX_REDDIT_API_BASE", err))?;
            registry.register(Arc::new(
                Reddit::new(config).map_err(|e| start("Reddit", e))?,
            ));
        }
        None => tracing::info!(
            "Reddit is off: set INBOX_REDDIT_CLIENT_ID and INBOX_REDDIT_USER_AGENT to connect Reddit accounts"
        ),
    }
    let bluesky = BlueskyConfig::builder(settings.bluesky_service.as_str())
        .budgets(budgets.clone())
        .build()
        .map_err(|err| invalid("INBOX_BLUESKY_SERVICE", err))?;
    registry.register(Arc::new(
        Bluesky::new(bluesky).map_err(|e| start("Bluesky", e))?,
    ));
    Ok(())
}

/// Instagram, Facebook and WhatsApp. They are registered even without their app settings, so
/// accounts connect with credentials; what is missing is said once at start-up (webhooks
/// without a secret are refused as unverifiable, OAuth without an app answers a clear error).
fn register_meta(
    registry: &mut PlatformRegistry,
    settings: &Settings,
    budgets: &Arc<dyn RateBudgets>,
) -> anyhow::Result<()> {
    let meta = &settings.meta;
    let invalid = |variable: &str, err: inbox_core::Error| {
        anyhow::anyhow!("invalid configuration: {variable}: {err}")
    };
    if meta.app_secret.is_none() {
        tracing::warn!(
            "INBOX_META_APP_SECRET is not set: Facebook and WhatsApp webhooks are refused as unverifiable"
        );
    }
    if meta.app_secret.is_none() && meta.instagram_app_secret.is_none() {
        tracing::warn!(
            "neither INBOX_INSTAGRAM_APP_SECRET nor INBOX_META_APP_SECRET is set: Instagram webhooks are refused as unverifiable"
        );
    }
    if meta.verify_token.is_none() {
        tracing::warn!(
            "INBOX_META_VERIFY_TOKEN is not set: Meta webhook subscription handshakes are refused"
        );
    }
    let instagram = InstagramConfig::builder()
        .api_base(meta.instagram_api_base.as_str())
        .oauth_base(meta.instagram_oauth_base.as_str())
        .version(meta.graph_api_version.as_str())
        .app(
            meta.instagram_app_id.clone(),
            meta.instagram_app_secret.clone(),
        )
        .meta_app_secret(meta.app_secret.clone())
        .verify_token(meta.verify_token.clone())
        .refresh(inbox_core::RefreshPolicy {
            lead_time: meta.instagram_refresh_lead,
            min_age: meta.instagram_refresh_min_age,
        })
        .budgets(budgets.clone())
        .build()
        .map_err(|err| invalid("INBOX_INSTAGRAM_API_BASE", err))?;
    let facebook = FacebookConfig::builder()
        .graph_base(meta.graph_api_base.as_str())
        .oauth_base(meta.facebook_oauth_base.as_str())
        .version(meta.graph_api_version.as_str())
        .app(meta.app_id.clone(), meta.app_secret.clone())
        .verify_token(meta.verify_token.clone())
        .budgets(budgets.clone())
        .build()
        .map_err(|err| invalid("INBOX_GRAPH_API_BASE", err))?;
    let whatsapp = WhatsAppConfig::builder()
        .graph_base(meta.graph_api_base.as_str())
        .version(meta.graph_api_version.as_str())
        .app_secret(meta.app_secret.clone())
        .verify_token(meta.verify_token.clone())
        .budgets(budgets.clone())
        .build()
        .map_err(|err| invalid("INBOX_GRAPH_API_BASE", err))?;
    let start = |name: &str, err: inbox_core::Error| {
        anyhow::anyhow!("cannot start the {name} adapter: {err}")
    };
    registry.register(Arc::new(
        Instagram::new(instagram).map_err(|e| start("Instagram", e))?,
    ));
    registry.register(Arc::new(
        Facebook::new(facebook).map_err(|e| start("Facebook", e))?,
    ));
    registry.register(Arc::new(
        WhatsApp::new(whatsapp).map_err(|e| start("WhatsApp", e))?,
    ));
    Ok(())
}
