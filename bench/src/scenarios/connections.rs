//! `connections`: N idle room sockets on one gateway, and what each costs it in memory.
//!
//! The sockets join rooms of 50 (each join is a real command and a commit fanned out to the
//! room), from eight loopback source addresses. The gateway's resident memory is read after one
//! socket per room is open (so rooms, hubs and subscriptions are in the "before") and again once
//! all are open and memory has settled: (after − before) / N is the cost of one idle socket.
//! Then the same on a fresh gateway for one room filled to 10 000 members (the room's own
//! growth, its state and member list, is then counted per socket).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::Size;
use crate::baseline::Broadcast;
use crate::client::{connect, source, welcome};
use crate::report::{Latencies, Report, fmt, ms};
use crate::stack::{Room, Stack, settled_rss};

const PER_ROOM: usize = 50;
/// Sockets that fill a room of 10 000 (the most members a room may have): its host, who
/// created it and never connects, the "before" socket, and these.
const FULL_ROOM: usize = 9_998;
/// Connection attempts in flight at once.
const IN_FLIGHT: usize = 256;

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let wanted = size.pick(50_000, 200);
    let limit = open_files_limit()?;
    // Both this process and the gateway hold one descriptor per socket.
    let n = wanted.min(limit.saturating_sub(1_000));
    let stack = Stack::start().await?;
    let mut rooms = Vec::new();
    for _ in 0..n.div_ceil(PER_ROOM) {
        rooms.push(stack.create_room().await?);
    }
    let gateway = stack.gateway.addr().parse()?;
    let mut through_gateway = measure(gateway, stack.gateway.pid(), &rooms, n).await?;
    let broadcast = Broadcast::start(&stack.nats.url())?;
    let mut through_baseline = measure(broadcast.addr, broadcast.pid(), &rooms, n).await?;
    drop(broadcast);
    drop(stack);
    // The same in one full room of 10 000, on a fresh gateway: a join snapshot lists a page of
    // members, and a socket keeps no buffer the size of the largest message it sent (issue 22).
    let full_n = size.pick(FULL_ROOM, 150);
    let full_stack = Stack::start().await?;
    let full_rooms = vec![full_stack.create_room().await?];
    let full_gateway = full_stack.gateway.addr().parse()?;
    let mut in_full_rooms =
        measure(full_gateway, full_stack.gateway.pid(), &full_rooms, full_n).await?;

    let mut report = Report::new(
        "connections",
        &[
            "server",
            "sockets",
            "rooms",
            "RSS before MiB",
            "after MiB",
            "KiB/socket",
            "opened/s",
            "welcome p99 ms",
        ],
    );
    for (name, sample, rooms) in [
        ("gateway", &mut through_gateway, rooms.len()),
        ("baseline broadcast", &mut through_baseline, rooms.len()),
        ("gateway, one full room", &mut in_full_rooms, full_rooms.len()),
    ] {
        report.row(vec![
            name.to_owned(),
            sample.n.to_string(),
            rooms.to_string(),
            fmt(sample.before as f64 / 1048576.0),
            fmt(sample.after as f64 / 1048576.0),
            fmt(sample.per_socket() / 1024.0),
            fmt(sample.opened_per_s),
            ms(sample.welcomes.quantile(0.99)),
        ]);
    }
    let per_socket = through_gateway.per_socket();
    if n < wanted {
        report.note(format!(
            "{wanted} sockets were asked for; the open-file limit of this machine ({limit}, a hard \
             limit here) caps one process at {n}."
        ));
    }
    report.at_most("gateway KiB per idle socket", per_socket / 1024.0, "<= 8 KiB", 8.0);
    report.at_most(
        "gateway KiB per idle socket in a full room of 10 000",
        in_full_rooms.per_socket() / 1024.0,
        "<= 8 KiB",
        8.0,
    );
    Ok(report)
}

/// A server's memory before and after `n` sockets.
struct Sample {
    before: u64,
    after: u64,
    n: usize,
    opened_per_s: f64,
    welcomes: Latencies,
}

impl Sample {
    fn per_socket(&self) -> f64 {
        self.after.saturating_sub(self.before) as f64 / self.n as f64
    }
}

/// Opens one socket per room (the "before"), then `n` more, reads the server's memory, and
/// closes them all.
async fn measure(server: SocketAddr, pid: u32, rooms: &[Room], n: usize) -> anyhow::Result<Sample> {
    let mut holders = JoinSet::new();
    let (ready, mut opened) = mpsc::channel(IN_FLIGHT);
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    for (i, room) in rooms.iter().enumerate() {
        holders.spawn(hold(server, i, room.clone(), gate.clone(), ready.clone()));
    }
    await_opened(&mut opened, rooms.len()).await?;
    let before = settled_rss(pid).await?;
    let started = Instant::now();
    for i in 0..n {
        let room = rooms[i % rooms.len()].clone();
        holders.spawn(hold(server, rooms.len() + i, room, gate.clone(), ready.clone()));
    }
    let welcomes = await_opened(&mut opened, n).await?;
    let opened_per_s = n as f64 / started.elapsed().as_secs_f64();
    let after = settled_rss(pid).await?;
    holders.shutdown().await;
    Ok(Sample { before, after, n, opened_per_s, welcomes })
}

/// Opens one socket for `room`, reports when it is welcomed, then reads until the end.
async fn hold(
    server: SocketAddr,
    n: usize,
    room: Room,
    gate: Arc<Semaphore>,
    ready: mpsc::Sender<anyhow::Result<Duration>>,
) {
    let opened = async {
        let _permit = gate.acquire_owned().await?;
        let started = Instant::now();
        // As the web client opens it: a big room's membership changes come together.
        let path = format!("/api/rooms/{}/ws?name=m{n}&batch=1", room.id);
        let mut ws = connect(server, source(n), &path).await?;
        welcome(&mut ws).await?;
        anyhow::Ok((ws, started.elapsed()))
    };
    match opened.await {
        Ok((mut ws, took)) => {
            ready.send(Ok(took)).await.ok();
            while let Some(Ok(_)) = ws.next().await {}
        }
        Err(error) => {
            ready.send(Err(error)).await.ok();
        }
    }
}

async fn await_opened(
    opened: &mut mpsc::Receiver<anyhow::Result<Duration>>,
    n: usize,
) -> anyhow::Result<Latencies> {
    let mut latencies = Latencies::default();
    while latencies.len() < n {
        let took = opened.recv().await.context("socket holders ended")??;
        latencies.push(took);
    }
    Ok(latencies)
}

/// This process's soft limit on open files.
fn open_files_limit() -> anyhow::Result<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
        .context("no open-file limit in /proc/self/limits")
}
