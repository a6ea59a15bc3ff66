//! The write side's metrics (Prometheus names, base units).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// Counters and histograms of the commands service.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Commands by type and outcome (`accepted`, `rejected`, `error`).
    pub commands: IntCounterVec,
    /// Appends that lost an optimistic-concurrency race.
    pub conflicts: IntCounter,
    /// Decisions made again after a conflict.
    pub retries: IntCounter,
    /// Time to append one commit.
    pub append_seconds: Histogram,
    /// Members timed out and rooms closed by the reaper.
    pub reaped: IntCounterVec,
    /// Room snapshots saved or failed (`saved`, `failed`).
    pub snapshots: IntCounterVec,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            commands: IntCounterVec::new(
                Opts::new("chanshare_commands_total", "Commands decided, by type and outcome"),
                &["type", "outcome"],
            )?,
            conflicts: IntCounter::new(
                "chanshare_command_conflicts_total",
                "Appends that lost a race",
            )?,
            retries: IntCounter::new(
                "chanshare_command_retries_total",
                "Commands decided again after a conflict",
            )?,
            append_seconds: Histogram::with_opts(
                HistogramOpts::new("chanshare_append_seconds", "Time to append one commit")
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 1.0,
                    ]),
            )?,
            reaped: IntCounterVec::new(
                Opts::new(
                    "chanshare_reaped_total",
                    "Presence timeouts and idle closes issued by the reaper",
                ),
                &["kind"],
            )?,
            snapshots: IntCounterVec::new(
                Opts::new("chanshare_snapshots_total", "Room snapshots saved or failed"),
                &["outcome"],
            )?,
        };
        registry.register(Box::new(metrics.commands.clone()))?;
        registry.register(Box::new(metrics.conflicts.clone()))?;
        registry.register(Box::new(metrics.retries.clone()))?;
        registry.register(Box::new(metrics.append_seconds.clone()))?;
        registry.register(Box::new(metrics.reaped.clone()))?;
        registry.register(Box::new(metrics.snapshots.clone()))?;
        Ok(metrics)
    }
}
