//! The names of the room log on NATS (DESIGN §2, pinned).

use events::RoomId;

/// The room stream.
pub const STREAM: &str = "CHANSHARE_ROOMS";
/// Every room's commit subject.
pub const ROOMS: &str = "chanshare.room.*";
/// Every room's republished (stored-only) subject.
pub const LIVE: &str = "chanshare.live.*";
/// The snapshot stream: the latest folded state of each room.
pub const SNAPSHOT_STREAM: &str = "CHANSHARE_SNAPSHOTS";
/// Every room's snapshot subject.
pub const SNAPSHOTS: &str = "chanshare.snapshot.*";
/// Every room's checkpoint subjects (in the snapshot stream).
pub const CHECKPOINTS: &str = "chanshare.checkpoint.*.*";

const ROOM_PREFIX: &str = "chanshare.room.";
const LIVE_PREFIX: &str = "chanshare.live.";
const SNAPSHOT_PREFIX: &str = "chanshare.snapshot.";
const CHECKPOINT_PREFIX: &str = "chanshare.checkpoint.";

/// Where room `room`'s commits are appended: `chanshare.room.<room>`.
pub fn room(room: &RoomId) -> String {
    format!("{ROOM_PREFIX}{room}")
}

/// Where the stream republishes room `room`'s stored commits: `chanshare.live.<room>`.
/// Subscribe here, never to [`room`]: that subject also carries rejected publishes.
pub fn live(room: &RoomId) -> String {
    format!("{LIVE_PREFIX}{room}")
}

/// Where room `room`'s latest snapshot is kept: `chanshare.snapshot.<room>`.
pub fn snapshot(room: &RoomId) -> String {
    format!("{SNAPSHOT_PREFIX}{room}")
}

/// Where room `room`'s `n`th checkpoint is kept for good: `chanshare.checkpoint.<room>.<n>`,
/// its fold at version `n` × [`crate::snapshot::CHECKPOINT_EVERY`].
pub fn checkpoint(room: &RoomId, n: u64) -> String {
    format!("{CHECKPOINT_PREFIX}{room}.{n}")
}

/// The room of a `chanshare.room.<room>`, `chanshare.live.<room>` or
/// `chanshare.snapshot.<room>` subject.
pub fn room_of(subject: &str) -> Option<RoomId> {
    let id = subject
        .strip_prefix(ROOM_PREFIX)
        .or_else(|| subject.strip_prefix(LIVE_PREFIX))
        .or_else(|| subject.strip_prefix(SNAPSHOT_PREFIX))?;
    RoomId::new(id).ok()
}

/// Header names set on every commit.
pub mod headers {
    pub use async_nats::header::{
        NATS_EXPECTED_LAST_SUBJECT_SEQUENCE as EXPECTED_LAST_SUBJECT_SEQUENCE,
        NATS_LAST_SEQUENCE as LAST_SEQUENCE, NATS_MESSAGE_ID as MESSAGE_ID,
        NATS_SEQUENCE as SEQUENCE,
    };
    /// The commit's room version (on a snapshot: the version it folds up to).
    pub const VERSION: &str = "Chanshare-Version";
    /// On a snapshot: the room stream sequence of the commit at its version.
    pub const ROOM_SEQUENCE: &str = "Chanshare-Room-Sequence";
    /// The payload's codec schema.
    pub const SCHEMA: &str = "Chanshare-Schema";
    /// W3C trace context of the command that produced the commit.
    pub const TRACEPARENT: &str = "traceparent";
}
