//! The fast tier's socket sessions: the real session code over in-memory channels against the
//! rooms in memory (no servers). What a client meets: the join and its frames, commands and
//! their replies, commits in order exactly once (a lost fan-out filled from the log), resume and
//! its fall-back to a snapshot, refusals with their close codes, and the timers (idle, a client
//! that stops reading, a service that does not answer, the leave grace) on tokio's paused clock.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::Message;
use events::{Actor, Command, MemberId, RoomId, Settings, Source};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::memory::Memory;
use super::{JOINS_IN_FLIGHT, Params, SessionParts, Sessions, Transport, run};
use crate::frames::close;
use crate::limits::GatewayLimits;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

/// The server's end of an in-memory connection.
struct Channels {
    from_client: mpsc::Receiver<Message>,
    to_client: mpsc::Sender<Message>,
}

impl Transport for Channels {
    async fn recv(&mut self) -> Option<Result<Message, axum::Error>> {
        self.from_client.recv().await.map(Ok)
    }

    async fn send(&mut self, message: Message) -> Result<(), axum::Error> {
        self.to_client.send(message).await.map_err(axum::Error::new)
    }
}

/// One room in memory with its host, and the sessions of one gateway.
struct World {
    memory: Arc<Memory>,
    sessions: Sessions,
    room: RoomId,
    host: MemberId,
    shutdown: watch::Sender<bool>,
}

impl World {
    fn new() -> Self {
        Self::with(GatewayLimits::default())
    }

    fn with(limits: GatewayLimits) -> Self {
        let memory = Arc::new(Memory::default());
        let room = RoomId::new("memory-room").unwrap();
        let host = MemberId::new("mhost").unwrap();
        let create = Command::CreateRoom {
            title: "A room in memory".into(),
            source: Source::Urls(vec![
                "https://example.com/a.webm".into(),
                "https://example.com/b.webm".into(),
            ]),
            settings: Settings::default(),
            name: "host".into(),
            items: vec![],
            account: None,
        };
        memory.apply(&room, Actor::Member(host.clone()), create);
        let (shutdown, stopping) = watch::channel(false);
        let sessions = Sessions::new(SessionParts {
            rooms: memory.clone(),
            signer: tokens::Signer::new(b"a secret for the fast tier, 32 bytes or more"),
            limits,
            epoch: "epoch-1".into(),
            token_ttl: Duration::from_secs(3600),
            shutdown: stopping,
            metrics: crate::Metrics::new(&prometheus::Registry::new()).unwrap(),
            misses: Arc::default(),
            accounts: None,
        });
        Self { memory, sessions, room, host, shutdown }
    }

    /// A client that opens a socket with `query` (`name=..&token=..&resume=..&epoch=..`).
    fn connect(&self, query: &str) -> Client {
        self.connect_buffered(query, 64)
    }

    /// [`Self::connect`] whose incoming channel holds `capacity` frames.
    fn connect_buffered(&self, query: &str, capacity: usize) -> Client {
        let params: Params = params(query);
        let (to_server, from_client) = mpsc::channel(64);
        let (to_client, from_server) = mpsc::channel(capacity);
        let channels = Channels { from_client, to_client };
        let session =
            tokio::spawn(run(self.sessions.clone(), channels, self.room.clone(), params, IP));
        Client { to_server, from_server, session }
    }

    /// Applies `command` as the host.
    fn host_does(&self, command: Command) {
        let answer = self.memory.apply(&self.room, Actor::Member(self.host.clone()), command);
        assert!(matches!(answer, protocol::CommandReply::Accepted { .. }), "{answer:?}");
    }

    fn version(&self) -> u64 {
        self.memory.state(&self.room).version
    }
}

/// `a=1&b=x` into the socket's parameters, as axum's `Query` reads them (without
/// percent-decoding: the tests' values need none).
fn params(query: &str) -> Params {
    let mut params = Params::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "name" => params.name = Some(value.into()),
            "token" => params.token = Some(value.into()),
            "resume" => params.resume = value.parse().ok(),
            "epoch" => params.epoch = Some(value.into()),
            "batch" => params.batch = value.parse().ok(),
            other => panic!("unknown parameter {other}"),
        }
    }
    params
}

/// The client's end.
struct Client {
    to_server: mpsc::Sender<Message>,
    from_server: mpsc::Receiver<Message>,
    session: tokio::task::JoinHandle<()>,
}

/// What a client receives.
#[derive(Debug)]
enum Got {
    Frame(Value),
    Closed(u16, String),
}

impl Client {
    async fn got(&mut self) -> Got {
        let message = tokio::time::timeout(Duration::from_secs(120), self.from_server.recv())
            .await
            .expect("a frame within 120 s")
            .expect("the session sent a close before ending");
        match message {
            Message::Text(text) => Got::Frame(serde_json::from_str(&text).unwrap()),
            Message::Close(Some(frame)) => Got::Closed(frame.code, frame.reason.to_string()),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The next text frame.
    async fn frame(&mut self) -> Value {
        match self.got().await {
            Got::Frame(frame) => frame,
            Got::Closed(code, reason) => panic!("closed {code}: {reason}"),
        }
    }

    /// The next frame of `kind`, skipping others.
    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.frame().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// The close code and reason, skipping frames before it.
    async fn closed(&mut self) -> (u16, String) {
        loop {
            if let Got::Closed(code, reason) = self.got().await {
                return (code, reason);
            }
        }
    }

    async fn send_text(&self, text: impl Into<String>) {
        self.to_server.send(Message::Text(text.into().into())).await.unwrap();
    }

    /// Sends a command; its id.
    async fn command(&self, command: Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.send_text(json!({"type": "command", "id": id, "command": command}).to_string()).await;
        id
    }

    /// The welcome and (unless resumed) snapshot of a join.
    async fn joined(&mut self) -> (Value, Option<Value>) {
        let welcome = self.frame().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        if welcome["recovered"] == true {
            return (welcome, None);
        }
        let snapshot = self.frame().await;
        assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
        (welcome, Some(snapshot))
    }

    async fn reply_to(&mut self, id: &str) -> Value {
        loop {
            let frame = self.frame().await;
            if frame["id"] == id {
                return frame;
            }
        }
    }
}

/// Nothing is queued for the client: a ping's pong is the next frame (no commit twice).
async fn assert_nothing_more(client: &mut Client) {
    client.send_text(r#"{"type":"ping","t":99}"#).await;
    let next = client.frame().await;
    assert_eq!(next["type"], "pong", "nothing before the pong: {next}");
}

fn versions_of(commits: &[Value]) -> Vec<u64> {
    commits.iter().map(|c| c["version"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_new_member_gets_a_welcome_a_snapshot_then_every_commit_once_in_order() {
    let world = World::new();
    let mut client = world.connect("name=ann");
    let (welcome, snapshot) = client.joined().await;
    let snapshot = snapshot.unwrap();
    assert_eq!(welcome["recovered"], false);
    assert_eq!(welcome["epoch"], "epoch-1");
    assert_eq!(welcome["version"], world.version());
    assert_eq!(snapshot["version"], world.version());
    let me = welcome["member_id"].as_str().unwrap().to_owned();
    let members = snapshot["state"]["members"].as_array().unwrap();
    assert!(members.iter().any(|m| m["member_id"] == me && m["name"] == "ann"), "{snapshot}");

    let joined_at = world.version();
    world.host_does(Command::Play);
    world.host_does(Command::Seek { position_ms: 5_000 });
    world.host_does(Command::Pause);
    let commits = vec![client.frame().await, client.frame().await, client.frame().await];
    assert_eq!(versions_of(&commits), [joined_at + 1, joined_at + 2, joined_at + 3]);
    assert_nothing_more(&mut client).await;
    let seek = &commits[1]["events"][0];
    assert_eq!((&seek["type"], &seek["cause"]), (&json!("playback_changed"), &json!("seek")));
    assert_eq!(seek["playback"]["position_ms"], 5_000, "{seek}");
}

#[tokio::test]
async fn a_command_is_acked_with_its_version_and_its_commit_reaches_every_socket() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    ann.joined().await;
    let mut bob = world.connect("name=bob");
    bob.joined().await;
    let bob_joined = ann.next_of("commit").await;
    assert_eq!(bob_joined["events"][0]["type"], "member_joined", "{bob_joined}");

    let id = ann.command(json!({"type": "chat", "text": "hello"})).await;
    let ack = ann.reply_to(&id).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["version"], world.version());
    let seen_by_bob = bob.next_of("commit").await;
    assert_eq!(seen_by_bob["version"], world.version());
    assert_eq!(seen_by_bob["events"][0]["message"]["text"], "hello", "{seen_by_bob}");
    assert_eq!(seen_by_bob["command_id"], id);
}

/// Each command waits for the one the socket sent before it, though the service decides the
/// later ones faster.
#[tokio::test(start_paused = true)]
async fn a_socket_sends_its_commands_in_the_order_it_sent_them() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    ann.joined().await;
    lock(&world.memory.delays).extend([500, 400, 300, 200, 100].map(Duration::from_millis));
    let mut ids = Vec::new();
    for position_ms in [1_000, 2_000, 3_000, 4_000, 5_000] {
        ids.push(ann.command(json!({"type": "seek", "position_ms": position_ms})).await);
    }
    let mut versions = Vec::new();
    for id in &ids {
        let ack = ann.reply_to(id).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        versions.push(ack["version"].as_u64().unwrap());
    }
    assert!(versions.is_sorted(), "decided in the order sent: {versions:?}");
    assert_eq!(world.memory.state(&world.room).playback.position_ms, 5_000);
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap()
}

#[tokio::test]
async fn bad_frames_are_refused_each_with_a_reason_and_change_nothing() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    ann.joined().await;
    let before = world.version();
    let cases = [
        ("not json", "bad frame"),
        (r#"{"type":"dance"}"#, "bad frame"),
        (r#"{"type":"command","id":"not-a-uuid","command":{"type":"play"}}"#, "uuid"),
        (
            r#"{"type":"command","id":"6c1f0a52-3a8c-4f0e-9d55-5d4bb2f0b7a1","command":{"type":"fly"}}"#,
            "bad command",
        ),
        (
            r#"{"type":"command","id":"6c1f0a52-3a8c-4f0e-9d55-5d4bb2f0b7a2","command":{"type":"join","name":"x"}}"#,
            "not a client command",
        ),
        (r#"{"type":"ping","t":"soon"}"#, "bad frame"),
    ];
    for (frame, reason) in cases {
        ann.send_text(frame).await;
        let answer = ann.frame().await;
        assert_eq!(answer["type"], "reject", "{frame}: {answer}");
        assert_eq!(answer["code"], "invalid", "{frame}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains(reason), "{frame}: {answer}");
    }
    ann.to_server.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    let answer = ann.frame().await;
    assert!(answer["message"].as_str().unwrap().contains("binary"), "{answer}");
    // A ping is answered with the server's time, and the socket still works.
    ann.send_text(r#"{"type":"ping","t":12.5}"#).await;
    let pong = ann.frame().await;
    assert_eq!((pong["type"].as_str(), pong["t"].as_f64()), (Some("pong"), Some(12.5)));
    assert_eq!(world.version(), before, "nothing was decided");
}

#[tokio::test]
async fn a_flood_of_commands_is_rate_limited() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    ann.joined().await;
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(ann.command(json!({"type": "chat", "text": format!("spam {n}")})).await);
    }
    // Refusals are answered at once, acks once decided: count replies, in any order.
    let mut replies = std::collections::HashMap::new();
    while replies.len() < ids.len() {
        let frame = ann.frame().await;
        if let Some(id) = frame["id"].as_str() {
            // The bucket's refusals (not those of commands waiting for their answers).
            let bucket = frame["message"] == "too many commands: slow down";
            replies.insert(id.to_owned(), bucket);
        }
    }
    let limited = replies.values().filter(|limited| **limited).count();
    // A burst of 20 passes; the rest of the 40 (sent at once) is refused, but for what the
    // bucket refills (10 a second) while they are handled.
    assert!((10..=20).contains(&limited), "{limited} of 40 refused");
}

#[tokio::test]
async fn a_resume_gets_only_the_commits_it_missed_and_no_snapshot() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    let (welcome, _) = ann.joined().await;
    let token = welcome["token"].as_str().unwrap().to_owned();
    let me = welcome["member_id"].clone();
    let have = world.version();
    drop(ann);
    world.host_does(Command::Play);
    world.host_does(Command::Seek { position_ms: 9_000 });

    let mut back = world.connect(&format!("token={token}&resume={have}&epoch=epoch-1"));
    let (welcome, _) = back.joined().await;
    assert_eq!(welcome["recovered"], true, "{welcome}");
    assert_eq!(welcome["member_id"], me, "the token keeps the member");
    // The missed commits, then the rejoin's own (the member is marked online again if needed).
    let first = back.frame().await;
    let second = back.frame().await;
    assert_eq!(versions_of(&[first, second]), [have + 1, have + 2]);
}

#[tokio::test]
async fn a_resume_from_another_epoch_or_from_expired_commits_gets_a_snapshot() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    let (welcome, _) = ann.joined().await;
    let token = welcome["token"].as_str().unwrap().to_owned();
    let have = world.version();
    drop(ann);
    for position_ms in [1_000, 2_000, 3_000] {
        world.host_does(Command::Seek { position_ms });
    }

    let mut other_epoch = world.connect(&format!("token={token}&resume={have}&epoch=epoch-0"));
    let (welcome, snapshot) = other_epoch.joined().await;
    assert_eq!(welcome["recovered"], false);
    assert_eq!(snapshot.unwrap()["state"]["playback"]["position_ms"], 3_000);
    drop(other_epoch);

    world.memory.expire(&world.room, have + 1);
    let mut expired = world.connect(&format!("token={token}&resume={have}&epoch=epoch-1"));
    let (welcome, snapshot) = expired.joined().await;
    assert_eq!(welcome["recovered"], false, "commits after {have} have expired");
    assert_eq!(snapshot.unwrap()["version"].as_u64(), Some(world.version()));
}

#[tokio::test]
async fn a_commit_lost_by_the_fan_out_is_read_from_the_log_before_the_next() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    ann.joined().await;
    let before = world.version();
    world.memory.lose_next_fanout();
    world.host_does(Command::Seek { position_ms: 1_000 });
    world.host_does(Command::Seek { position_ms: 2_000 });
    let first = ann.frame().await;
    let second = ann.frame().await;
    assert_eq!(versions_of(&[first.clone(), second]), [before + 1, before + 2]);
    assert_eq!(first["events"][0]["playback"]["position_ms"], 1_000, "{first}");
    assert_nothing_more(&mut ann).await;
    // The hub no longer knows the room's state: a newcomer's comes from the views instead.
    let reads = world.memory.reads.load(Ordering::SeqCst);
    let (_, snapshot) = world.connect("name=bob").joined().await;
    assert_eq!(snapshot.unwrap()["state"]["playback"]["position_ms"], 2_000);
    assert!(world.memory.reads.load(Ordering::SeqCst) > reads);
}

#[tokio::test]
async fn refused_joins_close_with_their_codes() {
    let world = World::new();
    let cases = [
        ("token=forged.token", close::BAD_TOKEN),
        ("", close::BAD_REQUEST),
        (&*format!("name={}", "n".repeat(40)), close::BAD_REQUEST),
    ];
    for (query, code) in cases {
        let mut client = world.connect(query);
        assert_eq!(client.closed().await.0, code, "{query}");
    }

    let mut elsewhere = World::new();
    elsewhere.room = RoomId::new("no-such-room").unwrap();
    assert_eq!(elsewhere.connect("name=ann").closed().await.0, close::NOT_FOUND);
    let key = tokens::subscriber(IP);
    let misses = &elsewhere.sessions.0.misses;
    assert!(misses.spent(&key, 1, std::time::Instant::now()), "the miss counts for the address");

    world.host_does(Command::Close);
    assert_eq!(world.connect("name=late").closed().await.0, close::CLOSED);
}

#[tokio::test]
async fn a_kicked_member_gets_the_commit_then_the_close() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    let (welcome, _) = ann.joined().await;
    let ann_id = MemberId::new(welcome["member_id"].as_str().unwrap()).unwrap();
    world.host_does(Command::Kick { member_id: ann_id.clone() });
    let kick = ann.frame().await;
    assert_eq!(kick["events"][0]["type"], "member_left", "{kick}");
    assert_eq!(ann.closed().await, (close::FORBIDDEN, "removed from this room".into()));

    // The ban holds for the token.
    let token = welcome["token"].as_str().unwrap();
    assert_eq!(world.connect(&format!("token={token}")).closed().await.0, close::FORBIDDEN);
}

#[tokio::test]
async fn shutting_down_tells_every_socket_to_go_away() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    ann.joined().await;
    world.shutdown.send(true).unwrap();
    assert_eq!(ann.closed().await.0, close::GOING_AWAY);
}

#[tokio::test(start_paused = true)]
async fn a_silent_socket_is_closed_after_the_idle_limit_and_a_ping_keeps_it() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    ann.joined().await;
    tokio::time::sleep(Duration::from_secs(50)).await;
    ann.send_text(r#"{"type":"ping","t":1}"#).await;
    assert_eq!(ann.frame().await["type"], "pong");
    tokio::time::sleep(Duration::from_secs(50)).await;
    // 100 s after joining, 50 s after the ping: still open.
    ann.send_text(r#"{"type":"ping","t":2}"#).await;
    assert_eq!(ann.frame().await["type"], "pong");
    let started = tokio::time::Instant::now();
    assert_eq!(ann.closed().await.0, close::IDLE);
    assert_eq!(started.elapsed().as_secs(), 60);
}

/// A client that stops reading blocks nobody else, and its session ends (freeing its slot and
/// its hub place) though the client never reads again: before, the closing frame waited for
/// room in the client's buffer for ever.
#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_dropped_without_blocking_the_room() {
    let world = World::new();
    let mut reader = world.connect("name=reader");
    reader.joined().await;
    let mut stalled = world.connect_buffered("name=stalled", 4);
    stalled.joined().await;
    let reader_before = reader.next_of("commit").await["version"].as_u64().unwrap();
    for position_ms in 1..=10 {
        world.host_does(Command::Seek { position_ms });
    }
    // The reader gets all of them at once, though the other socket stopped reading.
    for n in 1..=10 {
        assert_eq!(reader.frame().await["version"].as_u64(), Some(reader_before + n));
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(stalled.session.is_finished(), "the stalled session ended");
    let slow = close::SLOW_CONSUMER.to_string();
    assert_eq!(world.sessions.0.metrics.closes.with_label_values(&[&slow]).get(), 1);
    // What it had room for, then nothing (the close frame found no room either).
    let mut kept = 0;
    while let Some(message) = stalled.from_server.recv().await {
        assert!(matches!(message, Message::Text(_)), "{message:?}");
        kept += 1;
    }
    assert_eq!(kept, 4);
}

#[tokio::test(start_paused = true)]
async fn a_command_the_service_does_not_answer_is_refused_as_unavailable() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    ann.joined().await;
    world.memory.down.store(true, Ordering::SeqCst);
    let id = ann.command(json!({"type": "play"})).await;
    let answer = ann.reply_to(&id).await;
    assert_eq!(
        (answer["type"].as_str(), answer["code"].as_str()),
        (Some("reject"), Some("unavailable"))
    );
    // The socket lives on: a ping still answers.
    ann.send_text(r#"{"type":"ping","t":3}"#).await;
    assert_eq!(ann.frame().await["type"], "pong");
}

#[tokio::test(start_paused = true)]
async fn a_clean_close_leaves_after_the_grace_unless_the_member_is_back() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    let (welcome, _) = ann.joined().await;
    let token = welcome["token"].as_str().unwrap().to_owned();
    let ann_id = MemberId::new(welcome["member_id"].as_str().unwrap()).unwrap();
    let online =
        |world: &World| world.memory.state(&world.room).member(&ann_id).is_some_and(|m| m.online);

    // Closed, and back within the grace (a reload): still online, no leave.
    ann.to_server.send(Message::Close(None)).await.unwrap();
    ann.closed().await;
    let mut again = world.connect(&format!("token={token}"));
    again.joined().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(online(&world), "a reload within the grace keeps the member online");

    // Closed, and back on another gateway within the grace (its join beats): still online.
    again.to_server.send(Message::Close(None)).await.unwrap();
    again.closed().await;
    world.memory.beat_elsewhere(&world.room, &ann_id, crate::now_ms() + 1_000);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(online(&world), "a member back elsewhere stays online");

    // Closed for good: offline once the grace has passed, not before.
    let mut again = world.connect(&format!("token={token}"));
    again.joined().await;
    again.to_server.send(Message::Close(None)).await.unwrap();
    again.closed().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(online(&world), "still within the grace");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!online(&world), "gone after the grace");
}

#[tokio::test]
async fn newcomers_past_the_rooms_join_limit_are_told_to_wait_but_members_with_a_token_are_not() {
    let world = World::with(GatewayLimits { joins_per_minute: 2, ..GatewayLimits::default() });
    let mut ann = world.connect("name=ann");
    let (welcome, _) = ann.joined().await;
    world.connect("name=bob").joined().await;
    assert_eq!(world.connect("name=carol").closed().await.0, close::TOO_MANY);
    let token = welcome["token"].as_str().unwrap();
    world.connect(&format!("token={token}")).joined().await;
}

#[tokio::test]
async fn a_resume_from_further_back_than_the_cap_gets_a_snapshot() {
    let world = World::with(GatewayLimits { resume_cap: 3, ..GatewayLimits::default() });
    let mut ann = world.connect("name=ann");
    let (welcome, _) = ann.joined().await;
    let token = welcome["token"].as_str().unwrap().to_owned();
    let have = world.version();
    drop(ann);
    for position_ms in [1, 2, 3, 4] {
        world.host_does(Command::Seek { position_ms });
    }
    let mut back = world.connect(&format!("token={token}&resume={have}&epoch=epoch-1"));
    let (welcome, snapshot) = back.joined().await;
    assert_eq!(welcome["recovered"], false, "4 behind, the cap is 3");
    assert_eq!(snapshot.unwrap()["state"]["playback"]["position_ms"], 4);
}

/// A commit that shows a connected member offline (a heartbeat gap, another tab's leave) is
/// answered by the socket with a rejoin: the member is online again.
#[tokio::test]
async fn a_member_shown_offline_while_connected_comes_back_online() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    let (welcome, _) = ann.joined().await;
    let ann_id = MemberId::new(welcome["member_id"].as_str().unwrap()).unwrap();
    let timeout = Command::Leave { reason: events::LeaveReason::Timeout };
    world.memory.apply(&world.room, Actor::Member(ann_id.clone()), timeout);
    let offline = ann.frame().await;
    assert_eq!(offline["events"][0]["type"], "member_went_offline", "{offline}");
    let back = ann.frame().await;
    assert_eq!(back["events"][0]["type"], "member_returned", "{back}");
    assert!(world.memory.state(&world.room).member(&ann_id).is_some_and(|m| m.online));
}

#[tokio::test(start_paused = true)]
async fn commands_past_the_waiting_limit_are_refused_at_once() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    ann.joined().await;
    world.memory.down.store(true, Ordering::SeqCst);
    let mut ids = Vec::new();
    for _ in 0..super::MAX_WAITING + 2 {
        ids.push(ann.command(json!({"type": "play"})).await);
    }
    // The two over the limit are refused before any of the others is answered.
    for _ in 0..2 {
        let refused = ann.frame().await;
        assert_eq!(refused["code"], "rate_limited", "{refused}");
        assert!(refused["message"].as_str().unwrap().contains("waiting"), "{refused}");
    }
    let unavailable = ann.frame().await;
    assert_eq!(
        (unavailable["id"].as_str(), unavailable["code"].as_str()),
        (Some(&*ids[0]), Some("unavailable"))
    );
}

/// Joins into a room that has sockets here take its state from the hub: no read of the views or
/// the log per join, however far the views trail (a soak's joins each read the log from a
/// trailing view: hundreds of consumers at once).
#[tokio::test]
async fn joins_into_a_room_with_a_hub_read_nothing_and_land_at_its_state() {
    let world = World::new();
    let mut ann = world.connect("name=ann");
    ann.joined().await;
    for position_ms in [1_000, 2_000, 3_000] {
        world.host_does(Command::Seek { position_ms });
    }
    ann.frame().await;
    ann.frame().await;
    ann.frame().await;
    let mut bob = world.connect("name=bob");
    let (welcome, snapshot) = bob.joined().await;
    let snapshot = snapshot.unwrap();
    assert_eq!(world.memory.reads.load(Ordering::SeqCst), 0, "neither views nor log were read");
    assert_eq!(snapshot["state"]["playback"]["position_ms"], 3_000);
    let bob_id = welcome["member_id"].as_str().unwrap();
    let members = snapshot["state"]["members"].as_array().unwrap();
    assert!(members.iter().any(|m| m["member_id"] == bob_id), "the snapshot has the joiner");
    world.host_does(Command::Play);
    assert_eq!(bob.frame().await["version"].as_u64(), Some(world.version()));
    assert_nothing_more(&mut bob).await;
}

/// Issue 22 (`storm`): a crowd joining at once (a dead gateway's members coming back) is taken
/// in turn, at most [`JOINS_IN_FLIGHT`] join commands at a time; nobody is refused.
#[tokio::test(start_paused = true)]
async fn a_crowd_of_joins_waits_its_turn() {
    let world = World::with(GatewayLimits { joins_per_minute: 1_000, ..GatewayLimits::default() });
    let crowd = JOINS_IN_FLIGHT * 3;
    lock(&world.memory.delays).extend(std::iter::repeat_n(Duration::from_secs(1), crowd));
    let mut clients: Vec<Client> =
        (0..crowd).map(|n| world.connect(&format!("name=guest{n}"))).collect();
    for client in &mut clients {
        let (welcome, snapshot) = client.joined().await;
        assert!(snapshot.is_some(), "{welcome}");
    }
    let most = world.memory.most_in_flight.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(most, JOINS_IN_FLIGHT, "join commands in flight at once");
}
