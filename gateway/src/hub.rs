//! Fan-out: one core NATS subscription per active room per gateway.
//!
//! A room's hub subscribes to `chanshare.live.<room>` (never the stream subject) when its first
//! local socket joins and unsubscribes when the last one leaves. It keeps the room's commits in
//! version order: a version gap (a lost core message) is filled from the log, and the head is
//! re-read after subscribing and every couple of seconds, because a new subscription may miss a
//! commit stored in its first moments (docs/decisions/0003). Each commit is serialized once and
//! the bytes are shared by every socket through a bounded broadcast ring: a socket that falls a
//! whole ring behind is told so and closed, and resumes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use eventlog::{EventLog, Stored, subjects};
use events::{RoomId, RoomState};
use futures::StreamExt;
use tokio::sync::broadcast;
use tracing::{debug, warn};

use views::Views;

use crate::frames::{CommitFrame, text};

/// Frames a socket may be behind before it is closed as a slow consumer.
pub const RING: usize = 512;
const HEAD_CHECK: Duration = Duration::from_secs(2);

/// One serialized commit.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Its version.
    pub version: u64,
    /// When it was decided (server time).
    pub at_ms: u64,
    /// The `commit` frame's text, shared.
    pub text: Utf8Bytes,
    /// Members the commit kicked: their sockets close after it.
    pub kicked: Option<Arc<[events::MemberId]>>,
    /// Members the commit shows offline: a socket of theirs that is still open says it is back.
    pub offline: Option<Arc<[events::MemberId]>>,
}

impl Frame {
    /// Serializes `stored` once.
    pub fn of(stored: &Stored) -> Frame {
        Frame {
            version: stored.commit.version,
            at_ms: stored.commit.at_ms,
            text: text(&CommitFrame::new(&stored.commit)).into(),
            kicked: members(&stored.commit, |event| match event {
                events::Event::MemberLeft { member_id, reason: events::RemovalReason::Kicked } => {
                    Some(member_id)
                }
                _ => None,
            }),
            offline: members(&stored.commit, |event| match event {
                events::Event::MemberWentOffline { member_id } => Some(member_id),
                _ => None,
            }),
        }
    }

    /// Whether the commit kicked `member`.
    pub fn kicks(&self, member: &events::MemberId) -> bool {
        self.kicked.as_ref().is_some_and(|kicked| kicked.contains(member))
    }

    /// Whether the commit shows `member` offline.
    pub fn takes_offline(&self, member: &events::MemberId) -> bool {
        self.offline.as_ref().is_some_and(|offline| offline.contains(member))
    }
}

/// The members `pick` finds in the commit's events (`None` when there are none: most commits).
fn members(
    commit: &events::Commit,
    pick: impl Fn(&events::Event) -> Option<&events::MemberId>,
) -> Option<Arc<[events::MemberId]>> {
    let found: Vec<_> = commit.events.iter().filter_map(pick).cloned().collect();
    (!found.is_empty()).then(|| found.into())
}

/// A room's fan-out, alive while any local socket holds it.
#[derive(Debug)]
pub struct Hub {
    /// Commits in version order, and the room as they leave it.
    pub feed: Arc<Feed>,
    /// Members with a socket here (and how many sockets each).
    pub members: Mutex<HashMap<events::MemberId, usize>>,
    /// The task that fills the feed from NATS and the log (none when something else fills it).
    pump: Option<tokio::task::AbortHandle>,
}

impl Hub {
    /// A hub whose feed its owner fills with [`Feed::publish`], starting from `state` (the
    /// in-memory rooms of the fast tier).
    #[cfg(test)]
    pub(crate) fn detached(state: RoomState) -> Self {
        let feed = Feed::new();
        feed.load(state);
        Self { feed: Arc::new(feed), members: Mutex::default(), pump: None }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(pump) = &self.pump {
            pump.abort();
        }
    }
}

/// A room's commits as they are sent to its sockets, and the room's state folded up to the
/// last one sent: a socket that joins a room with a hub gets its snapshot from memory instead
/// of Redis or the log (under load the views trail the head, and every join then read the
/// commits after them from the log: hundreds of consumers at once in a soak of 2 000 sockets).
#[derive(Debug)]
pub struct Feed {
    /// Commits in version order.
    pub tx: broadcast::Sender<Frame>,
    /// The state after the last commit sent; `None` until it is known (or when it was lost).
    /// Its JSON is made per join, not kept: a cached copy cost an idle room of 50 members about
    /// 25 KB, half a KiB per socket in the `connections` benchmark.
    current: Mutex<Option<RoomState>>,
}

impl Feed {
    fn new() -> Self {
        Self { tx: broadcast::channel(RING).0, current: Mutex::default() }
    }

    /// The room's state is `state`, whose version is that of the last commit sent or a later
    /// one (the commits up to it are then sent without being folded again).
    pub(crate) fn load(&self, mut state: RoomState) {
        forget_private(&mut state);
        *lock(&self.current) = Some(state);
    }

    /// Whether the room's state is known.
    fn loaded(&self) -> bool {
        lock(&self.current).is_some()
    }

    /// Folds `stored` into the room's state, then sends it to the sockets. Commits come in
    /// version order; one that does not follow the state makes the state unknown (joins then
    /// read it elsewhere) rather than wrong.
    pub fn publish(&self, stored: &Stored) {
        {
            let mut current = lock(&self.current);
            match current.as_mut() {
                Some(state) if state.version + 1 == stored.commit.version => {
                    *state = std::mem::take(state).apply(&stored.commit);
                    forget_private(state);
                }
                // Loaded ahead of the live subject: this commit is in the state already.
                Some(state) if stored.commit.version <= state.version => {}
                Some(_) => *current = None,
                None => {}
            }
        }
        self.tx.send(Frame::of(stored)).ok();
    }

    /// The room as the last commit sent left it: its version and view JSON.
    pub fn snapshot(&self) -> Option<(u64, String)> {
        lock(&self.current).as_ref().map(crate::rooms::view_json)
    }
}

/// Drops what only decisions read (members' address fingerprints, banned addresses): a hub's
/// state is only ever shown, and these are most of an idle room's memory after its members.
fn forget_private(state: &mut RoomState) {
    state.addresses.clear();
    state.banned_addresses.clear();
}

/// Locks `mutex`, through a poisoning panic (the data is still consistent: nothing here panics
/// while holding a lock).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every room's hub on this gateway.
#[derive(Debug, Clone)]
pub struct Hubs {
    client: async_nats::Client,
    log: EventLog,
    views: Views,
    hubs: Arc<Mutex<HashMap<RoomId, Weak<Hub>>>>,
}

impl Hubs {
    /// Hubs subscribing with `client`, filling gaps from `log`, starting from the room's
    /// state in `views` and `log`.
    pub fn new(client: async_nats::Client, log: EventLog, views: Views) -> Self {
        Self { client, log, views, hubs: Arc::default() }
    }

    /// The room's hub, subscribing if it is the first local socket.
    pub async fn join(&self, room: &RoomId) -> Result<Arc<Hub>, async_nats::SubscribeError> {
        if let Some(hub) = self.lock().get(room).and_then(Weak::upgrade) {
            return Ok(hub);
        }
        let subscriber = self.client.subscribe(subjects::live(room)).await?;
        let feed = Arc::new(Feed::new());
        let source =
            Source { log: self.log.clone(), views: self.views.clone(), room: room.clone() };
        let pump = tokio::spawn(pump(source, subscriber, feed.clone()));
        let hub =
            Arc::new(Hub { feed, members: Mutex::default(), pump: Some(pump.abort_handle()) });
        let mut hubs = self.lock();
        // Another socket may have raced us here: keep the first hub.
        if let Some(existing) = hubs.get(room).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        hubs.retain(|_, hub| hub.strong_count() > 0);
        hubs.insert(room.clone(), Arc::downgrade(&hub));
        Ok(hub)
    }

    /// Rooms with local sockets and their members (for presence heartbeats).
    pub fn members(&self) -> Vec<(RoomId, Vec<events::MemberId>)> {
        self.lock()
            .iter()
            .filter_map(|(room, hub)| hub.upgrade().map(|hub| (room.clone(), hub)))
            .map(|(room, hub)| {
                let members =
                    hub.members.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
                (room, members)
            })
            .collect()
    }

    /// Whether `member` has a socket in `room` on this gateway.
    pub fn has_member(&self, room: &RoomId, member: &events::MemberId) -> bool {
        let hub = self.lock().get(room).and_then(Weak::upgrade);
        hub.is_some_and(|hub| {
            hub.members.lock().unwrap_or_else(|p| p.into_inner()).contains_key(member)
        })
    }

    /// How many rooms have a hub.
    pub fn active(&self) -> usize {
        self.lock().values().filter(|hub| hub.strong_count() > 0).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, Weak<Hub>>> {
        self.hubs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where a pump reads what the live subject did not bring.
struct Source {
    log: EventLog,
    views: Views,
    room: RoomId,
}

impl Source {
    /// The room's state when the feed does not know it yet, if it is at `last` (the last commit
    /// sent) or later: the feed then knows it. A busy room's head moves while it is read, so
    /// requiring it to be exactly at `last` left joins without the hub's state for as long as
    /// commits kept coming (regression: `joins_while_the_views_trail_start_from_the_hubs_state`).
    async fn load(&self, feed: &Feed, last: u64) {
        if feed.loaded() {
            return;
        }
        match crate::rooms::room_state(&self.log, &self.views, &self.room).await {
            Ok(state) if state.version >= last => feed.load(state),
            // Behind what was sent (a trailing read): the next check tries again.
            Ok(_) => {}
            Err(error) => {
                warn!(room = %self.room, %error, "cannot load the room state for its hub")
            }
        }
    }
}

/// Moves commits from the subscription (and the log, for gaps) to the feed, in version order.
async fn pump(source: Source, mut live: async_nats::Subscriber, feed: Arc<Feed>) {
    let (log, room) = (&source.log, &source.room);
    let mut last = match log.head(room).await {
        Ok(head) => head.map_or(0, |h| h.version),
        Err(error) => {
            warn!(%room, %error, "cannot read the room head");
            0
        }
    };
    source.load(&feed, last).await;
    let mut checks = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_millis(250),
        HEAD_CHECK,
    );
    loop {
        tokio::select! {
            message = live.next() => {
                let Some(message) = message else { return };
                match EventLog::decode_live(&message) {
                    Ok(stored) if stored.commit.version <= last => {}
                    Ok(stored) => {
                        if stored.commit.version > last + 1 {
                            last = fill(log, room, last, stored.commit.version - 1, &feed).await;
                        }
                        if stored.commit.version == last + 1 {
                            last = stored.commit.version;
                            let span = tracing::info_span!("gateway.fanout", %room, version = last);
                            telemetry::continue_trace(&span, stored.traceparent.as_deref());
                            let _entered = span.enter();
                            feed.publish(&stored);
                        }
                    }
                    Err(error) => warn!(%room, %error, "undecodable live commit"),
                }
            }
            _ = checks.tick() => {
                if let Ok(Some(head)) = log.head(room).await
                    && head.version > last
                {
                    debug!(%room, last, head = head.version, "filling from the log");
                    last = fill(log, room, last, head.version, &feed).await;
                }
                source.load(&feed, last).await;
            }
        }
    }
}

/// Sends the room's commits after `last` up to `until` from the log; returns the new last.
async fn fill(log: &EventLog, room: &RoomId, mut last: u64, until: u64, feed: &Feed) -> u64 {
    let mut commits = match log.read(room, last).await {
        Ok(commits) => commits,
        Err(error) => {
            warn!(%room, %error, "cannot fill a gap from the log");
            return last;
        }
    };
    while let Some(item) = commits.next().await {
        match item {
            Ok(stored) if stored.commit.version == last + 1 && stored.commit.version <= until => {
                last = stored.commit.version;
                feed.publish(&stored);
            }
            Ok(_) => break,
            Err(error) => {
                warn!(%room, %error, "gap fill stopped");
                break;
            }
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use events::{Actor, Command, CommandId, Commit, Ctx, MemberId, RoomId, RoomState, decide};

    use super::*;

    /// A room's first `n` commits: created, then chat.
    fn commits(n: u64) -> Vec<(Stored, RoomState)> {
        let room = RoomId::new("hub-room").unwrap();
        let host = Actor::Member(MemberId::new("mhost").unwrap());
        let mut state = RoomState::default();
        (1..=n)
            .map(|version| {
                let command = if version == 1 {
                    Command::CreateRoom {
                        title: "hub".into(),
                        source: events::Source::Urls(vec!["https://example.com/a.webm".into()]),
                        settings: events::Settings::default(),
                        name: "host".into(),
                        items: vec![],
                        account: None,
                    }
                } else {
                    Command::Chat { text: format!("line {version}") }
                };
                let ctx = Ctx::new(room.clone(), host.clone(), 1_000 * version);
                let events = decide(&state, command, &ctx).unwrap();
                let commit = Commit {
                    room: room.clone(),
                    version,
                    command_id: CommandId(uuid::Uuid::from_u128(u128::from(version))),
                    actor: host.clone(),
                    at_ms: ctx.now_ms,
                    events,
                };
                state = std::mem::take(&mut state).apply(&commit);
                let stored =
                    Stored { seq: version, prev_seq: version - 1, commit, traceparent: None };
                (stored, state.clone())
            })
            .collect()
    }

    /// Regression: a busy room's hub read its state while commits kept coming; a state ahead of
    /// the last commit sent was thrown away, and joins fell back to the trailing views.
    #[test]
    fn a_state_loaded_ahead_of_the_live_commits_is_kept_and_followed() {
        let commits = commits(6);
        let feed = Feed::new();
        feed.publish(&commits[0].0);
        feed.publish(&commits[1].0);
        // Read at version 4 while the live subject has brought 2 so far.
        feed.load(commits[3].1.clone());
        for (stored, _) in &commits[2..] {
            feed.publish(stored);
        }
        let (version, json) = feed.snapshot().expect("the state is known");
        assert_eq!(version, 6);
        assert!(json.contains("line 6") && json.contains("line 3"), "{json}");
        // A commit that skips a version still makes the state unknown rather than wrong.
        let feed = Feed::new();
        feed.load(commits[1].1.clone());
        feed.publish(&commits[3].0);
        assert!(feed.snapshot().is_none());
    }
}
