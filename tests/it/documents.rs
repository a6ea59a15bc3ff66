//! The API documents against a real server: `/asyncapi.json` validates (with the AsyncAPI
//! parser from npm), real answers of every HTTP route and real frames of the room socket match
//! the schemas the documents give them (ajv), and a TypeScript client generated from
//! `/openapi.json` (openapi-typescript) type-checks and works: it creates a room and reads it.
//! The checks live in `tests/api/check.mjs`; this test provides the server and the socket frames.
//! (`gateway::the_http_api_and_its_openapi_document` validates the OpenAPI document itself.)

use std::process::Command;

use serde_json::{Value, json};

use crate::accounts::Api;
use crate::ws::{command, connect, next, send};
use tests::{Chanshare, NatsServer, RedisServer};

/// A conversation on the account socket: the frames two accounts sent, and those they received
/// (a dm, its statuses, acks, a reject, a pong).
async fn account_frames(gateway: &Chanshare) -> (Vec<Value>, Vec<Value>, String) {
    let api = Api::new(gateway);
    let (mut sent, mut received) = (Vec::new(), Vec::new());
    let mut sockets = Vec::new();
    let mut access = String::new();
    for name in ["docs_ann", "docs_ben"] {
        api.account(name).await;
        let session = api.session(name).await;
        if access.is_empty() {
            access = session.access.clone();
        }
        let url = format!("ws://{}/api/me/ws?access_token={}", gateway.addr(), session.access);
        sockets.push(tokio_tungstenite::connect_async(url).await.unwrap().0);
    }
    let [mut ann, mut ben] = <[_; 2]>::try_from(sockets).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let sync = json!({"type": "dm_sync", "id": "s", "since": {}});
    for frame in [
        sync.clone(),
        json!({"type": "ping", "t": 3.5}),
        json!({"type": "dm", "id": id, "to": "docs_ben", "text": "hi"}),
        json!({"type": "dm", "id": id, "to": "docs_ann", "text": "me"}),
    ] {
        send(&mut ann, frame.clone()).await;
        sent.push(frame);
    }
    send(&mut ben, sync.clone()).await;
    sent.push(sync);
    // Ben gets the dm (and acks his sync), reads it; Ann sees sent, delivered and read.
    let seq = loop {
        let frame = next(&mut ben).await.unwrap();
        let seq = frame["seq"].as_u64();
        received.push(frame);
        if let Some(seq) = seq {
            break seq;
        }
    };
    let read = json!({"type": "dm_read", "with": "docs_ann", "up_to": seq});
    send(&mut ben, read.clone()).await;
    sent.push(read);
    received.push(next(&mut ben).await.unwrap());
    let mut statuses = 0;
    while statuses < 3 {
        let frame = next(&mut ann).await.unwrap();
        statuses += usize::from(frame["type"] == "dm_status");
        received.push(frame);
    }
    (sent, received, access)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documents_describe_what_the_server_says() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[]);
    let (room, token) = tests::chanshare::create_url_room(&gateway.addr(), "documents test");

    // A socket session that meets every frame the server sends: welcome, snapshot, commits of
    // many kinds, ack, reject and pong.
    let mut frames: Vec<Value> = Vec::new();
    let mut host = connect(&gateway, &room, &format!("token={token}")).await;
    let mut guest = connect(&gateway, &room, "name=guest").await;
    for _ in 0..2 {
        frames.push(next(&mut guest).await.unwrap());
    }
    let commands = [
        json!({"type": "chat", "text": "hello"}),
        json!({"type": "play"}),
        json!({"type": "seek", "position_ms": 5000}),
        json!({"type": "set_rate", "rate": 1.25}),
        json!({"type": "pause"}),
        json!({"type": "add_items", "urls": ["https://example.com/c.mp4"]}),
        json!({"type": "next"}),
        json!({"type": "rename", "name": "the host"}),
        json!({"type": "delete_chat", "message_id": "c1"}),
        json!({"type": "set_loop", "loop": true}),
    ];
    let mut sent: Vec<Value> = commands.into_iter().map(command).collect();
    sent.push(json!({"type": "ping", "t": 1.5}));
    // Frames the server rejects, which the request schema must refuse too.
    let refused = [
        command(json!({"type": "seek", "position_ms": "soon"})),
        json!({"type": "dance", "id": "x"}),
    ];
    for frame in sent.iter().chain(&refused) {
        send(&mut host, frame.clone()).await;
    }
    let (mut replies, mut last) = (0, 0);
    while replies < sent.len() + refused.len() {
        let frame = next(&mut host).await.unwrap();
        replies += usize::from(matches!(frame["type"].as_str(), Some("ack" | "reject" | "pong")));
        last = last.max(frame["version"].as_u64().unwrap_or(0));
        frames.push(frame);
    }
    // The guest sees every commit, up to the last the host was acknowledged.
    loop {
        let frame = next(&mut guest).await.unwrap();
        let version = frame["version"].as_u64().unwrap_or(0);
        frames.push(frame);
        if version >= last {
            break;
        }
    }
    let kinds: std::collections::BTreeSet<&str> =
        frames.iter().filter_map(|frame| frame["type"].as_str()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["ack", "commit", "pong", "reject", "snapshot", "welcome"]
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    let (account_sent, account_received, access) = account_frames(&gateway).await;
    let checked = json!({
        "received": frames, "sent": sent, "refused": refused,
        "account_sent": account_sent, "account_received": account_received,
    });
    std::fs::write(file.path(), checked.to_string()).unwrap();

    let api = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("api");
    let base = format!("http://{}", gateway.addr());
    let frames_path = file.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("check.mjs")
            .current_dir(&api)
            .env("BASE_URL", base)
            .env("ROOM", room)
            .env("FRAMES", frames_path)
            .env("DM_TOKEN", access)
            .output()
            .expect("run node (./dev/test installs the API check tools)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "API checks failed:\n{stdout}\n{stderr}\n{}", gateway.log());
    assert!(stdout.contains("client: created"), "{stdout}");
}
