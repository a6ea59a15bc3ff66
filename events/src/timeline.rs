//! A room's session as a timeline: how busy each stretch of it was, and when the playlist moved
//! on. It is what a rewatch draws and scrubs (`GET /api/rooms/{id}/rewatch`), a fold of the
//! commits after a start like the state is, so it can be extended by the commits that came since.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::commit::Commit;
use crate::event::Event;
use crate::ids::ItemId;
use crate::state::RoomState;

/// The most buckets a timeline has: past it, buckets double in width and pairs merge.
pub const MAX_BUCKETS: usize = 240;
/// The width of a bucket while the session is short.
pub const FIRST_BUCKET_MS: u64 = 5_000;
/// The most item changes a timeline marks (one per item played; a room that ran for months may
/// have more: the buckets still count them).
pub const MAX_MARKS: usize = 2_000;

/// The activity of a stretch of the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Bucket {
    /// Commits in it.
    pub commits: u32,
    /// Chat messages posted.
    pub chat: u32,
    /// Times the playing item changed.
    pub items: u32,
    /// Members who joined or came back.
    pub joins: u32,
}

impl Bucket {
    fn merge(self, other: Bucket) -> Bucket {
        Bucket {
            commits: self.commits + other.commits,
            chat: self.chat + other.chat,
            items: self.items + other.items,
            joins: self.joins + other.joins,
        }
    }
}

/// The moment the playing item changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Mark {
    /// The version of the commit that changed it.
    pub version: u64,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// The item that started (`None`: nothing plays any more).
    pub item_id: Option<ItemId>,
}

/// A point of the room's history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Point {
    /// The room's version there (0: before its first commit).
    pub version: u64,
    /// When (ms since the Unix epoch; for version 0, the first commit's time).
    pub at_ms: u64,
}

/// The timeline of the commits after `start`, up to `end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Timeline {
    /// Where the replayable history starts: the fold a replay starts from. Past version 0, the
    /// commits before it have left the log (retention) and show as a gap.
    pub start: Point,
    /// The last commit folded in.
    pub end: Point,
    /// The width of each bucket.
    pub bucket_ms: u64,
    /// Activity from `start.at_ms` on, `bucket_ms` each.
    pub buckets: Vec<Bucket>,
    /// Item changes, oldest first (at most [`MAX_MARKS`]).
    pub marks: Vec<Mark>,
    /// The item playing at `end`.
    #[serde(default)]
    pub playing: Option<ItemId>,
    /// Whether the session ended (`room_closed`): `end` is then its end for good, whatever the
    /// host changes in the closed room later (rewatch on or off).
    #[serde(default)]
    pub closed: bool,
}

impl Timeline {
    /// An empty timeline that starts after `start` (the empty room: version 0).
    pub fn starting_at(start: &RoomState) -> Self {
        let point = Point { version: start.version, at_ms: start.updated_ms };
        Timeline {
            start: point,
            end: point,
            bucket_ms: FIRST_BUCKET_MS,
            buckets: Vec::new(),
            marks: Vec::new(),
            playing: start.playback.item_id.clone(),
            closed: start.closed.is_some(),
        }
    }

    /// Folds the next commit in (its version must follow `end`'s, and the session must not have
    /// ended; others are ignored).
    pub fn add(&mut self, commit: &Commit) {
        if commit.version != self.end.version + 1 || self.closed {
            return;
        }
        if self.start.version == 0 && self.end.version == 0 {
            self.start.at_ms = commit.at_ms;
        }
        self.end = Point { version: commit.version, at_ms: commit.at_ms.max(self.end.at_ms) };
        let mut bucket = Bucket { commits: 1, ..Bucket::default() };
        for event in &commit.events {
            match event {
                Event::ChatPosted { .. } => bucket.chat += 1,
                Event::MemberJoined { .. } | Event::MemberReturned { .. } => bucket.joins += 1,
                Event::RoomClosed { .. } => self.closed = true,
                Event::PlaybackChanged { playback, .. } if playback.item_id != self.playing => {
                    self.playing = playback.item_id.clone();
                    bucket.items += 1;
                    if self.marks.len() < MAX_MARKS {
                        self.marks.push(Mark {
                            version: commit.version,
                            at_ms: self.end.at_ms,
                            item_id: self.playing.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        let offset = self.end.at_ms.saturating_sub(self.start.at_ms);
        while offset / self.bucket_ms >= MAX_BUCKETS as u64 {
            self.widen();
        }
        let index = usize::try_from(offset / self.bucket_ms).unwrap_or(MAX_BUCKETS - 1);
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, Bucket::default());
        }
        self.buckets[index] = self.buckets[index].merge(bucket);
    }

    /// Doubles the bucket width, merging neighbours.
    fn widen(&mut self) {
        self.bucket_ms *= 2;
        self.buckets = self
            .buckets
            .chunks(2)
            .map(|pair| pair.iter().fold(Bucket::default(), |sum, b| sum.merge(*b)))
            .collect();
    }
}
