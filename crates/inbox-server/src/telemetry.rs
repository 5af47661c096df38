//! Logs and metrics: `tracing` to stderr as text or JSON (`INBOX_LOG`, `INBOX_LOG_FORMAT`), and
//! a Prometheus recorder whose text `/metrics` serves.

use std::sync::Arc;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global log subscriber. Safe to call once per process.
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if result.is_err() {
        eprintln!("logging was already initialised");
    }
}

/// Installs the Prometheus recorder and returns a renderer for `/metrics`.
///
/// # Errors
/// When a recorder is already installed.
pub fn init_metrics() -> anyhow::Result<Arc<dyn Fn() -> String + Send + Sync>> {
    let handle: PrometheusHandle = PrometheusBuilder::new().install_recorder()?;
    let upkeep = handle.clone();
    // Histograms are summarised lazily; run upkeep so memory stays bounded between scrapes.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(Arc::new(move || handle.render()))
}
