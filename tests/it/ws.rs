//! A room WebSocket client for the tests: connect, read frames, send commands, and keep track of
//! what a client saw.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tests::Chanshare;
use tokio_tungstenite::tungstenite::Message;

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(gateway: &Chanshare, room: &str, query: &str) -> Ws {
    connect_to(&gateway.addr(), room, query).await
}

/// Opens a room socket on the gateway at `addr`.
pub(crate) async fn connect_to(addr: &str, room: &str, query: &str) -> Ws {
    let url = format!("ws://{addr}/api/rooms/{room}/ws?{query}");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next text frame as JSON (skipping pings), or the close frame's code.
pub(crate) async fn next(ws: &mut Ws) -> Result<Value, Option<u16>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Ok(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(Message::Close(frame)))) => return Err(frame.map(|f| u16::from(f.code))),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return Err(None),
            Err(_) => panic!("no frame within 10 s"),
        }
    }
}

/// The code the socket closes with, skipping the frames before it (panics after 10 s of nothing).
pub(crate) async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        if let Err(code) = next(ws).await {
            return code;
        }
    }
}

pub(crate) async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::Text(frame.to_string().into())).await.unwrap();
}

pub(crate) fn command(command: Value) -> Value {
    json!({"type": "command", "id": uuid::Uuid::new_v4().to_string(), "command": command})
}

/// A client's view of the room: the versions it saw, and the commit frames by version.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) welcome: Value,
    pub(crate) snapshot: Option<Value>,
    pub(crate) commits: BTreeMap<u64, Value>,
    pub(crate) order: Vec<u64>,
    pub(crate) acks: Vec<Value>,
    /// How many `commits` frames (several commits together, `batch=1`) brought them.
    pub(crate) batches: usize,
}

pub(crate) async fn welcome(ws: &mut Ws) -> Seen {
    let welcome = next(ws).await.unwrap();
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let mut seen = Seen { welcome, ..Seen::default() };
    if !seen.welcome["recovered"].as_bool().unwrap() {
        let snapshot = next(ws).await.unwrap();
        assert_eq!(snapshot["type"], "snapshot");
        seen.snapshot = Some(snapshot);
    }
    seen
}

/// Reads frames until the client has every version up to `version`.
pub(crate) async fn read_until(ws: &mut Ws, seen: &mut Seen, version: u64) {
    while seen.order.last().copied().unwrap_or_else(|| start(seen)) < version {
        let frame = next(ws).await.unwrap();
        match frame["type"].as_str() {
            Some("commit") => seen.commit(frame),
            Some("commits") => {
                seen.batches += 1;
                let Value::Array(commits) = frame["commits"].clone() else { panic!("{frame}") };
                assert!(commits.len() > 1, "a batch of one: {frame}");
                commits.into_iter().for_each(|commit| seen.commit(commit));
            }
            Some("ack" | "reject") => seen.acks.push(frame),
            Some("pong") => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

impl Seen {
    fn commit(&mut self, frame: Value) {
        assert_eq!(frame["type"], "commit", "{frame}");
        let v = frame["version"].as_u64().unwrap();
        assert!(self.commits.insert(v, frame).is_none(), "version {v} twice");
        self.order.push(v);
    }
}

/// Reads frames (recording commits) until `n` more of the client's commands are answered.
pub(crate) async fn await_answers(ws: &mut Ws, seen: &mut Seen, n: usize) {
    let wanted = seen.acks.len() + n;
    while seen.acks.len() < wanted {
        let frame = next(ws).await.unwrap();
        match frame["type"].as_str() {
            Some("commit") => {
                let v = frame["version"].as_u64().unwrap();
                seen.order.push(v);
                seen.commits.insert(v, frame);
            }
            Some("ack" | "reject") => seen.acks.push(frame),
            _ => {}
        }
    }
}

pub(crate) fn start(seen: &Seen) -> u64 {
    seen.snapshot.as_ref().map_or(0, |s| s["version"].as_u64().unwrap())
}
