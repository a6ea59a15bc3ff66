//! `fanout`: R rooms × M members while K commits per second flow, through the gateway and
//! through the baseline broadcast server (`baseline.rs`), with the same clients and the same
//! commits.
//!
//! Commits are made by the real commands service (seeks sent by the hosts over NATS), so both
//! servers fan out the same `chanshare.live.<room>` messages. Each client notes when every
//! commit frame arrived; latency is from sending the command to a client receiving its commit
//! (the clock is this process's: senders and receivers share it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use events::CommandId;
use futures::StreamExt as _;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::Size;
use crate::baseline::Broadcast;
use crate::client::{connect, field, next_text, source};
use crate::report::{Latencies, Report, fmt, ms};
use crate::stack::{CpuMeter, Room, Stack, seek};

/// Sizes: rooms, members per room, commits per second (over all rooms), seconds measured.
#[derive(Debug, Clone, Copy)]
struct Load {
    rooms: usize,
    members: usize,
    commits_per_s: usize,
    seconds: u64,
}

/// What one run measured.
struct Run {
    sent: usize,
    delivered: usize,
    per_s: f64,
    latencies: Latencies,
    /// CPU per frame delivered, by process.
    cpu: String,
}

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let load = size.pick(
        Load { rooms: 20, members: 100, commits_per_s: 400, seconds: 10 },
        Load { rooms: 2, members: 5, commits_per_s: 20, seconds: 2 },
    );
    let stack = Arc::new(Stack::start().await?);
    let mut rooms = Vec::new();
    for _ in 0..load.rooms {
        rooms.push(stack.create_room().await?);
    }
    let gateway: SocketAddr = stack.gateway.addr().parse()?;
    let broadcast = Broadcast::start(&stack.nats.url())?;

    // One run each: the sockets of a gateway run leave the rooms, and the presence reaper times
    // them out 30 s later, a burst of commits that would land in a later run.
    let mut processes = stack.processes();
    let mut through_gateway = measure(&stack, &rooms, gateway, load, &processes).await?;
    processes.push(("baseline", broadcast.pid()));
    let mut through_baseline = measure(&stack, &rooms, broadcast.addr, load, &processes).await?;
    drop(broadcast);

    let mut report = Report::new(
        "fanout",
        &[
            "server",
            "sockets",
            "commits",
            "frames delivered",
            "frames/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
        ],
    );
    for (name, run) in
        [("gateway", &mut through_gateway), ("baseline broadcast", &mut through_baseline)]
    {
        report.row(vec![
            name.to_owned(),
            (load.rooms * load.members).to_string(),
            run.sent.to_string(),
            format!("{} of {}", run.delivered, run.sent * load.members),
            fmt(run.per_s),
            ms(run.latencies.quantile(0.5)),
            ms(run.latencies.quantile(0.99)),
            ms(run.latencies.quantile(0.999)),
        ]);
    }
    report.note(format!(
        "{} rooms × {} members, {} commits/s for {} s; each run starts once the log has been \
         quiet for a second and the views are at its head.",
        load.rooms, load.members, load.commits_per_s, load.seconds
    ));
    report.note(format!("CPU per frame delivered, through the gateway: {}", through_gateway.cpu));
    report.note(format!("CPU per frame delivered, through the baseline: {}", through_baseline.cpu));
    let ratio = through_gateway.per_s / through_baseline.per_s;
    report.at_least("gateway / baseline frames per second", ratio, ">= 0.8", 0.8);
    let p99 = through_baseline.latencies.quantile(0.99).as_secs_f64()
        / through_gateway.latencies.quantile(0.99).as_secs_f64().max(1e-9);
    report.at_least("baseline / gateway p99 latency", p99, ">= 0.8", 0.8);
    Ok(report)
}

/// Connects every member to `server`, sends the commits, and collects what arrived.
async fn measure(
    stack: &Arc<Stack>,
    rooms: &[Room],
    server: SocketAddr,
    load: Load,
    processes: &[(&'static str, u32)],
) -> anyhow::Result<Run> {
    let (stop_tx, stop) = watch::channel(false);
    let (ready_tx, mut ready) = mpsc::channel(256);
    let gate = Arc::new(Semaphore::new(256));
    let mut clients = JoinSet::new();
    for (r, room) in rooms.iter().enumerate() {
        for m in 0..load.members {
            let n = r * load.members + m;
            let path = format!("/api/rooms/{}/ws?name=f{n}", room.id);
            let (gate, ready, stop) = (gate.clone(), ready_tx.clone(), stop.clone());
            clients.spawn(client(server, n, path, gate, ready, stop));
        }
    }
    for _ in 0..rooms.len() * load.members {
        ready.recv().await.context("clients ended")??;
    }
    // Let the joins' own commits drain before measuring: they reach every member already in the
    // room (~100 000 frames for 2 000 joins) and every view, work the baseline never has.
    stack.settle().await?;

    let cpu = CpuMeter::start(processes)?;
    let sent: Arc<Mutex<HashMap<u128, Instant>>> = Arc::default();
    let period = Duration::from_millis(10);
    let per_tick = (load.commits_per_s / 100).max(1);
    let ticks = load.seconds * 1000 / period.as_millis() as u64;
    let started = Instant::now();
    let mut interval = tokio::time::interval(period);
    let mut commands = JoinSet::new();
    let mut n = 0u64;
    for _ in 0..ticks {
        interval.tick().await;
        for _ in 0..per_tick {
            let room = rooms[n as usize % rooms.len()].clone();
            let id = uuid::Uuid::new_v4();
            sent.lock().unwrap_or_else(|p| p.into_inner()).insert(id.as_u128(), Instant::now());
            let stack = stack.clone();
            let command = seek(n + started.elapsed().as_micros() as u64);
            commands
                .spawn(async move { stack.command_with_id(&room, CommandId(id), command).await });
            n += 1;
        }
    }
    while let Some(done) = commands.join_next().await {
        done??;
    }
    // Give the last commits time to arrive everywhere, then stop the clients.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    stop_tx.send(true).ok();
    let sent = std::mem::take(&mut *sent.lock().unwrap_or_else(|p| p.into_inner()));
    let mut latencies = Latencies::default();
    while let Some(received) = clients.join_next().await {
        for (id, at) in received??.commits {
            if let Some(sent_at) = sent.get(&id) {
                latencies.push(at.duration_since(*sent_at));
            }
        }
    }
    let delivered = latencies.len();
    let cpu = cpu.per_op(delivered)?;
    let window = elapsed.saturating_sub(Duration::from_secs(2)).as_secs_f64();
    Ok(Run { sent: sent.len(), delivered, per_s: delivered as f64 / window, latencies, cpu })
}

/// What a member received.
pub(super) struct Received {
    /// Each commit's command id and arrival (of `commits` frames too).
    pub commits: Vec<(u128, Instant)>,
    /// Frames after the welcome.
    pub frames: usize,
}

/// One member: joins, reports ready, then notes the arrival of every commit until told to stop
/// (`bigroom`'s members too, which take `commits` frames).
pub(super) async fn client(
    server: SocketAddr,
    n: usize,
    path: String,
    gate: Arc<Semaphore>,
    ready: mpsc::Sender<anyhow::Result<()>>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Received> {
    let opened = async {
        let _permit = gate.acquire_owned().await?;
        let mut ws = connect(server, source(n), &path).await?;
        next_text(&mut ws).await?; // welcome (the gateway's is followed by commits we ignore)
        anyhow::Ok(ws)
    };
    let mut ws = match opened.await {
        Ok(ws) => {
            ready.send(Ok(())).await.ok();
            ws
        }
        Err(error) => {
            let message = format!("{error:#}");
            ready.send(Err(error)).await.ok();
            anyhow::bail!(message);
        }
    };
    let mut received = Received { commits: Vec::new(), frames: 0 };
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let at = Instant::now();
                    received.frames += 1;
                    match field(&text, "type") {
                        Some("commit") => {
                            if let Some(id) = field(&text, "command_id").and_then(|id| uuid::Uuid::parse_str(id).ok()) {
                                received.commits.push((id.as_u128(), at));
                            }
                        }
                        Some("commits") => {
                            let frame: serde_json::Value = serde_json::from_str(&text)?;
                            for commit in frame["commits"].as_array().into_iter().flatten() {
                                if let Some(id) = commit["command_id"].as_str().and_then(|id| uuid::Uuid::parse_str(id).ok()) {
                                    received.commits.push((id.as_u128(), at));
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ok(received),
            },
            _ = stop.changed() => return Ok(received),
        }
    }
}
