//! `/media/{board}/{file}`: the cache clients load media from.
//!
//! A HIT streams from the object store with Range support. A MISS is fetched once however many
//! requests arrive (an in-process lock per key, and a Redis lease across replicas), verified
//! against the size and MD5 the thread announced, stored, and then served. Only files of
//! resolved threads are fetched, and only from the configured media host.

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
use md5::{Digest, Md5};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, PutOptions};
use redis::aio::ConnectionManager;
use tracing::warn;

use crate::chan::{MediaName, valid_board};
use crate::metrics::Metrics;
use crate::range::{self, Requested};
use crate::resolver::meta_key;
use crate::upstream::{Upstream, UpstreamError};

const THUMB_MAX: u64 = 2 << 20;
/// The largest file the cache fetches, whatever a thread claims (4chan's own limits are ~6 MiB).
pub const MEDIA_MAX: u64 = 64 << 20;
const LEASE_MS: u64 = 60_000;

/// The media cache's state.
#[derive(Clone)]
pub struct Media {
    store: Arc<dyn ObjectStore>,
    upstream: Arc<Upstream>,
    redis: ConnectionManager,
    inflight: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    metrics: Metrics,
    owner: String,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Media(..)")
    }
}

impl Media {
    /// A cache over `store`, filled from `upstream`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        upstream: Arc<Upstream>,
        redis: ConnectionManager,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            upstream,
            redis,
            inflight: Arc::default(),
            metrics,
            owner: uuid::Uuid::new_v4().to_string(),
        }
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
        let expected = self.expected(key).await?;
        let lock = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            inflight.entry(key.to_owned()).or_default().clone()
        };
        let _guard = lock.lock().await;
        let result = self.fetch_once(key, &path, &expected).await;
        self.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        result
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
    async fn fetch_once(
        &self,
        key: &str,
        path: &ObjectPath,
        expected: &Expected,
    ) -> Result<(), MediaError> {
        let lease = format!("chanshare:media:lease:{key}");
        let deadline = Instant::now() + Duration::from_millis(LEASE_MS);
        loop {
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
                .map_err(|e| MediaError::Unavailable(format!("redis: {e}")))?;
            if taken.is_some() {
                let result = self.download(key, path, expected).await;
                redis::cmd("DEL").arg(&lease).query_async::<()>(&mut self.redis.clone()).await.ok();
                return result;
            }
            if Instant::now() > deadline {
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
        // The content type is not stored: it follows from the extension when serving, and not
        // every store keeps attributes (a local directory does not).
        self.store
            .put_opts(path, body.clone().into(), PutOptions::default())
            .await
            .map_err(|e| MediaError::Unavailable(format!("store: {e}")))?;
        self.metrics.stored_bytes.inc_by(body.len() as u64);
        Ok(())
    }
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
}

impl IntoResponse for MediaError {
    fn into_response(self) -> Response {
        let kind = match &self {
            MediaError::BadPath(_) => ErrorKind::Invalid,
            MediaError::NotFound => ErrorKind::NotFound,
            MediaError::BadGateway(_) => ErrorKind::Upstream,
            MediaError::RateLimited(_) | MediaError::Unavailable(_) => ErrorKind::Unavailable,
        };
        let error = ApiError::new(kind, self.to_string());
        match self {
            MediaError::RateLimited(wait) => error.retry_after(wait),
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
    let meta = match media.store.head(&path).await {
        Ok(meta) => {
            media.metrics.hits.inc();
            meta
        }
        Err(_) => {
            media.ensure(&key).await?;
            media
                .store
                .head(&path)
                .await
                .map_err(|e| MediaError::Unavailable(format!("store: {e}")))?
        }
    };
    let size = meta.size;
    let etag =
        format!("\"{}\"", meta.e_tag.as_deref().unwrap_or(&format!("{size}")).trim_matches('"'));
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
            response =
                response.header(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", end - 1));
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
    let result = media
        .store
        .get_opts(&path, options)
        .await
        .map_err(|e| MediaError::Unavailable(format!("store: {e}")))?;
    media.metrics.served_bytes.inc_by(end - start);
    response.body(Body::from_stream(result.into_stream())).map_err(internal)
}

fn internal(error: axum::http::Error) -> MediaError {
    MediaError::Unavailable(error.to_string())
}
