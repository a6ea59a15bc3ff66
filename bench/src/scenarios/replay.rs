//! `replay`: how fast rooms are read back. First decode + fold on one core, in memory (the work
//! every reader of the log does per commit); then a full view rebuild (`chanshare replay
//! rebuild`'s code) from a real stream into a real Redis.

use std::time::{Duration, Instant};

use eventlog::EventLog;
use events::{RoomId, RoomState};
use tests::{NatsServer, RedisServer};
use tokio::task::JoinSet;

use crate::Size;
use crate::history::History;
use crate::report::{Report, fmt};

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let (fold_rooms, fold_commits) = size.pick((10, 50_000), (2, 2_000));
    let (rebuild_rooms, rebuild_commits) = size.pick((50, 1_000), (4, 100));

    let rooms =
        tokio::task::spawn_blocking(move || encoded_rooms(fold_rooms, fold_commits)).await??;
    let (events, commits, took) = tokio::task::spawn_blocking(move || {
        // Best of three: the first pass also warms caches and the allocator.
        let mut best = (0, 0, Duration::MAX);
        for _ in 0..3 {
            let pass = fold_all(&rooms)?;
            if pass.2 < best.2 {
                best = pass;
            }
        }
        anyhow::Ok(best)
    })
    .await??;
    let events_per_s = events as f64 / took.as_secs_f64();

    let (rebuilt, rebuild_took) = rebuild(rebuild_rooms, rebuild_commits).await?;

    let mut report = Report::new(
        "replay",
        &["what", "rooms", "commits", "events", "seconds", "commits/s", "events/s"],
    );
    report.row(vec![
        "decode + fold, one core".to_owned(),
        fold_rooms.to_string(),
        commits.to_string(),
        events.to_string(),
        fmt(took.as_secs_f64()),
        fmt(commits as f64 / took.as_secs_f64()),
        fmt(events_per_s),
    ]);
    report.row(vec![
        "view rebuild (stream → Redis)".to_owned(),
        rebuild_rooms.to_string(),
        rebuilt.to_string(),
        "-".to_owned(),
        fmt(rebuild_took.as_secs_f64()),
        fmt(rebuilt as f64 / rebuild_took.as_secs_f64()),
        "-".to_owned(),
    ]);
    report.at_least("decode + fold events/s, one core", events_per_s, ">= 1 000 000", 1_000_000.0);
    Ok(report)
}

fn room_id(n: usize) -> anyhow::Result<RoomId> {
    Ok(RoomId::new(format!("bench-room-{n}"))?)
}

/// `rooms` histories of `commits` commits each, encoded as they are stored.
fn encoded_rooms(rooms: usize, commits: usize) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
    (0..rooms)
        .map(|r| {
            let mut history = History::new(room_id(r)?);
            (0..commits).map(|_| Ok(events::codec::encode(&history.next_commit()?)?)).collect()
        })
        .collect()
}

/// Decodes and folds every room: (events, commits, time).
fn fold_all(rooms: &[Vec<Vec<u8>>]) -> anyhow::Result<(usize, usize, Duration)> {
    let started = Instant::now();
    let (mut events, mut commits) = (0, 0);
    for room in rooms {
        let mut state = RoomState::default();
        for bytes in room {
            let commit = events::codec::decode(bytes)?;
            events += commit.events.len();
            commits += 1;
            state = state.apply(&commit);
        }
        std::hint::black_box(&state);
    }
    Ok((events, commits, started.elapsed()))
}

/// Appends the histories to a fresh stream, then times a rebuild of every view.
async fn rebuild(rooms: usize, commits: usize) -> anyhow::Result<(u64, Duration)> {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let (log, _) = EventLog::connect(async_nats::connect(nats.url()).await?, 1).await?;
    let mut writers = JoinSet::new();
    for r in 0..rooms {
        let log = log.clone();
        writers.spawn(async move {
            let mut history = History::new(room_id(r)?);
            let mut last = 0;
            for _ in 0..commits {
                last = log.append(last, &history.next_commit()?, None).await?.position.seq;
            }
            anyhow::Ok(())
        });
    }
    while let Some(written) = writers.join_next().await {
        written??;
    }
    let redis = redis::Client::open(redis.url())?.get_connection_manager().await?;
    let views = views::Views::new(redis);
    let started = Instant::now();
    let rebuilt = projectors::rebuild::rebuild(&log, &views, true, |_| {}).await?;
    Ok((rebuilt.commits, started.elapsed()))
}
