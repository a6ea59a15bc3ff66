//! `chanshare replay …`: the log made readable, for developers debugging a room and analysts
//! consuming the event archive.
//!
//! Everything reads the log through `eventlog` (ARCHITECTURE.md invariant 2 has a twin: replay
//! never writes room events). Output goes to stdout (JSON lines where a script would want them);
//! progress bars go to stderr and only on a terminal; Ctrl-C stops cleanly.
//!
//! # Layout
//! - [`inspect`]: rooms, events, state at a point, follow, diff.
//! - [`verify`]: the Redis views against the fold of the log.
//! - [`archive`]: the incremental Parquet / NDJSON export.
//! - [`accounts`]: the accounts and their sessions (never a hash or a token).

pub mod accounts;
pub mod archive;
pub mod inspect;
mod redact;
pub mod verify;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use eventlog::EventLog;
use events::RoomId;
use views::Views;

/// How commits are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// One readable line per commit.
    Pretty,
}

/// The replay subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every room in the log: commits, first and last time, version, closed or not.
    Rooms {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A room's decoded commits, one per line.
    Events {
        /// The room.
        room: String,
        /// The first version to print.
        #[arg(long)]
        from: Option<u64>,
        /// The last version to print.
        #[arg(long)]
        to: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// The room's state (the API's JSON) at a version or a time; by default now.
    State {
        /// The version to fold up to.
        #[arg(long, conflicts_with = "at_time")]
        at: Option<u64>,
        /// The time (RFC 3339) to fold up to.
        #[arg(long)]
        at_time: Option<String>,
        /// The room.
        room: String,
    },
    /// Prints a room's commits as they are appended, until Ctrl-C.
    Follow {
        /// The room.
        room: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// What changed in a room's state between two versions (JSON lines: path, from, to).
    Diff {
        /// The room.
        room: String,
        /// The earlier version.
        #[arg(long)]
        from: u64,
        /// The later version.
        #[arg(long)]
        to: u64,
    },
    /// Folds every room from the log and compares it with the Redis views; exits 1 on drift.
    Verify {
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Rebuilds every Redis view from the log (the projectors' code path).
    Rebuild,
    /// Every account: username, id, when registered, sessions active and revoked. Never a
    /// password hash or a token.
    Accounts {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Exports the events to an archive for analysts; incremental.
    Export {
        /// A directory, or `s3://bucket/prefix`.
        #[arg(long)]
        to: String,
        /// File format.
        #[arg(long, value_enum, default_value_t = archive::ArchiveFormat::Parquet)]
        format: archive::ArchiveFormat,
        /// Only events at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What the commands need.
#[derive(Debug)]
pub struct Context {
    /// The room log.
    pub log: EventLog,
    /// The Redis views (verify, rebuild).
    pub views: Option<Views>,
    /// The S3 endpoint for `s3://` export targets.
    pub s3_endpoint: Option<String>,
    /// The account stream and session bucket (`accounts`).
    pub accounts: Option<::accounts::Store>,
}

/// Runs one subcommand; the exit code says whether it found a problem.
pub async fn run(command: Command, context: Context) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = match command {
        Command::Rooms { json } => inspect::rooms(&context.log, json, &mut out).await?,
        Command::Events { room, from, to, format } => {
            inspect::events(&context.log, &room_id(&room)?, from, to, format, &mut out).await?
        }
        Command::State { room, at, at_time } => {
            let at = match (at, at_time) {
                (Some(version), _) => inspect::At::Version(version),
                (None, Some(time)) => inspect::At::Time(parse_time(&time)?),
                (None, None) => inspect::At::Now,
            };
            inspect::state(&context.log, &room_id(&room)?, at, &mut out).await?
        }
        Command::Follow { room, format } => {
            drop(out);
            let mut out = std::io::LineWriter::new(std::io::stdout().lock());
            return inspect::follow(&context.log, &room_id(&room)?, format, &mut out).await;
        }
        Command::Diff { room, from, to } => {
            inspect::diff(&context.log, &room_id(&room)?, from, to, &mut out).await?
        }
        Command::Verify { json } => {
            let views = context.views.as_ref().context("verify needs Redis")?;
            verify::verify(&context.log, views, json, &mut out).await?
        }
        Command::Rebuild => {
            let views = context.views.as_ref().context("rebuild needs Redis")?;
            let bar = inspect::progress("rebuilding views");
            let rebuilt = projectors::rebuild(&context.log, views, true, |p| {
                bar.set_length(p.last_seq);
                bar.set_position(p.commits);
            })
            .await
            .context("rebuild failed")?;
            bar.finish_and_clear();
            writeln!(out, "rebuilt {} rooms from {} commits", rebuilt.rooms, rebuilt.commits)?;
            for (room, reason) in &rebuilt.parked {
                writeln!(out, "parked {room}: {reason}")?;
            }
            ExitCode::SUCCESS
        }
        Command::Accounts { json } => {
            let store = context.accounts.as_ref().context("accounts need the account stream")?;
            accounts::accounts(store, json, &mut out).await?
        }
        Command::Export { to, format, since, json } => {
            let since = since.as_deref().map(parse_time).transpose()?;
            let target = archive::Target::open(&to, context.s3_endpoint.as_deref())?;
            let report = archive::export(&context.log, &target, format, since).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&report)?)?;
            } else {
                writeln!(
                    out,
                    "exported {} events of {} commits into {} files (log up to stream sequence {})",
                    report.rows, report.commits, report.files, report.last_seq
                )?;
                if let Some((from, to)) = report.expired {
                    writeln!(
                        out,
                        "warning: stream sequences {from} to {to} expired before they were \
                         exported; the archive has a hole there (export more often than \
                         CHANSHARE_STREAM_MAX_AGE_SECS)"
                    )?;
                }
            }
            ExitCode::SUCCESS
        }
    };
    out.flush()?;
    Ok(code)
}

fn room_id(room: &str) -> anyhow::Result<RoomId> {
    RoomId::new(room).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Milliseconds since the Unix epoch of an RFC 3339 time.
pub fn parse_time(text: &str) -> anyhow::Result<u64> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("not an RFC 3339 time: {text:?}"))?;
    u64::try_from(time.unix_timestamp_nanos() / 1_000_000).context("time before 1970")
}

/// RFC 3339 of milliseconds since the Unix epoch.
pub fn format_time(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}
