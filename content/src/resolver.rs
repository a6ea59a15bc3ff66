//! Thread resolution: a 4chan thread into playlist items, with its JSON cached in Redis.
//!
//! Before a thread is asked for, its board is checked against 4chan's board list
//! (`{api}/boards.json`, cached in Redis for a day): a board 4chan does not have is refused
//! without a thread request, and with `CHANSHARE_WORKSAFE_ONLY` so is a board that is not
//! worksafe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tracing::{debug, warn};

use crate::chan::{Boards, Resolved, Thread, valid_board};
use crate::upstream::{Fetched, Upstream, UpstreamError};

/// A thread is fetched again at most this often (the API rules say 10 s at least).
pub const MIN_REFRESH: Duration = Duration::from_secs(10);
const CACHE_SECONDS: u64 = 7 * 24 * 3600;
/// The board list: a hash, board → `1` (worksafe) or `0`.
const BOARDS_KEY: &str = "chanshare:boards";
/// How long the board list is kept before it is fetched again.
const BOARDS_SECONDS: u64 = 24 * 3600;
/// Set for a while when the board list could not be fetched: meanwhile boards are not checked.
const BOARDS_UNAVAILABLE_KEY: &str = "chanshare:boards:unavailable";
/// How long boards go unchecked after the board list could not be fetched.
const BOARDS_RETRY_SECONDS: u64 = 60;

/// Why a thread could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Bad board or thread number.
    #[error("invalid thread: {0}")]
    Invalid(String),
    /// 404 upstream.
    #[error("thread not found")]
    NotFound,
    /// The board is not on 4chan's board list.
    #[error("no such board: /{0}/")]
    UnknownBoard(String),
    /// This deployment allows only worksafe boards (`CHANSHARE_WORKSAFE_ONLY`) and the board
    /// is not one.
    #[error("only worksafe boards are allowed here")]
    NotWorksafe,
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
    worksafe_only: bool,
    /// Held while this replica fetches the board list, so that it fetches it once.
    board_list: Arc<tokio::sync::Mutex<()>>,
}

/// What the cached board list says about a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listed {
    /// No board list is cached.
    NoList,
    /// The board is not on it.
    Unknown,
    /// The board is on it.
    Board {
        /// Its `ws_board` is 1.
        worksafe: bool,
    },
}

fn thread_key(board: &str, thread: u64) -> String {
    format!("chanshare:thread:{board}:{thread}")
}

/// The Redis key that lets the cache fetch a media file, with its expected size and MD5.
pub(crate) fn meta_key(object_key: &str) -> String {
    format!("chanshare:media:meta:{object_key}")
}

impl Resolver {
    /// A resolver over `upstream`, caching in `redis`, allowing every board 4chan has.
    pub fn new(upstream: Arc<Upstream>, redis: ConnectionManager) -> Self {
        Self {
            upstream,
            redis,
            worksafe_only: false,
            board_list: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// With `worksafe_only`, threads of boards whose `ws_board` is not 1 are refused
    /// ([`ResolveError::NotWorksafe`]).
    #[must_use]
    pub fn worksafe_only(mut self, worksafe_only: bool) -> Self {
        self.worksafe_only = worksafe_only;
        self
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
        let started = Instant::now();
        self.check_board(board, patience).await?;
        let patience = patience.saturating_sub(started.elapsed());
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

    /// Refuses a board that is not on 4chan's board list (or, with `worksafe_only`, is not
    /// worksafe), fetching the list when Redis has none.
    ///
    /// When the list cannot be fetched (4chan down, an unreadable answer), the board is let
    /// through rather than every room refused: the thread request that follows finds out
    /// whether the thread exists. The failure is logged, and for [`BOARDS_RETRY_SECONDS`] no
    /// replica asks for the list again, so an outage does not double the requests. The one
    /// exception is `worksafe_only`: a board that cannot be shown to be worksafe is refused as
    /// unavailable (a retry later succeeds), never let through.
    async fn check_board(&self, board: &str, patience: Duration) -> Result<(), ResolveError> {
        let mut redis = self.redis.clone();
        let listed = match listed(&mut redis, board).await? {
            Listed::NoList => {
                // One fetch per replica at a time; whoever waited finds the list in Redis.
                let _fetching = self.board_list.lock().await;
                match listed(&mut redis, board).await? {
                    Listed::NoList => self.fetch_board_list(&mut redis, board, patience).await?,
                    listed => listed,
                }
            }
            listed => listed,
        };
        match listed {
            Listed::Board { worksafe: false } if self.worksafe_only => {
                Err(ResolveError::NotWorksafe)
            }
            Listed::Board { .. } => Ok(()),
            Listed::Unknown => Err(ResolveError::UnknownBoard(board.to_owned())),
            Listed::NoList if self.worksafe_only => Err(UpstreamError::Unavailable(
                "the board list is unavailable, so the board cannot be shown to be worksafe".into(),
            )
            .into()),
            Listed::NoList => {
                debug!(%board, "board list unavailable: board not checked");
                Ok(())
            }
        }
    }

    /// Fetches the board list into Redis and says what it says about `board`; `NoList` when it
    /// cannot be fetched now (see [`Resolver::check_board`]).
    async fn fetch_board_list(
        &self,
        redis: &mut ConnectionManager,
        board: &str,
        patience: Duration,
    ) -> Result<Listed, ResolveError> {
        let failed_lately: bool = redis::cmd("EXISTS")
            .arg(BOARDS_UNAVAILABLE_KEY)
            .query_async(redis)
            .await
            .map_err(unavailable)?;
        if failed_lately {
            return Ok(Listed::NoList);
        }
        let boards = match self.upstream.boards(patience).await.and_then(|body| board_list(&body)) {
            Ok(boards) => boards,
            // Our own limiter: 4chan is fine, we are busy; the thread would need a slot too.
            Err(error @ UpstreamError::RateLimited(_)) => return Err(error.into()),
            Err(error) => {
                warn!(%board, %error, "board list unavailable");
                redis::cmd("SET")
                    .arg(BOARDS_UNAVAILABLE_KEY)
                    .arg(1)
                    .arg("EX")
                    .arg(BOARDS_RETRY_SECONDS)
                    .query_async::<()>(redis)
                    .await
                    .map_err(unavailable)?;
                return Ok(Listed::NoList);
            }
        };
        let flags: Vec<(&str, u8)> =
            boards.iter().map(|(name, worksafe)| (name.as_str(), u8::from(*worksafe))).collect();
        redis::pipe()
            .atomic()
            .del(BOARDS_KEY)
            .ignore()
            .hset_multiple(BOARDS_KEY, &flags)
            .ignore()
            .expire(BOARDS_KEY, BOARDS_SECONDS as i64)
            .ignore()
            .query_async::<()>(redis)
            .await
            .map_err(unavailable)?;
        Ok(boards
            .iter()
            .find(|(name, _)| name == board)
            .map_or(Listed::Unknown, |(_, worksafe)| Listed::Board { worksafe: *worksafe }))
    }
}

/// The boards of a `boards.json` body with whether each is worksafe; an unreadable or empty
/// list is an error.
fn board_list(body: &[u8]) -> Result<Vec<(String, bool)>, UpstreamError> {
    let list: Boards = serde_json::from_slice(body)
        .map_err(|e| UpstreamError::Unavailable(format!("unreadable board list: {e}")))?;
    let boards = list.worksafe_by_name();
    if boards.is_empty() {
        return Err(UpstreamError::Unavailable("empty board list".into()));
    }
    Ok(boards)
}

/// What the board list in Redis says about `board`.
async fn listed(redis: &mut ConnectionManager, board: &str) -> Result<Listed, ResolveError> {
    let (exists, flag): (bool, Option<String>) = redis::pipe()
        .atomic()
        .exists(BOARDS_KEY)
        .hget(BOARDS_KEY, board)
        .query_async(redis)
        .await
        .map_err(unavailable)?;
    Ok(match (exists, flag) {
        (false, _) => Listed::NoList,
        (true, None) => Listed::Unknown,
        (true, Some(flag)) => Listed::Board { worksafe: flag == "1" },
    })
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
