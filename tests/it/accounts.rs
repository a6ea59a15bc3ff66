//! Accounts end to end (issue 20, DESIGN §4a): real `chanshare serve` processes on real NATS and
//! Redis, HTTP clients and room sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use tests::{Chanshare, NatsServer, RedisServer};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::ws::{Ws, await_answers, command, next, send};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// An HTTP answer: status, JSON body (or `null`), `Retry-After`, and the body as sent.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
    retry_after: Option<u64>,
    pub(crate) raw: String,
}

impl Answer {
    pub(crate) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn text(&self, field: &str) -> String {
        self.body[field].as_str().unwrap_or_else(|| panic!("no {field} in {}", self.raw)).to_owned()
    }
}

/// A session's tokens.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) access: String,
    refresh: String,
}

/// The HTTP API of one gateway, as seen from client address `from` (through a trusted proxy).
pub(crate) struct Api {
    base: String,
    from: String,
    http: reqwest::Client,
}

impl Api {
    pub(crate) fn new(gateway: &Chanshare) -> Self {
        Self::from(gateway, "127.0.0.1")
    }

    fn from(gateway: &Chanshare, from: &str) -> Self {
        Self {
            base: format!("http://{}", gateway.addr()),
            from: from.into(),
            http: reqwest::Client::new(),
        }
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-forwarded-for", &self.from);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let retry_after =
            response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
        let raw = response.text().await.unwrap();
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        Answer { status, body, retry_after, raw }
    }

    async fn register(&self, username: &str, password: &str) -> Answer {
        let body = json!({"username": username, "password": password});
        self.call(reqwest::Method::POST, "/api/accounts", None, Some(body)).await
    }

    async fn sign_in(&self, username: &str, password: &str) -> Answer {
        let body = json!({"username": username, "password": password});
        self.call(reqwest::Method::POST, "/api/sessions", None, Some(body)).await
    }

    async fn refresh(&self, refresh: &str) -> Answer {
        let body = json!({"refresh_token": refresh});
        self.call(reqwest::Method::POST, "/api/sessions/refresh", None, Some(body)).await
    }

    async fn me(&self, access: &str) -> Answer {
        self.call(reqwest::Method::GET, "/api/me", Some(access), None).await
    }

    pub(crate) async fn sign_out(&self, access: &str) -> Answer {
        self.call(reqwest::Method::DELETE, "/api/sessions", Some(access), None).await
    }

    /// Signs in, which must work: the session.
    pub(crate) async fn session(&self, username: &str) -> Session {
        let answer = self.sign_in(username, PASSWORD).await;
        assert_eq!(answer.status, 200, "{}", answer.raw);
        Session { access: answer.text("access_token"), refresh: answer.text("refresh_token") }
    }

    /// Registers `username` with [`PASSWORD`], which must work.
    pub(crate) async fn account(&self, username: &str) -> String {
        let answer = self.register(username, PASSWORD).await;
        assert_eq!(answer.status, 201, "{}", answer.raw);
        answer.text("account_id")
    }

    /// Creates a room of two URL items, signed in as `bearer` or as a guest: its id.
    async fn room(&self, title: &str, bearer: Option<&str>) -> String {
        let body = json!({"title": title, "source": {"urls": [
            "https://example.com/a.webm", "https://example.com/b.webm"]}});
        let answer = self.call(reqwest::Method::POST, "/api/rooms", bearer, Some(body)).await;
        assert_eq!(answer.status, 201, "{}", answer.raw);
        answer.text("room_id")
    }

    async fn state(&self, room: &str) -> Value {
        let answer =
            self.call(reqwest::Method::GET, &format!("/api/rooms/{room}"), None, None).await;
        assert_eq!(answer.status, 200, "{}", answer.raw);
        answer.body
    }

    async fn my_rooms(&self, access: &str) -> Vec<String> {
        let answer = self.call(reqwest::Method::GET, "/api/me/rooms", Some(access), None).await;
        assert_eq!(answer.status, 200, "{}", answer.raw);
        answer.body["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["room_id"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub(crate) fn settings(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut settings = vec![
        ("CHANSHARE_TRUSTED_PROXIES", "127.0.0.1".to_owned()),
        ("CHANSHARE_CREATIONS_PER_MINUTE", "1000".to_owned()),
    ];
    settings.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    settings
}

/// A room socket from client address `from`: the socket and its first frame or close code.
async fn socket(
    gateway: &Chanshare,
    room: &str,
    query: &str,
    from: &str,
) -> (Ws, Result<Value, Option<u16>>) {
    let url = format!("ws://{}/api/rooms/{room}/ws?{query}", gateway.addr());
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("x-forwarded-for", from.parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(request).await.unwrap().0;
    let first = next(&mut ws).await;
    (ws, first)
}

/// Reads until the socket closes: its close code.
async fn closed(ws: &mut Ws) -> Option<u16> {
    loop {
        if let Err(code) = next(ws).await {
            return code;
        }
    }
}

fn member<'a>(state: &'a Value, member_id: &str) -> &'a Value {
    state["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member_id"] == member_id)
        .unwrap_or_else(|| panic!("no member {member_id} in {state}"))
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Sign-up, sign-in, refresh and sign-out as DESIGN §4a pins them, with every refusal.
#[tokio::test]
async fn an_account_signs_up_in_refreshes_and_out() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &settings(&[]));
    let api = Api::new(&gateway);

    let created = api.register("Alice", PASSWORD).await;
    assert_eq!(created.status, 201, "{}", created.raw);
    assert_eq!(created.body["username"], "alice", "usernames are kept lowercase");
    let account_id = created.text("account_id");
    uuid::Uuid::parse_str(&account_id).unwrap();

    let taken = api.register("ALICE", "another password entirely").await;
    assert_eq!((taken.status, taken.code()), (409, "username_taken"), "{}", taken.raw);
    for (username, password, rule) in [
        ("al", PASSWORD, "3"),
        ("bad name!", PASSWORD, "a-z"),
        (&"x".repeat(33), PASSWORD, "32"),
        ("shorty", "too short", "10"),
        ("commoner", "qwertyuiop", "common"),
        ("longpass", &"p".repeat(257), "256"),
    ] {
        let refused = api.register(username, password).await;
        assert_eq!(
            (refused.status, refused.code()),
            (400, "invalid"),
            "{username}: {}",
            refused.raw
        );
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(rule), "{username}: {message} should name the rule");
        assert!(!message.contains(password), "the password is never echoed: {message}");
    }
    let unknown_field = api
        .call(
            reqwest::Method::POST,
            "/api/accounts",
            None,
            Some(json!({"username": "zed", "password": PASSWORD, "admin": true})),
        )
        .await;
    assert_eq!(unknown_field.status, 400, "{}", unknown_field.raw);
    assert!(!unknown_field.raw.contains(PASSWORD), "{}", unknown_field.raw);

    // Sign in (any case), then the access token names the account.
    let signed = api.sign_in("ALICE", PASSWORD).await;
    assert_eq!(signed.status, 200, "{}", signed.raw);
    assert_eq!(
        (signed.text("account_id"), signed.text("username")),
        (account_id.clone(), "alice".into())
    );
    let expires_in = signed.body["expires_in"].as_u64().unwrap();
    assert!((60..=900).contains(&expires_in), "access tokens live at most 15 min: {expires_in}");
    let first =
        Session { access: signed.text("access_token"), refresh: signed.text("refresh_token") };
    let header = first.access.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert!(header["kid"].is_string() && header["alg"] == "HS256", "{header}");
    let me = api.me(&first.access).await;
    assert_eq!(me.status, 200, "{}", me.raw);
    assert_eq!((me.text("account_id"), me.text("username")), (account_id.clone(), "alice".into()));
    for bad in [None, Some("not-a-jwt"), Some(&first.refresh[..])] {
        let refused = api.call(reqwest::Method::GET, "/api/me", bad, None).await;
        assert_eq!(
            (refused.status, refused.code()),
            (401, "unauthorized"),
            "{bad:?}: {}",
            refused.raw
        );
    }

    // Refresh spends the token; a spent one presented again revokes the whole family.
    let second = api.refresh(&first.refresh).await;
    assert_eq!(second.status, 200, "{}", second.raw);
    let second =
        Session { access: second.text("access_token"), refresh: second.text("refresh_token") };
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(api.me(&second.access).await.status, 200);
    // A made-up token of the family (its id is in every access token) is only refused: a guess
    // signs nobody out.
    let guessed = format!("{}AAAA", &second.refresh[..second.refresh.len() - 4]);
    assert_eq!(api.refresh(&guessed).await.code(), "unauthorized");
    let third = api.refresh(&second.refresh).await;
    assert_eq!(third.status, 200, "{}", third.raw);
    let third =
        Session { access: third.text("access_token"), refresh: third.text("refresh_token") };
    let reused = api.refresh(&first.refresh).await;
    assert_eq!((reused.status, reused.code()), (401, "session_revoked"), "{}", reused.raw);
    let after = api.refresh(&third.refresh).await;
    assert_eq!((after.status, after.code()), (401, "session_revoked"), "the thief's pair dies too");
    assert_eq!(api.me(&third.access).await.code(), "session_revoked");
    assert_eq!(api.refresh("rt1.garbage").await.code(), "unauthorized");

    // Sign-out ends one session; another device's stays.
    let laptop = api.session("alice").await;
    let phone = api.session("alice").await;
    assert_eq!(api.sign_out(&laptop.access).await.status, 204);
    assert_eq!(api.me(&laptop.access).await.code(), "session_revoked");
    assert_eq!(api.refresh(&laptop.refresh).await.code(), "session_revoked");
    assert_eq!(api.sign_out(&laptop.access).await.status, 401, "signed out already");
    assert_eq!(api.me(&phone.access).await.status, 200, "the phone is still signed in");
    assert_eq!(api.refresh(&phone.refresh).await.status, 200);

    let metrics = gateway.get("/metrics").1;
    assert_eq!(metric(&metrics, "chanshare_account_signups_total"), 1.0, "{metrics}");
    assert_eq!(metric(&metrics, "chanshare_account_logins_total{outcome=\"ok\"}"), 3.0);
    assert_eq!(metric(&metrics, "chanshare_account_refreshes_total"), 3.0);
    assert_eq!(metric(&metrics, "chanshare_account_refresh_reuse_total"), 1.0);
}

/// Ten sign-ups of one name in different cases, at once, on two gateways: one account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_racing_sign_ups_for_a_name_wins_across_gateways() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateways = [
        Chanshare::serve(&nats, &redis, &settings(&[])),
        Chanshare::serve(&nats, &redis, &settings(&[])),
    ];
    let apis: Vec<_> = gateways.iter().map(Api::new).map(Arc::new).collect();
    let racers = (0..10).map(|n| {
        let api = apis[n % 2].clone();
        let name = if n % 3 == 0 { "Racer" } else { "racer" };
        tokio::spawn(async move { (n, api.register(name, &format!("racer password {n}")).await) })
    });
    let answers: Vec<_> =
        futures::future::join_all(racers).await.into_iter().map(Result::unwrap).collect();
    let winners: Vec<_> = answers.iter().filter(|(_, a)| a.status == 201).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (_, answer) in answers.iter().filter(|(_, a)| a.status != 201) {
        assert_eq!((answer.status, answer.code()), (409, "username_taken"), "{}", answer.raw);
    }
    let winner = winners[0].0;
    for (n, api) in (0..10).map(|n| (n, &apis[n % 2])) {
        let status = api.sign_in("racer", &format!("racer password {n}")).await.status;
        assert_eq!(status, if n == winner { 200 } else { 401 }, "racer {n}");
    }
}

/// A wrong password and an unknown user get the same answer; repeated failures are limited per
/// account and per address with `Retry-After`, before any password is checked.
#[tokio::test]
async fn failed_sign_ins_look_alike_and_are_limited() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &settings(&[]));
    let api = Api::from(&gateway, "10.0.0.1");
    api.account("bob").await;
    api.account("carol").await;

    let wrong = api.sign_in("bob", "not bob's password").await;
    let unknown = api.sign_in("nobody", "not bob's password").await;
    let malformed = api.sign_in("no body!", "not bob's password").await;
    assert_eq!((wrong.status, wrong.code()), (401, "bad_credentials"), "{}", wrong.raw);
    assert_eq!((wrong.status, &wrong.raw), (unknown.status, &unknown.raw));
    assert_eq!((wrong.status, &wrong.raw), (malformed.status, &malformed.raw));

    // Per account: ten failures (from anywhere) lock it, even for the right password.
    for n in 2..=10 {
        let attempt = Api::from(&gateway, &format!("10.0.1.{n}")).sign_in("bob", "guess").await;
        assert_eq!(attempt.status, 401, "failure {n}");
    }
    let locked = Api::from(&gateway, "10.0.2.1").sign_in("bob", PASSWORD).await;
    assert_eq!((locked.status, locked.code()), (429, "rate_limited"), "{}", locked.raw);
    let wait = locked.retry_after.expect("a Retry-After");
    assert!((1..=900).contains(&wait), "{wait}");
    assert_eq!(api.sign_in("carol", PASSWORD).await.status, 200, "other accounts are not locked");

    // Per address: thirty failures over any names lock the address, not the accounts.
    let spray = Api::from(&gateway, "10.9.9.9");
    for n in 0..30 {
        assert_eq!(spray.sign_in(&format!("user{n}"), "guess guess").await.status, 401, "{n}");
    }
    let refused = spray.sign_in("carol", PASSWORD).await;
    assert_eq!((refused.status, refused.code()), (429, "rate_limited"));
    assert!(refused.retry_after.is_some());
    assert_eq!(Api::from(&gateway, "10.9.9.8").sign_in("carol", PASSWORD).await.status, 200);

    let metrics = gateway.get("/metrics").1;
    assert_eq!(metric(&metrics, "chanshare_account_logins_total{outcome=\"limited\"}"), 2.0);
    assert_eq!(metric(&metrics, "chanshare_account_logins_total{outcome=\"failed\"}"), 42.0);

    // A burst at once is counted as it arrives, not after the hashing: of 40 concurrent guesses
    // at one account (from 40 addresses), at most 10 are checked.
    api.account("dora").await;
    let burst = (0..40).map(|n| {
        let api = Api::from(&gateway, &format!("10.5.0.{}", n + 1));
        tokio::spawn(async move { api.sign_in("dora", "a guess in a burst").await.status })
    });
    let statuses: Vec<u16> =
        futures::future::join_all(burst).await.into_iter().map(Result::unwrap).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(checked, 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 30);
}

/// Password hashing is bounded and off the async workers: while a flood of sign-ins is being
/// hashed, a room socket's pings and commands are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_flood_leaves_room_sockets_responsive() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &settings(&[]));
    let api = Api::new(&gateway);
    // Six accounts signing in from sixty addresses, all at once: under every throttle (an
    // account's concurrent attempts count until they succeed), all of it hashing.
    for n in 0..6 {
        api.account(&format!("dave{n}")).await;
    }
    let room = api.room("flood", None).await;
    let (mut ws, first) = socket(&gateway, &room, "name=watcher", "127.0.0.1").await;
    assert_eq!(first.unwrap()["type"], "welcome");
    assert_eq!(next(&mut ws).await.unwrap()["type"], "snapshot");
    let mut seen = crate::ws::Seen::default();

    const FLOOD: usize = 60;
    let done = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..FLOOD)
        .map(|n| {
            let api = Api::from(&gateway, &format!("10.8.0.{}", n + 1));
            let done = done.clone();
            tokio::spawn(async move {
                let status = api.sign_in(&format!("dave{}", n % 6), PASSWORD).await.status;
                done.fetch_add(1, Ordering::SeqCst);
                status
            })
        })
        .collect();
    // Let the flood reach the hasher, then talk to the room.
    while done.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for k in 0..5 {
        send(&mut ws, json!({"type": "ping", "t": k})).await;
        loop {
            if next(&mut ws).await.unwrap()["type"] == "pong" {
                break;
            }
        }
        send(&mut ws, command(json!({"type": "chat", "text": format!("still here {k}")}))).await;
        await_answers(&mut ws, &mut seen, 1).await;
    }
    let answered_while = done.load(Ordering::SeqCst);
    assert!(answered_while < FLOOD, "the socket was answered while sign-ins were still queued");
    for status in futures::future::join_all(flood).await {
        assert_eq!(status.unwrap(), 200);
    }
    assert!(seen.acks.iter().all(|a| a["type"] == "ack"), "{:?}", seen.acks);
}

/// An account is one member on every device, shown with its username; the room's creator keeps
/// it: a guest who became host while the creator was away cannot kick them, and loses host when
/// they come back. Both find the room under their rooms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_one_member_everywhere_and_owns_its_room() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway =
        Chanshare::serve(&nats, &redis, &settings(&[("CHANSHARE_LEAVE_GRACE_MS", "200")]));
    let api = Api::new(&gateway);
    api.account("alice").await;
    api.account("bob").await;
    let (laptop, phone, bob) =
        (api.session("alice").await, api.session("alice").await, api.session("bob").await);
    let room = api.room("alice's party", Some(&laptop.access)).await;

    // Two browsers, two addresses: one member, the host, named and marked by the account.
    let (mut a1, first) =
        socket(&gateway, &room, &format!("access_token={}", laptop.access), "10.1.0.1").await;
    let first = first.unwrap();
    let alice = first["member_id"].as_str().unwrap().to_owned();
    let (mut a2, second) =
        socket(&gateway, &room, &format!("access_token={}", phone.access), "10.1.0.2").await;
    assert_eq!(second.unwrap()["member_id"], alice.as_str(), "the same member on every device");
    // A guest calling itself alice is just a guest.
    let (impostor, fake) = socket(&gateway, &room, "name=alice", "10.2.0.1").await;
    let impostor_id = fake.unwrap()["member_id"].as_str().unwrap().to_owned();
    let state = api.state(&room).await;
    let members = state["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{state}");
    let (owner, guest) = (member(&state, &alice), member(&state, &impostor_id));
    assert_eq!(
        (&owner["name"], &owner["account"], &owner["owner"]),
        (&json!("alice"), &json!("alice"), &json!(true))
    );
    assert_eq!(owner["role"], "host");
    assert!(guest.get("account").is_none() && guest.get("owner").is_none(), "{guest}");
    // The member token the welcome carries is not the account: alone it does not join (it
    // outlives the session; only a signed-in join is the account's member).
    let member_token = first["token"].as_str().unwrap().to_owned();
    let (_, alone) = socket(&gateway, &room, &format!("token={member_token}"), "10.2.0.3").await;
    assert_eq!(alone.err().flatten(), Some(4401), "a member token alone is not the account");
    // A bad or revoked access token is refused, never downgraded to a guest.
    let (_, refused) = socket(&gateway, &room, "access_token=forged&name=x", "10.2.0.2").await;
    assert_eq!(refused.err().flatten(), Some(4401));

    // The creator leaves; the guest becomes host, and cannot kick the creator.
    drop((a1.close(None).await, a2.close(None).await));
    let mut usurper = impostor;
    let mut usurper_seen = crate::ws::Seen::default();
    tests::eventually(Duration::from_secs(10), "the guest is host", || async {
        member(&api.state(&room).await, &impostor_id)["role"] == "host"
    })
    .await;
    send(&mut usurper, command(json!({"type": "kick", "member_id": alice}))).await;
    await_answers(&mut usurper, &mut usurper_seen, 1).await;
    let answer = usurper_seen.acks.last().unwrap();
    assert_eq!(
        (&answer["type"], &answer["code"]),
        (&json!("reject"), &json!("forbidden")),
        "{answer}"
    );

    // The creator comes back and is host again; bob, signed in, joins too.
    let (_a3, back) =
        socket(&gateway, &room, &format!("access_token={}", laptop.access), "10.1.0.3").await;
    assert_eq!(back.unwrap()["member_id"], alice.as_str());
    tests::eventually(Duration::from_secs(10), "the creator is host again", || async {
        member(&api.state(&room).await, &alice)["role"] == "host"
    })
    .await;
    let (_b, joined) =
        socket(&gateway, &room, &format!("access_token={}", bob.access), "10.3.0.1").await;
    let bob_id = joined.unwrap()["member_id"].as_str().unwrap().to_owned();
    let state = api.state(&room).await;
    assert_eq!(member(&state, &bob_id)["account"], "bob");
    assert_eq!(
        member(&state, &bob_id)["name"],
        "bob",
        "a signed-in member is called by the username"
    );

    // Their rooms: alice's newest first, bob's the room he joined.
    let later = api.room("alice's second party", Some(&phone.access)).await;
    tests::eventually(Duration::from_secs(10), "both rooms are alice's", || async {
        api.my_rooms(&laptop.access).await == [later.clone(), room.clone()]
    })
    .await;
    tests::eventually(Duration::from_secs(10), "bob's room", || async {
        api.my_rooms(&bob.access).await == [room.clone()]
    })
    .await;
    assert_eq!(
        api.call(reqwest::Method::GET, "/api/me/rooms", None, None).await.code(),
        "unauthorized"
    );
}

/// A kicked signed-in member stays out from another browser (a new session) at another address.
#[tokio::test]
async fn a_banned_account_cannot_rejoin_from_another_browser() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &settings(&[]));
    let api = Api::new(&gateway);
    api.account("troll").await;
    let (room, host_token) = tests::chanshare::create_url_room(&gateway.addr(), "no trolls");
    let (mut host, first) =
        socket(&gateway, &room, &format!("token={host_token}"), "10.0.0.1").await;
    assert_eq!(first.unwrap()["type"], "welcome");
    let mut host_seen = crate::ws::Seen::default();
    let session = api.session("troll").await;
    let (mut troll, joined) =
        socket(&gateway, &room, &format!("access_token={}", session.access), "10.6.6.6").await;
    let troll_id = joined.unwrap()["member_id"].as_str().unwrap().to_owned();

    send(&mut host, command(json!({"type": "kick", "member_id": troll_id}))).await;
    await_answers(&mut host, &mut host_seen, 1).await;
    assert_eq!(host_seen.acks.last().unwrap()["type"], "ack", "{:?}", host_seen.acks);
    assert_eq!(closed(&mut troll).await, Some(4403));

    let other_browser = api.session("troll").await;
    let query = format!("access_token={}&name=totally-new", other_browser.access);
    let (_, again) = socket(&gateway, &room, &query, "10.7.7.7").await;
    assert_eq!(again.err().flatten(), Some(4403), "the account is banned, wherever it comes from");
    // Another room is not affected.
    let elsewhere = api.room("elsewhere", None).await;
    let (_, welcome_there) =
        socket(&gateway, &elsewhere, &format!("access_token={}", other_browser.access), "10.7.7.7")
            .await;
    assert_eq!(welcome_there.unwrap()["type"], "welcome");
}

/// Every stored byte and every log line, after a full account life: no password, no raw token.
#[tokio::test]
async fn no_password_or_raw_token_is_stored_or_logged() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let gateway = Chanshare::serve(&nats, &redis, &settings(&[]));
    let api = Api::new(&gateway);
    const WRONG: &str = "a wrong password typed by mistake";
    api.account("secretive").await;
    assert_eq!(api.sign_in("secretive", WRONG).await.status, 401);
    let first = api.session("secretive").await;
    let refreshed = api.refresh(&first.refresh).await;
    let second = Session {
        access: refreshed.text("access_token"),
        refresh: refreshed.text("refresh_token"),
    };
    let room = api.room("secrets", Some(&second.access)).await;
    let (mut ws, joined) =
        socket(&gateway, &room, &format!("access_token={}", second.access), "127.0.0.1").await;
    assert_eq!(joined.unwrap()["type"], "welcome");
    drop(ws.close(None).await);
    assert_eq!(api.refresh(&first.refresh).await.code(), "session_revoked");
    let third = api.session("secretive").await;
    assert_eq!(api.sign_out(&third.access).await.status, 204);

    let mut secrets = vec![PASSWORD.to_owned(), WRONG.to_owned()];
    for session in [&first, &second, &third] {
        secrets.push(session.access.clone());
        secrets.push(session.refresh.clone());
        // The random part alone, and the JWT's signature alone.
        secrets.push(session.refresh.rsplit('.').next().unwrap().to_owned());
        secrets.push(session.access.rsplit('.').next().unwrap().to_owned());
    }

    // The log: every message of every stream (rooms, accounts, sessions).
    let client = nats.client().await;
    let js = async_nats::jetstream::new(client);
    let names: Vec<String> = js.stream_names().map(|n| n.unwrap()).collect().await;
    assert!(names.iter().any(|n| n == "CHANSHARE_ACCOUNTS"), "{names:?}");
    let mut stored = String::new();
    for name in &names {
        let mut stream = js.get_stream(name).await.unwrap();
        let info = stream.info().await.unwrap().clone();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            if let Ok(message) = stream.get_raw_message(seq).await {
                stored.push_str(&String::from_utf8_lossy(&message.payload));
                stored.push_str(&format!("{:?}\n", message.headers));
            }
        }
    }
    assert!(stored.contains("$argon2id$"), "the account stream holds the hash");
    // Redis: every key and value.
    let mut redis_conn =
        redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut redis_conn).await.unwrap();
    let mut cached = String::new();
    for key in keys {
        let dump: Option<Vec<u8>> =
            redis::cmd("DUMP").arg(&key).query_async(&mut redis_conn).await.unwrap();
        cached.push_str(&key);
        cached.push_str(&String::from_utf8_lossy(&dump.unwrap_or_default()));
    }
    assert!(!cached.contains("$argon2"), "no hash in Redis");
    // The processes' logs.
    let logs = format!(
        "{}\n{}",
        gateway.log(),
        std::fs::read_to_string(nats.log_path()).unwrap_or_default()
    );
    assert!(logs.contains("account registered"), "the log is the one we think");
    assert!(!logs.contains("$argon2"), "no hash in the logs");
    // `replay accounts` says who and when, never a hash or a digest.
    let listed = tests::chanshare::replay(
        &tests::chanshare::env(&nats, &redis, tests::chanshare::SECRET),
        &["accounts", "--json"],
    );
    let out = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.status.success(), "{out}{}", String::from_utf8_lossy(&listed.stderr));
    let line: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["username"], "secretive");
    assert_eq!((&line["sessions_active"], &line["sessions_revoked"]), (&json!(0), &json!(2)));
    let digests: Vec<&str> = stored
        .split('"')
        .filter(|s| {
            s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .collect();
    assert!(!digests.is_empty(), "the session bucket holds digests");
    for digest in digests {
        assert!(!out.contains(digest), "replay printed a token digest");
    }
    assert!(!out.contains("$argon2"), "replay printed a hash: {out}");
    for secret in &secrets {
        for (place, text) in [("the log", &stored), ("redis", &cached), ("the process logs", &logs)]
        {
            assert!(
                !text.contains(secret.as_str()),
                "{place} holds a secret ({} chars)",
                secret.len()
            );
        }
    }
}
