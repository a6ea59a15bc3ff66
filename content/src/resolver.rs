//! Thread resolution: a 4chan thread into playlist items, with its JSON cached in Redis.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tracing::warn;

use crate::chan::{Resolved, Thread, valid_board};
use crate::upstream::{Fetched, Upstream, UpstreamError};

/// A thread is fetched again at most this often (the API rules say 10 s at least).
pub const MIN_REFRESH: Duration = Duration::from_secs(10);
const CACHE_SECONDS: u64 = 7 * 24 * 3600;

/// Why a thread could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Bad board or thread number.
    #[error("invalid thread: {0}")]
    Invalid(String),
    /// 404 upstream.
    #[error("thread not found")]
    NotFound,
    /// Upstream failed or we are rate limited.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// A resolution and the thread's `Last-Modified`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// What the thread resolves to.
    pub resolved: Resolved,
    /// The thread's `Last-Modified` (a version stamp for watchers).
    pub last_modified: String,
}

/// Resolves threads.
#[derive(Debug, Clone)]
pub struct Resolver {
    upstream: Arc<Upstream>,
    redis: ConnectionManager,
}

fn thread_key(board: &str, thread: u64) -> String {
    format!("chanshare:thread:{board}:{thread}")
}

/// The Redis key that lets the cache fetch a media file, with its expected size and MD5.
pub(crate) fn meta_key(object_key: &str) -> String {
    format!("chanshare:media:meta:{object_key}")
}

impl Resolver {
    /// A resolver over `upstream`, caching in `redis`.
    pub fn new(upstream: Arc<Upstream>, redis: ConnectionManager) -> Self {
        Self { upstream, redis }
    }

    /// Resolves `board`/`thread`, from the cache when it was fetched less than 10 s ago, else
    /// from upstream with `If-Modified-Since`.
    pub async fn resolve(
        &self,
        board: &str,
        thread: u64,
        patience: Duration,
    ) -> Result<Resolution, ResolveError> {
        if !valid_board(board) {
            return Err(ResolveError::Invalid("board must be 1 to 10 characters a-z0-9".into()));
        }
        if thread == 0 || thread > i64::MAX as u64 {
            return Err(ResolveError::Invalid("thread number out of range".into()));
        }
        let key = thread_key(board, thread);
        let mut redis = self.redis.clone();
        let (body, last_modified, fetched_at): (Option<Vec<u8>>, Option<String>, Option<u64>) =
            redis::cmd("HMGET")
                .arg(&key)
                .arg("body")
                .arg("last_modified")
                .arg("fetched_at")
                .query_async(&mut redis)
                .await
                .map_err(unavailable)?;
        let now = redis_now_ms(&mut redis).await?;
        let fresh =
            fetched_at.is_some_and(|at| now.saturating_sub(at) < MIN_REFRESH.as_millis() as u64);
        let (body, last_modified) = match (body, fresh) {
            (Some(body), true) => (body, last_modified.unwrap_or_default()),
            (cached, _) => {
                let since = cached.as_ref().and(last_modified.as_deref());
                match self.upstream.thread(board, thread, since, patience).await? {
                    Fetched::Body { body, last_modified } => {
                        let last_modified =
                            last_modified.unwrap_or_else(|| format!("fetched {now}"));
                        redis::pipe()
                            .hset_multiple(
                                &key,
                                &[
                                    ("body", body.as_ref()),
                                    ("last_modified", last_modified.as_bytes()),
                                    ("fetched_at", now.to_string().as_bytes()),
                                ],
                            )
                            .ignore()
                            .expire(&key, CACHE_SECONDS as i64)
                            .ignore()
                            .query_async::<()>(&mut redis)
                            .await
                            .map_err(unavailable)?;
                        (body.to_vec(), last_modified)
                    }
                    Fetched::NotModified => match cached {
                        Some(body) => {
                            redis::cmd("HSET")
                                .arg(&key)
                                .arg("fetched_at")
                                .arg(now)
                                .query_async::<()>(&mut redis)
                                .await
                                .map_err(unavailable)?;
                            (body, last_modified.unwrap_or_default())
                        }
                        None => {
                            return Err(UpstreamError::Unavailable(
                                "304 without a cached thread".into(),
                            )
                            .into());
                        }
                    },
                    Fetched::NotFound => {
                        redis::cmd("DEL")
                            .arg(&key)
                            .query_async::<()>(&mut redis)
                            .await
                            .map_err(unavailable)?;
                        return Err(ResolveError::NotFound);
                    }
                }
            }
        };
        let thread_json: Thread = serde_json::from_slice(&body).map_err(|e| {
            warn!(board, thread, error = %e, "unreadable thread json");
            UpstreamError::Unavailable(format!("unreadable thread json: {e}"))
        })?;
        let resolved = thread_json.resolve(board, thread);
        // Record which files the cache may fetch, and what they must look like.
        let mut pipe = redis::pipe();
        for file in &resolved.files {
            let object = format!("{}/{}{}", file.board, file.tim, file.ext);
            pipe.set_ex(meta_key(&object), format!("{}:{}", file.fsize, file.md5), CACHE_SECONDS)
                .ignore();
            pipe.set_ex(
                meta_key(&format!("{}/{}s.jpg", file.board, file.tim)),
                "thumb",
                CACHE_SECONDS,
            )
            .ignore();
        }
        pipe.query_async::<()>(&mut redis).await.map_err(unavailable)?;
        Ok(Resolution { resolved, last_modified })
    }
}

fn unavailable(error: redis::RedisError) -> ResolveError {
    ResolveError::Upstream(UpstreamError::Unavailable(format!("redis: {error}")))
}

/// Redis' clock in ms (shared by every replica).
pub(crate) async fn redis_now_ms(redis: &mut ConnectionManager) -> Result<u64, ResolveError> {
    let (seconds, micros): (u64, u64) =
        redis::cmd("TIME").query_async(redis).await.map_err(unavailable)?;
    Ok(seconds * 1000 + micros / 1000)
}
