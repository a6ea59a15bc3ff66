//! Metrics on /metrics in Prometheus' conventions, read back through a real Prometheus; alert
//! rules and the exposition accepted by promtool; JSON logs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::prometheus::PrometheusServer;
use tests::{Chanshare, NatsServer, RedisServer};

fn serve(nats: &NatsServer, redis: &RedisServer, extra: &[(&str, String)]) -> Chanshare {
    let mut env = vec![("CHANSHARE_NATS_URL", nats.url()), ("CHANSHARE_REDIS_URL", redis.url())];
    env.extend(extra.iter().cloned());
    Chanshare::start("serve", &env)
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/k8s/monitoring/alerts.yaml");
    let output = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .expect("promtool (./dev/test installs it)");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let dashboard = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/k8s/monitoring/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dashboard).unwrap()).unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() >= 10);
}

#[tokio::test]
async fn metrics_pass_promtool_and_reach_prometheus() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let chanshare = serve(&nats, &redis, &[]);
    // Some traffic, so labelled series exist.
    let created = reqwest::Client::new()
        .post(format!("http://{}/api/rooms", chanshare.addr()))
        .body(r#"{"source": {"urls": ["https://example.com/a.webm"]}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let (status, exposition) = chanshare.get("/metrics");
    assert_eq!(status, 200);
    for name in [
        "chanshare_gateway_sockets",
        "chanshare_command_conflicts_total",
        "chanshare_projector_lag_commits",
        "chanshare_media_cache_hits_total",
        "chanshare_append_seconds_bucket",
    ] {
        assert!(exposition.contains(name), "{name} missing from /metrics");
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (./dev/test installs it)");
    std::io::Write::write_all(promtool.stdin.as_mut().unwrap(), exposition.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let prometheus = PrometheusServer::start(&[chanshare.addr()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!(
            "http://{}/api/v1/query?query=chanshare_projector_applied_total",
            prometheus.addr()
        );
        if let Ok(response) = reqwest::get(&url).await {
            let body: serde_json::Value =
                serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or_default();
            if let Some(series) = body["data"]["result"].as_array().and_then(|r| r.first()) {
                let value: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
                assert!(value >= 1.0, "the room's first commit was projected: {value}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "prometheus never had the metric");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[test]
fn json_logs_with_log_format_json() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let chanshare = serve(&nats, &redis, &[("CHANSHARE_LOG_FORMAT", "json".to_owned())]);
    let log = chanshare.log();
    let line =
        log.lines().find(|l| l.contains("chanshare is up")).unwrap_or_else(|| panic!("{log}"));
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["level"], "INFO");
    assert_eq!(entry["message"], "chanshare is up");
    assert!(entry["url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
}
