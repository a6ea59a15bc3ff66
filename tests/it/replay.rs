//! `chanshare replay` against real servers: exact dumps, states, diffs, verification, and the
//! Parquet archive read back by DuckDB and pyarrow.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use eventlog::EventLog;
use events::{Actor, ChatMessage, CommandId, Commit, Event, MemberId, MessageId, RoomId};
use futures::StreamExt;
use serde_json::{Value, json};
use tests::chanshare::replay;
use tests::{Chanshare, NatsServer, RedisServer, S3Server};

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn lines(output: &Output) -> Vec<Value> {
    stdout(output).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Sends `body` to `room` as `actor` over NATS; it must be accepted.
pub(crate) async fn command(nats: &NatsServer, room: &str, actor: &str, body: Value) {
    let request = json!({"id": uuid::Uuid::new_v4().to_string(), "actor": actor, "command": body});
    let reply = nats
        .client()
        .await
        .request(format!("chanshare.cmd.{room}"), request.to_string().into())
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["status"], "accepted", "{reply}");
}

#[tokio::test]
async fn dumps_states_diffs_and_verification() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let env = vec![("CHANSHARE_NATS_URL", nats.url()), ("CHANSHARE_REDIS_URL", redis.url())];
    let serve = Chanshare::start("serve", &env);
    let created = reqwest::Client::new()
        .post(format!("http://{}/api/rooms", serve.addr()))
        .header("content-type", "application/json")
        .body(r#"{"title": "replayed", "source": {"urls": ["https://example.com/a.webm", "https://example.com/b.webm"]}}"#)
        .send()
        .await
        .unwrap();
    let created: Value = serde_json::from_slice(&created.bytes().await.unwrap()).unwrap();
    let room = created["room_id"].as_str().unwrap().to_owned();
    let host = created["member_id"].as_str().unwrap().to_owned();
    for text in ["one", "two", "three"] {
        command(&nats, &room, &host, json!({"type": "chat", "text": text})).await;
    }
    command(&nats, &room, &host, json!({"type": "play"})).await;

    // events: exactly the log's commits, in order.
    let (log, _) = EventLog::connect(nats.client().await, 1).await.unwrap();
    let room_id = RoomId::new(&room).unwrap();
    let stored: Vec<_> = log.read(&room_id, 0).await.unwrap().map(|c| c.unwrap()).collect().await;
    let expected: Vec<Value> = stored
        .iter()
        .map(|s| {
            let mut value = serde_json::to_value(&s.commit).unwrap();
            value["seq"] = json!(s.seq);
            value
        })
        .collect();
    assert_eq!(lines(&replay(&env, &["events", &room])), expected);
    assert_eq!(
        lines(&replay(&env, &["events", &room, "--from", "2", "--to", "3"])),
        expected[1..3]
    );
    let pretty = stdout(&replay(&env, &["events", &room, "--format", "pretty"]));
    assert!(
        pretty.lines().nth(1).unwrap().starts_with(&format!("v2 seq {} ", stored[1].seq)),
        "{pretty}"
    );
    assert!(pretty.contains("chat_posted"), "{pretty}");

    // state: now, it is what the gateway serves; at a version, the fold up to it.
    let now = lines(&replay(&env, &["state", &room])).remove(0);
    let api: Value = serde_json::from_slice(
        &reqwest::get(format!("http://{}/api/rooms/{room}", serve.addr()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(now, api);
    let at_two = lines(&replay(&env, &["state", &room, "--at", "2"])).remove(0);
    assert_eq!(at_two["version"], 2);
    assert_eq!(at_two["chat"].as_array().unwrap().len(), 1);
    let time = ::replay::format_time(stored[2].commit.at_ms);
    let at_time = lines(&replay(&env, &["state", &room, "--at-time", &time])).remove(0);
    assert!(at_time["version"].as_u64().unwrap() >= 3);

    // diff: what a chat changes.
    let diff = lines(&replay(&env, &["diff", &room, "--from", "2", "--to", "3"]));
    assert!(
        diff.iter()
            .any(|d| d["path"] == "/chat/1" && d["from"].is_null() && d["to"]["text"] == "two"),
        "{diff:?}"
    );
    assert!(diff.iter().any(|d| d["path"] == "/version"), "{diff:?}");

    // rooms: the room with its commits.
    let rooms = lines(&replay(&env, &["rooms", "--json"]));
    assert_eq!(rooms[0]["room"], room.as_str());
    assert_eq!(
        (rooms[0]["commits"].as_u64(), rooms[0]["closed"].as_bool()),
        (Some(5), Some(false))
    );

    // Clear errors: a missing room, an unreachable server.
    let missing = replay(&env, &["events", "no-such-room"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("has no commits"));
    let started = Instant::now();
    let unreachable =
        replay(&[("CHANSHARE_NATS_URL", "nats://127.0.0.1:1".to_owned())], &["rooms"]);
    assert!(!unreachable.status.success());
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        String::from_utf8_lossy(&unreachable.stderr).contains("nats"),
        "{}",
        String::from_utf8_lossy(&unreachable.stderr)
    );

    // verify: healthy views pass; a corrupted view is reported with a non-zero exit; rebuild heals it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !replay(&env, &["verify"]).status.success() {
        assert!(Instant::now() < deadline, "views never converged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut conn =
        redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    redis::cmd("HSET")
        .arg(format!("chanshare:view:{room}"))
        .arg("view")
        .arg("{}")
        .arg("version")
        .arg(2)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let drifted = replay(&env, &["verify", "--json"]);
    assert!(!drifted.status.success());
    let report = String::from_utf8_lossy(&drifted.stdout).to_string();
    assert!(report.contains(&room), "{report}");
    assert!(stdout(&replay(&env, &["rebuild"])).contains("rebuilt 1 rooms from 5 commits"));
    assert!(replay(&env, &["verify"]).status.success());
}

/// `replay` is a CLI: its output is its answer, without the connection's INFO lines, unless
/// `-v` (before or after `replay`) or `RUST_LOG` asks for them.
#[tokio::test]
async fn replay_is_quiet_unless_asked() {
    let nats = NatsServer::start();
    let (log, _) = EventLog::connect(nats.client().await, 1).await.unwrap();
    let room = RoomId::new("quiet-room").unwrap();
    fill(&log, std::slice::from_ref(&room), 1, 1).await;
    let run = |args: &[&str], rust_log: Option<&str>| {
        let mut command = Command::new(tests::chanshare::binary());
        command.args(args).env("CHANSHARE_NATS_URL", nats.url()).env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.contains("quiet-room"), "{args:?} answers: {stdout}");
        format!("{stdout}{}", String::from_utf8_lossy(&output.stderr))
    };
    let info = |output: &str| output.lines().filter(|l| l.contains("INFO")).count();

    let quiet = run(&["replay", "rooms", "--json"], None);
    assert_eq!(info(&quiet), 0, "{quiet}");
    assert_eq!(quiet.lines().count(), 1, "only the answer: {quiet}");
    for args in [
        &["replay", "-v", "rooms", "--json"][..],
        &["-v", "replay", "rooms", "--json"],
        &["replay", "rooms", "--json", "--verbose"],
    ] {
        let loud = run(args, None);
        assert!(info(&loud) > 0, "{args:?} logs at info: {loud}");
    }
    let asked = run(&["replay", "rooms", "--json"], Some("info"));
    assert!(info(&asked) > 0, "RUST_LOG=info: {asked}");
}

fn chat_commit(room: &RoomId, version: u64, events: usize, at_ms: u64) -> Commit {
    let member = MemberId::new("marchivist").unwrap();
    let events = (0..events)
        .map(|n| Event::ChatPosted {
            message: ChatMessage {
                id: MessageId::nth(version * 1000 + n as u64),
                member_id: member.clone(),
                text: format!("event {n} of v{version}"),
                at_ms,
            },
        })
        .collect();
    Commit {
        room: room.clone(),
        version,
        command_id: CommandId(uuid::Uuid::new_v4()),
        actor: Actor::Member(member),
        at_ms,
        events,
    }
}

/// Appends `commits` commits of `events` events each to each room, after what is there.
async fn fill(log: &EventLog, rooms: &[RoomId], commits: u64, events: usize) {
    for room in rooms {
        let mut head = log.head(room).await.unwrap();
        for _ in 0..commits {
            let (seq, version) = head.map_or((0, 0), |h| (h.seq, h.version));
            let at = 1_795_000_000_000 + version * 60_000_000; // spans several days
            let appended =
                log.append(seq, &chat_commit(room, version + 1, events, at), None).await.unwrap();
            head = Some(appended.position);
        }
    }
}

/// The Python with DuckDB and pyarrow that `./dev/test` installs.
fn python() -> std::path::PathBuf {
    std::env::var_os("CHANSHARE_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache/chanshare"))
        })
        .unwrap()
        .join("venv/bin/python")
}

/// Every `event` of a Parquet archive, read back by DuckDB, one per line.
fn read_events(root: &std::path::Path) -> String {
    let python = python();
    let script = "import duckdb, sys\n\
        for (event,) in duckdb.sql(f\"select event from read_parquet('{sys.argv[1]}/**/*.parquet')\").fetchall():\n    print(event)";
    let output =
        Command::new(python).arg("-c").arg(script).arg(root).output().expect("python with duckdb");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn read_archive(root: &std::path::Path) -> Value {
    let python = python();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("archive/read.py");
    let output = Command::new(python)
        .arg(script)
        .arg(root)
        .output()
        .expect("python with duckdb and pyarrow (./dev/test installs them)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// 100 000 events exported to a directory and to S3 read back by DuckDB and pyarrow; a second
/// export after 100 more commits adds exactly their rows.
#[tokio::test]
async fn the_parquet_archive_is_complete_and_incremental() {
    let (nats, s3) = (NatsServer::start(), S3Server::start("archive"));
    let (log, _) = EventLog::connect(nats.client().await, 1).await.unwrap();
    let rooms: Vec<RoomId> =
        (0..4).map(|n| RoomId::new(format!("archive-room-{n}")).unwrap()).collect();
    fill(&log, &rooms, 250, 100).await; // 4 × 250 commits × 100 events
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("CHANSHARE_NATS_URL", nats.url()),
        ("CHANSHARE_S3_ENDPOINT", s3.endpoint()),
        ("AWS_ACCESS_KEY_ID", S3Server::ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", S3Server::SECRET_KEY.to_owned()),
    ];
    let targets = [dir.path().display().to_string(), "s3://archive/events".to_owned()];
    let roots = [dir.path().to_path_buf(), s3.root().join("archive/events")];
    for target in &targets {
        let report = lines(&replay(&env, &["export", "--to", target, "--json"])).remove(0);
        assert_eq!(
            (report["rows"].as_u64(), report["commits"].as_u64()),
            (Some(100_000), Some(1000)),
            "{target}"
        );
    }
    for root in &roots {
        let seen = read_archive(root);
        assert_eq!(
            (seen["duckdb_rows"].as_u64(), seen["pyarrow_rows"].as_u64()),
            (Some(100_000), Some(100_000)),
            "{root:?}"
        );
        let max: BTreeMap<String, u64> =
            serde_json::from_value(seen["max_version"].clone()).unwrap();
        assert_eq!(max, rooms.iter().map(|r| (r.to_string(), 250)).collect::<BTreeMap<_, _>>());
        for column in [
            "room_id",
            "version",
            "stream_seq",
            "at",
            "actor",
            "command_id",
            "event_type",
            "event",
            "date",
        ] {
            assert!(
                seen["columns"].as_array().unwrap().iter().any(|c| c == column),
                "{column}: {seen}"
            );
        }
    }
    // An unchanged log exports nothing; 100 more commits export exactly their rows.
    assert_eq!(
        lines(&replay(&env, &["export", "--to", &targets[0], "--json"])).remove(0)["rows"],
        0
    );
    fill(&log, &rooms[..1], 100, 1).await;
    for (target, root) in targets.iter().zip(&roots) {
        let report = lines(&replay(&env, &["export", "--to", target, "--json"])).remove(0);
        assert_eq!(
            (report["rows"].as_u64(), report["commits"].as_u64()),
            (Some(100), Some(100)),
            "{target}"
        );
        let seen = read_archive(root);
        assert_eq!(seen["duckdb_rows"], 100_100);
        assert_eq!(seen["max_version"]["archive-room-0"], 350);
    }
    // NDJSON too, with the same rows.
    let ndjson = tempfile::tempdir().unwrap();
    let report = lines(&replay(
        &env,
        &["export", "--to", &ndjson.path().display().to_string(), "--format", "ndjson", "--json"],
    ))
    .remove(0);
    assert_eq!(report["rows"], 100_100);
}

/// A deleted chat message stays deleted where people read the history: `/events`, `replay
/// events` (JSON and pretty) and the archive show its posting with no text and `"deleted":
/// true`; the log keeps the posting. An unlisted room's history is for its members.
#[tokio::test]
async fn deleted_chat_is_redacted_in_every_history_and_unlisted_history_needs_a_token() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let serve = Chanshare::serve(&nats, &redis, &[]);
    let env = tests::chanshare::env(&nats, &redis, tests::chanshare::SECRET);
    let created = tests::chanshare::create_room(
        &serve.addr(),
        &json!({"title": "redacted", "source": {"urls": ["https://example.com/a.webm"]}}),
    );
    let room = created["room_id"].as_str().unwrap().to_owned();
    let host = created["member_id"].as_str().unwrap().to_owned();
    let token = created["host_token"].as_str().unwrap().to_owned();
    for text in ["kept words", "secret words", "more words"] {
        command(&nats, &room, &host, json!({"type": "chat", "text": text})).await;
    }
    command(&nats, &room, &host, json!({"type": "delete_chat", "message_id": "c2"})).await;

    // The log keeps the posting.
    let (log, _) = EventLog::connect(nats.client().await, 1).await.unwrap();
    let room_id = RoomId::new(&room).unwrap();
    let stored: Vec<_> = log.read(&room_id, 0).await.unwrap().map(|c| c.unwrap()).collect().await;
    let texts = |commits: &[eventlog::Stored]| -> Vec<String> {
        commits
            .iter()
            .flat_map(|s| &s.commit.events)
            .filter_map(|e| match e {
                Event::ChatPosted { message } => Some(message.text.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(texts(&stored), ["kept words", "secret words", "more words"]);

    // /events.
    let (status, body) = tests::http::get(&serve.addr(), &format!("/api/rooms/{room}/events"));
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("secret"), "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let messages: Vec<Value> = page["commits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["events"].as_array().unwrap().clone())
        .filter(|e| e["type"] == "chat_posted")
        .map(|e| e["message"].clone())
        .collect();
    assert_eq!(messages[0]["text"], "kept words");
    assert_eq!(
        (&messages[1]["id"], &messages[1]["text"], &messages[1]["deleted"]),
        (&json!("c2"), &json!(""), &json!(true))
    );
    assert_eq!(messages[2]["text"], "more words");

    // replay events, both forms.
    for format in ["json", "pretty"] {
        let out = stdout(&replay(&env, &["events", &room, "--format", format]));
        assert!(!out.contains("secret") && out.contains("more words"), "{format}: {out}");
    }
    // The archive.
    let archive = tempfile::tempdir().unwrap();
    let to = archive.path().to_str().unwrap();
    stdout(&replay(&env, &["export", "--to", to, "--format", "ndjson"]));
    let mut exported = String::new();
    for day in std::fs::read_dir(archive.path()).unwrap() {
        let day = day.unwrap().path();
        if day.is_dir() {
            for file in std::fs::read_dir(day).unwrap() {
                exported.push_str(&std::fs::read_to_string(file.unwrap().path()).unwrap());
            }
        }
    }
    assert!(exported.contains("more words") && !exported.contains("secret"), "{exported}");
    assert!(exported.contains(r#""deleted":true"#), "{exported}");

    // A message archived, then deleted: the next export rewrites the file that holds it.
    command(&nats, &room, &host, json!({"type": "chat", "text": "soon gone"})).await;
    let (ndjson, parquet) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let export = |dir: &tempfile::TempDir, format: &str| {
        let to = dir.path().to_str().unwrap().to_owned();
        let output = replay(&env, &["export", "--to", &to, "--format", format, "--json"]);
        serde_json::from_str::<Value>(&stdout(&output)).unwrap()
    };
    export(&ndjson, "ndjson");
    export(&parquet, "parquet");
    command(&nats, &room, &host, json!({"type": "delete_chat", "message_id": "c4"})).await;
    for (dir, format) in [(&ndjson, "ndjson"), (&parquet, "parquet")] {
        let report = export(dir, format);
        assert_eq!(
            (&report["redacted"], &report["unredacted"]),
            (&json!(1), &json!(0)),
            "{format}: {report}"
        );
    }
    let mut rows = String::new();
    for day in std::fs::read_dir(ndjson.path()).unwrap() {
        let day = day.unwrap().path();
        if day.is_dir() {
            for file in std::fs::read_dir(day).unwrap() {
                rows.push_str(&std::fs::read_to_string(file.unwrap().path()).unwrap());
            }
        }
    }
    assert!(!rows.contains("soon gone") && rows.contains("more words"), "{rows}");
    let parquet_rows = read_events(parquet.path());
    assert!(
        !parquet_rows.contains("soon gone") && parquet_rows.contains("more words"),
        "{parquet_rows}"
    );

    // Unlisted: members only.
    command(&nats, &room, &host, json!({"type": "set_listed", "listed": false})).await;
    let path = format!("/api/rooms/{room}/events");
    assert_eq!(tests::http::get(&serve.addr(), &path).0, 403);
    assert_eq!(tests::http::get(&serve.addr(), &format!("{path}?token={token}")).0, 200);
    let bearer = reqwest::Client::new()
        .get(format!("http://{}{path}", serve.addr()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let other = tests::chanshare::create_room(
        &serve.addr(),
        &json!({"title": "other", "source": {"urls": ["https://example.com/a.webm"]}}),
    );
    let foreign = other["host_token"].as_str().unwrap();
    assert_eq!(tests::http::get(&serve.addr(), &format!("{path}?token={foreign}")).0, 403);
}
