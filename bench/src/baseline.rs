//! The baseline `fanout` and `connections` measure the gateway against: the least a broadcast server can do with
//! the same input. It subscribes to `chanshare.live.<room>` once per room, serializes each commit
//! once into the same `commit` frame the gateway sends, and writes it to every socket of the
//! room. Its welcome says `recovered` (there is no snapshot to wait for). No tokens, no joins, no ordering checks, no gap filling, no rate limits, no metrics.
//! It runs as its own process (`bench broadcast`), like the gateway, with the same socket buffer
//! sizes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use eventlog::{EventLog, subjects};
use events::RoomId;
use futures::StreamExt as _;
use gateway::frames::{CommitFrame, text};
use tokio::sync::broadcast;

#[derive(Clone)]
struct Rooms {
    client: async_nats::Client,
    rooms: Arc<Mutex<HashMap<RoomId, broadcast::Sender<Utf8Bytes>>>>,
}

/// Serves `/api/rooms/{room}/ws` on `listen` until killed.
pub(crate) async fn run(nats: &str, listen: SocketAddr) -> anyhow::Result<()> {
    let client = async_nats::connect(nats).await?;
    let rooms = Rooms { client, rooms: Arc::default() };
    let app = Router::new().route("/api/rooms/{room}/ws", get(upgrade)).with_state(rooms);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn upgrade(
    State(rooms): State<Rooms>,
    Path(room): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let upgrade = upgrade.read_buffer_size(4096).write_buffer_size(0);
    upgrade.on_upgrade(move |socket| async move {
        if let Ok(room) = RoomId::new(room)
            && let Some(feed) = rooms.feed(&room).await
        {
            serve(socket, feed).await;
        }
    })
}

impl Rooms {
    /// The room's feed, subscribing on first use; none when NATS refuses the subscription.
    async fn feed(&self, room: &RoomId) -> Option<broadcast::Receiver<Utf8Bytes>> {
        if let Some(tx) = self.rooms.lock().unwrap_or_else(|p| p.into_inner()).get(room) {
            return Some(tx.subscribe());
        }
        let (tx, _) = broadcast::channel(512);
        let mut live = self.client.subscribe(subjects::live(room)).await.ok()?;
        let pump = tx.clone();
        tokio::spawn(async move {
            while let Some(message) = live.next().await {
                if let Ok(stored) = EventLog::decode_live(&message) {
                    pump.send(text(&CommitFrame::new(&stored.commit)).into()).ok();
                }
            }
        });
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        Some(rooms.entry(room.clone()).or_insert(tx).subscribe())
    }
}

async fn serve(mut socket: WebSocket, mut feed: broadcast::Receiver<Utf8Bytes>) {
    if socket.send(Message::Text(r#"{"type":"welcome","recovered":true}"#.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = feed.recv() => match frame {
                Ok(frame) => if socket.send(Message::Text(frame)).await.is_err() { return },
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The baseline server as a child process of this one (`bench broadcast`).
pub(crate) struct Broadcast {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Broadcast {
    pub(crate) fn start(nats: &str) -> anyhow::Result<Broadcast> {
        let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Process::new(std::env::current_exe()?)
            .args(["broadcast", "--nats", nats, "--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .context("start the baseline broadcast server")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the baseline server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Broadcast { child, addr })
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broadcast {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
