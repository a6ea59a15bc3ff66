//! The roles as processes: `serve` (all of them) and one role each, plus the operational
//! endpoints every process serves.

use std::future::Future;
use std::pin::Pin;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use eventlog::EventLog;
use tokio::sync::watch;
use tracing::info;

use crate::config::{CommandsConfig, Config, GatewayConfig};
use crate::roles;

/// Which roles a process runs.
#[derive(Debug, Clone)]
pub struct Roles {
    /// The write side, with its settings.
    pub commands: Option<CommandsConfig>,
    /// The read side.
    pub projectors: bool,
    /// The content service and media cache.
    pub content: bool,
    /// The HTTP API and the room WebSocket, with their settings.
    pub gateway: Option<GatewayConfig>,
}

type Task = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Runs `roles` on `CHANSHARE_LISTEN` until `shutdown` resolves. The port opens once every role
/// is set up, so an open port means a serving process.
pub async fn run(
    roles: Roles,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(None, roles, config, shutdown).await
}

/// Runs `roles` on `listener` (bound by the caller: port 0 in tests) until `shutdown` resolves.
pub async fn run_on(
    listener: tokio::net::TcpListener,
    roles: Roles,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(Some(listener), roles, config, shutdown).await
}

async fn run_with(
    listener: Option<tokio::net::TcpListener>,
    roles: Roles,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let client = roles::nats(&config).await?;
    // The content role alone never reads the log, so it does not wait for the stream.
    let log = if roles.commands.is_some() || roles.projectors || roles.gateway.is_some() {
        Some(roles::log(&config, client.clone(), roles.commands.is_some()).await?)
    } else {
        None
    };
    let the_log = || log.clone().context("the room log is opened for this role");
    let registry = prometheus::Registry::new();
    let (stop, stopped) = watch::channel(false);
    let on_stop = |mut stopped: watch::Receiver<bool>| async move {
        stopped.wait_for(|stop| *stop).await.ok();
    };

    let mut tasks: Vec<(&str, Task)> = Vec::new();
    if let Some(commands) = &roles.commands {
        let service =
            roles::commands(&config, commands, client.clone(), the_log()?, &registry).await?;
        let run = commands::run(client.clone(), service, on_stop(stopped.clone()));
        tasks.push((
            "commands",
            Box::pin(async move { run.await.context("commands service failed") }),
        ));
    }
    let mut projector = None;
    if roles.projectors {
        let p = roles::projector(&config, client.clone(), the_log()?, &registry).await?;
        projector = Some(p.clone());
        let run = p.run(on_stop(stopped.clone()));
        tasks.push(("projectors", Box::pin(async move { run.await.context("projector failed") })));
        // The DM stream is made by the commands role: waited for in the task, so projecting rooms
        // never waits for it.
        let (dm_config, dm_client) = (config.clone(), client.clone());
        let (waiting, dm_stop) = (on_stop(stopped.clone()), on_stop(stopped.clone()));
        tasks.push((
            "dm projector",
            Box::pin(async move {
                let (log, views) = tokio::select! {
                    opened = roles::dm_projector(&dm_config, dm_client) => opened?,
                    () = waiting => return Ok(()),
                };
                projectors::dm::run(log, views, dm_stop).await.context("dm projector failed")
            }),
        ));
    }

    let mut media = None;
    if roles.content {
        let content = roles::content(&config, &registry).await?;
        media = Some(content.media.clone().router());
        let run = content::run(client.clone(), content, on_stop(stopped.clone()));
        tasks.push((
            "content",
            Box::pin(async move {
                run.await.map_err(|e| anyhow::anyhow!("content service failed: {e}"))
            }),
        ));
    }

    let mut api = None;
    let mut gateway_app = None;
    if let Some(gateway) = &roles.gateway {
        let app = roles::gateway(
            &config,
            gateway,
            client.clone(),
            the_log()?,
            stopped.clone(),
            &registry,
        )
        .await?;
        tokio::spawn(app.clone().heartbeats());
        gateway_app = Some(app.clone());
        api = Some(gateway::router(app));
    }

    // The roles start first; the port opens (and "up" is logged) once the NATS services of the
    // roles this process runs answer: an open port means a serving process (before, the
    // gateway could take a room creation while the commands service was still subscribing).
    let mut handles: Vec<_> =
        tasks.drain(..).map(|(name, task)| (name, tokio::spawn(task))).collect();
    let services = [
        roles.commands.is_some().then_some(commands::SERVICE_NAME),
        roles.content.then_some(content::SERVICE_NAME),
    ];
    for service in services.into_iter().flatten() {
        answering(&client, service).await?;
    }
    let listener = match listener {
        Some(listener) => listener,
        None => tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("failed to listen on {}", config.listen))?,
    };
    let running = [
        roles.commands.is_some().then_some("commands"),
        roles.projectors.then_some("projectors"),
        roles.content.then_some("content"),
        roles.gateway.is_some().then_some("gateway"),
    ];
    let running: Vec<_> = running.into_iter().flatten().collect();
    info!(url = %format!("http://{}", listener.local_addr()?), roles = ?running, "chanshare is up");
    let uses_redis =
        roles.commands.is_some() || roles.projectors || roles.content || roles.gateway.is_some();
    let redis = if uses_redis { Some(roles::redis(&config).await?) } else { None };
    let tasks_alive = prometheus::IntGauge::new(
        "chanshare_runtime_tasks",
        "Tasks alive in the process's async runtime (a steady load keeps it steady)",
    )?;
    registry.register(Box::new(tasks_alive.clone()))?;
    let mut app = ops_router(Ops { client, log, registry, projector, redis, tasks_alive });
    if let Some(media) = media {
        app = app.merge(media);
    }
    if let Some(api) = api {
        app = app.merge(api);
    }
    let http = crate::http::serve(listener, app, config.http_limits(), on_stop(stopped));
    tasks.push((
        "http",
        Box::pin(async move {
            http.await;
            Ok(())
        }),
    ));

    handles.extend(tasks.into_iter().map(|(name, task)| (name, tokio::spawn(task))));
    shutdown.await;
    stop.send_replace(true);
    if let Some(app) = &gateway_app {
        app.drain(std::time::Duration::from_secs(5)).await;
    }
    for (name, handle) in handles {
        handle.await.with_context(|| format!("{name} task panicked"))??;
    }
    Ok(())
}

/// Waits (up to 30 s) until the NATS service `name` answers its `$SRV.PING`.
async fn answering(client: &async_nats::Client, name: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let subject = format!("$SRV.PING.{name}");
    loop {
        let ping = client.request(subject.clone(), "".into());
        if let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::from_millis(500), ping).await {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the {name} service did not answer within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// What the operational endpoints look at.
#[derive(Clone)]
struct Ops {
    client: async_nats::Client,
    log: Option<EventLog>,
    registry: prometheus::Registry,
    projector: Option<projectors::Projector>,
    redis: Option<redis::aio::ConnectionManager>,
    tasks_alive: prometheus::IntGauge,
}

/// How far behind the views may be for the process to count as ready.
const MAX_READY_LAG: u64 = 10_000;

/// `/healthz`, `/readyz`, `/metrics`.
fn ops_router(ops: Ops) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(ops)
}

/// Ready when NATS is connected, the room stream answers and the views are not far behind.
async fn ready(State(ops): State<Ops>) -> (StatusCode, String) {
    if ops.client.connection_state() != async_nats::connection::State::Connected {
        return (StatusCode::SERVICE_UNAVAILABLE, "nats disconnected".into());
    }
    let stream_down = match &ops.log {
        Some(log) => log.last_seq().await.is_err(),
        None => false,
    };
    if stream_down {
        return (StatusCode::SERVICE_UNAVAILABLE, "room stream unavailable".into());
    }
    if let Some(redis) = &ops.redis {
        let mut redis = redis.clone();
        let ping = redis::cmd("PING");
        let ping = ping.query_async::<String>(&mut redis);
        if !matches!(tokio::time::timeout(std::time::Duration::from_secs(2), ping).await, Ok(Ok(_)))
        {
            return (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable".into());
        }
    }
    if let Some(projector) = &ops.projector {
        match projector.lag().await {
            Ok(lag) if lag.commits > MAX_READY_LAG => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("views {} commits behind", lag.commits),
                );
            }
            Ok(_) => {}
            Err(_) => {
                return (StatusCode::SERVICE_UNAVAILABLE, "projector consumer unavailable".into());
            }
        }
    }
    (StatusCode::OK, "ready".into())
}

async fn metrics(State(ops): State<Ops>) -> (StatusCode, String) {
    let runtime = tokio::runtime::Handle::current().metrics();
    ops.tasks_alive.set(i64::try_from(runtime.num_alive_tasks()).unwrap_or(i64::MAX));
    let mut text = String::new();
    match prometheus::TextEncoder::new().encode_utf8(&ops.registry.gather(), &mut text) {
        Ok(()) => (StatusCode::OK, text),
        Err(error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {error}"))
        }
    }
}
