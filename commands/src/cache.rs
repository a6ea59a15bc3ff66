//! The room cache: folded states with their log position, bounded by (estimated) memory.
//!
//! Each room has an async mutex, so one replica decides one command per room at a time (its
//! own commands never conflict with each other); replicas are fenced by optimistic concurrency.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use eventlog::Stored;
use events::{Actor, CommandId, RoomState};

/// How many recent command ids a room remembers (to answer retries with the original version).
const RECENT: usize = 512;

/// A room's folded state and where in the log it is.
#[derive(Debug, Default)]
pub(crate) struct Room {
    /// Whether the state was read from the log at least once.
    pub(crate) loaded: bool,
    /// The fold.
    pub(crate) state: RoomState,
    /// Stream sequence of `state.version` (0: no commits).
    pub(crate) seq: u64,
    /// Recent commands (actor and id) and the versions they produced.
    recent: VecDeque<(Actor, CommandId, u64)>,
}

impl Room {
    /// Folds one stored commit in.
    pub(crate) fn apply(&mut self, stored: &Stored) {
        self.state = std::mem::take(&mut self.state).apply(&stored.commit);
        self.seq = stored.seq;
        self.recent.push_back((
            stored.commit.actor.clone(),
            stored.commit.command_id,
            stored.commit.version,
        ));
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    /// Starts over from a snapshot. The recent command ids before it are not known: a retry of
    /// one of them is still stored once (JetStream's duplicate window), answered as a duplicate.
    pub(crate) fn restore(&mut self, snapshot: eventlog::Snapshot) {
        self.state = snapshot.state;
        self.seq = snapshot.seq;
        self.recent.clear();
    }

    /// The version `actor`'s command `id` produced, if it is among the recent commits. Another
    /// actor's command with the same id is not a retry of it.
    pub(crate) fn version_of(&self, actor: &Actor, id: CommandId) -> Option<u64> {
        self.recent
            .iter()
            .rev()
            .find(|(by, recent, _)| *recent == id && by == actor)
            .map(|(_, _, version)| *version)
    }

    /// A rough size in bytes, for the cache budget.
    pub(crate) fn weight(&self) -> usize {
        let s = &self.state;
        let opt = |o: &Option<String>| o.as_ref().map_or(0, String::len);
        let items: usize = s
            .playlist
            .iter()
            .map(|i| {
                let m = &i.media;
                160 + m.title.len()
                    + m.url.len()
                    + opt(&m.thumb_url)
                    + opt(&m.post_url)
                    + opt(&m.md5)
                    + opt(&m.source_key)
            })
            .sum();
        let members: usize = s.members.iter().map(|m| 72 + m.name.len()).sum();
        let chat: usize = s.chat.iter().map(|c| 96 + c.text.len()).sum();
        512 + s.title.len() + items + members + chat + self.recent.len() * 24
    }
}

/// Rooms by id, least recently used evicted first once over the byte budget.
#[derive(Debug)]
pub(crate) struct Cache {
    inner: Mutex<Inner>,
    budget: usize,
}

#[derive(Debug, Default)]
struct Inner {
    rooms: HashMap<events::RoomId, Slot>,
    by_use: BTreeMap<u64, events::RoomId>,
    tick: u64,
    bytes: usize,
}

#[derive(Debug)]
struct Slot {
    room: Arc<tokio::sync::Mutex<Room>>,
    last_use: u64,
    weight: usize,
}

impl Cache {
    /// A cache holding about `budget` bytes of room state.
    pub(crate) fn new(budget: usize) -> Self {
        Self { inner: Mutex::new(Inner::default()), budget }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps inconsistent in a way that
        // matters (at worst a stale weight), so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The room's slot, created empty (not loaded) on a miss.
    pub(crate) fn room(&self, id: &events::RoomId) -> Arc<tokio::sync::Mutex<Room>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let Inner { rooms, by_use, .. } = &mut *inner;
        if let Some(slot) = rooms.get_mut(id) {
            by_use.remove(&slot.last_use);
            by_use.insert(tick, id.clone());
            slot.last_use = tick;
            return slot.room.clone();
        }
        let room = Arc::new(tokio::sync::Mutex::new(Room::default()));
        rooms.insert(id.clone(), Slot { room: room.clone(), last_use: tick, weight: 0 });
        by_use.insert(tick, id.clone());
        room
    }

    /// Records a room's new weight after a change and evicts least recently used rooms that
    /// nobody is using until the cache is within budget.
    pub(crate) fn reweigh(&self, id: &events::RoomId, weight: usize) {
        let mut inner = self.lock();
        let Inner { rooms, by_use, bytes, .. } = &mut *inner;
        if let Some(slot) = rooms.get_mut(id) {
            *bytes = *bytes - slot.weight + weight;
            slot.weight = weight;
        }
        let mut skipped = Vec::new();
        while *bytes > self.budget {
            let Some((tick, victim)) = by_use.pop_first() else {
                break;
            };
            let idle = rooms.get(&victim).is_some_and(|s| Arc::strong_count(&s.room) == 1);
            if idle && &victim != id {
                if let Some(slot) = rooms.remove(&victim) {
                    *bytes -= slot.weight;
                }
            } else {
                skipped.push((tick, victim));
            }
        }
        by_use.extend(skipped);
    }

    /// Bytes held (estimated) and rooms cached.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.bytes, inner.rooms.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> events::RoomId {
        events::RoomId::new(format!("room-{n}")).unwrap()
    }

    #[test]
    fn evicts_least_recently_used_rooms_over_budget() {
        let cache = Cache::new(3000);
        for n in 0..5 {
            let room = cache.room(&id(n));
            drop(room);
            cache.reweigh(&id(n), 1000);
        }
        assert_eq!(cache.usage(), (3000, 3));
        // Rooms 2, 3, 4 are left; touching 2 makes 3 the next victim.
        drop(cache.room(&id(2)));
        drop(cache.room(&id(5)));
        cache.reweigh(&id(5), 1000);
        let inner = cache.lock();
        let mut left: Vec<_> = inner.rooms.keys().map(|r| r.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, ["room-2", "room-4", "room-5"]);
    }

    #[test]
    fn a_room_in_use_is_not_evicted() {
        let cache = Cache::new(1000);
        let busy = cache.room(&id(0));
        cache.reweigh(&id(0), 900);
        drop(cache.room(&id(1)));
        cache.reweigh(&id(1), 900);
        assert!(cache.lock().rooms.contains_key(&id(0)), "held by a request");
        drop(busy);
    }
}
