//! `join`: socket open → snapshot received, for rooms with short and very long histories.
//!
//! Rooms get their history through the real commands service (seeks by the host), the
//! projectors bring their views up to date, then the host joins each room again and again with
//! its token: connect, welcome, snapshot, close. A snapshot comes from the room's view, so the
//! time should not depend on how many commits the room has.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::task::JoinSet;

use crate::Size;
use crate::client::{connect, source, welcome};
use crate::report::{Latencies, Report, fmt, ms};
use crate::stack::{Room, Stack, seek};

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let lengths: Vec<u64> = size.pick(vec![10, 1_000, 100_000], vec![10, 100, 1_000]);
    let joins = size.pick(200, 20);
    let stack = std::sync::Arc::new(Stack::start().await?);
    let server: SocketAddr = stack.gateway.addr().parse()?;

    // Histories are written concurrently: each room's commands are sequential anyway.
    let mut writers = JoinSet::new();
    for &length in &lengths {
        let stack = stack.clone();
        writers.spawn(async move {
            let room = stack.create_room().await?;
            let version = stack.fill(&room, length, seek).await?;
            anyhow::Ok((length, room, version))
        });
    }
    let mut rooms = Vec::new();
    while let Some(written) = writers.join_next().await {
        rooms.push(written??);
    }
    rooms.sort_by_key(|(length, _, _)| *length);
    let redis = redis::Client::open(stack.redis.url())?.get_connection_manager().await?;
    let views = views::Views::new(redis);
    for (_, room, version) in &rooms {
        await_view(&views, room, *version).await?;
    }

    let mut report =
        Report::new("join", &["commits", "joins", "p50 ms", "p99 ms", "max ms", "snapshot bytes"]);
    let mut p50s = Vec::new();
    let mut worst_p99 = Duration::ZERO;
    for (n, (_, room, version)) in rooms.iter().enumerate() {
        // One join first: it brings the room into the commands service's cache.
        join_once(server, n, room).await?;
        let mut latencies = Latencies::default();
        let mut bytes = 0;
        for _ in 0..joins {
            let (took, snapshot) = join_once(server, n, room).await?;
            latencies.push(took);
            bytes = snapshot;
        }
        let p50 = latencies.quantile(0.5);
        let p99 = latencies.quantile(0.99);
        p50s.push(p50.as_secs_f64());
        worst_p99 = worst_p99.max(p99);
        report.row(vec![
            version.to_string(),
            joins.to_string(),
            ms(p50),
            ms(p99),
            ms(latencies.quantile(1.0)),
            bytes.to_string(),
        ]);
    }
    let flat =
        p50s.iter().copied().fold(0.0, f64::max) / p50s.iter().copied().fold(f64::MAX, f64::min);
    report.note(format!(
        "largest / smallest p50: {}; every join is a real `join` command (a reconnect of the host), \
         a head read and a snapshot read from Redis.",
        fmt(flat)
    ));
    report.at_most("largest / smallest join p50", flat, "<= 1.5", 1.5);
    report.at_most("join p99 ms", worst_p99.as_secs_f64() * 1000.0, "<= 10 ms", 10.0);
    Ok(report)
}

/// Opens the room as its host, waits for the snapshot, closes: (time to snapshot, its bytes).
async fn join_once(server: SocketAddr, n: usize, room: &Room) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let path = format!("/api/rooms/{}/ws?token={}", room.id, room.token);
    let mut ws = connect(server, source(n), &path).await?;
    let bytes = welcome(&mut ws).await?;
    let took = started.elapsed();
    ws.close(None).await.ok();
    Ok((took, bytes))
}

/// Waits until the projectors have the room's view at `version`.
async fn await_view(views: &views::Views, room: &Room, version: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if views.stored_state(&room.id).await?.is_some_and(|s| s.version >= version) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the view of {} did not reach version {version}", room.id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
