//! Direct messages end to end (issue 21, DESIGN §4b): real `chanshare serve` processes (two
//! gateways on one NATS and Redis), HTTP clients and account sockets.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tests::{Chanshare, NatsServer, RedisServer};
use tokio_tungstenite::tungstenite::Message;

use crate::accounts::{Api, Session, settings};
use crate::ws::Ws;

/// An account socket of `gateway`, synced from `since`: the socket, once `dm_sync` is acknowledged.
async fn inbox(gateway: &Chanshare, access: &str, since: Value) -> Ws {
    let url = format!("ws://{}/api/me/ws?access_token={access}", gateway.addr());
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    send(&mut ws, json!({"type": "dm_sync", "id": "sync", "since": since})).await;
    let ack = frame(&mut ws).await.expect("the sync's ack");
    assert_eq!((ack["type"].as_str(), ack["id"].as_str()), (Some("ack"), Some("sync")), "{ack}");
    ws
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::Text(frame.to_string().into())).await.unwrap();
}

/// The next JSON frame within 10 s, or `None` (closed, or nothing came).
async fn frame(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return None,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Every frame that arrives until `done` holds for what arrived, then whatever else comes
/// within `settle` (to see duplicates that would follow).
async fn until(ws: &mut Ws, settle: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    while !done(&frames) {
        let next = frame(ws).await;
        let Some(next) = next else {
            panic!("the socket ended before the frames came: {frames:#?}")
        };
        frames.push(next);
    }
    while let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(settle, ws.next()).await {
        frames.push(serde_json::from_str(&text).unwrap());
    }
    frames
}

fn of_type<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == kind).collect()
}

/// The statuses of message `id` among `frames`, in order.
fn statuses(frames: &[Value], id: &str) -> Vec<String> {
    of_type(frames, "dm_status")
        .into_iter()
        .filter(|f| f["id"] == id)
        .map(|f| f["status"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends a dm and returns its answer (`ack` with the seq, or `reject`).
async fn dm(ws: &mut Ws, id: &str, to: &str, text: &str) -> Value {
    send(ws, json!({"type": "dm", "id": id, "to": to, "text": text})).await;
    loop {
        let answer = frame(ws).await.expect("an answer to the dm");
        if matches!(answer["type"].as_str(), Some("ack" | "reject")) && answer["id"] == id {
            return answer;
        }
    }
}

/// Signs up `one` and `other` and signs each in.
async fn two_accounts(api: &Api, one: &str, other: &str) -> (Session, Session) {
    api.account(one).await;
    api.account(other).await;
    (api.session(one).await, api.session(other).await)
}

fn id(n: u32) -> String {
    uuid::Uuid::from_u128(0xd0_0000 + u128::from(n)).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_across_gateways_goes_sent_delivered_read_once_each_on_every_device() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let (one, two) = (
        Chanshare::serve(&nats, &redis, &settings(&[])),
        Chanshare::serve(&nats, &redis, &settings(&[])),
    );
    let api = Api::new(&one);
    api.account("alice").await;
    api.account("bob").await;
    let (alice, bob) = (api.session("alice").await, api.session("bob").await);
    // Alice on both gateways (two devices), Bob on the second.
    let mut alice_one = inbox(&one, &alice.access, json!({})).await;
    let mut alice_two = inbox(&two, &alice.access, json!({})).await;
    let mut bob_two = inbox(&two, &bob.access, json!({})).await;

    let hello = id(1);
    let ack = dm(&mut alice_one, &hello, "Bob", "hello bob").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let seq = ack["seq"].as_u64().unwrap();

    let got =
        until(&mut bob_two, Duration::from_millis(300), |f| !of_type(f, "dm").is_empty()).await;
    let message = of_type(&got, "dm")[0].clone();
    assert_eq!(
        (
            &message["id"],
            &message["from"],
            &message["to"],
            &message["text"],
            message["seq"].as_u64()
        ),
        (&json!(hello), &json!("alice"), &json!("bob"), &json!("hello bob"), Some(seq))
    );
    assert!(of_type(&got, "dm_status").is_empty(), "a receiver gets no statuses: {got:#?}");
    send(&mut bob_two, json!({"type": "dm_read", "id": "r1", "with": "alice", "up_to": seq})).await;

    // Both of Alice's devices see the message and its statuses, each once, in order.
    for (device, ws) in [("first", &mut alice_one), ("second", &mut alice_two)] {
        let frames =
            until(ws, Duration::from_millis(500), |f| statuses(f, &hello).len() >= 3).await;
        assert_eq!(
            statuses(&frames, &hello),
            ["sent", "delivered", "read"],
            "{device}: {frames:#?}"
        );
        assert_eq!(of_type(&frames, "dm").len(), 1, "{device}");
    }

    // A device that comes back later with what it had sees the statuses it missed, not more.
    drop(alice_two);
    let mut again = inbox(&two, &alice.access, json!({"bob": 0})).await;
    let frames =
        until(&mut again, Duration::from_millis(500), |f| statuses(f, &hello).len() >= 3).await;
    assert_eq!(statuses(&frames, &hello), ["sent", "delivered", "read"]);
    drop(again);
    let mut caught_up = inbox(&two, &alice.access, json!({"bob": seq + 100})).await;
    let nothing = until(&mut caught_up, Duration::from_millis(500), |_| true).await;
    assert!(nothing.is_empty(), "{nothing:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_receiver_gets_everything_once_and_the_rules_hold() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &settings(&[]));
    let api = Api::new(&gateway);
    let (dora, carl) = two_accounts(&api, "dora", "carl").await;
    let mut sender = inbox(&gateway, &dora.access, json!({})).await;

    // Carl is offline: three messages wait, and a retried id is stored once.
    let mut seqs = Vec::new();
    for n in 1..=3 {
        let ack = dm(&mut sender, &id(n), "carl", &format!("message {n}")).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        seqs.push(ack["seq"].as_u64().unwrap());
    }
    let retried = dm(&mut sender, &id(1), "carl", "message 1").await;
    assert_eq!((retried["type"].as_str(), retried["seq"].as_u64()), (Some("ack"), Some(seqs[0])));

    let mut receiver = inbox(&gateway, &carl.access, json!({})).await;
    let got =
        until(&mut receiver, Duration::from_millis(700), |f| of_type(f, "dm").len() >= 3).await;
    let texts: Vec<&str> =
        of_type(&got, "dm").iter().map(|f| f["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["message 1", "message 2", "message 3"]);
    let delivered = until(&mut sender, Duration::from_millis(300), |f| {
        (1..=3).all(|n| statuses(f, &id(n)).contains(&"delivered".to_owned()))
    })
    .await;
    for n in 1..=3 {
        assert_eq!(
            statuses(&delivered, &id(n)).iter().filter(|s| *s == "delivered").count(),
            1,
            "{delivered:#?}"
        );
    }

    // Refusals: a block, oneself, nobody, a blank text, a bad id; a block lifted.
    let block =
        api.call(reqwest::Method::POST, "/api/me/blocks/dora", Some(&carl.access), None).await;
    assert_eq!(block.status, 204, "{}", block.raw);
    let refused = dm(&mut sender, &id(10), "carl", "are you there?").await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("reject"), Some("blocked"))
    );
    for (to, text, code) in [
        ("dora", "me", "invalid"),
        ("nobody_here", "hi", "unknown_user"),
        ("carl", "  ", "invalid"),
    ] {
        let answer = dm(&mut sender, &id(11), to, text).await;
        assert_eq!(answer["code"], code, "{to} {text:?}: {answer}");
    }
    send(&mut sender, json!({"type": "dm", "id": "not-a-uuid", "to": "carl", "text": "x"})).await;
    assert_eq!(frame(&mut sender).await.unwrap()["code"], "invalid");
    send(&mut sender, json!({"type": "dance"})).await;
    assert_eq!(frame(&mut sender).await.unwrap()["code"], "invalid");
    // One sync per socket (each reads the account's feed from the stream).
    send(&mut sender, json!({"type": "dm_sync", "id": "again", "since": {}})).await;
    let again = frame(&mut sender).await.unwrap();
    assert_eq!((again["type"].as_str(), again["code"].as_str()), (Some("reject"), Some("invalid")));
    let unblock =
        api.call(reqwest::Method::DELETE, "/api/me/blocks/dora", Some(&carl.access), None).await;
    assert_eq!(unblock.status, 204, "{}", unblock.raw);
    assert_eq!(dm(&mut sender, &id(12), "carl", "back again").await["type"], "ack");
    let later =
        until(&mut receiver, Duration::from_millis(300), |f| !of_type(f, "dm").is_empty()).await;
    assert_eq!(of_type(&later, "dm").len(), 1, "the blocked message never arrives: {later:#?}");

    // Bad tokens are refused at the socket, blocks need a session and a real account.
    let url = format!("ws://{}/api/me/ws?access_token=forged", gateway.addr());
    let mut forged = tokio_tungstenite::connect_async(url).await.unwrap().0;
    match tokio::time::timeout(Duration::from_secs(5), forged.next()).await {
        Ok(Some(Ok(Message::Close(Some(close))))) => assert_eq!(u16::from(close.code), 4401),
        other => panic!("{other:?}"),
    }
    let anonymous = api.call(reqwest::Method::POST, "/api/me/blocks/dora", None, None).await;
    assert_eq!(anonymous.status, 401);
    let nobody = api
        .call(reqwest::Method::POST, "/api/me/blocks/nobody_here", Some(&carl.access), None)
        .await;
    assert_eq!(nobody.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_whose_gateway_dies_resumes_elsewhere_losing_and_repeating_nothing() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let one = Chanshare::serve(&nats, &redis, &settings(&[]));
    let mut two = Some(Chanshare::serve(&nats, &redis, &settings(&[])));
    let api = Api::new(&one);
    let (erin, finn) = two_accounts(&api, "erin", "finn").await;
    let mut sender = inbox(&one, &erin.access, json!({})).await;
    let mut receiver = inbox(two.as_ref().unwrap(), &finn.access, json!({})).await;

    // Erin sends 40 messages; Finn's gateway dies after he has seen some of them.
    let writer = tokio::spawn(async move {
        for n in 1..=40 {
            // As fast as the per-socket rate allows: a refused send is retried with its id.
            loop {
                let answer = dm(&mut sender, &id(n), "finn", &format!("{n}")).await;
                if answer["type"] == "ack" {
                    break;
                }
                assert_eq!(answer["code"], "rate_limited", "{answer}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let mut seen: Vec<u64> = Vec::new();
    let mut last_seq = 0;
    while seen.len() < 12 {
        let frame = frame(&mut receiver).await.expect("a message before the crash");
        if frame["type"] == "dm" {
            seen.push(frame["text"].as_str().unwrap().parse().unwrap());
            last_seq = frame["seq"].as_u64().unwrap();
        }
    }
    drop(two.take()); // SIGKILL
    let mut resumed = inbox(&one, &finn.access, json!({"erin": last_seq})).await;
    writer.await.unwrap();
    let rest = until(&mut resumed, Duration::from_millis(700), |f| {
        of_type(f, "dm").last().is_some_and(|m| m["text"] == "40")
    })
    .await;
    seen.extend(
        of_type(&rest, "dm").iter().map(|f| f["text"].as_str().unwrap().parse::<u64>().unwrap()),
    );
    assert_eq!(seen, (1..=40).collect::<Vec<_>>(), "nothing lost, nothing repeated, in order");
    let seqs: BTreeMap<u64, usize> =
        of_type(&rest, "dm").iter().map(|f| (f["seq"].as_u64().unwrap(), 1)).collect();
    assert_eq!(seqs.len(), of_type(&rest, "dm").len());
}

/// A live event whose predecessor on its subject never reached the receiver's inbox (stored
/// while the stream did not republish: what a lost core message looks like) is preceded by it,
/// read from the stream: the receiver gets both, in order, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_event_after_one_the_inbox_missed_brings_the_missed_one_first() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let one = Chanshare::serve(&nats, &redis, &settings(&[]));
    let api = Api::new(&one);
    let (gale, hugo) = two_accounts(&api, "gale", "hugo").await;
    let mut sender = inbox(&one, &gale.access, json!({})).await;
    let mut receiver = inbox(&one, &hugo.access, json!({})).await;
    // Past the inbox's settling read: from here only live events and their gaps bring anything.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let js = async_nats::jetstream::new(nats.client().await);
    let mut stream = js.get_stream("CHANSHARE_DMS").await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    let silent = async_nats::jetstream::stream::Config { republish: None, ..config.clone() };
    js.update_stream(silent).await.unwrap();
    let missed = json!({"type": "message", "id": id(1), "from": "gale", "to": "hugo",
        "text": "the one nobody announced", "at_ms": 1});
    // Written past the `dm` crate on purpose: an event no republish announced.
    #[allow(clippy::disallowed_methods)]
    let stored = js
        .publish("chanshare.dm.gale.hugo.m", missed.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.update_stream(config).await.unwrap();

    let ack = dm(&mut sender, &id(2), "hugo", "the next one").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let frames =
        until(&mut receiver, Duration::from_millis(500), |f| of_type(f, "dm").len() >= 2).await;
    let got: Vec<(u64, &str)> = of_type(&frames, "dm")
        .iter()
        .map(|f| (f["seq"].as_u64().unwrap(), f["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (stored.sequence, "the one nobody announced"),
            (ack["seq"].as_u64().unwrap(), "the next one")
        ]
    );
    // Both are reported delivered: the sender sees it for the message it sent.
    let frames =
        until(&mut sender, Duration::from_millis(300), |f| statuses(f, &id(2)).len() >= 2).await;
    assert_eq!(statuses(&frames, &id(2)), ["sent", "delivered"]);
}

/// A device that has a message its gateway never reported delivered (the gateway died between
/// writing it and storing the receipt) says so in its `dm_sync`: delivered. A claim past the
/// conversation's end marks nothing that comes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_reports_delivered_what_the_device_has_and_no_further() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let one = Chanshare::serve(&nats, &redis, &settings(&[]));
    let api = Api::new(&one);
    let (iris, jude) = two_accounts(&api, "iris", "jude").await;
    let mut sender = inbox(&one, &iris.access, json!({})).await;
    let ack = dm(&mut sender, &id(1), "jude", "did it reach you?").await;
    let seq = ack["seq"].as_u64().unwrap();
    let frames =
        until(&mut sender, Duration::from_millis(300), |f| !statuses(f, &id(1)).is_empty()).await;
    assert_eq!(statuses(&frames, &id(1)), ["sent"], "nobody has it yet");

    // Jude's device has it (and says it has more than there is).
    let mut receiver = inbox(&one, &jude.access, json!({"iris": seq + 1000})).await;
    let frames =
        until(&mut sender, Duration::from_millis(300), |f| !statuses(f, &id(1)).is_empty()).await;
    assert_eq!(statuses(&frames, &id(1)), ["delivered"]);
    assert!(
        of_type(&until(&mut receiver, Duration::from_millis(300), |_| true).await, "dm").is_empty()
    );
    // And what it has, it may report read (this socket never wrote it).
    send(&mut receiver, json!({"type": "dm_read", "id": "r", "with": "iris", "up_to": seq})).await;
    let frames =
        until(&mut sender, Duration::from_millis(300), |f| !statuses(f, &id(1)).is_empty()).await;
    assert_eq!(statuses(&frames, &id(1)), ["read"]);

    // The next message is new to it: written, then delivered.
    dm(&mut sender, &id(2), "jude", "and this one?").await;
    let got =
        until(&mut receiver, Duration::from_millis(100), |f| !of_type(f, "dm").is_empty()).await;
    assert_eq!(of_type(&got, "dm")[0]["text"], "and this one?");
    let frames =
        until(&mut sender, Duration::from_millis(300), |f| statuses(f, &id(2)).len() >= 2).await;
    assert_eq!(statuses(&frames, &id(2)), ["sent", "delivered"]);
}

/// Signing out closes the session's account sockets on every gateway at once (4401), not at its
/// access token's expiry; the account's other sessions keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_closes_the_sessions_account_sockets_everywhere() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let (one, two) = (
        Chanshare::serve(&nats, &redis, &settings(&[])),
        Chanshare::serve(&nats, &redis, &settings(&[])),
    );
    let api = Api::new(&one);
    let (kim, _) = two_accounts(&api, "kim", "lou").await;
    let phone = api.session("kim").await;
    let mut here = inbox(&one, &kim.access, json!({})).await;
    let mut there = inbox(&two, &kim.access, json!({})).await;
    let mut other_session = inbox(&two, &phone.access, json!({})).await;
    // The revocation watches settle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(api.sign_out(&kim.access).await.status, 204);
    for (gateway, ws) in [("the same", &mut here), ("another", &mut there)] {
        assert_eq!(crate::ws::close_code(ws).await, Some(4401), "{gateway} gateway");
    }
    send(&mut other_session, json!({"type": "ping", "t": 1})).await;
    let pong = frame(&mut other_session).await.expect("the other session's socket is open");
    assert_eq!(pong["type"], "pong");
}

async fn get(api: &Api, path: &str, access: &str) -> Value {
    let answer = api.call(reqwest::Method::GET, path, Some(access), None).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.raw);
    answer.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_and_histories_are_views_rebuilt_identically_from_the_log() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &settings(&[]));
    let api = Api::new(&gateway);
    for name in ["gail", "hank", "ivy"] {
        api.account(name).await;
    }
    let (gail, hank, ivy) =
        (api.session("gail").await, api.session("hank").await, api.session("ivy").await);
    let mut gail_ws = inbox(&gateway, &gail.access, json!({})).await;
    let mut seqs = Vec::new();
    for n in 1..=3 {
        seqs.push(dm(&mut gail_ws, &id(n), "hank", &format!("{n}")).await["seq"].as_u64().unwrap());
    }
    // Hank connects (all three delivered) and reads up to the second.
    let mut hank_ws = inbox(&gateway, &hank.access, json!({})).await;
    until(&mut hank_ws, Duration::from_millis(100), |f| of_type(f, "dm").len() >= 3).await;
    send(&mut hank_ws, json!({"type": "dm_read", "id": "r", "with": "gail", "up_to": seqs[1]}))
        .await;
    until(&mut gail_ws, Duration::from_millis(100), |f| {
        statuses(f, &id(2)).contains(&"read".to_owned())
    })
    .await;
    // Then Ivy writes to Gail, who has gone offline: Gail's newest conversation, not delivered.
    drop(gail_ws);
    let mut ivy_ws = inbox(&gateway, &ivy.access, json!({})).await;
    assert_eq!(dm(&mut ivy_ws, &id(9), "gail", "hi gail").await["type"], "ack");

    let expected = json!([
        {"with": "ivy", "unread": 1, "last": {"text": "hi gail", "from": "ivy", "status": "sent"}},
        {"with": "hank", "unread": 0, "last": {"text": "3", "from": "gail", "status": "delivered"}},
    ]);
    let summary = |inbox: &Value| -> Value {
        inbox.as_array().unwrap().iter().map(|c| json!({
            "with": c["with"], "unread": c["unread"],
            "last": {"text": c["last"]["text"], "from": c["last"]["from"], "status": c["last"]["status"]},
        })).collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = summary(&get(&api, "/api/me/conversations", &gail.access).await);
        if got == expected {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the inbox never showed {expected}: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hank_inbox = get(&api, "/api/me/conversations", &hank.access).await;
    assert_eq!(
        (hank_inbox[0]["with"].as_str(), hank_inbox[0]["unread"].as_u64()),
        (Some("gail"), Some(1))
    );

    // History: newest first, paged by seq, each with its status.
    let page = get(&api, "/api/me/conversations/hank?limit=2", &gail.access).await;
    let shown = |page: &Value| -> Vec<(String, String)> {
        page.as_array()
            .unwrap()
            .iter()
            .map(|m| (m["text"].as_str().unwrap().into(), m["status"].as_str().unwrap().into()))
            .collect()
    };
    assert_eq!(shown(&page), [("3".into(), "delivered".into()), ("2".into(), "read".into())]);
    let before = page[1]["seq"].as_u64().unwrap();
    let older =
        get(&api, &format!("/api/me/conversations/Hank?before={before}"), &gail.access).await;
    assert_eq!(shown(&older), [("1".to_owned(), "read".to_owned())]);
    let strangers = get(&api, "/api/me/conversations/ivy", &hank.access).await;
    assert_eq!(strangers, json!([]));
    let bad = api
        .call(reqwest::Method::GET, "/api/me/conversations/hank?limit=0", Some(&gail.access), None)
        .await;
    assert_eq!(bad.status, 400);

    // The views are the log's: rebuilt from it, they are the same; lost, they come back.
    let conn = redis::Client::open(redis.url()).unwrap().get_connection_manager().await.unwrap();
    let views = views::Views::new(conn.clone());
    let projected = views.dump_dm().await.unwrap();
    assert!(projected.len() > 5, "{projected:?}");
    let log = dm::DmLog::open(async_nats::jetstream::new(nats.client().await)).await.unwrap();
    let events = projectors::dm::rebuild(&log, &views).await.unwrap();
    assert!(events >= 6, "{events}");
    assert_eq!(views.dump_dm().await.unwrap(), projected);
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn.clone()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while views.dump_dm().await.unwrap() != projected {
        assert!(std::time::Instant::now() < deadline, "the lost views were never rebuilt");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
