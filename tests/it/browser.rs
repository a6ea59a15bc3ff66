//! The web client in a real Chromium (Debian's, driven by playwright-core from npm), against
//! `chanshare serve` with real NATS and Redis and the fixture CDN. The scenarios live in
//! `tests/ui/*.test.mjs`; this test provides the servers and runs them, one file at a time.

use std::process::Command;

use tests::{ChanFixture, Chanshare, NatsServer, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_in_chromium() {
    let (nats, redis, fixture) =
        (NatsServer::start(), RedisServer::start(), ChanFixture::start().await);
    let chanshare = Chanshare::start(
        "serve",
        &[
            ("CHANSHARE_NATS_URL", nats.url()),
            ("CHANSHARE_REDIS_URL", redis.url()),
            ("CHANSHARE_CHAN_API_URL", fixture.api_url()),
            ("CHANSHARE_CHAN_MEDIA_URL", fixture.media_url()),
            // Every page and the busy room's 200 members come from 127.0.0.1.
            ("CHANSHARE_CONNECTIONS_PER_IP", "1000".into()),
            ("CHANSHARE_CREATIONS_PER_MINUTE", "1000".into()),
            ("CHANSHARE_SOCKETS_PER_MINUTE", "100000".into()),
            ("CHANSHARE_JOINS_PER_MINUTE", "100000".into()),
            ("CHANSHARE_MISSES_PER_MINUTE", "100000".into()),
        ],
    );
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let base = format!("http://{}", chanshare.addr());
    let media = fixture.media_url();
    let nats_url = nats.url();
    let report = shots.join("browser-tests.txt");
    let mut files: Vec<String> = std::fs::read_dir(&ui)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.mjs"))
        .collect();
    files.sort();
    // `BROWSER_TESTS=pattern` runs only the scenarios whose names match (while working on one).
    let only = std::env::var("BROWSER_TESTS").ok().map(|p| format!("--test-name-pattern={p}"));
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["--test", "--test-concurrency=1"])
            .args(only)
            .args(&files)
            .current_dir(&ui)
            .env("BASE_URL", base)
            .env("MEDIA_BASE", media)
            .env("SCREENSHOTS", &shots)
            // The busy room's members (`bench chatters`); ./dev/test builds it.
            .env("BENCH_BIN", tests::chanshare::binary().with_file_name("bench"))
            // The rewatch scenario compares the page with `chanshare replay state`.
            .env("CHANSHARE_BIN", tests::chanshare::binary())
            .env("CHANSHARE_NATS_URL", nats_url)
            .output()
            .expect("run node (./dev/test installs the browser test tools)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    std::fs::write(&report, stdout.as_bytes()).ok();
    println!("{stdout}");
    assert!(
        output.status.success(),
        "browser tests failed:\n{stdout}\n{stderr}\n{}",
        chanshare.log()
    );
}
