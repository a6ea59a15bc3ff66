//! `/media/{board}/{file}`: the cache clients load media from.
//!
//! A HIT streams from the object store with Range support. A MISS is fetched once however many
//! requests arrive (one download task per key in a replica, and a Redis lease across replicas),
//! verified against the size and MD5 the thread announced, stored, and then served. Only files of
//! resolved threads are fetched, and only from the configured media host.
//!
//! A download runs in its own task: a client that goes away does not cancel it, and its lease is
//! released when it ends, however it ends. A replica runs [`MediaLimits::downloads`] downloads at
//! once and lets [`MediaLimits::queue`] more wait; beyond that a miss is answered 503 with
//! `Retry-After`. The store is held to a byte budget ([`crate::budget`]): storing a download
//! evicts the least recently used objects until it fits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apierror::{ApiError, ErrorKind};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use md5::{Digest, Md5};
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt as _, PutOptions,
};
use redis::aio::ConnectionManager;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

use crate::budget::{Budget, Victim};
use crate::chan::{MediaName, valid_board};
use crate::metrics::Metrics;
use crate::range::{self, Requested};
use crate::resolver::meta_key;
use crate::upstream::{Upstream, UpstreamError};

const THUMB_MAX: u64 = 2 << 20;
/// The largest file the cache fetches, whatever a thread claims (4chan's own limits are ~6 MiB).
pub const MEDIA_MAX: u64 = 64 << 20;
const LEASE_MS: u64 = 60_000;
/// What a client refused for a full download queue is told to wait.
const BUSY_RETRY: Duration = Duration::from_secs(2);
/// How long a hit waits for Redis to record its use before serving anyway.
const TOUCH_PATIENCE: Duration = Duration::from_millis(500);
/// Objects whose last recorded use a replica remembers (to skip recording it again too soon).
const TOUCHED_MAX: usize = 10_000;
/// Times a request looks an object up when it keeps being evicted before it is read.
const READ_ATTEMPTS: u32 = 3;
/// Victims deleted from the store at once.
const EVICT_CONCURRENCY: usize = 8;

/// The default byte budget of the cache (`CHANSHARE_MEDIA_CACHE_BYTES`): 10 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 10 << 30;
/// The default number of downloads a replica runs at once (`CHANSHARE_MEDIA_DOWNLOADS`).
pub const DEFAULT_DOWNLOADS: usize = 2;
/// The default number of downloads a replica lets wait (`CHANSHARE_MEDIA_DOWNLOAD_QUEUE`).
pub const DEFAULT_DOWNLOAD_QUEUE: usize = 32;

/// How much the cache holds and how it downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaLimits {
    /// The store's byte budget across replicas; the least recently used objects are evicted to
    /// keep under it. One object larger than the whole budget is still stored, alone.
    pub cache_bytes: u64,
    /// Downloads from upstream running at once in this replica (at least 1).
    pub downloads: usize,
    /// Downloads of distinct files waiting for one of those slots; a miss beyond them is 503.
    pub queue: usize,
    /// A hit records its object's use at most this often (per object and replica); within
    /// it, the last recorded use stands.
    pub touch_every: Duration,
}

impl Default for MediaLimits {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
            downloads: DEFAULT_DOWNLOADS,
            queue: DEFAULT_DOWNLOAD_QUEUE,
            touch_every: Duration::from_secs(60),
        }
    }
}

/// A download's outcome, `None` while it runs.
type Outcome = Option<Result<(), MediaError>>;

/// The media cache's state.
#[derive(Clone)]
pub struct Media {
    store: Arc<dyn ObjectStore>,
    upstream: Arc<Upstream>,
    redis: ConnectionManager,
    /// The running or waiting download of each key in this replica.
    inflight: Arc<Mutex<HashMap<String, watch::Receiver<Outcome>>>>,
    /// Downloads running at once.
    slots: Arc<Semaphore>,
    /// Downloads running or waiting.
    admitted: Arc<Semaphore>,
    budget: Budget,
    /// When this replica last recorded a use of each key.
    touched: Arc<Mutex<HashMap<String, Instant>>>,
    touch_every: Duration,
    metrics: Metrics,
    owner: String,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Media(..)")
    }
}

impl Media {
    /// A cache over `store`, filled from `upstream`, with the default [`MediaLimits`].
    pub fn new(
        store: Arc<dyn ObjectStore>,
        upstream: Arc<Upstream>,
        redis: ConnectionManager,
        metrics: Metrics,
    ) -> Self {
        let limits = MediaLimits::default();
        Self {
            store,
            upstream,
            budget: Budget::new(redis.clone(), limits.cache_bytes),
            redis,
            inflight: Arc::default(),
            slots: Arc::new(Semaphore::new(limits.downloads)),
            admitted: Arc::new(Semaphore::new(limits.downloads + limits.queue)),
            touched: Arc::default(),
            touch_every: limits.touch_every,
            metrics,
            owner: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The same cache held to `limits` (call it before serving).
    pub fn with_limits(mut self, limits: MediaLimits) -> Self {
        let downloads = limits.downloads.max(1);
        self.budget = Budget::new(self.redis.clone(), limits.cache_bytes);
        self.slots = Arc::new(Semaphore::new(downloads));
        self.admitted = Arc::new(Semaphore::new(downloads.saturating_add(limits.queue)));
        self.touch_every = limits.touch_every;
        self
    }

    /// The `/media` routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/media/{board}/{file}", get(serve))
            .with_state(self)
            // Media is served as what its extension says, never sniffed into something else
            // (a "jpg" that is HTML must not run as a page of ours).
            .layer(axum::middleware::map_response(|mut response: Response| async move {
                response.headers_mut().insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    axum::http::HeaderValue::from_static("nosniff"),
                );
                response
            }))
    }

    /// Makes sure `key` is in the store (fetching it if needed); used by prefetch.
    pub async fn warm(&self, board: &str, file: &str) -> Result<(), MediaError> {
        let (key, _) = parse(board, file)?;
        self.ensure(&key).await
    }

    /// The object is in the store when this returns `Ok`.
    async fn ensure(&self, key: &str) -> Result<(), MediaError> {
        let path = ObjectPath::from(key);
        if self.store.head(&path).await.is_ok() {
            return Ok(());
        }
        let mut outcome = match self.joined(key) {
            Some(outcome) => outcome,
            None => {
                let expected = self.expected(key).await?;
                self.start(key, path, expected)?
            }
        };
        match outcome.wait_for(Option::is_some).await {
            Ok(done) => done.clone().unwrap_or(Err(MediaError::Unavailable("no outcome".into()))),
            Err(_) => Err(MediaError::Unavailable("the download stopped".into())),
        }
    }

    /// The outcome of `key`'s download in this replica, if one is running or waiting.
    fn joined(&self, key: &str) -> Option<watch::Receiver<Outcome>> {
        lock(&self.inflight).get(key).cloned()
    }

    /// Joins `key`'s download, or starts it in its own task if the queue has room: it runs to
    /// its end whoever is still waiting for it.
    fn start(
        &self,
        key: &str,
        path: ObjectPath,
        expected: Expected,
    ) -> Result<watch::Receiver<Outcome>, MediaError> {
        let mut inflight = lock(&self.inflight);
        if let Some(outcome) = inflight.get(key) {
            return Ok(outcome.clone());
        }
        let Ok(admitted) = self.admitted.clone().try_acquire_owned() else {
            // Counted, not logged: a flood of misses would be a flood of lines.
            self.metrics.downloads_refused.inc();
            debug!(key, "media download queue full");
            return Err(MediaError::Busy(BUSY_RETRY));
        };
        let (done, outcome) = watch::channel(None);
        inflight.insert(key.to_owned(), outcome.clone());
        let media = self.clone();
        let key = key.to_owned();
        tokio::spawn(async move {
            let _admitted = admitted;
            let entry = Inflight { map: media.inflight.clone(), key: key.clone() };
            let result = media.fetch_once(&key, &path, &expected).await;
            if let Err(error) = &result {
                debug!(%key, %error, "media download failed");
            }
            drop(entry);
            done.send_replace(Some(result));
        });
        Ok(outcome)
    }

    /// A miss: the object's metadata once it is in the store, recorded as used; `None` if it
    /// was evicted again before it could be looked at (by another replica making room, when the
    /// budget is small for what is being asked for).
    async fn fill(&self, key: &str, path: &ObjectPath) -> Result<Option<ObjectMeta>, MediaError> {
        self.ensure(key).await?;
        match self.store.head(path).await {
            Ok(meta) => {
                self.touch(key, meta.size).await;
                Ok(Some(meta))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(MediaError::Unavailable(format!("store: {error}"))),
        }
    }

    /// What a download of `key` must look like, or 404 if no resolved thread has it.
    async fn expected(&self, key: &str) -> Result<Expected, MediaError> {
        let meta: Option<String> = redis::cmd("GET")
            .arg(meta_key(key))
            .query_async(&mut self.redis.clone())
            .await
            .map_err(|e| MediaError::Unavailable(format!("redis: {e}")))?;
        match meta.as_deref() {
            None => Err(MediaError::NotFound),
            Some("thumb") => Ok(Expected::Thumb),
            Some(meta) => {
                let (size, md5) = meta.split_once(':').ok_or(MediaError::NotFound)?;
                let size: u64 = size.parse().map_err(|_| MediaError::NotFound)?;
                if size > MEDIA_MAX {
                    return Err(MediaError::BadGateway(format!(
                        "the thread claims {size} bytes, over the {MEDIA_MAX} limit"
                    )));
                }
                Ok(Expected::File { size, md5: md5.to_owned() })
            }
        }
    }

    /// One download across replicas: the lease holder fetches, the others wait for the object.
    /// A replica takes one of its download slots only to take the lease (waiting for another
    /// replica's download costs none), and the holder releases the lease as soon as its download
    /// ends, stored or failed, so a failure is retried at once rather than after the lease
    /// expires.
    async fn fetch_once(
        &self,
        key: &str,
        path: &ObjectPath,
        expected: &Expected,
    ) -> Result<(), MediaError> {
        let lease = lease_key(key);
        let redis_error = |e: redis::RedisError| MediaError::Unavailable(format!("redis: {e}"));
        let mut waiting_since: Option<Instant> = None;
        loop {
            if self.store.head(path).await.is_ok() {
                return Ok(());
            }
            let held: bool = redis::cmd("EXISTS")
                .arg(&lease)
                .query_async(&mut self.redis.clone())
                .await
                .map_err(redis_error)?;
            if !held {
                let _slot = self
                    .slots
                    .acquire()
                    .await
                    .map_err(|e| MediaError::Unavailable(e.to_string()))?;
                // Another replica may have stored it while this one waited for a slot.
                if self.store.head(path).await.is_ok() {
                    return Ok(());
                }
                let taken: Option<String> = redis::cmd("SET")
                    .arg(&lease)
                    .arg(&self.owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(LEASE_MS)
                    .query_async(&mut self.redis.clone())
                    .await
                    .map_err(redis_error)?;
                if taken.is_some() {
                    let result = self.download(key, path, expected).await;
                    if let Err(error) = RELEASE
                        .key(&lease)
                        .arg(&self.owner)
                        .invoke_async::<()>(&mut self.redis.clone())
                        .await
                    {
                        warn!(key, %error, "cannot release a media lease");
                    }
                    return result;
                }
            }
            let since = *waiting_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(LEASE_MS) {
                return Err(MediaError::Unavailable("another replica is still downloading".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn download(
        &self,
        key: &str,
        path: &ObjectPath,
        expected: &Expected,
    ) -> Result<(), MediaError> {
        self.metrics.misses.inc();
        let max = match expected {
            Expected::File { size, .. } => *size,
            Expected::Thumb => THUMB_MAX,
        };
        let body = match self.upstream.media(key, max).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                self.metrics.upstream.with_label_values(&["404"]).inc();
                return Err(MediaError::NotFound);
            }
            Err(UpstreamError::RateLimited(wait)) => return Err(MediaError::RateLimited(wait)),
            Err(UpstreamError::Unavailable(message)) => {
                self.metrics.upstream.with_label_values(&["error"]).inc();
                return Err(MediaError::BadGateway(message));
            }
        };
        self.metrics.upstream.with_label_values(&["200"]).inc();
        verify(&body, expected).map_err(|why| {
            warn!(key, why, "upstream bytes refused");
            MediaError::BadGateway(why)
        })?;
        let size = body.len() as u64;
        let victims = self
            .budget
            .reserve(key, size)
            .await
            .map_err(|e| MediaError::Unavailable(format!("redis: {e}")))?;
        self.evict(victims).await;
        // The content type is not stored: it follows from the extension when serving, and not
        // every store keeps attributes (a local directory does not).
        if let Err(error) = self.store.put_opts(path, body.into(), PutOptions::default()).await {
            if let Err(error) = self.budget.forget(key).await {
                warn!(key, %error, "cannot uncount a media object that was not stored");
            }
            return Err(MediaError::Unavailable(format!("store: {error}")));
        }
        if let Err(error) = self.budget.commit(key).await {
            // Counted, and evictable once a hit records its use.
            warn!(key, %error, "cannot record a stored media object");
        }
        lock(&self.touched).insert(key.to_owned(), Instant::now());
        self.metrics.stored_bytes.inc_by(size);
        Ok(())
    }

    /// Deletes what [`Budget::reserve`] took out of the index. A missing object is fine (another
    /// replica, or an earlier attempt, deleted it); one that cannot be deleted goes back into
    /// the index, first in line.
    async fn evict(&self, victims: Vec<Victim>) {
        futures::stream::iter(victims)
            .for_each_concurrent(EVICT_CONCURRENCY, |victim| async move {
                lock(&self.touched).remove(&victim.key);
                match self.store.delete(&ObjectPath::from(victim.key.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                        debug!(key = %victim.key, bytes = victim.bytes, "media evicted");
                        self.metrics.evictions.inc();
                        self.metrics.evicted_bytes.inc_by(victim.bytes);
                    }
                    Err(error) => {
                        warn!(key = %victim.key, %error, "eviction failed");
                        if let Err(error) = self.budget.restore(&victim).await {
                            warn!(key = %victim.key, %error, "cannot recount a media object");
                        }
                    }
                }
            })
            .await;
    }

    /// Records a hit's use of `key` (`size` bytes) in the shared index, at most once per
    /// [`MediaLimits::touch_every`]; the hit is served whether or not Redis answers.
    async fn touch(&self, key: &str, size: u64) {
        if !self.touch_due(key) {
            return;
        }
        match tokio::time::timeout(TOUCH_PATIENCE, self.budget.touch(key, size)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(key, %error, "cannot record a media use"),
            Err(_) => warn!(key, "recording a media use timed out"),
        }
    }

    fn touch_due(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut touched = lock(&self.touched);
        if touched.get(key).is_some_and(|at| now.duration_since(*at) < self.touch_every) {
            return false;
        }
        if touched.len() >= TOUCHED_MAX {
            touched.retain(|_, at| now.duration_since(*at) < self.touch_every);
            if touched.len() >= TOUCHED_MAX {
                touched.clear();
            }
        }
        touched.insert(key.to_owned(), now);
        true
    }
}

/// The Redis lease of one download across replicas.
pub fn lease_key(key: &str) -> String {
    format!("chanshare:media:lease:{key}")
}

/// Deletes a lease only if it is still ours (it may have expired and been taken by another).
static RELEASE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
",
    )
});

/// Takes a download out of the in-flight map when its task ends, however it ends.
struct Inflight {
    map: Arc<Mutex<HashMap<String, watch::Receiver<Outcome>>>>,
    key: String,
}

impl Drop for Inflight {
    fn drop(&mut self) {
        lock(&self.map).remove(&self.key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

enum Expected {
    File { size: u64, md5: String },
    Thumb,
}

fn verify(body: &Bytes, expected: &Expected) -> Result<(), String> {
    match expected {
        Expected::File { size, md5 } => {
            if body.len() as u64 != *size {
                return Err(format!("size {} instead of {size}", body.len()));
            }
            let digest = base64::engine::general_purpose::STANDARD.encode(Md5::digest(body));
            if &digest != md5 {
                return Err(format!("md5 {digest} instead of {md5}"));
            }
            Ok(())
        }
        Expected::Thumb if body.starts_with(&[0xFF, 0xD8, 0xFF]) => Ok(()),
        Expected::Thumb => Err("thumbnail is not a jpeg".into()),
    }
}

/// Why a media request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// Not a valid media path.
    #[error("bad media path: {0}")]
    BadPath(&'static str),
    /// Not a file of any resolved thread, or gone upstream.
    #[error("no such media")]
    NotFound,
    /// Upstream sent something wrong or failed.
    #[error("upstream failed: {0}")]
    BadGateway(String),
    /// Rate limited upstream.
    #[error("rate limited upstream")]
    RateLimited(Duration),
    /// Our store or Redis failed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// This replica's download queue is full; try again after the duration.
    #[error("too many media downloads at once")]
    Busy(Duration),
}

impl IntoResponse for MediaError {
    fn into_response(self) -> Response {
        let kind = match &self {
            MediaError::BadPath(_) => ErrorKind::Invalid,
            MediaError::NotFound => ErrorKind::NotFound,
            MediaError::BadGateway(_) => ErrorKind::Upstream,
            MediaError::RateLimited(_) | MediaError::Unavailable(_) | MediaError::Busy(_) => {
                ErrorKind::Unavailable
            }
        };
        let error = ApiError::new(kind, self.to_string());
        match self {
            MediaError::RateLimited(wait) | MediaError::Busy(wait) => error.retry_after(wait),
            _ => error,
        }
        .into_response()
    }
}

fn parse(board: &str, file: &str) -> Result<(String, &'static str), MediaError> {
    if !valid_board(board) {
        return Err(MediaError::BadPath("board must be 1 to 10 characters a-z0-9"));
    }
    let name =
        MediaName::parse(file).ok_or(MediaError::BadPath("expected {tim}{ext} or {tim}s.jpg"))?;
    Ok(name.key(board))
}

async fn serve(
    State(media): State<Media>,
    Path((board, file)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    match respond(&media, &board, &file, &method, &headers).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn respond(
    media: &Media,
    board: &str,
    file: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, MediaError> {
    let (key, content_type) = parse(board, file)?;
    let path = ObjectPath::from(key.as_str());
    // An object evicted between its lookup and its reading is looked up again (a miss).
    let mut attempt = 0;
    loop {
        attempt += 1;
        let meta = match media.store.head(&path).await {
            Ok(meta) => {
                media.metrics.hits.inc();
                media.touch(&key, meta.size).await;
                meta
            }
            Err(_) => match media.fill(&key, &path).await? {
                Some(meta) => meta,
                None if attempt < READ_ATTEMPTS => continue,
                None => return Err(MediaError::Unavailable("evicted as soon as stored".into())),
            },
        };
        let size = meta.size;
        let etag = format!(
            "\"{}\"",
            meta.e_tag.as_deref().unwrap_or(&format!("{size}")).trim_matches('"')
        );
        let mut response = Response::builder()
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ETAG, &etag)
            .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable");
        let matches_etag = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        if matches_etag {
            return response.status(StatusCode::NOT_MODIFIED).body(Body::empty()).map_err(internal);
        }
        let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
        let (status, start, end) = match range::parse(range_header, size) {
            Requested::Full => (StatusCode::OK, 0, size),
            Requested::Partial { start, end } => {
                response = response
                    .header(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", end - 1));
                (StatusCode::PARTIAL_CONTENT, start, end)
            }
            Requested::Unsatisfiable => {
                return response
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                    .body(Body::empty())
                    .map_err(internal);
            }
        };
        response = response.status(status).header(header::CONTENT_LENGTH, end - start);
        if method == Method::HEAD || start == end {
            return response.body(Body::empty()).map_err(internal);
        }
        let options =
            GetOptions { range: Some(GetRange::Bounded(start..end)), ..GetOptions::default() };
        let result = match media.store.get_opts(&path, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) if attempt < READ_ATTEMPTS => {
                debug!(key, attempt, "media evicted before it was read");
                continue;
            }
            Err(error) => return Err(MediaError::Unavailable(format!("store: {error}"))),
        };
        media.metrics.served_bytes.inc_by(end - start);
        return response.body(Body::from_stream(result.into_stream())).map_err(internal);
    }
}

fn internal(error: axum::http::Error) -> MediaError {
    MediaError::Unavailable(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_download_queue_is_unavailable_with_retry_after() {
        let response = MediaError::Busy(BUSY_RETRY).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn default_limits() {
        let limits = MediaLimits::default();
        assert_eq!(limits.cache_bytes, 10 * 1024 * 1024 * 1024);
        assert_eq!((limits.downloads, limits.queue), (2, 32));
        assert_eq!(limits.touch_every, Duration::from_secs(60));
    }
}
