//! `replay verify`: every room's Redis view against the fold of its log.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use eventlog::{EventLog, LogError};
use events::RoomId;
use futures::StreamExt;
use views::{Loaded, Projection, Views};

/// Folds the log and compares each room's view; prints each drift; exit code 1 on drift.
pub async fn verify(
    log: &EventLog,
    views: &Views,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let bar = crate::inspect::progress("folding the log");
    bar.set_length(log.last_seq().await?);
    let mut rooms: BTreeMap<RoomId, Projection> = BTreeMap::new();
    let mut commits = log.read_all(1).await?;
    while let Some(item) = commits.next().await {
        bar.inc(1);
        match item {
            Ok(stored) => rooms
                .entry(stored.commit.room.clone())
                .or_default()
                .apply(&stored.commit, stored.seq),
            Err(LogError::Decode { .. } | LogError::MissingHeader { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    bar.finish_and_clear();
    let mut drifts = 0;
    for (room, expected) in &rooms {
        let problem = match views.load(room).await? {
            Loaded::At(actual) if *actual == *expected => None,
            Loaded::At(actual) if actual.state.version != expected.state.version => Some(format!(
                "view at version {} but the log is at {}",
                actual.state.version, expected.state.version
            )),
            Loaded::At(_) => {
                Some(format!("view differs from the fold at version {}", expected.state.version))
            }
            Loaded::Missing => Some("no view".to_owned()),
            Loaded::Unreadable { version } => {
                Some(format!("unreadable view (claims version {version})"))
            }
            Loaded::Parked { reason } => Some(format!("parked: {reason}")),
        };
        if let Some(problem) = problem {
            drifts += 1;
            if json {
                writeln!(out, "{}", serde_json::json!({"room": room, "drift": problem}))?;
            } else {
                writeln!(out, "{room}: {problem}")?;
            }
        }
    }
    if !json {
        writeln!(out, "{} rooms checked, {drifts} drifted", rooms.len())?;
    }
    Ok(if drifts == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
