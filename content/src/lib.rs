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
//! - [`media`]: the cache's HTTP handler, single-flight misses, verification.
//! - [`watcher`]: following live threads.
//! - [`store`]: opening the object store.

pub mod chan;
pub mod media;
pub mod metrics;
pub mod range;
pub mod resolver;
pub mod store;
pub mod upstream;
pub mod watcher;

use std::future::Future;
use std::time::Duration;

use async_nats::service::ServiceExt as _;
use events::{RejectCode, RoomId};
use futures::StreamExt;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

pub use media::Media;
pub use metrics::Metrics;
pub use resolver::{ResolveError, Resolver};

/// The NATS service name.
pub const SERVICE_NAME: &str = "chanshare-content";
/// Thread resolution requests.
pub const RESOLVE_SUBJECT: &str = "chanshare.content.resolve";
/// Watch registrations.
pub const WATCH_SUBJECT: &str = "chanshare.content.watch";
/// How many items of a new room are fetched into the cache ahead of playback.
const PREFETCH: usize = 3;

#[derive(Debug, Deserialize)]
struct ResolveRequest {
    board: String,
    thread: u64,
}

#[derive(Debug, Deserialize)]
struct WatchRequest {
    room: RoomId,
    board: String,
    thread: u64,
}

#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum ResolveReply {
    Resolved {
        items: Vec<events::Media>,
        archived: bool,
        /// The thread's subject or first words (absent when it has neither).
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    NotFound {
        message: String,
    },
    Error {
        code: RejectCode,
        message: String,
    },
}

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
}

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
    let mut resolves = service.endpoint_builder().name("resolve").add(RESOLVE_SUBJECT).await?;
    let mut watches = service.endpoint_builder().name("watch").add(WATCH_SUBJECT).await?;
    let watcher = tokio::spawn(watcher::run(
        content.resolver.clone(),
        content.redis.clone(),
        client.clone(),
        content.watch_tick,
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
                    if let Err(error) = request.respond(Ok(reply.to_string().into())).await {
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
        Err(ResolveError::NotFound) => {
            ResolveReply::NotFound { message: "thread not found".into() }
        }
        Err(ResolveError::Invalid(message)) => {
            ResolveReply::Error { code: RejectCode::Invalid, message }
        }
        Err(error) => {
            ResolveReply::Error { code: RejectCode::Unavailable, message: error.to_string() }
        }
    }
}

async fn watch(content: &Content, payload: &[u8]) -> serde_json::Value {
    let request: WatchRequest = match serde_json::from_slice(payload) {
        Ok(request) => request,
        Err(error) => {
            return serde_json::json!({"status": "error", "message": format!("bad request: {error}")});
        }
    };
    let resolution = match content
        .resolver
        .resolve(&request.board, request.thread, Duration::from_secs(10))
        .await
    {
        Ok(resolution) => resolution,
        Err(error) => return serde_json::json!({"status": "error", "message": error.to_string()}),
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
        return serde_json::json!({"status": "not_watched", "reason": "archived"});
    }
    let watch = watcher::Watch { board: request.board, thread: request.thread };
    match watcher::register(&content.redis, &request.room, &watch).await {
        Ok(()) => serde_json::json!({"status": "watching"}),
        Err(error) => serde_json::json!({"status": "error", "message": error.to_string()}),
    }
}
