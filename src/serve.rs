//! `chanshare serve`: every role in one process, plus the operational endpoints.

use std::future::Future;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use eventlog::EventLog;
use tokio::sync::watch;
use tracing::info;

use crate::config::{CommandsConfig, Config};
use crate::roles;

/// Runs every role until `shutdown` resolves.
pub(crate) async fn serve(
    config: Config,
    commands: CommandsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let client = roles::nats(&config).await?;
    let log = roles::log(&config, client.clone()).await?;
    let registry = prometheus::Registry::new();
    let service =
        roles::commands(&config, &commands, client.clone(), log.clone(), &registry).await?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    info!(url = %format!("http://{}", listener.local_addr()?), "chanshare is up");

    let (stop, stopped) = watch::channel(false);
    let on_stop = |mut stopped: watch::Receiver<bool>| async move {
        stopped.wait_for(|stop| *stop).await.ok();
    };
    let commands = tokio::spawn(commands::run(client.clone(), service, on_stop(stopped.clone())));
    let app = ops_router(Ops { client, log, registry });
    let http = axum::serve(listener, app).with_graceful_shutdown(on_stop(stopped));
    let http = tokio::spawn(async move { http.await });
    shutdown.await;
    stop.send_replace(true);
    commands.await.context("commands task panicked")?.context("commands service failed")?;
    http.await.context("http task panicked")?.context("http server failed")?;
    Ok(())
}

/// What the operational endpoints look at.
#[derive(Clone)]
pub(crate) struct Ops {
    pub(crate) client: async_nats::Client,
    pub(crate) log: EventLog,
    pub(crate) registry: prometheus::Registry,
}

/// `/healthz`, `/readyz`, `/metrics`.
pub(crate) fn ops_router(ops: Ops) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(ops)
}

/// Ready when NATS is connected and the room stream answers.
async fn ready(State(ops): State<Ops>) -> (StatusCode, &'static str) {
    if ops.client.connection_state() != async_nats::connection::State::Connected {
        return (StatusCode::SERVICE_UNAVAILABLE, "nats disconnected");
    }
    match ops.log.last_seq().await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "room stream unavailable"),
    }
}

async fn metrics(State(ops): State<Ops>) -> (StatusCode, String) {
    let mut text = String::new();
    match prometheus::TextEncoder::new().encode_utf8(&ops.registry.gather(), &mut text) {
        Ok(()) => (StatusCode::OK, text),
        Err(error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {error}"))
        }
    }
}

/// `chanshare commands`: the write side alone, with the operational endpoints.
pub(crate) async fn commands(
    config: Config,
    commands: CommandsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Same wiring as serve today: the other roles join serve as they land.
    serve(config, commands, shutdown).await
}
