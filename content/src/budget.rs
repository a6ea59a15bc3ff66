//! The media cache's byte budget (`CHANSHARE_MEDIA_CACHE_BYTES`), kept in Redis for every
//! replica.
//!
//! Four keys index what the object store holds: [`SIZES_KEY`], a hash of object key → bytes for
//! every object stored or being stored; [`BYTES_KEY`], their sum; [`LRU_KEY`], a sorted set of the
//! stored objects by last use (milliseconds on Redis' clock, so replica clocks do not matter); and
//! [`EVICTING_KEY`], objects taken out of the index to be deleted, by when. Every change to them
//! is one Lua script, so two replicas evicting at once pick disjoint victims and the sum stays
//! the sum.
//!
//! A download [reserves](Budget::reserve) its bytes before it is stored: the script takes the
//! least recently used stored objects out of the index until the new one fits and returns them,
//! and the caller deletes them from the store (deleting a missing object is not an error, so a
//! race costs nothing). An object being stored counts against the budget but cannot be evicted
//! until it is [committed](Budget::commit); so the budget is exceeded only by what is being
//! downloaded at that moment, when that alone does not fit. A hit [touches](Budget::touch) its
//! object; a stored object the index does not know (one stored before the budget existed) is
//! counted from then on, unless it is being evicted.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionManager;

/// Hash: object key → its size in bytes, for objects stored or being stored.
pub const SIZES_KEY: &str = "chanshare:media:sizes";
/// The sum of [`SIZES_KEY`], in bytes.
pub const BYTES_KEY: &str = "chanshare:media:bytes";
/// Sorted set: stored object key → last use, in milliseconds on Redis' clock.
pub const LRU_KEY: &str = "chanshare:media:lru";
/// Sorted set: evicted object key → when, in milliseconds (kept ten minutes), so that a hit
/// racing the deletion does not count the object again.
pub const EVICTING_KEY: &str = "chanshare:media:evicting";

/// Redis' clock in milliseconds, as `now`.
const NOW: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
";

/// Builds a script that sees KEYS lru, sizes, bytes, evicting and `now`.
fn script(body: &str) -> Script {
    Script::new(&format!("{NOW}{body}"))
}

/// ARGV: key, size, budget. Returns the evicted keys and their sizes, as `key, size, …`.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local key, size, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 600000)
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
local old = redis.call('HGET', KEYS[2], key)
if old then
  total = total - tonumber(old)
  redis.call('ZREM', KEYS[1], key)
end
local victims = {}
while total + size > budget do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #oldest == 0 then break end
  local victim = oldest[1]
  local bytes = tonumber(redis.call('HGET', KEYS[2], victim) or '0')
  redis.call('ZREM', KEYS[1], victim)
  redis.call('HDEL', KEYS[2], victim)
  redis.call('ZADD', KEYS[4], now, victim)
  total = total - bytes
  table.insert(victims, victim)
  table.insert(victims, string.format('%.0f', bytes))
end
if total < 0 then total = 0 end
redis.call('HSET', KEYS[2], key, ARGV[2])
redis.call('SET', KEYS[3], string.format('%.0f', total + size))
return victims
",
    )
});

/// ARGV: key. The reserved object is stored: it is used now and may be evicted from now on.
static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
end
return 1
",
    )
});

/// ARGV: key, size. A use now of an object that is stored (a hit saw it): one the index counts
/// becomes evictable if it was not yet (its commit failed); one it does not know is counted,
/// unless it was evicted within the last minute (its deletion may be under way).
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
else
  local evicted = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if not evicted or now - tonumber(evicted) > 60000 then
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
    redis.call('INCRBY', KEYS[3], ARGV[2])
    redis.call('ZADD', KEYS[1], now, ARGV[1])
    redis.call('ZREM', KEYS[4], ARGV[1])
  end
end
return 1
",
    )
});

/// ARGV: key. The reserved object could not be stored after all.
static FORGET: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local size = redis.call('HGET', KEYS[2], ARGV[1])
if size then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DECRBY', KEYS[3], size)
end
return 1
",
    )
});

/// ARGV: key, size. A victim that could not be deleted goes back into the index, first in line
/// for the next eviction, unless it is back already.
static RESTORE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
redis.call('ZREM', KEYS[4], ARGV[1])
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('INCRBY', KEYS[3], ARGV[2])
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
end
return 1
",
    )
});

/// An object taken out of the index to make room: delete it from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Victim {
    /// The object key (`{board}/{file}`).
    pub key: String,
    /// Its size as indexed.
    pub bytes: u64,
}

/// The shared index of cached objects and the budget it holds them to.
#[derive(Clone)]
pub struct Budget {
    redis: ConnectionManager,
    bytes: u64,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").field("bytes", &self.bytes).finish_non_exhaustive()
    }
}

impl Budget {
    /// A budget of `bytes` over the index in `redis`.
    pub fn new(redis: ConnectionManager, bytes: u64) -> Self {
        Self { redis, bytes }
    }

    /// The budget in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn invoke<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation.key(LRU_KEY).key(SIZES_KEY).key(BYTES_KEY).key(EVICTING_KEY);
        invocation
    }

    /// Counts `key` (`size` bytes, about to be stored) and takes the least recently used stored
    /// objects out of the index until the total fits the budget; returns them, to be deleted
    /// from the store. An object larger than the whole budget evicts everything and is kept
    /// alone. [`Budget::commit`] once it is stored, [`Budget::forget`] if it could not be.
    pub async fn reserve(&self, key: &str, size: u64) -> Result<Vec<Victim>, redis::RedisError> {
        let flat: Vec<String> = self
            .invoke(&RESERVE)
            .arg(key)
            .arg(size)
            .arg(self.bytes)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(flat
            .chunks_exact(2)
            .map(|pair| Victim { key: pair[0].clone(), bytes: pair[1].parse().unwrap_or(0) })
            .collect())
    }

    /// `key`, reserved, is stored: used now, and evictable from now on.
    pub async fn commit(&self, key: &str) -> Result<(), redis::RedisError> {
        self.invoke(&COMMIT).arg(key).invoke_async(&mut self.redis.clone()).await
    }

    /// Records a use of `key` now (counting its `size` if the index did not know it).
    pub async fn touch(&self, key: &str, size: u64) -> Result<(), redis::RedisError> {
        self.invoke(&TOUCH).arg(key).arg(size).invoke_async(&mut self.redis.clone()).await
    }

    /// Takes `key` out of the index (it could not be stored after all).
    pub async fn forget(&self, key: &str) -> Result<(), redis::RedisError> {
        self.invoke(&FORGET).arg(key).invoke_async(&mut self.redis.clone()).await
    }

    /// Puts back a victim whose deletion failed, first in line for the next eviction.
    pub async fn restore(&self, victim: &Victim) -> Result<(), redis::RedisError> {
        self.invoke(&RESTORE)
            .arg(&victim.key)
            .arg(victim.bytes)
            .invoke_async(&mut self.redis.clone())
            .await
    }
}
