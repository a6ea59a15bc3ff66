//! The limits a public server needs, against a running `chanshare serve` (issue 18, items 7, 8
//! and 10): slow and silent HTTP connections, lookups of rooms that do not exist, socket and join
//! churn, and history reads. Client addresses are told apart with `X-Forwarded-For` from a
//! trusted proxy (127.0.0.1), as behind Traefik.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};
use tests::{Chanshare, NatsServer, RedisServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// A room socket from client address `from`: its first frame (a welcome) or its close code, or
/// the HTTP status that refused the upgrade.
async fn socket_from(addr: &str, room: &str, query: &str, from: &str) -> Result<Value, u16> {
    let mut request =
        format!("ws://{addr}/api/rooms/{room}/ws?{query}").into_client_request().unwrap();
    request.headers_mut().insert("x-forwarded-for", from.parse().unwrap());
    let mut ws = match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => ws,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            return Err(response.status().as_u16());
        }
        Err(error) => panic!("connect: {error}"),
    };
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                // Keep the socket open for the caller's count: leak it into a task.
                tokio::spawn(async move { while ws.next().await.is_some() {} });
                return Ok(frame);
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(frame.map_or(0, |f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no welcome: {other:?}"),
        }
    }
}

async fn get_from(addr: &str, path: &str, from: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .header("x-forwarded-for", from)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn behind_proxy(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut settings = vec![("CHANSHARE_TRUSTED_PROXIES", "127.0.0.1".to_owned())];
    settings.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    settings
}

/// A connection that sends its headers a byte at a time (slowloris), or nothing at all, is
/// closed at the header timeout instead of holding a file descriptor forever.
#[tokio::test]
async fn slow_and_silent_connections_are_closed_at_the_header_timeout() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let server =
        Chanshare::serve(&nats, &redis, &[("CHANSHARE_HTTP_HEADER_TIMEOUT_SECS", "1".to_owned())]);
    let addr = server.addr();
    assert_eq!(tests::http::get(&addr, "/healthz").0, 200);

    let silent = tokio::spawn({
        let addr = addr.clone();
        async move {
            let started = Instant::now();
            let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let mut buf = [0; 256];
            // Closed: EOF (or a reset). Never a request, so nothing else to read.
            let read = tokio::time::timeout(Duration::from_secs(8), tcp.read(&mut buf)).await;
            assert!(
                matches!(read, Ok(Ok(_) | Err(_))),
                "a silent connection is still open after 8 s"
            );
            started.elapsed()
        }
    });
    let started = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut closed = None;
    for n in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let header = format!("X-Drip-{n}: a\r\n");
        if tcp.write_all(header.as_bytes()).await.is_err() {
            closed = Some(started.elapsed());
            break;
        }
        let mut buf = [0; 512];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut buf)).await
        {
            closed = Some(started.elapsed());
            break;
        }
    }
    let closed = closed.expect("a connection dripping its headers for 8 s is still open");
    assert!(closed < Duration::from_secs(4), "closed after {closed:?} (timeout 1 s)");
    let silent = silent.await.unwrap();
    assert!(silent < Duration::from_secs(4), "silent connection closed after {silent:?}");
    // The server still serves.
    assert_eq!(tests::http::get(&addr, "/healthz").0, 200);
}

/// Room ids cannot be guessed; trying is rate-limited too: after `CHANSHARE_MISSES_PER_MINUTE`
/// lookups of rooms that do not exist, an address gets 429 for any room, on every route.
#[tokio::test]
async fn lookups_of_rooms_that_do_not_exist_are_rate_limited_per_address() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let settings = behind_proxy(&[("CHANSHARE_MISSES_PER_MINUTE", "3")]);
    let server = Chanshare::serve(&nats, &redis, &settings);
    let addr = server.addr();
    let (room, _) = tests::chanshare::create_url_room(&addr, "real room");
    let guesser = "203.0.113.7";
    let guesses =
        ["/api/rooms/no-such-room", "/api/rooms/nor-this/members", "/api/rooms/nope/events"];
    for path in guesses {
        assert_eq!(get_from(&addr, path, guesser).await.0, 404, "{path}");
    }
    let (status, body) = get_from(&addr, "/api/rooms/fourth-guess", guesser).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("rate_limited"), "{body}");
    assert_eq!(get_from(&addr, &format!("/api/rooms/{room}"), guesser).await.0, 429);
    assert_eq!(socket_from(&addr, &room, "name=g", guesser).await.err(), Some(429));
    // Everybody else is not affected.
    let other = "203.0.113.8";
    assert_eq!(get_from(&addr, &format!("/api/rooms/{room}"), other).await.0, 200);
    assert!(socket_from(&addr, &room, "name=o", other).await.is_ok());
}

/// A bot flood cannot fill a room: a room takes `CHANSHARE_JOINS_PER_MINUTE` new members a
/// minute (returning members with a token still come in), and an address opens
/// `CHANSHARE_SOCKETS_PER_MINUTE` sockets a minute.
#[tokio::test]
async fn socket_and_join_churn_is_limited() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let settings =
        behind_proxy(&[("CHANSHARE_JOINS_PER_MINUTE", "3"), ("CHANSHARE_SOCKETS_PER_MINUTE", "4")]);
    let server = Chanshare::serve(&nats, &redis, &settings);
    let addr = server.addr();
    let (room, host_token) = tests::chanshare::create_url_room(&addr, "flooded");

    // Thirty bots from thirty addresses: three get in.
    let mut admitted = 0;
    let mut refused = Vec::new();
    for n in 0..30 {
        match socket_from(&addr, &room, &format!("name=bot{n}"), &format!("198.51.100.{n}")).await {
            Ok(frame) => {
                assert_eq!(frame["type"], "welcome");
                admitted += 1;
            }
            Err(code) => refused.push(code),
        }
    }
    assert_eq!(admitted, 3);
    assert!(refused.iter().all(|code| *code == 4429), "{refused:?}");
    // The host comes back whatever the flood did.
    let frame = socket_from(&addr, &room, &format!("token={host_token}"), "192.0.2.1").await;
    assert_eq!(frame.unwrap()["type"], "welcome");
    let (_, members) = get_from(&addr, &format!("/api/rooms/{room}/members"), "192.0.2.1").await;
    let members: Value = serde_json::from_str(&members).unwrap();
    assert_eq!(members["members"].as_array().unwrap().len(), 4, "{members}");

    // One address: four sockets a minute (its own returning member each time), then 429.
    for _ in 0..3 {
        let frame = socket_from(&addr, &room, &format!("token={host_token}"), "192.0.2.1").await;
        assert_eq!(frame.unwrap()["type"], "welcome");
    }
    let fifth = socket_from(&addr, &room, &format!("token={host_token}"), "192.0.2.1").await;
    assert_eq!(fifth.err(), Some(429));
}

/// `/events` pages stop at a byte cap (700 of a room's longest chat messages make 1.4 MB), say where
/// to go on, and are rate-limited per address.
#[tokio::test]
async fn history_pages_are_capped_in_bytes_and_rate_limited() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let settings = behind_proxy(&[("CHANSHARE_READS_PER_MINUTE", "20")]);
    let server = Chanshare::serve(&nats, &redis, &settings);
    let addr = server.addr();
    let created = tests::chanshare::create_room(
        &addr,
        &json!({"title": "big", "source": {"urls": ["https://example.com/a.webm"]}}),
    );
    let room = events::RoomId::new(created["room_id"].as_str().unwrap()).unwrap();
    let host = events::MemberId::new(created["member_id"].as_str().unwrap()).unwrap();
    // 700 chat messages of 500 four-byte characters: about 1.4 MB of history in fewer than
    // 1000 commits (one page's limit), sent over NATS.
    let commands = protocol::Client::new(nats.client().await, Duration::from_secs(10));
    let text: String = std::iter::repeat_n('𝄞', 500).collect();
    for _ in 0..700 {
        let request = protocol::CommandRequest {
            id: events::CommandId(uuid::Uuid::new_v4()),
            actor: events::Actor::Member(host.clone()),
            command: events::Command::Chat { text: text.clone() },
            traceparent: None,
        };
        let reply = commands.command(&room, &request).await.unwrap();
        assert!(matches!(reply, protocol::CommandReply::Accepted { .. }), "{reply:?}");
    }
    let reader = "203.0.113.20";
    let (mut after, mut versions, mut pages) = (0, Vec::new(), 0);
    loop {
        let path = format!("/api/rooms/{room}/events?after={after}&limit=1000");
        let (status, body) = get_from(&addr, &path, reader).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.len() < (1 << 20) + 300_000, "a page of {} bytes", body.len());
        let page: Value = serde_json::from_str(&body).unwrap();
        let commits = page["commits"].as_array().unwrap();
        if commits.is_empty() {
            break;
        }
        versions.extend(commits.iter().map(|c| c["version"].as_u64().unwrap()));
        after = page["next_after"].as_u64().unwrap();
        pages += 1;
    }
    assert!(pages >= 2, "1.4 MB of commits in {pages} page(s)");
    assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "every commit once");
    assert!(versions.len() >= 10);

    // The same address, twenty reads a minute.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let path = format!("/api/rooms/{room}/events?after=0&limit=1");
        statuses.push(get_from(&addr, &path, reader).await.0);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 20 - pages - 1, "{statuses:?}");
    assert!(statuses[ok..].iter().all(|s| *s == 429), "{statuses:?}");
}
