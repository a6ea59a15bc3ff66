//! The commands service against real NATS and Redis.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use commands::{Handler, ReaperConfig, Service};
use eventlog::{EventLog, Stored};
use events::{
    Actor, Command, CommandId, Control, Event, MemberId, RejectCode, RoomId, RoomState, Source,
};
use futures::StreamExt;
use protocol::subjects::{CREATE as CREATE_SUBJECT, command as command_subject};
use protocol::{CommandReply, CommandRequest, CreateReply, CreateRequest};
use tests::{Chanshare, NatsServer, RedisServer};
use tokio::sync::oneshot;

const SECRET: &str = "test-secret-test-secret-test-secret";

/// One in-process replica of the commands service.
pub(crate) struct Replica {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    handler: Arc<Handler>,
}

impl Replica {
    pub(crate) async fn start(
        nats: &NatsServer,
        redis: &RedisServer,
        reaper: ReaperConfig,
    ) -> Replica {
        let client = nats.client().await;
        let (log, _) = EventLog::connect(client.clone(), 1).await.unwrap();
        let metrics = commands::Metrics::new(&prometheus::Registry::new()).unwrap();
        let handler = Arc::new(Handler::new(log, events::Limits::default(), 16 << 20, metrics));
        Self::start_with(nats, redis, reaper, handler).await
    }

    async fn start_with(
        nats: &NatsServer,
        redis: &RedisServer,
        reaper: ReaperConfig,
        handler: Arc<Handler>,
    ) -> Replica {
        let client = nats.client().await;
        let metrics = commands::Metrics::new(&prometheus::Registry::new()).unwrap();
        let redis =
            redis::Client::open(redis.url()).unwrap().get_connection_manager().await.unwrap();
        let service = Service {
            handler: handler.clone(),
            provisioner: Arc::new(commands::Provisioner::new(
                client.clone(),
                handler.log().clone(),
                tokens::Signer::new(SECRET.as_bytes()),
                events::Limits::default(),
                Duration::from_secs(3600),
            )),
            presence: presence::Presence::new(redis),
            reaper,
            reaper_ids: tokens::Signer::new(SECRET.as_bytes()).id_namespace("reaper"),
            snapshot_interval: Duration::from_secs(60),
            metrics,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            commands::run(client, service, async {
                stopped.await.ok();
            })
            .await
            .unwrap();
        });
        // The service is subscribed once it answers $SRV.PING.
        let probe = nats.client().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut pongs = probe.subscribe("probe.pong").await.unwrap();
            probe
                .publish_with_reply("$SRV.PING.chanshare-commands", "probe.pong", "".into())
                .await
                .unwrap();
            if tokio::time::timeout(Duration::from_millis(200), pongs.next()).await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "commands service did not start");
        }
        Replica { stop: Some(stop), task, handler }
    }

    pub(crate) async fn stop(mut self) -> Arc<Handler> {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        self.task.await.unwrap();
        self.handler
    }
}

pub(crate) fn quiet_reaper() -> ReaperConfig {
    ReaperConfig {
        presence_timeout: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(3600),
        unjoined_timeout: Duration::from_secs(3600),
        interval: Duration::from_secs(3600),
    }
}

fn member(name: &str) -> MemberId {
    MemberId::new(name).unwrap()
}

fn new_id() -> CommandId {
    CommandId(uuid::Uuid::new_v4())
}

async fn send(
    client: &async_nats::Client,
    room: &RoomId,
    request: &CommandRequest,
) -> CommandReply {
    let body = serde_json::to_vec(request).unwrap();
    let response = client.request(command_subject(room), body.into()).await.unwrap();
    serde_json::from_slice(&response.payload).unwrap()
}

async fn command(
    client: &async_nats::Client,
    room: &RoomId,
    actor: &MemberId,
    command: Command,
) -> CommandReply {
    send(
        client,
        room,
        &CommandRequest {
            id: new_id(),
            actor: Actor::Member(actor.clone()),
            command,
            traceparent: None,
        },
    )
    .await
}

async fn join(
    client: &async_nats::Client,
    room: &RoomId,
    who: &MemberId,
    name: &str,
) -> CommandReply {
    command(client, room, who, Command::Join { name: name.into(), address: None, account: None })
        .await
}

async fn create(client: &async_nats::Client, request: CreateRequest) -> CreateReply {
    let response =
        client.request(CREATE_SUBJECT, serde_json::to_vec(&request).unwrap().into()).await.unwrap();
    serde_json::from_slice(&response.payload).unwrap()
}

async fn url_room(client: &async_nats::Client, control: Control) -> (RoomId, MemberId, String) {
    let reply = create(
        client,
        CreateRequest {
            title: Some("test night".into()),
            source: Source::Urls(vec![
                "https://example.com/a.webm".into(),
                "https://example.com/b.mp4".into(),
            ]),
            control: Some(control),
            listed: None,
            name: Some("host".into()),
            account: None,
        },
    )
    .await;
    match reply {
        CreateReply::Created { room_id, member_id, host_token, version } => {
            assert_eq!(version, 1);
            (room_id, member_id, host_token)
        }
        other => panic!("room not created: {other:?}"),
    }
}

async fn history(nats: &NatsServer, room: &RoomId) -> Vec<Stored> {
    let (log, _) = EventLog::connect(nats.client().await, 1).await.unwrap();
    log.read(room, 0).await.unwrap().map(|c| c.unwrap()).collect().await
}

fn fold(history: &[Stored]) -> RoomState {
    history.iter().fold(RoomState::default(), |state, stored| state.apply(&stored.commit))
}

#[tokio::test]
async fn create_a_url_room_with_a_valid_host_token() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let replica = Replica::start(&nats, &redis, quiet_reaper()).await;
    let client = nats.client().await;
    let (room, host, token) = url_room(&client, Control::Everyone).await;
    assert_eq!(room.as_str().split('-').count(), 4, "a readable id: {room}");
    let claims = tokens::Signer::new(SECRET.as_bytes()).verify(&token, &room, 0).unwrap();
    assert_eq!((claims.member, claims.role), (host.clone(), tokens::TokenRole::Host));
    let state = fold(&history(&nats, &room).await);
    assert_eq!(state.title, "test night");
    assert_eq!(state.playlist.len(), 2);
    assert_eq!(state.host, Some(host));
    replica.stop().await;
}

#[tokio::test]
async fn bad_create_requests_are_rejected_and_store_nothing() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let replica = Replica::start(&nats, &redis, quiet_reaper()).await;
    let client = nats.client().await;
    let bad = [
        serde_json::json!({"source": {"urls": []}}),
        serde_json::json!({"source": {"urls": ["ftp://x/y.mp4"]}}),
        serde_json::json!({"source": {"urls": ["https://x/y.mp4"]}, "name": "   "}),
        serde_json::json!({"source": {"urls": ["https://x/y.mp4"]}, "surprise": 1}),
        serde_json::json!({"title": "no source"}),
    ];
    for body in bad {
        let response = client
            .request(CREATE_SUBJECT, serde_json::to_vec(&body).unwrap().into())
            .await
            .unwrap();
        let reply: CreateReply = serde_json::from_slice(&response.payload).unwrap();
        assert!(
            matches!(reply, CreateReply::Rejected { code: RejectCode::Invalid, .. }),
            "{body}: {reply:?}"
        );
    }
    // A chan room needs the content service; without one the answer says so.
    let reply = create(
        &client,
        CreateRequest {
            title: None,
            source: Source::Chan { board: "wsg".into(), thread: 5812345 },
            control: None,
            listed: None,
            name: None,
            account: None,
        },
    )
    .await;
    assert!(matches!(reply, CreateReply::Error { code: RejectCode::Unavailable, .. }), "{reply:?}");
    let (log, _) = EventLog::connect(nats.client().await, 1).await.unwrap();
    assert_eq!(log.last_seq().await.unwrap(), 0, "nothing stored");
    replica.stop().await;
}

#[tokio::test]
async fn the_service_is_discoverable() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let replica = Replica::start(&nats, &redis, quiet_reaper()).await;
    let client = nats.client().await;
    let info = client.request("$SRV.INFO.chanshare-commands", "".into()).await.unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.payload).unwrap();
    let subjects: BTreeSet<_> = info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        subjects,
        BTreeSet::from(["chanshare.cmd.*".to_owned(), "chanshare.rooms.create".to_owned()])
    );
    replica.stop().await;
}

#[tokio::test]
async fn host_only_control_transfer_close_and_invalid_payloads() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let replica = Replica::start(&nats, &redis, quiet_reaper()).await;
    let client = nats.client().await;
    let (room, host, _) = url_room(&client, Control::Host).await;
    let alice = member("malice");
    assert!(matches!(
        join(&client, &room, &alice, "alice").await,
        CommandReply::Accepted { version: 2 }
    ));

    let reply = command(&client, &room, &alice, Command::Play).await;
    assert!(
        matches!(reply, CommandReply::Rejected { code: RejectCode::Forbidden, .. }),
        "{reply:?}"
    );
    assert!(matches!(
        command(&client, &room, &host, Command::Play).await,
        CommandReply::Accepted { version: 3 }
    ));
    assert!(matches!(
        command(&client, &room, &host, Command::TransferHost { member_id: alice.clone() }).await,
        CommandReply::Accepted { version: 4 }
    ));
    assert!(matches!(
        command(&client, &room, &alice, Command::Pause).await,
        CommandReply::Accepted { version: 5 }
    ));
    let reply = command(&client, &room, &host, Command::Play).await;
    assert!(
        matches!(reply, CommandReply::Rejected { code: RejectCode::Forbidden, .. }),
        "roles swapped: {reply:?}"
    );

    // Malformed requests: rejected `invalid`, nothing appended.
    let before = history(&nats, &room).await.len();
    let raw = |subject: String, body: &'static str| {
        let client = client.clone();
        async move {
            let response = client.request(subject, body.into()).await.unwrap();
            serde_json::from_slice::<CommandReply>(&response.payload).unwrap()
        }
    };
    let subject = command_subject(&room);
    let actor = r#""actor":"malice""#;
    let id = r#""id":"6f1c2b6e-2a8e-4a53-9a43-6f0a9b9f6d11""#;
    let bodies = [
        "not json".to_owned(),
        "{}".to_owned(),
        format!(r#"{{{id},{actor},"command":{{"type":"dance"}}}}"#),
        format!(r#"{{{id},{actor},"command":{{"type":"seek","position_ms":-1}}}}"#),
        format!(r#"{{{id},{actor},"command":{{"type":"seek","position_ms":999999999999}}}}"#),
        format!(r#"{{{id},{actor},"command":{{"type":"set_rate","rate":9}}}}"#),
        format!(r#"{{{id},"actor":"Not Valid","command":{{"type":"play"}}}}"#),
        format!(r#"{{"id":"nope",{actor},"command":{{"type":"play"}}}}"#),
    ];
    for body in bodies {
        let body: &'static str = Box::leak(body.into_boxed_str());
        let reply = raw(subject.clone(), body).await;
        assert!(
            matches!(reply, CommandReply::Rejected { code: RejectCode::Invalid, .. }),
            "{body}: {reply:?}"
        );
    }
    let reply = raw("chanshare.cmd.Bad_Room".into(), "{}").await;
    assert!(matches!(reply, CommandReply::Rejected { code: RejectCode::Invalid, .. }), "{reply:?}");
    assert_eq!(history(&nats, &room).await.len(), before, "nothing appended");

    assert!(matches!(
        command(&client, &room, &alice, Command::Close).await,
        CommandReply::Accepted { .. }
    ));
    let reply = command(&client, &room, &alice, Command::Chat { text: "anyone?".into() }).await;
    assert!(matches!(reply, CommandReply::Rejected { code: RejectCode::Closed, .. }), "{reply:?}");
    replica.stop().await;
}

/// 50 clients × 20 commands on one room through two replicas: every accepted command stored
/// exactly once, versions contiguous, and the log folds to the state the service holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_clients_through_two_replicas() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let a = Replica::start(&nats, &redis, quiet_reaper()).await;
    let b = Replica::start(&nats, &redis, quiet_reaper()).await;
    let client = nats.client().await;
    let (room, _, _) = url_room(&client, Control::Everyone).await;
    let clients: Vec<_> = (0..50)
        .map(|n| {
            let (client, room) = (client.clone(), room.clone());
            tokio::spawn(async move {
                let me = member(&format!("m{n}"));
                let mut accepted = Vec::new();
                let mut sent = vec![(
                    new_id(),
                    Command::Join { name: format!("client {n}"), address: None, account: None },
                )];
                for k in 0..19 {
                    let command = match k % 4 {
                        0 => Command::Chat { text: format!("hello {k} from {n}") },
                        1 => Command::Play,
                        2 => Command::Seek { position_ms: (n * 1000 + k) as u64 },
                        _ => Command::Pause,
                    };
                    sent.push((new_id(), command));
                }
                for (id, command) in sent {
                    let request = CommandRequest {
                        id,
                        actor: Actor::Member(me.clone()),
                        command,
                        traceparent: None,
                    };
                    // Like the gateway: a `conflict` error is retried with the same id.
                    for attempt in 0.. {
                        match send(&client, &room, &request).await {
                            CommandReply::Accepted { version } => accepted.push((id, version)),
                            CommandReply::Rejected { .. } => {}
                            CommandReply::Error { code: RejectCode::Conflict, .. }
                                if attempt < 10 =>
                            {
                                continue;
                            }
                            CommandReply::Error { code, message } => panic!("{code}: {message}"),
                        }
                        break;
                    }
                }
                accepted
            })
        })
        .collect();
    let mut accepted: BTreeMap<CommandId, u64> = BTreeMap::new();
    for task in clients {
        accepted.extend(task.await.unwrap());
    }
    let history = history(&nats, &room).await;
    let versions: Vec<u64> = history.iter().map(|s| s.commit.version).collect();
    assert_eq!(versions, (1..=history.len() as u64).collect::<Vec<_>>(), "contiguous");
    let stored: BTreeMap<CommandId, u64> =
        history.iter().map(|s| (s.commit.command_id, s.commit.version)).collect();
    assert_eq!(stored.len(), history.len(), "every command id once");
    for (id, version) in &accepted {
        // No-ops (play while playing) are accepted at the room's version without a commit.
        if let Some(stored_version) = stored.get(id) {
            assert_eq!(stored_version, version, "the reply names the commit's version");
        }
    }
    let unsent: Vec<_> = stored.keys().filter(|id| !accepted.contains_key(id)).collect();
    assert_eq!(unsent.len(), 1, "only the create commit was not sent by a client: {unsent:?}");
    let folded = fold(&history);
    assert_eq!(folded.members.len(), 51);
    assert_eq!(folded.messages_posted, 250);
    let b_handler = b.stop().await;
    let a_handler = a.stop().await;
    for handler in [a_handler, b_handler] {
        assert_eq!(
            handler.state(&room).await.unwrap(),
            folded,
            "a replica's state is the fold of the log"
        );
    }
}

#[tokio::test]
async fn a_retried_command_is_stored_once_with_the_same_reply() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let replica = Replica::start(&nats, &redis, quiet_reaper()).await;
    let client = nats.client().await;
    let (room, host, _) = url_room(&client, Control::Everyone).await;
    let request = CommandRequest {
        id: new_id(),
        actor: Actor::Member(host.clone()),
        command: Command::Chat { text: "once".into() },
        traceparent: None,
    };
    let first = send(&client, &room, &request).await;
    let second = send(&client, &room, &request).await;
    assert_eq!(first, second);
    // A retried rejection gets the same rejection.
    let bad = CommandRequest {
        id: new_id(),
        actor: Actor::Member(host.clone()),
        command: Command::Jump { item_id: events::ItemId::nth(99) },
        traceparent: None,
    };
    assert_eq!(send(&client, &room, &bad).await, send(&client, &room, &bad).await);
    let chats =
        history(&nats, &room).await.iter().filter(|s| s.commit.command_id == request.id).count();
    assert_eq!(chats, 1);
    replica.stop().await;
}

/// The replica that took a command is killed after storing it, before its reply arrived; the
/// client retries on another replica whose cache is stale: one commit, the original version.
#[tokio::test]
async fn a_retry_after_the_replica_died_mid_request() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let client = nats.client().await;
    // Replica B warms its cache on the room, then stops answering.
    let b = Replica::start(&nats, &redis, quiet_reaper()).await;
    let (room, host, _) = url_room(&client, Control::Everyone).await;
    assert!(matches!(
        command(&client, &room, &host, Command::Chat { text: "warm".into() }).await,
        CommandReply::Accepted { version: 2 }
    ));
    let warm_handler = b.stop().await;

    // Replica A (a real process) takes the command; its reply goes nowhere.
    let a = Chanshare::start(
        "commands",
        &[
            ("CHANSHARE_NATS_URL", nats.url()),
            ("CHANSHARE_REDIS_URL", redis.url()),
            ("CHANSHARE_SECRET", SECRET.into()),
        ],
    );
    let (log, _) = EventLog::connect(nats.client().await, 1).await.unwrap();
    let request = CommandRequest {
        id: new_id(),
        actor: Actor::Member(host.clone()),
        command: Command::Chat { text: "exactly once".into() },
        traceparent: None,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.head(&room).await.unwrap().map(|h| h.version) != Some(3) {
        client
            .publish_with_reply(
                command_subject(&room),
                "nobody.listens",
                serde_json::to_vec(&request).unwrap().into(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(Instant::now() < deadline, "replica A never stored the command: {}", a.log());
    }
    drop(a); // SIGKILL

    let b = Replica::start_with(&nats, &redis, quiet_reaper(), warm_handler).await;
    assert_eq!(send(&client, &room, &request).await, CommandReply::Accepted { version: 3 });
    let history = history(&nats, &room).await;
    assert_eq!(history.iter().filter(|s| s.commit.command_id == request.id).count(), 1);
    assert_eq!(history.len(), 3);
    b.stop().await;
}

/// Two replicas run the reaper: a member whose heartbeats stop goes offline exactly once, the
/// host role moves to a member who is still there, and an empty room closes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reapers_time_out_a_member_once_and_close_an_idle_room_once() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let reaper = ReaperConfig {
        presence_timeout: Duration::from_millis(1500),
        idle_timeout: Duration::from_secs(2),
        unjoined_timeout: Duration::from_secs(2),
        interval: Duration::from_millis(200),
    };
    let a = Replica::start(&nats, &redis, reaper).await;
    let b = Replica::start(&nats, &redis, reaper).await;
    let client = nats.client().await;
    let (room, host, _) = url_room(&client, Control::Everyone).await;
    let alice = member("malice");
    assert!(matches!(join(&client, &room, &alice, "alice").await, CommandReply::Accepted { .. }));

    // Alice's gateway keeps beating; the host's never does.
    let presence = presence::Presence::new(
        redis::Client::open(redis.url()).unwrap().get_connection_manager().await.unwrap(),
    );
    let beat_room = room.clone();
    let beating = tokio::spawn(async move {
        loop {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            presence.beat(&beat_room, &[member("malice")], now).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let state = wait_for(&nats, &room, |s| s.member(&host).is_some_and(|m| !m.online)).await;
    assert_eq!(state.host, Some(alice.clone()), "the host role moved to the member still online");
    beating.abort();
    let state = wait_for(&nats, &room, |s| s.closed.is_some()).await;
    assert_eq!(state.closed, Some(events::CloseReason::Idle));
    tokio::time::sleep(Duration::from_millis(800)).await;

    let history = history(&nats, &room).await;
    let count = |f: &dyn Fn(&Event) -> bool| {
        history.iter().flat_map(|s| &s.commit.events).filter(|e| f(e)).count()
    };
    assert_eq!(
        count(&|e| matches!(e, Event::MemberWentOffline { member_id } if *member_id == host)),
        1
    );
    assert_eq!(
        count(&|e| matches!(e, Event::MemberWentOffline { member_id } if *member_id == alice)),
        1
    );
    assert_eq!(count(&|e| matches!(e, Event::RoomClosed { .. })), 1);
    a.stop().await;
    b.stop().await;
}

async fn wait_for(
    nats: &NatsServer,
    room: &RoomId,
    done: impl Fn(&RoomState) -> bool,
) -> RoomState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = fold(&history(nats, room).await);
        if done(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "condition not reached: {state:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A command id only dedupes its own actor's commands, and the reaper's ids cannot be computed
/// by members: before, a member who sent a chat with the id the reaper would derive for their
/// timeout (public inputs: room, member, version) was never timed out, and a member reusing
/// another's command id had their command silently taken for a retry of it.
#[tokio::test]
async fn command_ids_belong_to_their_actor_and_the_reapers_cannot_be_pre_empted() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let reaper = ReaperConfig {
        presence_timeout: Duration::from_millis(1500),
        idle_timeout: Duration::from_secs(3600),
        unjoined_timeout: Duration::from_secs(3600),
        interval: Duration::from_millis(200),
    };
    let replica = Replica::start(&nats, &redis, reaper).await;
    let client = nats.client().await;
    let (room, host, _) = url_room(&client, Control::Everyone).await;
    let alice = member("malice");
    let CommandReply::Accepted { version } = join(&client, &room, &alice, "alice").await else {
        panic!("join refused");
    };

    // The host's command id, reused by alice, is alice's own command.
    let id = new_id();
    let chat = |actor: &MemberId, text: &str| CommandRequest {
        id,
        actor: Actor::Member(actor.clone()),
        command: Command::Chat { text: text.into() },
        traceparent: None,
    };
    assert_eq!(
        send(&client, &room, &chat(&host, "first")).await,
        CommandReply::Accepted { version: version + 1 }
    );
    assert_eq!(
        send(&client, &room, &chat(&alice, "second")).await,
        CommandReply::Accepted { version: version + 2 }
    );
    assert_eq!(
        send(&client, &room, &chat(&alice, "second")).await,
        CommandReply::Accepted { version: version + 2 }
    );

    // Alice sends a chat under the id the reaper used to derive for her timeout at the version
    // that chat makes, then her heartbeats stop.
    let public = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"chanshare-reaper");
    let pre_empt = CommandRequest {
        id: CommandId::derived(public, &format!("{room}/{alice}/{}", version + 3)),
        actor: Actor::Member(alice.clone()),
        command: Command::Chat { text: "i never leave".into() },
        traceparent: None,
    };
    assert_eq!(
        send(&client, &room, &pre_empt).await,
        CommandReply::Accepted { version: version + 3 }
    );
    // Nobody beats: alice (and the host) time out.
    let state = wait_for(&nats, &room, |s| s.member(&alice).is_some_and(|m| !m.online)).await;
    assert!(state.member(&alice).is_some_and(|m| !m.online), "alice timed out");
    let texts: Vec<String> = history(&nats, &room)
        .await
        .iter()
        .flat_map(|s| s.commit.events.clone())
        .filter_map(|e| match e {
            Event::ChatPosted { message } => Some(message.text),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["first", "second", "i never leave"]);
    replica.stop().await;
}

/// A room made and never opened closes (its creator's heartbeat from the creation puts it under
/// the reaper's eye: before, a room nobody ever connected to had no heartbeat, so the reaper
/// never looked at it, and it stayed open with its creator "online" forever).
#[tokio::test]
async fn a_room_nobody_opens_is_closed() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let reaper = ReaperConfig {
        presence_timeout: Duration::from_millis(1000),
        idle_timeout: Duration::from_secs(3600),
        unjoined_timeout: Duration::from_secs(1),
        interval: Duration::from_millis(200),
    };
    let replica = Replica::start(&nats, &redis, reaper).await;
    let client = nats.client().await;
    let (room, host, _) = url_room(&client, Control::Everyone).await;
    let state = wait_for(&nats, &room, |s| s.closed.is_some()).await;
    assert_eq!(state.closed, Some(events::CloseReason::Idle));
    assert!(state.member(&host).is_some_and(|m| !m.online));
    replica.stop().await;
}
