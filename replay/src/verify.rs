//! `replay verify`: every room's Redis view against the fold of its log.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use eventlog::EventLog;
use events::RoomId;
use projectors::Folded;
use views::{Loaded, Views};

/// Folds the log and compares each room's view; prints each drift; exit code 1 on drift.
pub async fn verify(
    log: &EventLog,
    views: &Views,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let bar = crate::inspect::progress("folding the log");
    bar.set_length(log.last_seq().await?);
    let Folded { rooms, poisoned, .. } =
        projectors::fold_log(log, &mut |p| bar.set_position(p.commits)).await?;
    bar.finish_and_clear();
    let rooms: BTreeMap<RoomId, _> = rooms.into_iter().collect();
    let mut drifts = 0;
    let mut report = |room: &RoomId, problem: String| -> std::io::Result<()> {
        drifts += 1;
        if json {
            writeln!(out, "{}", serde_json::json!({"room": room, "drift": problem}))
        } else {
            writeln!(out, "{room}: {problem}")
        }
    };
    // A room the log cannot fold must have a parked view.
    for (room, reason) in &poisoned {
        if !matches!(views.load(room).await?, Loaded::Parked { .. }) {
            report(room, format!("not parked, but the log cannot be folded: {reason}"))?;
        }
    }
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
            // A closed room's view leaves Redis after a while (views are a cache).
            Loaded::Missing if expected.state.closed.is_some() => None,
            Loaded::Missing => Some("no view".to_owned()),
            Loaded::Unreadable { version } => {
                Some(format!("unreadable view (claims version {version})"))
            }
            Loaded::Parked { reason } => Some(format!("parked: {reason}")),
        };
        if let Some(problem) = problem {
            report(room, problem)?;
        }
    }
    if !json {
        let checked = rooms.len() + poisoned.len();
        writeln!(out, "{checked} rooms checked, {drifts} drifted")?;
    }
    Ok(if drifts == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
