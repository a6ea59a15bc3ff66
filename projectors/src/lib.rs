//! The read side: keeps the Redis views equal to the fold of the log.
//!
//! Every replica pulls from one durable consumer (`infra/jetstream/projector.json`), so replicas
//! compete for commits. Within a replica, commits are handed to a few workers by room, so a
//! room's commits are applied in order there while rooms proceed in parallel; across replicas
//! the views' version check makes every apply exactly-once, and a gap (a later version arriving
//! first) is filled from the log. A commit is acknowledged only after its view is written.
//!
//! A commit that cannot be decoded parks its room (visible status, a metric, a message on
//! `chanshare.deadletter`) and every other room goes on. A watchdog rebuilds the views when
//! Redis lost them (flushed, restarted) or holds views older than the consumer's position.
//!
//! # Layout
//! - [`apply`]: one commit into one view.
//! - [`rebuild`]: the whole log into every view (also `chanshare replay rebuild`).
//! - `run`: the consumer loop, the workers and the watchdog.

pub mod apply;
pub mod dm;
pub mod rebuild;

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use eventlog::{Delivery, Durable, EventLog, LogError, Stored};
use futures::StreamExt;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use tokio::sync::mpsc;
use tracing::{Instrument as _, error, info, warn};
use views::Views;

pub use apply::{Applied, ApplyError};
pub use rebuild::{Folded, Progress, Rebuilt, fold_log, rebuild};

const WORKERS: usize = 8;
/// The most deliveries a worker takes at once (a room's among them are applied together).
const BATCH: usize = 256;
/// The rooms of a batch a worker applies side by side (bounded: each reads and writes a view
/// on the one Redis connection, which answers within a second or fails).
const ROOMS_AT_ONCE: usize = 16;

/// The projectors' metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Commits applied to views.
    pub applied: IntCounter,
    /// Commits that were already in their view (redeliveries, gap fills by another replica).
    pub duplicates: IntCounter,
    /// Poison commits reported.
    pub dead_lettered: IntCounter,
    /// Full rebuilds started by the watchdog.
    pub rebuilds: IntCounter,
    /// Commits stored but not yet projected.
    pub lag: IntGauge,
    /// Time to apply one commit.
    pub apply_seconds: Histogram,
}

impl Metrics {
    /// Creates the metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            applied: IntCounter::new(
                "chanshare_projector_applied_total",
                "Commits applied to the views",
            )?,
            duplicates: IntCounter::new(
                "chanshare_projector_duplicates_total",
                "Commits already in their view",
            )?,
            dead_lettered: IntCounter::new(
                "chanshare_projector_dead_lettered_total",
                "Poison commits reported",
            )?,
            rebuilds: IntCounter::new(
                "chanshare_projector_rebuilds_total",
                "Full view rebuilds by the watchdog",
            )?,
            lag: IntGauge::new(
                "chanshare_projector_lag_commits",
                "Commits stored but not yet projected",
            )?,
            apply_seconds: Histogram::with_opts(
                HistogramOpts::new("chanshare_projector_apply_seconds", "Time to apply one commit")
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
                    ]),
            )?,
        };
        registry.register(Box::new(metrics.applied.clone()))?;
        registry.register(Box::new(metrics.duplicates.clone()))?;
        registry.register(Box::new(metrics.dead_lettered.clone()))?;
        registry.register(Box::new(metrics.rebuilds.clone()))?;
        registry.register(Box::new(metrics.lag.clone()))?;
        registry.register(Box::new(metrics.apply_seconds.clone()))?;
        Ok(metrics)
    }
}

/// One projector replica.
#[derive(Debug, Clone)]
pub struct Projector {
    client: async_nats::Client,
    log: EventLog,
    views: Views,
    durable: Durable,
    metrics: Metrics,
    watchdog_interval: Duration,
}

impl Projector {
    /// Opens the projectors' durable consumer.
    pub async fn new(
        client: async_nats::Client,
        log: EventLog,
        views: Views,
        metrics: Metrics,
    ) -> Result<Self, LogError> {
        let durable = log.durable(eventlog::consumer::PROJECTOR).await?;
        Ok(Self { client, log, views, durable, metrics, watchdog_interval: Duration::from_secs(2) })
    }

    /// Checks the views every `interval` (default 2 s).
    pub fn with_watchdog_interval(mut self, interval: Duration) -> Self {
        self.watchdog_interval = interval;
        self
    }

    /// How far behind the projection is.
    pub async fn lag(&self) -> Result<eventlog::Lag, LogError> {
        self.durable.lag().await
    }

    /// Projects until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), LogError> {
        let mut deliveries = self.durable.deliveries().await?;
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<Delivery>(64);
                (tx, tokio::spawn(self.clone().work(rx)))
            })
            .collect();
        let watchdog = tokio::spawn(self.clone().watchdog());
        info!("projector running");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                delivery = deliveries.next() => match delivery {
                    Some(Ok(delivery)) => {
                        let worker = delivery.room.as_ref().map_or(0, |room| {
                            let mut hasher = std::collections::hash_map::DefaultHasher::new();
                            room.hash(&mut hasher);
                            hasher.finish() as usize % WORKERS
                        });
                        if workers[worker].0.send(delivery).await.is_err() {
                            break;
                        }
                    }
                    Some(Err(error)) => {
                        warn!(%error, "consumer delivery failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    None => {
                        warn!("consumer stream ended; reopening");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        deliveries = self.durable.deliveries().await?;
                    }
                },
            }
        }
        watchdog.abort();
        for (tx, handle) in workers {
            drop(tx);
            handle.await.ok();
        }
        Ok(())
    }

    /// Applies what the consumer delivered, a room's waiting commits at once (one read and
    /// one write of its view for all of them), and the rooms of a batch side by side: their
    /// reads and writes share Redis round trips (the connection pipelines what is sent
    /// together), instead of one round trip per room after another.
    async fn work(self, mut deliveries: mpsc::Receiver<Delivery>) {
        let mut waiting = Vec::new();
        while deliveries.recv_many(&mut waiting, BATCH).await > 0 {
            let mut rooms: Vec<(Option<events::RoomId>, Vec<Delivery>)> = Vec::new();
            for delivery in waiting.drain(..) {
                match rooms.iter_mut().find(|(room, _)| *room == delivery.room) {
                    Some((_, batch)) => batch.push(delivery),
                    None => rooms.push((delivery.room.clone(), vec![delivery])),
                }
            }
            futures::stream::iter(rooms)
                .for_each_concurrent(ROOMS_AT_ONCE, |(_, batch)| self.handle(batch))
                .await;
        }
    }

    /// Applies one room's delivered commits (in stream order) and settles each delivery.
    async fn handle(&self, batch: Vec<Delivery>) {
        let Some(room) = batch.first().and_then(|d| d.room.clone()) else {
            for delivery in batch {
                warn!(seq = delivery.seq, "commit on a subject that names no room");
                delivery.term().await.ok();
            }
            return;
        };
        // An undecodable commit poisons its room: the commits before it are applied, it is
        // reported (which parks the room), and what follows it waits for the operator.
        let bad = batch.iter().position(|d| d.commit.is_err()).unwrap_or(batch.len());
        let (good, rest) = batch.split_at(bad);
        if !good.is_empty() {
            let started = std::time::Instant::now();
            let stored: Vec<Stored> =
                good.iter().filter_map(|d| d.commit.as_ref().ok()).cloned().collect();
            let last = stored.last().map_or(0, |s| s.commit.version);
            let span = tracing::info_span!("projector.apply", %room, version = last, commits = stored.len());
            if let Some(stored) = stored.last() {
                telemetry::continue_trace(&span, stored.traceparent.as_deref());
            }
            let result =
                apply::apply_all(&self.log, &self.views, &room, &stored).instrument(span).await;
            self.metrics.apply_seconds.observe(started.elapsed().as_secs_f64());
            if let Err(ApplyError::Poison { seq, reason }) = &result {
                self.dead_letter(&room, *seq, reason).await;
            }
            for delivery in good {
                self.settle(&room, delivery, &result).await;
            }
        }
        if let Some(bad) = rest.first()
            && let Err(error) = &bad.commit
        {
            self.dead_letter(&room, bad.seq, &error.to_string()).await;
            for delivery in rest {
                delivery.term().await.ok();
            }
        }
    }

    /// Acknowledges, parks or retries one delivery after its room's batch was applied.
    async fn settle(
        &self,
        room: &events::RoomId,
        delivery: &Delivery,
        result: &Result<Applied, ApplyError>,
    ) {
        let acked = match result {
            Ok(Applied::Applied) => {
                self.metrics.applied.inc();
                delivery.ack().await
            }
            Ok(Applied::Duplicate | Applied::Parked) => {
                self.metrics.duplicates.inc();
                delivery.ack().await
            }
            // Reported (and the room parked) by the batch.
            Err(ApplyError::Poison { .. }) => delivery.term().await,
            Err(error) => {
                warn!(%room, seq = delivery.seq, %error, "view not updated; will retry");
                let delay = Duration::from_millis(500 * delivery.delivered.clamp(1, 10) as u64);
                delivery.nak(delay).await
            }
        };
        if let Err(error) = acked {
            warn!(%room, seq = delivery.seq, %error, "cannot acknowledge");
        }
    }

    async fn dead_letter(&self, room: &events::RoomId, seq: u64, reason: &str) {
        error!(%room, seq, reason, "poison commit: room projection parked");
        self.metrics.dead_lettered.inc();
        if let Err(error) =
            self.views.park(room, &format!("parked at stream sequence {seq}: {reason}")).await
        {
            warn!(%room, %error, "cannot park the room's view");
        }
        let letter =
            protocol::DeadLetter { room: room.to_string(), seq, reason: reason.to_owned() };
        let body = serde_json::to_vec(&letter).unwrap_or_default();
        if let Err(error) = self.client.publish(protocol::subjects::DEADLETTER, body.into()).await {
            warn!(%room, %error, "cannot publish to the dead-letter subject");
        }
    }

    /// Rebuilds the views when Redis lost them (no epoch marker) or holds views older than what
    /// the consumer has acknowledged.
    async fn watchdog(self) {
        let owner = uuid::Uuid::new_v4().to_string();
        let mut ticks = tokio::time::interval(self.watchdog_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let lag = match self.durable.lag().await {
                Ok(lag) => lag,
                Err(error) => {
                    warn!(%error, "cannot read the consumer position");
                    continue;
                }
            };
            self.metrics.lag.set(lag.commits.try_into().unwrap_or(i64::MAX));
            let stale = match (self.views.has_epoch().await, self.views.applied().await) {
                (Ok(false), _) => true,
                (Ok(true), Ok(applied)) => applied.unwrap_or(0) < lag.ack_floor,
                (Err(error), _) | (_, Err(error)) => {
                    warn!(%error, "cannot check the views");
                    continue;
                }
            };
            if !stale {
                continue;
            }
            match self.views.lock_rebuild(&owner, 120_000).await {
                Ok(true) => {
                    warn!(ack_floor = lag.ack_floor, "views lost or behind the log: rebuilding");
                    self.metrics.rebuilds.inc();
                    match rebuild(&self.log, &self.views, false, |_| {}).await {
                        Ok(rebuilt) => {
                            info!(commits = rebuilt.commits, rooms = rebuilt.rooms, "views rebuilt")
                        }
                        Err(error) => warn!(%error, "view rebuild failed"),
                    }
                    self.views.unlock_rebuild().await.ok();
                }
                Ok(false) => {}
                Err(error) => warn!(%error, "cannot take the rebuild lock"),
            }
        }
    }
}
