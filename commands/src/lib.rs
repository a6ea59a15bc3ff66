//! The write side: turns commands into commits.
//!
//! A NATS service (`$SRV` discoverable, queue group `chanshare-commands`) with two endpoints:
//! `chanshare.cmd.<room>` decides a command for a room, `chanshare.rooms.create` provisions a
//! room. Any number of replicas can run: optimistic concurrency on the room's last stream
//! sequence is the only fence, so there is no room ownership to manage. Each replica also runs
//! the presence reaper and the snapshotter.
//!
//! # Layout
//! - [`handler`]: load or catch up, decide, append, retry on conflict; idempotent by command id.
//! - `cache`: folded rooms, bounded by memory.
//! - [`provision`]: room creation (id allocation, thread resolution, host token).
//! - [`reaper`]: presence timeouts and idle closes.
//! - [`snapshots`]: keeps each room's snapshot near its head.
//! - [`metrics`]: counters for the observability issue.

mod cache;
pub mod handler;
pub mod metrics;
pub mod provision;
pub mod reaper;
pub mod snapshots;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::service::ServiceExt as _;
use events::Command;
use futures::StreamExt;
use protocol::{CommandReply, CommandRequest, CreateReply, CreateRequest, subjects};
use tokio::sync::Semaphore;
use tracing::{Instrument as _, info, warn};

pub use handler::Handler;
pub use metrics::Metrics;
pub use provision::Provisioner;
pub use reaper::ReaperConfig;

/// The NATS service's name (`$SRV.PING.chanshare-commands`, …).
pub const SERVICE_NAME: &str = "chanshare-commands";
const QUEUE_GROUP: &str = "chanshare-commands";
/// Requests decided at once by one replica (across rooms; one at a time within a room).
const CONCURRENCY: usize = 512;

/// What the service needs.
#[derive(Debug, Clone)]
pub struct Service {
    /// Decides commands.
    pub handler: Arc<Handler>,
    /// Creates rooms.
    pub provisioner: Arc<Provisioner>,
    /// Heartbeats.
    pub presence: presence::Presence,
    /// Reaper timings.
    pub reaper: ReaperConfig,
    /// The secret namespace of the reaper's command ids (`tokens::Signer::id_namespace`).
    pub reaper_ids: uuid::Uuid,
    /// How often room snapshots are brought up to the head.
    pub snapshot_interval: Duration,
    /// Metrics.
    pub metrics: Metrics,
}

/// A new room's creator counts as present until a socket of theirs takes over, like a joiner:
/// its heartbeat puts the room under the reaper's eye, so a room nobody ever opens is closed too.
async fn created(presence: &presence::Presence, reply: CreateReply) -> CreateReply {
    if let CreateReply::Created { room_id, member_id, .. } = &reply
        && let Err(error) =
            presence.beat(room_id, std::slice::from_ref(member_id), handler::now_ms()).await
    {
        warn!(room = %room_id, %error, "cannot record presence of a room's creator");
    }
    reply
}

/// The service could not start.
#[derive(Debug, thiserror::Error)]
#[error("commands service: {0}")]
pub struct ServiceError(#[source] async_nats::Error);

/// Serves commands on `client` until `shutdown` resolves, then stops taking requests and waits
/// (briefly) for the ones in flight.
pub async fn run(
    client: async_nats::Client,
    service: Service,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    let nats_service = client
        .service_builder()
        .description("chanshare write side: decides room commands and appends commits")
        .queue_group(QUEUE_GROUP)
        .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(ServiceError)?;
    let mut commands = nats_service
        .endpoint_builder()
        .name("command")
        .add(format!("{}*", subjects::COMMAND_PREFIX))
        .await
        .map_err(ServiceError)?;
    let mut creates = nats_service
        .endpoint_builder()
        .name("create")
        .add(subjects::CREATE)
        .await
        .map_err(ServiceError)?;
    info!(service = SERVICE_NAME, "commands service ready");

    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let ports =
        reaper::Live { handler: service.handler.clone(), presence: service.presence.clone() };
    let reaper =
        reaper::Reaper::new(ports, service.reaper, service.reaper_ids, service.metrics.clone());
    let reaper = tokio::spawn(reaper.run());
    let snapshotter = tokio::spawn(snapshots::run(
        service.handler.log().clone(),
        service.snapshot_interval,
        service.metrics.clone(),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(request) = commands.next() => {
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let service = service.clone();
                tasks.spawn(async move {
                    let body = handle_command(&service, &request.message).await;
                    respond(&request, body).await;
                    drop(permit);
                });
            }
            Some(request) = creates.next() => {
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let (provisioner, presence) = (service.provisioner.clone(), service.presence.clone());
                tasks.spawn(async move {
                    let reply = match serde_json::from_slice::<CreateRequest>(&request.message.payload) {
                        Ok(create) => created(&presence, provisioner.create(create).await).await,
                        Err(error) => CreateReply::Rejected {
                            code: events::RejectCode::Invalid,
                            message: format!("bad create request: {error}"),
                        },
                    };
                    respond(&request, serde_json::to_vec(&reply)).await;
                    drop(permit);
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            else => break,
        }
    }
    reaper.abort();
    snapshotter.abort();
    commands.stop().await.ok();
    creates.stop().await.ok();
    // Requests already taken get a short grace period to be answered.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain).await.is_err() {
        warn!("shutdown: some commands were still in flight");
    }
    // A last pass, so the commits of a stop that lasts longer than the stream's max age are held.
    let sweep = snapshots::sweep(service.handler.log(), &service.metrics);
    if tokio::time::timeout(Duration::from_secs(5), sweep).await.is_err() {
        warn!("shutdown: the last snapshot pass did not finish");
    }
    Ok(())
}

async fn handle_command(
    service: &Service,
    message: &async_nats::Message,
) -> Result<Vec<u8>, serde_json::Error> {
    let room = subjects::command_room(&message.subject);
    let reply = match (room, serde_json::from_slice::<CommandRequest>(&message.payload)) {
        (None, _) => CommandReply::invalid("bad room id in subject"),
        (_, Err(error)) => CommandReply::invalid(format!("bad command: {error}")),
        (Some(room), Ok(request)) => {
            let joined = match (&request.command, &request.actor) {
                (Command::Join { .. }, events::Actor::Member(member)) => Some(member.clone()),
                _ => None,
            };
            let span =
                tracing::info_span!("commands.handle", %room, command = request.command.name());
            telemetry::continue_trace(&span, request.traceparent.as_deref());
            let reply = service.handler.handle(&room, request).instrument(span).await;
            if let (Some(member), CommandReply::Accepted { .. }) = (joined, &reply) {
                // A joiner counts as present until its gateway's heartbeats take over.
                if let Err(error) = service.presence.beat(&room, &[member], handler::now_ms()).await
                {
                    warn!(%room, %error, "cannot record presence of a joiner");
                }
            }
            reply
        }
    };
    serde_json::to_vec(&reply)
}

async fn respond(request: &async_nats::service::Request, body: Result<Vec<u8>, serde_json::Error>) {
    let response = match body {
        Ok(body) => Ok(body.into()),
        Err(error) => {
            Err(async_nats::service::error::Error { status: error.to_string(), code: 500 })
        }
    };
    if let Err(error) = request.respond(response).await {
        warn!(%error, "cannot send a reply");
    }
}
