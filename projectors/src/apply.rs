//! Applying one commit to its room's view: exactly once, in version order, gaps filled from
//! the log.

use eventlog::{EventLog, LogError, Stored};
use events::RoomId;
use futures::StreamExt;
use views::{Expect, Loaded, Projection, ViewError, Views, Write};

/// Why a commit could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Redis failed: try again later.
    #[error(transparent)]
    Views(#[from] ViewError),
    /// The log failed: try again later.
    #[error(transparent)]
    Log(LogError),
    /// A commit of the room cannot be decoded: park the room.
    #[error("poison commit at stream sequence {seq}: {reason}")]
    Poison {
        /// Where.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The views were flushed (no epoch marker): rebuild first.
    #[error("views need a rebuild")]
    NeedsRebuild,
}

impl From<LogError> for ApplyError {
    fn from(error: LogError) -> Self {
        match error {
            LogError::Decode { seq, source } => Self::Poison { seq, reason: source.to_string() },
            LogError::MissingHeader { seq, header } => {
                Self::Poison { seq, reason: format!("no {header} header") }
            }
            other => Self::Log(other),
        }
    }
}

/// What applying did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The view moved to the commit's version (possibly through missing ones).
    Applied,
    /// The view already had it.
    Duplicate,
    /// The room's projection is parked.
    Parked,
}

/// Brings `room`'s view up to at least `stored`'s version.
pub async fn apply(
    log: &EventLog,
    views: &Views,
    room: &RoomId,
    stored: &Stored,
) -> Result<Applied, ApplyError> {
    apply_all(log, views, room, std::slice::from_ref(stored)).await
}

/// Brings `room`'s view up to at least the last of `batch`'s versions (the room's commits as
/// the consumer delivered them, in stream order) with one read and one write of the view: a
/// burst of commits in one room (a thousand joins) is not a thousand rewrites of its fold.
pub async fn apply_all(
    log: &EventLog,
    views: &Views,
    room: &RoomId,
    batch: &[Stored],
) -> Result<Applied, ApplyError> {
    let Some(target) = batch.iter().map(|stored| stored.commit.version).max() else {
        return Ok(Applied::Duplicate);
    };
    // A competing replica may write the room between our read and our write; the version check
    // in the store refuses that, and we look again.
    for _ in 0..16 {
        let (base, expect) = match views.load(room).await? {
            Loaded::Parked { .. } => return Ok(Applied::Parked),
            Loaded::At(projection) if projection.state.version >= target => {
                return Ok(Applied::Duplicate);
            }
            Loaded::At(projection) => (*projection, Expect::Previous),
            // Version 1 over nothing needs no read; anything else is rebuilt from the log.
            Loaded::Missing if batch[0].commit.version == 1 => {
                (Projection::default(), Expect::Previous)
            }
            Loaded::Missing | Loaded::Unreadable { .. } => (Projection::default(), Expect::Older),
        };
        let from = base.state.version;
        // The batch's commits that follow the view are folded here; what a hole keeps it from
        // reaching is read from the log after them.
        let folded = fold_batch(base, batch);
        let projection = if folded.state.version == target {
            folded
        } else {
            catch_up(log, room, folded).await?
        };
        // `Previous` (the store's check that the view is still at the version before) only
        // holds for a one-step move; a batch or a gap fill writes over anything older (the fold
        // at a version is the same whoever made it).
        let expect = if expect == Expect::Previous && projection.state.version != from + 1 {
            Expect::Older
        } else {
            expect
        };
        match views.store(&projection, expect).await? {
            Write::Written => return Ok(Applied::Applied),
            Write::Parked => return Ok(Applied::Parked),
            Write::NoEpoch => return Err(ApplyError::NeedsRebuild),
            Write::Version { current } if current >= target => return Ok(Applied::Duplicate),
            Write::Version { .. } => continue,
        }
    }
    Err(ApplyError::Views(ViewError::Encode(format!("room {room}: the view kept moving"))))
}

/// Folds the commits of `batch` that follow `base` into it.
fn fold_batch(mut base: Projection, batch: &[Stored]) -> Projection {
    for stored in batch {
        if stored.commit.version == base.state.version + 1 {
            base.apply(&stored.commit, stored.seq);
        }
    }
    base
}

/// Folds the room's commits after `base` from the log, up to its head; from the room's snapshot
/// when that is ahead of `base` (a missing view, or commits that have expired).
async fn catch_up(
    log: &EventLog,
    room: &RoomId,
    mut base: Projection,
) -> Result<Projection, ApplyError> {
    let eventlog::snapshot::CatchUp { snapshot, mut commits, .. } =
        log.catch_up(room, base.state.version).await?;
    if let Some(snapshot) = snapshot {
        base = Projection::from_state(snapshot.state, snapshot.seq);
    }
    while let Some(stored) = commits.next().await {
        let stored = stored?;
        if stored.commit.version != base.state.version + 1 {
            return Err(ApplyError::Poison {
                seq: stored.seq,
                reason: format!("version {} follows {}", stored.commit.version, base.state.version),
            });
        }
        base.apply(&stored.commit, stored.seq);
    }
    Ok(base)
}
