//! The gateway end to end: real `chanshare serve` processes, real NATS and Redis, real
//! WebSocket clients.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use eventlog::EventLog;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tests::chanshare::SECRET;
use tests::{Chanshare, NatsServer, RedisServer};
use tokio_tungstenite::tungstenite::Message;

use crate::ws::{
    Seen, Ws, await_answers, command, connect, next, read_until, send, start, welcome,
};

async fn log_commits(nats: &NatsServer, room: &str) -> BTreeMap<u64, Value> {
    let (log, _) = EventLog::connect(nats.client().await, 1).await.unwrap();
    let room = events::RoomId::new(room).unwrap();
    let stored: Vec<_> = log.read(&room, 0).await.unwrap().map(|c| c.unwrap()).collect().await;
    stored
        .into_iter()
        .map(|mut s| {
            // Clients never see private events (address fingerprints).
            s.commit.events.retain(|e| !e.is_private());
            let mut value = serde_json::to_value(&s.commit).unwrap();
            value.as_object_mut().unwrap().remove("room");
            value["type"] = json!("commit");
            (s.commit.version, value)
        })
        .collect()
}

async fn head(nats: &NatsServer, room: &str) -> u64 {
    let (log, _) = EventLog::connect(nats.client().await, 1).await.unwrap();
    log.head(&events::RoomId::new(room).unwrap()).await.unwrap().map_or(0, |h| h.version)
}

/// Two gateways, 20 clients in one room, 500 commands: every client gets every commit once, in
/// order, identical to the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_on_two_gateways_see_every_commit_once_in_order() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateways = [Chanshare::serve(&nats, &redis, &[]), Chanshare::serve(&nats, &redis, &[])];
    let (room, _) = tests::chanshare::create_url_room(&gateways[0].addr(), "gateway test");
    let clients: Vec<_> = (0..20)
        .map(|n| {
            let addr = gateways[n % 2].addr();
            let room = room.clone();
            tokio::spawn(async move {
                let url = format!("ws://{addr}/api/rooms/{room}/ws?name=client{n}");
                let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
                let mut seen = welcome(&mut ws).await;
                for k in 0..25 {
                    let body = match k % 5 {
                        0 => json!({"type": "play"}),
                        1 => json!({"type": "seek", "position_ms": k * 1000}),
                        2 => json!({"type": "pause"}),
                        _ => json!({"type": "chat", "text": format!("{n}:{k}")}),
                    };
                    send(&mut ws, command(body)).await;
                    tokio::time::sleep(Duration::from_millis(120)).await;
                }
                (ws, seen.welcome.take(), seen)
            })
        })
        .collect();
    let mut results = Vec::new();
    for client in clients {
        results.push(client.await.unwrap());
    }
    // Every command got an answer and the room is quiet: read everyone up to the head.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let head = head(&nats, &room).await;
    // 20 joins and 10 chats per client are 220 commits at least (play/pause/seek add more).
    assert!(head >= 20 + 200, "head {head}");
    let log = log_commits(&nats, &room).await;
    for (mut ws, welcome, mut seen) in results {
        seen.welcome = welcome;
        read_until(&mut ws, &mut seen, head).await;
        let first = start(&seen) + 1;
        assert_eq!(seen.order, (first..=head).collect::<Vec<_>>(), "contiguous, in order, once");
        for (version, frame) in &seen.commits {
            assert_eq!(frame, &log[version], "commit {version} as in the log");
        }
        assert!(
            seen.acks.iter().all(|a| a["type"] == "ack" || a["code"] != "invalid"),
            "{:?}",
            seen.acks
        );
    }
}

/// A late joiner's snapshot is the fold of the log at its version; a resume replays exactly the
/// missed commits; a wrong epoch or a too-old version gets a snapshot.
#[tokio::test]
async fn snapshots_and_resume() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[("CHANSHARE_RESUME_CAP", "20".to_owned())]);
    let (room, host_token) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let mut host = connect(&gateway, &room, &format!("token={host_token}")).await;
    let mut host_seen = welcome(&mut host).await;
    for k in 0..3 {
        send(&mut host, command(json!({"type": "chat", "text": format!("before {k}")}))).await;
    }
    await_answers(&mut host, &mut host_seen, 3).await;
    let mut late = connect(&gateway, &room, "name=late").await;
    let late_seen = welcome(&mut late).await;
    let snapshot = late_seen.snapshot.clone().unwrap();
    let version = snapshot["version"].as_u64().unwrap();
    let (log, _) = EventLog::connect(nats.client().await, 1).await.unwrap();
    let room_id = events::RoomId::new(&room).unwrap();
    let stored: Vec<_> = log.read(&room_id, 0).await.unwrap().map(|c| c.unwrap()).collect().await;
    let fold = stored
        .iter()
        .take_while(|s| s.commit.version <= version)
        .fold(events::RoomState::default(), |s, c| s.apply(&c.commit));
    assert_eq!(
        snapshot["state"],
        serde_json::to_value(fold.view()).unwrap(),
        "snapshot = fold at its version"
    );

    // The late joiner leaves; five commits happen; it resumes and gets exactly those five.
    let token = late_seen.welcome["token"].as_str().unwrap().to_owned();
    let epoch = late_seen.welcome["epoch"].as_str().unwrap().to_owned();
    let mut late_state = Seen { snapshot: Some(snapshot), ..Seen::default() };
    read_until(&mut late, &mut late_state, head(&nats, &room).await).await;
    let at = late_state.order.last().copied().unwrap_or(version);
    drop(late);
    for k in 0..5 {
        send(&mut host, command(json!({"type": "chat", "text": format!("missed {k}")}))).await;
    }
    let target = at + 5;
    read_until(&mut host, &mut host_seen, target).await;
    let mut back =
        connect(&gateway, &room, &format!("token={token}&resume={at}&epoch={epoch}")).await;
    let back_seen = welcome(&mut back).await;
    assert_eq!(back_seen.welcome["recovered"], true);
    assert_eq!(back_seen.welcome["member_id"], late_seen.welcome["member_id"], "same member");
    let mut back_seen = Seen { snapshot: Some(json!({"version": at})), ..back_seen };
    read_until(&mut back, &mut back_seen, target).await;
    assert_eq!(back_seen.order, (at + 1..=target).collect::<Vec<_>>());
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(500), next(&mut back)).await {
        panic!("nothing more expected, got {extra:?} after {:?}", back_seen.order);
    }

    // Wrong epoch: a snapshot. Too far behind (cap 20): a snapshot (below).
    for query in [format!("token={token}&resume={at}&epoch=other")] {
        let mut ws = connect(&gateway, &room, &query).await;
        let seen = welcome(&mut ws).await;
        assert_eq!(seen.welcome["recovered"], false, "{query}");
        assert!(seen.snapshot.is_some());
    }
    for k in 0..25 {
        send(&mut host, command(json!({"type": "chat", "text": format!("more {k}")}))).await;
        tokio::time::sleep(Duration::from_millis(110)).await;
    }
    let now = head(&nats, &room).await;
    let mut far =
        connect(&gateway, &room, &format!("token={token}&resume={target}&epoch={epoch}")).await;
    assert!(now - target > 20);
    assert_eq!(welcome(&mut far).await.welcome["recovered"], false, "beyond the resume cap");
}

/// With Redis down, joins and resumes work from the log.
#[tokio::test]
async fn joins_and_resumes_work_without_redis() {
    let (nats, mut redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[]);
    let (room, host_token) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let mut host = connect(&gateway, &room, &format!("token={host_token}")).await;
    let mut host_seen = welcome(&mut host).await;
    redis.kill();
    send(&mut host, command(json!({"type": "chat", "text": "redis is gone"}))).await;
    await_answers(&mut host, &mut host_seen, 1).await;
    let mut joiner = connect(&gateway, &room, "name=nored").await;
    let seen = welcome(&mut joiner).await;
    let state = &seen.snapshot.as_ref().unwrap()["state"];
    assert_eq!(state["room_id"], room.as_str());
    read_until(&mut host, &mut host_seen, head(&nats, &room).await).await;
    let at = *host_seen.order.last().unwrap();
    let token = host_seen.welcome["token"].as_str().unwrap().to_owned();
    let epoch = host_seen.welcome["epoch"].as_str().unwrap().to_owned();
    drop(host);
    let mut back =
        connect(&gateway, &room, &format!("token={token}&resume={at}&epoch={epoch}")).await;
    assert_eq!(welcome(&mut back).await.welcome["recovered"], true);
}

/// Regression: commands sent back to back on one socket are decided in the order they were sent
/// (they used to be forwarded concurrently, so "two" could land before "one").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sockets_commands_land_in_the_order_sent() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[]);
    let (room, host_token) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let mut host = connect(&gateway, &room, &format!("token={host_token}")).await;
    let mut seen = welcome(&mut host).await;
    let texts: Vec<String> = (0..15).map(|k| format!("m{k}")).collect();
    for text in &texts {
        send(&mut host, command(json!({"type": "chat", "text": text}))).await;
    }
    await_answers(&mut host, &mut seen, texts.len()).await;
    let logged: Vec<String> = log_commits(&nats, &room)
        .await
        .values()
        .flat_map(|c| c["events"].as_array().unwrap().clone())
        .filter(|e| e["type"] == "chat_posted")
        .map(|e| e["message"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(logged, texts);
}

/// Killing a gateway: its clients resume on the other with no gap and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_gateway_resume_on_the_other() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let doomed = Chanshare::serve(&nats, &redis, &[]);
    let survivor = Chanshare::serve(&nats, &redis, &[]);
    let (room, host_token) = tests::chanshare::create_url_room(&survivor.addr(), "gateway test");
    let mut host = connect(&survivor, &room, &format!("token={host_token}")).await;
    let mut host_seen = welcome(&mut host).await;
    let mut client = connect(&doomed, &room, "name=mover").await;
    let mut seen = welcome(&mut client).await;
    for k in 0..5 {
        send(&mut host, command(json!({"type": "chat", "text": format!("a{k}")}))).await;
    }
    // The five chats follow the client's snapshot (the host's socket sends them asynchronously).
    let target = start(&seen) + 5;
    read_until(&mut client, &mut seen, target).await;
    drop(doomed); // SIGKILL
    for k in 0..5 {
        send(&mut host, command(json!({"type": "chat", "text": format!("b{k}")}))).await;
    }
    let at = seen.order.last().copied().unwrap();
    let token = seen.welcome["token"].as_str().unwrap();
    let epoch = seen.welcome["epoch"].as_str().unwrap();
    let mut moved =
        connect(&survivor, &room, &format!("token={token}&resume={at}&epoch={epoch}")).await;
    let mut moved_seen = welcome(&mut moved).await;
    assert_eq!(moved_seen.welcome["recovered"], true);
    moved_seen.snapshot = Some(json!({"version": at}));
    await_answers(&mut host, &mut host_seen, 10).await;
    let target = head(&nats, &room).await;
    read_until(&mut moved, &mut moved_seen, target).await;
    assert_eq!(moved_seen.order, (at + 1..=target).collect::<Vec<_>>(), "no gap, no duplicate");
}

/// Bad input gets the documented answer and the connection stays healthy.
#[tokio::test]
async fn bad_frames_floods_and_tokens() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[]);
    let (room, host_token) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let mut ws = connect(&gateway, &room, "name=tester").await;
    let seen = welcome(&mut ws).await;
    let expect_reject = async |ws: &mut Ws, frame: &str, code: &str| {
        ws.send(Message::Text(frame.into())).await.unwrap();
        loop {
            let reply = next(ws).await.unwrap();
            if reply["type"] == "reject" {
                assert_eq!(reply["code"], code, "{frame}: {reply}");
                return;
            }
        }
    };
    expect_reject(&mut ws, "not json", "invalid").await;
    expect_reject(&mut ws, r#"{"type":"dance"}"#, "invalid").await;
    expect_reject(&mut ws, r#"{"type":"command","id":"x","command":{"type":"play"}}"#, "invalid")
        .await;
    let id = uuid::Uuid::new_v4();
    expect_reject(
        &mut ws,
        &format!(r#"{{"type":"command","id":"{id}","command":{{"type":"fly"}}}}"#),
        "invalid",
    )
    .await;
    expect_reject(
        &mut ws,
        &format!(r#"{{"type":"command","id":"{id}","command":{{"type":"join","name":"x"}}}}"#),
        "invalid",
    )
    .await;
    expect_reject(
        &mut ws,
        &format!(
            r#"{{"type":"command","id":"{id}","command":{{"type":"kick","member_id":"{}"}}}}"#,
            seen.welcome["member_id"].as_str().unwrap()
        ),
        "forbidden",
    )
    .await;
    // Regression: the server reads in 1 KiB chunks; a valid frame of several chunks is whole.
    let long = "😀".repeat(480);
    send(&mut ws, command(json!({"type": "chat", "text": long}))).await;
    loop {
        let reply = next(&mut ws).await.unwrap();
        if reply["type"] == "commit" && reply["events"][0]["message"]["text"] == long {
            break;
        }
        assert_ne!(reply["type"], "reject", "{reply}");
    }

    // A flood: the burst passes, the rest is rate limited, the socket lives on.
    for k in 0..40 {
        send(&mut ws, command(json!({"type": "chat", "text": format!("flood {k}")}))).await;
    }
    let mut limited = 0;
    let mut answered = 0;
    while answered < 40 {
        let reply = next(&mut ws).await.unwrap();
        match reply["type"].as_str() {
            Some("ack") => answered += 1,
            Some("reject") => {
                answered += 1;
                if reply["code"] == "rate_limited" {
                    limited += 1;
                }
            }
            _ => {}
        }
    }
    assert!((15..=25).contains(&limited), "{limited} of 40 rate limited");
    send(&mut ws, json!({"type": "ping", "t": 12.5})).await;
    loop {
        let reply = next(&mut ws).await.unwrap();
        if reply["type"] == "pong" {
            assert_eq!(reply["t"], 12.5);
            assert!(reply["server_time_ms"].as_u64().unwrap() > 0);
            break;
        }
    }

    // An oversize frame closes the socket with 1009.
    ws.send(Message::Text("x".repeat(17 << 10).into())).await.ok();
    let code = loop {
        match next(&mut ws).await {
            Ok(_) => continue,
            Err(code) => break code,
        }
    };
    assert!(matches!(code, Some(1009) | None), "closed for the oversize frame: {code:?}");

    // Forged, foreign and missing-name connections are refused with their close codes.
    let forged = format!("{}x", &host_token[..host_token.len() - 1]);
    let (_, other_token) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let refused = [
        (format!("token={forged}"), 4401),
        (format!("token={other_token}"), 4401),
        ("token=garbage".to_owned(), 4401),
        ("name=".to_owned(), 4400),
        ("name=".to_owned() + &"n".repeat(40), 4400),
    ];
    for (query, code) in refused {
        let mut ws = connect(&gateway, &room, &query).await;
        assert_eq!(next(&mut ws).await.err().flatten(), Some(code), "{query}");
    }
    let mut missing = connect(&gateway, "no-such-room", "name=x").await;
    assert_eq!(next(&mut missing).await.err().flatten(), Some(4404));
}

/// Every HTTP path answers with JSON (errors included), and the OpenAPI document validates.
#[tokio::test]
async fn the_http_api_and_its_openapi_document() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[]);
    let (room, _) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let http = reqwest::Client::new();
    let base = format!("http://{}", gateway.addr());
    let get = |path: String| {
        let http = http.clone();
        async move {
            let response = http.get(path).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap())
        }
    };
    let json = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).unwrap();

    let (status, body) = get(format!("{base}/api/rooms/{room}")).await;
    assert_eq!(status, 200);
    let state = json(&body);
    assert_eq!(
        (state["room_id"].as_str(), state["title"].as_str()),
        (Some(room.as_str()), Some("gateway test"))
    );
    assert_eq!(state["playlist"].as_array().unwrap().len(), 2);
    let (status, body) = get(format!("{base}/api/rooms/{room}/members")).await;
    assert_eq!((status, json(&body)["members"][0]["role"].as_str()), (200, Some("host")));
    let (status, body) = get(format!("{base}/api/rooms/{room}/events?after=0&limit=10")).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["commits"][0]["events"][0]["type"], "room_created");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(format!("{base}/api/rooms")).await;
        assert_eq!(status, 200);
        if json(&body)["rooms"].as_array().unwrap().iter().any(|r| r["room_id"] == room.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "the room never reached the lobby");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (path, expected) in [
        ("/api/rooms/BAD_ID".to_owned(), 400),
        ("/api/rooms/no-such-room".to_owned(), 404),
        ("/api/rooms/no-such-room/events".to_owned(), 404),
        (format!("/api/rooms/{room}/events?limit=0"), 400),
        (format!("/api/rooms/{room}/events?after=x"), 400),
    ] {
        let (status, body) = get(format!("{base}{path}")).await;
        assert_eq!(status, expected, "{path}");
        assert!(json(&body)["error"]["code"].is_string(), "{path}");
    }
    let bad_create = http
        .post(format!("{base}/api/rooms"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_create.status(), 400);

    // The document validates, and every path it lists answers.
    let (status, document) = get(format!("{base}/openapi.json")).await;
    assert_eq!(status, 200);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &document).unwrap();
    let validator = std::env::var_os("HOME")
        .map(|h| std::path::Path::new(&h).join(".cache/chanshare/venv/bin/openapi-spec-validator"))
        .unwrap();
    let validator = std::env::var_os("CHANSHARE_CACHE")
        .map_or(validator, |c| std::path::Path::new(&c).join("venv/bin/openapi-spec-validator"));
    let output = std::process::Command::new(&validator)
        .arg(file.path())
        .output()
        .expect("openapi-spec-validator (./dev/test installs it)");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let document = json(&document);
    for (path, methods) in document["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", &room);
        for method in methods.as_object().unwrap().keys() {
            let response = match method.as_str() {
                "get" => http.get(format!("{base}{concrete}")).send().await.unwrap(),
                "post" => http
                    .post(format!("{base}{concrete}"))
                    .body(json!({"source": {"urls": ["https://example.com/x.mp4"]}}).to_string())
                    .send()
                    .await
                    .unwrap(),
                "delete" => http.delete(format!("{base}{concrete}")).send().await.unwrap(),
                "put" => http.put(format!("{base}{concrete}")).send().await.unwrap(),
                other => panic!("undocumented method {other}"),
            };
            let status = response.status().as_u16();
            assert!(status != 404 && status != 405, "{method} {path} answered {status}");
        }
    }
}

/// A client that never reads is closed with 4008 (slow consumer); a normal client in the same
/// room gets every commit regardless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_and_others_keep_up() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[]);
    let (room, host_token) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let mut writer = connect(&gateway, &room, &format!("token={host_token}")).await;
    let writer_seen = welcome(&mut writer).await;
    let writer_id = writer_seen.welcome["member_id"].as_str().unwrap().to_owned();

    // The slow client: a tiny receive buffer, and it stops reading after its welcome.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let stream = socket.connect(gateway.addr().parse().unwrap()).await.unwrap();
    let url = format!("ws://{}/api/rooms/{room}/ws?name=sleepy", gateway.addr());
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (mut slow, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    welcome(&mut slow).await;

    let mut normal = connect(&gateway, &room, "name=normal").await;
    let mut normal_seen = welcome(&mut normal).await;
    // The normal client reads as commits come.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<u64>();
    let reader = tokio::spawn(async move {
        let mut done = std::pin::pin!(done_rx);
        let mut target = u64::MAX;
        loop {
            if normal_seen.order.last().copied().unwrap_or_else(|| start(&normal_seen)) >= target {
                return normal_seen;
            }
            tokio::select! {
                frame = next(&mut normal) => {
                    let frame = frame.expect("the normal client is never dropped");
                    if frame["type"] == "commit" {
                        let v = frame["version"].as_u64().unwrap();
                        assert!(normal_seen.commits.insert(v, frame).is_none());
                        normal_seen.order.push(v);
                    }
                }
                Ok(t) = &mut done, if target == u64::MAX => target = t,
            }
        }
    });
    // More than the kernel will buffer for the sleeping socket (its send buffer autotunes up to
    // 4 MiB here) plus the fan-out ring: about 5 MB of commits.
    let client = nats.client().await;
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (client, subject, writer_id) = (client.clone(), format!("chanshare.cmd.{room}"), writer_id.clone());
            tokio::spawn(async move {
                let text = "x".repeat(500);
                for _ in 0..1200 {
                    let request = json!({"id": uuid::Uuid::new_v4().to_string(), "actor": writer_id, "command": {"type": "chat", "text": text}});
                    client.request(subject.clone(), request.to_string().into()).await.unwrap();
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let target = head(&nats, &room).await;
    done_tx.send(target).unwrap();
    let normal_seen = reader.await.unwrap();
    let first = start(&normal_seen) + 1;
    assert_eq!(
        normal_seen.order,
        (first..=target).collect::<Vec<_>>(),
        "the normal client got everything, in order"
    );

    let code = loop {
        match tokio::time::timeout(Duration::from_secs(30), slow.next())
            .await
            .expect("closed within 30 s")
        {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break None,
        }
    };
    // The close frame reaches a client that has room for it: one that stopped reading for longer
    // than the gateway waits for it (a loaded machine stretches the writes above) is cut without
    // it. Either way the gateway closed it as a slow consumer.
    let closed_slow = || {
        let (_, metrics) = gateway.get("/metrics");
        metrics.lines().any(|line| {
            line.starts_with("chanshare_gateway_closes_total{code=\"4008\"}")
                && !line.ends_with(" 0")
        })
    };
    match code {
        Some(code) => assert_eq!(code, 4008, "the slow consumer was told why"),
        None => assert!(closed_slow(), "closed without a frame, and not as a slow consumer"),
    }
}

/// Regression: a join while the views trail the log folded the room from the log, one log read
/// per join; a burst of joins hit JetStream's consumer limit (found by the fanout benchmark).
/// Then a joiner got the view as it was and read the commits after it from the log (a soak's
/// joins held hundreds of consumers); now, in a room with sockets here, the hub's state.
#[tokio::test]
async fn joins_while_the_views_trail_start_from_the_hubs_state() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let mut env = tests::chanshare::env(&nats, &redis, SECRET);
    env.push(("CHANSHARE_COMMANDS_PER_SECOND", "1000".to_owned()));
    let _commands = Chanshare::start("commands", &env);
    let mut projectors = Chanshare::start("projectors", &env);
    let gateway = Chanshare::start("gateway", &env);
    let (room, host_token) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let mut host = connect(&gateway, &room, &format!("token={host_token}")).await;
    let mut host_seen = welcome(&mut host).await;
    let views = views::Views::new(
        redis::Client::open(redis.url()).unwrap().get_connection_manager().await.unwrap(),
    );
    let id = events::RoomId::new(&room).unwrap();
    let at = head(&nats, &room).await;
    tests::eventually(Duration::from_secs(10), "the view reaches the head", || async {
        views.stored_state(&id).await.unwrap().is_some_and(|s| s.version >= at)
    })
    .await;
    projectors.terminate(Duration::from_secs(10));
    // In tens: a socket has at most 16 commands waiting for their answers.
    for k in 0..100 {
        send(&mut host, command(json!({"type": "chat", "text": format!("unprojected {k}")}))).await;
        if k % 10 == 9 {
            await_answers(&mut host, &mut host_seen, 10).await;
        }
    }
    let now = head(&nats, &room).await;
    assert!(now >= at + 100);
    // The HTTP state still reads its writes: the view's fold plus the commits after it.
    let response = reqwest::get(format!("http://{}/api/rooms/{room}", gateway.addr())).await;
    let state: Value = serde_json::from_slice(&response.unwrap().bytes().await.unwrap()).unwrap();
    assert_eq!(state["version"], now);
    assert_eq!(state["chat"].as_array().unwrap().last().unwrap()["text"], "unprojected 99");

    // The room has a socket here: its hub folded every commit it sent, and the joiner's snapshot
    // is that state (with the joiner's own join, or followed by it), read from neither the
    // trailing view nor the log.
    let mut joiner = connect(&gateway, &room, "name=late").await;
    let mut seen = welcome(&mut joiner).await;
    let snapshot = seen.snapshot.clone().unwrap();
    let version = snapshot["version"].as_u64().unwrap();
    assert!(version >= now, "the hub's state ({version}), not the view's ({at})");
    let chat = snapshot["state"]["chat"].as_array().unwrap();
    assert_eq!(chat.last().unwrap()["text"], "unprojected 99");
    let joined = head(&nats, &room).await;
    read_until(&mut joiner, &mut seen, joined).await;
    assert_eq!(seen.order, (version + 1..=joined).collect::<Vec<_>>(), "then the commits after it");
}

/// Regression: member tokens from the gateway lived 30 days whatever CHANSHARE_TOKEN_DAYS said;
/// host tokens (from the commands role) and member tokens now both follow it.
#[tokio::test]
async fn tokens_live_as_long_as_configured() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[("CHANSHARE_TOKEN_DAYS", "2".to_owned())]);
    let (room, host_token) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let mut ws = connect(&gateway, &room, "name=short").await;
    let member_token = welcome(&mut ws).await.welcome["token"].as_str().unwrap().to_owned();
    let signer = tokens::Signer::new(SECRET.as_bytes());
    let room = events::RoomId::new(&room).unwrap();
    let now_s =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let two_days = 2 * 24 * 3600;
    for token in [&host_token, &member_token] {
        assert!(signer.verify(token, &room, now_s + two_days - 60).is_ok());
        assert!(matches!(
            signer.verify(token, &room, now_s + two_days + 60),
            Err(tokens::TokenError::Expired)
        ));
    }
}

/// SIGTERM tells sockets to go away (1001) so clients move to another gateway; idle sockets
/// are closed; addresses are limited in sockets and room creations.
#[tokio::test]
async fn shutdown_idle_and_per_address_limits() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let limits = [
        ("CHANSHARE_CONNECTIONS_PER_IP", "3".to_owned()),
        ("CHANSHARE_CREATIONS_PER_MINUTE", "2".to_owned()),
        ("CHANSHARE_IDLE_SECS", "2".to_owned()),
    ];
    let mut gateway = Chanshare::serve(&nats, &redis, &limits);
    let (room, _) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let third = reqwest::Client::new()
        .post(format!("http://{}/api/rooms", gateway.addr()))
        .header("content-type", "application/json")
        .body(json!({"source": {"urls": ["https://example.com/c.webm"]}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 429, "the third room within a minute");

    let mut sockets = Vec::new();
    for n in 0..3 {
        let mut ws = connect(&gateway, &room, &format!("name=s{n}")).await;
        welcome(&mut ws).await;
        sockets.push(ws);
    }
    let mut fourth = connect(&gateway, &room, "name=s3").await;
    assert_eq!(
        next(&mut fourth).await.err().flatten(),
        Some(4429),
        "the fourth socket from one address"
    );

    // A silent socket is closed after the idle timeout; one that pings stays.
    let mut silent = sockets.pop().unwrap();
    let mut chatty = sockets.pop().unwrap();
    let mut also_chatty = sockets.pop().unwrap();
    let idle = tokio::spawn(async move {
        loop {
            if let Err(code) = next(&mut silent).await {
                return code;
            }
        }
    });
    for _ in 0..8 {
        send(&mut chatty, json!({"type": "ping", "t": 1})).await;
        send(&mut also_chatty, json!({"type": "ping", "t": 1})).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(idle.await.unwrap(), Some(4000));

    // Shutdown: the remaining sockets (still pinging, so never idle) are told to go away.
    gateway.terminate(Duration::ZERO);
    let mut codes = Vec::new();
    for mut ws in [chatty, also_chatty] {
        let code = loop {
            tokio::select! {
                frame = next(&mut ws) => if let Err(code) = frame { break code },
                () = tokio::time::sleep(Duration::from_millis(300)) => {
                    ws.send(Message::Text(json!({"type": "ping", "t": 1}).to_string().into())).await.ok();
                }
            }
        };
        codes.push(code);
    }
    assert_eq!(codes, [Some(1001), Some(1001)]);
}

/// `GET /api/rooms` pages with an opaque cursor (every listed room once, newest first, also
/// while rooms become active), searches titles ignoring case, and refuses bad parameters with
/// the error envelope.
#[tokio::test]
async fn the_lobby_pages_with_a_cursor_and_searches() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway =
        Chanshare::serve(&nats, &redis, &[("CHANSHARE_CREATIONS_PER_MINUTE", "100".to_owned())]);
    let http = reqwest::Client::new();
    let base = format!("http://{}", gateway.addr());
    let mut titles: Vec<String> = (0..12).map(|n| format!("room {n:02}")).collect();
    titles.extend(["Movie Night ÄÖ".to_owned(), "late MOVIE show".to_owned()]);
    let mut hosts = BTreeMap::new();
    for (title, listed) in
        titles.iter().map(|t| (t.as_str(), true)).chain([("hidden movie", false)])
    {
        let body = json!({"title": title, "listed": listed, "source": {"urls": ["https://example.com/a.webm"]}});
        let response = http
            .post(format!("{base}/api/rooms"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{title}");
        let created: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        hosts.insert(created["room_id"].as_str().unwrap().to_owned(), created["member_id"].clone());
    }
    let get = |query: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let response = http.get(format!("{base}/api/rooms{query}")).send().await.unwrap();
            let status = response.status().as_u16();
            (status, serde_json::from_slice::<Value>(&response.bytes().await.unwrap()).unwrap())
        }
    };
    // A column of a page's rooms.
    let rooms = |body: &Value, field: &str| -> Vec<String> {
        body["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[field].as_str().unwrap().to_owned())
            .collect()
    };
    // Every page of `query` from `cursor` on: their sizes, and the rooms in order.
    let page_on = async |query: &str, mut cursor: Option<String>| {
        let (mut sizes, mut ids) = (Vec::new(), Vec::new());
        loop {
            let after = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
            let (status, page) = get(format!("?{query}{after}")).await;
            assert_eq!(status, 200, "{page}");
            let found = rooms(&page, "room_id");
            sizes.push(found.len());
            ids.extend(found);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return (sizes, ids),
            }
        }
    };
    tests::eventually(Duration::from_secs(10), "every listed room in the lobby", || async {
        get(String::new()).await.1["rooms"].as_array().unwrap().len() == 14
    })
    .await;
    let (status, all) = get(String::new()).await;
    assert_eq!(
        (status, &all["next_cursor"]),
        (200, &Value::Null),
        "one page holds 14 (default 50)"
    );
    let all = rooms(&all, "room_id");

    // Pages of 5: 5, 5, 4, each room once, in the order of the whole list.
    assert_eq!(page_on("limit=5", None).await, (vec![5, 5, 4], all.clone()));

    // A room of the first page becomes active while a client pages: it moves to the front
    // and the client does not see it again; every other room still comes once.
    let (_, first) = get("?limit=5".to_owned()).await;
    let active = rooms(&first, "room_id")[2].clone();
    let host = hosts[&active].as_str().unwrap();
    crate::replay::command(&nats, &active, host, json!({"type": "chat", "text": "hi"})).await;
    tests::eventually(Duration::from_secs(10), "the active room first", || async {
        rooms(&get("?limit=1".to_owned()).await.1, "room_id") == [active.clone()]
    })
    .await;
    let (_, rest) = page_on("limit=5", first["next_cursor"].as_str().map(str::to_owned)).await;
    assert_eq!(rest, all[5..], "the rest, none repeated");

    // Search: titles, ignoring case (Unicode too), never unlisted rooms; it pages like a list.
    let titles_of = |body: &Value| rooms(body, "title");
    let (status, movies) = get("?q=MoViE".to_owned()).await;
    assert_eq!(status, 200);
    let mut found = titles_of(&movies);
    found.sort();
    assert_eq!(found, ["Movie Night ÄÖ", "late MOVIE show"]);
    assert_eq!(
        titles_of(&get("?q=%20night%20%C3%A4%C3%B6%20".to_owned()).await.1),
        ["Movie Night ÄÖ"]
    );
    assert_eq!(titles_of(&get("?q=nothing%20like%20it".to_owned()).await.1), Vec::<String>::new());
    assert_eq!(page_on("q=room&limit=10", None).await.0, [10, 2]);
    assert_eq!(get(format!("?q={}", "a".repeat(100))).await.0, 200);

    // Bad parameters: 400 with the error envelope.
    // base64url of "v1:x:not-room" and of "v1:5:NOT A ROOM"
    let (forged, forged_room) = ("djE6eDpub3Qtcm9vbQ", "djE6NTpOT1QgQSBST09N");
    for query in [
        "?limit=0".to_owned(),
        "?limit=201".to_owned(),
        "?limit=-1".to_owned(),
        "?limit=ten".to_owned(),
        "?cursor=not-a-cursor!".to_owned(),
        format!("?cursor={forged}"),
        format!("?cursor={forged_room}"),
        format!("?q={}", "a".repeat(101)),
    ] {
        let (status, body) = get(query.clone()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid")),
            "{query}: {body}"
        );
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{query}");
    }
}

/// `/favicon.ico` and the icon the pages link to are images, and the lobby links it.
#[tokio::test]
async fn the_favicon_is_served() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[]);
    let http = reqwest::Client::new();
    let base = format!("http://{}", gateway.addr());
    for path in ["/favicon.ico", "/ui/icon.svg"] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let content_type =
            response.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("image/"), "{path}: {content_type}");
        let body = response.text().await.unwrap();
        assert!(
            body.trim_start().starts_with("<svg") && body.trim_end().ends_with("</svg>"),
            "{path}"
        );
    }
    let lobby = http.get(&base).send().await.unwrap().text().await.unwrap();
    assert!(
        lobby.contains(r#"<link rel="icon" href="/ui/icon.svg" type="image/svg+xml">"#),
        "{lobby}"
    );
}

/// Reads frames until the socket closes; the close code.
async fn closed(ws: &mut Ws) -> Option<u16> {
    loop {
        if let Err(code) = next(ws).await {
            return code;
        }
    }
}

/// Every event of the room's log, by name, with the member it is about.
async fn logged(nats: &NatsServer, room: &str) -> Vec<(String, Option<String>)> {
    let (log, _) = EventLog::connect(nats.client().await, 1).await.unwrap();
    let room = events::RoomId::new(room).unwrap();
    let stored: Vec<_> = log.read(&room, 0).await.unwrap().map(|c| c.unwrap()).collect().await;
    stored
        .iter()
        .flat_map(|s| s.commit.events.iter())
        .map(|e| {
            let value = events::json::to_value(e).unwrap();
            (e.name().to_owned(), value["member_id"].as_str().map(str::to_owned))
        })
        .collect()
}

/// A kick closes the kicked member's sockets at once (4403); neither their token nor a new
/// identity from their address gets back in; members who were already there stay. Address
/// fingerprints are in the log but never reach clients.
#[tokio::test]
async fn a_kicked_member_is_cut_off_and_stays_out() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[]);
    let (room, host_token) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let mut host = connect(&gateway, &room, &format!("token={host_token}")).await;
    let mut host_seen = welcome(&mut host).await;
    let mut friend = connect(&gateway, &room, "name=friend").await;
    let friend_seen = welcome(&mut friend).await;
    let mut guest = connect(&gateway, &room, "name=mallory").await;
    let guest_seen = welcome(&mut guest).await;
    let (guest_id, guest_token) = (
        guest_seen.welcome["member_id"].as_str().unwrap().to_owned(),
        guest_seen.welcome["token"].as_str().unwrap().to_owned(),
    );
    let mut second_tab = connect(&gateway, &room, &format!("token={guest_token}")).await;
    welcome(&mut second_tab).await;

    send(&mut host, command(json!({"type": "kick", "member_id": guest_id}))).await;
    await_answers(&mut host, &mut host_seen, 1).await;
    assert_eq!(host_seen.acks.last().unwrap()["type"], "ack", "{:?}", host_seen.acks);
    for ws in [&mut guest, &mut second_tab] {
        assert_eq!(closed(ws).await, Some(4403), "every socket of the kicked member closes");
    }
    let mut again = connect(&gateway, &room, &format!("token={guest_token}")).await;
    assert_eq!(next(&mut again).await.err().flatten(), Some(4403), "the token is banned");
    let mut fresh = connect(&gateway, &room, "name=not-mallory").await;
    assert_eq!(
        next(&mut fresh).await.err().flatten(),
        Some(4403),
        "so is a new identity from there"
    );
    // A member from the same address who was already there reconnects as before.
    let friend_token = friend_seen.welcome["token"].as_str().unwrap().to_owned();
    drop(friend);
    let mut friend = connect(&gateway, &room, &format!("token={friend_token}")).await;
    let friend_back = welcome(&mut friend).await;
    assert_eq!(friend_back.welcome["type"], "welcome");
    // Another room is not affected by this room's ban.
    let (other, _) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let mut elsewhere = connect(&gateway, &other, "name=mallory").await;
    assert_eq!(welcome(&mut elsewhere).await.welcome["type"], "welcome");

    // The fingerprints are facts of the log, kept from what clients read.
    let events = logged(&nats, &room).await;
    let seen = events.iter().filter(|(name, _)| name == "member_address_seen").count();
    assert!(seen >= 3, "one fingerprint per member: {events:?}");
    let url = format!("http://{}/api/rooms/{room}/events?after=0&limit=1000", gateway.addr());
    let history: Value =
        serde_json::from_slice(&reqwest::get(url).await.unwrap().bytes().await.unwrap()).unwrap();
    let text = history.to_string();
    assert!(text.contains("member_left") && !text.contains("member_address_seen"), "{text}");
    for frame in host_seen.commits.values() {
        assert!(!frame.to_string().contains("address"), "{frame}");
    }
}

/// A member whose socket closes cleanly goes offline after the grace period, in one commit; a
/// reconnect within the grace does not flap; a dropped connection waits for the presence timeout.
#[tokio::test]
async fn a_clean_close_takes_the_member_offline_after_the_grace() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway =
        Chanshare::serve(&nats, &redis, &[("CHANSHARE_LEAVE_GRACE_MS", "800".to_owned())]);
    let (room, host_token) = tests::chanshare::create_url_room(&gateway.addr(), "gateway test");
    let mut host = connect(&gateway, &room, &format!("token={host_token}")).await;
    welcome(&mut host).await;
    let offline_of = async |member: &str| {
        logged(&nats, &room)
            .await
            .iter()
            .filter(|(name, id)| name == "member_went_offline" && id.as_deref() == Some(member))
            .count()
    };

    // A reload: closed cleanly, back within the grace.
    let mut guest = connect(&gateway, &room, "name=reloader").await;
    let seen = welcome(&mut guest).await;
    let (id, token) = (
        seen.welcome["member_id"].as_str().unwrap().to_owned(),
        seen.welcome["token"].as_str().unwrap().to_owned(),
    );
    guest.close(None).await.unwrap();
    let mut guest = connect(&gateway, &room, &format!("token={token}")).await;
    welcome(&mut guest).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(offline_of(&id).await, 0, "a reconnect within the grace keeps the member online");

    // The tab closes: offline once, soon after the grace.
    let closed_at = Instant::now();
    guest.close(None).await.unwrap();
    tests::eventually(Duration::from_secs(10), "the closed tab's member is offline", || async {
        offline_of(&id).await == 1
    })
    .await;
    assert!(closed_at.elapsed() >= Duration::from_millis(800), "not before the grace");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(offline_of(&id).await, 1, "one commit");

    // A dropped connection (no close frame) is left to the presence timeout (30 s here).
    let mut dropper = connect(&gateway, &room, "name=dropper").await;
    let seen = welcome(&mut dropper).await;
    let dropper_id = seen.welcome["member_id"].as_str().unwrap().to_owned();
    drop(dropper);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(offline_of(&dropper_id).await, 0, "an unclean exit waits for the presence timeout");
}

/// A socket from `forwarded_for` (as a reverse proxy on 127.0.0.1 would say): its first frame
/// or its close code.
async fn through_proxy(
    gateway: &Chanshare,
    room: &str,
    forwarded_for: &str,
) -> (Ws, Result<Value, Option<u16>>) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let url = format!("ws://{}/api/rooms/{room}/ws?name=guest", gateway.addr());
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("x-forwarded-for", forwarded_for.parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(request).await.unwrap().0;
    let first = next(&mut ws).await;
    (ws, first)
}

/// Behind a trusted reverse proxy, per-address limits and kick bans key on the forwarded client,
/// not on the proxy everyone shares; from an untrusted peer the header is ignored.
#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_told_apart() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let limit = ("CHANSHARE_CONNECTIONS_PER_IP", "2".to_owned());
    let trusting = Chanshare::serve(
        &nats,
        &redis,
        &[limit.clone(), ("CHANSHARE_TRUSTED_PROXIES", "127.0.0.0/8".into())],
    );
    let (room, host_token) = tests::chanshare::create_url_room(&trusting.addr(), "gateway test");
    let mut open = Vec::new();
    for _ in 0..2 {
        let (ws, first) = through_proxy(&trusting, &room, "203.0.113.1").await;
        assert_eq!(first.unwrap()["type"], "welcome");
        open.push(ws);
    }
    let (_, third) = through_proxy(&trusting, &room, "203.0.113.1").await;
    assert_eq!(third.err().flatten(), Some(4429), "the client's own limit");
    // Another client through the same proxy (the proxy's own address is long over the limit).
    let (ws, other) = through_proxy(&trusting, &room, "6.6.6.6, 203.0.113.2").await;
    assert_eq!(other.unwrap()["type"], "welcome", "a second client is not the first");
    open.push(ws);

    // A kick bans the forwarded client's address, not the proxy's.
    let mut host = connect(&trusting, &room, &format!("token={host_token}")).await;
    let mut host_seen = welcome(&mut host).await;
    let (mut guest, first) = through_proxy(&trusting, &room, "198.51.100.7").await;
    let guest_id = first.unwrap()["member_id"].as_str().unwrap().to_owned();
    send(&mut host, command(json!({"type": "kick", "member_id": guest_id}))).await;
    await_answers(&mut host, &mut host_seen, 1).await;
    assert_eq!(closed(&mut guest).await, Some(4403));
    let (_, again) = through_proxy(&trusting, &room, "198.51.100.7").await;
    assert_eq!(again.err().flatten(), Some(4403), "the kicked client, as a new member");
    let (_, someone) = through_proxy(&trusting, &room, "198.51.100.8").await;
    assert_eq!(someone.unwrap()["type"], "welcome", "everyone else behind the proxy still gets in");

    // Without CHANSHARE_TRUSTED_PROXIES the header is the client's own word: ignored.
    let plain = Chanshare::serve(&nats, &redis, &[limit]);
    let mut kept = Vec::new();
    for n in 0..2 {
        let (ws, first) = through_proxy(&plain, &room, &format!("203.0.113.{}", 10 + n)).await;
        assert_eq!(first.unwrap()["type"], "welcome");
        kept.push(ws);
    }
    let (_, spoofed) = through_proxy(&plain, &room, "203.0.113.99").await;
    assert_eq!(spoofed.err().flatten(), Some(4429), "a forged header buys no extra sockets");
}

/// A server error says what failed in general words and carries a request id; the internal cause
/// is in the log under that id, never in the body.
#[tokio::test]
async fn server_errors_carry_a_request_id_and_no_internal_text() {
    let (nats, mut redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[]);
    redis.kill();
    let response = reqwest::get(format!("http://{}/api/rooms", gateway.addr())).await.unwrap();
    assert_eq!(response.status(), 503);
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&id), "{message}");
    for internal in ["redis", "refused", "127.0.0.1", "io error"] {
        assert!(!message.to_lowercase().contains(internal), "{message}");
    }
    tests::eventually(Duration::from_secs(5), "the cause is logged with the id", || async {
        gateway.log().contains(&id)
    })
    .await;
}

/// The edges a browser attack would use: a cross-site form post (not JSON), a foreign page
/// opening a room socket with the visitor's token, and framing the UI.
#[tokio::test]
async fn foreign_pages_cannot_post_open_sockets_or_frame() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[]);
    let addr = gateway.addr();
    let lobby = || async {
        reqwest::get(format!("http://{addr}/api/rooms")).await.unwrap().bytes().await.unwrap()
    };
    let before = lobby().await;
    let body = r#"{"source": {"urls": ["https://example.com/a.webm"]}}"#;
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut request =
            reqwest::Client::new().post(format!("http://{addr}/api/rooms")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        let reply: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(reply["error"]["code"], "unsupported_media_type");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lobby().await, before, "nothing was created");
    let (room, token) = tests::chanshare::create_url_room(&addr, "edges");

    let open = async |origin: Option<&str>| {
        let url = format!("ws://{addr}/api/rooms/{room}/ws?token={token}");
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", origin.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((mut ws, _)) => {
                Ok(next(&mut ws).await.unwrap()["type"].as_str().unwrap().to_owned())
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(error) => panic!("{error}"),
        }
    };
    assert_eq!(open(Some("http://evil.example")).await, Err(403), "a foreign page");
    assert_eq!(open(Some(&format!("http://{addr}.evil.example"))).await, Err(403), "a look-alike");
    assert_eq!(open(Some(&format!("http://{addr}"))).await, Ok("welcome".into()), "our own page");
    assert_eq!(open(None).await, Ok("welcome".into()), "a client that is not a browser");
    // An allowed list replaces "same host".
    let listed = Chanshare::serve(
        &nats,
        &redis,
        &[("CHANSHARE_ALLOWED_ORIGINS", "https://watch.example, https://other.example/".into())],
    );
    let url = format!("ws://{}/api/rooms/{room}/ws?token={token}", listed.addr());
    for (origin, admitted) in [
        ("https://other.example", true),
        ("https://watch.example", true),
        ("http://evil.example", false),
    ] {
        let mut request = url.clone().into_client_request().unwrap();
        request.headers_mut().insert("origin", origin.parse().unwrap());
        assert_eq!(tokio_tungstenite::connect_async(request).await.is_ok(), admitted, "{origin}");
    }

    // The UI may not be framed by another site.
    let page = reqwest::get(format!("http://{addr}/r/{room}")).await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
}

/// One frame as it crossed the wire: FIN, opcode, payload (server frames are not masked).
async fn raw_frame(stream: &mut tokio::net::TcpStream) -> (bool, u8, Vec<u8>) {
    use tokio::io::AsyncReadExt as _;
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.unwrap();
    let len = match head[1] & 0x7f {
        126 => u64::from(stream.read_u16().await.unwrap()),
        127 => stream.read_u64().await.unwrap(),
        n => u64::from(n),
    };
    let mut payload = vec![0; usize::try_from(len).unwrap()];
    stream.read_exact(&mut payload).await.unwrap();
    (head[0] & 0x80 != 0, head[0] & 0x0f, payload)
}

/// A large message (a join snapshot of a big room) crosses the wire as one text frame, written
/// straight to the connection (no socket keeps a write buffer the size of the largest message it
/// sent: `ws.rs`); a client gets it whole.
#[tokio::test]
async fn a_large_snapshot_is_one_frame() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[]);
    let (room, host_token) = tests::chanshare::create_url_room(&gateway.addr(), "big state");
    let mut host = connect(&gateway, &room, &format!("token={host_token}")).await;
    let mut seen = welcome(&mut host).await;
    let long = "é".repeat(150);
    let urls: Vec<String> =
        (0..60).map(|n| format!("https://example.com/{long}/clip{n}.webm")).collect();
    // (A client's frame is at most 16 KiB: two commands.)
    for half in urls.chunks(30) {
        send(&mut host, command(json!({"type": "add_items", "urls": half}))).await;
        await_answers(&mut host, &mut seen, 1).await;
    }

    let mut stream = tokio::net::TcpStream::connect(gateway.addr()).await.unwrap();
    let request = format!(
        "GET /api/rooms/{room}/ws?name=raw HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        gateway.addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        response.push(stream.read_u8().await.unwrap());
    }
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    // RFC 6455's own example key and answer.
    assert!(
        response
            .to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{response}"
    );
    let (fin, opcode, welcome_frame) = raw_frame(&mut stream).await;
    assert!(fin && opcode == 1, "the welcome is one frame");
    assert!(String::from_utf8(welcome_frame).unwrap().contains("\"welcome\""));
    let (fin, opcode, message) = raw_frame(&mut stream).await;
    assert!(fin && opcode == 1, "the snapshot is one text frame");
    let snapshot: Value = serde_json::from_slice(&message).unwrap();
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["state"]["playlist"].as_array().unwrap().len(), 62);
    assert!(message.len() > 20 * 1024, "a state of {} bytes", message.len());

    // A WebSocket library puts it back together.
    let mut client = connect(&gateway, &room, "name=whole").await;
    let joined = welcome(&mut client).await;
    assert_eq!(joined.snapshot.unwrap()["state"]["playlist"].as_array().unwrap().len(), 62);
}

/// A client that closes its socket gets the closing handshake's answer (RFC 6455 §5.5.1), not a
/// dropped connection (which browsers report as 1006, not clean).
#[tokio::test]
async fn a_client_that_closes_gets_the_close_answered() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &[]);
    let (room, _) = tests::chanshare::create_url_room(&gateway.addr(), "closing");
    let mut client = connect(&gateway, &room, "name=leaving").await;
    welcome(&mut client).await;
    let bye = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "bye".into(),
    };
    client.send(Message::Close(Some(bye))).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(frame))) => return Ok(frame),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.to_string()),
                None => return Err("the connection ended without an answer".into()),
            }
        }
    })
    .await
    .expect("an answer within 5 s");
    let frame = answer.unwrap();
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
}

/// Issue 22: a room of more than a page of members. A join's snapshot lists a page and counts
/// them all; `GET /members` pages through the rest; a burst of joins reaches a `batch=1` socket
/// in a few `commits` frames and any other socket as single commits, each once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_room_lists_a_page_of_members_and_sends_joins_together() {
    const PAGE: usize = events::view::MEMBER_PAGE;
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway =
        Chanshare::serve(&nats, &redis, &[("CHANSHARE_CONNECTIONS_PER_IP", "1000".to_owned())]);
    let (room, _) = tests::chanshare::create_url_room(&gateway.addr(), "a big room");
    let join_all = |names: std::ops::Range<usize>| {
        let (addr, room) = (gateway.addr(), room.clone());
        async move {
            let joins = names.map(|n| {
                let (addr, room) = (addr.clone(), room.clone());
                tokio::spawn(async move {
                    let mut ws = crate::ws::connect_to(&addr, &room, &format!("name=m{n}")).await;
                    welcome(&mut ws).await;
                    ws
                })
            });
            futures::future::join_all(joins)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        }
    };
    let mut members = join_all(0..PAGE + 10).await;
    // The hub folds each join as the live subject brings it, a moment after its welcome; the
    // members page reads the hub's state.
    let everyone = PAGE + 11;
    tests::eventually(Duration::from_secs(30), "the hub has every join", || async {
        let (_, body) = gateway.get(&format!("/api/rooms/{room}/members?limit=1"));
        let page: Value = serde_json::from_str(&body).unwrap_or_default();
        page["member_count"].as_u64() >= Some(everyone as u64)
    })
    .await;

    let mut batched = connect(&gateway, &room, "name=batched&batch=1").await;
    let mut seen_batched = welcome(&mut batched).await;
    let mut single = connect(&gateway, &room, "name=single").await;
    let mut seen_single = welcome(&mut single).await;
    let snapshot = seen_single.snapshot.clone().unwrap();
    let state = &snapshot["state"];
    // Every commit so far is one member's: the host's creation (over HTTP, online for a while
    // without a socket), then each join.
    assert!(snapshot["version"].as_u64().unwrap() > PAGE as u64 + 10, "{snapshot}");
    assert_eq!(state["member_count"], snapshot["version"], "{state}");
    assert_eq!(state["online_count"], snapshot["version"]);
    let listed = state["members"].as_array().unwrap();
    assert_eq!(listed.len(), PAGE + 1, "the host, then the last page of joins");
    assert_eq!(listed[0]["role"], "host");
    assert_eq!(listed.iter().filter(|m| m["role"] == "host").count(), 1);
    let count = PAGE + 10 + 3;

    // A burst of joins: one frame, or a few, for the batched socket; every commit for both.
    members.extend(join_all(1000..1040).await);
    let head = head(&nats, &room).await;
    read_until(&mut batched, &mut seen_batched, head).await;
    read_until(&mut single, &mut seen_single, head).await;
    for seen in [&seen_batched, &seen_single] {
        let first = start(seen) + 1;
        assert_eq!(seen.order, (first..=head).collect::<Vec<_>>(), "contiguous, in order, once");
    }
    // (40 joins opened at once: at least two of them come within 250 ms of each other.)
    assert!(seen_batched.batches >= 1, "40 joins, none sent together");
    assert_eq!(seen_single.batches, 0, "a socket without batch=1 never gets a commits frame");
    let from = start(&seen_single);
    let both =
        |seen: &Seen| seen.commits.range(from + 1..).map(|(_, c)| c.clone()).collect::<Vec<_>>();
    assert_eq!(both(&seen_batched), both(&seen_single), "the same commits either way");
    // Anything else is not held.
    send(&mut batched, command(json!({"type": "chat", "text": "hello"}))).await;
    let chat = loop {
        let frame = next(&mut single).await.unwrap();
        if frame["type"] == "commit" {
            break frame;
        }
    };
    assert_eq!(chat["events"][0]["type"], "chat_posted", "{chat}");

    // The member list, a page at a time, from the hub's state or without one.
    let http = reqwest::Client::new();
    let base = format!("http://{}/api/rooms/{room}/members", gateway.addr());
    let page = |query: String| {
        let (http, url) = (http.clone(), format!("{base}?{query}"));
        async move {
            let response = http.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            (status, serde_json::from_slice::<Value>(&response.bytes().await.unwrap()).unwrap())
        }
    };
    let mut names = Vec::new();
    let mut offset = Some(0);
    while let Some(at) = offset {
        let (status, body) = page(format!("offset={at}&limit=50")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["member_count"], count + 40);
        let listed = body["members"].as_array().unwrap().iter();
        names.extend(listed.map(|m| m["name"].as_str().unwrap().to_owned()));
        offset = body["next_offset"].as_u64();
    }
    let joined: std::collections::BTreeSet<String> = (0..PAGE + 10)
        .chain(1000..1040)
        .map(|n| format!("m{n}"))
        .chain(["batched".to_owned(), "single".to_owned()])
        .collect();
    assert_eq!(names.len(), count + 40, "every member once");
    assert_eq!(names[1..].iter().cloned().collect::<std::collections::BTreeSet<_>>(), joined);
    let (_, whole) = page(String::new()).await;
    assert_eq!(whole["members"].as_array().unwrap().len(), count + 40);
    assert_eq!(whole["next_offset"], Value::Null);
    let (_, past) = page("offset=100000".into()).await;
    assert_eq!(
        (past["members"].as_array().map(Vec::len), &past["next_offset"]),
        (Some(0), &Value::Null)
    );
    // Members by id (a client naming an earlier member who chats), in join order.
    let (_, first) = page("limit=3".into()).await;
    let id = |n: usize| first["members"][n]["member_id"].as_str().unwrap().to_owned();
    let (status, named) = page(format!("ids={},{},mnosuchmember", id(2), id(0))).await;
    assert_eq!(status, 200, "{named}");
    let named: Vec<_> =
        named["members"].as_array().unwrap().iter().map(|m| m["member_id"].clone()).collect();
    assert_eq!(named, [json!(id(0)), json!(id(2))]);
    let too_many = vec![id(1); 101].join(",");
    for bad in [
        "limit=0",
        "limit=1001",
        "offset=-1",
        "offset=x",
        "ids=",
        "ids=NOT-AN-ID",
        &format!("ids={too_many}"),
    ] {
        let (status, body) = page(bad.to_owned()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid", "{bad}: {body}");
    }
    // Without sockets here (another gateway): the views and the log give the same pages.
    let other = Chanshare::serve(&nats, &redis, &[]);
    let url = format!("http://{}/api/rooms/{room}/members?offset=100&limit=1000", other.addr());
    let from_views: Value =
        serde_json::from_slice(&reqwest::get(url).await.unwrap().bytes().await.unwrap()).unwrap();
    assert_eq!(from_views["members"].as_array().unwrap().len(), count + 40 - 100, "{from_views}");
    drop(members);
}
