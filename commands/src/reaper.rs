//! The presence reaper: times out members whose connections are gone, and closes idle rooms.
//!
//! Safe to run in every replica: each issues the same command with the same deterministic id
//! (derived from the room, the member and the room version it decided on), so JetStream's
//! dedupe and the domain's no-op rules let exactly one take effect.

use std::sync::Arc;
use std::time::Duration;

use events::{Actor, Command, CommandId, LeaveReason, RoomId};
use presence::Presence;
use tracing::{debug, warn};

use crate::handler::{Handler, now_ms};
use crate::metrics::Metrics;
use protocol::CommandReply;

/// Reaper timings.
#[derive(Debug, Clone, Copy)]
pub struct ReaperConfig {
    /// A member with no heartbeat for this long goes offline.
    pub presence_timeout: Duration,
    /// A room with nobody online for this long is closed.
    pub idle_timeout: Duration,
    /// How often to look.
    pub interval: Duration,
}

impl Default for ReaperConfig {
    fn default() -> Self {
        Self {
            presence_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30 * 60),
            interval: Duration::from_secs(5),
        }
    }
}

/// Runs the reaper until the task is dropped.
pub async fn run(
    handler: Arc<Handler>,
    presence: Presence,
    config: ReaperConfig,
    metrics: Metrics,
) {
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match presence.rooms().await {
            Ok(rooms) => {
                for room in rooms {
                    if let Err(error) =
                        reap_room(&handler, &presence, &room, &config, &metrics).await
                    {
                        warn!(%room, %error, "presence check failed");
                    }
                }
            }
            Err(error) => warn!(%error, "cannot list rooms with presence"),
        }
    }
}

async fn reap_room(
    handler: &Handler,
    presence: &Presence,
    room: &RoomId,
    config: &ReaperConfig,
    metrics: &Metrics,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let state = handler.state(room).await?;
    if !state.exists() || state.closed.is_some() {
        presence.forget_room(room).await?;
        return Ok(());
    }
    let now = now_ms();
    let seen = presence.last_seen(room).await?;
    let timeout = config.presence_timeout.as_millis() as u64;
    for member in state.members.iter().filter(|m| m.online) {
        let last = seen.get(&member.member_id).copied().unwrap_or(0);
        if now.saturating_sub(last) <= timeout {
            continue;
        }
        let id = CommandId::derived(
            "chanshare-reaper",
            &format!("{room}/{}/{}", member.member_id, state.version),
        );
        let command = Command::Leave { reason: LeaveReason::Timeout };
        let reply = handler.issue(room, id, Actor::Member(member.member_id.clone()), command).await;
        debug!(%room, member = %member.member_id, ?reply, "presence timeout");
        if matches!(reply, CommandReply::Accepted { .. }) {
            metrics.reaped.with_label_values(&["timeout"]).inc();
        }
    }
    let idle = config.idle_timeout.as_millis() as u64;
    if state.online_count() == 0 && now.saturating_sub(state.updated_ms) > idle {
        let id = CommandId::derived("chanshare-reaper", &format!("{room}/idle/{}", state.version));
        let reply = handler.issue(room, id, Actor::System, Command::Close).await;
        debug!(%room, ?reply, "idle close");
        if matches!(reply, CommandReply::Accepted { .. }) {
            metrics.reaped.with_label_values(&["idle_close"]).inc();
            presence.forget_room(room).await?;
        }
    }
    Ok(())
}
