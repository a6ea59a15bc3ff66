//! The presence reaper: times out members whose connections are gone, and closes idle rooms.
//!
//! Safe to run in every replica: each issues the same command with the same deterministic id
//! (derived from the room, the member and the room version it decided on, in a namespace derived
//! from the deployment's secret so that no member can pre-empt it), so JetStream's dedupe and the
//! domain's no-op rules let exactly one take effect.
//!
//! Heartbeats can lie: after a Redis restart (or while a gateway stalls) connected members have
//! none. A member missing from the heartbeats is given a full presence timeout from the moment the
//! reaper first noticed, and a room is only idle when nobody in it has a fresh heartbeat, whatever
//! the state says. (A member shown offline while their socket is open is brought back by the
//! gateway, which rejoins for them.)
//!
//! What the reaper reads and does goes through [`Ports`], so its timers run on tokio's paused
//! clock in the fast tier (`tests` below) over an in-memory room.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use events::{Actor, Command, CommandId, LeaveReason, MemberId, RoomId, RoomState};
use presence::Presence;
use tracing::{debug, warn};

use crate::handler::{Handler, now_ms};
use crate::metrics::Metrics;
use protocol::CommandReply;

/// Any failure of a port; logged, and the room is looked at again on the next tick.
pub type PortError = Box<dyn std::error::Error + Send + Sync>;

/// Reaper timings.
#[derive(Debug, Clone, Copy)]
pub struct ReaperConfig {
    /// A member with no heartbeat for this long goes offline.
    pub presence_timeout: Duration,
    /// A room with nobody online for this long is closed.
    pub idle_timeout: Duration,
    /// A room nobody but its creator ever joined, with nobody online for this long, is closed
    /// (spam rooms, and rooms made and never used, stop costing anything soon).
    pub unjoined_timeout: Duration,
    /// How often to look.
    pub interval: Duration,
}

impl Default for ReaperConfig {
    fn default() -> Self {
        Self {
            presence_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30 * 60),
            unjoined_timeout: Duration::from_secs(10 * 60),
            interval: Duration::from_secs(5),
        }
    }
}

/// What the reaper reads and does.
pub trait Ports: Send + Sync {
    /// Server time, ms since the Unix epoch (the clock heartbeats are written in).
    fn now_ms(&self) -> u64;
    /// Rooms with heartbeats.
    fn rooms(&self) -> impl Future<Output = Result<Vec<RoomId>, PortError>> + Send;
    /// A room's current state.
    fn state(&self, room: &RoomId) -> impl Future<Output = Result<RoomState, PortError>> + Send;
    /// The last heartbeat of each member of `room` that has one.
    fn last_seen(
        &self,
        room: &RoomId,
    ) -> impl Future<Output = Result<HashMap<MemberId, u64>, PortError>> + Send;
    /// Decides and stores a command.
    fn issue(
        &self,
        room: &RoomId,
        id: CommandId,
        actor: Actor,
        command: Command,
    ) -> impl Future<Output = CommandReply> + Send;
    /// Drops a closed or vanished room's heartbeats.
    fn forget_room(&self, room: &RoomId) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The production ports: the command handler and Redis heartbeats.
#[derive(Debug, Clone)]
pub struct Live {
    /// Decides the reaper's commands.
    pub handler: Arc<Handler>,
    /// Heartbeats.
    pub presence: Presence,
}

impl Ports for Live {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
    async fn rooms(&self) -> Result<Vec<RoomId>, PortError> {
        Ok(self.presence.rooms().await?)
    }
    async fn state(&self, room: &RoomId) -> Result<RoomState, PortError> {
        Ok(self.handler.state(room).await?)
    }
    async fn last_seen(&self, room: &RoomId) -> Result<HashMap<MemberId, u64>, PortError> {
        Ok(self.presence.last_seen(room).await?)
    }
    async fn issue(
        &self,
        room: &RoomId,
        id: CommandId,
        actor: Actor,
        command: Command,
    ) -> CommandReply {
        self.handler.issue(room, id, actor, command).await
    }
    async fn forget_room(&self, room: &RoomId) -> Result<(), PortError> {
        Ok(self.presence.forget_room(room).await?)
    }
}

/// The reaper of one replica.
#[derive(Debug)]
pub struct Reaper<P> {
    ports: P,
    config: ReaperConfig,
    /// The secret namespace of the reaper's command ids.
    ids: uuid::Uuid,
    metrics: Metrics,
    /// Online members without a heartbeat, and when this replica first noticed.
    missing: HashMap<(RoomId, MemberId), u64>,
}

impl<P: Ports> Reaper<P> {
    /// A reaper issuing its commands through `ports`, with ids in the namespace `ids` (the same
    /// in every replica, unknown to members: see `tokens::Signer::id_namespace`).
    pub fn new(ports: P, config: ReaperConfig, ids: uuid::Uuid, metrics: Metrics) -> Self {
        Self { ports, config, ids, metrics, missing: HashMap::new() }
    }

    /// Looks every `interval` until the task is dropped.
    pub async fn run(mut self) {
        let mut ticks = tokio::time::interval(self.config.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.pass().await;
        }
    }

    /// Looks at every room with heartbeats once.
    pub async fn pass(&mut self) {
        let rooms = match self.ports.rooms().await {
            Ok(rooms) => rooms,
            Err(error) => {
                warn!(%error, "cannot list rooms with presence");
                return;
            }
        };
        let mut missing = HashMap::new();
        for room in rooms {
            if let Err(error) = self.reap_room(&room, &mut missing).await {
                warn!(%room, %error, "presence check failed");
            }
        }
        self.missing = missing;
    }

    async fn reap_room(
        &self,
        room: &RoomId,
        missing: &mut HashMap<(RoomId, MemberId), u64>,
    ) -> Result<(), PortError> {
        let state = self.ports.state(room).await?;
        if !state.exists() || state.closed.is_some() {
            self.ports.forget_room(room).await?;
            return Ok(());
        }
        let seen = self.ports.last_seen(room).await?;
        let now = self.ports.now_ms();
        let timeout = self.config.presence_timeout.as_millis() as u64;
        for member in state.members.iter().filter(|m| m.online) {
            let id = &member.member_id;
            let last = match seen.get(id) {
                Some(at) => *at,
                None => {
                    let key = (room.clone(), id.clone());
                    let since = self.missing.get(&key).copied().unwrap_or(now);
                    missing.insert(key, since);
                    since
                }
            };
            if now.saturating_sub(last) <= timeout {
                continue;
            }
            let command_id =
                CommandId::derived(self.ids, &format!("{room}/{id}/{}", state.version));
            let command = Command::Leave { reason: LeaveReason::Timeout };
            let reply =
                self.ports.issue(room, command_id, Actor::Member(id.clone()), command).await;
            debug!(%room, member = %id, ?reply, "presence timeout");
            if matches!(reply, CommandReply::Accepted { .. }) {
                self.metrics.reaped.with_label_values(&["timeout"]).inc();
            }
        }
        // Idle is decided on heartbeats too: a member the state shows offline but whose socket
        // beats (presence lied, and their gateway is bringing them back) keeps the room open.
        let beating = seen.values().any(|at| now.saturating_sub(*at) <= timeout);
        let idle = if state.members.len() <= 1 {
            self.config.unjoined_timeout.min(self.config.idle_timeout)
        } else {
            self.config.idle_timeout
        };
        let idle = idle.as_millis() as u64;
        if state.online_count() == 0 && !beating && now.saturating_sub(state.updated_ms) > idle {
            let command_id =
                CommandId::derived(self.ids, &format!("{room}/idle/{}", state.version));
            let reply = self.ports.issue(room, command_id, Actor::System, Command::Close).await;
            debug!(%room, ?reply, "idle close");
            if matches!(reply, CommandReply::Accepted { .. }) {
                self.metrics.reaped.with_label_values(&["idle_close"]).inc();
                self.ports.forget_room(room).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The reaper's timers on tokio's paused clock, over an in-memory room that decides and folds
    //! the reaper's commands with the real domain rules.

    use std::sync::Mutex;

    use events::{Commit, Ctx, Settings, Source, decide};

    use super::*;

    const T0: u64 = 1_700_000_000_000;

    /// One room, its heartbeats and the commits the reaper caused.
    struct Memory {
        room: RoomId,
        state: Mutex<RoomState>,
        seen: Mutex<HashMap<MemberId, u64>>,
        issued: Mutex<Vec<(CommandId, Command)>>,
        start: tokio::time::Instant,
    }

    impl Memory {
        fn new(members: &[&str]) -> Arc<Memory> {
            let room = RoomId::new("quiet-room").unwrap();
            let memory = Arc::new(Memory {
                room: room.clone(),
                state: Mutex::default(),
                seen: Mutex::default(),
                issued: Mutex::default(),
                start: tokio::time::Instant::now(),
            });
            let create = Command::CreateRoom {
                title: "t".into(),
                source: Source::Urls(vec!["https://example.com/a.webm".into()]),
                settings: Settings::default(),
                name: "host".into(),
                items: vec![],
                account: None,
            };
            memory.apply(member(members[0]), create);
            for name in &members[1..] {
                memory.apply(
                    member(name),
                    Command::Join { name: (*name).into(), address: None, account: None },
                );
            }
            memory
        }

        fn apply(&self, actor: Actor, command: Command) -> CommandReply {
            let mut state = self.state.lock().unwrap();
            let ctx = Ctx::new(self.room.clone(), actor.clone(), self.now());
            match decide(&state, command, &ctx) {
                Ok(events) if events.is_empty() => {
                    CommandReply::Accepted { version: state.version }
                }
                Ok(events) => {
                    let commit = Commit {
                        room: self.room.clone(),
                        version: state.version + 1,
                        command_id: CommandId(uuid::Uuid::new_v4()),
                        actor,
                        at_ms: ctx.now_ms,
                        events,
                    };
                    *state = std::mem::take(&mut *state).apply(&commit);
                    CommandReply::Accepted { version: state.version }
                }
                Err(rejection) => CommandReply::rejected(rejection),
            }
        }

        fn now(&self) -> u64 {
            T0 + self.start.elapsed().as_millis() as u64
        }

        /// A gateway's heartbeat for `names`.
        fn beat(&self, names: &[&str]) {
            let now = self.now();
            let mut seen = self.seen.lock().unwrap();
            for name in names {
                seen.insert(MemberId::new(*name).unwrap(), now);
            }
        }

        fn online(&self, name: &str) -> bool {
            let state = self.state.lock().unwrap();
            state.members.iter().any(|m| m.member_id.as_str() == name && m.online)
        }

        fn closed(&self) -> bool {
            self.state.lock().unwrap().closed.is_some()
        }
    }

    impl Ports for Arc<Memory> {
        fn now_ms(&self) -> u64 {
            self.now()
        }
        async fn rooms(&self) -> Result<Vec<RoomId>, PortError> {
            Ok(vec![self.room.clone()])
        }
        async fn state(&self, _: &RoomId) -> Result<RoomState, PortError> {
            Ok(self.state.lock().unwrap().clone())
        }
        async fn last_seen(&self, _: &RoomId) -> Result<HashMap<MemberId, u64>, PortError> {
            Ok(self.seen.lock().unwrap().clone())
        }
        async fn issue(
            &self,
            _: &RoomId,
            id: CommandId,
            actor: Actor,
            cmd: Command,
        ) -> CommandReply {
            self.issued.lock().unwrap().push((id, cmd.clone()));
            self.apply(actor, cmd)
        }
        async fn forget_room(&self, _: &RoomId) -> Result<(), PortError> {
            self.seen.lock().unwrap().clear();
            Ok(())
        }
    }

    fn member(name: &str) -> Actor {
        Actor::Member(MemberId::new(name).unwrap())
    }

    fn config() -> ReaperConfig {
        ReaperConfig {
            presence_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            unjoined_timeout: Duration::from_secs(120),
            interval: Duration::from_secs(5),
        }
    }

    fn spawn(memory: &Arc<Memory>, ids: uuid::Uuid) -> tokio::task::JoinHandle<()> {
        let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
        tokio::spawn(Reaper::new(memory.clone(), config(), ids, metrics).run())
    }

    /// Advances the paused clock by `secs` in one-second steps, with `beat` called each second.
    async fn live(secs: u64, mut beat: impl FnMut()) {
        for _ in 0..secs {
            beat();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_whose_heartbeats_stop_goes_offline_after_the_timeout_and_not_before() {
        let memory = Memory::new(&["mhost", "malice"]);
        let reaper = spawn(&memory, uuid::Uuid::from_u128(7));
        live(10, || memory.beat(&["mhost", "malice"])).await;
        // Alice's socket dies; the host's keeps beating.
        live(29, || memory.beat(&["mhost"])).await;
        assert!(memory.online("malice"), "gone for 29 s of a 30 s timeout");
        live(7, || memory.beat(&["mhost"])).await;
        assert!(!memory.online("malice"), "gone for 36 s: the reaper (every 5 s) took her offline");
        assert!(memory.online("mhost"));
        reaper.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn lost_heartbeats_do_not_take_connected_members_offline() {
        let memory = Memory::new(&["mhost", "malice"]);
        let reaper = spawn(&memory, uuid::Uuid::from_u128(7));
        live(60, || memory.beat(&["mhost", "malice"])).await;
        // Redis restarts: every heartbeat is gone at once, and the gateways take 20 s to beat
        // again (a stalled gateway, a slow reconnect). The sockets never closed.
        memory.seen.lock().unwrap().clear();
        live(20, || {}).await;
        live(60, || memory.beat(&["mhost", "malice"])).await;
        assert!(memory.online("mhost") && memory.online("malice"));
        let issued = memory.issued.lock().unwrap();
        assert!(issued.is_empty(), "nobody should have been timed out: {issued:?}");
        drop(issued);
        reaper.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn members_missing_from_the_heartbeats_for_a_whole_timeout_go_offline() {
        let memory = Memory::new(&["mhost", "malice"]);
        let reaper = spawn(&memory, uuid::Uuid::from_u128(7));
        live(10, || memory.beat(&["mhost", "malice"])).await;
        memory.seen.lock().unwrap().clear();
        live(30, || memory.beat(&["mhost"])).await;
        assert!(memory.online("malice"), "missing for 30 s of a 30 s timeout");
        live(6, || memory.beat(&["mhost"])).await;
        assert!(!memory.online("malice"), "missing for 36 s");
        reaper.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_room_closes_after_the_idle_timeout_unless_someone_still_beats() {
        // Everybody's sockets die at 10 s; the reaper times them out at 45 s (the first look
        // after 40 s), and the room closes 10 minutes after that last commit.
        let memory = Memory::new(&["mhost", "malice"]);
        let reaper = spawn(&memory, uuid::Uuid::from_u128(7));
        live(10, || memory.beat(&["mhost", "malice"])).await;
        live(50, || {}).await;
        assert!(!memory.online("mhost") && !memory.online("malice"));
        live(580, || {}).await;
        assert!(!memory.closed(), "idle for less than 10 minutes");
        live(20, || {}).await;
        assert!(memory.closed(), "idle for more than 10 minutes");
        reaper.abort();

        // The state says nobody is online (presence lied), but a socket still beats.
        let memory = Memory::new(&["mhost"]);
        memory.apply(member("mhost"), Command::Leave { reason: LeaveReason::Timeout });
        let reaper = spawn(&memory, uuid::Uuid::from_u128(7));
        live(1200, || memory.beat(&["mhost"])).await;
        assert!(!memory.closed(), "a beating member keeps the room open");
        reaper.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_room_nobody_joined_closes_after_the_shorter_timeout() {
        // Created, and its creator never opened it: offline at 35 s (missing for the 30 s
        // timeout from the reaper's first look), closed two minutes after that.
        let memory = Memory::new(&["mhost"]);
        let reaper = spawn(&memory, uuid::Uuid::from_u128(7));
        live(40, || {}).await;
        assert!(!memory.online("mhost"));
        live(110, || {}).await;
        assert!(!memory.closed(), "quiet for less than 2 minutes");
        live(20, || {}).await;
        assert!(memory.closed(), "quiet for more than 2 minutes, and nobody ever joined");
        reaper.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn replicas_agree_on_command_ids_that_members_cannot_compute() {
        let ids = |namespace| {
            let memory = Memory::new(&["mhost", "malice"]);
            async move {
                let reaper = spawn(&memory, namespace);
                live(10, || memory.beat(&["mhost", "malice"])).await;
                live(40, || memory.beat(&["mhost"])).await;
                reaper.abort();
                memory.issued.lock().unwrap().iter().map(|(id, _)| *id).collect::<Vec<_>>()
            }
        };
        let secret = uuid::Uuid::from_u128(7);
        let (first, second) = (ids(secret).await, ids(secret).await);
        assert_eq!(first.len(), 1);
        assert_eq!(first, second, "two replicas issue the same leave");
        assert_ne!(ids(uuid::Uuid::from_u128(8)).await, first, "the id depends on the secret");
    }
}
