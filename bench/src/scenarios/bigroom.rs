//! `bigroom`: one room of N members in a single `chanshare serve` (every role in one process),
//! next to the same N members in rooms of 50 (issue 22, item 3). For each layout, on a fresh
//! process: its resident memory once each room has one member (its host) and again once all N
//! have joined (each join a real command, fanned out to the room) — (after − before) per
//! member who joined in between is what a member costs the process — then 20 seeks per room
//! from its host, and the time from sending each seek until every member of the room has its
//! commit frame.
//!
//! Members connect with `batch=1`: a room of more than 100 members sends its membership
//! changes together, every 250 ms at most (`gateway::hub`), and a join snapshot lists the
//! latest 100 members; "frames/member" is what each member received while the room filled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use events::CommandId;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::Size;
use crate::report::{Latencies, Report, fmt, ms};
use crate::stack::{command_with_id, create_room, env, seek, settled_rss};
use tests::{Chanshare, NatsServer, RedisServer};

const SEEKS: usize = 20;

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    // The quick form's room is just past the size whose membership changes are coalesced.
    let sizes = size.pick(vec![100, 1_000, 10_000], vec![150]);
    let mut report = Report::new(
        "bigroom",
        &[
            "members",
            "rooms",
            "RSS before MiB",
            "after MiB",
            "KB/member",
            "frames/member joining",
            "seek p50 ms",
            "p99 ms",
            "max ms",
        ],
    );
    let mut per_member_100 = None;
    let mut biggest_seek_p99 = None;
    for &n in &sizes {
        // The same members in rooms of 50 (of half as many in the quick form's small rooms).
        let small = if n > 50 { 50 } else { n / 2 };
        for per_room in [n, small] {
            let mut run = measure(n, per_room).await?;
            let joined = n - n / per_room;
            let per_member = run.after.saturating_sub(run.before) as f64 / joined as f64 / 1000.0;
            if per_room == n && n == sizes[0] {
                per_member_100 = Some(per_member);
            }
            if per_room == n && Some(&n) == sizes.last() {
                biggest_seek_p99 = Some(run.latencies.quantile(0.99).as_secs_f64() * 1000.0);
            }
            report.row(vec![
                n.to_string(),
                format!("{} of {per_room}", n / per_room),
                fmt(run.before as f64 / 1048576.0),
                fmt(run.after as f64 / 1048576.0),
                fmt(per_member),
                fmt(run.join_frames),
                ms(run.latencies.quantile(0.5)),
                ms(run.latencies.quantile(0.99)),
                ms(run.latencies.quantile(1.0)),
            ]);
        }
    }
    report.note(format!(
        "each row: a fresh `chanshare serve` (all roles in one process), members from 8 loopback \
         addresses, {SEEKS} seeks per room 250 ms apart; latency is from sending a seek to the \
         last member of its room receiving the commit; frames/member joining: the frames a \
         member received after its welcome while the others joined (the joins after its own \
         reach it as `commits` frames in a room of more than 100)."
    ));
    report.at_most(
        "seek reaching every member of the biggest room, p99 (ms)",
        biggest_seek_p99.unwrap_or(f64::MAX),
        "<= 250 ms",
        250.0,
    );
    report.at_most(
        "serve memory per member in a room of 100 (KB)",
        per_member_100.unwrap_or(f64::MAX),
        "<= 7 KB",
        7.0,
    );
    Ok(report)
}

struct Run {
    before: u64,
    after: u64,
    latencies: Latencies,
    /// Frames per member while the room filled (seeks excluded).
    join_frames: f64,
}

/// `n` members in rooms of `per_room` on a fresh `serve`.
async fn measure(n: usize, per_room: usize) -> anyhow::Result<Run> {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let serve = Chanshare::start("serve", &env(&nats, &redis));
    let client = async_nats::connect(nats.url()).await.context("connect to nats")?;
    let server: SocketAddr = serve.addr().parse()?;
    let mut rooms = Vec::new();
    for _ in 0..n / per_room {
        rooms.push(create_room(&client).await?);
    }

    let (stop_tx, stop) = watch::channel(false);
    let (ready_tx, mut ready) = mpsc::channel(256);
    let gate = Arc::new(Semaphore::new(128));
    let mut members = JoinSet::new();
    let mut join = |i: usize| {
        let room = rooms[i / per_room].clone();
        let (gate, ready, stop) = (gate.clone(), ready_tx.clone(), stop.clone());
        // The first member of each room is its host (a room of N is its host and N − 1 more:
        // a host who never connected would be the longest offline, pruned from a full room).
        let who = if i.is_multiple_of(per_room) {
            format!("token={}", room.token)
        } else {
            format!("name=m{i}")
        };
        let path = format!("/api/rooms/{}/ws?{who}&batch=1", room.id);
        members.spawn(super::fanout::client(server, i, path, gate, ready, stop));
    };
    // One member per room first, so that "before" holds what a room costs (its hub, its
    // subscription, its cached state) and the process's warm-up, as in `connections`.
    for first in (0..n).step_by(per_room) {
        join(first);
    }
    for _ in 0..rooms.len() {
        ready.recv().await.context("members ended")??;
    }
    let before = settled_rss(serve.pid()).await?;
    for i in (0..n).filter(|i| i % per_room != 0) {
        join(i);
    }
    for _ in rooms.len()..n {
        ready.recv().await.context("members ended")??;
    }
    let after = settled_rss(serve.pid()).await?;

    // Seeks: every room's host at once, 250 ms apart.
    let sent: Arc<Mutex<HashMap<u128, (usize, Instant)>>> = Arc::default();
    for s in 0..SEEKS {
        let mut seeks = JoinSet::new();
        for (r, room) in rooms.iter().enumerate() {
            let (client, room, sent) = (client.clone(), room.clone(), sent.clone());
            seeks.spawn(async move {
                let id = uuid::Uuid::new_v4();
                sent.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.as_u128(), (r, Instant::now()));
                command_with_id(&client, &room, CommandId(id), seek(s as u64 * 1_000 + r as u64))
                    .await
            });
        }
        while let Some(done) = seeks.join_next().await {
            done??;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_tx.send(true).ok();
    // The last arrival of each seek at a member of its room.
    let sent = std::mem::take(&mut *sent.lock().unwrap_or_else(|p| p.into_inner()));
    let mut last: HashMap<u128, Instant> = HashMap::new();
    let mut arrivals: HashMap<u128, usize> = HashMap::new();
    let mut frames = 0;
    while let Some(received) = members.join_next().await {
        let received = received??;
        frames += received.frames.saturating_sub(SEEKS);
        for (id, at) in received.commits {
            if sent.contains_key(&id) {
                let latest = last.entry(id).or_insert(at);
                *latest = (*latest).max(at);
                *arrivals.entry(id).or_default() += 1;
            }
        }
    }
    let mut latencies = Latencies::default();
    for (id, (_, sent_at)) in &sent {
        let got = arrivals.get(id).copied().unwrap_or(0);
        anyhow::ensure!(
            got == per_room,
            "a seek reached {got} of the {per_room} members of its room"
        );
        latencies.push(last[id].duration_since(*sent_at));
    }
    Ok(Run { before, after, latencies, join_frames: frames as f64 / n as f64 })
}
