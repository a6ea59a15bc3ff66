//! A command for a room (`chanshare.cmd.<room>`) and its outcome.

use events::{Actor, Command, CommandId, RejectCode, Rejection};
use serde::{Deserialize, Serialize};

/// `{"id", "actor", "command": {"type": …}, "traceparent"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// The issuer's command id: the same id twice has one effect.
    pub id: CommandId,
    /// The verified issuer (the sending role vouches for it).
    pub actor: Actor,
    /// The command, in its pinned `{"type": …}` form.
    #[serde(with = "events::json::tagged")]
    pub command: Command,
    /// W3C trace context, stored on the commit.
    #[serde(default)]
    pub traceparent: Option<String>,
}

/// `{"status": "accepted" | "rejected" | "error", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CommandReply {
    /// Decided and stored (or a no-op): the room is at `version`.
    Accepted {
        /// The version of the commit (for a no-op, the room's version).
        version: u64,
    },
    /// Refused by the room's rules; nothing was stored.
    Rejected {
        /// Why, as a pinned code.
        code: RejectCode,
        /// Why, in words.
        message: String,
    },
    /// Not decided because of a technical failure; retry with the same id.
    Error {
        /// `unavailable` (the log or a dependency failed) or `conflict` (retries ran out).
        code: RejectCode,
        /// What happened.
        message: String,
    },
}

impl CommandReply {
    /// The room refused the command.
    pub fn rejected(rejection: Rejection) -> Self {
        Self::Rejected { code: rejection.code, message: rejection.message }
    }

    /// Something the command needs is down; retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Error { code: RejectCode::Unavailable, message: message.into() }
    }

    /// The request itself is malformed.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Rejected { code: RejectCode::Invalid, message: message.into() }
    }

    /// The outcome's name for metrics: `accepted`, `rejected` or `error`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::Rejected { .. } => "rejected",
            Self::Error { .. } => "error",
        }
    }
}
