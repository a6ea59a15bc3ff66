//! `bench swarm`: a client process of the scale-out scenarios (`scale`, `storm`).
//!
//! One process may hold about 19 000 sockets here (the open-file limit is 20 000 per process),
//! so a scenario of 100 000 sockets starts several swarms and steers them over their standard
//! input and output, one JSON line each way ([`Order`] in, [`Answer`] out, one answer per
//! order, in order).
//!
//! Every socket of a swarm is a member as the web client is one: it opens with `batch=1`, keeps
//! its token, epoch and last version, and when its connection is lost it reconnects with the
//! web client's jittered backoff (`gateway/ui/room.js`: min(8 s, 300 ms × 2^attempt) × 0.5–1)
//! to another gateway, at random (a load balancer that dropped the dead one), asking to resume
//! from its version, and gives up on an attempt that has no welcome after 9 s, as the page does. Every commit it receives is checked against the last: a version not one
//! past it is a missed run or a duplicate, counted for [`Status`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Ws, connect, field, joined, source};

/// Connection attempts in flight at once, per swarm.
const IN_FLIGHT: usize = 256;
/// How long a reconnecting member waits for its welcome before it tries again, as the web
/// client does (`gateway/ui/room.js`: a ping every 2 s, given up after 7 s without a frame).
const GIVE_UP: Duration = Duration::from_secs(9);

/// One socket to open: a member of `room` through gateway number `gateway`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Seat {
    /// The socket's number in the whole scenario (it picks the loopback source address).
    pub(crate) n: usize,
    pub(crate) room: String,
    pub(crate) gateway: usize,
    /// The room's host token for the seat of its host; others join as new members.
    pub(crate) host_token: Option<String>,
}

/// What a scenario asks of a swarm.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Order {
    /// Opens `seats` through `gateways`; answered once every one is welcomed or failed.
    Open { gateways: Vec<SocketAddr>, seats: Vec<Seat> },
    /// Records when each socket receives the commit of this command id.
    Watch { command_id: String },
    /// The arrival times of a watched commit, once every open socket of `room` has it (or 30 s).
    Arrivals { command_id: String, room: String },
    /// Waits (up to 60 s) until every socket has each room's version; answers how many lag.
    Await { versions: HashMap<String, u64> },
    /// The counters.
    Status,
}

/// A swarm's answer to an [`Order`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Answer {
    Opened {
        opened: usize,
        failed: usize,
        error: Option<String>,
        welcome_ms: Vec<f64>,
    },
    Watching,
    /// Unix microseconds at which each socket of the room received the commit.
    Arrivals {
        at_us: Vec<u64>,
        missing: usize,
    },
    Caught {
        behind: usize,
    },
    Status(Status),
}

/// What happened to a swarm's sockets so far.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Status {
    /// Connected now.
    pub(crate) open: usize,
    /// Connections lost after their welcome.
    pub(crate) lost: usize,
    /// Reconnections that were welcomed.
    pub(crate) back: usize,
    /// Of those, welcomed with `recovered: true` (resumed from their version, no snapshot).
    pub(crate) resumed: usize,
    /// Versions that never reached a socket (a gap between two commits it received).
    pub(crate) missed: u64,
    /// Commits a socket received twice (a version not after its last).
    pub(crate) duplicates: u64,
    /// Failed reconnection attempts, by what ended them (a close code, or the error).
    pub(crate) refused: BTreeMap<String, usize>,
    /// Unix microseconds of the first loss and of the last welcome back (0: none).
    pub(crate) first_lost_us: u64,
    pub(crate) last_back_us: u64,
}

impl Status {
    /// Adds another swarm's counters.
    pub(crate) fn add(&mut self, other: &Status) {
        self.open += other.open;
        self.lost += other.lost;
        self.back += other.back;
        self.resumed += other.resumed;
        self.missed += other.missed;
        self.duplicates += other.duplicates;
        for (why, n) in &other.refused {
            *self.refused.entry(why.clone()).or_default() += n;
        }
        if other.first_lost_us != 0 {
            self.first_lost_us = match self.first_lost_us {
                0 => other.first_lost_us,
                mine => mine.min(other.first_lost_us),
            };
        }
        self.last_back_us = self.last_back_us.max(other.last_back_us);
    }
}

/// Unix time in microseconds (the clock every process of the machine shares).
pub(crate) fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// A running swarm, seen from the scenario; killed when dropped.
pub(crate) struct Swarm {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Swarm {
    /// Starts `bench swarm` (this executable).
    pub(crate) fn start() -> anyhow::Result<Swarm> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("swarm")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start a swarm")?;
        let stdin = child.stdin.take().context("swarm stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("swarm stdout")?).lines();
        Ok(Swarm { child, stdin, stdout })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Sends `order` and reads its answer.
    pub(crate) async fn ask(&mut self, order: &Order) -> anyhow::Result<Answer> {
        let mut line = serde_json::to_vec(order)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await?;
        let answer = self.stdout.next_line().await?.context("the swarm ended")?;
        Ok(serde_json::from_str(&answer)?)
    }
}

/// Sends `order` to every swarm at once; their answers, in order.
pub(crate) async fn ask_all(swarms: &mut [Swarm], order: &Order) -> anyhow::Result<Vec<Answer>> {
    futures::future::try_join_all(swarms.iter_mut().map(|swarm| swarm.ask(order))).await
}

/// The counters of every swarm, added up.
pub(crate) async fn status(swarms: &mut [Swarm]) -> anyhow::Result<Status> {
    let mut total = Status::default();
    for answer in ask_all(swarms, &Order::Status).await? {
        let Answer::Status(status) = answer else { bail!("expected a status, got {answer:?}") };
        total.add(&status);
    }
    Ok(total)
}

/// The swarm process: reads orders from standard input until it closes.
pub(crate) async fn serve() -> anyhow::Result<()> {
    let shared = Arc::new(Shared::default());
    // Standard input is read on a thread of its own (tokio's is not built here).
    let (lines, mut orders) = mpsc::channel::<String>(1);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if lines.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(line) = orders.recv().await {
        let answer = match serde_json::from_str(&line)? {
            Order::Open { gateways, seats } => {
                open(&shared, &gate, Arc::new(gateways), seats).await
            }
            Order::Watch { command_id } => {
                write(&shared.watched).insert(command_id, Mutex::default());
                Answer::Watching
            }
            Order::Arrivals { command_id, room } => arrivals(&shared, &command_id, &room).await,
            Order::Await { versions } => caught_up(&shared, &versions).await,
            Order::Status => Answer::Status(shared.status()),
        };
        let mut line = serde_json::to_vec(&answer)?;
        line.push(b'\n');
        // One short line, then the next order: a blocking write is fine here.
        let mut out = std::io::stdout().lock();
        std::io::Write::write_all(&mut out, &line)?;
        std::io::Write::flush(&mut out)?;
    }
    Ok(())
}

/// What a swarm's sockets share.
#[derive(Default)]
struct Shared {
    held: Mutex<Vec<Arc<Held>>>,
    watched: RwLock<HashMap<String, Mutex<Vec<u64>>>>,
    open: AtomicUsize,
    lost: AtomicUsize,
    back: AtomicUsize,
    resumed: AtomicUsize,
    missed: AtomicU64,
    duplicates: AtomicU64,
    first_lost_us: AtomicU64,
    last_back_us: AtomicU64,
    refused: Mutex<BTreeMap<String, usize>>,
}

impl Shared {
    fn status(&self) -> Status {
        Status {
            open: self.open.load(Relaxed),
            lost: self.lost.load(Relaxed),
            back: self.back.load(Relaxed),
            resumed: self.resumed.load(Relaxed),
            missed: self.missed.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            refused: lock(&self.refused).clone(),
            first_lost_us: self.first_lost_us.load(Relaxed),
            last_back_us: self.last_back_us.load(Relaxed),
        }
    }

    /// Checks a received version against the socket's last.
    fn track(&self, held: &Held, version: u64) {
        let last = held.last.load(Relaxed);
        if version <= last {
            self.duplicates.fetch_add(1, Relaxed);
            return;
        }
        if version > last + 1 {
            self.missed.fetch_add(version - last - 1, Relaxed);
        }
        held.last.store(version, Relaxed);
    }

    fn on_frame(&self, held: &Held, frame: &str) {
        match field(frame, "type") {
            Some("commit") => {
                if let Some(version) = field(frame, "version").and_then(|v| v.parse().ok()) {
                    self.track(held, version);
                }
                if let Some(id) = field(frame, "command_id")
                    && let Some(arrivals) = read(&self.watched).get(id)
                {
                    lock(arrivals).push(now_us());
                }
            }
            Some("commits") => {
                // Each commit of the batch starts `{"type":"commit","version":N` (not parsed
                // whole: a swarm reads thousands of these a second).
                const COMMIT: &str = r#"{"type":"commit","version":"#;
                for (at, _) in frame.match_indices(COMMIT) {
                    let digits = &frame[at + COMMIT.len()..];
                    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
                    if let Ok(version) = digits[..end].parse() {
                        self.track(held, version);
                    }
                }
            }
            _ => {}
        }
    }
}

/// One socket's member, as it would be kept by a page.
struct Held {
    room: String,
    last: AtomicU64,
}

/// A member's credentials after its first welcome.
struct Member {
    token: String,
    epoch: String,
}

async fn open(
    shared: &Arc<Shared>,
    gate: &Arc<Semaphore>,
    gateways: Arc<Vec<SocketAddr>>,
    seats: Vec<Seat>,
) -> Answer {
    let (ready, mut welcomed) = mpsc::channel(IN_FLIGHT);
    let n = seats.len();
    for seat in seats {
        let held = Arc::new(Held { room: seat.room.clone(), last: AtomicU64::new(0) });
        lock(&shared.held).push(held.clone());
        let (shared, gate, gateways, ready) =
            (shared.clone(), gate.clone(), gateways.clone(), ready.clone());
        tokio::spawn(async move { member(shared, gate, gateways, seat, held, ready).await });
    }
    let (mut opened, mut failed, mut error, mut welcome_ms) = (0, 0, None, Vec::new());
    for _ in 0..n {
        match welcomed.recv().await {
            Some(Ok(took)) => {
                opened += 1;
                welcome_ms.push(took.as_secs_f64() * 1000.0);
            }
            Some(Err(e)) => {
                failed += 1;
                error.get_or_insert_with(|| format!("{e:#}"));
            }
            None => break,
        }
    }
    Answer::Opened { opened, failed, error, welcome_ms }
}

/// One member: joins, then reads until its connection is lost, then comes back, for ever.
async fn member(
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    gateways: Arc<Vec<SocketAddr>>,
    seat: Seat,
    held: Arc<Held>,
    ready: mpsc::Sender<anyhow::Result<Duration>>,
) {
    let first = async {
        let _permit = gate.acquire().await?;
        let started = Instant::now();
        let who = match &seat.host_token {
            Some(token) => format!("token={token}"),
            None => format!("name=m{}", seat.n),
        };
        let path = format!("/api/rooms/{}/ws?{who}&batch=1", seat.room);
        let mut ws = connect(gateways[seat.gateway], source(seat.n), &path).await?;
        let (member, _) = welcome(&held, &mut ws).await?;
        anyhow::Ok((ws, member, started.elapsed()))
    };
    let (mut ws, member, took) = match first.await {
        Ok(first) => first,
        Err(error) => {
            ready.send(Err(error)).await.ok();
            return;
        }
    };
    ready.send(Ok(took)).await.ok();
    drop(ready);
    shared.open.fetch_add(1, Relaxed);
    let mut gateway = seat.gateway;
    let mut random = Jitter::new(seat.n as u64);
    loop {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Text(text) = message {
                shared.on_frame(&held, text.as_str());
            }
        }
        shared.open.fetch_sub(1, Relaxed);
        shared.lost.fetch_add(1, Relaxed);
        shared.first_lost_us.compare_exchange(0, now_us(), Relaxed, Relaxed).ok();
        let lost_from = gateway;
        let mut attempt = 0u32;
        ws = loop {
            let backoff = 8_000f64.min(300.0 * 2f64.powi(attempt as i32));
            tokio::time::sleep(Duration::from_secs_f64(backoff * random.between(0.5, 1.0) / 1e3))
                .await;
            attempt = attempt.saturating_add(1);
            gateway = random.other(gateways.len(), lost_from);
            let path = format!(
                "/api/rooms/{}/ws?token={}&resume={}&epoch={}&batch=1",
                held.room,
                member.token,
                held.last.load(Relaxed),
                member.epoch
            );
            let back = async {
                let mut ws = connect(gateways[gateway], source(seat.n), &path).await?;
                let (_, recovered) = welcome(&held, &mut ws).await?;
                anyhow::Ok((ws, recovered))
            };
            let back = tokio::time::timeout(GIVE_UP, back).await.unwrap_or_else(|_| {
                Err(anyhow::anyhow!("no welcome within {} s", GIVE_UP.as_secs()))
            });
            match back {
                Ok((ws, recovered)) => {
                    shared.back.fetch_add(1, Relaxed);
                    if recovered {
                        shared.resumed.fetch_add(1, Relaxed);
                    }
                    shared.last_back_us.fetch_max(now_us(), Relaxed);
                    break ws;
                }
                Err(error) => {
                    *lock(&shared.refused).entry(refusal(&error)).or_default() += 1;
                }
            }
        };
        shared.open.fetch_add(1, Relaxed);
    }
}

/// What ended a connection attempt: its close code, else the error.
fn refusal(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    let code = text.split_once("code: ").map(|(_, rest)| {
        rest.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit)
    });
    match code.map(String::from_iter) {
        Some(code) if !code.is_empty() => format!("close {code}"),
        _ => text,
    }
}

/// Reads a welcome and, unless the member resumed, its snapshot (which sets its version); the
/// member's credentials and whether it resumed.
async fn welcome(held: &Held, ws: &mut Ws) -> anyhow::Result<(Member, bool)> {
    let (welcome, snapshot) = joined(ws).await?;
    let member = Member {
        token: field(&welcome, "token").context("no token")?.to_owned(),
        epoch: field(&welcome, "epoch").context("no epoch")?.to_owned(),
    };
    // A new member's snapshot, or a returning member's whose version could not be resumed.
    let Some(snapshot) = snapshot else { return Ok((member, true)) };
    let version = field(&snapshot, "version").and_then(|v| v.parse().ok());
    held.last.store(version.context("a snapshot without a version")?, Relaxed);
    Ok((member, false))
}

async fn arrivals(shared: &Shared, command_id: &str, room: &str) -> Answer {
    let expected = lock(&shared.held).iter().filter(|held| held.room == room).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = read(&shared.watched).get(command_id).map_or(0, |at| lock(at).len());
        if got >= expected || Instant::now() > deadline {
            let at_us =
                write(&shared.watched).remove(command_id).map(into_inner).unwrap_or_default();
            let missing = expected.saturating_sub(at_us.len());
            return Answer::Arrivals { at_us, missing };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn caught_up(shared: &Shared, versions: &HashMap<String, u64>) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let behind = lock(&shared.held)
            .iter()
            .filter(|held| versions.get(&held.room).is_some_and(|&v| held.last.load(Relaxed) < v))
            .count();
        if behind == 0 || Instant::now() > deadline {
            return Answer::Caught { behind };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A small xorshift generator: the backoff's jitter and the choice of gateway.
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Jitter {
        Jitter(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number below `n` other than `not` (`not` itself when it is the only one).
    fn other(&mut self, n: usize, not: usize) -> usize {
        if n < 2 {
            return not;
        }
        (not + 1 + (self.next() % (n as u64 - 1)) as usize) % n
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn into_inner<T>(mutex: Mutex<T>) -> T {
    mutex.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::{Held, Jitter, Shared};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[test]
    fn gaps_and_repeats_are_counted() {
        let shared = Shared::default();
        let held = Held { room: "r".into(), last: AtomicU64::new(4) };
        for version in [5, 6, 6, 9, 3, 10] {
            shared.track(&held, version);
        }
        assert_eq!(shared.missed.load(Relaxed), 2);
        assert_eq!(shared.duplicates.load(Relaxed), 2);
        assert_eq!(held.last.load(Relaxed), 10);
        let batch = r#"{"type":"commits","commits":[{"type":"commit","version":11},{"type":"commit","version":13}]}"#;
        shared.on_frame(&held, batch);
        assert_eq!((shared.missed.load(Relaxed), held.last.load(Relaxed)), (3, 13));
    }

    #[test]
    fn another_gateway_is_never_the_lost_one() {
        let mut jitter = Jitter::new(7);
        let picks: Vec<usize> = (0..600).map(|_| jitter.other(6, 2)).collect();
        assert!(picks.iter().all(|&g| g != 2 && g < 6));
        assert!((0..6).filter(|g| *g != 2).all(|g| picks.contains(&g)));
        assert!((0..100).map(|_| jitter.between(0.5, 1.0)).all(|x| (0.5..1.0).contains(&x)));
    }
}
