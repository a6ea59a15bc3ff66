//! The `chanshare serve` binary.

use std::time::Duration;

use tests::{Chanshare, NatsServer, RedisServer};

#[test]
fn serve_sets_up_the_stream_reports_ready_and_stops_on_sigterm() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let mut chanshare = Chanshare::start(
        "serve",
        &[("CHANSHARE_NATS_URL", nats.url()), ("CHANSHARE_REDIS_URL", redis.url())],
    );
    assert_eq!(chanshare.get("/healthz"), (200, "ok".to_owned()));
    assert_eq!(chanshare.get("/readyz"), (200, "ready".to_owned()));
    assert!(chanshare.log().contains("room stream ready"), "{}", chanshare.log());
    let status = chanshare.terminate(Duration::from_secs(10)).expect("exits after sigterm");
    assert!(status.success(), "exit status {status}: {}", chanshare.log());
}

#[test]
fn serve_is_not_ready_while_nats_is_down() {
    let mut nats = NatsServer::start();
    let redis = RedisServer::start();
    let chanshare = Chanshare::start(
        "serve",
        &[("CHANSHARE_NATS_URL", nats.url()), ("CHANSHARE_REDIS_URL", redis.url())],
    );
    nats.kill();
    let mut status = 200;
    for _ in 0..100 {
        status = chanshare.get("/readyz").0;
        if status == 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status, 503, "not ready without nats");
    assert_eq!(chanshare.get("/healthz").0, 200, "still alive");
    nats.restart();
    let mut status = 503;
    for _ in 0..200 {
        status = chanshare.get("/readyz").0;
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status, 200, "ready again once nats is back: {}", chanshare.log());
}

#[test]
fn serve_refuses_a_bad_nats_url() {
    let output = std::process::Command::new(tests::chanshare::binary())
        .arg("serve")
        .env("CHANSHARE_NATS_URL", "not a url at all://")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad nats url"), "{stderr}");
}
