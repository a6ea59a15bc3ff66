//! `abuse`: honest clients keep playing while attackers flood the server (issue 18).
//!
//! The gateway runs with the limits meant for the internet and trusts the loopback proxy, so
//! every client has its own address (`X-Forwarded-For`): 50 honest members in 10 rooms, each
//! sending a seek every half second and timing its ack; four attacker addresses flooding at
//! once with new sockets (into the honest rooms), room creations, chat from the sockets they
//! got, `/events` reads, and lookups of rooms that do not exist. Measured twice, without and
//! with the flood: the honest clients' command → ack latencies and anything of theirs refused
//! (the goal: p99 at most 2× slower, nothing refused), and what the attackers got.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::{SinkExt as _, StreamExt as _};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::Size;
use crate::client::{Ws, connect_as, field, next_text, send_command, welcome};
use crate::report::{Latencies, Report, ms};
use crate::stack::{Room, Stack};

const HONEST_ROOMS: usize = 10;
const ATTACKERS: usize = 4;

/// What the attackers tried, and what they got (outcome → count).
type Tally = Arc<Mutex<BTreeMap<String, usize>>>;

fn count(tally: &Tally, what: &str, outcome: impl std::fmt::Display) {
    let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    *tally.entry(format!("{what} {outcome}")).or_default() += 1;
}

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let honest = size.pick(50, 10);
    let duration = size.pick(Duration::from_secs(20), Duration::from_secs(3));
    let stack = Stack::start_with(&[
        ("CHANSHARE_TRUSTED_PROXIES", "127.0.0.0/8"),
        ("CHANSHARE_CONNECTIONS_PER_IP", "64"),
        ("CHANSHARE_CREATIONS_PER_MINUTE", "10"),
        ("CHANSHARE_COMMANDS_PER_SECOND", "10"),
        ("CHANSHARE_SOCKETS_PER_MINUTE", "60"),
        ("CHANSHARE_JOINS_PER_MINUTE", "60"),
        ("CHANSHARE_MISSES_PER_MINUTE", "30"),
        ("CHANSHARE_READS_PER_MINUTE", "120"),
    ])
    .await?;
    let server: SocketAddr = stack.gateway.addr().parse()?;
    let mut rooms = Vec::new();
    for _ in 0..HONEST_ROOMS {
        rooms.push(stack.create_room().await?);
    }

    let (quiet, quiet_refused) = honest_load(server, &rooms, honest, 0, duration).await?;
    let tally = Tally::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attack = flood(server, &rooms, tally.clone(), stop.clone());
    let (loud, loud_refused) = honest_load(server, &rooms, honest, honest, duration).await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    attack.await??;

    let (mut quiet, mut loud) = (quiet, loud);
    let mut report =
        Report::new("abuse", &["phase", "honest commands", "p50 ms", "p99 ms", "honest refused"]);
    for (phase, latencies, refused) in
        [("quiet", &mut quiet, quiet_refused), ("under the flood", &mut loud, loud_refused)]
    {
        report.row(vec![
            phase.to_owned(),
            latencies.len().to_string(),
            ms(latencies.quantile(0.5)),
            ms(latencies.quantile(0.99)),
            refused.to_string(),
        ]);
    }
    let tally = tally.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (outcome, n) in &tally {
        report.note(format!("attackers: {outcome}: {n}"));
    }
    let ratio = loud.quantile(0.99).as_secs_f64() / quiet.quantile(0.99).as_secs_f64().max(1e-6);
    report.at_most("honest p99 under the flood / quiet", ratio, "<= 2", 2.0);
    report.at_most(
        "honest commands refused under the flood",
        (quiet_refused + loud_refused) as f64,
        "0",
        0.0,
    );
    Ok(report)
}

/// `clients` honest members (addresses 10.0.x.y from `first`) in `rooms`, each sending a seek
/// every 500 ms for `duration`: their ack latencies, and how many of their commands or joins
/// were refused.
async fn honest_load(
    server: SocketAddr,
    rooms: &[Room],
    clients: usize,
    first: usize,
    duration: Duration,
) -> anyhow::Result<(Latencies, usize)> {
    let mut sockets = Vec::new();
    for n in first..first + clients {
        let room = &rooms[n % rooms.len()];
        let address = format!("10.0.{}.{}", n / 250, n % 250 + 1);
        let path = format!("/api/rooms/{}/ws?name=honest{n}", room.id);
        match connect_as(server, &address, &path).await? {
            Ok(mut ws) => {
                welcome(&mut ws).await?;
                sockets.push(ws);
            }
            Err(status) => bail!("an honest client was refused its socket: {status}"),
        }
    }
    let until = Instant::now() + duration;
    let mut tasks = JoinSet::new();
    for (n, ws) in sockets.into_iter().enumerate() {
        tasks.spawn(honest_client(ws, (first + n) as u64, until));
    }
    let (mut all, mut refused) = (Latencies::default(), 0);
    while let Some(result) = tasks.join_next().await {
        let (latencies, rejects) = result??;
        all.extend(latencies);
        refused += rejects;
    }
    Ok((all, refused))
}

async fn honest_client(ws: Ws, n: u64, until: Instant) -> anyhow::Result<(Latencies, usize)> {
    let (mut tx, mut rx) = ws.split();
    let mut ticks = tokio::time::interval(Duration::from_millis(500));
    let (mut latencies, mut refused) = (Latencies::default(), 0);
    let mut i = 0u64;
    while Instant::now() < until {
        ticks.tick().await;
        let id = uuid::Uuid::new_v4().to_string();
        let seek =
            format!(r#"{{"type":"seek","position_ms":{}}}"#, 1000 + (n * 100_000 + i) % 3_600_000);
        let frame = format!(r#"{{"type":"command","id":"{id}","command":{seek}}}"#);
        let sent = Instant::now();
        tx.send(Message::Text(frame.into())).await?;
        loop {
            let frame = next_text(&mut rx).await?;
            if field(&frame, "id") != Some(id.as_str()) {
                continue;
            }
            match field(&frame, "type") {
                Some("ack") => latencies.push(sent.elapsed()),
                _ => refused += 1,
            }
            break;
        }
        i += 1;
    }
    Ok((latencies, refused))
}

/// Starts the attackers; they stop when `stop` is set.
fn flood(
    server: SocketAddr,
    rooms: &[Room],
    tally: Tally,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let rooms: Vec<Room> = rooms.to_vec();
    tokio::spawn(async move {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        let base = format!("http://{server}");
        let running = move || !stop.load(std::sync::atomic::Ordering::Relaxed);
        let mut tasks = JoinSet::new();
        for attacker in 0..ATTACKERS {
            let from = format!("198.51.100.{}", attacker + 1);
            // New sockets into the honest rooms; the ones let in chat as fast as they can.
            let (tally_c, rooms_c, from_c, running_c) =
                (tally.clone(), rooms.clone(), from.clone(), running.clone());
            tasks.spawn(async move {
                let mut kept: Vec<Ws> = Vec::new();
                let mut n = 0usize;
                while running_c() {
                    let room = &rooms_c[n % rooms_c.len()];
                    let path = format!("/api/rooms/{}/ws?name=bot{n}", room.id);
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    match connect_as(server, &from_c, &path).await {
                        Ok(Ok(mut ws)) => match welcome(&mut ws).await {
                            Ok(_) => {
                                count(&tally_c, "socket", "welcomed");
                                kept.push(ws);
                            }
                            Err(_) => count(&tally_c, "socket", "closed at join"),
                        },
                        Ok(Err(status)) => count(&tally_c, "socket", status),
                        Err(_) => count(&tally_c, "socket", "failed"),
                    }
                    for ws in kept.iter_mut().take(4) {
                        let id = uuid::Uuid::new_v4().to_string();
                        if send_command(ws, &id, r#"{"type":"chat","text":"spam spam spam"}"#)
                            .await
                            .is_ok()
                        {
                            count(&tally_c, "chat", "sent");
                        }
                    }
                    // Drain what the kept sockets were sent (acks, rejects, commits).
                    for ws in &mut kept {
                        while let Ok(Some(Ok(Message::Text(frame)))) =
                            tokio::time::timeout(Duration::from_millis(1), ws.next()).await
                        {
                            if field(&frame, "type") == Some("reject") {
                                count(
                                    &tally_c,
                                    "chat",
                                    field(&frame, "code").unwrap_or("rejected"),
                                );
                            }
                        }
                    }
                }
                anyhow::Ok(())
            });
            // HTTP: creations, history reads, guesses.
            for what in ["create", "events", "guess"] {
                let (tally, http, base, from, rooms, running) = (
                    tally.clone(),
                    http.clone(),
                    base.clone(),
                    from.clone(),
                    rooms.clone(),
                    running.clone(),
                );
                tasks.spawn(async move {
                    let mut n = 0usize;
                    while running() {
                        n += 1;
                        // About 200 requests a second per loop, twelve loops.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        let request = match what {
                            "create" => http
                                .post(format!("{base}/api/rooms"))
                                .header("content-type", "application/json")
                                .body(r#"{"source": {"urls": ["https://spam.example/x.webm"]}}"#),
                            "events" => http.get(format!(
                                "{base}/api/rooms/{}/events?limit=1000",
                                rooms[n % rooms.len()].id
                            )),
                            _ => http.get(format!("{base}/api/rooms/no-such-room-{n}")),
                        };
                        match request.header("x-forwarded-for", from.as_str()).send().await {
                            Ok(response) => count(&tally, what, response.status().as_u16()),
                            Err(_) => count(&tally, what, "failed"),
                        }
                    }
                    anyhow::Ok(())
                });
            }
        }
        while let Some(result) = tasks.join_next().await {
            result??;
        }
        Ok(())
    })
}
