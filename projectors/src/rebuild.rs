//! Rebuilding every view from the log.

use std::collections::HashMap;

use eventlog::{EventLog, LogError};
use events::RoomId;
use futures::StreamExt;
use tracing::warn;
use views::{Expect, Projection, Views, Write};

use crate::apply::ApplyError;

/// Progress of a rebuild, reported as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Commits folded so far.
    pub commits: u64,
    /// The stream sequence the rebuild reads up to.
    pub last_seq: u64,
    /// Rooms written so far.
    pub rooms_written: u64,
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Commits folded.
    pub commits: u64,
    /// Rooms written.
    pub rooms: u64,
    /// Rooms parked because of a poison commit, with the reason.
    pub parked: Vec<(RoomId, String)>,
}

/// Folds the whole log and writes every room's view over older ones. With `from_scratch`, every
/// view is deleted first (views of commits that arrive meanwhile are rebuilt by the projectors
/// as they come). Calls `progress` every few thousand commits.
pub async fn rebuild(
    log: &EventLog,
    views: &Views,
    from_scratch: bool,
    mut progress: impl FnMut(Progress),
) -> Result<Rebuilt, ApplyError> {
    if from_scratch {
        views.clear().await?;
    }
    views.set_epoch().await?;
    let Folded { rooms, poisoned, mut report } = fold_log(log, &mut progress).await?;
    let mut rebuilt = Rebuilt { commits: report.commits, ..Rebuilt::default() };
    for projection in rooms.values() {
        match views.store(projection, Expect::Older).await? {
            Write::Written | Write::Version { .. } | Write::Parked => {}
            Write::NoEpoch => return Err(ApplyError::NeedsRebuild),
        }
        report.rooms_written += 1;
        if report.rooms_written.is_multiple_of(500) {
            progress(report);
        }
    }
    for (room, reason) in poisoned {
        views.park(&room, &reason).await?;
        rebuilt.parked.push((room, reason));
    }
    rebuilt.rooms = report.rooms_written;
    progress(report);
    Ok(rebuilt)
}

/// Every room folded from the log, in memory.
pub struct Folded {
    /// The rooms, as their views should be.
    pub rooms: HashMap<RoomId, Projection>,
    /// Rooms that cannot be folded (a poison commit, a gap), with the reason.
    pub poisoned: HashMap<RoomId, String>,
    /// How far it got.
    pub report: Progress,
}

/// Folds the whole log into projections, calling `progress` every few thousand commits. A room
/// whose first commits have expired starts from its snapshot; a room with no commit left in the
/// stream is its snapshot.
pub async fn fold_log(
    log: &EventLog,
    progress: &mut impl FnMut(Progress),
) -> Result<Folded, ApplyError> {
    let last_seq = log.last_seq().await?;
    let mut rooms: HashMap<RoomId, Projection> = HashMap::new();
    let mut poisoned: HashMap<RoomId, String> = HashMap::new();
    let mut report = Progress { commits: 0, last_seq, rooms_written: 0 };
    let mut commits = log.read_all(1).await?;
    while let Some(item) = commits.next().await {
        report.commits += 1;
        match item {
            Ok(stored) => {
                let room = stored.commit.room.clone();
                if poisoned.contains_key(&room) {
                    continue;
                }
                if !rooms.contains_key(&room) {
                    // Expired commits: the snapshot holds them (and maybe more).
                    let snapshot = match stored.commit.version {
                        1 => None,
                        _ => log.snapshot(&room).await?,
                    };
                    let start = snapshot.map_or_else(Projection::default, |s| {
                        Projection::from_state(s.state, s.seq)
                    });
                    rooms.insert(room.clone(), start);
                }
                let Some(projection) = rooms.get_mut(&room) else { continue };
                if stored.commit.version <= projection.state.version {
                    continue; // in the snapshot
                }
                if stored.commit.version != projection.state.version + 1 {
                    let reason = format!(
                        "version {} follows {}",
                        stored.commit.version, projection.state.version
                    );
                    poisoned.insert(room.clone(), reason);
                    rooms.remove(&room);
                    continue;
                }
                projection.apply(&stored.commit, stored.seq);
            }
            Err(LogError::Decode { seq, source }) => {
                // The room is known from the subject only through a direct get.
                match log.room_of_seq(seq).await {
                    Some(room) => {
                        rooms.remove(&room);
                        poisoned.insert(
                            room,
                            format!("poison commit at stream sequence {seq}: {source}"),
                        );
                    }
                    None => warn!(seq, %source, "undecodable commit on an unknown subject"),
                }
            }
            Err(error) => return Err(error.into()),
        }
        if report.commits.is_multiple_of(5000) {
            progress(report);
        }
    }
    for room in log.snapshot_rooms().await? {
        if rooms.contains_key(&room) || poisoned.contains_key(&room) {
            continue;
        }
        if let Some(s) = log.snapshot(&room).await? {
            rooms.insert(room, Projection::from_state(s.state, s.seq));
        }
    }
    Ok(Folded { rooms, poisoned, report })
}
