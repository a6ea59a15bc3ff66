//! `storm`: a gateway holding 15 000 sockets dies (issue 22, item 3). Six gateways hold 90 000
//! members in rooms of 50 (each member's gateway chosen round robin, so every room loses
//! members); while hosts seek in their rooms, 200 seeks a second, one gateway is killed with
//! SIGKILL. Its clients reconnect as the web client does (jittered backoff, from 150 ms) to the
//! other gateways and ask to resume from their last version. Reported: the time from the kill
//! until the last of them is welcomed back, how many resumed without a snapshot, and — after a
//! last seek in every room has reached every member — the commits any member missed or
//! received twice over the whole run, and every refused reconnection by its close code.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;

use crate::Size;
use crate::cluster::{Cluster, per_gateway, seats};
use crate::report::{Report, fmt};
use crate::stack::{Room, command_with_id, seek};
use crate::swarm::{Answer, Order, Seat, ask_all, now_us, status};

const PER_ROOM: usize = 50;
/// Seeks a second while the gateway dies and its clients come back.
const SEEKS_PER_SECOND: u64 = 200;

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let gateways = size.pick(6, 2);
    let per_gateway_n = size.pick(15_000, 100);
    let total = gateways * per_gateway_n;
    let mut cluster = Cluster::start(gateways, size.pick(6, 2)).await?;
    let rooms = cluster.create_rooms(total / PER_ROOM).await?;
    let seats: Vec<Seat> = rooms
        .iter()
        .enumerate()
        .flat_map(|(r, room)| seats(room, r * PER_ROOM, PER_ROOM, gateways))
        .collect();
    cluster.open(&seats, total).await?;
    cluster.stack.settle_within(Duration::from_secs(300)).await?;
    // The stack's own gateway is number 0; the last one dies.
    let victim = gateways - 1;
    let held = per_gateway(&seats, gateways)[victim];

    let (stop, stopped) = watch::channel(false);
    let load = tokio::spawn(load(cluster.stack.client.clone(), rooms.clone(), stopped));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = now_us();
    cluster.kill(victim)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut during = status(&mut cluster.swarms).await?;
    while (during.lost < held || during.back < during.lost) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        during = status(&mut cluster.swarms).await?;
    }
    let all_back_s = if during.back >= held {
        during.last_back_us.saturating_sub(killed_at) as f64 / 1e6
    } else {
        f64::INFINITY
    };
    // The load goes on a little after the last is back, then stops.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(true).ok();
    let (seeks, seek_errors) = load.await??;

    // A last commit in every room; once every member has it, gaps and repeats are all counted.
    let mut versions = HashMap::new();
    for chunk in rooms.chunks(64) {
        let done = futures::future::try_join_all(chunk.iter().map(|room| {
            let client = cluster.stack.client.clone();
            async move {
                let id = events::CommandId(uuid::Uuid::new_v4());
                let version = command_with_id(&client, room, id, seek(9_999_999)).await?;
                anyhow::Ok((room.id.to_string(), version))
            }
        }))
        .await?;
        versions.extend(done);
    }
    let mut behind = 0;
    for answer in ask_all(&mut cluster.swarms, &Order::Await { versions }).await? {
        let Answer::Caught { behind: b } = answer else {
            anyhow::bail!("expected caught, got {answer:?}");
        };
        behind += b;
    }
    let end = status(&mut cluster.swarms).await?;
    let consumer_limit = cluster.logs().matches("maximum consumers").count();
    let unavailable = end.refused.get("close 4503").copied().unwrap_or(0);

    let troubles = (unavailable + consumer_limit + seek_errors > 0).then(|| cluster.troubles());
    let mut report = Report::new(
        "storm",
        &[
            "sockets",
            "on the killed gateway",
            "lost",
            "back",
            "resumed",
            "all back s",
            "missed",
            "duplicates",
            "behind at the end",
        ],
    );
    report.row(vec![
        total.to_string(),
        held.to_string(),
        end.lost.to_string(),
        end.back.to_string(),
        end.resumed.to_string(),
        fmt(all_back_s),
        end.missed.to_string(),
        end.duplicates.to_string(),
        behind.to_string(),
    ]);
    let refused: Vec<String> = end.refused.iter().map(|(why, n)| format!("{why}: {n}")).collect();
    report.note(format!(
        "{gateways} gateways, {} client processes, rooms of {PER_ROOM}; {seeks} seeks during the \
         storm ({seek_errors} refused); refused reconnection attempts: {}; JetStream \
         consumer-limit errors in the logs of the gateways left: {consumer_limit}.",
        cluster.swarms.len(),
        if refused.is_empty() { "none".to_owned() } else { refused.join(", ") },
    ));
    if let Some(troubles) = troubles {
        report.note(format!("the servers' last warnings:\n{troubles}"));
    }
    report.at_most(
        "time until every client of the killed gateway is back (s)",
        all_back_s,
        "<= 30 s",
        30.0,
    );
    report.at_most("commits missed", end.missed as f64, "0", 0.0);
    report.at_most("commits received twice", end.duplicates as f64, "0", 0.0);
    report.at_most(
        "reconnections back with a snapshot, not resumed",
        end.back.saturating_sub(end.resumed) as f64,
        "0",
        0.0,
    );
    report.at_most(
        "4503 refusals and consumer-limit errors",
        (unavailable + consumer_limit) as f64,
        "0",
        0.0,
    );
    report.at_most("members behind the last commit", behind as f64, "0", 0.0);
    Ok(report)
}

/// Hosts seek in their rooms, in turn, [`SEEKS_PER_SECOND`], until `stop`; the seeks accepted
/// and refused.
async fn load(
    client: async_nats::Client,
    rooms: Vec<Room>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(usize, usize)> {
    let mut every = tokio::time::interval(Duration::from_micros(1_000_000 / SEEKS_PER_SECOND));
    let mut sent = tokio::task::JoinSet::new();
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => break,
        }
        let room = rooms.get(n as usize % rooms.len()).context("no rooms")?.clone();
        let client = client.clone();
        let id = events::CommandId(uuid::Uuid::new_v4());
        sent.spawn(async move { command_with_id(&client, &room, id, seek(n)).await });
        n += 1;
    }
    let (mut accepted, mut refused) = (0, 0);
    while let Some(done) = sent.join_next().await {
        match done? {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    Ok((accepted, refused))
}
