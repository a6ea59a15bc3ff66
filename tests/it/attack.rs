//! The attack suite (issue 18): generated hostile input against a running `chanshare serve`
//! over real sockets. HTTP requests (methods, paths, headers, bodies up to and past the limits,
//! broken JSON, deep nesting, raw garbage bytes) and WebSocket frames (every command with
//! generated field values, wrong types, unknown fields, binary frames, oversize frames, bursts).
//!
//! What must hold: no 5xx but the documented ones (503 `unavailable`; 502 `upstream` on
//! `/media`), no panic in the server's log, the process stays up, and a rejected command stores
//! nothing (the room's head is where it was). The case counts go to
//! `target/attack-report.txt`, which `./dev/test` prints.

use std::fmt::Write as _;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use tests::{Chanshare, NatsServer, RedisServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

use crate::ws::Ws;

const HTTP_CASES: usize = 1500;
const RAW_CASES: usize = 150;
const WS_CASES: usize = 1500;

/// Draws `n` values of `strategy` from a deterministic runner (no shrinking: every failing
/// case is printed whole).
fn draw<S: Strategy>(runner: &mut TestRunner, strategy: &S) -> S::Value {
    strategy.new_tree(runner).expect("a value").current()
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex(&format!("[a-z0-9-]{{0,{max}}}")).unwrap(),
        proptest::string::string_regex(&format!(".{{0,{max}}}")).unwrap(),
        Just("..".to_owned()),
        Just("%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_owned()),
        Just("\u{202e}evil\u{200b}".to_owned()),
        Just("a".repeat(5000)),
    ]
}

/// A URL-safe rendering of any text (the path or query part of a request).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("1e99".to_owned()),
        Just("-0".to_owned()),
        Just("NaN".to_owned()),
        Just(String::new()),
        text(20),
    ]
}

fn path(room: String) -> impl Strategy<Value = String> {
    let id = prop_oneof![Just(room), text(60)];
    prop_oneof![
        Just("/api/rooms".to_owned()),
        (number(), text(200)).prop_map(|(limit, q)| format!(
            "/api/rooms?limit={}&cursor={}&q={}",
            encode(&limit),
            encode(&q),
            encode(&q)
        )),
        id.clone().prop_map(|id| format!("/api/rooms/{}", encode(&id))),
        id.clone().prop_map(|id| format!("/api/rooms/{}/members", encode(&id))),
        (id.clone(), number(), number(), text(300)).prop_map(|(id, after, limit, token)| format!(
            "/api/rooms/{}/events?after={}&limit={}&token={}",
            encode(&id),
            encode(&after),
            encode(&limit),
            encode(&token)
        )),
        (id.clone(), text(40), text(300), number()).prop_map(|(id, name, token, resume)| {
            format!(
                "/api/rooms/{}/ws?name={}&token={}&resume={}",
                encode(&id),
                encode(&name),
                encode(&token),
                encode(&resume)
            )
        }),
        (text(12), text(40)).prop_map(|(board, file)| format!(
            "/media/{}/{}",
            encode(&board),
            encode(&file)
        )),
        id.prop_map(|id| format!("/r/{}", encode(&id))),
        Just("/openapi.json".to_owned()),
        Just("/".to_owned()),
        text(300).prop_map(|p| format!("/{}", encode(&p))),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let create = (text(200), any::<bool>(), text(40), prop::collection::vec(text(300), 0..4))
        .prop_map(|(title, listed, name, urls)| {
            json!({"title": title, "listed": listed, "name": name, "source": {"urls": urls}})
                .to_string()
                .into_bytes()
        });
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..2000),
        create,
        (1usize..200_000).prop_map(|depth| "[".repeat(depth).into_bytes()),
        Just(br#"{"source": {"chan": {"board": "wsg", "thread": -1}}}"#.to_vec()),
        Just(br#"{"source": {"urls": "not a list"}, "control": 7}"#.to_vec()),
        Just(
            br#"{"title": "x", "source": {"urls": ["https://e.com/a.webm"]}, "extra": true"#
                .to_vec()
        ),
        Just(vec![b'{'; 70_000]),
    ]
}

#[derive(Debug, Clone)]
struct Request {
    method: &'static str,
    path: String,
    content_type: Option<String>,
    range: Option<String>,
    forwarded: Option<String>,
    body: Vec<u8>,
}

fn request(room: String) -> impl Strategy<Value = Request> {
    let method = prop_oneof![
        4 => Just("GET"),
        3 => Just("POST"),
        1 => prop::sample::select(vec!["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    ];
    let content_type = prop::option::of(prop_oneof![
        Just("application/json".to_owned()),
        Just("application/json; charset=utf-8".to_owned()),
        Just("text/plain".to_owned()),
        Just("multipart/form-data; boundary=x".to_owned()),
        proptest::string::string_regex("[ -~]{0,80}").unwrap(),
    ]);
    let range = prop::option::of(prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| format!("bytes={a}-{b}")),
        any::<i64>().prop_map(|a| format!("bytes={a}-")),
        any::<u32>().prop_map(|a| format!("bytes=-{a}")),
        Just("bytes=0-1,2-3,4-5".to_owned()),
        proptest::string::string_regex("[ -~]{0,60}").unwrap(),
    ]);
    let forwarded = prop::option::of(proptest::string::string_regex("[ -~]{0,80}").unwrap());
    (method, path(room), content_type, range, forwarded, body()).prop_map(
        |(method, path, content_type, range, forwarded, body)| Request {
            method,
            path,
            content_type,
            range,
            forwarded,
            body,
        },
    )
}

/// Frames a member may send: every command with generated fields, wrong types, unknown fields,
/// pings, garbage.
fn frame() -> impl Strategy<Value = Message> {
    let names = prop::sample::select(vec![
        "play",
        "pause",
        "seek",
        "next",
        "previous",
        "jump",
        "add_items",
        "remove_item",
        "move_item",
        "chat",
        "delete_chat",
        "rename",
        "set_control",
        "set_listed",
        "kick",
        "transfer_host",
        "set_image_seconds",
        "set_shuffle",
        "set_loop",
        "join",
        "leave",
        "refresh_thread",
        "create_room",
        "unknown_command",
    ]);
    let value = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text(600).prop_map(Value::from),
        prop::collection::vec(text(300).prop_map(Value::from), 0..5).prop_map(Value::from),
        Just(json!({"nested": {"deeper": [1, 2, 3]}})),
        Just(json!(["i1", "c1", "m0000000000"])),
    ];
    let fields = prop::sample::select(vec![
        "position_ms",
        "item_id",
        "to",
        "urls",
        "text",
        "message_id",
        "name",
        "control",
        "listed",
        "member_id",
        "seconds",
        "shuffle",
        "loop",
        "expected_item_id",
        "items",
        "surprise",
    ]);
    let command =
        (names, prop::collection::vec((fields, value.clone()), 0..3)).prop_map(|(name, fields)| {
            let mut object = serde_json::Map::new();
            object.insert("type".into(), name.into());
            for (field, value) in fields {
                object.insert(field.into(), value);
            }
            Value::Object(object)
        });
    let id = prop_oneof![Just(()).prop_map(|()| uuid::Uuid::new_v4().to_string()), text(60)];
    // Well-formed commands with edge values: most are accepted or refused by a domain rule.
    let item = (0u32..8).prop_map(|n| format!("i{n}"));
    let url = prop_oneof![
        Just("https://example.com/clip.webm".to_owned()),
        text(300).prop_map(|t| format!("https://example.com/{}.webm", encode(&t))),
        text(100),
    ];
    let well_formed = prop_oneof![
        Just(json!({"type": "play"})),
        Just(json!({"type": "pause"})),
        any::<u64>().prop_map(|p| json!({"type": "seek", "position_ms": p % 100_000_000})),
        prop::option::of(item.clone()).prop_map(|i| json!({"type": "next", "expected_item_id": i})),
        item.clone().prop_map(|i| json!({"type": "jump", "item_id": i})),
        (item.clone(), any::<u32>())
            .prop_map(|(i, to)| json!({"type": "move_item", "item_id": i, "to": to % 10})),
        item.prop_map(|i| json!({"type": "remove_item", "item_id": i})),
        prop::collection::vec(url, 0..4)
            .prop_map(|urls| json!({"type": "add_items", "urls": urls})),
        text(600).prop_map(|t| json!({"type": "chat", "text": t})),
        (0u32..20).prop_map(|n| json!({"type": "delete_chat", "message_id": format!("c{n}")})),
        text(40).prop_map(|n| json!({"type": "rename", "name": n})),
        any::<u32>().prop_map(|s| json!({"type": "set_image_seconds", "seconds": s % 1000})),
        any::<bool>().prop_map(|s| json!({"type": "set_shuffle", "shuffle": s})),
        any::<bool>().prop_map(|s| json!({"type": "set_loop", "loop": s})),
        prop::sample::select(vec!["host", "everyone", "nobody"])
            .prop_map(|c| json!({"type": "set_control", "control": c})),
    ];
    prop_oneof![
        6 => well_formed.prop_map(|command| Message::Text(
            json!({"type": "command", "id": uuid::Uuid::new_v4().to_string(), "command": command}).to_string().into()
        )),
        4 => (id, command).prop_map(|(id, command)| Message::Text(
            json!({"type": "command", "id": id, "command": command}).to_string().into()
        )),
        1 => value.prop_map(|v| Message::Text(json!({"type": "command", "id": uuid::Uuid::new_v4().to_string(), "command": v}).to_string().into())),
        1 => any::<i64>().prop_map(|t| Message::Text(json!({"type": "ping", "t": t}).to_string().into())),
        1 => text(400).prop_map(|t| Message::Text(t.into())),
        1 => prop::collection::vec(any::<u8>(), 0..600).prop_map(|b| Message::Binary(b.into())),
        1 => (1usize..40).prop_map(|d| Message::Text(format!("{}{}", "{\"a\":".repeat(d * 100), "1").into())),
    ]
}

fn allowed(request_path: &str, status: u16) -> bool {
    status < 500 || status == 503 || (status == 502 && request_path.starts_with("/media"))
}

async fn head(log: &eventlog::EventLog, room: &events::RoomId) -> u64 {
    log.head(room).await.unwrap().map_or(0, |h| h.version)
}

async fn open(addr: &str, room: &str, token: &str) -> Ws {
    let url = format!("ws://{addr}/api/rooms/{room}/ws?token={token}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Welcome and snapshot.
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap();
    }
    ws
}

/// What the server answered a frame: `Some(reply)` (ack, reject or pong), `None` when it sent
/// nothing within a second, or `Err(code)` when it closed the socket.
async fn answer(ws: &mut Ws) -> Result<Option<Value>, Option<u16>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Ok(None),
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if ["ack", "reject", "pong"].contains(&frame["type"].as_str().unwrap_or_default()) {
                    return Ok(Some(frame));
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => return Err(frame.map(|f| u16::from(f.code))),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return Err(None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http_and_websocket_input_changes_nothing_and_breaks_nothing() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let server = Chanshare::serve(
        &nats,
        &redis,
        &[
            ("CHANSHARE_PRESENCE_TIMEOUT_SECS", "3600".to_owned()),
            ("CHANSHARE_CREATIONS_PER_MINUTE", "1000000".to_owned()),
            ("CHANSHARE_COMMANDS_PER_SECOND", "100000".to_owned()),
            ("CHANSHARE_HTTP_HEADER_TIMEOUT_SECS", "1".to_owned()),
        ],
    );
    let addr = server.addr();
    let created = tests::chanshare::create_room(
        &addr,
        &json!({"title": "target", "source": {"urls": ["https://example.com/a.webm", "https://example.com/b.webm"]}}),
    );
    let room = created["room_id"].as_str().unwrap().to_owned();
    let token = created["host_token"].as_str().unwrap().to_owned();
    let room_id = events::RoomId::new(&room).unwrap();
    let log = eventlog::EventLog::open(nats.client().await).await.unwrap();
    let mut runner = TestRunner::deterministic();
    let mut report = String::new();

    // HTTP: generated requests. None of them is a command, so the room stays at its head.
    let before = head(&log, &room_id).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let strategy = request(room.clone());
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..HTTP_CASES {
        let case = draw(&mut runner, &strategy);
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut builder = client.request(method, format!("http://{addr}{}", case.path));
        if let Some(value) = &case.content_type {
            builder = builder.header("content-type", value.as_str());
        }
        if let Some(value) = &case.range {
            builder = builder.header("range", value.as_str());
        }
        if let Some(value) = &case.forwarded {
            builder = builder.header("x-forwarded-for", value.as_str());
        }
        let response = match builder.body(case.body.clone()).send().await {
            Ok(response) => response,
            // The server may answer (a 405, a 413) and close before it has read the whole body;
            // the client, still writing, sees the connection go. Fine while the server is up.
            Err(error) => {
                let (health, _) = tests::http::get(&addr, "/healthz");
                assert_eq!(health, 200, "no answer to {case:?} ({error}), and the server is down");
                *statuses.entry(0).or_default() += 1;
                continue;
            }
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert!(allowed(&case.path, status), "{status} for {case:?}: {text}");
        *statuses.entry(status).or_default() += 1;
    }
    assert_eq!(head(&log, &room_id).await, before, "an HTTP request changed the room");
    writeln!(
        report,
        "http: {HTTP_CASES} generated requests, statuses {statuses:?} (0: closed while the body was sent)"
    )
    .unwrap();

    // Raw bytes on the HTTP port: garbage request lines and headers.
    let garbage = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..3000),
        proptest::string::string_regex("[A-Z]{1,10} /[ -~]{0,200} HTTP/1\\.[0-9]\r\n([ -~]{0,100}\r\n){0,5}\r\n")
            .unwrap()
            .prop_map(String::into_bytes),
        Just(b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n".to_vec()),
        Just(b"POST /api/rooms HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nZZZ\r\n".to_vec()),
        Just(format!("GET / HTTP/1.1\r\n{}\r\n\r\n", "X-Big: a\r\n".repeat(2000)).into_bytes()),
    ];
    for _ in 0..RAW_CASES {
        let bytes = draw(&mut runner, &garbage);
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(&bytes).await.ok();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut answer)).await.ok();
        let line = String::from_utf8_lossy(&answer);
        let status: u16 = line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(
            status < 500 || status == 503,
            "{status} for {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
    writeln!(report, "raw: {RAW_CASES} garbage byte streams").unwrap();

    // WebSocket: generated frames from the host (who may do everything a member may, and more).
    let strategy = frame();
    let mut ws = open(&addr, &room, &token).await;
    let (mut acks, mut rejects, mut pongs, mut closes, mut silent) = (0, 0, 0, 0, 0);
    for _ in 0..WS_CASES {
        let frame = draw(&mut runner, &strategy);
        let before = head(&log, &room_id).await;
        if ws.send(frame.clone()).await.is_err() {
            ws = open(&addr, &room, &token).await;
            continue;
        }
        match answer(&mut ws).await {
            Ok(Some(reply)) if reply["type"] == "ack" => acks += 1,
            Ok(Some(reply)) if reply["type"] == "pong" => pongs += 1,
            Ok(Some(reply)) => {
                rejects += 1;
                assert_eq!(reply["type"], "reject");
                assert_eq!(
                    head(&log, &room_id).await,
                    before,
                    "{reply} stored something: {frame:?}"
                );
            }
            Ok(None) => silent += 1,
            Err(code) => {
                closes += 1;
                // Only an oversize or malformed frame (1009), or a command that closed the
                // room or took the host away, ends the socket.
                let state = log.fold_while(&room_id, |_, _| true).await.unwrap();
                if state.closed.is_some() {
                    break;
                }
                assert!(
                    matches!(code, Some(1009) | Some(4403) | None),
                    "closed {code:?} after {frame:?}"
                );
                ws = open(&addr, &room, &token).await;
            }
        }
    }
    writeln!(
        report,
        "ws: {WS_CASES} generated frames: {acks} acked, {rejects} rejected (nothing stored), \
         {pongs} pongs, {closes} closed the socket, {silent} unanswered"
    )
    .unwrap();

    // Still up, still serving, no panic anywhere.
    assert_eq!(tests::http::get(&addr, "/healthz").0, 200);
    let logged = server.log();
    assert!(!logged.contains("panicked"), "a panic in the server log:\n{logged}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/attack-report.txt");
    std::fs::write(&path, &report).unwrap();
}
