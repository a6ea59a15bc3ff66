//! Projectors against real NATS and Redis: views equal the fold of the log, whatever happens.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use eventlog::{EventLog, subjects};
use events::RoomId;
use futures::StreamExt;
use projectors::Projector;
use serde_json::{Value, json};
use tests::{Chanshare, NatsServer, RedisServer};
use tokio::sync::oneshot;
use views::{Loaded, Projection, Views};

use crate::workload::Workload;

async fn views(redis: &RedisServer) -> Views {
    Views::new(redis::Client::open(redis.url()).unwrap().get_connection_manager().await.unwrap())
}

async fn log(nats: &NatsServer) -> EventLog {
    EventLog::connect(nats.client().await, 1).await.unwrap().0
}

/// An in-process projector replica.
struct Replica {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Replica {
    async fn start(nats: &NatsServer, redis: &RedisServer) -> Replica {
        let client = nats.client().await;
        let metrics = projectors::Metrics::new(&prometheus::Registry::new()).unwrap();
        let projector = Projector::new(client, log(nats).await, views(redis).await, metrics)
            .await
            .unwrap()
            .with_watchdog_interval(Duration::from_millis(500));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            projector
                .run(async {
                    stopped.await.ok();
                })
                .await
                .unwrap();
        });
        Replica { stop, task }
    }

    async fn stop(self) {
        self.stop.send(()).ok();
        self.task.await.unwrap();
    }
}

/// The fold of one room's log, as the projectors fold it.
async fn fold(log: &EventLog, room: &RoomId) -> Projection {
    let mut projection = Projection::default();
    let mut commits = log.read(room, 0).await.unwrap();
    while let Some(stored) = commits.next().await {
        let stored = stored.unwrap();
        projection.apply(&stored.commit, stored.seq);
    }
    projection
}

/// Rooms whose view differs from the fold of their log (empty: converged).
async fn drift(log: &EventLog, views: &Views, rooms: &[RoomId]) -> Vec<String> {
    let mut drift = Vec::new();
    for room in rooms {
        let expected = fold(log, room).await;
        match views.load(room).await.unwrap() {
            Loaded::At(actual) if *actual == expected => {
                let snapshot = views.stored_state(room).await.unwrap().unwrap();
                let view = serde_json::to_string(&expected.state.view()).unwrap();
                if snapshot.state_json != view || snapshot.version != expected.state.version {
                    drift.push(format!("{room}: snapshot json differs"));
                }
            }
            Loaded::At(actual) => drift.push(format!(
                "{room}: view at {} vs log at {}",
                actual.state.version, expected.state.version
            )),
            other => drift.push(format!("{room}: {other:?}")),
        }
    }
    drift
}

async fn converge(log: &EventLog, views: &Views, rooms: &[RoomId], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let drift = drift(log, views, rooms).await;
        if drift.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "views did not converge within {within:?}: {:?}",
            &drift[..drift.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ids(workload: &Workload) -> Vec<RoomId> {
    workload.rooms.iter().map(|r| r.id.clone()).collect()
}

/// 10 000 random commits over 100 rooms, two replicas: every view is the fold of its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_commits_over_a_hundred_rooms_with_two_replicas() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let (log, views) = (log(&nats).await, views(&redis).await);
    let a = Replica::start(&nats, &redis).await;
    let b = Replica::start(&nats, &redis).await;
    let mut workload = Workload::new("busy", 100, 7);
    workload.run(&log, 10_000).await;
    converge(&log, &views, &ids(&workload), Duration::from_secs(60)).await;
    // The lobby lists exactly the listed open rooms, most recent first.
    let lobby = views.lobby(1000).await.unwrap();
    let listed = workload
        .rooms
        .iter()
        .filter(|r| r.state.settings.listed && r.state.closed.is_none())
        .count();
    assert_eq!(lobby.len(), listed);
    assert!(lobby.windows(2).all(|w| w[0].updated_ms >= w[1].updated_ms));
    a.stop().await;
    b.stop().await;
}

/// A replica dies (SIGKILL) mid-run, and separately Redis is flushed mid-run: both times the
/// views converge to the fold within 10 s of the fault, with no manual step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_heal_after_a_replica_dies_and_after_flushall() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let (log, views) = (log(&nats).await, views(&redis).await);
    let env = [("CHANSHARE_NATS_URL", nats.url()), ("CHANSHARE_REDIS_URL", redis.url())];
    let killed = Chanshare::start("projectors", &env);
    let survivor = Replica::start(&nats, &redis).await;
    let mut workload = Workload::new("heal", 30, 11);
    workload.run(&log, 1500).await;
    drop(killed); // SIGKILL, with commits delivered to it and not yet acknowledged
    workload.run(&log, 500).await;
    converge(&log, &views, &ids(&workload), Duration::from_secs(10)).await;

    workload.run(&log, 500).await;
    let mut conn =
        redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    redis::cmd("FLUSHALL").query_async::<()>(&mut conn).await.unwrap();
    workload.run(&log, 500).await;
    converge(&log, &views, &ids(&workload), Duration::from_secs(10)).await;
    survivor.stop().await;
}

/// A poison commit parks its room and is dead-lettered; every other room keeps up.
#[tokio::test]
async fn a_poison_commit_parks_its_room_only() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let (log, views) = (log(&nats).await, views(&redis).await);
    let client = nats.client().await;
    let mut deadletters = client.subscribe(protocol::subjects::DEADLETTER).await.unwrap();
    client.flush().await.unwrap();
    let replica = Replica::start(&nats, &redis).await;
    let mut workload = Workload::new("poison", 5, 3);
    workload.run(&log, 100).await;

    // The victim room takes no more writes: its head is now unreadable to writers too.
    let victim = workload.rooms.remove(0).id;
    // Only eventlog writes room events; this test forges a corrupt one on purpose.
    #[allow(clippy::disallowed_methods)]
    let poison = async_nats::jetstream::new(client.clone())
        .publish(subjects::room(&victim), vec![1, 255, 255, 255].into())
        .await
        .unwrap()
        .await
        .unwrap();
    workload.run(&log, 200).await;

    let message =
        tokio::time::timeout(Duration::from_secs(10), deadletters.next()).await.unwrap().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(report["room"], victim.as_str());
    assert_eq!(report["seq"], poison.sequence);
    let status = views.status(&victim).await.unwrap().expect("the room is parked");
    assert!(status.contains(&poison.sequence.to_string()), "{status}");
    converge(&log, &views, &ids(&workload), Duration::from_secs(20)).await;
    replica.stop().await;
}

/// A commit that arrives while its predecessors are not yet in the view (another replica has
/// them) brings the view to it at once: the gap is read from the log and written over the older
/// view, in one write, even when the log ends at that commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_after_a_gap_is_applied_at_once() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let (log, views) = (log(&nats).await, views(&redis).await);
    let mut workload = Workload::new("gap", 1, 7);
    workload.run(&log, 3).await;
    projectors::rebuild(&log, &views, false, |_| {}).await.unwrap();
    let room = workload.rooms[0].id.clone();
    workload.run(&log, 2).await;
    let last = log.read(&room, 0).await.unwrap().collect::<Vec<_>>().await.pop().unwrap().unwrap();
    let from = match views.load(&room).await.unwrap() {
        Loaded::At(projection) => projection.state.version,
        other => panic!("{other:?}"),
    };
    assert_eq!(last.commit.version, from + 2, "one commit missing between the view and this one");

    let applied = projectors::apply::apply(&log, &views, &room, &last).await.unwrap();
    assert_eq!(applied, projectors::Applied::Applied);
    assert_eq!(drift(&log, &views, &[room]).await, Vec::<String>::new());
}

/// Issue 22: the projector applies what one fetch brought of a room together. A run of commits
/// lands in one fold; a batch with a hole, or one that starts behind the view, still lands at
/// its last version; a batch the view already has is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_a_rooms_commits_is_applied_together() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let (log, views) = (log(&nats).await, views(&redis).await);
    // (A rebuild of the empty log marks the views' epoch, as a projector's start does.)
    projectors::rebuild(&log, &views, false, |_| {}).await.unwrap();
    let mut workload = Workload::new("batch", 1, 11);
    workload.run(&log, 30).await;
    let room = workload.rooms[0].id.clone();
    let commits: Vec<_> =
        log.read(&room, 0).await.unwrap().map(|c| c.unwrap()).collect::<Vec<_>>().await;
    assert!(commits.len() >= 30);
    let version = |views: &Views| {
        let views = views.clone();
        let room = room.clone();
        async move {
            match views.load(&room).await.unwrap() {
                Loaded::At(projection) => projection.state.version,
                other => panic!("{other:?}"),
            }
        }
    };
    let apply = |batch: Vec<eventlog::Stored>| {
        let (log, views, room) = (&log, &views, &room);
        async move { projectors::apply::apply_all(log, views, room, &batch).await.unwrap() }
    };
    // From nothing, the first ten in one batch; then the next ten, exactly there.
    assert_eq!(apply(commits[..10].to_vec()).await, projectors::Applied::Applied);
    assert_eq!(version(&views).await, 10);
    assert_eq!(apply(commits[10..20].to_vec()).await, projectors::Applied::Applied);
    assert_eq!(version(&views).await, 20);
    // Already there.
    assert_eq!(apply(commits[10..15].to_vec()).await, projectors::Applied::Duplicate);
    assert_eq!(apply(Vec::new()).await, projectors::Applied::Duplicate);
    // Overlapping what the view has, with a hole (22 is missing): the log fills it, to its head.
    let holed: Vec<_> =
        commits[15..25].iter().filter(|c| c.commit.version != 22).cloned().collect();
    assert_eq!(apply(holed).await, projectors::Applied::Applied);
    assert_eq!(version(&views).await, commits.len() as u64);
    // The view is the log's fold, as if applied one by one.
    assert_eq!(drift(&log, &views, std::slice::from_ref(&room)).await, Vec::<String>::new());
}

/// A full rebuild from scratch writes exactly what the incremental projection wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_rebuild_is_byte_identical_to_incremental_views() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let (log, views) = (log(&nats).await, views(&redis).await);
    let replica = Replica::start(&nats, &redis).await;
    let mut workload = Workload::new("rebuild", 40, 5);
    workload.run(&log, 2000).await;
    converge(&log, &views, &ids(&workload), Duration::from_secs(30)).await;
    replica.stop().await;

    let before = dump(&redis).await;
    let mut reports = 0;
    let rebuilt = projectors::rebuild(&log, &views, true, |_| reports += 1).await.unwrap();
    assert_eq!(rebuilt.commits, 2000);
    assert_eq!(rebuilt.rooms, 40);
    assert!(reports > 0, "progress was reported");
    let after = dump(&redis).await;
    assert_eq!(before.len(), after.len());
    for (key, value) in &before {
        assert_eq!(after.get(key), Some(value), "{key} differs after the rebuild");
    }
}

/// Every view key's content, as raw bytes.
async fn dump(redis: &RedisServer) -> BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>> {
    let mut conn =
        redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg("chanshare:*").query_async(&mut conn).await.unwrap();
    let mut dump = BTreeMap::new();
    for key in keys.into_iter().filter(|k| !k.ends_with(":rebuilding")) {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
        let mut content: Vec<(Vec<u8>, Vec<u8>)> = match kind.as_str() {
            "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await.unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .unwrap(),
            _ => {
                let value: Vec<u8> =
                    redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
                vec![(Vec::new(), value)]
            }
        };
        content.sort();
        dump.insert(key, content);
    }
    dump
}

/// The lobby pages by position, not offset: rooms active in the same millisecond are ordered by
/// id and each is listed once; a search that matches little stops after `LOBBY_SCAN` rooms and
/// goes on with the next page.
#[tokio::test]
async fn lobby_pages_through_ties_and_bounds_a_search() {
    let redis = RedisServer::start();
    let views = views(&redis).await;
    let mut conn =
        redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    // 2100 rooms, ten in each millisecond; only the oldest is about cats.
    let rooms = 2100u64;
    let mut pipe = redis::pipe();
    for n in 0..rooms {
        let (room, at) = (format!("room-{n:04}"), 1_000 + n / 10);
        let title = if n == 0 { "Cat videos".to_owned() } else { format!("room {n}") };
        let entry = serde_json::json!({"room_id": room, "title": title, "members": 1, "online": 1,
            "now_playing": null, "thumb_url": null, "updated_ms": at, "version": 1});
        pipe.hset(format!("chanshare:view:{room}"), "lobby", entry.to_string()).ignore();
        pipe.zadd("chanshare:lobby", &room, at).ignore();
    }
    pipe.query_async::<()>(&mut conn).await.unwrap();
    // The order: newest first, ties by id, descending (as ZREVRANGE has it).
    let mut expected: Vec<(u64, String)> =
        (0..rooms).map(|n| (1_000 + n / 10, format!("room-{n:04}"))).collect();
    expected.sort_by(|a, b| b.cmp(a));
    let expected: Vec<String> = expected.into_iter().map(|(_, room)| room).collect();

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        // 7 does not divide 10: pages end inside a millisecond.
        let page = views.lobby_page(cursor.as_ref(), 7, None).await.unwrap();
        pages += 1;
        assert!(page.rooms.len() == 7 || page.next.is_none(), "only the last page is short");
        seen.extend(page.rooms.into_iter().map(|r| r.room_id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 2100usize.div_ceil(7));
    assert_eq!(seen, expected, "every room once, in order");
    assert_eq!(views.lobby(5).await.unwrap().len(), 5);

    // The cat room is the 2100th: the first page looks at 2000 rooms, finds none, and says where
    // to go on; the next finds it, case-insensitively.
    let first = views.lobby_page(None, 50, Some("CAT")).await.unwrap();
    assert!(first.rooms.is_empty());
    let next = first.next.expect("a search that stopped early has a next page");
    assert_eq!(next.room, expected[views::LOBBY_SCAN - 1]);
    let second = views.lobby_page(Some(&next), 50, Some("cAt")).await.unwrap();
    let titles: Vec<_> = second.rooms.iter().map(|r| r.title.as_str()).collect();
    assert_eq!((titles, second.next), (vec!["Cat videos"], None));
    // A search that matches many pages like a plain listing.
    let page = views.lobby_page(None, 3, Some("room 20")).await.unwrap();
    let titles: Vec<_> = page.rooms.iter().map(|r| r.title.as_str()).collect();
    assert_eq!(titles, ["room 2099", "room 2098", "room 2097"]);
    assert!(page.next.is_some());
}

/// Redis memory of `redis` in use (bytes, `INFO memory`).
async fn redis_memory(redis: &mut redis::aio::ConnectionManager) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query_async(redis).await.unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// Redis does not grow forever (issue 18, item 3): 2 000 rooms are created, used and closed; once
/// their views' time is up Redis holds about what it held before, and every room is still
/// readable, folded from its snapshot and the log, through the API and `replay`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_rooms_leave_redis_and_stay_readable() {
    const ROOMS: usize = 2000;
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let server = Chanshare::serve(
        &nats,
        &redis,
        &[
            ("CHANSHARE_CLOSED_VIEW_TTL_SECS", "2".to_owned()),
            ("CHANSHARE_CREATIONS_PER_MINUTE", "1000000".to_owned()),
            ("CHANSHARE_REAP_INTERVAL_MS", "500".to_owned()),
        ],
    );
    let addr = server.addr();
    let mut conn =
        redis::Client::open(redis.url()).unwrap().get_connection_manager().await.unwrap();
    // One room made and closed first, so that what every room leaves behind for good (scripts,
    // the projectors' bookkeeping) is in the baseline.
    let create = |n: usize| {
        let addr = addr.clone();
        async move {
            let body = json!({"title": format!("room {n}"), "source": {"urls": ["https://example.com/a.webm"]}});
            let created =
                tokio::task::spawn_blocking(move || tests::chanshare::create_room(&addr, &body))
                    .await
                    .unwrap();
            (
                created["room_id"].as_str().unwrap().to_owned(),
                created["member_id"].as_str().unwrap().to_owned(),
            )
        }
    };
    let use_and_close = |room: String, host: String| {
        let nats = &nats;
        async move {
            crate::replay::command(nats, &room, &host, json!({"type": "chat", "text": "hello"}))
                .await;
            crate::replay::command(nats, &room, &host, json!({"type": "close"})).await;
        }
    };
    let (room, host) = create(0).await;
    use_and_close(room, host).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = redis_memory(&mut conn).await;

    let rooms: Vec<(String, String)> =
        futures::stream::iter(1..=ROOMS).map(create).buffer_unordered(16).collect().await;
    let grown = redis_memory(&mut conn).await;
    futures::stream::iter(rooms.iter().cloned())
        .map(|(room, host)| use_and_close(room, host))
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let views_left = |mut conn: redis::aio::ConnectionManager| async move {
        let keys: Vec<String> =
            redis::cmd("KEYS").arg("chanshare:view:*").query_async(&mut conn).await.unwrap();
        keys.len()
    };
    tests::eventually(
        Duration::from_secs(60),
        "no views left, and redis back within 10 % of where it started",
        || {
            let mut conn = conn.clone();
            async move {
                views_left(conn.clone()).await == 0
                    && redis_memory(&mut conn).await <= before + before / 10
            }
        },
    )
    .await;
    let after = redis_memory(&mut conn).await;
    assert!(grown > before + before / 10, "the rooms took memory at first: {before} -> {grown}");

    // Every room, through the API (folded from its snapshot and the log).
    let client = reqwest::Client::new();
    let states: Vec<(u16, Value)> = futures::stream::iter(rooms.iter())
        .map(|(room, _)| {
            let client = client.clone();
            let url = format!("http://{addr}/api/rooms/{room}");
            async move {
                let response = client.get(url).send().await.unwrap();
                let status = response.status().as_u16();
                (status, serde_json::from_slice(&response.bytes().await.unwrap()).unwrap())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (status, state) in &states {
        assert_eq!(*status, 200, "{state}");
        assert_eq!(state["closed"], true, "{state}");
        assert_eq!(state["chat"][0]["text"], "hello", "{state}");
    }
    // And through replay: every room listed closed, the log and the (remaining) views agree, and
    // a sample folds.
    let env = tests::chanshare::env(&nats, &redis, tests::chanshare::SECRET);
    let listed = tests::chanshare::replay(&env, &["rooms", "--json"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let listed = String::from_utf8_lossy(&listed.stdout);
    for (room, _) in &rooms {
        assert!(listed.contains(room.as_str()), "{room} not in replay rooms");
    }
    let verify = tests::chanshare::replay(&env, &["verify"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    for (room, _) in rooms.iter().step_by(ROOMS / 10) {
        let state = tests::chanshare::replay(&env, &["state", room]);
        assert!(state.status.success(), "{}", String::from_utf8_lossy(&state.stderr));
    }
    assert!(
        after <= before + before / 10,
        "{before} before, {grown} with {ROOMS} rooms, {after} after"
    );
}
