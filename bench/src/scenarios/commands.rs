//! `commands`: command → ack through the gateway, against raw JetStream expected-sequence
//! publishes at the same concurrency.
//!
//! The gateway path is the whole write path: a WebSocket frame, the gateway, a NATS request to
//! the commands service, decide, an optimistic append, the reply, the ack frame. The baseline is
//! the append alone: C tasks, each publishing a real encoded commit to its own subject of a stream
//! with the room stream's settings, with `Nats-Expected-Last-Subject-Sequence` and `Nats-Msg-Id`,
//! waiting for each acknowledgement. Then an open-loop run at a fixed rate for the p99 target.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::HeaderMap;
use async_nats::jetstream;
use eventlog::subjects::headers;
use events::{Commit, RoomId};
use futures::StreamExt as _;
use tokio::task::JoinSet;

use crate::Size;
use crate::client::{Ws, connect, field, next_text, send_command, source, welcome};
use crate::history::History;
use crate::report::{Latencies, Report, fmt, ms};
use crate::stack::{CpuMeter, Room, Stack};

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let concurrency = size.pick(32, 4);
    let duration = size.pick(Duration::from_secs(10), Duration::from_secs(2));
    let rate = size.pick(1000, 100);
    let paced_sockets = size.pick(50, 10);
    let stack = Stack::start().await?;
    let server: SocketAddr = stack.gateway.addr().parse()?;

    let mut rooms = Vec::new();
    for _ in 0..concurrency.max(paced_sockets) {
        rooms.push(stack.create_room().await?);
    }
    let cpu = CpuMeter::start(&stack.processes())?;
    let (gateway_rate, mut gateway) =
        closed_loop_gateway(server, &rooms[..concurrency], duration).await?;
    let gateway_cpu = cpu.per_op(gateway.len())?;
    let cpu = CpuMeter::start(&stack.processes())?;
    let (raw_rate, mut raw) = closed_loop_raw(&stack, concurrency, duration).await?;
    let raw_cpu = cpu.per_op(raw.len())?;
    let (paced_rate, mut paced) =
        paced_gateway(server, &rooms[..paced_sockets], rate, duration).await?;

    let mut report = Report::new(
        "commands",
        &["path", "concurrency", "commands/s", "p50 ms", "p99 ms", "p99.9 ms"],
    );
    let rows = [
        ("gateway, closed loop", concurrency.to_string(), gateway_rate, &mut gateway),
        ("raw JetStream, closed loop", concurrency.to_string(), raw_rate, &mut raw),
        ("gateway, paced", format!("{paced_sockets} sockets"), paced_rate, &mut paced),
    ];
    for (path, concurrency, rate, latencies) in rows {
        report.row(vec![
            path.to_owned(),
            concurrency,
            fmt(rate),
            ms(latencies.quantile(0.5)),
            ms(latencies.quantile(0.99)),
            ms(latencies.quantile(0.999)),
        ]);
    }
    report.note(format!("CPU per command, gateway closed loop: {gateway_cpu}"));
    report.note(format!("CPU per publish, raw JetStream closed loop: {raw_cpu}"));
    report.at_least("gateway / raw JetStream throughput", gateway_rate / raw_rate, ">= 0.5", 0.5);
    report.at_most(
        "command → ack p99 ms at the paced rate",
        paced.quantile(0.99).as_secs_f64() * 1000.0,
        "<= 5 ms at 1000/s",
        5.0,
    );
    Ok(report)
}

/// One socket per room, each sending its next command when the last is acknowledged.
async fn closed_loop_gateway(
    server: SocketAddr,
    rooms: &[Room],
    duration: Duration,
) -> anyhow::Result<(f64, Latencies)> {
    let mut sockets = Vec::new();
    for (n, room) in rooms.iter().enumerate() {
        sockets.push(join(server, n, room).await?);
    }
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = JoinSet::new();
    for (n, mut ws) in sockets.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut latencies = Latencies::default();
            let mut i = 0u64;
            while Instant::now() < until {
                let id = uuid::Uuid::new_v4().to_string();
                let sent = Instant::now();
                send_command(&mut ws, &id, &seek_json(n as u64 * 1_000_000 + i)).await?;
                await_ack(&mut ws, &id).await?;
                latencies.push(sent.elapsed());
                i += 1;
            }
            anyhow::Ok(latencies)
        });
    }
    collect(tasks, started).await
}

/// `n` tasks appending to their own subject with expected-sequence publishes.
async fn closed_loop_raw(
    stack: &Stack,
    n: usize,
    duration: Duration,
) -> anyhow::Result<(f64, Latencies)> {
    let js = jetstream::new(stack.client.clone());
    let (_, mut config) = eventlog::setup::rooms_stream_config(1.into())?;
    config.name = "BENCH".to_owned();
    config.subjects = vec!["bench.>".to_owned()];
    config.republish = None;
    js.create_stream(config).await.context("create the baseline stream")?;
    let payload = bytes::Bytes::from(events::codec::encode(&sample_commit()?)?);
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = JoinSet::new();
    for task in 0..n {
        let (js, payload) = (js.clone(), payload.clone());
        tasks.spawn(async move {
            let subject = format!("bench.{task}");
            let mut latencies = Latencies::default();
            let mut last = 0u64;
            while Instant::now() < until {
                let mut headers = HeaderMap::new();
                headers.insert(headers::MESSAGE_ID, uuid::Uuid::new_v4().to_string().as_str());
                headers.insert(headers::EXPECTED_LAST_SUBJECT_SEQUENCE, last.to_string().as_str());
                let sent = Instant::now();
                // The baseline is a bare publish: what the event log does, without the event log.
                #[allow(clippy::disallowed_methods)]
                let ack = js.publish_with_headers(subject.clone(), headers, payload.clone());
                last = ack.await?.await?.sequence;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    collect(tasks, started).await
}

/// Commands at `rate` per second in all, spread over one socket per room, sent on schedule
/// whether or not earlier ones were answered.
async fn paced_gateway(
    server: SocketAddr,
    rooms: &[Room],
    rate: usize,
    duration: Duration,
) -> anyhow::Result<(f64, Latencies)> {
    let period = Duration::from_secs_f64(rooms.len() as f64 / rate as f64);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (n, room) in rooms.iter().enumerate() {
        let ws = join(server, 1000 + n, room).await?;
        let (mut tx, mut rx) = ws.split();
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let count = (duration.as_secs_f64() / period.as_secs_f64()) as usize;
        let writer_sent = sent.clone();
        // Start each socket at its own offset in the period, so sends are spread evenly.
        let offset = period.mul_f64(n as f64 / rooms.len() as f64);
        tasks.spawn(async move {
            let reader = async {
                let mut latencies = Latencies::default();
                while latencies.len() < count {
                    let frame = next_text(&mut rx).await?;
                    if field(&frame, "type") == Some("ack") {
                        let id = field(&frame, "id").unwrap_or_default();
                        let at = sent.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
                        latencies.push(at.context("ack for a command never sent")?.elapsed());
                    } else if field(&frame, "type") == Some("reject") {
                        bail!("command rejected: {frame}");
                    }
                }
                anyhow::Ok(latencies)
            };
            let writer = async {
                use futures::SinkExt as _;
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                for i in 0..count {
                    ticks.tick().await;
                    let id = uuid::Uuid::new_v4().to_string();
                    let frame = format!(
                        r#"{{"type":"command","id":"{id}","command":{}}}"#,
                        seek_json((1000 + n as u64) * 1_000_000 + i as u64)
                    );
                    writer_sent
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, Instant::now());
                    tx.send(tokio_tungstenite::tungstenite::Message::Text(frame.into())).await?;
                }
                anyhow::Ok(())
            };
            let (latencies, written) = tokio::join!(reader, writer);
            written?;
            latencies
        });
    }
    collect(tasks, started).await
}

async fn join(server: SocketAddr, n: usize, room: &Room) -> anyhow::Result<Ws> {
    let mut ws =
        connect(server, source(n), &format!("/api/rooms/{}/ws?name=c{n}", room.id)).await?;
    welcome(&mut ws).await?;
    Ok(ws)
}

async fn await_ack(ws: &mut Ws, id: &str) -> anyhow::Result<()> {
    loop {
        let frame = next_text(ws).await?;
        match field(&frame, "type") {
            Some("ack") if field(&frame, "id") == Some(id) => return Ok(()),
            Some("reject") => bail!("command rejected: {frame}"),
            _ => {}
        }
    }
}

/// Merges every task's latencies; the overall rate since `started`.
async fn collect(
    mut tasks: JoinSet<anyhow::Result<Latencies>>,
    started: Instant,
) -> anyhow::Result<(f64, Latencies)> {
    let mut all = Latencies::default();
    while let Some(latencies) = tasks.join_next().await {
        all.extend(latencies??);
    }
    Ok((all.len() as f64 / started.elapsed().as_secs_f64(), all))
}

fn seek_json(n: u64) -> String {
    format!(r#"{{"type":"seek","position_ms":{}}}"#, 1000 + n % 3_600_000)
}

/// A commit like the ones the gateway path stores: a seek (the 30th commit of a history).
fn sample_commit() -> anyhow::Result<Commit> {
    let mut history = History::new(RoomId::new("bench-sample")?);
    let mut commit = history.next_commit()?;
    for _ in 1..30 {
        commit = history.next_commit()?;
    }
    Ok(commit)
}
