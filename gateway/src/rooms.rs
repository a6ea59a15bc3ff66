//! What a socket session needs from the rest of the service, behind one trait.
//!
//! [`Live`] is the service: commands go to the commands role over NATS, commits come from the
//! log and the room's [`Hub`], states from the Redis views, presence from Redis. The fast tier
//! drives the same session code over in-memory channels against an in-memory implementation
//! that decides with `events` alone (`socket/memory.rs`), so the protocol a client meets is
//! tested without servers.

use std::sync::Arc;

use eventlog::{Commits, EventLog, LogError};
use events::{MemberId, RoomId};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use views::Views;

use crate::hub::{Hub, Hubs};

/// The room service as one socket session sees it.
pub trait Rooms: Send + Sync + std::fmt::Debug + 'static {
    /// Decides a command (the commands role's answer).
    fn command<'a>(
        &'a self,
        room: &'a RoomId,
        request: protocol::CommandRequest,
    ) -> BoxFuture<'a, Result<protocol::CommandReply, protocol::RequestError>>;

    /// The room's head version (0: no commit).
    fn head<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<u64, LogError>>;

    /// The room's commits after `after`, up to its head when called.
    fn read<'a>(&'a self, room: &'a RoomId, after: u64)
    -> BoxFuture<'a, Result<Commits, LogError>>;

    /// The room's state JSON and its version for a joining socket (it may trail the head: the
    /// socket then sends the commits after it).
    fn join_state<'a>(&'a self, room: &'a RoomId)
    -> BoxFuture<'a, Result<(u64, String), LogError>>;

    /// The room's fan-out on this process (made when its first socket joins).
    fn hub<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<Arc<Hub>, HubUnavailable>>;

    /// Whether `member` has a socket in `room` on this process.
    fn has_member(&self, room: &RoomId, member: &MemberId) -> bool;

    /// Records that `member` is connected to `room` (best effort).
    fn beat<'a>(&'a self, room: &'a RoomId, member: &'a MemberId, now_ms: u64)
    -> BoxFuture<'a, ()>;

    /// When `member` was last seen connected to `room`, on any process.
    fn seen<'a>(&'a self, room: &'a RoomId, member: &'a MemberId) -> BoxFuture<'a, Option<u64>>;
}

/// The room's fan-out could not be set up (NATS refused the subscription).
#[derive(Debug, thiserror::Error)]
#[error("fan-out unavailable")]
pub struct HubUnavailable;

/// The service: the other roles over NATS, the log, Redis.
#[derive(Debug)]
pub struct Live {
    pub(crate) services: protocol::Client,
    pub(crate) log: EventLog,
    pub(crate) views: Views,
    pub(crate) presence: presence::Presence,
    pub(crate) hubs: Hubs,
}

impl Rooms for Live {
    fn command<'a>(
        &'a self,
        room: &'a RoomId,
        request: protocol::CommandRequest,
    ) -> BoxFuture<'a, Result<protocol::CommandReply, protocol::RequestError>> {
        Box::pin(async move { self.services.command(room, &request).await })
    }

    fn head<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<u64, LogError>> {
        Box::pin(async move { Ok(self.log.head(room).await?.map_or(0, |h| h.version)) })
    }

    fn read<'a>(
        &'a self,
        room: &'a RoomId,
        after: u64,
    ) -> BoxFuture<'a, Result<Commits, LogError>> {
        Box::pin(self.log.read(room, after))
    }

    fn join_state<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<(u64, String), LogError>> {
        // The Redis view even when it trails the head, else folded from the log (Redis down or
        // flushed). Folding for every join while the projectors lag would start a log read per
        // join: a burst of joins hit JetStream's consumer limit (fanout benchmark).
        Box::pin(async move {
            if let Ok(Some(snapshot)) = self.views.stored_state(room).await {
                return Ok((snapshot.version, snapshot.state_json));
            }
            Ok(view_json(&room_state(&self.log, &self.views, room).await?))
        })
    }

    fn hub<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<Arc<Hub>, HubUnavailable>> {
        Box::pin(async move { self.hubs.join(room).await.map_err(|_| HubUnavailable) })
    }

    fn has_member(&self, room: &RoomId, member: &MemberId) -> bool {
        self.hubs.has_member(room, member)
    }

    fn beat<'a>(
        &'a self,
        room: &'a RoomId,
        member: &'a MemberId,
        now_ms: u64,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.presence.beat(room, std::slice::from_ref(member), now_ms).await.ok();
        })
    }

    fn seen<'a>(&'a self, room: &'a RoomId, member: &'a MemberId) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async move { self.presence.seen(room, member).await.ok().flatten() })
    }
}

/// The state as clients get it: its version and the JSON of its view.
pub(crate) fn view_json(state: &events::RoomState) -> (u64, String) {
    (state.version, serde_json::to_string(&state.view()).unwrap_or_default())
}

/// The room's state at the log's head: from the Redis view's fold when it has one (only the
/// commits after it are read, usually a few direct gets), else from the log's snapshot.
pub(crate) async fn room_state(
    log: &EventLog,
    views: &Views,
    room: &RoomId,
) -> Result<events::RoomState, LogError> {
    let base = match views.load(room).await {
        Ok(views::Loaded::At(projection)) => projection.state,
        _ => events::RoomState::default(),
    };
    let eventlog::snapshot::CatchUp { snapshot, mut commits, .. } =
        log.catch_up(room, base.version).await?;
    let mut state = snapshot.map_or(base, |s| s.state);
    while let Some(stored) = commits.next().await {
        state = state.apply(&stored?.commit);
    }
    Ok(state)
}
