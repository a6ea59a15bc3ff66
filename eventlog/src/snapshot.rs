//! Room snapshots: a room's folded state at a version, kept in the `CHANSHARE_SNAPSHOTS` stream
//! (subject `chanshare.snapshot.<room>`, the latest one per room).
//!
//! They let the room stream expire old commits (retention by age or bytes) without making any
//! room unreadable, and let cold readers start near the head instead of at the first commit. A
//! snapshot is only ever the fold of commits that were in the log, so starting from it or from
//! the first commit gives the same state. Saves are compare-and-set on the snapshot subject: a
//! snapshot never replaces a newer one.
//!
//! Checkpoints: while a refresh folds towards the head, every fold at a multiple of
//! [`CHECKPOINT_EVERY`] is also kept for good on `chanshare.checkpoint.<room>.<n>` (written once,
//! never replaced). A fold to any earlier point (`replay state --at`, rewatch) starts from the
//! nearest one instead of the first commit, and the history after an expired stretch of the log
//! can still be replayed from the first checkpoint past it.

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::DirectGetErrorKind;
use events::{RoomId, RoomState};
use futures::StreamExt;
use tracing::warn;

use crate::error::LogError;
use crate::subjects::{self, headers};
use crate::{Commits, EventLog, Position, header_u64};

/// Every this many versions a room's fold is kept as a checkpoint.
pub const CHECKPOINT_EVERY: u64 = 500;

/// A room's folded state and where in the room stream its last commit was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The fold up to `state.version`.
    pub state: RoomState,
    /// The room stream sequence of the commit at `state.version` (which retention may have
    /// removed since: [`CatchUp::head`] says what the stream holds).
    pub seq: u64,
    /// Where the snapshot itself is in the snapshot stream (what a save compares against).
    stored_seq: u64,
}

/// What a reader behind the head folds: a snapshot to start over from, then commits.
pub struct CatchUp {
    /// Replaces the reader's state when present.
    pub snapshot: Option<Snapshot>,
    /// The commits after the snapshot, or after the reader's version when there is none.
    pub commits: Commits,
    /// The room's head when read (`None`: no commit of the room is in the stream, so the next
    /// append expects sequence 0).
    pub head: Option<Position>,
}

impl EventLog {
    /// The room's latest snapshot, `None` when it has none. A snapshot this version cannot decode
    /// (written by another version, or damaged) counts as none: readers fold from the log, and
    /// the next refresh replaces it.
    pub async fn snapshot(&self, room: &RoomId) -> Result<Option<Snapshot>, LogError> {
        Ok(match self.latest_snapshot(room).await? {
            Some((_, Ok(snapshot))) => Some(snapshot),
            Some((stored_seq, Err(error))) => {
                warn!(%room, stored_seq, %error, "snapshot ignored");
                None
            }
            None => None,
        })
    }

    /// The latest message on the room's snapshot subject: where it is in the snapshot stream,
    /// and the snapshot if it decodes.
    async fn latest_snapshot(
        &self,
        room: &RoomId,
    ) -> Result<Option<(u64, Result<Snapshot, LogError>)>, LogError> {
        self.stored_fold(subjects::snapshot(room), room).await
    }

    /// The fold on `subject` of the snapshot stream: where it is in that stream, and the fold if
    /// it decodes.
    async fn stored_fold(
        &self,
        subject: String,
        room: &RoomId,
    ) -> Result<Option<(u64, Result<Snapshot, LogError>)>, LogError> {
        let message = match self.snapshots.direct_get_last_for_subject(subject).await {
            Ok(message) => message,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LogError::unavailable(e)),
        };
        let stored_seq = message.sequence;
        let decoded = header_u64(&message.headers, headers::ROOM_SEQUENCE, stored_seq)
            .ok_or(LogError::MissingHeader { seq: stored_seq, header: headers::ROOM_SEQUENCE })
            .and_then(|seq| {
                let state: RoomState = serde_json::from_slice(&message.payload).map_err(|e| {
                    LogError::Invalid(format!("snapshot of room {room} at {stored_seq}: {e}"))
                })?;
                Ok(Snapshot { state, seq, stored_seq })
            });
        Ok(Some((stored_seq, decoded)))
    }

    /// Where a reader whose state is at version `after` (0: nothing yet) goes on from: the
    /// commits after it while the stream holds them (a warm reader pays no snapshot read), else
    /// the room's snapshot when that is ahead of `after` (a cold reader, one whose next commits
    /// have expired, or a room with no commit left), then the commits after that.
    pub async fn catch_up(&self, room: &RoomId, after: u64) -> Result<CatchUp, LogError> {
        let head = self.head(room).await?;
        if after > 0 && head.is_some() {
            match self.read_at(room, after, head).await {
                Err(LogError::Expired { .. }) => {}
                read => return read.map(|commits| CatchUp { snapshot: None, commits, head }),
            }
        }
        let snapshot = self.snapshot(room).await?.filter(|s| s.state.version > after);
        let from = snapshot.as_ref().map_or(after, |s| s.state.version);
        let commits = self.read_at(room, from, head).await?;
        Ok(CatchUp { snapshot, commits, head })
    }

    /// Brings the room's snapshot up to its head: folds the commits after the current snapshot
    /// and saves the result. Returns the version saved, `None` when the snapshot was already at
    /// the head or another writer saved one first.
    pub async fn refresh_snapshot(&self, room: &RoomId) -> Result<Option<u64>, LogError> {
        let latest = self.latest_snapshot(room).await?;
        let Some(head) = self.head(room).await? else { return Ok(None) };
        // An undecodable snapshot is replaced by a fold from the first commit.
        let stored_seq = latest.as_ref().map_or(0, |(stored_seq, _)| *stored_seq);
        let current = latest.and_then(|(_, decoded)| decoded.ok());
        if current.as_ref().is_some_and(|s| s.state.version >= head.version) {
            return Ok(None);
        }
        let (mut state, mut seq) = current.map_or((RoomState::default(), 0), |s| (s.state, s.seq));
        let mut commits = self.read_at(room, state.version, Some(head)).await?;
        while let Some(stored) = commits.next().await {
            let stored = stored?;
            if stored.commit.version != state.version + 1 {
                return Err(LogError::Invalid(format!(
                    "room {room} jumps from version {} to {}",
                    state.version, stored.commit.version
                )));
            }
            seq = stored.seq;
            state = state.apply(&stored.commit);
            if state.version.is_multiple_of(CHECKPOINT_EVERY) {
                self.save_checkpoint(room, &state, seq).await?;
            }
        }
        if state.version == 0 {
            return Ok(None);
        }
        self.save(room, &state, seq, stored_seq).await
    }

    /// Saves `state` (whose last commit is at room stream sequence `seq`) unless the snapshot
    /// subject moved past `expected` (the snapshot stream sequence of the snapshot it replaces).
    async fn save(
        &self,
        room: &RoomId,
        state: &RoomState,
        seq: u64,
        expected: u64,
    ) -> Result<Option<u64>, LogError> {
        self.publish_fold(subjects::snapshot(room), state, seq, expected).await
    }

    /// Keeps `state`, a fold at a multiple of [`CHECKPOINT_EVERY`], as the room's checkpoint; one
    /// already there (the same fold, by another replica or an earlier refresh) stays.
    async fn save_checkpoint(
        &self,
        room: &RoomId,
        state: &RoomState,
        seq: u64,
    ) -> Result<(), LogError> {
        let subject = subjects::checkpoint(room, state.version / CHECKPOINT_EVERY);
        self.publish_fold(subject, state, seq, 0).await.map(drop)
    }

    /// The room's `n`th checkpoint (its fold at version `n` × [`CHECKPOINT_EVERY`]), `None` when
    /// it has none (the room never got there, the checkpoint came before checkpoints did, or it
    /// cannot be decoded).
    pub async fn checkpoint(&self, room: &RoomId, n: u64) -> Result<Option<Snapshot>, LogError> {
        Ok(match self.stored_fold(subjects::checkpoint(room, n), room).await? {
            Some((_, Ok(checkpoint))) => Some(checkpoint),
            Some((stored_seq, Err(error))) => {
                warn!(%room, n, stored_seq, %error, "checkpoint ignored");
                None
            }
            None => None,
        })
    }

    /// The latest checkpoint of the room below version `below` whose version and time `keep`
    /// holds for, `None` when there is none. Found by bisection: `keep` holds for a prefix of the
    /// room's history, and the checkpoints a room lacks are a prefix too (those of its history
    /// before checkpoints existed: a refresh that fails is retried from the same snapshot, so it
    /// leaves no hole later on).
    pub async fn checkpoint_before(
        &self,
        room: &RoomId,
        below: u64,
        keep: &impl Fn(u64, u64) -> bool,
    ) -> Result<Option<Snapshot>, LogError> {
        let (mut lo, mut hi) = (0, below.saturating_sub(1) / CHECKPOINT_EVERY);
        let mut best = None;
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            match self.checkpoint(room, mid).await? {
                // Missing: below the first checkpoint the room has; look later.
                None => lo = mid,
                Some(found) if keep(found.state.version, found.state.updated_ms) => {
                    lo = mid;
                    best = Some(found);
                }
                Some(_) => hi = mid - 1,
            }
        }
        Ok(best.filter(|found| found.state.version / CHECKPOINT_EVERY == lo))
    }

    /// The room's first checkpoint from the `n`th on, up to version `upto` (bisection over the
    /// missing prefix); `None` when it has none there.
    async fn first_checkpoint_from(
        &self,
        room: &RoomId,
        n: u64,
        upto: u64,
    ) -> Result<Option<Snapshot>, LogError> {
        let (mut lo, mut hi) = (n.max(1), upto / CHECKPOINT_EVERY + 1);
        let mut found = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.checkpoint(room, mid).await? {
                Some(checkpoint) => {
                    hi = mid;
                    found = Some(checkpoint);
                }
                None => lo = mid + 1,
            }
        }
        Ok(found.filter(|checkpoint| checkpoint.state.version / CHECKPOINT_EVERY == lo))
    }

    /// The version of the room's first commit the stream still holds, `None` when it holds none.
    pub async fn first_version(&self, room: &RoomId) -> Result<Option<u64>, LogError> {
        match self.stream.direct_get_next_for_subject(subjects::room(room), Some(1)).await {
            Ok(message) => Ok(Some(crate::version_header(&message.headers, message.sequence)?)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(LogError::unavailable(e)),
        }
    }

    /// Where a replay of the whole room can start: the fold it starts from (the empty room while
    /// the first commit is in the stream; else the first checkpoint past the commits that left,
    /// or the snapshot when there is none), whose later commits the stream still holds.
    pub async fn replay_start(&self, room: &RoomId) -> Result<RoomState, LogError> {
        let first = self.first_version(room).await?;
        if first == Some(1) {
            return Ok(RoomState::default());
        }
        let snapshot = self.snapshot(room).await?.map(|s| s.state);
        if let (Some(first), Some(head)) = (first, snapshot.as_ref().map(|s| s.version)) {
            let n = (first - 1).div_ceil(CHECKPOINT_EVERY);
            if let Some(checkpoint) = self.first_checkpoint_from(room, n, head).await? {
                return Ok(checkpoint.state);
            }
        }
        Ok(snapshot.unwrap_or_default())
    }

    /// Publishes a fold on `subject` if its last message there is `expected` (0: none).
    async fn publish_fold(
        &self,
        subject: String,
        state: &RoomState,
        seq: u64,
        expected: u64,
    ) -> Result<Option<u64>, LogError> {
        let payload = serde_json::to_vec(state).map_err(|e| LogError::Invalid(e.to_string()))?;
        let publish = PublishMessage::build()
            .payload(payload.into())
            .expected_last_subject_sequence(expected)
            .header(headers::VERSION, state.version.to_string().as_str())
            .header(headers::ROOM_SEQUENCE, seq.to_string().as_str());
        // Snapshots are written here and nowhere else (ARCHITECTURE.md invariant 2).
        #[allow(clippy::disallowed_methods)]
        let ack = match self.js.send_publish(subject, publish).await {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        match ack {
            Ok(_) => Ok(Some(state.version)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                Err(LogError::Invalid(e.to_string()))
            }
            Err(e) => Err(LogError::unavailable(e)),
        }
    }

    /// Whether no room has the id `room`: no commit in the stream and no snapshot (a room whose
    /// commits have all expired lives on in its snapshot).
    pub async fn is_free(&self, room: &RoomId) -> Result<bool, LogError> {
        Ok(self.head(room).await?.is_none() && self.latest_snapshot(room).await?.is_none())
    }

    /// Every room with at least one commit in the room stream.
    pub async fn rooms(&self) -> Result<Vec<RoomId>, LogError> {
        rooms_of(&self.stream, subjects::ROOMS).await
    }

    /// Every room with a snapshot.
    pub async fn snapshot_rooms(&self) -> Result<Vec<RoomId>, LogError> {
        rooms_of(&self.snapshots, subjects::SNAPSHOTS).await
    }
}

/// The rooms of the subjects matching `filter` that hold messages in `stream`.
async fn rooms_of(
    stream: &async_nats::jetstream::stream::Stream,
    filter: &str,
) -> Result<Vec<RoomId>, LogError> {
    let mut listing = stream.info_with_subjects(filter).await.map_err(LogError::unavailable)?;
    let mut rooms = Vec::new();
    while let Some(item) = listing.next().await {
        let (subject, _) = item.map_err(LogError::unavailable)?;
        rooms.extend(subjects::room_of(&subject));
    }
    Ok(rooms)
}
