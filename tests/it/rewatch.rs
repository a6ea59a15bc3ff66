//! Rewatch's reads against `chanshare serve` with real NATS and Redis: the session timeline,
//! the state at a point of the history (equal to `chanshare replay state`), who may read them,
//! the host's switch, and the lobby's recently ended rooms.

use std::time::Duration;

use serde_json::{Value, json};
use tests::chanshare::replay;
use tests::{Chanshare, NatsServer, RedisServer, eventually};

use crate::ws::{await_answers, command, connect, send, welcome};

async fn get(gateway: &Chanshare, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("http://{}{path}", gateway.addr())).await.unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null))
}

async fn create(gateway: &Chanshare, body: Value) -> (String, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/rooms", gateway.addr()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    (
        created["room_id"].as_str().unwrap().to_owned(),
        created["host_token"].as_str().unwrap().to_owned(),
    )
}

fn urls() -> Value {
    json!({"urls": ["https://example.com/a.webm", "https://example.com/b.png", "https://example.com/c.webm"]})
}

#[tokio::test]
async fn the_timeline_and_the_state_at_a_point_are_the_logs() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let env = tests::chanshare::env(&nats, &redis, tests::chanshare::SECRET);
    let gateway = Chanshare::start("serve", &env);
    let (room, host_token) =
        create(&gateway, json!({"title": "rewatched", "source": urls()})).await;
    let mut host = connect(&gateway, &room, &format!("token={host_token}")).await;
    let mut seen = welcome(&mut host).await;
    for frame in [
        json!({"type": "play"}),
        json!({"type": "chat", "text": "kept"}),
        json!({"type": "chat", "text": "deleted later"}),
        json!({"type": "next"}),
    ] {
        send(&mut host, command(frame)).await;
        await_answers(&mut host, &mut seen, 1).await;
    }
    let (_, state) = get(&gateway, &format!("/api/rooms/{room}")).await;
    let deleted = state["chat"][1]["id"].clone();
    send(&mut host, command(json!({"type": "delete_chat", "message_id": deleted}))).await;
    await_answers(&mut host, &mut seen, 1).await;
    let head = get(&gateway, &format!("/api/rooms/{room}")).await.1["version"].as_u64().unwrap();

    // The timeline: from the room's first commit to its head, every commit counted once, and a
    // mark where the playlist moved on.
    let (status, rewatch) = get(&gateway, &format!("/api/rooms/{room}/rewatch")).await;
    assert_eq!(status, 200, "{rewatch}");
    let timeline = &rewatch["timeline"];
    assert_eq!(timeline["start"]["version"], 0);
    assert_eq!(timeline["end"]["version"], head);
    let counted: u64 = timeline["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["commits"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, head);
    let marks: Vec<_> =
        timeline["marks"].as_array().unwrap().iter().map(|m| m["item_id"].clone()).collect();
    assert_eq!(marks, [json!("i1"), json!("i2")]);
    assert_eq!(rewatch["titles"]["i2"], "b.png");

    // The state at every version equals the developer tool's fold, but for the message deleted
    // since, which shows as deleted.
    for version in 1..=head {
        let path = format!("/api/rooms/{room}/rewatch/state?version={version}");
        let (status, mut served) = get(&gateway, &path).await;
        assert_eq!(status, 200, "{served}");
        let output = replay(&env, &["state", &room, "--at", &version.to_string()]);
        let mut folded: Value = serde_json::from_slice(&output.stdout).unwrap();
        for chat in [&mut served["chat"], &mut folded["chat"]] {
            for message in chat.as_array_mut().unwrap() {
                if message["id"] == deleted {
                    message["text"] = json!("");
                    message["deleted"] = json!(true);
                }
            }
        }
        assert_eq!(served, folded, "version {version}");
    }
    let (_, before_delete) =
        get(&gateway, &format!("/api/rooms/{room}/rewatch/state?version={}", head - 1)).await;
    assert_eq!(
        before_delete["chat"][1],
        json!({"id": deleted, "member_id": before_delete["chat"][1]["member_id"], "text": "", "at_ms": before_delete["chat"][1]["at_ms"], "deleted": true})
    );
    // By time: the state at the time of a commit includes it.
    let events = get(&gateway, &format!("/api/rooms/{room}/events?after=2&limit=1")).await.1;
    let at = events["commits"][0]["at_ms"].as_u64().unwrap();
    let (_, at_time) = get(&gateway, &format!("/api/rooms/{room}/rewatch/state?at_ms={at}")).await;
    assert!(at_time["version"].as_u64().unwrap() >= 3);

    // The timeline is cached and extended by what comes next.
    send(&mut host, command(json!({"type": "chat", "text": "one more"}))).await;
    await_answers(&mut host, &mut seen, 1).await;
    let (_, again) = get(&gateway, &format!("/api/rooms/{room}/rewatch")).await;
    assert_eq!(again["timeline"]["end"]["version"], head + 1);
    let chats: u64 = again["timeline"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["chat"].as_u64().unwrap())
        .sum();
    assert_eq!(chats, 3);

    // Bad asks change nothing and say what was wrong.
    for (path, code) in [
        (format!("/api/rooms/{room}/rewatch/state"), 400),
        (format!("/api/rooms/{room}/rewatch/state?version=1&at_ms=5"), 400),
        (format!("/api/rooms/{room}/rewatch/state?version={}", head + 5), 400),
        (format!("/api/rooms/{room}/rewatch/state?at_ms=5"), 400),
        (format!("/api/rooms/{room}/rewatch/state?version=x"), 400),
        ("/api/rooms/BAD!/rewatch".to_owned(), 400),
        ("/api/rooms/no-such-room/rewatch".to_owned(), 404),
        ("/api/rooms/no-such-room/rewatch/state?version=1".to_owned(), 404),
    ] {
        let (status, body) = get(&gateway, &path).await;
        assert_eq!(status, code, "{path}: {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn only_members_rewatch_an_unlisted_room_and_a_host_can_turn_it_off() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway =
        Chanshare::start("serve", &tests::chanshare::env(&nats, &redis, tests::chanshare::SECRET));
    let (room, host_token) =
        create(&gateway, json!({"title": "ours", "listed": false, "source": urls()})).await;
    let paths = |token: &str| {
        [
            format!("/api/rooms/{room}/rewatch{token}"),
            format!("/api/rooms/{room}/rewatch/state?version=1{}", token.replace('?', "&")),
            format!("/api/rooms/{room}/events{token}"),
        ]
    };
    let with_token = format!("?token={host_token}");
    for path in paths("") {
        let (status, body) = get(&gateway, &path).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    for path in paths(&with_token) {
        assert_eq!(get(&gateway, &path).await.0, 200, "{path}");
    }
    // A bearer header is a member token too.
    let response = reqwest::Client::new()
        .get(format!("http://{}/api/rooms/{room}/rewatch", gateway.addr()))
        .bearer_auth(&host_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Off: every read of the history refuses, even a member's, and the page answers 403.
    let mut host = connect(&gateway, &room, &format!("token={host_token}")).await;
    let mut seen = welcome(&mut host).await;
    send(&mut host, command(json!({"type": "set_rewatch", "rewatch": false}))).await;
    await_answers(&mut host, &mut seen, 1).await;
    for path in paths(&with_token) {
        let (status, body) = get(&gateway, &path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("rewatching off"), "{body}");
    }
    let page = reqwest::get(format!("http://{}/r/{room}/rewatch", gateway.addr())).await.unwrap();
    assert_eq!(page.status(), 403);
    assert!(page.text().await.unwrap().contains("rewatch.js"), "the page says why");
    // A member may not turn it back on; the host may.
    let (_, state) = get(&gateway, &format!("/api/rooms/{room}")).await;
    assert_eq!(state["settings"]["rewatch"], false);
    let mut guest = connect(&gateway, &room, "name=guest").await;
    let mut guest_seen = welcome(&mut guest).await;
    send(&mut guest, command(json!({"type": "set_rewatch", "rewatch": true}))).await;
    await_answers(&mut guest, &mut guest_seen, 1).await;
    assert_eq!(guest_seen.acks.last().unwrap()["type"], "reject");
    send(&mut host, command(json!({"type": "set_rewatch", "rewatch": true}))).await;
    await_answers(&mut host, &mut seen, 1).await;
    for path in paths(&with_token) {
        assert_eq!(get(&gateway, &path).await.0, 200, "{path}");
    }
    let page = reqwest::get(format!("http://{}/r/{room}/rewatch", gateway.addr())).await.unwrap();
    assert_eq!(page.status(), 200);
    let missing = reqwest::get(format!("http://{}/r/no-such-room/rewatch", gateway.addr()));
    assert_eq!(missing.await.unwrap().status(), 404);
}

#[tokio::test]
async fn the_lobby_lists_the_public_rooms_that_ended_and_can_be_rewatched() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway =
        Chanshare::start("serve", &tests::chanshare::env(&nats, &redis, tests::chanshare::SECRET));
    let mut rooms = Vec::new();
    for (title, listed, rewatch) in
        [("public", true, true), ("unlisted", false, true), ("not rewatchable", true, false)]
    {
        let (room, token) =
            create(&gateway, json!({"title": title, "listed": listed, "source": urls()})).await;
        let mut host = connect(&gateway, &room, &format!("token={token}")).await;
        let mut seen = welcome(&mut host).await;
        if !rewatch {
            send(&mut host, command(json!({"type": "set_rewatch", "rewatch": false}))).await;
            await_answers(&mut host, &mut seen, 1).await;
        }
        send(&mut host, command(json!({"type": "close"}))).await;
        await_answers(&mut host, &mut seen, 1).await;
        rooms.push(room);
    }
    let (open, _) = create(&gateway, json!({"title": "still open", "source": urls()})).await;
    eventually(Duration::from_secs(10), "the ended room is listed", || async {
        let (_, page) = get(&gateway, "/api/rooms?closed=true").await;
        page["rooms"].as_array().is_some_and(|rooms| !rooms.is_empty())
    })
    .await;
    // The views of the others are written by then too (one projector, in order).
    let (status, page) = get(&gateway, "/api/rooms?closed=true&limit=10").await;
    assert_eq!(status, 200);
    let listed: Vec<_> =
        page["rooms"].as_array().unwrap().iter().map(|r| r["room_id"].clone()).collect();
    assert_eq!(listed, [json!(rooms[0])], "only the public, rewatchable, ended room");
    assert_eq!(page["next_cursor"], Value::Null);
    let (_, lobby) = get(&gateway, "/api/rooms").await;
    let open_rooms: Vec<_> =
        lobby["rooms"].as_array().unwrap().iter().map(|r| r["room_id"].clone()).collect();
    assert_eq!(open_rooms, [json!(open)]);
    assert_eq!(get(&gateway, "/api/rooms?closed=true&q=pub").await.0, 400);
    assert_eq!(get(&gateway, "/api/rooms?closed=maybe").await.0, 400);
}

/// A room's commits made by the real rules: created by `mhost`, then chat, `n` commits in all
/// after `state` (the empty room for a new one).
fn chat_commits(
    room: &events::RoomId,
    state: &mut events::RoomState,
    n: u64,
) -> Vec<events::Commit> {
    use events::{Actor, Command, CommandId, Commit, Ctx, MemberId, Settings, Source};
    let host = Actor::Member(MemberId::new("mhost").unwrap());
    (0..n)
        .map(|_| {
            let now_ms =
                u64::try_from(std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap().as_millis())
                    .unwrap();
            let command = if state.exists() {
                Command::Chat { text: format!("line {}", state.version) }
            } else {
                Command::CreateRoom {
                    title: "long gone".into(),
                    source: Source::Urls(vec!["https://example.com/a.webm".into()]),
                    settings: Settings::default(),
                    name: "host".into(),
                    items: vec![],
                    account: None,
                }
            };
            let events =
                events::decide(state, command, &Ctx::new(room.clone(), host.clone(), now_ms))
                    .unwrap();
            let commit = Commit {
                room: room.clone(),
                version: state.version + 1,
                command_id: CommandId(uuid::Uuid::new_v4()),
                actor: host.clone(),
                at_ms: now_ms,
                events,
            };
            *state = std::mem::take(state).apply(&commit);
            commit
        })
        .collect()
}

#[tokio::test]
async fn after_retention_the_rewatch_starts_at_the_first_checkpoint_past_the_gap() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let mut env = tests::chanshare::env(&nats, &redis, tests::chanshare::SECRET);
    env.extend([
        ("CHANSHARE_STREAM_MAX_AGE_SECS", "5".to_owned()),
        ("CHANSHARE_SNAPSHOT_INTERVAL_SECS", "1".to_owned()),
    ]);
    let gateway = Chanshare::start("serve", &env);
    let log = eventlog::EventLog::open(nats.client().await).await.unwrap();
    let room = events::RoomId::new("long-gone-room").unwrap();
    let mut state = events::RoomState::default();
    let mut seq = 0;
    for commit in chat_commits(&room, &mut state, 1_000) {
        seq = log.append(seq, &commit, None).await.unwrap().position.seq;
    }
    eventually(Duration::from_secs(20), "the snapshotter reaches the head", || async {
        log.snapshot(&room).await.unwrap().is_some_and(|s| s.state.version == 1_000)
    })
    .await;
    eventually(Duration::from_secs(30), "the room's commits expire", || async {
        log.head(&room).await.unwrap().is_none()
    })
    .await;
    let mut seq = 0;
    for commit in chat_commits(&room, &mut state, 20) {
        seq = log.append(seq, &commit, None).await.unwrap().position.seq;
    }

    let (status, rewatch) = get(&gateway, &format!("/api/rooms/{room}/rewatch")).await;
    assert_eq!(status, 200, "{rewatch}");
    assert_eq!(rewatch["timeline"]["start"]["version"], 1_000, "from the checkpoint past the gap");
    assert_eq!(rewatch["timeline"]["end"]["version"], 1_020);
    let (status, at) =
        get(&gateway, &format!("/api/rooms/{room}/rewatch/state?version=1010")).await;
    assert_eq!((status, at["version"].as_u64()), (200, Some(1_010)), "{at}");
    assert_eq!(at["chat"].as_array().unwrap().last().unwrap()["text"], "line 1009");
    let (status, gone) =
        get(&gateway, &format!("/api/rooms/{room}/rewatch/state?version=700")).await;
    assert_eq!(status, 410, "{gone}");
    assert_eq!(get(&gateway, &format!("/api/rooms/{room}/events?after=0")).await.0, 410);
}

async fn put_rewatch(gateway: &Chanshare, room: &str, token: Option<&str>, body: &str) -> u16 {
    let mut request = reqwest::Client::new()
        .put(format!("http://{}/api/rooms/{room}/rewatch", gateway.addr()))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_host_decides_on_rewatch_even_after_the_room_closed() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway =
        Chanshare::start("serve", &tests::chanshare::env(&nats, &redis, tests::chanshare::SECRET));
    let (room, host_token) = create(&gateway, json!({"title": "over", "source": urls()})).await;
    let mut host = connect(&gateway, &room, &format!("token={host_token}")).await;
    let mut seen = welcome(&mut host).await;
    let mut guest = connect(&gateway, &room, "name=guest").await;
    let guest_token = welcome(&mut guest).await.welcome["token"].as_str().unwrap().to_owned();
    send(&mut host, command(json!({"type": "close"}))).await;
    await_answers(&mut host, &mut seen, 1).await;

    let off = r#"{"rewatch": false}"#;
    assert_eq!(put_rewatch(&gateway, &room, None, off).await, 401);
    assert_eq!(put_rewatch(&gateway, &room, Some("forged.token.here"), off).await, 401);
    assert_eq!(put_rewatch(&gateway, &room, Some(&guest_token), off).await, 403);
    assert_eq!(put_rewatch(&gateway, &room, Some(&host_token), r#"{"rewatch": "no"}"#).await, 400);
    assert_eq!(put_rewatch(&gateway, "no-such-room", Some(&host_token), off).await, 404);
    let (_, before) = get(&gateway, &format!("/api/rooms/{room}/rewatch?token={host_token}")).await;
    assert_eq!(before["host"], true, "the page offers the host the switch");
    let (_, guest_view) =
        get(&gateway, &format!("/api/rooms/{room}/rewatch?token={guest_token}")).await;
    assert_eq!(guest_view["host"], false);

    eventually(Duration::from_secs(10), "the room is among the recently ended", || async {
        get(&gateway, "/api/rooms?closed=true").await.1["rooms"]
            .as_array()
            .is_some_and(|rooms| rooms.len() == 1)
    })
    .await;
    let (_, closed_list) = get(&gateway, "/api/rooms?closed=true").await;
    let ended_ms = closed_list["rooms"][0]["updated_ms"].as_u64().unwrap();
    let (_, timeline) = get(&gateway, &format!("/api/rooms/{room}/rewatch")).await;
    let end = timeline["timeline"]["end"].clone();
    assert_eq!(put_rewatch(&gateway, &room, Some(&host_token), off).await, 204);
    assert_eq!(get(&gateway, &format!("/api/rooms/{room}/rewatch")).await.0, 403);
    eventually(Duration::from_secs(10), "the room leaves the recently ended", || async {
        get(&gateway, "/api/rooms?closed=true").await.1["rooms"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(put_rewatch(&gateway, &room, Some(&host_token), r#"{"rewatch": true}"#).await, 204);
    assert_eq!(get(&gateway, &format!("/api/rooms/{room}/rewatch")).await.0, 200);
    // Changing it moves neither the session's end nor when the room ended.
    let (_, timeline) = get(&gateway, &format!("/api/rooms/{room}/rewatch")).await;
    assert_eq!(timeline["timeline"]["end"], end);
    assert_eq!(timeline["timeline"]["closed"], true);
    eventually(Duration::from_secs(10), "back among the recently ended", || async {
        get(&gateway, "/api/rooms?closed=true").await.1["rooms"]
            .as_array()
            .is_some_and(|rooms| rooms.len() == 1)
    })
    .await;
    let (_, closed_list) = get(&gateway, "/api/rooms?closed=true").await;
    assert_eq!(closed_list["rooms"][0]["updated_ms"].as_u64().unwrap(), ended_ms);
}
