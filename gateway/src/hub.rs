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
/// How soon after a commit arrives the hub checks that none came after it unseen (a core NATS
/// message can be dropped: a slow subscriber, a reconnect).
const HEAD_CHECK: Duration = Duration::from_secs(2);
/// The longest wait between checks: a quiet room is checked less and less often, up to this.
/// (Every hub checking every 2 s was 5 400 JetStream requests a second for 1 800 rooms on six
/// gateways with nothing happening: most of nats-server's CPU in the `scale` benchmark.)
const HEAD_CHECK_MAX: Duration = Duration::from_secs(16);

/// One serialized commit, or consecutive commits sent together (a big room's membership
/// changes, held for [`COALESCE`]); shared, so a room's ring slot holds one pointer.
///
/// A hub's ring allocates all its [`RING`] slots when it is made: with the frame's fields
/// inline (104 bytes) a slot took ~136 bytes, 70 KB per room on every gateway that had one of
/// its members, and 1 800 rooms cost each of the `scale` benchmark's six gateways 120 MB before
/// anything was sent.
#[derive(Debug, Clone)]
pub struct Frame(Arc<FrameData>);

impl std::ops::Deref for Frame {
    type Target = FrameData;

    fn deref(&self) -> &FrameData {
        &self.0
    }
}

/// What a [`Frame`] holds.
#[derive(Debug)]
pub struct FrameData {
    /// The version of its first commit.
    pub first: u64,
    /// The version of its last commit.
    pub version: u64,
    /// When its last commit was decided (server time).
    pub at_ms: u64,
    /// The `commit` frame's text, or for several commits their `commits` frame; shared.
    pub text: Utf8Bytes,
    /// For several commits, each one's version and `commit` frame (what a socket without
    /// `batch=1` is sent, and what a socket already past the first commit is sent of it).
    pub parts: Option<Arc<[(u64, Utf8Bytes)]>>,
    /// Members the commits kicked: their sockets close after it.
    pub kicked: Option<Arc<[events::MemberId]>>,
    /// Members the commits show offline: a socket of theirs that is still open says it is back.
    pub offline: Option<Arc<[events::MemberId]>>,
}

impl Frame {
    /// Serializes `stored` once.
    pub fn of(stored: &Stored) -> Frame {
        Frame::batch(std::slice::from_ref(stored))
    }

    /// Serializes consecutive commits, `batch` not empty, once.
    fn batch(batch: &[Stored]) -> Frame {
        let commits = || batch.iter().map(|stored| &stored.commit);
        let kicked = members(commits(), |event| match event {
            events::Event::MemberLeft { member_id, reason: events::RemovalReason::Kicked } => {
                Some(member_id)
            }
            _ => None,
        });
        let offline = members(commits(), |event| match event {
            events::Event::MemberWentOffline { member_id } => Some(member_id),
            _ => None,
        });
        let texts: Vec<(u64, Utf8Bytes)> = commits()
            .map(|commit| (commit.version, text(&CommitFrame::new(commit)).into()))
            .collect();
        let (first, version, at_ms) = match (batch.first(), batch.last()) {
            (Some(first), Some(last)) => {
                (first.commit.version, last.commit.version, last.commit.at_ms)
            }
            _ => (0, 0, 0),
        };
        let (text, parts) = match texts.as_slice() {
            [(_, one)] => (one.clone(), None),
            many => {
                let text = crate::frames::commits(many.iter().map(|(_, t)| t.as_str()));
                (text.into(), Some(texts.into()))
            }
        };
        Frame(Arc::new(FrameData { first, version, at_ms, text, parts, kicked, offline }))
    }

    /// Whether the commits kicked `member`.
    pub fn kicks(&self, member: &events::MemberId) -> bool {
        self.kicked.as_ref().is_some_and(|kicked| kicked.contains(member))
    }

    /// Whether the commits show `member` offline.
    pub fn takes_offline(&self, member: &events::MemberId) -> bool {
        self.offline.as_ref().is_some_and(|offline| offline.contains(member))
    }

    /// The `commit` frames after version `last`, for a socket that takes them one by one or
    /// is already past the first.
    pub fn after(&self, last: u64) -> Vec<Utf8Bytes> {
        match &self.parts {
            Some(parts) => parts
                .iter()
                .filter(|(version, _)| *version > last)
                .map(|(_, t)| t.clone())
                .collect(),
            None if self.version > last => vec![self.text.clone()],
            None => Vec::new(),
        }
    }
}

/// The members `pick` finds in the commits' events (`None` when there are none: most commits).
fn members<'a>(
    commits: impl Iterator<Item = &'a events::Commit>,
    pick: impl Fn(&'a events::Event) -> Option<&'a events::MemberId>,
) -> Option<Arc<[events::MemberId]>> {
    let found: Vec<_> = commits.flat_map(|c| &c.events).filter_map(pick).cloned().collect();
    (!found.is_empty()).then(|| found.into())
}

/// How long a big room's membership commits are held so that they reach its sockets together
/// (in a room of up to 1 000 members; see [`hold`]).
pub const COALESCE: Duration = Duration::from_millis(250);
/// The hold per member past 1 000 members.
const HOLD_PER_MEMBER: Duration = Duration::from_micros(250);
/// The longest hold (a room of 10 000, the most members a room may have).
const HOLD_MAX: Duration = Duration::from_millis(2_500);
/// The most commits one held batch collects.
const BATCH_MAX: usize = 256;

/// How long the membership commits of a room of `members` are held: not at all up to a page
/// of members, else [`COALESCE`], and longer past 1 000 members, so that the membership churn of
/// a room costs its sockets together at most 4 000 frames a second whatever its size (a room of
/// 10 000 filling at 250 ms made 40 000 frames a second, the whole machine in the `scale`
/// benchmark, and slowed the joins themselves to 20 a second).
fn hold(members: usize) -> Option<Duration> {
    let scaled = HOLD_PER_MEMBER.saturating_mul(u32::try_from(members).unwrap_or(u32::MAX));
    (members > events::view::MEMBER_PAGE).then(|| scaled.clamp(COALESCE, HOLD_MAX))
}

/// Whether `commit` only changes the member list (joins, returns, leaves other than kicks,
/// presence, renames): what a big room's sockets may get a moment late, with others like it.
fn membership_only(commit: &events::Commit) -> bool {
    use events::Event::*;
    commit.events.iter().all(|event| match event {
        MemberLeft { reason, .. } => *reason != events::RemovalReason::Kicked,
        MemberJoined { .. }
        | MemberReturned { .. }
        | MemberWentOffline { .. }
        | MemberRenamed { .. }
        | MemberAddressSeen { .. }
        | AccountBound { .. } => true,
        _ => false,
    })
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
        self.fold(stored);
        self.send(std::slice::from_ref(stored));
    }

    /// Folds a commit into the room's state (joins read it at once, even while its frame is
    /// held).
    fn fold(&self, stored: &Stored) {
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

    /// Sends consecutive commits, already folded, as one frame.
    fn send(&self, batch: &[Stored]) {
        if !batch.is_empty() {
            self.tx.send(Frame::batch(batch)).ok();
        }
    }

    /// How long the room's membership commits are held and sent together, when it is big
    /// enough for that (more members than a view lists).
    fn hold(&self) -> Option<Duration> {
        lock(&self.current).as_ref().and_then(|s| hold(s.members.len()))
    }

    /// `read` of the room as its last commit left it (held ones included), when known; in
    /// place (a big room's state is megabytes: no copy per reader).
    pub fn with_state<R>(&self, read: impl FnOnce(&RoomState) -> R) -> Option<R> {
        lock(&self.current).as_ref().map(read)
    }

    /// The room as its last commit left it (held ones included): its version and view JSON. A
    /// join starts there and skips, of a held frame, what it already has.
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
        if let Some(hub) = self.get(room) {
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

    /// The room's hub, if it has local sockets.
    pub fn get(&self, room: &RoomId) -> Option<Arc<Hub>> {
        self.lock().get(room).and_then(Weak::upgrade)
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
    let mut check = Check::new();
    // Until the state is known, loading it is retried every 2 s on its own clock (the head
    // check waits for a quiet moment, and a busy room, whose hub most needs its state, may
    // have none).
    let mut loads = tokio::time::interval(HEAD_CHECK);
    loads.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut held = Held::default();
    loop {
        tokio::select! {
            message = live.next() => {
                let Some(message) = message else { return };
                match EventLog::decode_live(&message) {
                    Ok(stored) if stored.commit.version <= last => {}
                    Ok(stored) => {
                        if stored.commit.version > last + 1 {
                            let until = stored.commit.version - 1;
                            last = fill(log, room, last, until, &feed, &mut held).await;
                        }
                        check.soon();
                        if stored.commit.version == last + 1 {
                            last = stored.commit.version;
                            let span = tracing::info_span!("gateway.fanout", %room, version = last);
                            telemetry::continue_trace(&span, stored.traceparent.as_deref());
                            let _entered = span.enter();
                            held.publish(&feed, stored);
                        }
                    }
                    Err(error) => warn!(%room, %error, "undecodable live commit"),
                }
            }
            () = due(held.until) => held.flush(&feed),
            _ = loads.tick(), if !feed.loaded() => source.load(&feed, last).await,
            () = check.due() => {
                match log.head(room).await {
                    Ok(Some(head)) if head.version > last => {
                        debug!(%room, last, head = head.version, "filling from the log");
                        last = fill(log, room, last, head.version, &feed, &mut held).await;
                        check.soon();
                    }
                    Ok(_) => check.quiet(),
                    Err(_) => check.soon(),
                }
            }
        }
    }
}

/// When a hub next reads its room's head: [`HEAD_CHECK`] after a commit arrived (or a check
/// found one missing), then twice as long after each check that found nothing, up to
/// [`HEAD_CHECK_MAX`].
struct Check {
    at: tokio::time::Instant,
    gap: Duration,
}

impl Check {
    /// The first check comes soon after the hub starts (its first read of the head may trail).
    fn new() -> Self {
        Self { at: tokio::time::Instant::now() + Duration::from_millis(250), gap: HEAD_CHECK }
    }

    /// Something happened: check again [`HEAD_CHECK`] from now.
    fn soon(&mut self) {
        self.gap = HEAD_CHECK;
        self.at = tokio::time::Instant::now() + HEAD_CHECK;
    }

    /// Nothing was missing: wait longer next time.
    fn quiet(&mut self) {
        self.gap = (self.gap * 2).min(HEAD_CHECK_MAX);
        self.at = tokio::time::Instant::now() + self.gap;
    }

    async fn due(&self) {
        tokio::time::sleep_until(self.at).await;
    }
}

/// A big room's membership commits, held for up to [`hold`] and then sent as one frame.
#[derive(Default)]
struct Held {
    commits: Vec<Stored>,
    until: Option<tokio::time::Instant>,
}

impl Held {
    /// Sends `stored` after what is held; holds it instead when it only changes the member
    /// list of a big room.
    fn publish(&mut self, feed: &Feed, stored: Stored) {
        let hold = feed.hold().filter(|_| membership_only(&stored.commit));
        let Some(hold) = hold else {
            self.flush(feed);
            feed.publish(&stored);
            return;
        };
        feed.fold(&stored);
        self.until.get_or_insert_with(|| tokio::time::Instant::now() + hold);
        self.commits.push(stored);
        if self.commits.len() >= BATCH_MAX {
            self.flush(feed);
        }
    }

    /// Sends what is held.
    fn flush(&mut self, feed: &Feed) {
        self.until = None;
        feed.send(&std::mem::take(&mut self.commits));
    }
}

/// Resolves at `until`; never without one.
async fn due(until: Option<tokio::time::Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

/// Sends the room's commits after `last` up to `until` from the log, as live ones are sent
/// (held with what is held when they only change a big room's members); returns the new last.
async fn fill(
    log: &EventLog,
    room: &RoomId,
    mut last: u64,
    until: u64,
    feed: &Feed,
    held: &mut Held,
) -> u64 {
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
                held.publish(feed, stored);
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

    fn create() -> Command {
        Command::CreateRoom {
            title: "hub".into(),
            source: events::Source::Urls(vec!["https://example.com/a.webm".into()]),
            settings: events::Settings::default(),
            name: "host".into(),
            items: vec![],
            account: None,
        }
    }

    fn host() -> Actor {
        Actor::Member(MemberId::new("mhost").unwrap())
    }

    /// A room's first `n` commits: created, then chat.
    fn commits(n: u64) -> Vec<(Stored, RoomState)> {
        let chat = |v: u64| (host(), Command::Chat { text: format!("line {v}") });
        room((1..=n).map(|v| if v == 1 { (host(), create()) } else { chat(v) }))
    }

    /// The commits of `steps`, decided in order, each with the state after it.
    fn room(steps: impl IntoIterator<Item = (Actor, Command)>) -> Vec<(Stored, RoomState)> {
        let room = RoomId::new("hub-room").unwrap();
        let mut state = RoomState::default();
        (1..)
            .zip(steps)
            .map(|(version, (actor, command))| {
                let ctx = Ctx::new(room.clone(), actor.clone(), 1_000 * version);
                let events = decide(&state, command, &ctx).unwrap();
                let commit = Commit {
                    room: room.clone(),
                    version,
                    command_id: CommandId(uuid::Uuid::from_u128(u128::from(version))),
                    actor,
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

    /// A new member's join.
    fn join(n: usize) -> (Actor, Command) {
        let member = Actor::Member(MemberId::new(format!("m{n}")).unwrap());
        (member, Command::Join { name: format!("m{n}"), address: None, account: None })
    }

    /// Issue 22: a burst of joins in a room of more than a page of members reaches each socket
    /// as a few frames; anything else is sent at once, after what was held.
    #[tokio::test(start_paused = true)]
    async fn a_big_rooms_membership_commits_are_held_and_sent_together() {
        let chat = (host(), Command::Chat { text: "hi".into() });
        let steps = std::iter::once((host(), create()))
            .chain((0..105).map(join))
            .chain([chat])
            .chain((105..107).map(join));
        let commits = room(steps);
        let (five, chat, two) = (&commits[101..106], &commits[106], &commits[107..109]);
        let feed = Feed::new();
        feed.load(commits[100].1.clone()); // 101 members: past the page
        let mut rx = feed.tx.subscribe();
        let mut held = Held::default();
        for (stored, _) in five {
            held.publish(&feed, stored.clone());
        }
        assert!(rx.try_recv().is_err(), "joins are held");
        assert_eq!(feed.snapshot().map(|(v, _)| v), Some(106), "but folded: joins start past them");
        held.publish(&feed, chat.0.clone());
        let batch = rx.try_recv().unwrap();
        assert_eq!((batch.first, batch.version), (102, 106));
        let json: serde_json::Value = serde_json::from_str(batch.text.as_str()).unwrap();
        assert_eq!(json["type"], "commits");
        let versions: Vec<_> = json["commits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["version"].as_u64().unwrap())
            .collect();
        assert_eq!(versions, [102, 103, 104, 105, 106]);
        // A socket already at 104 gets the last two, one frame each.
        let after: Vec<_> = batch.after(104).iter().map(|t| t.as_str().to_owned()).collect();
        assert_eq!(after.len(), 2);
        assert!(after[0].contains(r#""type":"commit","version":105"#), "{}", after[0]);
        let single = rx.try_recv().unwrap();
        assert_eq!((single.first, single.version, single.parts.is_none()), (107, 107, true));
        assert_eq!(feed.snapshot().map(|(v, _)| v), Some(107));

        // Held for COALESCE at most.
        let start = tokio::time::Instant::now();
        for (stored, _) in two {
            held.publish(&feed, stored.clone());
        }
        due(held.until).await;
        assert_eq!(start.elapsed(), COALESCE);
        held.flush(&feed);
        let batch = rx.try_recv().unwrap();
        assert_eq!((batch.first, batch.version), (108, 109));
        assert!(held.until.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_rooms_joins_are_sent_at_once() {
        let commits = room(std::iter::once((host(), create())).chain((0..3).map(join)));
        let feed = Feed::new();
        feed.load(commits[0].1.clone());
        let mut rx = feed.tx.subscribe();
        let mut held = Held::default();
        for (stored, _) in &commits[1..] {
            held.publish(&feed, stored.clone());
            assert_eq!(rx.try_recv().unwrap().version, stored.commit.version);
        }
        assert!(held.until.is_none());
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

    /// Issue 22: the bigger the room, the longer its membership commits are held, so that its
    /// sockets together get at most ~4 000 membership frames a second.
    #[test]
    fn a_bigger_room_holds_its_membership_commits_longer() {
        let ms = |members| hold(members).map(|d| d.as_millis());
        for (members, held_ms) in [
            (100, None),
            (101, Some(250)),
            (1_000, Some(250)),
            (2_000, Some(500)),
            (10_000, Some(2_500)),
            (1_000_000, Some(2_500)),
        ] {
            assert_eq!(ms(members), held_ms, "a room of {members}");
        }
    }

    /// A quiet room's head is read less and less often (2, 4, 8, 16, 16 s), and again 2 s after
    /// anything arrives.
    #[tokio::test(start_paused = true)]
    async fn a_quiet_rooms_head_is_checked_less_often() {
        let mut check = Check::new();
        let wait = |check: &Check| (check.at - tokio::time::Instant::now()).as_secs();
        check.soon();
        assert_eq!(wait(&check), 2);
        let mut waits = Vec::new();
        for _ in 0..5 {
            check.due().await;
            check.quiet();
            waits.push(wait(&check));
        }
        assert_eq!(waits, [4, 8, 16, 16, 16]);
        check.soon();
        assert_eq!(wait(&check), 2);
    }

    /// A hub's ring allocates all its slots up front, in every room on every gateway: a frame
    /// in it is one pointer (inline, its 104 bytes made each room cost a gateway 70 KB).
    #[test]
    fn a_frame_in_the_ring_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Frame>(), std::mem::size_of::<usize>());
    }
}
