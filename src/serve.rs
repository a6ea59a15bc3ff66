//! `chanshare serve`: every role in one process.
//!
//! For now: connect to NATS, apply the stream definition, and serve the operational endpoints.
//! The roles (gateway, commands, projectors, content) plug in here as they land.

use std::future::Future;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use eventlog::EventLog;
use tracing::info;

use crate::config::Config;

/// Runs until `shutdown` resolves.
pub(crate) async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let servers: Vec<async_nats::ServerAddr> = config
        .nats_url
        .split(',')
        .map(|url| {
            url.trim()
                .parse()
                .with_context(|| format!("bad nats url {url:?}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let client = async_nats::ConnectOptions::new()
        .name("chanshare")
        .retry_on_initial_connect()
        .connect(servers)
        .await
        .with_context(|| format!("failed to connect to nats at {}", config.nats_url))?;
    let (log, applied) = EventLog::connect(client.clone(), config.stream_replicas)
        .await
        .context("failed to set up the room stream")?;
    info!(
        stream = eventlog::subjects::STREAM,
        ?applied,
        "room stream ready"
    );

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    info!(url = %format!("http://{}", listener.local_addr()?), "chanshare is up");
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(Ready { client, log });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("http server failed")
}

#[derive(Clone)]
struct Ready {
    client: async_nats::Client,
    log: EventLog,
}

/// Ready when NATS is connected and the room stream answers.
async fn ready(State(ready): State<Ready>) -> (StatusCode, &'static str) {
    if ready.client.connection_state() != async_nats::connection::State::Connected {
        return (StatusCode::SERVICE_UNAVAILABLE, "nats disconnected");
    }
    match ready.log.last_seq().await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "room stream unavailable"),
    }
}
