//! The production topology on one machine (`./dev/cluster`): a smoke test, the NATS permissions,
//! and replicas of each role killed under load.

use std::process::Command;
use std::time::{Duration, Instant};

use eventlog::EventLog;
use futures::StreamExt;
use serde_json::{Value, json};
use tests::DevCluster;

use crate::failover::{Load, assert_exactly_once, save_report, worst_pause};
use crate::ws::{Seen, await_answers, command, connect_to, read_until, send, start, welcome};

async fn stored(cluster: &DevCluster, room: &str) -> Vec<eventlog::Stored> {
    let log = EventLog::open(cluster.client_as("replay").await).await.unwrap();
    let room = events::RoomId::new(room).unwrap();
    log.read(&room, 0).await.unwrap().map(|c| c.unwrap()).collect().await
}

/// `./dev/cluster up`, then a room with its host on one gateway and a guest on the other: playback
/// commands and chat reach both, in the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_cluster_smoke_test() {
    let cluster = DevCluster::up();
    let (room, host_token) = tests::chanshare::create_url_room(&cluster.gateway(1), "cluster");
    let mut host = connect_to(&cluster.gateway(1), &room, &format!("token={host_token}")).await;
    let mut host_seen = welcome(&mut host).await;
    let mut guest = connect_to(&cluster.gateway(2), &room, "name=guest").await;
    let mut guest_seen = welcome(&mut guest).await;
    for body in [
        json!({"type": "play"}),
        json!({"type": "seek", "position_ms": 42_000}),
        json!({"type": "pause"}),
        json!({"type": "next"}),
        json!({"type": "chat", "text": "hello from gateway 1"}),
    ] {
        send(&mut host, command(body)).await;
        await_answers(&mut host, &mut host_seen, 1).await;
    }
    assert!(host_seen.acks.iter().all(|a| a["type"] == "ack"), "{:?}", host_seen.acks);
    let head = host_seen.acks.iter().map(|a| a["version"].as_u64().unwrap()).max().unwrap();
    read_until(&mut guest, &mut guest_seen, head).await;
    let events: Vec<&Value> =
        guest_seen.commits.values().flat_map(|c| c["events"].as_array().unwrap().iter()).collect();
    let causes: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "playback_changed")
        .filter_map(|e| e["cause"].as_str())
        .collect();
    assert_eq!(causes, ["play", "seek", "pause", "next"], "the guest saw the host's playback");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "chat_posted" && e["message"]["text"] == "hello from gateway 1"),
        "{events:?}"
    );
    // Both gateways serve the room at its head (the projectors catch up within seconds).
    for n in [1, 2] {
        let url = format!("http://{}/api/rooms/{room}", cluster.gateway(n));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
            let state: Value = serde_json::from_str(&body).unwrap();
            if state["version"].as_u64() == Some(head) {
                assert_eq!(state["playback"]["playing"], false, "{state}");
                break;
            }
            assert!(Instant::now() < deadline, "gateway {n} never served version {head}: {state}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The production accounts: only the commands role may publish to room subjects; the gateway
/// user may ask commands and read the log, nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_permissions_keep_room_subjects_to_the_commands_role() {
    let cluster = DevCluster::up();
    let (room, _) = tests::chanshare::create_url_room(&cluster.gateway(1), "cluster");
    for user in ["gateway", "projectors", "content", "replay"] {
        let js = async_nats::jetstream::new(cluster.client_as(user).await);
        // Forged appends and snapshots on purpose: the bypasses the permissions must stop.
        for subject in [format!("chanshare.room.{room}"), format!("chanshare.snapshot.{room}")] {
            #[allow(clippy::disallowed_methods)]
            let published = tokio::time::timeout(Duration::from_secs(3), async {
                js.publish(subject.clone(), "forged".into()).await?.await
            })
            .await;
            assert!(!matches!(published, Ok(Ok(_))), "{user} could write {subject}: {published:?}");
        }
    }
    // Nothing forged reached the log; the room still folds.
    let commits = stored(&cluster, &room).await;
    assert_eq!(commits.len(), 1, "only RoomCreated");
    // Deleting a commit is refused by the stream itself, even for the commands user.
    let js = async_nats::jetstream::new(cluster.client_as("admin").await);
    let stream = js.get_stream(eventlog::subjects::STREAM).await.unwrap();
    assert!(stream.delete_message(commits[0].seq).await.is_err(), "deny_delete");
}

/// Commands flow at ~200/s from clients that retry with the same command id; one commands replica
/// and one projector replica are killed (SIGKILL). No acknowledged commit is lost or stored twice,
/// writes resume, and the views converge on the log (`chanshare replay verify`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_commands_and_a_projector_replica_loses_nothing() {
    let cluster = DevCluster::up();
    let client = cluster.client_as("gateway").await;
    let (room, _) = tests::chanshare::create_url_room(&cluster.gateway(1), "cluster");
    let host = host_of(&cluster, &room).await;

    let load = Load::start(&client, &room, &host, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = Instant::now();
    cluster.kill("commands-1");
    cluster.kill("projectors-1");
    let accepted = load.finish().await;
    assert!(accepted.len() > 300, "{} commands accepted", accepted.len());
    let worst = worst_pause(&accepted, killed_at);
    save_report(
        "failover-replicas.txt",
        &format!(
            "commands-1 and projectors-1 killed (SIGKILL): writes paused at most {worst:?}; {} commands acknowledged",
            accepted.len()
        ),
    );
    assert!(worst < Duration::from_secs(5), "writes resumed after {worst:?}");

    assert_exactly_once(&stored(&cluster, &room).await, &accepted);

    // The surviving projector brings every view to the log.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let verify = Command::new(tests::chanshare::binary())
            .args(["replay", "verify"])
            .env("CHANSHARE_NATS_URL", cluster.nats_urls_as("replay"))
            .env("CHANSHARE_REDIS_URL", cluster.redis_url())
            .output()
            .unwrap();
        if verify.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "views never converged: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The member id of the room's host (its creator), from the first commit.
async fn host_of(cluster: &DevCluster, room: &str) -> String {
    let commits = stored(cluster, room).await;
    let created = serde_json::to_value(&commits[0].commit).unwrap();
    created["actor"].as_str().unwrap().to_owned()
}

/// A gateway is killed while its clients watch a busy room: they resume on the other gateway
/// from the last version they saw, with no gap and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_gateway_resume_on_the_other_with_no_gap() {
    let cluster = DevCluster::up();
    let (room, host_token) = tests::chanshare::create_url_room(&cluster.gateway(2), "cluster");
    let mut host = connect_to(&cluster.gateway(2), &room, &format!("token={host_token}")).await;
    let mut host_seen = welcome(&mut host).await;
    let mut movers = Vec::new();
    for n in 0..5 {
        let mut ws = connect_to(&cluster.gateway(1), &room, &format!("name=mover{n}")).await;
        let seen = welcome(&mut ws).await;
        movers.push((ws, seen));
    }
    for k in 0..20 {
        send(&mut host, command(json!({"type": "chat", "text": format!("a{k}")}))).await;
    }
    await_answers(&mut host, &mut host_seen, 20).await;
    for (ws, seen) in &mut movers {
        let target = start(seen) + 10;
        read_until(ws, seen, target).await;
    }
    cluster.kill("gateway-1");
    for k in 0..20 {
        send(&mut host, command(json!({"type": "chat", "text": format!("b{k}")}))).await;
    }
    await_answers(&mut host, &mut host_seen, 20).await;
    let head = stored(&cluster, &room).await.len() as u64;
    for (_, seen) in movers {
        let at = seen.order.last().copied().unwrap();
        let token = seen.welcome["token"].as_str().unwrap();
        let epoch = seen.welcome["epoch"].as_str().unwrap();
        let mut moved = connect_to(
            &cluster.gateway(2),
            &room,
            &format!("token={token}&resume={at}&epoch={epoch}"),
        )
        .await;
        let mut moved_seen: Seen = welcome(&mut moved).await;
        assert_eq!(moved_seen.welcome["recovered"], true);
        moved_seen.snapshot = Some(json!({"version": at}));
        read_until(&mut moved, &mut moved_seen, head).await;
        assert_eq!(moved_seen.order, (at + 1..=head).collect::<Vec<_>>(), "no gap, no duplicate");
    }
}
