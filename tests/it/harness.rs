//! The harness itself: each real server starts, answers, and is gone after drop.

use std::io::{Read, Write};
use std::net::TcpStream;

use tests::{NatsCluster, NatsServer, RedisServer, S3Server};

fn roundtrip(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    let mut buf = vec![0; 512];
    let n = stream.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn nats_server_runs_jetstream_and_is_gone_after_drop() {
    let server = NatsServer::start();
    let url = server.url();
    let js = async_nats::jetstream::new(server.client().await);
    js.query_account().await.expect("jetstream enabled");
    drop(server);
    let addr = url.trim_start_matches("nats://");
    assert!(TcpStream::connect(addr).is_err(), "nats-server still listening after drop");
}

#[tokio::test]
async fn nats_server_restarts_with_its_data() {
    let mut server = NatsServer::start();
    let js = async_nats::jetstream::new(server.client().await);
    js.create_key_value(async_nats::jetstream::kv::Config {
        bucket: "probe".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .put("k", "v".into())
    .await
    .unwrap();
    server.kill();
    server.restart();
    let js = async_nats::jetstream::new(server.client().await);
    let kv = js.get_key_value("probe").await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn nats_cluster_replicates_a_stream() {
    let cluster = NatsCluster::start().await;
    assert_eq!(cluster.urls_as("admin").split(',').count(), 3);
    let js = async_nats::jetstream::new(cluster.client().await);
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "probe".into(),
            subjects: vec!["probe.*".into()],
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3);
    assert_eq!(
        info.cluster.as_ref().map(|c| c.replicas.len()),
        Some(2),
        "leader plus two replicas"
    );
}

#[test]
fn redis_server_answers_and_restarts_empty() {
    let mut redis = RedisServer::start();
    let addr = redis.url().trim_start_matches("redis://").to_owned();
    assert_eq!(roundtrip(&addr, b"SET k v\r\n"), "+OK\r\n");
    redis.restart();
    assert_eq!(roundtrip(&addr, b"GET k\r\n"), "$-1\r\n", "nothing persisted");
}

#[test]
fn s3_server_enforces_auth() {
    let s3 = S3Server::start("media");
    assert!(s3.root().join("media").is_dir());
    let addr = s3.endpoint().trim_start_matches("http://").to_owned();
    let response =
        roundtrip(&addr, b"GET /media/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 403"), "anonymous read refused: {response}");
}
