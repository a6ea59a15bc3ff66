//! `chanshare`: one binary, a subcommand per role (DESIGN §1, pinned).
//!
//! This file only parses the command line, sets up logging and hands over to the `stack` crate,
//! which composes the roles.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use stack::config::LogArgs;
use stack::logging;
use stack::{CommandsConfig, Config, GatewayConfig, Roles};

/// Watch parties from 4chan threads or media URLs, event-sourced on NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "chanshare", version, about)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,

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
    let level = logging::level(cli.log.verbose.saturating_add(if quiet { 1 } else { 2 }));
    let _logging = logging::init(cli.log.log_format, level)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the tokio runtime")?;
    let none = Roles { commands: None, projectors: false, content: false, gateway: None };
    let (roles, config) = match cli.command {
        Command::Replay { config, command } => {
            return runtime.block_on(stack::replay::run(config, command));
        }
        Command::Serve { config, commands, gateway } => {
            let all = Roles { commands: Some(commands), projectors: true, content: true, ..none };
            (Roles { gateway: Some(gateway), ..all }, config)
        }
        Command::Commands { config, commands } => {
            (Roles { commands: Some(commands), ..none }, config)
        }
        Command::Projectors { config } => (Roles { projectors: true, ..none }, config),
        Command::Content { config } => (Roles { content: true, ..none }, config),
        Command::Gateway { config, gateway } => (Roles { gateway: Some(gateway), ..none }, config),
    };
    runtime.block_on(stack::run(roles, config, stack::shutdown_signal()))?;
    Ok(std::process::ExitCode::SUCCESS)
}
