//! The gateway's metrics (Prometheus conventions: base units, `_total`, `_seconds`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Sockets, frames, joins, closes, delivery latency.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Open WebSockets.
    pub sockets: IntGauge,
    /// Rooms with a fan-out hub on this gateway.
    pub rooms: IntGauge,
    /// Frames received from clients.
    pub frames_in: IntCounter,
    /// Frames sent to clients.
    pub frames_out: IntCounter,
    /// Joins by outcome: `recovered` (resumed) or `snapshot`.
    pub joins: IntCounterVec,
    /// Sockets closed by the server, by close code.
    pub closes: IntCounterVec,
    /// From a commit's decision to its delivery to a socket.
    pub delivery_seconds: Histogram,
}

impl Metrics {
    /// Creates the metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            sockets: IntGauge::new("chanshare_gateway_sockets", "Open WebSockets")?,
            rooms: IntGauge::new(
                "chanshare_gateway_active_rooms",
                "Rooms with a fan-out subscription on this gateway",
            )?,
            frames_in: IntCounter::new(
                "chanshare_gateway_frames_received_total",
                "Frames received from clients",
            )?,
            frames_out: IntCounter::new(
                "chanshare_gateway_frames_sent_total",
                "Frames sent to clients",
            )?,
            joins: IntCounterVec::new(
                Opts::new(
                    "chanshare_gateway_joins_total",
                    "Socket joins by outcome (recovered or snapshot)",
                ),
                &["outcome"],
            )?,
            closes: IntCounterVec::new(
                Opts::new(
                    "chanshare_gateway_closes_total",
                    "Sockets closed by the server, by close code",
                ),
                &["code"],
            )?,
            delivery_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "chanshare_commit_delivery_seconds",
                    "From a commit's decision to its delivery to a socket",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ]),
            )?,
        };
        registry.register(Box::new(metrics.sockets.clone()))?;
        registry.register(Box::new(metrics.rooms.clone()))?;
        registry.register(Box::new(metrics.frames_in.clone()))?;
        registry.register(Box::new(metrics.frames_out.clone()))?;
        registry.register(Box::new(metrics.joins.clone()))?;
        registry.register(Box::new(metrics.closes.clone()))?;
        registry.register(Box::new(metrics.delivery_seconds.clone()))?;
        Ok(metrics)
    }
}
