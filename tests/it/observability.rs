//! Metrics on /metrics in Prometheus' conventions, read back through a real Prometheus; alert
//! rules and the exposition accepted by promtool; JSON logs.

use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use tests::prometheus::PrometheusServer;
use tests::{Chanshare, NatsServer, RedisServer};

/// Creates a URL room through the HTTP API; returns the reply.
fn create_room(chanshare: &Chanshare) -> serde_json::Value {
    let body = serde_json::json!({"source": {"urls": ["https://example.com/a.webm"]}});
    tests::chanshare::create_room(&chanshare.addr(), &body)
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
    let chanshare = Chanshare::serve(&nats, &redis, &[]);
    // Some traffic, so labelled series exist.
    create_room(&chanshare);
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
    let chanshare = Chanshare::serve(&nats, &redis, &[("CHANSHARE_LOG_FORMAT", "json".to_owned())]);
    let log = chanshare.log();
    let line =
        log.lines().find(|l| l.contains("chanshare is up")).unwrap_or_else(|| panic!("{log}"));
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["level"], "INFO");
    assert_eq!(entry["message"], "chanshare is up");
    assert!(entry["url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
}

/// One chat command through `chanshare serve` is one trace: gateway → commands → append, and
/// from the commit on to the projector and the fan-out, each span the child of the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_one_trace_from_the_socket_to_the_projector() {
    use futures::{SinkExt, StreamExt};
    use std::sync::{Arc, Mutex};

    // An OTLP/HTTP receiver (JSON encoding) in process.
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                if let Ok(value) = serde_json::from_slice(&body) {
                    sink.lock().unwrap().push(value);
                }
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let chanshare = Chanshare::serve(
        &nats,
        &redis,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        ],
    );
    let room = create_room(&chanshare);
    let url = format!(
        "ws://{}/api/rooms/{}/ws?token={}",
        chanshare.addr(),
        room["room_id"].as_str().unwrap(),
        room["host_token"].as_str().unwrap()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let chat = serde_json::json!({"type": "command", "id": uuid::Uuid::new_v4().to_string(), "command": {"type": "chat", "text": "trace me"}});
    ws.send(tokio_tungstenite::tungstenite::Message::Text(chat.to_string().into())).await.unwrap();

    // Collect spans until the whole path is there.
    let deadline = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans: Vec<serde_json::Value> = received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|batch| batch["resourceSpans"].as_array().cloned().unwrap_or_default())
            .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
            .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
            .collect();
        let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
        if [
            "gateway.command",
            "commands.handle",
            "eventlog.append",
            "projector.apply",
            "gateway.fanout",
        ]
        .iter()
        .all(|n| names.contains(n))
        {
            break spans;
        }
        assert!(Instant::now() < deadline, "spans so far: {names:?}");
        // Keep the socket read so the fan-out runs.
        if let Ok(Some(Err(error))) =
            tokio::time::timeout(Duration::from_millis(200), ws.next()).await
        {
            panic!("the socket failed: {error}");
        }
    };
    let find = |name: &str| spans.iter().filter(|s| s["name"] == name).cloned().collect::<Vec<_>>();
    let gateway = &find("gateway.command")[0];
    let trace = gateway["traceId"].as_str().unwrap();
    let child_of = |name: &str, parent: &serde_json::Value| {
        find(name)
            .into_iter()
            .find(|s| s["traceId"] == trace && s["parentSpanId"] == parent["spanId"])
            .unwrap_or_else(|| {
                panic!("no {name} span under {} in trace {trace}: {spans:#?}", parent["name"])
            })
    };
    let commands = child_of("commands.handle", gateway);
    let append = child_of("eventlog.append", &commands);
    child_of("projector.apply", &append);
    child_of("gateway.fanout", &append);
}
