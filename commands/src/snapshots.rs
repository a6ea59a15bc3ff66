//! The snapshotter: keeps every room's snapshot near its head, so the room stream may expire old
//! commits (DESIGN §2 retention, decision 0005) and cold loads start near the head.
//!
//! Every interval it lists the rooms that have commits in the stream and brings each snapshot up
//! to the room's head. It is derived from the log alone (nothing to lose when a replica dies) and
//! safe in every replica: a save is compare-and-set, so one of two racing replicas wins and the
//! other's work is dropped. A commit is thus covered by a snapshot within one interval, which the
//! configuration keeps well below the stream's `max_age`.

use std::time::Duration;

use eventlog::EventLog;
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// Runs the snapshotter until the task is dropped.
pub async fn run(log: EventLog, interval: Duration, metrics: Metrics) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        sweep(&log, &metrics).await;
    }
}

/// Brings every room's snapshot up to its head once.
pub async fn sweep(log: &EventLog, metrics: &Metrics) {
    let rooms = match log.rooms().await {
        Ok(rooms) => rooms,
        Err(error) => {
            warn!(%error, "cannot list the rooms of the log");
            return;
        }
    };
    for room in rooms {
        match log.refresh_snapshot(&room).await {
            Ok(Some(version)) => {
                metrics.snapshots.with_label_values(&["saved"]).inc();
                debug!(%room, version, "snapshot saved");
            }
            Ok(None) => {}
            Err(error) => {
                metrics.snapshots.with_label_values(&["failed"]).inc();
                warn!(%room, %error, "snapshot failed");
            }
        }
    }
}
