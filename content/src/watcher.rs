//! The thread watcher: rooms made from live threads gain the thread's new media.
//!
//! Registrations live in Redis (`chanshare:watch`: room → `{"board", "thread"}`). Every replica
//! runs the loop; a lease per room (`chanshare:watch:lease:{room}`, 30 s, renewed) makes one
//! replica poll each thread, and another takes over when the holder dies. A poll goes through
//! the resolver, so a thread is fetched at most every 10 s, with `If-Modified-Since`. A new
//! `Last-Modified` becomes a `refresh_thread` command with the id
//! `uuid5("chanshare-watcher", "<room>/<last-modified>")`, so a double refresh adds nothing.
//! Watching stops when the thread is archived, closed or gone (or its board is), or the room is
//! closed. At most `CHANSHARE_MAX_THREAD_WATCHES` rooms are registered at once: [`register`]
//! refuses a new room beyond that.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use events::{Actor, Command, CommandId, RejectCode, RoomId};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::resolver::{MIN_REFRESH, ResolveError, Resolver};

const WATCHES: &str = "chanshare:watch";
const LEASE_MS: u64 = 30_000;

/// A watched thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    /// Board.
    pub board: String,
    /// Thread number.
    pub thread: u64,
}

/// Registers `room` as following `watch`, unless `limit` rooms are registered already (a room
/// that is registered is updated whatever the count): `Ok(false)` when refused. Atomic across
/// replicas.
pub async fn register(
    redis: &ConnectionManager,
    room: &RoomId,
    watch: &Watch,
    limit: usize,
) -> Result<bool, redis::RedisError> {
    const REGISTER: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0";
    let json = serde_json::to_string(watch).unwrap_or_default();
    let registered: u8 = redis::Script::new(REGISTER)
        .key(WATCHES)
        .arg(room.as_str())
        .arg(json)
        .arg(limit)
        .invoke_async(&mut redis.clone())
        .await?;
    Ok(registered == 1)
}

async fn forget(redis: &ConnectionManager, room: &str) {
    let mut redis = redis.clone();
    redis::pipe()
        .hdel(WATCHES, room)
        .ignore()
        .del(format!("chanshare:watch:lease:{room}"))
        .ignore()
        .query_async::<()>(&mut redis)
        .await
        .ok();
}

/// Takes or renews the room's lease; true while this replica holds it.
async fn hold_lease(
    redis: &ConnectionManager,
    room: &str,
    owner: &str,
) -> Result<bool, redis::RedisError> {
    const LEASE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0";
    let held: u8 = redis::Script::new(LEASE)
        .key(format!("chanshare:watch:lease:{room}"))
        .arg(owner)
        .arg(LEASE_MS)
        .invoke_async(&mut redis.clone())
        .await?;
    Ok(held == 1)
}

/// Runs the watcher loop until the task is dropped.
pub async fn run(
    resolver: Resolver,
    redis: ConnectionManager,
    commands: protocol::Client,
    tick: Duration,
    ids: uuid::Uuid,
) {
    let owner = uuid::Uuid::new_v4().to_string();
    let mut polled: HashMap<String, Instant> = HashMap::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let watches: HashMap<String, String> =
            match redis::cmd("HGETALL").arg(WATCHES).query_async(&mut redis.clone()).await {
                Ok(watches) => watches,
                Err(error) => {
                    warn!(%error, "cannot read thread watches");
                    continue;
                }
            };
        for (room, json) in watches {
            let (Ok(room_id), Ok(watch)) =
                (RoomId::new(room.as_str()), serde_json::from_str::<Watch>(&json))
            else {
                forget(&redis, &room).await;
                continue;
            };
            match hold_lease(&redis, &room, &owner).await {
                Ok(true) => {}
                Ok(false) => {
                    polled.remove(&room);
                    continue;
                }
                Err(error) => {
                    warn!(%room, %error, "cannot take the watch lease");
                    continue;
                }
            }
            if polled.get(&room).is_some_and(|at| at.elapsed() < MIN_REFRESH) {
                continue;
            }
            polled.insert(room.clone(), Instant::now());
            let resolution = match resolver
                .resolve(&watch.board, watch.thread, Duration::from_secs(5))
                .await
            {
                Ok(resolution) => resolution,
                Err(
                    ResolveError::NotFound
                    | ResolveError::Invalid(_)
                    | ResolveError::UnknownBoard(_)
                    | ResolveError::NotWorksafe,
                ) => {
                    info!(%room, board = watch.board, thread = watch.thread, "thread gone: stop watching");
                    forget(&redis, &room).await;
                    continue;
                }
                Err(error) => {
                    debug!(%room, %error, "thread poll failed");
                    continue;
                }
            };
            if seen.get(&room) != Some(&resolution.last_modified) {
                let id = CommandId::derived(ids, &format!("{room}/{}", resolution.last_modified));
                let command = Command::RefreshThread { items: resolution.resolved.items.clone() };
                match refresh(&commands, &room_id, id, command).await {
                    Ok(()) => {
                        seen.insert(room.clone(), resolution.last_modified.clone());
                    }
                    Err(Stop) => {
                        forget(&redis, &room).await;
                        continue;
                    }
                }
            }
            if resolution.resolved.archived {
                info!(%room, board = watch.board, thread = watch.thread, "thread archived: stop watching");
                forget(&redis, &room).await;
            }
        }
    }
}

struct Stop;

/// Sends the refresh to the commands service; `Err(Stop)` when the room is closed or gone.
async fn refresh(
    commands: &protocol::Client,
    room: &RoomId,
    id: CommandId,
    command: Command,
) -> Result<(), Stop> {
    let request = protocol::CommandRequest { id, actor: Actor::System, command, traceparent: None };
    match commands.command(room, &request).await {
        Ok(protocol::CommandReply::Accepted { .. }) => Ok(()),
        Ok(
            protocol::CommandReply::Rejected { code, .. }
            | protocol::CommandReply::Error { code, .. },
        ) if code == RejectCode::Closed || code == RejectCode::NotFound => Err(Stop),
        Ok(reply) => {
            warn!(%room, ?reply, "refresh not accepted");
            Ok(())
        }
        Err(error) => {
            warn!(%room, %error, "refresh not sent");
            Ok(())
        }
    }
}
