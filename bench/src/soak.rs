//! `bench soak --minutes N` (not in CI): does anything grow while the service runs for a while?
//!
//! Sockets churn (join, play, seek, chat, leave, come back, some with their token and resume)
//! over a set of rooms, while rooms are created and closed; every `--sample-secs` the harness
//! records each process's resident memory and open files, JetStream consumers, Redis memory and
//! keys. After a warm-up (the first fifth), each series gets a least-squares slope per minute:
//! flat (within noise) is the goal. At the end nothing may be lost: every room's view has caught
//! up with its log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::task::JoinSet;

use crate::client::{connect, field, next_text, send_command, source};
use crate::report::{Report, fmt};
use crate::stack::{Room, Stack, rss};

/// The soak's knobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Soak {
    pub(crate) minutes: u64,
    pub(crate) sockets: usize,
    pub(crate) rooms: usize,
    pub(crate) sample_secs: u64,
}

/// One sample: a name → value per series.
type Sample = Vec<(String, f64)>;

pub(crate) async fn run(soak: Soak) -> anyhow::Result<Report> {
    let stack = Stack::start().await?;
    let server: std::net::SocketAddr = stack.gateway.addr().parse()?;
    let mut rooms = Vec::new();
    for _ in 0..soak.rooms {
        rooms.push(stack.create_room().await?);
    }
    let rooms = Arc::new(tokio::sync::RwLock::new(rooms));
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for n in 0..soak.sockets {
        tasks.spawn(churn(server, n, rooms.clone(), stop.clone(), acks.clone()));
    }
    let mut redis = redis::Client::open(stack.redis.url())?.get_connection_manager().await?;
    let js = async_nats::jetstream::new(stack.client.clone());
    let started = Instant::now();
    let until = started + Duration::from_secs(soak.minutes * 60);
    let mut samples: Vec<(f64, Sample)> = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(soak.sample_secs));
    let mut replaced = 0usize;
    while Instant::now() < until {
        ticks.tick().await;
        // Room churn: one new room in, the oldest closed, each tick.
        let fresh = stack.create_room().await?;
        let old = {
            let mut rooms = rooms.write().await;
            rooms.push(fresh);
            rooms.remove(0)
        };
        stack.command(&old, events::Command::Close).await.ok();
        replaced += 1;
        let minute = started.elapsed().as_secs_f64() / 60.0;
        samples.push((minute, sample(&stack, &mut redis, &js).await?));
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    // The churned members leave over the presence timeout (dropped connections) and the reaper's
    // passes: wait for the last of them.
    let settled = stack.settle_within(Duration::from_secs(180)).await;
    // Nothing lost: every room's view is at its log's head.
    let log = eventlog::EventLog::open(stack.client.clone()).await?;
    let views = views::Views::new(redis.clone());
    let mut behind = 0;
    for room in log.rooms().await? {
        let head = log.head(&room).await?.map_or(0, |h| h.version);
        let view = views.stored_state(&room).await?.map_or(0, |v| v.version);
        let closed_and_gone =
            view == 0 && log.fold_while(&room, |_, _| true).await?.closed.is_some();
        if view != head && !closed_and_gone {
            behind += 1;
        }
    }

    let mut report =
        Report::new("soak", &["series", "first", "last", "slope per minute", "slope / mean"]);
    let warm = samples.len() / 5;
    let steady = &samples[warm.min(samples.len().saturating_sub(2))..];
    let names: Vec<String> = samples
        .first()
        .map(|(_, s)| s.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        let points: Vec<(f64, f64)> = steady.iter().map(|(t, s)| (*t, s[i].1)).collect();
        let (slope, mean) = slope(&points);
        let first = samples.first().map_or(0.0, |(_, s)| s[i].1);
        let last = samples.last().map_or(0.0, |(_, s)| s[i].1);
        report.row(vec![
            name.clone(),
            fmt(first),
            fmt(last),
            fmt(slope),
            format!("{:.2} %", 100.0 * slope / mean.max(1e-9)),
        ]);
    }
    report.note(format!(
        "{} sockets churning over {} rooms for {} min ({} acks), a room replaced every {} s ({replaced} in all)",
        soak.sockets,
        soak.rooms,
        soak.minutes,
        acks.load(Ordering::Relaxed),
        soak.sample_secs
    ));
    if let Err(error) = settled {
        report.note(format!("{error}: the check below may count rooms still being written"));
    }
    report.at_most("rooms whose view did not catch up with the log", f64::from(behind), "0", 0.0);
    Ok(report)
}

/// Least-squares slope of `points` (x in minutes), and the mean of y.
fn slope(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if n < 2.0 {
        return (0.0, points.first().map_or(0.0, |p| p.1));
    }
    let (mx, my) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (if den > 0.0 { num / den } else { 0.0 }, my)
}

async fn sample(
    stack: &Stack,
    redis: &mut redis::aio::ConnectionManager,
    js: &async_nats::jetstream::Context,
) -> anyhow::Result<Sample> {
    let mut sample = Vec::new();
    for (name, pid) in stack.processes() {
        sample.push((format!("{name} RSS MiB"), rss(pid)? as f64 / f64::from(1 << 20)));
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
        sample.push((format!("{name} open files"), fds as f64));
    }
    for (name, process) in [
        ("gateway", &stack.gateway),
        ("commands", &stack.commands),
        ("projectors", &stack.projectors),
    ] {
        let metrics =
            reqwest::get(format!("http://{}/metrics", process.addr())).await?.text().await?;
        let tasks = metrics
            .lines()
            .find_map(|l| l.strip_prefix("chanshare_runtime_tasks "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .context("no chanshare_runtime_tasks")?;
        sample.push((format!("{name} tasks"), tasks));
    }
    let mut stream = js.get_stream(eventlog::subjects::STREAM).await?;
    let info = stream.info().await?;
    sample.push(("JetStream consumers".to_owned(), info.state.consumer_count as f64));
    // Reads delete their consumer when they end: one older than a minute is a leak.
    let mut consumers = stream.consumers();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let mut old = 0u32;
    while let Some(consumer) = futures::StreamExt::next(&mut consumers).await {
        let consumer = consumer?;
        let age = now.saturating_sub(u64::try_from(consumer.created.unix_timestamp())?);
        if consumer.name != "chanshare-projector" && age > 60 {
            old += 1;
        }
    }
    sample.push(("JetStream consumers > 1 min old".to_owned(), f64::from(old)));
    let memory: String = redis::cmd("INFO").arg("memory").query_async(redis).await?;
    let used = memory
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .context("no used_memory")?;
    sample.push(("Redis MiB".to_owned(), used / f64::from(1 << 20)));
    let keys: u64 = redis::cmd("DBSIZE").query_async(redis).await?;
    sample.push(("Redis keys".to_owned(), keys as f64));
    Ok(sample)
}

/// One churning member: joins a room (every third time with its token, resuming), plays,
/// seeks and chats for 5 to 20 s, leaves (cleanly or by dropping the connection), and again.
async fn churn(
    server: std::net::SocketAddr,
    n: usize,
    rooms: Arc<tokio::sync::RwLock<Vec<Room>>>,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut round = 0usize;
    let mut token: Option<(String, String)> = None;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let room = {
            let rooms = rooms.read().await;
            rooms[(n + round) % rooms.len()].id.to_string()
        };
        let query = match &token {
            Some((for_room, token)) if *for_room == room && round.is_multiple_of(3) => {
                format!("token={token}")
            }
            _ => format!("name=s{n}"),
        };
        let Ok(mut ws) = connect(server, source(n), &format!("/api/rooms/{room}/ws?{query}")).await
        else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        // The welcome (its token, for coming back) and, unless resumed, the snapshot.
        let Ok(welcome) = next_text(&mut ws).await else {
            continue; // a closed room, or the join refused: try another.
        };
        if let Some(member_token) = field(&welcome, "token") {
            token = Some((room.clone(), member_token.to_owned()));
        }
        if !welcome.contains("\"recovered\":true") && next_text(&mut ws).await.is_err() {
            continue;
        }
        let stay =
            Duration::from_millis(5000 + (n as u64 * 7919 + round as u64 * 104_729) % 15_000);
        let until = Instant::now() + stay;
        let mut i = 0u64;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            let command = match i % 4 {
                0 => r#"{"type":"play"}"#.to_owned(),
                1 => format!(
                    r#"{{"type":"seek","position_ms":{}}}"#,
                    1000 + (n as u64 * 1000 + i) % 60_000
                ),
                2 => r#"{"type":"chat","text":"still here"}"#.to_owned(),
                _ => r#"{"type":"ping","t":1}"#.to_owned(),
            };
            let id = uuid::Uuid::new_v4().to_string();
            if command.contains("ping") {
                use futures::SinkExt as _;
                ws.send(tokio_tungstenite::tungstenite::Message::Text(command.into())).await.ok();
            } else if send_command(&mut ws, &id, &command).await.is_err() {
                break;
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                let Ok(Ok(frame)) =
                    tokio::time::timeout(Duration::from_secs(2), next_text(&mut ws)).await
                else {
                    break;
                };
                if field(&frame, "id") == Some(id.as_str()) {
                    acks.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
            i += 1;
        }
        // Every other time a clean close; else the connection is just dropped.
        if round.is_multiple_of(2) {
            ws.close(None).await.ok();
        }
    }
    Ok(())
}
