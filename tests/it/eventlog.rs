//! `eventlog` against a real nats-server.

use std::collections::BTreeSet;
use std::time::Duration;

use eventlog::{EventLog, LogError, Position, Stored, StreamChange, subjects};
use events::{Actor, CommandId, Commit, Event, MemberId, RoomId};
use futures::StreamExt;
use tests::NatsServer;

fn room(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

fn commit(room: &RoomId, version: u64, command_id: CommandId) -> Commit {
    Commit {
        room: room.clone(),
        version,
        command_id,
        actor: Actor::Member(MemberId::new("mtester").unwrap()),
        at_ms: 1_700_000_000_000 + version,
        events: vec![Event::ListedChanged { listed: version.is_multiple_of(2) }],
    }
}

fn new_id() -> CommandId {
    CommandId(uuid::Uuid::new_v4())
}

async fn log(server: &NatsServer) -> EventLog {
    EventLog::connect(server.client().await, 1).await.unwrap().0
}

/// Appends `n` commits to `room` one after another; returns their positions.
async fn append_n(log: &EventLog, room: &RoomId, n: u64) -> Vec<Position> {
    let mut head = log.head(room).await.unwrap();
    let mut positions = Vec::new();
    for _ in 0..n {
        let (seq, version) = head.map_or((0, 0), |h| (h.seq, h.version));
        let appended = log.append(seq, &commit(room, version + 1, new_id()), None).await.unwrap();
        assert!(!appended.duplicate);
        head = Some(appended.position);
        positions.push(appended.position);
    }
    positions
}

async fn collect(commits: eventlog::Commits) -> Vec<Stored> {
    commits.map(|c| c.unwrap()).collect().await
}

fn versions(commits: &[Stored]) -> Vec<u64> {
    commits.iter().map(|s| s.commit.version).collect()
}

#[tokio::test]
async fn the_stream_definition_applied_twice_is_a_no_op() {
    let server = NatsServer::start();
    let client = server.client().await;
    let (_, first) = EventLog::connect(client.clone(), 1).await.unwrap();
    let (_, second) = EventLog::connect(client.clone(), 1).await.unwrap();
    assert_eq!((first, second), (StreamChange::Created, StreamChange::Unchanged));

    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js.get_stream(subjects::STREAM).await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.subjects, vec!["chanshare.room.*".to_owned()]);
    assert!(config.allow_direct && config.deny_delete && config.deny_purge);
    assert!(config.duplicate_window >= Duration::from_secs(120));
    let republish = config.republish.clone().unwrap();
    assert_eq!(republish.destination, "chanshare.live.{{wildcard(1)}}");

    // Drift (someone edited the stream by hand) is corrected to the definition.
    js.update_stream(async_nats::jetstream::stream::Config {
        description: Some("edited".into()),
        ..config
    })
    .await
    .unwrap();
    let (_, third) = EventLog::connect(client.clone(), 1).await.unwrap();
    assert_eq!(third, StreamChange::Updated);
    let (_, fourth) = EventLog::connect(client, 1).await.unwrap();
    assert_eq!(fourth, StreamChange::Unchanged);
}

#[tokio::test]
async fn an_incompatible_stream_is_refused_with_a_clear_error() {
    let server = NatsServer::start();
    let client = server.client().await;
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: subjects::STREAM.into(),
        subjects: vec!["chanshare.room.*".into()],
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let error = EventLog::connect(client, 1).await.unwrap_err();
    assert!(matches!(error, LogError::IncompatibleStream { .. }), "{error}");
}

#[tokio::test]
async fn head_of_an_empty_room_and_after_appends() {
    let server = NatsServer::start();
    let log = log(&server).await;
    let r = room("head-room");
    assert_eq!(log.head(&r).await.unwrap(), None);
    let positions = append_n(&log, &r, 3).await;
    append_n(&log, &room("other-room"), 2).await;
    assert_eq!(log.head(&r).await.unwrap(), Some(positions[2]));
    assert_eq!(positions.iter().map(|p| p.version).collect::<Vec<_>>(), [1, 2, 3]);
}

#[tokio::test]
async fn two_writers_conflict_and_the_loser_learns_the_head() {
    let server = NatsServer::start();
    let log = log(&server).await;
    let r = room("race-room");
    let winner = log.append(0, &commit(&r, 1, new_id()), None).await.unwrap();
    let loser = log.append(0, &commit(&r, 1, new_id()), None).await.unwrap_err();
    match loser {
        LogError::Conflict { current } => assert_eq!(current, Some(winner.position)),
        other => panic!("expected a conflict, got {other}"),
    }
    let stored = collect(log.read(&r, 0).await.unwrap()).await;
    assert_eq!(versions(&stored), [1]);
}

#[tokio::test]
async fn a_retried_command_is_stored_once() {
    let server = NatsServer::start();
    let log = log(&server).await;
    let r = room("retry-room");
    let id = new_id();
    let first = log.append(0, &commit(&r, 1, id), None).await.unwrap();
    // The same append again (a retry after a lost ack): JetStream checks the expected sequence
    // before the dedupe id, so this reports a conflict (DESIGN §2)...
    assert!(matches!(
        log.append(0, &commit(&r, 1, id), None).await,
        Err(LogError::Conflict { .. })
    ));
    // ...and a retry decided again on top of the new head is recognised as a duplicate, which
    // reports where the original landed.
    let again = log.append(first.position.seq, &commit(&r, 2, id), None).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.position, first.position);
    // The same command id in another room is another command (dedupe ids include the room).
    let elsewhere = log.append(0, &commit(&room("retry-other"), 1, id), None).await.unwrap();
    assert!(!elsewhere.duplicate);
    assert_eq!(versions(&collect(log.read(&r, 0).await.unwrap()).await), [1]);
}

/// A new subscription is not seen by JetStream's republish at once, even after the server
/// acknowledged it (measured: on a loaded 2-core machine a commit stored right after the
/// subscribe was sometimes not republished to it). Appends warm-up commits until one arrives
/// live, and returns the head. Gateways deal with the same window by checking the head
/// shortly after subscribing (docs/decisions/0003-live-subscriptions-settle.md).
async fn settle(log: &EventLog, r: &RoomId, live: &mut async_nats::Subscriber) -> Position {
    let mut head: Option<Position> = None;
    for _ in 0..20 {
        let (seq, version) = head.map_or((0, 0), |h| (h.seq, h.version));
        let appended = log.append(seq, &commit(r, version + 1, new_id()), None).await.unwrap();
        head = Some(appended.position);
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(500), live.next()).await
        {
            if EventLog::decode_live(&message).unwrap().position() == appended.position {
                return appended.position;
            }
        }
    }
    panic!("the live subscription never received a commit");
}

#[tokio::test]
async fn the_live_subject_carries_only_stored_commits() {
    let server = NatsServer::start();
    let client = server.client().await;
    let log = log(&server).await;
    let r = room("live-room");
    let mut live = client.subscribe(subjects::live(&r)).await.unwrap();
    let mut raw = client.subscribe(subjects::room(&r)).await.unwrap();
    client.flush().await.unwrap();
    let settled = settle(&log, &r, &mut live).await;
    while tokio::time::timeout(Duration::from_millis(100), raw.next()).await.is_ok() {}

    let id = new_id();
    let v = settled.version;
    let first = log.append(settled.seq, &commit(&r, v + 1, id), None).await.unwrap();
    log.append(settled.seq, &commit(&r, v + 1, new_id()), None).await.unwrap_err(); // conflict
    log.append(first.position.seq, &commit(&r, v + 2, id), None).await.unwrap(); // duplicate
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let second = log
        .append(first.position.seq, &commit(&r, v + 2, new_id()), Some(traceparent))
        .await
        .unwrap();

    let mut seen = Vec::new();
    for _ in 0..2 {
        let message =
            tokio::time::timeout(Duration::from_secs(5), live.next()).await.unwrap().unwrap();
        seen.push(EventLog::decode_live(&message).unwrap());
    }
    assert_eq!(
        seen.iter().map(Stored::position).collect::<Vec<_>>(),
        [first.position, second.position]
    );
    assert_eq!(seen[1].prev_seq, first.position.seq);
    assert_eq!(seen[1].traceparent.as_deref(), Some(traceparent));
    // Nothing else arrives on the live subject...
    assert!(tokio::time::timeout(Duration::from_millis(300), live.next()).await.is_err());
    // ...while the stream subject also carried publishes JetStream refused: the trap that
    // DESIGN §2 routes gateways around.
    let mut raw_count = 0;
    while tokio::time::timeout(Duration::from_millis(300), raw.next()).await.is_ok() {
        raw_count += 1;
    }
    assert!(raw_count > 2, "the raw subject also carried refused publishes: saw {raw_count}");
}

#[tokio::test]
async fn read_after_a_version_by_walk_and_by_consumer() {
    let server = NatsServer::start();
    let log = log(&server).await;
    let r = room("read-room");
    let other = room("noise-room");
    for _ in 0..10 {
        append_n(&log, &r, 10).await;
        append_n(&log, &other, 1).await;
    }
    for after in [0, 5, 35, 36, 90, 99, 100, 150] {
        let stored = collect(log.read(&r, after).await.unwrap()).await;
        let expected: Vec<u64> = (after + 1..=100).collect();
        assert_eq!(versions(&stored), expected, "read after {after}");
        assert!(stored.iter().all(|s| s.commit.room == r));
        for pair in stored.windows(2) {
            assert_eq!(pair[1].prev_seq, pair[0].seq, "back-links chain the room's commits");
        }
    }
    assert!(collect(log.read(&room("empty-room"), 0).await.unwrap()).await.is_empty());
}

/// A read far behind the head starts at the stream sequence of the first commit it returns
/// (found by bisection), not at sequence 1: with other rooms' commits in between and at both
/// ends, for every `after`.
#[tokio::test]
async fn a_read_far_behind_starts_at_the_right_stream_sequence() {
    let server = NatsServer::start();
    let log = log(&server).await;
    let r = room("far-room");
    let other = room("busy-room");
    append_n(&log, &other, 7).await;
    let mut positions = Vec::new();
    for n in 0..30 {
        positions.extend(append_n(&log, &r, 1 + n % 4).await);
        append_n(&log, &other, 3).await;
    }
    let head = *positions.last().unwrap();
    for after in [0, 1, 2, 17, 40, 41, head.version - 1] {
        // The first sequence whose next commit of the room is version after + 1: just after
        // the room's commit `after` (or the stream's start).
        let floor = if after == 0 { 1 } else { positions[after as usize - 1].seq + 1 };
        assert_eq!(log.start_seq(&r, after, head).await, floor, "after {after}");
        let stored = collect(log.read(&r, after).await.unwrap()).await;
        assert_eq!(versions(&stored), (after + 1..=head.version).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn follow_reads_then_stays_live() {
    let server = NatsServer::start();
    let log = log(&server).await;
    let r = room("follow-room");
    append_n(&log, &r, 5).await;
    let mut follow = log.follow(&r, 3).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(follow.next().await.unwrap().unwrap().commit.version);
    }
    append_n(&log, &room("follow-noise"), 1).await;
    append_n(&log, &r, 2).await;
    for _ in 0..2 {
        let next = tokio::time::timeout(Duration::from_secs(5), follow.next()).await.unwrap();
        got.push(next.unwrap().unwrap().commit.version);
    }
    assert_eq!(got, [4, 5, 6, 7]);

    // Following an empty room from the start sees its first commit.
    let fresh = room("follow-fresh");
    let mut follow = log.follow(&fresh, 0).await.unwrap();
    append_n(&log, &fresh, 1).await;
    let first = tokio::time::timeout(Duration::from_secs(5), follow.next()).await.unwrap();
    assert_eq!(first.unwrap().unwrap().commit.version, 1);
}

#[tokio::test]
async fn read_all_covers_every_room_in_stream_order() {
    let server = NatsServer::start();
    let log = log(&server).await;
    append_n(&log, &room("all-a"), 3).await;
    append_n(&log, &room("all-b"), 2).await;
    let all = collect(log.read_all(1).await.unwrap()).await;
    assert_eq!(all.iter().map(|s| s.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    let tail = collect(log.read_all(4).await.unwrap()).await;
    assert_eq!(tail.iter().map(|s| s.commit.room.as_str()).collect::<Vec<_>>(), ["all-b", "all-b"]);
    assert!(collect(log.read_all(6).await.unwrap()).await.is_empty());
    assert_eq!(log.last_seq().await.unwrap(), 5);
}

#[tokio::test]
async fn a_corrupt_commit_reads_as_a_decode_error_with_its_sequence() {
    let server = NatsServer::start();
    let client = server.client().await;
    let log = log(&server).await;
    let r = room("poison-room");
    append_n(&log, &r, 1).await;
    // Only eventlog writes room events; this test forges a poison message on purpose.
    #[allow(clippy::disallowed_methods)]
    let ack = async_nats::jetstream::new(client)
        .publish_with_headers(
            subjects::room(&r),
            {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Chanshare-Version", "2");
                headers
            },
            vec![7, 1, 2, 3].into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let items: Vec<_> = log.read(&r, 0).await.unwrap().collect().await;
    assert!(items[0].is_ok());
    match &items[1] {
        Err(LogError::Decode { seq, .. }) => assert_eq!(*seq, ack.sequence),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

/// 4 writers × 500 commands on one room, each appending with retry: versions 1..=2000 with no
/// gap, every command exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_keep_versions_contiguous() {
    let server = NatsServer::start();
    let log = log(&server).await;
    let r = room("busy-room");
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (log, r) = (log.clone(), r.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let mut conflicts = 0;
                for _ in 0..500 {
                    let id = new_id();
                    let mut head = log.head(&r).await.unwrap();
                    loop {
                        let (seq, version) = head.map_or((0, 0), |h| (h.seq, h.version));
                        match log.append(seq, &commit(&r, version + 1, id), None).await {
                            Ok(appended) => {
                                assert!(!appended.duplicate);
                                break;
                            }
                            Err(LogError::Conflict { current }) => {
                                conflicts += 1;
                                head = current;
                            }
                            Err(other) => panic!("append failed: {other}"),
                        }
                    }
                    ids.push(id);
                }
                (ids, conflicts)
            })
        })
        .collect();
    let mut expected = BTreeSet::new();
    for writer in writers {
        let (ids, _conflicts) = writer.await.unwrap();
        expected.extend(ids);
    }
    let stored = collect(log.read(&r, 0).await.unwrap()).await;
    assert_eq!(versions(&stored), (1..=2000).collect::<Vec<_>>());
    let ids: BTreeSet<_> = stored.iter().map(|s| s.commit.command_id).collect();
    assert_eq!(ids.len(), 2000, "every command once");
    assert_eq!(ids, expected);
}

/// Retention: commits leave the stream after `max_age`; snapshots keep rooms readable, never go
/// backwards, and readers behind an expired stretch are told so instead of folding a gap.
#[tokio::test]
async fn snapshots_cover_expired_commits() {
    let server = NatsServer::start();
    let settings =
        eventlog::StreamSettings { replicas: 1, max_age: Duration::from_secs(1), max_bytes: None };
    let (log, _) = EventLog::connect(server.client().await, settings).await.unwrap();
    let r = room("rexpiring");
    assert!(log.is_free(&r).await.unwrap());
    assert_eq!(log.refresh_snapshot(&r).await.unwrap(), None, "no commits: nothing to save");
    append_n(&log, &r, 3).await;
    assert_eq!(log.refresh_snapshot(&r).await.unwrap(), Some(3));
    assert_eq!(log.refresh_snapshot(&r).await.unwrap(), None, "already at the head");
    let three = log.snapshot(&r).await.unwrap().unwrap();
    append_n(&log, &r, 2).await;
    // A cold reader starts from the snapshot; a warm one reads on from its own version.
    let cold = log.catch_up(&r, 0).await.unwrap();
    assert_eq!(cold.snapshot.as_ref().map(|s| s.state.version), Some(3));
    assert_eq!(versions(&collect(cold.commits).await), [4, 5]);
    let warm = log.catch_up(&r, 4).await.unwrap();
    assert!(warm.snapshot.is_none());
    assert_eq!(versions(&collect(warm.commits).await), [5]);

    // Everything expires: only the snapshot at 3 is left, so 4 and 5 are lost to readers, who
    // are told (nothing folds a gap).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while log.head(&r).await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "commits never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after_expiry = log.catch_up(&r, 0).await.unwrap();
    assert_eq!(after_expiry.snapshot.unwrap().state.version, 3);
    assert!(after_expiry.head.is_none(), "the next append expects an empty subject");
    assert!(collect(after_expiry.commits).await.is_empty());
    assert!(!log.is_free(&r).await.unwrap(), "the id stays taken: room creation must not reuse it");
    assert_eq!(log.fold_while(&r, |_, _| true).await.unwrap(), three.state);
    assert!(matches!(
        log.fold_while(&r, |version, _| version <= 2).await,
        Err(LogError::Expired { after: 0 })
    ));

    // The room goes on from the snapshot; a reader at 3 misses nothing, one at 1 is told.
    let appended = log.append(0, &commit(&r, 4, new_id()), None).await.unwrap();
    assert_eq!(appended.position.version, 4);
    assert_eq!(versions(&collect(log.read(&r, 3).await.unwrap()).await), [4]);
    assert!(matches!(log.read(&r, 1).await.err(), Some(LogError::Expired { after: 1 })));
    assert_eq!(log.refresh_snapshot(&r).await.unwrap(), Some(4));
    assert_eq!(log.rooms().await.unwrap(), std::slice::from_ref(&r));
    assert_eq!(log.snapshot_rooms().await.unwrap(), [r]);
}

/// A snapshot this version cannot read (another version's, or damaged) is not trusted: readers
/// fold from the log, the id stays taken, and the next refresh replaces it.
#[tokio::test]
async fn an_unreadable_snapshot_is_replaced() {
    let server = NatsServer::start();
    let log = log(&server).await;
    let r = room("rdamaged");
    append_n(&log, &r, 3).await;
    let js = async_nats::jetstream::new(server.client().await);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(subjects::headers::VERSION, "2");
    headers.insert(subjects::headers::ROOM_SEQUENCE, "2");
    // A forged snapshot on purpose: what a damaged or foreign one looks like.
    #[allow(clippy::disallowed_methods)]
    js.publish_with_headers(subjects::snapshot(&r), headers, "not a room".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(log.snapshot(&r).await.unwrap(), None);
    let cold = log.catch_up(&r, 0).await.unwrap();
    assert!(cold.snapshot.is_none());
    assert_eq!(versions(&collect(cold.commits).await), [1, 2, 3], "folded from the log");
    assert_eq!(log.fold_while(&r, |_, _| true).await.unwrap().version, 3);
    assert!(!log.is_free(&r).await.unwrap());
    assert_eq!(log.refresh_snapshot(&r).await.unwrap(), Some(3));
    assert_eq!(log.snapshot(&r).await.unwrap().unwrap().state.version, 3);
}

/// The room stream's consumer count.
async fn consumers(server: &NatsServer) -> usize {
    let js = async_nats::jetstream::new(server.client().await);
    let mut stream = js.get_stream(subjects::STREAM).await.unwrap();
    stream.info().await.unwrap().state.consumer_count
}

/// Waits until the stream has no consumer, for less than a consumer's inactivity threshold.
async fn no_consumer_left(server: &NatsServer, what: &str) {
    tests::eventually(Duration::from_secs(10), what, || async { consumers(server).await == 0 })
        .await;
}

/// A read long enough to need a consumer deletes it when it ends, and when its reader drops it
/// half-way (a socket that closed during its catch-up), instead of leaving it on the server for
/// its inactivity threshold: before, every far-behind read left one for 30 s, and a soak of
/// reconnecting members held a thousand.
#[tokio::test]
async fn a_read_leaves_no_consumer_behind() {
    let server = NatsServer::start();
    let log = log(&server).await;
    let r = room("consumer-room");
    append_n(&log, &r, 200).await;

    let whole = collect(log.read(&r, 0).await.unwrap()).await;
    assert_eq!(whole.len(), 200);
    no_consumer_left(&server, "the whole read's consumer is deleted").await;

    let mut part = log.read(&r, 10).await.unwrap();
    assert_eq!(part.next().await.unwrap().unwrap().commit.version, 11);
    assert_eq!(consumers(&server).await, 1, "the read is still open");
    drop(part);
    no_consumer_left(&server, "the dropped read's consumer is deleted").await;

    let mut follow = log.follow(&r, 0).await.unwrap();
    assert_eq!(follow.next().await.unwrap().unwrap().commit.version, 1);
    drop(follow);
    no_consumer_left(&server, "the dropped follow's consumer is deleted").await;
}

/// The fold of `room`'s commits 1 to `upto` as [`commit`] makes them.
fn folded(room: &RoomId, upto: u64) -> events::RoomState {
    (1..=upto)
        .fold(events::RoomState::default(), |state, v| state.apply(&commit(room, v, new_id())))
}

#[tokio::test]
async fn checkpoints_keep_a_fold_every_500_versions_and_outlive_the_commits() {
    let server = NatsServer::start();
    let settings =
        eventlog::StreamSettings { replicas: 1, max_age: Duration::from_secs(5), max_bytes: None };
    let log = EventLog::connect(server.client().await, settings).await.unwrap().0;
    let room = room("checkpointed");
    append_n(&log, &room, 1_000).await;
    assert_eq!(log.refresh_snapshot(&room).await.unwrap(), Some(1_000));
    let versions: Vec<_> = futures::future::join_all((1..=3).map(|n| log.checkpoint(&room, n)))
        .await
        .into_iter()
        .map(|c| c.unwrap().map(|c| c.state.version))
        .collect();
    assert_eq!(versions, [Some(500), Some(1_000), None]);

    // A fold to a point starts from the checkpoint before it and equals the fold from commit 1.
    let at_700 = log.fold_while(&room, |v, _| v <= 700).await.unwrap();
    assert_eq!(at_700, folded(&room, 700));
    let by_time = log.fold_while(&room, |_, at| at <= 1_700_000_000_000 + 499).await.unwrap();
    assert_eq!(by_time.version, 499);
    assert_eq!(log.replay_start(&room).await.unwrap().version, 0, "all of it is replayable");

    // The commits expire; the checkpoints stay, and a replay starts from the last one.
    tests::eventually(Duration::from_secs(30), "the room's commits expire", || async {
        log.head(&room).await.unwrap().is_none()
    })
    .await;
    let mut seq = 0;
    for version in 1_001..=1_020 {
        seq = log.append(seq, &commit(&room, version, new_id()), None).await.unwrap().position.seq;
    }
    let start = log.replay_start(&room).await.unwrap();
    assert_eq!(start.version, 1_000);
    assert_eq!(start, folded(&room, 1_000));
    let after_gap = log.fold_while(&room, |v, _| v <= 1_010).await.unwrap();
    assert_eq!(after_gap, folded(&room, 1_010), "folded from the checkpoint past the gap");
    assert!(matches!(log.fold_while(&room, |v, _| v <= 700).await, Err(LogError::Expired { .. })));
    // A refresh across a checkpoint that exists already leaves it as it was.
    assert_eq!(log.refresh_snapshot(&room).await.unwrap(), Some(1_020));
    assert_eq!(log.checkpoint(&room, 2).await.unwrap().unwrap().state, folded(&room, 1_000));
}

#[tokio::test]
async fn a_room_older_than_checkpoints_finds_the_ones_it_has() {
    let server = NatsServer::start();
    let settings =
        eventlog::StreamSettings { replicas: 1, max_age: Duration::from_secs(5), max_bytes: None };
    let client = server.client().await;
    let log = EventLog::connect(client.clone(), settings).await.unwrap().0;
    let room = room("older-than-checkpoints");
    let positions = append_n(&log, &room, 1_000).await;
    // Its snapshot, as a version without checkpoints saved it: none below version 1 000.
    let js = async_nats::jetstream::new(client);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(subjects::headers::VERSION, "1000");
    headers.insert(subjects::headers::ROOM_SEQUENCE, positions[999].seq.to_string().as_str());
    let payload = serde_json::to_vec(&folded(&room, 1_000)).unwrap();
    // The test plays an older version's snapshotter.
    #[allow(clippy::disallowed_methods)]
    js.publish_with_headers(subjects::snapshot(&room), headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
    tests::eventually(Duration::from_secs(30), "the room's commits expire", || async {
        log.head(&room).await.unwrap().is_none()
    })
    .await;
    let mut seq = 0;
    for version in 1_001..=2_100 {
        seq = log.append(seq, &commit(&room, version, new_id()), None).await.unwrap().position.seq;
    }
    assert_eq!(log.refresh_snapshot(&room).await.unwrap(), Some(2_100));
    assert!(log.checkpoint(&room, 2).await.unwrap().is_none(), "none before its snapshot");
    // A fold below the first checkpoint it has starts there; a replay starts at it.
    let at_1700 = log.fold_while(&room, |v, _| v <= 1_700).await.unwrap();
    assert_eq!(at_1700, folded(&room, 1_700));
    assert_eq!(log.replay_start(&room).await.unwrap().version, 1_500);
}
