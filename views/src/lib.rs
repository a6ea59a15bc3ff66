//! The Redis read views: what the lobby, `GET /api/rooms/{id}` and late joiners read.
//!
//! Views are a cache of folds of the log (ARCHITECTURE.md invariant 3): losing them loses no
//! data, and the projectors rebuild them. Keys (documented in `docs/views.md`):
//!
//! - `chanshare:view:{room}` — hash: `version`, `seq`, `fold` (binary [`Projection`]), `view`
//!   (the pinned state JSON: members and the chat tail are in it), `lobby` (JSON or empty), and
//!   `status` when the room's projection is parked.
//! - `chanshare:lobby` — sorted set: listed open rooms by time of last commit (ties by id);
//!   [`Views::lobby_page`] pages it with a cursor (a position, not an offset).
//! - `chanshare:lobby:closed` — sorted set: the [`CLOSED_KEPT`] listed rooms closed last, whose
//!   history may be rewatched, by time of closing; `chanshare:lobby:closed:entries` — hash: their
//!   lobby entries (kept after their views leave).
//! - `chanshare:views:applied` — the highest stream sequence whose effect is in the views.
//! - `chanshare:views:epoch` — present while the views are complete; a flushed or restarted Redis
//!   loses it, writes then refuse, and the projectors rebuild.
//!
//! Every write goes through one Lua script that checks the room's version: version N is written
//! only over N−1 (or, for rebuilds, only over an older version), so a commit is never applied
//! twice, whatever the delivery order across replicas.

pub mod dm;
mod projection;
mod rewatch;

use events::RoomId;
use redis::aio::ConnectionManager;

pub use projection::{Card, LobbyEntry, Projection, Rendered, Visited, VisitedRoom};

const LOBBY: &str = "chanshare:lobby";
const CLOSED: &str = "chanshare:lobby:closed";
const CLOSED_ENTRIES: &str = "chanshare:lobby:closed:entries";
/// How many recently closed rooms the lobby keeps.
pub const CLOSED_KEPT: usize = 100;
const APPLIED: &str = "chanshare:views:applied";
const EPOCH: &str = "chanshare:views:epoch";
const VIEW_PREFIX: &str = "chanshare:view:";

fn view_key(room: &RoomId) -> String {
    view_key_str(room.as_str())
}

fn view_key_str(room: &str) -> String {
    format!("{VIEW_PREFIX}{room}")
}

/// Lobby rooms read per Redis round trip.
const LOBBY_BATCH: usize = 200;
/// The most lobby rooms one page looks at (a search that matches little stops here).
pub const LOBBY_SCAN: usize = 2000;

/// A position in the lobby's order: just after the room `room`, last active at `updated_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LobbyCursor {
    /// The score of the room in the lobby set: the time of its last commit.
    pub updated_ms: u64,
    /// The room.
    pub room: String,
}

/// A page of the lobby.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LobbyPage {
    /// The rooms, most recently active first.
    pub rooms: Vec<LobbyEntry>,
    /// Where the next page starts, when there may be more.
    pub next: Option<LobbyCursor>,
}

/// What went wrong with the views.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// Redis failed.
    #[error("view store unavailable: {0}")]
    Unavailable(#[from] redis::RedisError),
    /// A view could not be rendered.
    #[error("cannot render view: {0}")]
    Encode(String),
}

/// A room's view as loaded for an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// No view.
    Missing,
    /// A view whose fold cannot be read: rebuild it.
    Unreadable {
        /// The version it claims.
        version: u64,
    },
    /// The room's projection is stopped (a poison commit).
    Parked {
        /// Why.
        reason: String,
    },
    /// A usable view.
    At(Box<Projection>),
}

/// How a write checks the stored version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The stored version is exactly one below (0 when missing): incremental apply.
    Previous,
    /// The stored version is lower: rebuilds, which may jump.
    Older,
}

/// The outcome of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Written.
    Written,
    /// The stored version did not fit (it was `current`).
    Version {
        /// The stored version.
        current: u64,
    },
    /// The room is parked.
    Parked,
    /// The epoch marker is gone (Redis was flushed or restarted): rebuild first.
    NoEpoch,
}

/// A room's state as its view stores it: the pinned state JSON at a version (what a late joiner
/// gets). Not to be confused with `eventlog::snapshot::Snapshot`, the folded state the log keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    /// The version.
    pub version: u64,
    /// The stream sequence of that version.
    pub seq: u64,
    /// The state JSON.
    pub state_json: String,
}

/// The view store. Cheap to clone.
#[derive(Clone)]
pub struct Views {
    redis: ConnectionManager,
    store: redis::Script,
    closed_ttl: std::time::Duration,
}

/// How long a closed room's view stays in Redis by default: readers fold it from the room's
/// snapshot and the log once it is gone (views are a cache, invariant 3).
pub const CLOSED_VIEW_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Views(..)")
    }
}

impl Views {
    /// Views in `redis`.
    pub fn new(redis: ConnectionManager) -> Self {
        Self {
            redis,
            store: redis::Script::new(include_str!("store.lua")),
            closed_ttl: CLOSED_VIEW_TTL,
        }
    }

    /// Closed rooms' views leave Redis `ttl` after their last write (at least a millisecond).
    pub fn with_closed_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.closed_ttl = ttl.max(std::time::Duration::from_millis(1));
        self
    }

    fn conn(&self) -> ConnectionManager {
        self.redis.clone()
    }

    /// Loads a room's view for an update.
    pub async fn load(&self, room: &RoomId) -> Result<Loaded, ViewError> {
        let (version, fold, status): (Option<u64>, Option<Vec<u8>>, Option<String>) =
            redis::cmd("HMGET")
                .arg(view_key(room))
                .arg("version")
                .arg("fold")
                .arg("status")
                .query_async(&mut self.conn())
                .await?;
        Ok(match (version, fold, status) {
            (_, _, Some(reason)) => Loaded::Parked { reason },
            (None, _, None) => Loaded::Missing,
            (Some(version), fold, None) => match fold.as_deref().and_then(Projection::decode) {
                Some(projection) if projection.state.version == version => {
                    Loaded::At(Box::new(projection))
                }
                _ => Loaded::Unreadable { version },
            },
        })
    }

    /// Writes a room's view if the stored version fits `expect`.
    pub async fn store(&self, projection: &Projection, expect: Expect) -> Result<Write, ViewError> {
        let Some(room) = &projection.state.room_id else {
            return Err(ViewError::Encode("a view of a room that was never created".into()));
        };
        let rendered = projection.render()?;
        let mode = match expect {
            Expect::Previous => "exact",
            Expect::Older => "newer",
        };
        let (written, current, reason): (u8, u64, String) = self
            .store
            .key(view_key(room))
            .key(LOBBY)
            .key(APPLIED)
            .key(EPOCH)
            .key(CLOSED)
            .key(CLOSED_ENTRIES)
            .arg(mode)
            .arg(projection.state.version)
            .arg(projection.seq)
            .arg(rendered.fold)
            .arg(rendered.view)
            .arg(rendered.lobby.unwrap_or_default())
            .arg(room.as_str())
            .arg(projection.state.updated_ms)
            .arg(if projection.state.closed.is_some() {
                self.closed_ttl.as_millis() as u64
            } else {
                0
            })
            .arg(rendered.card.unwrap_or_default())
            .arg(
                rendered
                    .visited
                    .iter()
                    .map(|(id, at_ms)| format!("{}:{at_ms}", id.simple()))
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .arg(rendered.closed.unwrap_or_default())
            .arg(CLOSED_KEPT)
            .arg(match projection.state.closed_ms {
                0 => projection.state.updated_ms,
                closed => closed,
            })
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match (written, reason.as_str()) {
            (1, _) => Write::Written,
            (_, "parked") => Write::Parked,
            (_, "no_epoch") => Write::NoEpoch,
            _ => Write::Version { current },
        })
    }

    /// Stops a room's projection with a visible reason.
    pub async fn park(&self, room: &RoomId, reason: &str) -> Result<(), ViewError> {
        redis::pipe()
            .hset(view_key(room), "status", reason)
            .ignore()
            .zrem(LOBBY, room.as_str())
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }

    /// The room's projection status: `None` when healthy, the reason when parked.
    pub async fn status(&self, room: &RoomId) -> Result<Option<String>, ViewError> {
        Ok(redis::cmd("HGET")
            .arg(view_key(room))
            .arg("status")
            .query_async(&mut self.conn())
            .await?)
    }

    /// The room's snapshot for a late joiner.
    pub async fn stored_state(&self, room: &RoomId) -> Result<Option<StoredState>, ViewError> {
        let (version, seq, view, status): (
            Option<u64>,
            Option<u64>,
            Option<String>,
            Option<String>,
        ) = redis::cmd("HMGET")
            .arg(view_key(room))
            .arg("version")
            .arg("seq")
            .arg("view")
            .arg("status")
            .query_async(&mut self.conn())
            .await?;
        Ok(match (version, seq, view, status) {
            (Some(version), Some(seq), Some(state_json), None) => {
                Some(StoredState { version, seq, state_json })
            }
            _ => None,
        })
    }

    /// The lobby's first `limit` rooms, most recently active first.
    pub async fn lobby(&self, limit: usize) -> Result<Vec<LobbyEntry>, ViewError> {
        Ok(self.lobby_page(None, limit, None).await?.rooms)
    }

    /// The rooms an account created or joined, most recently visited first: each with its card
    /// (`{"room_id", "title", "closed", "online", …}`) while its view is in Redis, else only
    /// `{"room_id", "closed": true}` (a closed room's view leaves after [`CLOSED_VIEW_TTL`]).
    pub async fn account_rooms(
        &self,
        account: &uuid::Uuid,
        limit: usize,
    ) -> Result<Vec<VisitedRoom>, ViewError> {
        let list = format!("chanshare:account:{}:rooms", account.simple());
        let rooms: Vec<(String, u64)> = redis::cmd("ZREVRANGE")
            .arg(&list)
            .arg(0)
            .arg(limit.saturating_sub(1))
            .arg("WITHSCORES")
            .query_async(&mut self.conn())
            .await?;
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (room, _) in &rooms {
            pipe.hget(view_key_str(room), "card");
        }
        let cards: Vec<Option<String>> = pipe.query_async(&mut self.conn()).await?;
        Ok(rooms
            .into_iter()
            .zip(cards)
            .map(|((room_id, visited_ms), card)| {
                let room = card
                    .and_then(|c| serde_json::from_str::<Card>(&c).ok())
                    .map_or(Visited::Gone { room_id, closed: true }, Visited::Card);
                VisitedRoom { visited_ms, room }
            })
            .collect())
    }

    /// A page of the lobby: up to `limit` rooms after `after` (from the start when `None`),
    /// most recently active first, whose titles contain `search` ignoring case.
    ///
    /// The order is the lobby set's: last activity, newest first, ties by room id. A cursor is
    /// a position in that order, not an offset, so paging on while rooms come, go or become
    /// active never repeats a room; a room that becomes active meanwhile moves to the front,
    /// before the cursor. A search looks at no more than [`LOBBY_SCAN`] rooms per page: a page
    /// may then hold fewer than `limit` rooms and still have a `next` cursor.
    pub async fn lobby_page(
        &self,
        after: Option<&LobbyCursor>,
        limit: usize,
        search: Option<&str>,
    ) -> Result<LobbyPage, ViewError> {
        let search = search.map(str::to_lowercase).filter(|s| !s.is_empty());
        let mut rooms: Vec<LobbyEntry> = Vec::new();
        let mut last: Option<LobbyCursor> = None;
        let mut position = after.cloned();
        let mut scanned = 0;
        while scanned < LOBBY_SCAN {
            let batch = self.lobby_positions(position.as_ref(), LOBBY_BATCH).await?;
            let mut pipe = redis::pipe();
            for cursor in &batch {
                pipe.hget(view_key_str(&cursor.room), "lobby");
            }
            let entries: Vec<Option<String>> = if batch.is_empty() {
                Vec::new()
            } else {
                pipe.query_async(&mut self.conn()).await?
            };
            let full_batch = batch.len() == LOBBY_BATCH;
            for (cursor, json) in batch.into_iter().zip(entries) {
                scanned += 1;
                let entry = json.and_then(|j| serde_json::from_str::<LobbyEntry>(&j).ok());
                if let Some(entry) = entry.filter(|e| {
                    search.as_deref().is_none_or(|s| e.title.to_lowercase().contains(s))
                }) {
                    if rooms.len() == limit {
                        // One more room matches: the page is full and has a next one.
                        return Ok(LobbyPage { rooms, next: last });
                    }
                    rooms.push(entry);
                    last = Some(cursor.clone());
                }
                position = Some(cursor);
            }
            if !full_batch {
                return Ok(LobbyPage { rooms, next: None });
            }
        }
        // The scan budget is spent: go on from the last room looked at.
        Ok(LobbyPage { rooms, next: position })
    }

    /// The listed rooms closed last whose history may be rewatched, most recent first.
    pub async fn recently_closed(&self, limit: usize) -> Result<Vec<LobbyEntry>, ViewError> {
        let mut conn = self.conn();
        let rooms: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(CLOSED)
            .arg(0)
            .arg(limit.clamp(1, CLOSED_KEPT) - 1)
            .query_async(&mut conn)
            .await?;
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let entries: Vec<Option<String>> =
            redis::cmd("HMGET").arg(CLOSED_ENTRIES).arg(&rooms).query_async(&mut conn).await?;
        Ok(entries.into_iter().flatten().filter_map(|j| serde_json::from_str(&j).ok()).collect())
    }

    /// Up to `count` lobby positions after `after`, in the lobby's order.
    async fn lobby_positions(
        &self,
        after: Option<&LobbyCursor>,
        count: usize,
    ) -> Result<Vec<LobbyCursor>, ViewError> {
        let mut conn = self.conn();
        let read = |rows: Vec<(String, f64)>| {
            rows.into_iter().map(|(room, score)| LobbyCursor { updated_ms: score as u64, room })
        };
        let Some(after) = after else {
            let rows: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
                .arg(LOBBY)
                .arg(0)
                .arg(count.saturating_sub(1))
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await?;
            return Ok(read(rows).collect());
        };
        // Rooms active in the same millisecond as the cursor's come first, by id, then the older.
        let ties: Vec<(String, f64)> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(LOBBY)
            .arg(after.updated_ms)
            .arg(after.updated_ms)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        let mut positions: Vec<LobbyCursor> =
            read(ties).filter(|p| p.room < after.room).take(count).collect();
        if positions.len() < count {
            let older: Vec<(String, f64)> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(LOBBY)
                .arg(format!("({}", after.updated_ms))
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(count - positions.len())
                .query_async(&mut conn)
                .await?;
            positions.extend(read(older));
        }
        Ok(positions)
    }

    /// The highest stream sequence applied, `None` if unknown (flushed).
    pub async fn applied(&self) -> Result<Option<u64>, ViewError> {
        Ok(redis::cmd("GET").arg(APPLIED).query_async(&mut self.conn()).await?)
    }

    /// Whether the views are marked complete (absent after a flush or restart).
    pub async fn has_epoch(&self) -> Result<bool, ViewError> {
        Ok(redis::cmd("EXISTS").arg(EPOCH).query_async(&mut self.conn()).await?)
    }

    /// Marks the views complete (a rebuild starts by doing this: writes resume during it).
    pub async fn set_epoch(&self) -> Result<(), ViewError> {
        redis::cmd("SET").arg(EPOCH).arg("1").query_async::<()>(&mut self.conn()).await?;
        Ok(())
    }

    /// Takes the rebuild lock for `ttl_ms`; false if another replica holds it.
    pub async fn lock_rebuild(&self, owner: &str, ttl_ms: u64) -> Result<bool, ViewError> {
        let set: Option<String> = redis::cmd("SET")
            .arg("chanshare:views:rebuilding")
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut self.conn())
            .await?;
        Ok(set.is_some())
    }

    /// Releases the rebuild lock.
    pub async fn unlock_rebuild(&self) -> Result<(), ViewError> {
        redis::cmd("DEL")
            .arg("chanshare:views:rebuilding")
            .query_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Deletes every view (the start of a rebuild from scratch).
    pub async fn clear(&self) -> Result<(), ViewError> {
        let mut conn = self.conn();
        for keys in self.view_keys().await?.chunks(500) {
            redis::cmd("DEL").arg(keys).query_async::<()>(&mut conn).await?;
        }
        redis::pipe()
            .del(LOBBY)
            .ignore()
            .del(CLOSED)
            .ignore()
            .del(CLOSED_ENTRIES)
            .ignore()
            .del(APPLIED)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Every room with a view (for verification and tests).
    pub async fn rooms(&self) -> Result<Vec<RoomId>, ViewError> {
        let keys = self.view_keys().await?;
        Ok(keys
            .iter()
            .filter_map(|k| RoomId::new(k.trim_start_matches(VIEW_PREFIX)).ok())
            .collect())
    }

    async fn view_keys(&self) -> Result<Vec<String>, ViewError> {
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut all = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{VIEW_PREFIX}*"))
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            all.extend(keys);
            cursor = next;
            if cursor == 0 {
                return Ok(all);
            }
        }
    }
}
