//! Deciding one command: load (or catch up) the room, decide, append, retry on conflict.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use eventlog::{EventLog, LogError};
use events::{Actor, CommandId, Commit, Ctx, Limits, RoomId, RoomState, decide};
use futures::StreamExt;
use tracing::{Instrument as _, debug, warn};

use crate::cache::{Cache, Room};
use crate::metrics::Metrics;
use protocol::{CommandReply, CommandRequest};

/// How long a command keeps being decided again after losing races, before `conflict`. Every
/// lost race means another command was stored, so the room progresses; a replica that keeps
/// losing to a busy peer gets a fair chance within this budget.
const RETRY_BUDGET: Duration = Duration::from_secs(2);
/// How long an outcome that stored nothing (rejection, no-op) is remembered for retries.
const OUTCOME_TTL: Duration = Duration::from_secs(120);
const OUTCOME_CAPACITY: usize = 100_000;

/// Decides commands for any room. Shared by every request task of a replica.
#[derive(Debug)]
pub struct Handler {
    log: EventLog,
    cache: Cache,
    outcomes: Outcomes,
    limits: Limits,
    metrics: Metrics,
}

impl Handler {
    /// A handler appending to `log`, caching about `cache_bytes` of room state.
    pub fn new(log: EventLog, limits: Limits, cache_bytes: usize, metrics: Metrics) -> Self {
        Self { log, cache: Cache::new(cache_bytes), outcomes: Outcomes::default(), limits, metrics }
    }

    /// Estimated bytes of cached room state, and how many rooms are cached.
    pub fn cache_usage(&self) -> (usize, usize) {
        self.cache.usage()
    }

    /// The log this handler appends to.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Decides and stores `request` for `room`. The same command id always gets the same reply.
    pub async fn handle(&self, room: &RoomId, request: CommandRequest) -> CommandReply {
        let name = request.command.name();
        let reply = self.handle_inner(room, request).await;
        self.metrics.commands.with_label_values(&[name, reply.outcome()]).inc();
        reply
    }

    async fn handle_inner(&self, room: &RoomId, request: CommandRequest) -> CommandReply {
        if let Some(reply) = self.outcomes.get(room, &request.actor, request.id) {
            return reply;
        }
        let slot = self.cache.room(room);
        let mut entry = slot.lock().await;
        if !entry.loaded
            && let Err(error) = self.catch_up(room, &mut entry).await
        {
            return unavailable(room, &error);
        }
        let reply = self.decide_and_append(room, &mut entry, &request).await;
        self.cache.reweigh(room, entry.weight());
        reply
    }

    async fn decide_and_append(
        &self,
        room: &RoomId,
        entry: &mut Room,
        request: &CommandRequest,
    ) -> CommandReply {
        let started = Instant::now();
        for attempt in 0.. {
            if let Some(version) = entry.version_of(&request.actor, request.id) {
                return CommandReply::Accepted { version };
            }
            let ctx = Ctx {
                room: room.clone(),
                actor: request.actor.clone(),
                now_ms: now_ms(),
                limits: self.limits,
                // Shuffle draws from the command's own id: a retry decides the same way.
                entropy: request.id.0.as_u128() as u64,
            };
            let decision = decide(&entry.state, request.command.clone(), &ctx);
            if !matches!(&decision, Ok(events) if !events.is_empty()) {
                // A refusal or a no-op stores nothing, so no conflict would reveal a stale cache
                // (another replica may have moved the room): check the head before answering.
                match self.log.head(room).await {
                    Ok(head) if head.map_or(0, |h| h.seq) != entry.seq => {
                        if let Err(error) = self.catch_up(room, entry).await {
                            return unavailable(room, &error);
                        }
                        // Bounded like conflicts: a head that never matches must not spin.
                        if started.elapsed() > RETRY_BUDGET {
                            break;
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) => return unavailable(room, &error),
                }
            }
            let events = match decision {
                Ok(events) if events.is_empty() => {
                    let reply = CommandReply::Accepted { version: entry.state.version };
                    self.outcomes.put(room, &request.actor, request.id, reply.clone());
                    return reply;
                }
                Ok(events) => events,
                Err(rejection) => {
                    let reply = CommandReply::rejected(rejection);
                    self.outcomes.put(room, &request.actor, request.id, reply.clone());
                    return reply;
                }
            };
            let commit = Commit {
                room: room.clone(),
                version: entry.state.version + 1,
                command_id: request.id,
                actor: request.actor.clone(),
                at_ms: ctx.now_ms,
                events,
            };
            let append_started = Instant::now();
            let span = tracing::info_span!("eventlog.append", %room, version = commit.version);
            // The commit carries this span's context: projectors and fan-out continue the trace.
            let traceparent = span
                .in_scope(telemetry::current_traceparent)
                .or_else(|| request.traceparent.clone());
            let appended =
                self.log.append(entry.seq, &commit, traceparent.as_deref()).instrument(span).await;
            self.metrics.append_seconds.observe(append_started.elapsed().as_secs_f64());
            match appended {
                Ok(appended) if !appended.duplicate => {
                    entry.apply(&eventlog::Stored {
                        seq: appended.position.seq,
                        prev_seq: entry.seq,
                        commit,
                        traceparent: request.traceparent.clone(),
                    });
                    return CommandReply::Accepted { version: appended.position.version };
                }
                Ok(appended) => {
                    // Stored before (a retry that another attempt or replica completed).
                    if let Err(error) = self.catch_up(room, entry).await {
                        return unavailable(room, &error);
                    }
                    return CommandReply::Accepted { version: appended.position.version };
                }
                Err(LogError::Conflict { .. }) => {
                    self.metrics.conflicts.inc();
                    if let Err(error) = self.catch_up(room, entry).await {
                        return unavailable(room, &error);
                    }
                    if started.elapsed() > RETRY_BUDGET {
                        break;
                    }
                    self.metrics.retries.inc();
                    tokio::time::sleep(jitter(attempt)).await;
                }
                Err(LogError::Invalid(message)) => return CommandReply::invalid(message),
                Err(error) => return unavailable(room, &error),
            }
        }
        debug!(%room, id = %request.id, "gave up after repeated conflicts");
        CommandReply::Error {
            code: events::RejectCode::Conflict,
            message: "too many concurrent writers, try again".into(),
        }
    }

    /// Reads the room's commits after the cached version and folds them in, starting over from
    /// the room's snapshot when that is ahead (a cold load, or commits that have expired).
    async fn catch_up(&self, room: &RoomId, entry: &mut Room) -> Result<(), LogError> {
        let eventlog::snapshot::CatchUp { snapshot, mut commits, head } =
            self.log.catch_up(room, entry.state.version).await?;
        if let Some(snapshot) = snapshot {
            entry.restore(snapshot);
        }
        if head.is_none() {
            // Every commit has expired (retention) while the room was cached: appends now expect
            // an empty subject, not the sequence of the last commit this replica saw.
            entry.seq = 0;
        }
        while let Some(stored) = commits.next().await {
            let stored = stored?;
            // A gap would mean a skipped commit: refuse to decide on such a state.
            if stored.commit.version != entry.state.version + 1 {
                return Err(LogError::Invalid(format!(
                    "room {room} jumps from version {} to {}",
                    entry.state.version, stored.commit.version
                )));
            }
            entry.apply(&stored);
        }
        entry.loaded = true;
        Ok(())
    }

    /// The room's current state (caught up with the log).
    pub async fn state(&self, room: &RoomId) -> Result<RoomState, LogError> {
        let slot = self.cache.room(room);
        let mut entry = slot.lock().await;
        self.catch_up(room, &mut entry).await?;
        let state = entry.state.clone();
        self.cache.reweigh(room, entry.weight());
        Ok(state)
    }

    /// Issues a command on the server's behalf (`actor` is a member for timeouts, or the server).
    pub async fn issue(
        &self,
        room: &RoomId,
        id: CommandId,
        actor: Actor,
        command: events::Command,
    ) -> CommandReply {
        self.handle(room, CommandRequest { id, actor, command, traceparent: None }).await
    }
}

fn unavailable(room: &RoomId, error: &LogError) -> CommandReply {
    warn!(%room, %error, "command not decided");
    CommandReply::unavailable(error.to_string())
}

/// Full jitter: a random wait below 2^attempt × 100 µs, capped at 3.2 ms. Kept short: the winner
/// of a race has already stored its commit, so the loser should catch up and try again soon,
/// not fall further behind.
fn jitter(attempt: u32) -> Duration {
    let cap_us = 100u64 << attempt.min(5);
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    Duration::from_micros(random % cap_us)
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whose command: outcomes are remembered per actor, like commits (`Room::version_of`).
type OutcomeKey = (RoomId, Actor, CommandId);

/// Replies that stored nothing, remembered for a while so a retry gets the same answer.
#[derive(Debug, Default)]
struct Outcomes {
    inner: Mutex<OutcomesInner>,
}

#[derive(Debug, Default)]
struct OutcomesInner {
    replies: HashMap<OutcomeKey, CommandReply>,
    order: VecDeque<(Instant, OutcomeKey)>,
}

impl Outcomes {
    fn get(&self, room: &RoomId, actor: &Actor, id: CommandId) -> Option<CommandReply> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.replies.get(&(room.clone(), actor.clone(), id)).cloned()
    }

    fn put(&self, room: &RoomId, actor: &Actor, id: CommandId, reply: CommandReply) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while let Some((at, _)) = inner.order.front() {
            if now.duration_since(*at) < OUTCOME_TTL && inner.order.len() < OUTCOME_CAPACITY {
                break;
            }
            if let Some((_, key)) = inner.order.pop_front() {
                inner.replies.remove(&key);
            }
        }
        let key = (room.clone(), actor.clone(), id);
        if inner.replies.insert(key.clone(), reply).is_none() {
            inner.order.push_back((now, key));
        }
    }
}
