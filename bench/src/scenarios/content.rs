//! `content`: cached media served by the content role, against reading the same object straight
//! from the S3 store; and how many upstream downloads N concurrent misses cause.
//!
//! Real servers: s3s-fs as the store, the 4chan fixture as the CDN (`tests::ChanFixture`, with a
//! delay on media so that misses overlap), nats-server, redis-server, `chanshare content`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use tests::{ChanFixture, Chanshare, NatsServer, RedisServer, S3Server};
use tokio::task::JoinSet;

use crate::Size;
use crate::report::{Latencies, Report, fmt, ms};

const BOARD: &str = "wsg";
const THREAD: u64 = 5812345;
/// Served from the cache in the HIT runs (34 KB).
const HIT: &str = "1743100200123456.webm";
/// Requested cold, concurrently, in the MISS run.
const MISS: &str = "1743100437554012.mp4";

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let concurrency = size.pick(16, 4);
    let duration = size.pick(Duration::from_secs(5), Duration::from_secs(1));
    let misses = size.pick(64, 8);

    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let s3 = S3Server::start("media");
    let fixture = ChanFixture::start().await;
    let content = Chanshare::start(
        "content",
        &[
            ("CHANSHARE_NATS_URL", nats.url()),
            ("CHANSHARE_REDIS_URL", redis.url()),
            ("CHANSHARE_CHAN_API_URL", fixture.api_url()),
            ("CHANSHARE_CHAN_MEDIA_URL", fixture.media_url()),
            ("CHANSHARE_MEDIA_STORE", "s3://media".to_owned()),
            ("CHANSHARE_S3_ENDPOINT", s3.endpoint()),
            ("AWS_ACCESS_KEY_ID", S3Server::ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", S3Server::SECRET_KEY.to_owned()),
            ("RUST_LOG", "warn,stack::serve=info".to_owned()),
        ],
    );
    resolve(&nats.url()).await?;
    let http = reqwest::Client::new();
    let base = format!("http://{}/media/{BOARD}", content.addr());
    let size_of_hit = get(&http, &format!("{base}/{HIT}")).await?;

    let url = format!("{base}/{HIT}");
    let (served_rate, mut served) = hammer(concurrency, duration, {
        let http = http.clone();
        move || {
            let (http, url) = (http.clone(), url.clone());
            async move { get(&http, &url).await }
        }
    })
    .await?;
    let store: Arc<dyn ObjectStore> = Arc::new(s3.store("media"));
    let key = ObjectPath::from(format!("{BOARD}/{HIT}"));
    let (direct_rate, mut direct) = hammer(concurrency, duration, move || {
        let (store, key) = (store.clone(), key.clone());
        async move { Ok(store.get(&key).await?.bytes().await?.len()) }
    })
    .await?;

    fixture.set_latency(Duration::from_millis(200));
    let mut requests = JoinSet::new();
    for _ in 0..misses {
        let (http, url) = (http.clone(), format!("{base}/{MISS}"));
        requests.spawn(async move { get(&http, &url).await });
    }
    let started = Instant::now();
    while let Some(done) = requests.join_next().await {
        done??;
    }
    let miss_took = started.elapsed();
    let downloads = fixture.media_requests().iter().filter(|p| p.ends_with(MISS)).count();

    let mut report =
        Report::new("content", &["what", "concurrency", "requests/s", "MB/s", "p50 ms", "p99 ms"]);
    for (what, rate, latencies) in [
        ("cache HIT via content (HTTP)", served_rate, &mut served),
        ("same object straight from S3", direct_rate, &mut direct),
    ] {
        report.row(vec![
            what.to_owned(),
            concurrency.to_string(),
            fmt(rate),
            fmt(rate * size_of_hit as f64 / 1e6),
            ms(latencies.quantile(0.5)),
            ms(latencies.quantile(0.99)),
        ]);
    }
    report.note(format!(
        "MISS: {misses} concurrent requests for an uncached file (upstream delayed 200 ms) → \
         {downloads} upstream download(s), all answered in {} ms.",
        fmt(miss_took.as_secs_f64() * 1000.0)
    ));
    report.at_least("HIT / direct store throughput", served_rate / direct_rate, ">= 0.8", 0.8);
    report.at_most("upstream downloads for concurrent misses", downloads as f64, "1", 1.0);
    Ok(report)
}

/// Resolves the fixture thread, so that its files may be served.
async fn resolve(nats: &str) -> anyhow::Result<()> {
    let client = async_nats::connect(nats).await?;
    let request = serde_json::json!({"board": BOARD, "thread": THREAD}).to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(reply) = client.request(protocol::subjects::RESOLVE, request.clone().into()).await
        {
            let reply: serde_json::Value = serde_json::from_slice(&reply.payload)?;
            ensure!(reply["status"] == "resolved", "thread not resolved: {reply}");
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the content service did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GETs `url`; the body's length.
async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<usize> {
    let response = http.get(url).send().await.with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        bail!("GET {url}: {}", response.status());
    }
    Ok(response.bytes().await?.len())
}

/// Runs `request` in a loop on `concurrency` tasks for `duration`: (requests/s, latencies).
async fn hammer<F, Fut>(
    concurrency: usize,
    duration: Duration,
    request: F,
) -> anyhow::Result<(f64, Latencies)>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<usize>> + Send,
{
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let request = request.clone();
        tasks.spawn(async move {
            let mut latencies = Latencies::default();
            while Instant::now() < until {
                let at = Instant::now();
                request().await?;
                latencies.push(at.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Latencies::default();
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok((all.len() as f64 / started.elapsed().as_secs_f64(), all))
}
