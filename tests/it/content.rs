//! The content service against real Redis, NATS, S3 (s3s-fs) and the 4chan fixture server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use content::{Content, Media, MediaLimits, Resolver};
use md5::{Digest, Md5};
use object_store::ObjectStore;
use tests::chan::fixtures_dir;
use tests::{ChanFixture, Chanshare, Fault, NatsServer, RedisServer, S3Server};
use tokio::sync::oneshot;

const VIDEO: &str = "1743100200123456.webm";
/// The playable media of the fixture thread `wsg/5812345`, in thread order.
const THREAD_TITLES: [&str; 6] = [
    "cat jumps.webm",
    "IMG_4412.mp4",
    "reaction.gif",
    "mandel bröt.jpg",
    "old vp8 clip.webm",
    "cells.png",
];

/// The real servers a content test needs: NATS, Redis, S3 (bucket `media`) and the fake 4chan.
struct Servers {
    nats: NatsServer,
    redis: RedisServer,
    s3: S3Server,
    fixture: ChanFixture,
}

impl Servers {
    async fn start() -> Servers {
        Servers {
            nats: NatsServer::start(),
            redis: RedisServer::start(),
            s3: S3Server::start("media"),
            fixture: ChanFixture::start().await,
        }
    }
}

/// An in-process content replica: the NATS service, the watcher, and /media on a free port.
struct Replica {
    base: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Replica {
    async fn start(
        nats: &NatsServer,
        redis: &RedisServer,
        fixture: &ChanFixture,
        store: Arc<dyn ObjectStore>,
    ) -> Replica {
        Replica::start_with(nats, redis, fixture, store, false).await
    }

    /// A replica that, with `worksafe_only`, refuses boards that are not worksafe.
    async fn start_with(
        nats: &NatsServer,
        redis: &RedisServer,
        fixture: &ChanFixture,
        store: Arc<dyn ObjectStore>,
        worksafe_only: bool,
    ) -> Replica {
        Replica::launch(nats, redis, fixture, store, worksafe_only, MediaLimits::default()).await
    }

    /// A replica whose media cache keeps to `limits`.
    async fn start_limited(
        nats: &NatsServer,
        redis: &RedisServer,
        fixture: &ChanFixture,
        store: Arc<dyn ObjectStore>,
        limits: MediaLimits,
    ) -> Replica {
        Replica::launch(nats, redis, fixture, store, false, limits).await
    }

    async fn launch(
        nats: &NatsServer,
        redis: &RedisServer,
        fixture: &ChanFixture,
        store: Arc<dyn ObjectStore>,
        worksafe_only: bool,
        limits: MediaLimits,
    ) -> Replica {
        let conn =
            redis::Client::open(redis.url()).unwrap().get_connection_manager().await.unwrap();
        let upstream = Arc::new(
            content::upstream::Upstream::new(
                &fixture.api_url(),
                &fixture.media_url(),
                conn.clone(),
            )
            .unwrap(),
        );
        let metrics = content::Metrics::new(&prometheus::Registry::new()).unwrap();
        let media = Media::new(store, upstream.clone(), conn.clone(), metrics).with_limits(limits);
        let content = Content {
            resolver: Resolver::new(upstream, conn.clone()).worksafe_only(worksafe_only),
            media: media.clone(),
            redis: conn,
            watch_tick: Duration::from_millis(200),
            watch_ids: uuid::Uuid::from_u128(0x5ec2e7),
            max_watches: 500,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let http =
            tokio::spawn(async move { axum::serve(listener, media.router()).await.unwrap() });
        let client = nats.client().await;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            content::run(client, content, async {
                stopped.await.ok();
            })
            .await
            .unwrap();
            http.abort();
        });
        wait_for_service(nats, "chanshare-content").await;
        Replica { base, stop, task }
    }

    async fn stop(self) {
        self.stop.send(()).ok();
        self.task.await.unwrap();
    }
}

/// `chanshare content` on the fixture with a media directory of its own, plus `extra` settings.
/// Its "up" line comes once its NATS service answers (stack::serve), so it serves on return.
fn content_process(
    nats: &NatsServer,
    redis: &RedisServer,
    fixture: &ChanFixture,
    media: &std::path::Path,
    extra: &[(&'static str, String)],
) -> Chanshare {
    let mut env = vec![
        ("CHANSHARE_NATS_URL", nats.url()),
        ("CHANSHARE_REDIS_URL", redis.url()),
        ("CHANSHARE_CHAN_API_URL", fixture.api_url()),
        ("CHANSHARE_CHAN_MEDIA_URL", fixture.media_url()),
        ("CHANSHARE_MEDIA_STORE", format!("file://{}", media.display())),
    ];
    env.extend(extra.iter().cloned());
    Chanshare::start("content", &env)
}

async fn wait_for_service(nats: &NatsServer, name: &str) {
    let client = nats.client().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.request(format!("$SRV.PING.{name}"), "".into()).await.is_err() {
        assert!(Instant::now() < deadline, "{name} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn s3_store(s3: &S3Server) -> Arc<dyn ObjectStore> {
    Arc::new(s3.store("media"))
}

async fn resolve(nats: &NatsServer, board: &str, thread: u64) -> serde_json::Value {
    let client = nats.client().await;
    let body = serde_json::json!({"board": board, "thread": thread}).to_string();
    let reply = client.request("chanshare.content.resolve", body.into()).await.unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

fn fixture_file(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join("media/wsg").join(name)).unwrap()
}

#[tokio::test]
async fn resolving_threads() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let replica = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;

    let live = resolve(&nats, "wsg", 5812345).await;
    assert_eq!(live["status"], "resolved", "{live}");
    assert_eq!(live["archived"], false);
    let items = live["items"].as_array().unwrap();
    let titles: Vec<_> = items.iter().map(|i| i["title"].as_str().unwrap()).collect();
    assert_eq!(titles, THREAD_TITLES);
    assert_eq!(items[0]["url"], "/media/wsg/1743100200123456.webm");
    assert_eq!(items[0]["thumb_url"], "/media/wsg/1743100200123456s.jpg");
    assert_eq!(items[0]["kind"], "video");
    assert_eq!(items[2]["kind"], "image");
    assert_eq!(items[1]["post_url"], "https://boards.4chan.org/wsg/thread/5812345#p5812351");
    assert_eq!(items[0]["size"], 34336);
    assert_eq!(items[0]["md5"], "JpDgWvkXN/aiaJ60UD4xQQ==");
    assert_eq!(live["title"], "YGYL thread", "the opening post's subject");

    let archived = resolve(&nats, "wsg", 5800000).await;
    assert_eq!(
        (archived["status"].as_str(), archived["archived"].as_bool()),
        (Some("resolved"), Some(true))
    );
    assert_eq!(resolve(&nats, "wsg", 1).await["status"], "not_found");
    let bad = resolve(&nats, "../etc", 1).await;
    assert_eq!((bad["status"].as_str(), bad["code"].as_str()), (Some("error"), Some("invalid")));

    // A second resolve within 10 s is served from the cache; a later one sends If-Modified-Since.
    let before = fixture.api_requests().len();
    resolve(&nats, "wsg", 5812345).await;
    assert_eq!(fixture.api_requests().len(), before, "no upstream request within 10 s");
    replica.stop().await;
}

#[tokio::test]
async fn range_requests_head_and_etags_from_s3() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let replica = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    resolve(&nats, "wsg", 5812345).await;
    let http = reqwest::Client::new();
    let url = format!("{}/media/wsg/{VIDEO}", replica.base);
    let original = fixture_file(VIDEO);
    let size = original.len();

    let full = http.get(&url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    let headers = full.headers().clone();
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["content-type"], "video/webm");
    assert_eq!(headers["x-content-type-options"], "nosniff", "media is never sniffed");
    assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(headers["content-length"], size.to_string().as_str());
    assert_eq!(full.bytes().await.unwrap().as_ref(), &original[..]);
    let etag = headers["etag"].to_str().unwrap().to_owned();

    let cases: [(&str, u16, Option<String>, std::ops::Range<usize>); 4] = [
        ("bytes=0-", 206, Some(format!("bytes 0-{}/{size}", size - 1)), 0..size),
        ("bytes=100-1099", 206, Some(format!("bytes 100-1099/{size}")), 100..1100),
        (
            "bytes=-16",
            206,
            Some(format!("bytes {}-{}/{size}", size - 16, size - 1)),
            size - 16..size,
        ),
        ("bytes=999999-", 416, Some(format!("bytes */{size}")), 0..0),
    ];
    for (range, status, content_range, bytes) in cases {
        let response = http.get(&url).header("range", range).send().await.unwrap();
        assert_eq!(response.status(), status, "{range}");
        assert_eq!(
            response.headers().get("content-range").map(|v| v.to_str().unwrap().to_owned()),
            content_range,
            "{range}"
        );
        assert_eq!(response.bytes().await.unwrap().as_ref(), &original[bytes], "{range}");
    }

    let head = http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], size.to_string().as_str());
    assert!(head.bytes().await.unwrap().is_empty());
    let cached = http.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(cached.status(), 304);

    // The thumbnail is cached too, as a jpeg.
    let thumb =
        http.get(format!("{}/media/wsg/1743100200123456s.jpg", replica.base)).send().await.unwrap();
    assert_eq!(
        (thumb.status().as_u16(), thumb.headers()["content-type"].to_str().unwrap()),
        (200, "image/jpeg")
    );
    assert_eq!(thumb.bytes().await.unwrap().as_ref(), &fixture_file("1743100200123456s.jpg")[..]);
    // The object in S3 is exactly the file.
    let stored = s3.root().join("media/wsg").join(VIDEO);
    assert_eq!(std::fs::read(stored).unwrap(), original);
    replica.stop().await;
}

/// 50 concurrent requests for one uncached file over two replicas: one upstream download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_download_once_across_replicas() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let a = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    let b = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    resolve(&nats, "wsg", 5812345).await;
    fixture.set_latency(Duration::from_millis(300));
    let http = reqwest::Client::new();
    let file = "1743100437554012.mp4";
    let original = fixture_file(file);
    let requests: Vec<_> = (0..50)
        .map(|n| {
            let url = format!("{}/media/wsg/{file}", if n % 2 == 0 { &a.base } else { &b.base });
            let http = http.clone();
            tokio::spawn(async move { http.get(url).send().await.unwrap().bytes().await.unwrap() })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().as_ref(), &original[..]);
    }
    let downloads = fixture.media_requests().iter().filter(|p| p.ends_with(file)).count();
    assert_eq!(downloads, 1, "one upstream download for 50 requests");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn bad_upstream_bytes_are_never_cached() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let replica = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    resolve(&nats, "wsg", 5812345).await;
    let http = reqwest::Client::new();
    let file = "1743100655000817.gif";
    let url = format!("{}/media/wsg/{file}", replica.base);
    for fault in [Fault::WrongBytes, Fault::Truncate, Fault::Status(500)] {
        // 5xx is retried; fail every attempt.
        for _ in 0..3 {
            fixture.fail_next_media(fault);
        }
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 502, "{fault:?}");
        let error: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert!(error["error"]["message"].is_string());
        assert!(!s3.root().join("media/wsg").join(file).exists(), "{fault:?}: nothing stored");
        fixture.clear_faults();
    }
    let healthy = http.get(&url).send().await.unwrap();
    assert_eq!(healthy.status(), 200);
    assert_eq!(healthy.bytes().await.unwrap().as_ref(), &fixture_file(file)[..]);

    // Upstream rate limiting is our 503 with Retry-After; nothing is stored.
    for _ in 0..3 {
        fixture.fail_next_media(Fault::Status(429));
    }
    let limited =
        http.get(format!("{}/media/wsg/1743100800333444.webm", replica.base)).send().await.unwrap();
    let status = limited.status();
    let retry = limited.headers().contains_key("retry-after");
    assert_eq!(status, 503, "{:?}", limited.text().await);
    assert!(retry);
    fixture.clear_faults();

    // Upstream 404 is our 404.
    let missing =
        http.get(format!("{}/media/wsg/1743100750000001.jpg", replica.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    replica.stop().await;
}

#[tokio::test]
async fn traversal_and_foreign_paths_are_refused() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let replica = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    resolve(&nats, "wsg", 5812345).await;
    let http = reqwest::Client::new();
    let bad = [
        "/media/wsg/..%2F..%2Fetc%2Fpasswd",
        "/media/wsg/..%2Fsecret.webm",
        "/media/WSG/1743100200123456.webm",
        "/media/w.g/1743100200123456.webm",
        "/media/wsg/1743100200123456.exe",
        "/media/wsg/1743100200123456.webm%00.jpg",
        "/media/wsg/http:%2F%2Fevil.example%2Fx.webm",
        "/media/wsg/-1.webm",
        "/media/wsg/1743100200123456s.png",
    ];
    let before = fixture.media_requests().len();
    for path in bad {
        let response = http.get(format!("{}{path}", replica.base)).send().await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
    }
    assert_eq!(fixture.media_requests().len(), before, "no refused path reached upstream");
    // A well-formed name that no resolved thread has is not fetched at all.
    let before = fixture.media_requests().len();
    let unknown =
        http.get(format!("{}/media/wsg/1234567890123456.webm", replica.base)).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(fixture.media_requests().len(), before, "no upstream request for an unknown file");
    replica.stop().await;
}

/// Two replicas resolving as fast as they can for 30 s: never two API requests in one second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_one_api_request_per_second_across_replicas() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let a = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    let b = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let url = nats.url();
            tokio::spawn(async move {
                let client = async_nats::connect(url).await.unwrap();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    // Distinct threads (mostly missing): each needs an upstream request.
                    let body = serde_json::json!({"board": "wsg", "thread": 100 + w * 100_000 + n})
                        .to_string();
                    client.request("chanshare.content.resolve", body.into()).await.ok();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let mut times = fixture.api_requests();
    times.sort();
    assert!(times.len() >= 20, "the replicas were busy: {} requests", times.len());
    let closest = times.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(closest >= Duration::from_secs(1), "two api requests {closest:?} apart");
    a.stop().await;
    b.stop().await;
}

/// The binary's content role with `CHANSHARE_MEDIA_STORE=s3://…` and with a local directory.
#[tokio::test]
async fn the_content_role_serves_media_from_s3_and_from_a_directory() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let stores = [
        vec![
            ("CHANSHARE_MEDIA_STORE", "s3://media".to_owned()),
            ("CHANSHARE_S3_ENDPOINT", s3.endpoint()),
            ("AWS_ACCESS_KEY_ID", S3Server::ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", S3Server::SECRET_KEY.to_owned()),
        ],
        vec![("CHANSHARE_MEDIA_STORE", format!("file://{}", dir.path().display()))],
    ];
    for store in stores {
        let mut env = vec![
            ("CHANSHARE_NATS_URL", nats.url()),
            ("CHANSHARE_REDIS_URL", redis.url()),
            ("CHANSHARE_CHAN_API_URL", fixture.api_url()),
            ("CHANSHARE_CHAN_MEDIA_URL", fixture.media_url()),
        ];
        env.extend(store);
        let chanshare = Chanshare::start("content", &env);
        assert_eq!(resolve(&nats, "wsg", 5812345).await["status"], "resolved");
        let response =
            reqwest::get(format!("http://{}/media/wsg/1743100900555666.png", chanshare.addr()))
                .await
                .unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        assert_eq!(status, 200, "{}: {}", String::from_utf8_lossy(&body), chanshare.log());
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
        assert_eq!(md5, "+WkM+qPy1mxlCrZb64zdMw==", "{}", chanshare.log());
    }
    assert!(s3.root().join("media/wsg/1743100900555666.png").is_file());
    assert!(dir.path().join("wsg/1743100900555666.png").is_file());
}

/// A room made from a live thread: its playable media in thread order, the first items warmed
/// in the cache, and the thread's new reply added once (two content replicas watching).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chan_rooms_follow_their_thread() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let a = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    let b = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    let commands =
        crate::commands::Replica::start(&nats, &redis, crate::commands::quiet_reaper()).await;
    let client = nats.client().await;
    let create = |thread: u64| {
        let client = client.clone();
        async move {
            let body = serde_json::json!({"source": {"chan": {"board": "wsg", "thread": thread}}})
                .to_string();
            let reply = client.request("chanshare.rooms.create", body.into()).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
        }
    };
    let created = create(5812345).await;
    assert_eq!(created["status"], "created", "{created}");
    let room = events::RoomId::new(created["room_id"].as_str().unwrap()).unwrap();
    let (log, _) = eventlog::EventLog::connect(nats.client().await, 1).await.unwrap();
    let state = room_state(&log, &room).await;
    let titles: Vec<_> = state.playlist.iter().map(|i| i.media.title.as_str()).collect();
    assert_eq!(titles, THREAD_TITLES);
    assert_eq!(state.title, "YGYL thread", "titled by the thread's subject");

    // The first three items are fetched into the cache in the background.
    let first_three = ["1743100200123456.webm", "1743100437554012.mp4", "1743100655000817.gif"];
    let deadline = Instant::now() + Duration::from_secs(15);
    while !first_three.iter().all(|f| s3.root().join("media/wsg").join(f).is_file()) {
        assert!(
            Instant::now() < deadline,
            "prefetch did not happen: {:?}",
            fixture.media_requests()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The thread grows by one reply: the room gains exactly that item, once.
    fixture.switch_to_after_refresh();
    let deadline = Instant::now() + Duration::from_secs(30);
    while room_state(&log, &room).await.playlist.len() < 7 {
        assert!(Instant::now() < deadline, "the new reply was not added");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let state = room_state(&log, &room).await;
    assert_eq!(state.playlist.len(), 7);
    assert_eq!(
        state.playlist[6].media.title, "late addition.webm",
        "{:?}",
        state.playlist[6].media
    );
    let additions = history(&log, &room)
        .await
        .iter()
        .skip(1)
        .filter(|s| s.commit.events.iter().any(|e| matches!(e, events::Event::ItemsAdded { .. })))
        .count();
    assert_eq!(additions, 1, "one refresh added items");

    // An archived thread makes a room that is not watched; a missing one makes none.
    let archived = create(5800000).await;
    assert_eq!(archived["status"], "created", "{archived}");
    let watched: Option<String> = redis::cmd("HGET")
        .arg("chanshare:watch")
        .arg(archived["room_id"].as_str().unwrap())
        .query_async(
            &mut redis::Client::open(redis.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(watched, None);
    let missing = create(1).await;
    assert_eq!(
        (missing["status"].as_str(), missing["code"].as_str()),
        (Some("rejected"), Some("not_found")),
        "{missing}"
    );
    commands.stop().await;
    a.stop().await;
    b.stop().await;
}

/// A room made from a thread without a title is titled by the thread: its subject, else the
/// first words of its opening comment as plain text, else `/board/ number`; the creator's title
/// wins over all of them.
#[tokio::test]
async fn chan_rooms_are_titled_by_their_thread() {
    let (nats, redis, fixture) =
        (NatsServer::start(), RedisServer::start(), ChanFixture::start().await);
    let media = tempfile::tempdir().unwrap();
    let store =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(media.path()).unwrap());
    let content = Replica::start(&nats, &redis, &fixture, store).await;
    let commands =
        crate::commands::Replica::start(&nats, &redis, crate::commands::quiet_reaper()).await;
    // The large fixture thread with another opening post: no subject and a hostile comment;
    // then neither subject nor comment.
    let mut big: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures_dir().join("api/wsg/thread/5830000.json")).unwrap(),
    )
    .unwrap();
    let op = big["posts"][0].as_object_mut().unwrap();
    op.remove("sub");
    op.insert(
        "com".into(),
        concat!(
            "<span class=\"quote\">&gt;sound on</span><br>Tom &amp; Jerry&#039;s ",
            "\u{202e}reversed\u{202c} \u{200b}clips<br><br>   <b>only</b> the <wbr>best\tones, ",
            "no &quot;loud&quot; ones, no reposts, no <s>spoilers</s> and please no porn either"
        )
        .into(),
    );
    fixture.serve_thread("wsg", 5830001, serde_json::to_vec(&big).unwrap());
    let op = big["posts"][0].as_object_mut().unwrap();
    op.insert("sub".into(), "".into());
    op.insert("com".into(), "<br>".into());
    fixture.serve_thread("wsg", 5830002, serde_json::to_vec(&big).unwrap());

    let client = nats.client().await;
    let (log, _) = eventlog::EventLog::connect(nats.client().await, 1).await.unwrap();
    for (thread, title, expected) in [
        (5830000, None, "Sound on thread #412"),
        (
            5830001,
            None,
            ">sound on Tom & Jerry's reversed clips only the best ones, no \"loud\" ones, no…",
        ),
        (5830002, None, "/wsg/ 5830002"),
        (5830000, Some("movie night"), "movie night"),
        (
            5830001,
            Some("   "),
            ">sound on Tom & Jerry's reversed clips only the best ones, no \"loud\" ones, no…",
        ),
    ] {
        let mut body = serde_json::json!({"source": {"chan": {"board": "wsg", "thread": thread}}});
        if let Some(title) = title {
            body["title"] = title.into();
        }
        let reply =
            client.request("chanshare.rooms.create", body.to_string().into()).await.unwrap();
        let created: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(created["status"], "created", "{thread}: {created}");
        let room = events::RoomId::new(created["room_id"].as_str().unwrap()).unwrap();
        let state = room_state(&log, &room).await;
        assert_eq!(state.title, expected, "thread {thread}, title {title:?}");
        assert!(state.title.chars().count() <= 80 || title.is_some(), "{}", state.title);
        assert!(!state.playlist.is_empty(), "thread {thread} has its items");
    }
    commands.stop().await;
    content.stop().await;
}

async fn history(log: &eventlog::EventLog, room: &events::RoomId) -> Vec<eventlog::Stored> {
    use futures::StreamExt;
    log.read(room, 0).await.unwrap().map(|c| c.unwrap()).collect().await
}

async fn room_state(log: &eventlog::EventLog, room: &events::RoomId) -> events::RoomState {
    history(log, room)
        .await
        .iter()
        .fold(events::RoomState::default(), |s, stored| s.apply(&stored.commit))
}

/// A thread of a board 4chan does not have is refused as not found without asking for the
/// thread: the board list (`boards.json`, fetched once and cached in Redis for a day) says so.
/// Room creation answers as for a missing thread.
#[tokio::test]
async fn unknown_boards_are_refused_without_a_thread_request() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let replica = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    let commands =
        crate::commands::Replica::start(&nats, &redis, crate::commands::quiet_reaper()).await;

    let unknown = resolve(&nats, "zzz", 1).await;
    assert_eq!(unknown["status"], "not_found", "{unknown}");
    assert_eq!(unknown["message"], "no such board: /zzz/", "{unknown}");
    let body = serde_json::json!({"source": {"chan": {"board": "zzz", "thread": 1}}}).to_string();
    let reply = nats.client().await.request("chanshare.rooms.create", body.into()).await.unwrap();
    let created: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(
        (created["status"].as_str(), created["code"].as_str(), created["message"].as_str()),
        (Some("rejected"), Some("not_found"), Some("no such board: /zzz/")),
        "{created}"
    );
    // Known boards still resolve, and a missing thread on one is still "thread not found".
    assert_eq!(resolve(&nats, "wsg", 5812345).await["status"], "resolved");
    let missing = resolve(&nats, "wsg", 1).await;
    assert_eq!(
        (missing["status"].as_str(), missing["message"].as_str()),
        (Some("not_found"), Some("thread not found"))
    );

    let paths = fixture.api_paths();
    assert!(
        !paths.iter().any(|p| p.starts_with("/api/zzz/")),
        "a thread request for /zzz/: {paths:?}"
    );
    let lists = paths.iter().filter(|p| *p == "/api/boards.json").count();
    assert_eq!(lists, 1, "the board list is fetched once: {paths:?}");
    // The board list waits for the API limiter like any request.
    let times = fixture.api_requests();
    assert!(times.len() >= 2, "{paths:?}");
    let closest = times.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(closest >= Duration::from_secs(1), "two api requests {closest:?} apart: {paths:?}");
    let mut conn =
        redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("TTL").arg("chanshare:boards").query_async(&mut conn).await.unwrap();
    assert!((86_000..=86_400).contains(&ttl), "the board list is cached for a day: ttl {ttl}");
    commands.stop().await;
    replica.stop().await;
}

/// With the board list unreachable, threads are not refused: the board is let through (and the
/// list asked for again later), rather than every room failing while 4chan's list is down.
#[tokio::test]
async fn an_unreachable_board_list_lets_threads_through() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let replica = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    // Every attempt at the board list fails (three, with backoff).
    for _ in 0..3 {
        fixture.fail_next_api(Fault::Status(503));
    }
    let live = resolve(&nats, "wsg", 5812345).await;
    assert_eq!(live["status"], "resolved", "{live}");
    let paths = fixture.api_paths();
    assert_eq!(
        paths,
        [
            "/api/boards.json",
            "/api/boards.json",
            "/api/boards.json",
            "/api/wsg/thread/5812345.json"
        ],
        "the board list was tried, then the thread asked for"
    );
    // For a minute the list is not asked for again and boards go unchecked: the thread
    // request decides.
    let unknown = resolve(&nats, "zzz", 1).await;
    assert_eq!(unknown["message"], "thread not found", "{unknown}");
    assert_eq!(&fixture.api_paths()[4..], ["/api/zzz/thread/1.json"]);
    // Except for a deployment of worksafe boards only: a board it cannot check is refused.
    let worksafe = Replica::start_with(&nats, &redis, &fixture, s3_store(&s3), true).await;
    replica.stop().await;
    let refused = resolve(&nats, "wsg", 5830000).await;
    assert_eq!(
        (refused["status"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("unavailable")),
        "{refused}"
    );
    assert_eq!(fixture.api_paths().len(), 5, "no request for a board that cannot be checked");
    worksafe.stop().await;
}

/// `chanshare content` with `CHANSHARE_WORKSAFE_ONLY`: a thread of a board whose `ws_board` is
/// not 1 makes no room (and is not asked for); worksafe boards work as before. Without the
/// setting the same thread resolves.
#[tokio::test]
async fn only_worksafe_boards_make_rooms_when_asked() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let thread = std::fs::read(fixtures_dir().join("api/wsg/thread/5812345.json")).unwrap();
    fixture.serve_thread("gif", 123, thread);
    let replica = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    assert_eq!(resolve(&nats, "gif", 123).await["status"], "resolved", "allowed by default");
    replica.stop().await;
    let gif_requests = fixture.api_paths().iter().filter(|p| p.starts_with("/api/gif/")).count();

    let dir = tempfile::tempdir().unwrap();
    let content = content_process(
        &nats,
        &redis,
        &fixture,
        dir.path(),
        &[("CHANSHARE_WORKSAFE_ONLY", "true".to_owned())],
    );
    let commands =
        crate::commands::Replica::start(&nats, &redis, crate::commands::quiet_reaper()).await;
    let refused = resolve(&nats, "gif", 123).await;
    assert_eq!(
        (refused["status"].as_str(), refused["code"].as_str(), refused["message"].as_str()),
        (Some("error"), Some("invalid"), Some("only worksafe boards are allowed here")),
        "{refused}: {}",
        content.log()
    );
    let create = |board: &str, thread: u64| {
        let body = serde_json::json!({"source": {"chan": {"board": board, "thread": thread}}});
        let nats = &nats;
        async move {
            let reply = nats
                .client()
                .await
                .request("chanshare.rooms.create", body.to_string().into())
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
        }
    };
    let room = create("gif", 123).await;
    assert_eq!(
        (room["status"].as_str(), room["code"].as_str(), room["message"].as_str()),
        (Some("rejected"), Some("invalid"), Some("only worksafe boards are allowed here")),
        "{room}"
    );
    let after = fixture.api_paths().iter().filter(|p| p.starts_with("/api/gif/")).count();
    assert_eq!(after, gif_requests, "no thread request for a board that is not worksafe");
    assert_eq!(create("wsg", 5812345).await["status"], "created");
    commands.stop().await;
}

/// `chanshare content` with `CHANSHARE_MAX_THREAD_WATCHES=2`: the third room made from a live
/// thread is created and plays, but is not watched; a room already watched may ask again, and a
/// slot freed (a thread that ended) is taken by the next request.
#[tokio::test]
async fn thread_watches_are_capped() {
    let Servers { nats, redis, s3: _s3, fixture } = Servers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let content = content_process(
        &nats,
        &redis,
        &fixture,
        dir.path(),
        &[("CHANSHARE_MAX_THREAD_WATCHES", "2".to_owned())],
    );
    let commands =
        crate::commands::Replica::start(&nats, &redis, crate::commands::quiet_reaper()).await;
    let client = nats.client().await;
    let mut rooms = Vec::new();
    for _ in 0..3 {
        let body = serde_json::json!({"source": {"chan": {"board": "wsg", "thread": 5812345}}});
        let reply =
            client.request("chanshare.rooms.create", body.to_string().into()).await.unwrap();
        let created: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(created["status"], "created", "{created}");
        rooms.push(created["room_id"].as_str().unwrap().to_owned());
    }
    let mut conn =
        redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let watched: Vec<String> =
        redis::cmd("HKEYS").arg("chanshare:watch").query_async(&mut conn).await.unwrap();
    let mut expected = rooms[..2].to_vec();
    let mut sorted = watched.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "the first two rooms are watched: {}", content.log());
    let (log, _) = eventlog::EventLog::connect(nats.client().await, 1).await.unwrap();
    let third = events::RoomId::new(rooms[2].as_str()).unwrap();
    assert_eq!(room_state(&log, &third).await.playlist.len(), 6, "the third room plays");

    let watch = |room: &str| {
        let body = serde_json::json!({"room": room, "board": "wsg", "thread": 5812345});
        let client = client.clone();
        async move {
            let reply = client.request("chanshare.content.watch", body.to_string().into()).await;
            serde_json::from_slice::<serde_json::Value>(&reply.unwrap().payload).unwrap()
        }
    };
    assert_eq!(
        watch(&rooms[2]).await,
        serde_json::json!({"status": "not_watched", "reason": "limit"})
    );
    assert_eq!(watch(&rooms[0]).await["status"], "watching", "a watched room asks again");
    let _: () = redis::cmd("HDEL")
        .arg("chanshare:watch")
        .arg(&rooms[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(watch(&rooms[2]).await["status"], "watching", "a freed slot is taken");
    let count: usize =
        redis::cmd("HLEN").arg("chanshare:watch").query_async(&mut conn).await.unwrap();
    assert_eq!(count, 2);
    commands.stop().await;
}

/// Redis as a test reads it.
async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// The media cache's index in Redis: what it counts (bytes) and holds (keys, least recently used
/// first).
async fn cache_index(redis: &RedisServer) -> (u64, Vec<String>) {
    let mut conn = redis_conn(redis).await;
    let bytes: Option<u64> =
        redis::cmd("GET").arg(content::budget::BYTES_KEY).query_async(&mut conn).await.unwrap();
    let keys: Vec<String> = redis::cmd("ZRANGE")
        .arg(content::budget::LRU_KEY)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    (bytes.unwrap_or(0), keys)
}

/// How many times the fixture CDN was asked for `file`.
fn downloads_of(fixture: &ChanFixture, file: &str) -> usize {
    fixture.media_requests().iter().filter(|p| p.ends_with(&format!("/{file}"))).count()
}

/// GETs `/media/wsg/{file}` and checks it is the fixture's file.
async fn fetch_media(http: &reqwest::Client, base: &str, file: &str) {
    let response = http.get(format!("{base}/media/wsg/{file}")).send().await.unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    assert_eq!(status, 200, "{file}: {}", String::from_utf8_lossy(&body));
    assert_eq!(body.as_ref(), &fixture_file(file)[..], "{file}");
}

/// With a budget of about two and a half files: A, B, A again, then C evicts B (the least
/// recently used), not A; the index counts exactly what the store holds; B asked for again is
/// fetched from upstream again (and evicts A, by then the least recently used).
#[tokio::test]
async fn the_media_cache_keeps_to_its_byte_budget() {
    const A: &str = "1743100655000817.gif"; // 6456 bytes
    const B: &str = "1743100700111222.jpg"; // 6842
    const C: &str = "1743100437554012.mp4"; // 13735
    const BUDGET: u64 = 21_000;
    let size = |file: &str| fixture_file(file).len() as u64;
    assert!(size(A) + size(B) + size(C) > BUDGET && size(A) + size(C) <= BUDGET);
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let limits =
        MediaLimits { cache_bytes: BUDGET, touch_every: Duration::ZERO, ..MediaLimits::default() };
    let replica = Replica::start_limited(&nats, &redis, &fixture, s3_store(&s3), limits).await;
    resolve(&nats, "wsg", 5812345).await;
    let http = reqwest::Client::new();
    let stored = |file: &str| s3.root().join("media/wsg").join(file).is_file();

    for file in [A, B, A, C] {
        fetch_media(&http, &replica.base, file).await;
    }
    assert!(stored(A) && stored(C), "A (used again) and C are kept");
    assert!(!stored(B), "B, the least recently used, is evicted");
    let (bytes, keys) = cache_index(&redis).await;
    assert_eq!(bytes, size(A) + size(C), "the index counts what the store holds");
    assert!(bytes <= BUDGET);
    assert_eq!(keys, [format!("wsg/{A}"), format!("wsg/{C}")]);
    assert_eq!((downloads_of(&fixture, A), downloads_of(&fixture, B)), (1, 1));

    // B again: a miss, fetched from upstream a second time; A is now the least recently used.
    fetch_media(&http, &replica.base, B).await;
    assert_eq!(downloads_of(&fixture, B), 2, "an evicted file is fetched again");
    assert!(stored(B) && stored(C) && !stored(A));
    let (bytes, keys) = cache_index(&redis).await;
    assert_eq!(bytes, size(B) + size(C));
    assert_eq!(keys, [format!("wsg/{C}"), format!("wsg/{B}")]);
    replica.stop().await;
}

/// Two replicas filling a small cache at once (every file and thumbnail of the thread, each
/// asked for through both): the index and the store agree, and the store keeps to the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_evicting_at_once_keep_the_budget() {
    const BUDGET: u64 = 80_000;
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let limits = MediaLimits { cache_bytes: BUDGET, ..MediaLimits::default() };
    let a = Replica::start_limited(&nats, &redis, &fixture, s3_store(&s3), limits).await;
    let b = Replica::start_limited(&nats, &redis, &fixture, s3_store(&s3), limits).await;
    let live = resolve(&nats, "wsg", 5812345).await;
    let mut files = Vec::new();
    for item in live["items"].as_array().unwrap() {
        for url in [&item["url"], &item["thumb_url"]] {
            files.push(url.as_str().unwrap().rsplit('/').next().unwrap().to_owned());
        }
    }
    let total: u64 = files.iter().map(|f| fixture_file(f).len() as u64).sum();
    assert!(total > BUDGET, "the thread does not fit: {total} bytes");
    let http = reqwest::Client::new();
    let requests: Vec<_> = files
        .iter()
        .flat_map(|file| [(a.base.clone(), file.clone()), (b.base.clone(), file.clone())])
        .map(|(base, file)| {
            let http = http.clone();
            tokio::spawn(async move { fetch_media(&http, &base, &file).await })
        })
        .collect();
    for request in requests {
        request.await.unwrap();
    }
    let (bytes, mut keys) = cache_index(&redis).await;
    let mut held: Vec<String> = std::fs::read_dir(s3.root().join("media/wsg"))
        .unwrap()
        .map(|entry| format!("wsg/{}", entry.unwrap().file_name().to_string_lossy()))
        .filter(|key| !key.contains(".s3s")) // s3s-fs's own bookkeeping, if any
        .collect();
    let held_bytes: u64 = held
        .iter()
        .map(|key| std::fs::metadata(s3.root().join("media").join(key)).unwrap().len())
        .sum();
    keys.sort();
    held.sort();
    assert_eq!(keys, held, "the index lists what the store holds");
    assert_eq!(bytes, held_bytes, "and counts its bytes");
    assert!(bytes <= BUDGET, "{bytes} bytes over the {BUDGET} budget");
    a.stop().await;
    b.stop().await;
}

/// `chanshare content` with `CHANSHARE_MEDIA_CACHE_BYTES`: a second file that does not fit with
/// the first evicts it.
#[tokio::test]
async fn the_content_role_keeps_its_media_budget() {
    const A: &str = "1743100655000817.gif"; // 6456 bytes
    const C: &str = "1743100437554012.mp4"; // 13735
    let Servers { nats, redis, s3: _s3, fixture } = Servers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let content = content_process(
        &nats,
        &redis,
        &fixture,
        dir.path(),
        &[("CHANSHARE_MEDIA_CACHE_BYTES", "20000".to_owned())],
    );
    assert_eq!(resolve(&nats, "wsg", 5812345).await["status"], "resolved");
    let http = reqwest::Client::new();
    let base = format!("http://{}", content.addr());
    fetch_media(&http, &base, A).await;
    fetch_media(&http, &base, C).await;
    let stored = |file: &str| dir.path().join("wsg").join(file).is_file();
    assert!(stored(C) && !stored(A), "A is evicted to make room for C: {}", content.log());
    assert_eq!(cache_index(&redis).await.0, fixture_file(C).len() as u64);
}

/// A client that goes away mid-download does not cancel it: the file is still stored and the
/// lease released right after. A download that fails (its client gone too) releases its lease at
/// once, so the next request downloads again instead of waiting for the lease to expire.
#[tokio::test]
async fn downloads_outlive_their_clients_and_release_their_leases() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let replica = Replica::start(&nats, &redis, &fixture, s3_store(&s3)).await;
    resolve(&nats, "wsg", 5812345).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let lease_held = |file: &'static str| {
        let redis = redis.url();
        async move {
            let mut conn = redis::Client::open(redis)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let held: bool = redis::cmd("EXISTS")
                .arg(content::media::lease_key(&format!("wsg/{file}")))
                .query_async(&mut conn)
                .await
                .unwrap();
            held
        }
    };

    // A slow download whose client leaves after 300 ms.
    let file = "1743100800333444.webm";
    fixture.set_latency(Duration::from_millis(1500));
    let gone = impatient.get(format!("{}/media/wsg/{file}", replica.base)).send().await;
    assert!(gone.is_err(), "the client gave up before the download ended");
    assert_eq!(downloads_of(&fixture, file), 1, "the download had started");
    assert!(lease_held(file).await, "the download holds its lease");
    let stored = s3.root().join("media/wsg").join(file);
    tests::eventually(Duration::from_secs(10), "the file is stored without its client", || {
        let stored = stored.clone();
        async move { stored.is_file() }
    })
    .await;
    tests::eventually(Duration::from_secs(1), "the lease is released", || async {
        !lease_held(file).await
    })
    .await;
    assert_eq!(std::fs::read(&stored).unwrap(), fixture_file(file));

    // A download that fails every attempt, its client gone: the lease goes as soon as it fails.
    let file = "1743100900555666.png";
    fixture.set_latency(Duration::from_millis(500));
    for _ in 0..3 {
        fixture.fail_next_media(Fault::Status(500));
    }
    let gone = impatient.get(format!("{}/media/wsg/{file}", replica.base)).send().await;
    assert!(gone.is_err());
    tests::eventually(Duration::from_secs(10), "every attempt is made", || async {
        downloads_of(&fixture, file) == 3
    })
    .await;
    tests::eventually(
        Duration::from_secs(2),
        "the failed download's lease is released",
        || async { !lease_held(file).await },
    )
    .await;
    fixture.set_latency(Duration::ZERO);
    let started = Instant::now();
    fetch_media(&reqwest::Client::new(), &replica.base, file).await;
    assert!(started.elapsed() < Duration::from_secs(10), "no wait for an expired lease");
    assert_eq!(downloads_of(&fixture, file), 4);

    // A failure its client sees (502) has released the lease by the time it is answered.
    let file = "1743100437554012.mp4";
    for _ in 0..3 {
        fixture.fail_next_media(Fault::Status(500));
    }
    let failed = reqwest::get(format!("{}/media/wsg/{file}", replica.base)).await.unwrap().status();
    assert_eq!(failed, 502);
    assert!(!lease_held(file).await, "released when the failure is answered");
    replica.stop().await;
}

/// One download at a time and one waiting: a miss for a third file is 503 `unavailable` with
/// `Retry-After`, while a request for a file already being downloaded joins it; once the queue
/// drains the third file is fetched.
#[tokio::test]
async fn the_download_queue_is_bounded() {
    let Servers { nats, redis, s3, fixture } = Servers::start().await;
    let limits = MediaLimits { downloads: 1, queue: 1, ..MediaLimits::default() };
    let replica = Replica::start_limited(&nats, &redis, &fixture, s3_store(&s3), limits).await;
    resolve(&nats, "wsg", 5812345).await;
    let (a, b, c) = ("1743100655000817.gif", "1743100700111222.jpg", "1743100900555666.png");
    fixture.set_latency(Duration::from_millis(1500));
    let http = reqwest::Client::new();
    let get = |file: &'static str| {
        let (http, base) = (http.clone(), replica.base.clone());
        tokio::spawn(async move { fetch_media(&http, &base, file).await })
    };
    let first = get(a);
    tests::eventually(Duration::from_secs(5), "the first download runs", || async {
        downloads_of(&fixture, a) == 1
    })
    .await;
    let second = get(b);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let joined = get(a);

    let refused = http.get(format!("{}/media/wsg/{c}", replica.base)).send().await.unwrap();
    let status = refused.status();
    let retry_after = refused.headers().get("retry-after").cloned();
    let body = refused.bytes().await.unwrap();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(retry_after.is_some(), "a Retry-After");
    assert_eq!(downloads_of(&fixture, c), 0, "nothing was fetched for it");

    for request in [first, second, joined] {
        request.await.unwrap();
    }
    assert_eq!(downloads_of(&fixture, a), 1, "the joined request shared the download");
    fixture.set_latency(Duration::ZERO);
    fetch_media(&http, &replica.base, c).await;
    replica.stop().await;
}
