//! A commit: the events of one command, stored as one log message.

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::ids::{Actor, CommandId, RoomId};

/// All events produced by one command, appended atomically as one JetStream message.
///
/// In JSON, `events` are in the pinned tagged form (`{"type": "chat_posted", …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The room.
    pub room: RoomId,
    /// The room's counter: 1, 2, 3, … with no gaps.
    pub version: u64,
    /// The command that produced it (the dedupe key).
    pub command_id: CommandId,
    /// Who issued the command.
    pub actor: Actor,
    /// Server time of the decision, ms since the Unix epoch.
    pub at_ms: u64,
    /// The events, applied in order.
    #[serde(with = "crate::json::tagged_vec")]
    pub events: Vec<Event>,
}
