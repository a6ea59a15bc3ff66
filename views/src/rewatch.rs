//! The rewatch cache: `chanshare:rewatch:{room}`, the JSON of the room's session timeline
//! ([`events::timeline::Timeline`]) as far as it was folded. A rewatch extends it by the commits
//! since instead of reading the whole log again; it leaves Redis a day after its last use, and
//! losing it costs one read of the room's log.

use events::RoomId;
use events::timeline::Timeline;
use redis::AsyncCommands;

use crate::{ViewError, Views};

const PREFIX: &str = "chanshare:rewatch:";
/// Sets the timeline (ARGV 1, whose end is at version ARGV 2) for ARGV 3 seconds, unless the one
/// there ends later.
static STORE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local old = redis.call('GET', KEYS[1]) \
         if old then \
           local ok, t = pcall(cjson.decode, old) \
           if ok and type(t) == 'table' and type(t['end']) == 'table' \
             and tonumber(t['end']['version']) and tonumber(t['end']['version']) > tonumber(ARGV[2]) \
           then return 0 end \
         end \
         redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) \
         return 1",
    )
});
/// How long a timeline nobody rewatched stays.
const KEPT_S: u64 = 24 * 3600;

impl Views {
    /// The room's cached timeline; `None` when there is none or it cannot be read.
    pub async fn timeline(&self, room: &RoomId) -> Result<Option<Timeline>, ViewError> {
        let text: Option<String> = self.conn().get_ex(key(room), redis::Expiry::EX(KEPT_S)).await?;
        Ok(text.and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// Caches the room's timeline, unless a longer one is there already.
    pub async fn store_timeline(
        &self,
        room: &RoomId,
        timeline: &Timeline,
    ) -> Result<(), ViewError> {
        let text = serde_json::to_string(timeline).map_err(|e| ViewError::Encode(e.to_string()))?;
        // Two readers that extended the same timeline write the same prefix of the history; the
        // one that got further wins, whatever the order of their writes.
        let _: i64 = STORE
            .key(key(room))
            .arg(text)
            .arg(timeline.end.version)
            .arg(KEPT_S)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }
}

fn key(room: &RoomId) -> String {
    format!("{PREFIX}{room}")
}
