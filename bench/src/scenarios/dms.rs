//! `dms`: direct messages between two gateways (issue 21).
//!
//! Senders on one gateway write to receivers on another at a fixed total rate; each sender
//! measures, per message, the time from sending to its `ack` (stored: `sent`) and to its
//! `dm_status delivered` (the receiver's gateway wrote it to the receiver's socket and stored the
//! receipt). Then idle account sockets are opened on a third gateway, and its resident memory
//! says what one costs: one account on many devices (they share the account's inbox), and many
//! accounts on one device each (each has an inbox of its own: two NATS subscriptions).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::Size;
use crate::client::{connect, next_text, source};
use crate::report::{Latencies, Report, fmt, ms};
use crate::stack::{Stack, env, settled_rss};

const PASSWORD: &str = "a benchmark password, long enough";
/// Idle sockets opened before an idle measure starts.
const WARM: usize = 50;

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let pairs: usize = size.pick(50, 2);
    let rate: f64 = size.pick(1000.0, 20.0);
    let seconds: u64 = size.pick(20, 2);
    let idle: usize = size.pick(1000, 20);
    let spread: usize = size.pick(300, 10);
    let stack = Stack::start().await?;
    let settings = env(&stack.nats, &stack.redis);
    let receiving = tests::Chanshare::start("gateway", &settings);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let base = format!("http://{}", stack.gateway.addr());

    let mut tokens = Vec::new();
    for n in 0..pairs * 2 + 1 + WARM + spread {
        tokens.push(account(&http, &base, &format!("dm{n}")).await?);
    }
    let open = |server: std::net::SocketAddr, n: usize, token: String| async move {
        let mut ws =
            connect(server, source(n), &format!("/api/me/ws?access_token={token}")).await?;
        ws.send(Message::Text(
            json!({"type": "dm_sync", "id": "s", "since": {}}).to_string().into(),
        ))
        .await?;
        let ack =
            next_text(&mut ws).await.with_context(|| format!("account socket {n} on {server}"))?;
        if !ack.contains("\"ack\"") {
            bail!("dm_sync answered {ack}");
        }
        anyhow::Ok(ws)
    };
    // Receivers on the second gateway, reading everything.
    let mut readers = JoinSet::new();
    for n in 0..pairs {
        let mut ws = open(receiving.addr().parse()?, n, tokens[pairs + n].clone()).await?;
        readers.spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    }
    // Senders on the first, at `rate / pairs` each.
    let sent = Arc::new(Mutex::new(Latencies::default()));
    let delivered = Arc::new(Mutex::new(Latencies::default()));
    let per_sender = rate / pairs as f64;
    let count = (per_sender * seconds as f64).ceil() as usize;
    let gateway = stack.gateway.addr().parse()?;
    let started = Instant::now();
    let mut senders = JoinSet::new();
    for (n, token) in tokens.iter().take(pairs).enumerate() {
        let ws = open(gateway, n, token.clone()).await?;
        let (sent, delivered) = (sent.clone(), delivered.clone());
        let to = format!("dm{}", pairs + n);
        senders.spawn(async move { send(ws, &to, per_sender, count, sent, delivered).await });
    }
    while let Some(done) = senders.join_next().await {
        done.context("a sender panicked")??;
    }
    let elapsed = started.elapsed();
    readers.abort_all();

    // Idle account sockets, each kind on a gateway of its own: one account on many devices, and
    // many accounts on one device each. A first batch is opened before the measure starts (as
    // the room sockets' benchmark does), so what is measured is what the sockets hold more than
    // the process's first growth.
    let mut idle_cost = Vec::new();
    let one_account = vec![tokens[pairs * 2].clone(); WARM + idle];
    let many_accounts = tokens[pairs * 2 + 1..].to_vec();
    for (what, target, sockets) in [
        ("one account on", "idle account socket, one account (KiB)", one_account),
        (
            "accounts on one device each,",
            "idle account socket, one per account (KiB)",
            many_accounts,
        ),
    ] {
        let idling = tests::Chanshare::start("gateway", &settings);
        let addr: std::net::SocketAddr = idling.addr().parse()?;
        let log = || {
            let log = idling.log();
            let lines: Vec<&str> =
                log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
            lines[lines.len().saturating_sub(5)..].join("\n")
        };
        let mut open_ones = Vec::with_capacity(sockets.len());
        let mut before = 0;
        for (n, token) in sockets.iter().enumerate() {
            if n == WARM {
                before = settled_rss(idling.pid()).await?;
            }
            let socket = open(addr, n, token.clone()).await;
            open_ones.push(socket.with_context(|| format!("the idle gateway said:\n{}", log()))?);
        }
        let after = settled_rss(idling.pid()).await?;
        let count = sockets.len() - WARM;
        idle_cost.push((
            what,
            target,
            count,
            after.saturating_sub(before) as f64 / count as f64 / 1024.0,
        ));
    }

    let mut report = Report::new("dms", &["measure", "n", "p50 ms", "p99 ms", "max ms"]);
    let total = sent.lock().map_or(0, |l| l.len());
    for (name, lat) in [("send → sent (ack)", &sent), ("send → delivered", &delivered)] {
        let mut lat = lat.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        let max = lat.quantile(1.0);
        report.row(vec![
            name.into(),
            lat.len().to_string(),
            ms(lat.quantile(0.5)),
            ms(lat.quantile(0.99)),
            ms(max),
        ]);
    }
    for (what, target, count, per_socket) in idle_cost {
        report.row(vec![
            format!("idle account socket, {what} {count} sockets"),
            count.to_string(),
            "-".into(),
            "-".into(),
            format!("{} KiB each", fmt(per_socket)),
        ]);
        report.at_most(target, per_socket, "<= 8 KiB", 8.0);
    }
    report.note(format!(
        "{pairs} senders on one gateway to {pairs} receivers on another, {} messages in {:.1} s \
         ({} /s asked, {} /s done). Delivered = the receiver's gateway wrote the message to the \
         receiver's socket and stored the receipt (expected-last-sequence on the receiver's \
         receipts subject), and the sender's gateway sent the status.",
        total,
        elapsed.as_secs_f64(),
        fmt(rate),
        fmt(total as f64 / elapsed.as_secs_f64()),
    ));
    Ok(report)
}

/// Signs `username` up and in: the access token.
async fn account(http: &reqwest::Client, base: &str, username: &str) -> anyhow::Result<String> {
    let body = json!({"username": username, "password": PASSWORD});
    for path in ["/api/accounts", "/api/sessions"] {
        let response = http
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if !(200..300).contains(&status) {
            bail!("{path} for {username} answered {status}: {text}");
        }
        if path == "/api/sessions" {
            let reply: Value = serde_json::from_str(&text)?;
            return reply["access_token"].as_str().map(str::to_owned).context("no access token");
        }
    }
    bail!("unreachable")
}

/// Sends `count` messages to `to` at `rate` a second, timing each to its ack and to delivered.
async fn send(
    ws: crate::client::Ws,
    to: &str,
    rate: f64,
    count: usize,
    sent: Arc<Mutex<Latencies>>,
    delivered: Arc<Mutex<Latencies>>,
) -> anyhow::Result<()> {
    let (mut tx, mut rx) = ws.split();
    let at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let reading = {
        let at = at.clone();
        tokio::spawn(async move {
            let mut outstanding = count;
            let mut acked = count;
            while outstanding > 0 || acked > 0 {
                let text = next_text(&mut rx).await?;
                let frame: Value = serde_json::from_str(&text)?;
                let id = frame["id"].as_str().unwrap_or_default().to_owned();
                let Some(start) =
                    at.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.get(&id).copied()
                else {
                    continue;
                };
                match (frame["type"].as_str(), frame["status"].as_str()) {
                    (Some("ack"), _) => {
                        sent.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(start.elapsed());
                        acked -= 1;
                    }
                    (Some("reject"), _) => bail!("a dm was refused: {text}"),
                    (Some("dm_status"), Some("delivered")) => {
                        delivered
                            .lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?
                            .push(start.elapsed());
                        outstanding -= 1;
                    }
                    _ => {}
                }
            }
            anyhow::Ok(())
        })
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    for _ in 0..count {
        tick.tick().await;
        let id = uuid::Uuid::new_v4().to_string();
        at.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.insert(id.clone(), Instant::now());
        let frame = json!({"type": "dm", "id": id, "to": to, "text": "a benchmark message"});
        tx.send(Message::Text(frame.to_string().into())).await?;
    }
    tokio::time::timeout(Duration::from_secs(60), reading)
        .await
        .context("not every message was delivered within a minute")??
}
