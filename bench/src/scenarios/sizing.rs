//! `sizing`: what a room costs at rest (issue 22, item 5), so operators can size a deployment.
//!
//! Rooms get a realistic history through the real commands service (the host plays, pauses,
//! seeks and chats), the projectors bring their views up to date and the commands role
//! snapshots them. Then: Redis memory per room (the views), JetStream bytes per commit (the room
//! stream) and per snapshot (the snapshot stream, one per room).

use std::time::{Duration, Instant};

use anyhow::bail;
use async_nats::jetstream;
use events::Command;
use tokio::task::JoinSet;

use crate::Size;
use crate::report::{Report, fmt};
use crate::stack::{Stack, seek};

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let rooms: usize = size.pick(200, 4);
    let commits: u64 = size.pick(200, 20);
    let stack =
        std::sync::Arc::new(Stack::start_with(&[("CHANSHARE_SNAPSHOT_INTERVAL_SECS", "1")]).await?);
    let js = jetstream::new(stack.client.clone());
    let mut redis =
        redis::Client::open(stack.redis.url())?.get_multiplexed_async_connection().await?;
    let before = Footprint::read(&js, &mut redis).await?;

    let mut writers = JoinSet::new();
    for _ in 0..rooms {
        let stack = stack.clone();
        writers.spawn(async move {
            let room = stack.create_room().await?;
            let version = stack
                .fill(&room, commits, |n| match n % 5 {
                    0 => Command::Play,
                    1 => Command::Chat { text: format!("did you see that? message {n} 🐈") },
                    2 | 3 => seek(n),
                    _ => Command::Pause,
                })
                .await?;
            anyhow::Ok(version)
        });
    }
    let mut written = 0;
    while let Some(room) = writers.join_next().await {
        written += room??;
    }
    stack.settle().await?;
    // Every room snapshotted (the commands role's pass runs every second here), then one more
    // pass so that each snapshot is at its room's head.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = Footprint::read(&js, &mut redis).await?;
        if now.snapshots - before.snapshots >= rooms as u64 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{} of {rooms} rooms snapshotted after 60 s", now.snapshots - before.snapshots);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = Footprint::read(&js, &mut redis).await?;

    let per = |bytes: u64, count: u64| bytes as f64 / count.max(1) as f64;
    let redis_per_room = per(after.redis_bytes.saturating_sub(before.redis_bytes), rooms as u64);
    let per_commit = per(after.log_bytes - before.log_bytes, after.commits - before.commits);
    let per_snapshot =
        per(after.snapshot_bytes - before.snapshot_bytes, after.snapshots - before.snapshots);
    let mut report = Report::new("sizing", &["what", "count", "bytes each", "for the whole run"]);
    let mib = |bytes: u64| format!("{} MiB", fmt(bytes as f64 / 1_048_576.0));
    report.row(vec![
        "room in Redis (views)".into(),
        rooms.to_string(),
        fmt(redis_per_room),
        mib(after.redis_bytes.saturating_sub(before.redis_bytes)),
    ]);
    report.row(vec![
        "commit in the room stream".into(),
        (after.commits - before.commits).to_string(),
        fmt(per_commit),
        mib(after.log_bytes - before.log_bytes),
    ]);
    report.row(vec![
        "snapshot (one per room)".into(),
        (after.snapshots - before.snapshots).to_string(),
        fmt(per_snapshot),
        mib(after.snapshot_bytes - before.snapshot_bytes),
    ]);
    report.note(format!(
        "{rooms} rooms of {commits} commits ({written} in all: create, play, chat, seeks, pause \
         by the host), views projected, every room snapshotted. Redis: used_memory; JetStream: \
         stream bytes as the server counts them (one replica: a cluster stores each R times)."
    ));
    Ok(report)
}

/// What the deployment holds.
struct Footprint {
    redis_bytes: u64,
    commits: u64,
    log_bytes: u64,
    snapshots: u64,
    snapshot_bytes: u64,
}

impl Footprint {
    async fn read(
        js: &jetstream::Context,
        redis: &mut redis::aio::MultiplexedConnection,
    ) -> anyhow::Result<Footprint> {
        let info: String = redis::cmd("INFO").arg("memory").query_async(redis).await?;
        let redis_bytes = info
            .lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let mut log = js.get_stream(eventlog::subjects::STREAM).await?;
        let log = log.info().await?.state.clone();
        let mut snapshots = js.get_stream(eventlog::subjects::SNAPSHOT_STREAM).await?;
        let snapshots = snapshots.info().await?.state.clone();
        Ok(Footprint {
            redis_bytes,
            commits: log.messages,
            log_bytes: log.bytes,
            snapshots: snapshots.messages,
            snapshot_bytes: snapshots.bytes,
        })
    }
}
