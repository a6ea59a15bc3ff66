//! Retention: the room stream expires commits by age (`CHANSHARE_STREAM_MAX_AGE_SECS`) and rooms
//! stay whole, from their snapshots (decision 0005).

use std::time::Duration;

use eventlog::EventLog;
use events::RoomId;
use serde_json::{Value, json};
use tests::chanshare::replay;
use tests::{Chanshare, NatsServer, RedisServer, eventually};

use crate::ws::{await_answers, command, connect, send, welcome};

/// Seconds a commit stays in the stream in this test.
const MAX_AGE: u64 = 4;

fn serve(nats: &NatsServer, redis: &RedisServer) -> Chanshare {
    Chanshare::start("serve", &env(nats, redis))
}

fn env(nats: &NatsServer, redis: &RedisServer) -> Vec<(&'static str, String)> {
    let mut env = tests::chanshare::env(nats, redis, tests::chanshare::SECRET);
    env.extend([
        ("CHANSHARE_STREAM_MAX_AGE_SECS", MAX_AGE.to_string()),
        ("CHANSHARE_SNAPSHOT_INTERVAL_SECS", "1".to_owned()),
    ]);
    env
}

async fn get(gateway: &Chanshare, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("http://{}{path}", gateway.addr())).await.unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null))
}

#[tokio::test]
async fn rooms_outlive_their_expired_commits() {
    let (nats, mut redis) = (NatsServer::start(), RedisServer::start());
    let mut first = serve(&nats, &redis);
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/rooms", first.addr()))
        .header("content-type", "application/json")
        .body(
            json!({"title": "retention", "source": {"urls": ["https://example.com/a.webm"]}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let room = created["room_id"].as_str().unwrap().to_owned();
    let host_token = created["host_token"].as_str().unwrap().to_owned();
    let mut host = connect(&first, &room, &format!("token={host_token}")).await;
    let mut seen = welcome(&mut host).await;
    for k in 0..3 {
        send(&mut host, command(json!({"type": "chat", "text": format!("kept {k}")}))).await;
    }
    await_answers(&mut host, &mut seen, 3).await;
    drop(host);
    // Stopping the only commands role takes a last snapshot of everything it wrote.
    let status = first.terminate(Duration::from_secs(15)).expect("exits after sigterm");
    assert!(status.success(), "{}", first.log());

    let log = EventLog::open(nats.client().await).await.unwrap();
    let id = RoomId::new(&room).unwrap();
    let head = log.head(&id).await.unwrap().expect("commits before expiry");
    let snapshot = log.snapshot(&id).await.unwrap().expect("a snapshot");
    assert_eq!(snapshot.state.version, head.version, "the snapshot holds every commit");
    eventually(Duration::from_secs(MAX_AGE * 5), "every commit of the room expires", || async {
        log.head(&id).await.unwrap().is_none()
    })
    .await;
    let version = snapshot.state.version;

    // A new process with empty views and caches: the views are rebuilt from the snapshot.
    redis.restart();
    let second = serve(&nats, &redis);
    eventually(Duration::from_secs(20), "the view is rebuilt from the snapshot", || async {
        get(&second, &format!("/api/rooms/{room}")).await.1["version"] == version
    })
    .await;
    let (_, view) = get(&second, &format!("/api/rooms/{room}")).await;
    let chat: Vec<&str> =
        view["chat"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(chat, ["kept 0", "kept 1", "kept 2"], "{view}");
    let env = env(&nats, &redis);
    let state = replay(&env, &["state", &room]);
    assert!(state.status.success(), "{}", String::from_utf8_lossy(&state.stderr));
    let folded: Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(folded, view, "replay state folds from the snapshot too");

    // The host comes back: the commands role loads the room from its snapshot and appends to a
    // subject with no commits left.
    let mut host = connect(&second, &room, &format!("token={host_token}")).await;
    let mut seen = welcome(&mut host).await;
    assert_eq!(seen.welcome["member_id"], created["member_id"], "still the host");
    send(&mut host, command(json!({"type": "chat", "text": "after expiry"}))).await;
    await_answers(&mut host, &mut seen, 1).await;
    let ack = seen.acks.last().unwrap();
    assert_eq!(ack["type"], "ack", "{ack}");
    // The chat, perhaps after a join commit (none when the state still has the host online).
    let last = ack["version"].as_u64().unwrap();
    assert!((version + 1..=version + 2).contains(&last), "{ack}");

    // History before the snapshot is gone from the log (the archive has it), after it is not.
    let (status, body) = get(&second, &format!("/api/rooms/{room}/events?after=0")).await;
    assert_eq!((status, &body["error"]["code"]), (410, &json!("expired")), "{body}");
    let (status, body) = get(&second, &format!("/api/rooms/{room}/events?after={version}")).await;
    assert_eq!(status, 200, "{body}");
    let versions: Vec<u64> = body["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, (version + 1..=last).collect::<Vec<_>>());

    // The rebuilt views agree with the log.
    eventually(Duration::from_secs(10), "the projectors apply the new commits", || async {
        get(&second, &format!("/api/rooms/{room}")).await.1["version"] == last
    })
    .await;
    let verify = replay(&env, &["verify"]);
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    // An archive started only now exports what is left and reports the hole before it.
    let archive = tempfile::tempdir().unwrap();
    let to = archive.path().to_str().unwrap();
    let export = replay(&env, &["export", "--to", to, "--format", "ndjson", "--json"]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let report: Value = serde_json::from_slice(&export.stdout).unwrap();
    assert_eq!(report["commits"], last - version, "{report}");
    assert_eq!(report["expired"][0], 1, "{report}");
    assert_eq!(report["expired"][1], report["last_seq"].as_u64().unwrap() - (last - version));
}

/// Regression: a room cached by the commands role while all its commits expired. Appends expected
/// the sequence of the last commit the replica had seen, which no longer existed: every command
/// conflicted until it gave up, and a no-op spun on the head check.
#[tokio::test]
async fn a_cached_room_goes_on_after_its_commits_expire() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = serve(&nats, &redis);
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/rooms", gateway.addr()))
        .header("content-type", "application/json")
        .body(json!({"source": {"urls": ["https://example.com/a.webm"]}}).to_string())
        .send()
        .await
        .unwrap();
    let created: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let room = created["room_id"].as_str().unwrap().to_owned();
    let token = created["host_token"].as_str().unwrap();
    let mut host = connect(&gateway, &room, &format!("token={token}")).await;
    let mut seen = welcome(&mut host).await;
    send(&mut host, command(json!({"type": "chat", "text": "before"}))).await;
    await_answers(&mut host, &mut seen, 1).await;

    let log = EventLog::open(nats.client().await).await.unwrap();
    let id = RoomId::new(&room).unwrap();
    eventually(Duration::from_secs(MAX_AGE * 5), "every commit of the room expires", || async {
        log.head(&id).await.unwrap().is_none()
    })
    .await;
    // A no-op (the room is paused already), then a command that stores a commit.
    send(&mut host, command(json!({"type": "pause"}))).await;
    send(&mut host, command(json!({"type": "chat", "text": "after"}))).await;
    await_answers(&mut host, &mut seen, 2).await;
    let answers = &seen.acks[seen.acks.len() - 2..];
    assert!(answers.iter().all(|a| a["type"] == "ack"), "{answers:?}");
    let head = log.head(&id).await.unwrap().expect("the chat is stored");
    assert_eq!(answers[1]["version"], head.version);
}

/// The largest room the limits allow (a playlist at its byte budget of 2 KB URLs, a chat tail
/// of the longest messages in four-byte characters) snapshots in one message and is whole again
/// after every commit expired: before the playlist had a byte budget, 1000 such URLs made a
/// state of several MiB, which no snapshot could hold.
#[tokio::test]
async fn the_largest_room_the_limits_allow_outlives_its_expired_commits() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let mut first = serve(&nats, &redis);
    let created = tests::chanshare::create_room(
        &first.addr(),
        &json!({"title": "big", "source": {"urls": ["https://example.com/a.webm"]}}),
    );
    let room = RoomId::new(created["room_id"].as_str().unwrap()).unwrap();
    let host = events::Actor::Member(
        events::MemberId::new(created["member_id"].as_str().unwrap()).unwrap(),
    );
    let commands = protocol::Client::new(nats.client().await, Duration::from_secs(10));
    let issue = async |command: events::Command| {
        let request = protocol::CommandRequest {
            id: events::CommandId(uuid::Uuid::new_v4()),
            actor: host.clone(),
            command,
            traceparent: None,
        };
        commands.command(&room, &request).await.unwrap()
    };
    let mut n = 0;
    let refused = loop {
        let urls = (n..n + 10)
            .map(|i| format!("https://example.com/{}/{i}.webm", "a".repeat(1990)))
            .collect();
        n += 10;
        match issue(events::Command::AddItems { urls }).await {
            protocol::CommandReply::Accepted { .. } => {}
            refused => break refused,
        }
    };
    assert!(format!("{refused:?}").contains("the playlist is full"), "{refused:?}");
    for _ in 0..60 {
        let text: String = std::iter::repeat_n('𝄞', 500).collect();
        let reply = issue(events::Command::Chat { text }).await;
        assert!(matches!(reply, protocol::CommandReply::Accepted { .. }), "{reply:?}");
    }
    let status = first.terminate(Duration::from_secs(15)).expect("exits after sigterm");
    assert!(status.success(), "{}", first.log());

    let log = EventLog::open(nats.client().await).await.unwrap();
    let head = log.head(&room).await.unwrap().expect("commits before expiry");
    let snapshot = log.snapshot(&room).await.unwrap().expect("a snapshot of the largest state");
    assert_eq!(snapshot.state.version, head.version);
    eventually(Duration::from_secs(MAX_AGE * 5), "every commit of the room expires", || async {
        log.head(&room).await.unwrap().is_none()
    })
    .await;
    let second = serve(&nats, &redis);
    let (status, view) = get(&second, &format!("/api/rooms/{room}")).await;
    assert_eq!((status, &view["version"]), (200, &json!(head.version)));
    assert_eq!(view["playlist"].as_array().unwrap().len(), snapshot.state.playlist.len());
    let env = env(&nats, &redis);
    let state = replay(&env, &["state", room.as_str()]);
    assert!(state.status.success(), "{}", String::from_utf8_lossy(&state.stderr));
}
