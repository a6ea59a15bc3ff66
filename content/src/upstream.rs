//! Talking to 4chan: one API request per second across every replica (a GCRA limiter in
//! Redis, on Redis' clock), a descriptive User-Agent, no Referer, timeouts, bounded retries with
//! backoff on 429 and 5xx. Thread and board-list requests share the limiter; how many media
//! downloads run at once is the media cache's to bound (`media::MediaLimits`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use reqwest::StatusCode;
use tracing::debug;

/// What a thread request returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The thread JSON and its `Last-Modified`.
    Body {
        /// The JSON.
        body: Bytes,
        /// Echo it in `If-Modified-Since` next time.
        last_modified: Option<String>,
    },
    /// 304: unchanged since `If-Modified-Since`.
    NotModified,
    /// 404: pruned, deleted, or never existed.
    NotFound,
}

/// Why upstream could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Our own limiter (or 4chan's 429s) kept us from asking in time.
    #[error("rate limited upstream; retry after {0:?}")]
    RateLimited(Duration),
    /// Upstream failed, timed out, or sent something unusable.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
}

/// The 4chan client.
#[derive(Debug)]
pub struct Upstream {
    http: reqwest::Client,
    api: String,
    media: String,
    limiter: Limiter,
    metrics: Option<crate::Metrics>,
}

const USER_AGENT: &str = concat!(
    "Chanshare/",
    env!("CARGO_PKG_VERSION"),
    " (open-source watch-party server; media cache)"
);
const ATTEMPTS: u32 = 3;

impl Upstream {
    /// A client for `api` and `media` base URLs, limited through `redis`.
    pub fn new(api: &str, media: &str, redis: ConnectionManager) -> Result<Self, UpstreamError> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| UpstreamError::Unavailable(e.to_string()))?;
        Ok(Self {
            http,
            api: api.trim_end_matches('/').to_owned(),
            media: media.trim_end_matches('/').to_owned(),
            limiter: Limiter::new(redis),
            metrics: None,
        })
    }

    /// Counts API answers and limiter waits in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, status: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.api.with_label_values(&[status]).inc();
        }
    }

    /// `GET {api}/{board}/thread/{no}.json`, waiting at most `patience` for the limiter.
    pub async fn thread(
        &self,
        board: &str,
        no: u64,
        if_modified_since: Option<&str>,
        patience: Duration,
    ) -> Result<Fetched, UpstreamError> {
        let url = format!("{}/{board}/thread/{no}.json", self.api);
        self.api_get(&url, if_modified_since, patience, 16 << 20).await
    }

    /// `GET {api}/boards.json`, the board list (about 80 KiB), through the same limiter as
    /// every API request, waiting at most `patience` for it. A 404 is an error here.
    pub async fn boards(&self, patience: Duration) -> Result<Bytes, UpstreamError> {
        let url = format!("{}/boards.json", self.api);
        match self.api_get(&url, None, patience, 1 << 20).await? {
            Fetched::Body { body, .. } => Ok(body),
            Fetched::NotModified | Fetched::NotFound => {
                Err(UpstreamError::Unavailable("no board list at the api".into()))
            }
        }
    }

    /// An API request: the limiter, then up to [`ATTEMPTS`] tries with backoff on 429, 5xx and
    /// connection errors; a body over `max_bytes` is an error.
    async fn api_get(
        &self,
        url: &str,
        if_modified_since: Option<&str>,
        patience: Duration,
        max_bytes: u64,
    ) -> Result<Fetched, UpstreamError> {
        let deadline = Instant::now() + patience;
        let mut last = UpstreamError::Unavailable("no attempt".into());
        for attempt in 0..ATTEMPTS {
            if self.limiter.acquire(deadline).await?
                && let Some(metrics) = &self.metrics
            {
                metrics.rate_limit_waits.inc();
            }
            let mut request = self.http.get(url).timeout(Duration::from_secs(10));
            if let Some(since) = if_modified_since {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, since);
            }
            let sent = request.send().await;
            self.count(
                &sent
                    .as_ref()
                    .map_or_else(|_| "error".to_owned(), |r| r.status().as_u16().to_string()),
            );
            match sent {
                Ok(response) => match response.status() {
                    StatusCode::OK => {
                        let last_modified = response
                            .headers()
                            .get(reqwest::header::LAST_MODIFIED)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let body = read_capped(response, max_bytes).await?;
                        return Ok(Fetched::Body { body, last_modified });
                    }
                    StatusCode::NOT_MODIFIED => return Ok(Fetched::NotModified),
                    StatusCode::NOT_FOUND => return Ok(Fetched::NotFound),
                    status
                        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() =>
                    {
                        last = UpstreamError::Unavailable(format!("api answered {status}"));
                    }
                    status => {
                        return Err(UpstreamError::Unavailable(format!("api answered {status}")));
                    }
                },
                Err(error) => last = UpstreamError::Unavailable(error.to_string()),
            }
            debug!(%url, attempt, error = %last, "api request failed");
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(last)
    }

    /// Downloads `{media}/{key}` whole, refusing more than `max_bytes`. `Ok(None)` on 404.
    /// Unbounded here: the media cache decides how many run at once.
    pub async fn media(&self, key: &str, max_bytes: u64) -> Result<Option<Bytes>, UpstreamError> {
        let url = format!("{}/{key}", self.media);
        let mut last = UpstreamError::Unavailable("no attempt".into());
        for attempt in 0..ATTEMPTS {
            match self.http.get(&url).send().await {
                Ok(response) => match response.status() {
                    StatusCode::OK => return read_capped(response, max_bytes).await.map(Some),
                    StatusCode::NOT_FOUND => return Ok(None),
                    StatusCode::TOO_MANY_REQUESTS => {
                        let retry_after = response
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .map_or(Duration::from_secs(5), Duration::from_secs);
                        last = UpstreamError::RateLimited(retry_after);
                    }
                    status if status.is_server_error() => {
                        last = UpstreamError::Unavailable(format!("media answered {status}"));
                    }
                    status => {
                        return Err(UpstreamError::Unavailable(format!("media answered {status}")));
                    }
                },
                Err(error) => last = UpstreamError::Unavailable(error.to_string()),
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(last)
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 << attempt.min(4))
}

async fn read_capped(response: reqwest::Response, max_bytes: u64) -> Result<Bytes, UpstreamError> {
    if response.content_length().is_some_and(|len| len > max_bytes) {
        return Err(UpstreamError::Unavailable(format!("larger than {max_bytes} bytes")));
    }
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| UpstreamError::Unavailable(format!("body: {e}")))?;
        if body.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(UpstreamError::Unavailable(format!("larger than {max_bytes} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// One API request per interval across every replica: GCRA on a Redis key, on Redis' clock.
#[derive(Clone)]
pub(crate) struct Limiter {
    redis: ConnectionManager,
    script: redis::Script,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limiter(..)")
    }
}

/// The API allows one request per second. The slots are 1100 ms apart so that network and
/// scheduling jitter between two replicas (on a busy machine, tens of milliseconds) cannot put two
/// requests into one second at 4chan's end.
pub(crate) const API_INTERVAL_MS: u64 = 1100;

const GCRA: &str = r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat > now_ms then return tat - now_ms end
redis.call('SET', KEYS[1], now_ms + tonumber(ARGV[1]), 'PX', tonumber(ARGV[1]) * 2)
return 0
";

impl Limiter {
    pub(crate) fn new(redis: ConnectionManager) -> Self {
        Self { redis, script: redis::Script::new(GCRA) }
    }

    /// Waits for a slot until `deadline`; `Ok(true)` if it had to wait.
    pub(crate) async fn acquire(&self, deadline: Instant) -> Result<bool, UpstreamError> {
        let mut waited = false;
        loop {
            let wait_ms: u64 = self
                .script
                .key("chanshare:upstream:api")
                .arg(API_INTERVAL_MS)
                .invoke_async(&mut self.redis.clone())
                .await
                .map_err(|e| UpstreamError::Unavailable(format!("limiter: {e}")))?;
            if wait_ms == 0 {
                return Ok(waited);
            }
            waited = true;
            let wait = Duration::from_millis(wait_ms);
            if Instant::now() + wait > deadline {
                return Err(UpstreamError::RateLimited(wait));
            }
            tokio::time::sleep(wait).await;
        }
    }
}
