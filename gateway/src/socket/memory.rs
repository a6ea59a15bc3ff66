//! The room service in memory, for driving sessions in the fast tier: commands are decided by
//! `events` alone, commits are kept per room and fanned out through real [`Hub`]s, and a test
//! can lose a commit on the way (as a core NATS message may be) or expire the oldest ones (as
//! retention does).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use eventlog::{Commits, LogError, Stored};
use events::decide::{Ctx, decide};
use events::{Actor, Commit, MemberId, RoomId, RoomState};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use protocol::{CommandReply, CommandRequest, RequestError};

use crate::hub::Hub;
use crate::rooms::{HubUnavailable, Rooms};

/// Rooms in memory.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    rooms: Mutex<HashMap<RoomId, Room>>,
    hubs: Mutex<HashMap<RoomId, Weak<Hub>>>,
    seen: Mutex<HashMap<(RoomId, MemberId), u64>>,
    /// The next commit is stored but not fanned out.
    lose_next: AtomicBool,
    /// Every command is answered with a timeout, as when the commands role is down.
    pub(crate) down: AtomicBool,
    /// Reads of the log and of the views' state (a join from the hub makes neither).
    pub(crate) reads: std::sync::atomic::AtomicUsize,
    /// How long the next commands take to be decided, one delay each (then none).
    pub(crate) delays: Mutex<std::collections::VecDeque<std::time::Duration>>,
    /// Commands being decided now, and the most there ever were at once.
    in_flight: std::sync::atomic::AtomicUsize,
    pub(crate) most_in_flight: std::sync::atomic::AtomicUsize,
}

/// One room: its state and its log.
#[derive(Debug, Default)]
struct Room {
    state: RoomState,
    /// The commits still kept (the first ones may have expired).
    commits: Vec<Stored>,
}

impl Memory {
    /// Decides `command` as `actor` now, like the commands role.
    pub(crate) fn apply(
        &self,
        room: &RoomId,
        actor: Actor,
        command: events::Command,
    ) -> CommandReply {
        self.decide(room, actor, events::CommandId(uuid::Uuid::new_v4()), command)
    }

    /// Decides `command` as `actor` under `command_id`, stores and fans out the commit.
    fn decide(
        &self,
        room: &RoomId,
        actor: Actor,
        command_id: events::CommandId,
        command: events::Command,
    ) -> CommandReply {
        let mut rooms = lock(&self.rooms);
        let entry = rooms.entry(room.clone()).or_default();
        let ctx = Ctx::new(room.clone(), actor.clone(), crate::now_ms());
        let events = match decide(&entry.state, command, &ctx) {
            Ok(events) => events,
            Err(rejection) => return CommandReply::rejected(rejection),
        };
        if events.is_empty() {
            return CommandReply::Accepted { version: entry.state.version };
        }
        let commit = Commit {
            room: room.clone(),
            version: entry.state.version + 1,
            command_id,
            actor,
            at_ms: ctx.now_ms,
            events,
        };
        entry.state = std::mem::take(&mut entry.state).apply(&commit);
        let prev_seq = entry.commits.last().map_or(0, |s| s.seq);
        let stored = Stored { seq: commit.version, prev_seq, commit, traceparent: None };
        entry.commits.push(stored.clone());
        let version = entry.state.version;
        drop(rooms);
        if !self.lose_next.swap(false, Ordering::SeqCst)
            && let Some(hub) = lock(&self.hubs).get(room).and_then(Weak::upgrade)
        {
            hub.feed.publish(&stored);
        }
        CommandReply::Accepted { version }
    }

    /// The room's state now.
    pub(crate) fn state(&self, room: &RoomId) -> RoomState {
        lock(&self.rooms).get(room).map(|r| r.state.clone()).unwrap_or_default()
    }

    /// A heartbeat of `member` from another gateway at `at_ms`.
    pub(crate) fn beat_elsewhere(&self, room: &RoomId, member: &MemberId, at_ms: u64) {
        lock(&self.seen).insert((room.clone(), member.clone()), at_ms);
    }

    /// The next commit is stored but its fan-out message is lost.
    pub(crate) fn lose_next_fanout(&self) {
        self.lose_next.store(true, Ordering::SeqCst);
    }

    /// Retention: the room's commits up to `version` leave the log.
    pub(crate) fn expire(&self, room: &RoomId, version: u64) {
        if let Some(room) = lock(&self.rooms).get_mut(room) {
            room.commits.retain(|s| s.commit.version > version);
        }
    }
}

impl Rooms for Memory {
    fn command<'a>(
        &'a self,
        room: &'a RoomId,
        request: CommandRequest,
    ) -> BoxFuture<'a, Result<CommandReply, RequestError>> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            let delay = lock(&self.delays).pop_front();
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                let timeout = std::time::Duration::from_secs(10);
                tokio::time::sleep(timeout).await;
                return Err(RequestError::Timeout { subject: format!("room {room}"), timeout });
            }
            Ok(self.decide(room, request.actor, request.id, request.command))
        })
    }

    fn head<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<u64, LogError>> {
        Box::pin(async move { Ok(self.state(room).version) })
    }

    fn read<'a>(
        &'a self,
        room: &'a RoomId,
        after: u64,
    ) -> BoxFuture<'a, Result<Commits, LogError>> {
        Box::pin(async move {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let commits: Vec<Stored> = lock(&self.rooms)
                .get(room)
                .map(|r| r.commits.iter().filter(|s| s.commit.version > after).cloned().collect())
                .unwrap_or_default();
            if commits.first().is_some_and(|first| first.commit.version != after + 1) {
                return Err(LogError::Expired { after });
            }
            Ok(futures::stream::iter(commits.into_iter().map(Ok)).boxed())
        })
    }

    fn join_state<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<(u64, String), LogError>> {
        Box::pin(async move {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(crate::rooms::view_json(&self.state(room)))
        })
    }

    fn hub<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<Arc<Hub>, HubUnavailable>> {
        Box::pin(async move {
            let mut hubs = lock(&self.hubs);
            if let Some(hub) = hubs.get(room).and_then(Weak::upgrade) {
                return Ok(hub);
            }
            let hub = Arc::new(Hub::detached(self.state(room)));
            hubs.insert(room.clone(), Arc::downgrade(&hub));
            Ok(hub)
        })
    }

    fn has_member(&self, room: &RoomId, member: &MemberId) -> bool {
        let hub = lock(&self.hubs).get(room).and_then(Weak::upgrade);
        hub.is_some_and(|hub| lock(&hub.members).contains_key(member))
    }

    fn beat<'a>(
        &'a self,
        room: &'a RoomId,
        member: &'a MemberId,
        now_ms: u64,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            lock(&self.seen).insert((room.clone(), member.clone()), now_ms);
        })
    }

    fn seen<'a>(&'a self, room: &'a RoomId, member: &'a MemberId) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async move { lock(&self.seen).get(&(room.clone(), member.clone())).copied() })
    }
}

/// Locks `mutex`, through a poisoning panic (a failed test's, already reported).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
