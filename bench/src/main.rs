//! `bench`: Chanshare's benchmark harness (docs/benchmarks.md).
//!
//! Every scenario starts real servers on free loopback ports (nats-server, redis-server, s3s-fs
//! and `chanshare` role processes, through the `tests` harness), drives them with real
//! WebSockets and NATS clients, measures a baseline in the same run, prints a table and writes
//! JSON to `bench/results/<scenario>.json`. Targets are DESIGN §9's; a miss is reported, not
//! hidden.
//!
//! Build it in release next to the `chanshare` binary it runs: `./dev/bench` does.

// A command-line tool: its tables are its output.
#![allow(clippy::print_stdout)]

mod baseline;
mod chatters;
mod client;
mod cluster;
mod history;
mod report;
mod scenarios;
mod soak;
mod stack;
mod swarm;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "bench", about = "Chanshare's benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs scenarios (all of them when none is named) and reports each.
    Run {
        /// The scenarios, in order.
        #[arg(value_enum)]
        scenarios: Vec<Scenario>,
        /// Tiny sizes: checks that every scenario runs, measures nothing worth keeping.
        #[arg(long)]
        quick: bool,
        /// Where the JSON reports go.
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
    },
    /// Sockets churning for a long time (not in CI): do memory, files, consumers or Redis grow?
    Soak {
        /// How long.
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Churning sockets.
        #[arg(long, default_value_t = 2000)]
        sockets: usize,
        /// Rooms they churn over (one is replaced by a new one every sample).
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        /// Seconds between samples.
        #[arg(long, default_value_t = 60)]
        sample_secs: u64,
        /// Where the JSON report goes.
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
    },
    /// Members who chat in a room: the busy-room browser test's load (`tests/ui`).
    #[command(hide = true)]
    Chatters {
        /// The gateway, `host:port`.
        #[arg(long)]
        server: std::net::SocketAddr,
        /// The room.
        #[arg(long)]
        room: String,
        /// How many members join.
        #[arg(long, default_value_t = 200)]
        members: usize,
        /// Chat lines a second, over all members.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// How long they chat once all have joined.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// A client process of `scale` and `storm`: sockets steered over stdin/stdout (`swarm.rs`).
    #[command(hide = true)]
    Swarm,
    /// The baseline broadcast server `fanout` compares the gateway with (started by it).
    #[command(hide = true)]
    Broadcast {
        /// NATS to subscribe to.
        #[arg(long)]
        nats: String,
        /// Where to listen.
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

/// The scenarios, in the order `run` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    Connections,
    Fanout,
    Commands,
    Join,
    Replay,
    Content,
    Abuse,
    Accounts,
    Dms,
    Sizing,
    Rewatch,
    Bigroom,
    Scale,
    Storm,
}

/// Sizes are either the defaults or tiny (`--quick`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Size {
    pub(crate) quick: bool,
}

impl Size {
    /// `full` normally, `quick` with `--quick`.
    pub(crate) fn pick<T>(self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Chatters { server, room, members, rate, seconds } => {
            let load = chatters::Load { server, room, members, rate, seconds };
            runtime.block_on(chatters::run(load))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Soak { minutes, sockets, rooms, sample_secs, out } => {
            let soak = soak::Soak { minutes, sockets, rooms, sample_secs };
            let report = runtime.block_on(soak::run(soak))?;
            report.print();
            report.save(&out, Size { quick: false })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Swarm => {
            runtime.block_on(swarm::serve())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Broadcast { nats, listen } => {
            runtime.block_on(baseline::run(&nats, listen))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { scenarios, quick, out } => {
            let scenarios =
                if scenarios.is_empty() { Scenario::value_variants().to_vec() } else { scenarios };
            let size = Size { quick };
            let mut missed = 0;
            for scenario in scenarios {
                let report = runtime.block_on(scenarios::run(scenario, size))?;
                report.print();
                report.save(&out, size)?;
                missed += report.missed();
            }
            if missed > 0 {
                println!("{missed} target(s) missed: see docs/benchmarks.md for why");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
