//! Who is connected, as gateways last reported it.
//!
//! Gateways (and the commands service, on an accepted `join`) record a heartbeat for every member
//! with a live socket; the presence reaper reads them and times out members whose heartbeats
//! stopped. Redis keys (documented in `docs/commands.md`):
//!
//! - `chanshare:presence:{room}` — sorted set, member id → last heartbeat (ms since the epoch).
//! - `chanshare:presence:rooms` — sorted set, room id → last heartbeat in that room: the rooms
//!   the reaper looks at.
//!
//! Both keys expire a day after their last write, so abandoned rooms leave nothing behind.

use std::collections::HashMap;

use events::{MemberId, RoomId};
use redis::aio::ConnectionManager;

const ROOMS: &str = "chanshare:presence:rooms";
const TTL_SECONDS: i64 = 24 * 3600;

fn room_key(room: &RoomId) -> String {
    format!("chanshare:presence:{room}")
}

/// Redis failed.
#[derive(Debug, thiserror::Error)]
#[error("presence store unavailable: {0}")]
pub struct PresenceError(#[from] redis::RedisError);

/// The heartbeat store. Cheap to clone.
#[derive(Clone)]
pub struct Presence {
    redis: ConnectionManager,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Presence(..)")
    }
}

impl Presence {
    /// Uses `redis` for heartbeats.
    pub fn new(redis: ConnectionManager) -> Self {
        Self { redis }
    }

    /// Records that `members` of `room` have live connections at `now_ms`.
    pub async fn beat(
        &self,
        room: &RoomId,
        members: &[MemberId],
        now_ms: u64,
    ) -> Result<(), PresenceError> {
        if members.is_empty() {
            return Ok(());
        }
        let key = room_key(room);
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(&key);
        for member in members {
            zadd.arg(now_ms).arg(member.as_str());
        }
        redis::pipe()
            .atomic()
            .add_command(zadd)
            .ignore()
            .expire(&key, TTL_SECONDS)
            .ignore()
            .zadd(ROOMS, room.as_str(), now_ms)
            .ignore()
            .expire(ROOMS, TTL_SECONDS)
            .ignore()
            .query_async::<()>(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Every room with heartbeats.
    pub async fn rooms(&self) -> Result<Vec<RoomId>, PresenceError> {
        let names: Vec<String> = redis::cmd("ZRANGE")
            .arg(ROOMS)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(names.into_iter().filter_map(|name| RoomId::new(name).ok()).collect())
    }

    /// The last heartbeat of each member of `room`.
    pub async fn last_seen(&self, room: &RoomId) -> Result<HashMap<MemberId, u64>, PresenceError> {
        let pairs: Vec<(String, u64)> = redis::cmd("ZRANGE")
            .arg(room_key(room))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(pairs.into_iter().filter_map(|(m, at)| MemberId::new(m).ok().map(|m| (m, at))).collect())
    }

    /// The last heartbeat of one member of `room`, if any.
    pub async fn seen(
        &self,
        room: &RoomId,
        member: &MemberId,
    ) -> Result<Option<u64>, PresenceError> {
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(room_key(room))
            .arg(member.as_str())
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(score.map(|at| at as u64))
    }

    /// Drops a member's heartbeats (they left).
    pub async fn forget_member(
        &self,
        room: &RoomId,
        member: &MemberId,
    ) -> Result<(), PresenceError> {
        redis::cmd("ZREM")
            .arg(room_key(room))
            .arg(member.as_str())
            .query_async::<()>(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Drops a room (closed, or gone).
    pub async fn forget_room(&self, room: &RoomId) -> Result<(), PresenceError> {
        redis::pipe()
            .del(room_key(room))
            .ignore()
            .zrem(ROOMS, room.as_str())
            .ignore()
            .query_async::<()>(&mut self.redis.clone())
            .await?;
        Ok(())
    }
}
