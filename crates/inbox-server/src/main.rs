//! `inboxgw`: the unified inbox gateway. `serve` runs the API, the inbound endpoints and the
//! workers; `migrate`, `api-key create` and `openapi` are the operator's tools.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

mod config;
mod housekeeping;
mod ratelimit;
mod registry;
mod serve;
mod telemetry;

/// The unified inbox gateway: one API for DMs on Instagram, Facebook, WhatsApp, X, Reddit,
/// Bluesky and Telegram.
#[derive(Debug, Parser)]
#[command(name = "inboxgw", version)]
struct Cli {
    /// A TOML file mirroring the environment variables (keys without `INBOX_`, lower case).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate the database, then serve the API, the inbound endpoints and the workers.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Print the OpenAPI document (what openapi/openapi.json holds).
    Openapi,
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create a key for a workspace (created if new) and print it once.
    Create {
        /// The workspace's name.
        #[arg(long)]
        workspace: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        print!("{}", inbox_api::openapi_json());
        return ExitCode::SUCCESS;
    }
    let settings = match config::load(cli.config) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("inboxgw: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(&settings.log, settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("inboxgw: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve::serve(settings).await,
            Command::Migrate => serve::migrate(&settings).await,
            Command::ApiKey(ApiKeyCommand::Create { workspace }) => {
                serve::create_api_key(&settings, &workspace).await
            }
            Command::Openapi => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("inboxgw: {err:#}");
            ExitCode::FAILURE
        }
    }
}
