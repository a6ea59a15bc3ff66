//! The content service's metrics.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// Cache and upstream counters.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Requests served from the store.
    pub hits: IntCounter,
    /// Downloads from upstream.
    pub misses: IntCounter,
    /// Bytes stored after verification.
    pub stored_bytes: IntCounter,
    /// Bytes served to clients.
    pub served_bytes: IntCounter,
    /// Objects evicted from the store to keep it within its byte budget.
    pub evictions: IntCounter,
    /// Bytes evicted from the store.
    pub evicted_bytes: IntCounter,
    /// Misses refused because this replica's download queue was full.
    pub downloads_refused: IntCounter,
    /// Upstream media answers by status.
    pub upstream: IntCounterVec,
    /// Upstream API answers by status.
    pub api: IntCounterVec,
    /// Times an API request waited for the shared rate limiter.
    pub rate_limit_waits: IntCounter,
}

impl Metrics {
    /// Creates the metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            hits: IntCounter::new(
                "chanshare_media_cache_hits_total",
                "Media requests served from the store",
            )?,
            misses: IntCounter::new(
                "chanshare_media_cache_misses_total",
                "Media downloads from upstream",
            )?,
            stored_bytes: IntCounter::new(
                "chanshare_media_stored_bytes_total",
                "Verified bytes stored",
            )?,
            served_bytes: IntCounter::new(
                "chanshare_media_served_bytes_total",
                "Media bytes served",
            )?,
            evictions: IntCounter::new(
                "chanshare_media_evictions_total",
                "Media objects evicted to keep the cache within its byte budget",
            )?,
            evicted_bytes: IntCounter::new(
                "chanshare_media_evicted_bytes_total",
                "Media bytes evicted to keep the cache within its byte budget",
            )?,
            downloads_refused: IntCounter::new(
                "chanshare_media_downloads_refused_total",
                "Media misses refused (503) because the download queue was full",
            )?,
            upstream: IntCounterVec::new(
                Opts::new("chanshare_upstream_requests_total", "Upstream media requests by status"),
                &["status"],
            )?,
            api: IntCounterVec::new(
                Opts::new(
                    "chanshare_upstream_api_requests_total",
                    "Upstream API answers by status",
                ),
                &["status"],
            )?,
            rate_limit_waits: IntCounter::new(
                "chanshare_upstream_rate_limit_waits_total",
                "API requests that waited for the shared one-per-second limiter",
            )?,
        };
        registry.register(Box::new(metrics.api.clone()))?;
        registry.register(Box::new(metrics.rate_limit_waits.clone()))?;
        registry.register(Box::new(metrics.hits.clone()))?;
        registry.register(Box::new(metrics.misses.clone()))?;
        registry.register(Box::new(metrics.stored_bytes.clone()))?;
        registry.register(Box::new(metrics.served_bytes.clone()))?;
        registry.register(Box::new(metrics.evictions.clone()))?;
        registry.register(Box::new(metrics.evicted_bytes.clone()))?;
        registry.register(Box::new(metrics.downloads_refused.clone()))?;
        registry.register(Box::new(metrics.upstream.clone()))?;
        Ok(metrics)
    }
}
