//! `chanshare`: one binary, a subcommand per role (DESIGN §1, pinned).
//!
//! Each role is a library's `run(listener, shutdown)`; this file only parses the command line,
//! sets up logging and hands over.

mod config;
mod logging;
mod roles;
mod serve;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

use crate::config::{CommandsConfig, Config, GatewayConfig};
use crate::serve::Roles;

/// Watch parties from 4chan threads or media URLs, event-sourced on NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "chanshare", version, about)]
struct Cli {
    /// Log format: human-readable `text`, or `json` lines for production.
    #[arg(long, global = true, env = "CHANSHARE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// More log detail, once per step: the servers log `info` (`-v` debug, `-vv` trace),
    /// `replay` only warnings (`-v` info, `-vv` debug). `RUST_LOG`, when set, decides instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every role in one process: the default for a single machine.
    Serve {
        #[command(flatten)]
        config: Config,
        #[command(flatten)]
        commands: CommandsConfig,
        #[command(flatten)]
        gateway: GatewayConfig,
    },
    /// Runs the write side: decides commands, provisions rooms, reaps presence.
    Commands {
        #[command(flatten)]
        config: Config,
        #[command(flatten)]
        commands: CommandsConfig,
    },
    /// Runs the read side: keeps the Redis views equal to the fold of the log.
    Projectors {
        #[command(flatten)]
        config: Config,
    },
    /// Runs the content service: thread resolver, thread watcher and the /media cache.
    Content {
        #[command(flatten)]
        config: Config,
    },
    /// Reads the log: dump, state at a point, follow, diff, verify and rebuild the views, export.
    Replay {
        #[command(flatten)]
        config: Config,
        #[command(subcommand)]
        command: replay::Command,
    },
    /// Runs the gateway: the HTTP API and the room WebSocket.
    Gateway {
        #[command(flatten)]
        config: Config,
        #[command(flatten)]
        gateway: GatewayConfig,
    },
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    // A CLI is quiet unless asked; a server says what it does.
    let quiet = matches!(cli.command, Command::Replay { .. });
    let level = logging::level(cli.verbose.saturating_add(if quiet { 1 } else { 2 }));
    let _logging = logging::init(cli.log_format, level)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the tokio runtime")?;
    runtime.block_on(async {
        let roles = match cli.command {
            Command::Replay { config, command } => return replay(config, command).await,
            other => other,
        };
        let done = match roles {
            Command::Serve { config, commands, gateway } => {
                let roles = Roles {
                    commands: Some(commands),
                    projectors: true,
                    content: true,
                    gateway: Some(gateway),
                };
                serve::run(roles, config, shutdown_signal()).await
            }
            Command::Commands { config, commands } => {
                let roles = Roles {
                    commands: Some(commands),
                    projectors: false,
                    content: false,
                    gateway: None,
                };
                serve::run(roles, config, shutdown_signal()).await
            }
            Command::Projectors { config } => {
                let roles =
                    Roles { commands: None, projectors: true, content: false, gateway: None };
                serve::run(roles, config, shutdown_signal()).await
            }
            Command::Gateway { config, gateway } => {
                let roles = Roles {
                    commands: None,
                    projectors: false,
                    content: false,
                    gateway: Some(gateway),
                };
                serve::run(roles, config, shutdown_signal()).await
            }
            Command::Content { config } => {
                let roles =
                    Roles { commands: None, projectors: false, content: true, gateway: None };
                serve::run(roles, config, shutdown_signal()).await
            }
            Command::Replay { .. } => Ok(()),
        };
        done.map(|()| std::process::ExitCode::SUCCESS)
    })
}

/// `chanshare replay …`: read-only over the log (and the views, for verify and rebuild).
async fn replay(
    config: Config,
    command: replay::Command,
) -> anyhow::Result<std::process::ExitCode> {
    let client = roles::nats_now(&config).await?;
    let log = eventlog::EventLog::open(client)
        .await
        .with_context(|| format!("cannot open the room stream on {}", config.nats_url))?;
    let views = match command {
        replay::Command::Verify { .. } | replay::Command::Rebuild => {
            Some(views::Views::new(roles::redis(&config).await?))
        }
        _ => None,
    };
    let context = replay::Context { log, views, s3_endpoint: config.s3_endpoint.clone() };
    replay::run(command, context).await
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for sigterm");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
