//! The content service: clients never touch the 4chan CDN.
//!
//! - A NATS service `chanshare-content`: `chanshare.content.resolve` turns a thread into
//!   playlist items; `chanshare.content.watch` registers a room to follow its thread (and warms
//!   the first items of the cache).
//! - The media cache, `/media/{board}/{file}` (served on the same port as the gateway in
//!   `serve`), over a local directory or any S3.
//! - The thread watcher, which adds a live thread's new media to its room.
//!
//! Only this crate talks to 4chan (ARCHITECTURE.md invariant 6): one API request per second
//! across replicas, `If-Modified-Since`, a descriptive User-Agent, no Referer.
//!
//! # Layout
//! - [`chan`]: the API's JSON and what we take from it; media path validation (pure).
//! - [`range`]: the Range header (pure).
//! - [`upstream`]: the rate-limited HTTP client.
//! - [`resolver`]: threads into items, cached in Redis.
//! - [`media`]: the cache's HTTP handler, single-flight misses in their own tasks, the download
//!   queue, verification.
//! - [`budget`]: the cache's byte budget, an LRU index in Redis shared by replicas.
//! - [`watcher`]: following live threads.

pub mod budget;
pub mod chan;
pub mod media;
pub mod metrics;
pub mod range;
pub mod resolver;
pub mod upstream;
pub mod watcher;

use std::future::Future;
use std::time::Duration;

use async_nats::service::ServiceExt as _;
use events::RejectCode;
use futures::StreamExt;
use protocol::{ResolveReply, ResolveRequest, WatchReply, WatchRequest, subjects};
use redis::aio::ConnectionManager;
use tracing::{info, warn};

pub use media::{Media, MediaLimits};
pub use metrics::Metrics;
pub use resolver::{ResolveError, Resolver};

/// The NATS service name.
pub const SERVICE_NAME: &str = "chanshare-content";
/// How many items of a new room are fetched into the cache ahead of playback.
const PREFETCH: usize = 3;

/// Everything the content role runs.
#[derive(Debug, Clone)]
pub struct Content {
    /// Threads into items.
    pub resolver: Resolver,
    /// The media cache.
    pub media: Media,
    /// Redis (watch registrations).
    pub redis: ConnectionManager,
    /// How often the watcher looks at its registrations.
    pub watch_tick: Duration,
    /// The secret namespace of the watcher's command ids (`tokens::Signer::id_namespace`).
    pub watch_ids: uuid::Uuid,
    /// The most threads the deployment follows at once (`CHANSHARE_MAX_THREAD_WATCHES`): a
    /// watch request beyond it is answered `not_watched` (reason [`WATCH_LIMIT`]), so that
    /// rooms made in bulk cannot spend the shared 4chan request budget.
    pub max_watches: usize,
}

/// The `not_watched` reason when the deployment already follows [`Content::max_watches`]
/// threads.
pub const WATCH_LIMIT: &str = "limit";

/// Serves resolution and watch requests and runs the watcher until `shutdown` resolves.
pub async fn run(
    client: async_nats::Client,
    content: Content,
    shutdown: impl Future<Output = ()>,
) -> Result<(), async_nats::Error> {
    let service = client
        .service_builder()
        .description("chanshare content: thread resolution and watching")
        .queue_group(SERVICE_NAME)
        .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
        .await?;
    let mut resolves = service.endpoint_builder().name("resolve").add(subjects::RESOLVE).await?;
    let mut watches = service.endpoint_builder().name("watch").add(subjects::WATCH).await?;
    let watcher = tokio::spawn(watcher::run(
        content.resolver.clone(),
        content.redis.clone(),
        protocol::Client::new(client.clone(), Duration::from_secs(10)),
        content.watch_tick,
        content.watch_ids,
    ));
    info!(service = SERVICE_NAME, "content service ready");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(request) = resolves.next() => {
                let content = content.clone();
                tokio::spawn(async move {
                    let reply = resolve(&content, &request.message.payload).await;
                    let body = serde_json::to_vec(&reply).unwrap_or_default();
                    if let Err(error) = request.respond(Ok(body.into())).await {
                        warn!(%error, "cannot answer a resolve request");
                    }
                });
            }
            Some(request) = watches.next() => {
                let content = content.clone();
                tokio::spawn(async move {
                    let reply = watch(&content, &request.message.payload).await;
                    let body = serde_json::to_vec(&reply).unwrap_or_default();
                    if let Err(error) = request.respond(Ok(body.into())).await {
                        warn!(%error, "cannot answer a watch request");
                    }
                });
            }
            else => break,
        }
    }
    watcher.abort();
    resolves.stop().await.ok();
    watches.stop().await.ok();
    Ok(())
}

async fn resolve(content: &Content, payload: &[u8]) -> ResolveReply {
    let request: ResolveRequest = match serde_json::from_slice(payload) {
        Ok(request) => request,
        Err(error) => {
            return ResolveReply::Error {
                code: RejectCode::Invalid,
                message: format!("bad request: {error}"),
            };
        }
    };
    match content.resolver.resolve(&request.board, request.thread, Duration::from_secs(10)).await {
        Ok(resolution) => ResolveReply::Resolved {
            items: resolution.resolved.items,
            archived: resolution.resolved.archived,
            title: resolution.resolved.title,
        },
        // A board 4chan does not have is answered as a thread it does not have.
        Err(error @ (ResolveError::NotFound | ResolveError::UnknownBoard(_))) => {
            ResolveReply::NotFound { message: error.to_string() }
        }
        Err(ResolveError::Invalid(message)) => {
            ResolveReply::Error { code: RejectCode::Invalid, message }
        }
        Err(error @ ResolveError::NotWorksafe) => {
            ResolveReply::Error { code: RejectCode::Invalid, message: error.to_string() }
        }
        Err(error) => {
            ResolveReply::Error { code: RejectCode::Unavailable, message: error.to_string() }
        }
    }
}

async fn watch(content: &Content, payload: &[u8]) -> WatchReply {
    let request: WatchRequest = match serde_json::from_slice(payload) {
        Ok(request) => request,
        Err(error) => {
            return WatchReply::Error { message: format!("bad request: {error}") };
        }
    };
    let resolution = match content
        .resolver
        .resolve(&request.board, request.thread, Duration::from_secs(10))
        .await
    {
        Ok(resolution) => resolution,
        Err(error) => return WatchReply::Error { message: error.to_string() },
    };
    for item in resolution.resolved.items.iter().take(PREFETCH) {
        let media = content.media.clone();
        let (board, url) = (request.board.clone(), item.url.clone());
        tokio::spawn(async move {
            let Some(file) = url.rsplit('/').next() else { return };
            if let Err(error) = media.warm(&board, file).await {
                warn!(%url, %error, "prefetch failed");
            }
        });
    }
    if resolution.resolved.archived {
        return WatchReply::NotWatched { reason: "archived".into() };
    }
    let watch = watcher::Watch { board: request.board, thread: request.thread };
    match watcher::register(&content.redis, &request.room, &watch, content.max_watches).await {
        Ok(true) => WatchReply::Watching,
        Ok(false) => {
            warn!(
                room = %request.room,
                board = watch.board,
                thread = watch.thread,
                limit = content.max_watches,
                "thread watch limit reached: not watching"
            );
            WatchReply::NotWatched { reason: WATCH_LIMIT.into() }
        }
        Err(error) => WatchReply::Error { message: error.to_string() },
    }
}

#[cfg(test)]
mod props;
