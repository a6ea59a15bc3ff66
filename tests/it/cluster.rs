//! The production topology on one machine (`./dev/cluster`): a smoke test, the NATS permissions
//! (also on one server with the production accounts), and replicas of each role killed under load.

use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull;
use eventlog::EventLog;
use futures::StreamExt;
use serde_json::{Value, json};
use tests::{DevCluster, NatsServer};
use tokio::sync::mpsc;

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
    smoke(&DevCluster::up()).await;
}

/// The smoke test's body, for a cluster of binaries or of containers (`image.rs`).
pub(crate) async fn smoke(cluster: &DevCluster) {
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

    // Accounts under the production permissions: signed up on one gateway, signed in and
    // refreshed on the other, a room joined signed in, listed by `replay accounts`.
    let http = reqwest::Client::new();
    let post = async |gateway: u16, path: &str, body: Value| {
        let url = format!("http://{}{path}", cluster.gateway(gateway));
        let request = http.post(url).header("content-type", "application/json");
        let response = request.body(body.to_string()).send().await.unwrap();
        let status = response.status().as_u16();
        (status, serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null))
    };
    let credentials = json!({"username": "clusterfan", "password": "a long enough password"});
    assert_eq!(post(1, "/api/accounts", credentials.clone()).await.0, 201);
    let (status, session) = post(2, "/api/sessions", credentials).await;
    assert_eq!(status, 200, "{session}");
    let (status, session) =
        post(1, "/api/sessions/refresh", json!({"refresh_token": session["refresh_token"]})).await;
    assert_eq!(status, 200, "{session}");
    let access = session["access_token"].as_str().unwrap();
    let mut fan = connect_to(&cluster.gateway(2), &room, &format!("access_token={access}")).await;
    let fan_seen = welcome(&mut fan).await;
    assert!(fan_seen.welcome["member_id"].is_string(), "{}", fan_seen.welcome);
    let listed = Command::new(tests::chanshare::binary())
        .args(["replay", "accounts", "--json"])
        .env("CHANSHARE_NATS_URL", cluster.nats_urls_as("replay"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{out}{}", String::from_utf8_lossy(&listed.stderr));
    let line: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!((&line["username"], &line["sessions_active"]), (&json!("clusterfan"), &json!(1)));

    // Direct messages under the production permissions: the account socket follows its inbox
    // (a message to nobody is refused as such), and signing out on the other gateway closes it.
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("ws://{}/api/me/ws?access_token={access}", cluster.gateway(1));
    let mut dms = tokio_tungstenite::connect_async(url).await.unwrap().0;
    for frame in [
        json!({"type": "dm_sync", "id": "sync", "since": {}}),
        json!({"type": "dm", "id": uuid::Uuid::new_v4().to_string(), "to": "nobody_here", "text": "hi"}),
    ] {
        dms.send(Message::Text(frame.to_string().into())).await.unwrap();
    }
    let mut answers = Vec::new();
    while answers.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), dms.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                answers.push(serde_json::from_str::<Value>(&text).unwrap());
            }
            other => panic!("the account socket answered {other:?} after {answers:?}"),
        }
    }
    assert_eq!((&answers[0]["type"], &answers[0]["id"]), (&json!("ack"), &json!("sync")));
    assert_eq!(
        (&answers[1]["type"], &answers[1]["code"]),
        (&json!("reject"), &json!("unknown_user"))
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // the revocation watches settle
    let url = format!("http://{}/api/sessions", cluster.gateway(2));
    let signed_out = http.delete(url).bearer_auth(access).send().await.unwrap();
    assert_eq!(signed_out.status().as_u16(), 204);
    let closed = crate::ws::close_code(&mut dms).await;
    assert_eq!(closed, Some(4401));
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

/// The NATS users of the roles (accounts.conf); `admin` may do anything.
const ROLE_USERS: [&str; 5] = ["commands", "gateway", "projectors", "content", "replay"];

/// A client of `user`, and the errors the server sends it (permission violations).
async fn watched(
    nats: &NatsServer,
    user: &str,
) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (errors, received) = mpsc::unbounded_channel();
    let client = nats
        .options_as(user)
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let async_nats::Event::ServerError(error) = event {
                    errors.send(error.to_string()).ok();
                }
            }
        })
        .connect(nats.url())
        .await
        .unwrap();
    (client, received)
}

/// Each role's user reads replies only under its own inbox prefix (`_INBOX_GATEWAY`, ...): the
/// answers to a gateway's room creations (host tokens) reach the gateway, and no other role's user
/// may subscribe to its inbox, to NATS' default `_INBOX.>` or to any other role's inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_users_read_only_their_own_inbox() {
    let nats = NatsServer::secured();
    // A stand-in for the commands role answers room creations with a host token.
    let commands = nats.client_as("commands").await;
    let mut creations = commands.subscribe("chanshare.rooms.create").await.unwrap();
    commands.flush().await.unwrap();
    let responder = commands.clone();
    tokio::spawn(async move {
        while let Some(request) = creations.next().await {
            if let Some(reply) = request.reply {
                responder.publish(reply, "host-token".into()).await.unwrap();
            }
        }
    });

    let mut eavesdroppers = Vec::new();
    for user in ROLE_USERS {
        let (client, mut errors) = watched(&nats, user).await;
        let mut forbidden = vec!["_INBOX.>".to_owned(), ">".to_owned()];
        forbidden.extend(
            ROLE_USERS
                .iter()
                .chain(&["admin"])
                .filter(|other| **other != user)
                .map(|other| format!("{}.>", tests::nats::inbox_prefix(other))),
        );
        let mut subscriptions = Vec::new();
        for subject in &forbidden {
            subscriptions.push(client.subscribe(subject.clone()).await.unwrap());
        }
        client.flush().await.unwrap();
        let mut missing: Vec<String> = forbidden
            .iter()
            .map(|subject| format!("Permissions Violation for Subscription to \"{subject}\""))
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !missing.is_empty() {
            let error = tokio::time::timeout_at(deadline, errors.recv())
                .await
                .unwrap_or_else(|_| panic!("{user} was allowed to subscribe: {missing:?}"))
                .unwrap();
            missing.retain(|refusal| !error.contains(refusal.as_str()));
        }
        // Its own inbox works: the JetStream API answers it there.
        let js = async_nats::jetstream::new(client.clone());
        js.query_account().await.unwrap_or_else(|e| panic!("{user} got no JetStream answer: {e}"));
        eavesdroppers.push((user, client, subscriptions));
    }

    let gateway = nats.client_as("gateway").await;
    let answer = gateway.request("chanshare.rooms.create", "{}".into()).await.unwrap();
    assert_eq!(answer.payload, "host-token");
    for (user, _client, subscriptions) in &mut eavesdroppers {
        for subscription in subscriptions.iter_mut() {
            let read = tokio::time::timeout(Duration::from_millis(200), subscription.next()).await;
            assert!(read.is_err(), "{user} read {read:?}");
        }
    }
}

/// Whether a raw JetStream API request reached the projectors' consumer: an answer that is not
/// an error and not about a consumer of another name (refused: no answer, for a subject the user
/// may not publish to, or an error answer).
async fn reaches_projector(client: &async_nats::Client, subject: &str, body: &Value) -> bool {
    let request = client.request(subject.to_owned(), body.to_string().into());
    match tokio::time::timeout(Duration::from_secs(2), request).await {
        Ok(Ok(answer)) => {
            let answer: Value = serde_json::from_slice(&answer.payload).unwrap_or(Value::Null);
            answer.get("error").is_none() && answer.get("name").is_none_or(|name| name == DURABLE)
        }
        _ => false,
    }
}

const DURABLE: &str = "chanshare-projector";

/// A changed definition of the projectors' consumer (it would hold them to one commit at a time),
/// as a create request; `durable`: named as a durable, else by `name` alone.
fn forged(durable: bool) -> Value {
    let mut config = json!({
        "name": DURABLE,
        "description": "forged",
        "ack_policy": "explicit",
        "filter_subject": "chanshare.room.*",
        "max_ack_pending": 1,
    });
    if durable {
        config["durable_name"] = json!(DURABLE);
    }
    json!({"stream_name": eventlog::subjects::STREAM, "config": config})
}

/// A secured server with the room stream and the projectors' consumer as the roles make them, and
/// a reader of that consumer's definition.
async fn with_projector_consumer() -> (NatsServer, EventLog, async_nats::jetstream::stream::Stream)
{
    let nats = NatsServer::secured();
    EventLog::connect(nats.client_as("commands").await, 1).await.unwrap();
    let projectors = EventLog::open(nats.client_as("projectors").await).await.unwrap();
    projectors.durable(eventlog::consumer::PROJECTOR).await.unwrap();
    let admin = async_nats::jetstream::new(nats.client_as("admin").await);
    let stream = admin.get_stream(eventlog::subjects::STREAM).await.unwrap();
    (nats, projectors, stream)
}

async fn definition(stream: &async_nats::jetstream::stream::Stream) -> Value {
    let info = stream.consumer_info(DURABLE).await.unwrap();
    serde_json::to_value(info.config).unwrap()
}

/// Only the projectors' user (and admin) may delete, change or pull from the projectors' durable
/// consumer `chanshare-projector`; every role's user still makes and deletes its own consumers (the
/// log's ordered reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_projectors_user_may_change_the_projector_consumer() {
    let (nats, projectors, admin_stream) = with_projector_consumer().await;
    let stream_name = eventlog::subjects::STREAM;
    let before = definition(&admin_stream).await;

    let attempts: Vec<(String, Value)> = vec![
        (format!("$JS.API.CONSUMER.DELETE.{stream_name}.{DURABLE}"), json!({})),
        // How nats-server 2.9+ clients create and update a named consumer, with or without filter.
        (format!("$JS.API.CONSUMER.CREATE.{stream_name}.{DURABLE}.chanshare.room.*"), forged(true)),
        (format!("$JS.API.CONSUMER.CREATE.{stream_name}.{DURABLE}"), {
            let mut update = forged(true);
            update["action"] = json!("update");
            update
        }),
        (format!("$JS.API.CONSUMER.CREATE.{stream_name}.{DURABLE}"), forged(false)),
        // The older durable create.
        (format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream_name}.{DURABLE}"), forged(true)),
        // Another consumer's subject with the projectors' name in the body (the server refuses
        // it, or makes a consumer of the subject's name).
        (format!("$JS.API.CONSUMER.CREATE.{stream_name}.other.chanshare.room.*"), forged(true)),
        (format!("$JS.API.CONSUMER.CREATE.{stream_name}.other"), forged(false)),
        // The subject ordered consumers are made with (the server names them), a durable in the
        // body: the server refuses it (see the ignored test below for a name alone).
        (format!("$JS.API.CONSUMER.CREATE.{stream_name}"), forged(true)),
        // Pulling from it would take the projectors' deliveries.
        (
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream_name}.{DURABLE}"),
            json!({"batch": 1, "no_wait": true}),
        ),
    ];
    let mut tries = Vec::new();
    for user in ROLE_USERS.into_iter().filter(|user| *user != "projectors") {
        let client = nats.client_as(user).await;
        for (subject, body) in &attempts {
            let client = client.clone();
            tries.push(async move {
                (user, subject.clone(), reaches_projector(&client, subject, body).await)
            });
        }
    }
    let allowed: Vec<(&str, String)> = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|(_, _, accepted)| *accepted)
        .map(|(user, subject, _)| (user, subject))
        .collect();
    assert!(allowed.is_empty(), "allowed: {allowed:?}");
    assert_eq!(definition(&admin_stream).await, before, "as the projectors made it");

    // Every role's own consumers: ordered reads (named, as the log makes them; unnamed only for
    // the projectors, see below) and a named consumer, each deleted again.
    for user in ROLE_USERS {
        let js = async_nats::jetstream::new(nats.client_as(user).await);
        let stream = js.get_stream(stream_name).await.unwrap();
        let unnamed = (user == "projectors").then_some(None);
        for name in unnamed.into_iter().chain([Some(format!("ordered-{user}"))]) {
            let ordered = stream
                .create_consumer(pull::OrderedConfig {
                    name,
                    filter_subject: "chanshare.room.probe".to_owned(),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("{user} cannot read the log in order: {e}"));
            let name = ordered.cached_info().name.clone();
            stream.delete_consumer(&name).await.unwrap_or_else(|e| panic!("{user}: {e}"));
        }
        let named = format!("probe-{user}");
        stream
            .create_consumer(pull::Config {
                name: Some(named.clone()),
                inactive_threshold: Duration::from_secs(60),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{user} cannot make a consumer: {e}"));
        stream.delete_consumer(&named).await.unwrap_or_else(|e| panic!("{user}: {e}"));
    }

    // The projectors' user may update and delete it.
    let client = nats.client_as("projectors").await;
    let stream = async_nats::jetstream::new(client.clone()).get_stream(stream_name).await.unwrap();
    let update = format!("$JS.API.CONSUMER.CREATE.{stream_name}.{DURABLE}.chanshare.room.*");
    assert!(reaches_projector(&client, &update, &forged(true)).await, "projectors update");
    assert_ne!(definition(&admin_stream).await, before);
    stream.delete_consumer(DURABLE).await.unwrap();
    projectors.durable(eventlog::consumer::PROJECTOR).await.unwrap();
    assert_eq!(definition(&admin_stream).await, before);
}

/// `$JS.API.CONSUMER.CREATE.CHANSHARE_ROOMS` (no consumer name in the subject) takes a definition
/// that names the projectors' consumer and replaces it (no longer durable): subject permissions
/// cannot see a request's body. `eventlog` names its ordered consumers (they are made on
/// `CONSUMER.CREATE.CHANSHARE_ROOMS.<name>.<filter>`), so accounts.conf denies that subject to
/// every user but the projectors'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_consumer_cannot_be_replaced_on_the_unnamed_create_subject() {
    let (nats, _projectors, admin_stream) = with_projector_consumer().await;
    let before = definition(&admin_stream).await;
    let subject = format!("$JS.API.CONSUMER.CREATE.{}", eventlog::subjects::STREAM);
    for user in ROLE_USERS.into_iter().filter(|user| *user != "projectors") {
        let client = nats.client_as(user).await;
        assert!(!reaches_projector(&client, &subject, &forged(false)).await, "{user}");
        assert_eq!(definition(&admin_stream).await, before, "{user}");
    }
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
        if k % 10 == 9 {
            // In tens: a socket has at most 16 commands waiting for their answers.
            await_answers(&mut host, &mut host_seen, 10).await;
        }
    }
    for (ws, seen) in &mut movers {
        let target = start(seen) + 10;
        read_until(ws, seen, target).await;
    }
    cluster.kill("gateway-1");
    for k in 0..20 {
        send(&mut host, command(json!({"type": "chat", "text": format!("b{k}")}))).await;
        if k % 10 == 9 {
            // In tens: a socket has at most 16 commands waiting for their answers.
            await_answers(&mut host, &mut host_seen, 10).await;
        }
    }
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
