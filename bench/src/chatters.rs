//! `bench chatters`: members who join a room and chat in it, for the busy-room browser test.
//!
//! A page's cost in a busy room is measured in a real browser, but the busy room's other members
//! need not be browsers: 200 sockets in one page cost that browser more than the page measured.
//! These members read and drop every frame and send `rate` chat lines a second between them.
//! Prints `joined N` once every member has its welcome, and `sent N` when done.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::client;

/// What `run` does.
#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) server: SocketAddr,
    pub(crate) room: String,
    pub(crate) members: usize,
    pub(crate) rate: f64,
    pub(crate) seconds: u64,
}

pub(crate) async fn run(load: Load) -> anyhow::Result<()> {
    let (ready_tx, mut ready_rx) = mpsc::channel::<anyhow::Result<()>>(load.members.max(1));
    let mut senders = Vec::with_capacity(load.members);
    for n in 0..load.members {
        let path = format!("/api/rooms/{}/ws?name=chatter{n}", load.room);
        let (tx, rx) = mpsc::channel::<String>(64);
        senders.push(tx);
        tokio::spawn(member(load.server, n, path, ready_tx.clone(), rx));
    }
    drop(ready_tx);
    for _ in 0..load.members {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(error))) => return Err(error.context("a member could not join")),
            Ok(None) | Err(_) => bail!("the members did not all join within 60 s"),
        }
    }
    println!("joined {}", load.members);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / load.rate.max(0.1)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(load.seconds);
    let mut sent = 0usize;
    while tokio::time::Instant::now() < deadline {
        ticks.tick().await;
        // Spread over the members (a stride coprime with any count under 7919).
        let who = sent.wrapping_mul(7919) % senders.len().max(1);
        senders[who].send(format!("line {sent} from chatter{who}")).await.context("member gone")?;
        sent += 1;
    }
    println!("sent {sent}");
    Ok(())
}

/// One member: joins, says so, then sends the lines it is handed and drops what it reads.
async fn member(
    server: SocketAddr,
    n: usize,
    path: String,
    ready: mpsc::Sender<anyhow::Result<()>>,
    mut lines: mpsc::Receiver<String>,
) {
    let joined = async {
        let mut ws = client::connect(server, client::source(n), &path).await?;
        client::welcome(&mut ws).await?;
        anyhow::Ok(ws)
    };
    let ws = match joined.await {
        Ok(ws) => ws,
        Err(error) => {
            ready.send(Err(error)).await.ok();
            return;
        }
    };
    ready.send(Ok(())).await.ok();
    let (mut write, mut read) = ws.split();
    tokio::spawn(async move { while read.next().await.is_some() {} });
    while let Some(text) = lines.recv().await {
        let command = serde_json::json!({"type": "chat", "text": text});
        let id = uuid::Uuid::new_v4();
        let frame = format!(r#"{{"type":"command","id":"{id}","command":{command}}}"#);
        if write.send(Message::Text(frame.into())).await.is_err() {
            return;
        }
    }
}
