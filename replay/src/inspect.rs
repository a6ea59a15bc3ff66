//! Reading rooms: summaries, commits, states at a point, live commits, diffs.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use eventlog::{EventLog, Stored};
use events::{Event, RoomId, RoomState};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::{Format, format_time};

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(message: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} {bar:30} {pos}/{len} commits {per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar
}

/// One room's summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RoomSummary {
    /// The room.
    pub room: String,
    /// Commits in the log.
    pub commits: u64,
    /// Its last version.
    pub version: u64,
    /// Time of its first commit.
    pub first: String,
    /// Time of its last commit.
    pub last: String,
    /// Whether it is closed.
    pub closed: bool,
}

/// `replay rooms`.
pub async fn rooms(log: &EventLog, json: bool, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let bar = progress("reading the log");
    bar.set_length(log.last_seq().await?);
    let mut rooms: BTreeMap<String, RoomSummary> = BTreeMap::new();
    let mut commits = log.read_all(1).await?;
    while let Some(stored) = commits.next().await {
        bar.inc(1);
        let Ok(stored) = stored else { continue };
        let commit = &stored.commit;
        let entry = rooms.entry(commit.room.to_string()).or_insert_with(|| RoomSummary {
            room: commit.room.to_string(),
            first: format_time(commit.at_ms),
            ..RoomSummary::default()
        });
        entry.commits += 1;
        entry.version = commit.version;
        entry.last = format_time(commit.at_ms);
        entry.closed |= commit.events.iter().any(|e| matches!(e, Event::RoomClosed { .. }));
    }
    bar.finish_and_clear();
    if !json {
        writeln!(
            out,
            "{:<40} {:>8} {:>8}  {:<25} {:<25} closed",
            "room", "commits", "version", "first", "last"
        )?;
    }
    for room in rooms.values() {
        if json {
            writeln!(out, "{}", serde_json::to_string(room)?)?;
        } else {
            writeln!(
                out,
                "{:<40} {:>8} {:>8}  {:<25} {:<25} {}",
                room.room, room.commits, room.version, room.first, room.last, room.closed
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON form of a stored commit (the API's commit shape plus room and stream sequence),
/// deleted chat shown as deleted.
pub fn commit_json(stored: &Stored, deleted: &impl Fn(&str) -> bool) -> Value {
    let mut value = serde_json::to_value(&stored.commit).unwrap_or_default();
    value["seq"] = json!(stored.seq);
    events::json::redact_commit(&mut value, deleted);
    value
}

fn pretty(stored: &Stored, deleted: &impl Fn(&str) -> bool) -> String {
    let commit = &stored.commit;
    let events: Vec<String> = commit
        .events
        .iter()
        .map(|event| {
            let mut fields = events::json::to_value(event).unwrap_or_default();
            events::json::redact_event(&mut fields, deleted);
            if let Some(object) = fields.as_object_mut() {
                object.remove("type");
            }
            format!("{} {}", event.name(), fields)
        })
        .collect();
    format!(
        "v{} seq {} {} {} {}",
        commit.version,
        stored.seq,
        format_time(commit.at_ms),
        commit.actor,
        events.join("; ")
    )
}

fn print(
    stored: &Stored,
    format: Format,
    deleted: &impl Fn(&str) -> bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    match format {
        Format::Json => writeln!(out, "{}", commit_json(stored, deleted)),
        Format::Pretty => writeln!(out, "{}", pretty(stored, deleted)),
    }
}

/// The room's version: its head, or its snapshot's when every commit has expired.
async fn require_room(log: &EventLog, room: &RoomId) -> anyhow::Result<u64> {
    if let Some(head) = log.head(room).await? {
        return Ok(head.version);
    }
    match log.snapshot(room).await? {
        Some(snapshot) => Ok(snapshot.state.version),
        None => anyhow::bail!("room {room} has no commits in the log"),
    }
}

/// `replay events`.
pub async fn events(
    log: &EventLog,
    room: &RoomId,
    from: Option<u64>,
    to: Option<u64>,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    require_room(log, room).await?;
    // The room now knows which of its messages were deleted (after any version printed).
    let now = fold(log, room, At::Now).await?;
    let deleted: std::collections::HashSet<&str> =
        now.deleted.iter().map(events::MessageId::as_str).collect();
    let deleted = |id: &str| deleted.contains(id);
    let after = from.unwrap_or(1).saturating_sub(1);
    let mut commits = log.read(room, after).await?;
    while let Some(stored) = commits.next().await {
        let stored = stored.context("unreadable commit")?;
        if to.is_some_and(|to| stored.commit.version > to) {
            break;
        }
        print(&stored, format, &deleted, out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where to stop folding.
#[derive(Debug, Clone, Copy)]
pub enum At {
    /// After this version.
    Version(u64),
    /// At this time (ms since the epoch): every commit at or before it.
    Time(u64),
    /// Everything.
    Now,
}

/// The room folded up to `at`.
pub async fn fold(log: &EventLog, room: &RoomId, at: At) -> anyhow::Result<RoomState> {
    let head = require_room(log, room).await?;
    if let At::Version(version) = at {
        anyhow::ensure!(version <= head, "room {room} is at version {head}, not {version}");
    }
    let state = log
        .fold_while(room, |version, at_ms| match at {
            At::Version(upto) => version <= upto,
            At::Time(ms) => at_ms <= ms,
            At::Now => true,
        })
        .await
        .context("unreadable commit")?;
    Ok(state)
}

/// `replay state`.
pub async fn state(
    log: &EventLog,
    room: &RoomId,
    at: At,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let state = fold(log, room, at).await?;
    writeln!(out, "{}", serde_json::to_string(&state.full_view())?)?;
    Ok(ExitCode::SUCCESS)
}

/// `replay follow`: until Ctrl-C.
pub async fn follow(
    log: &EventLog,
    room: &RoomId,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let head = require_room(log, room).await?;
    let mut commits = log.follow(room, head).await?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            next = commits.next() => match next {
                // Live: a deletion comes after the posting it deletes, as on the room socket.
                Some(stored) => print(&stored.context("unreadable commit")?, format, &|_| false, out)?,
                None => return Ok(ExitCode::SUCCESS),
            },
        }
    }
}

/// `replay diff`: the changed JSON paths between two versions.
pub async fn diff(
    log: &EventLog,
    room: &RoomId,
    from: u64,
    to: u64,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let before = serde_json::to_value(fold(log, room, At::Version(from)).await?.full_view())?;
    let after = serde_json::to_value(fold(log, room, At::Version(to)).await?.full_view())?;
    let mut changes = Vec::new();
    changed("", &before, &after, &mut changes);
    for (path, from, to) in changes {
        writeln!(out, "{}", json!({"path": path, "from": from, "to": to}))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Collects the paths where `a` and `b` differ (objects by key, arrays by index).
pub fn changed(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, Value, Value)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                changed(
                    &format!("{path}/{key}"),
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                changed(
                    &format!("{path}/{i}"),
                    x.get(i).unwrap_or(&Value::Null),
                    y.get(i).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push((path.to_owned(), a.clone(), b.clone())),
        _ => {}
    }
}
