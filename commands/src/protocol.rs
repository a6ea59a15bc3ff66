//! The service's wire protocol on NATS (JSON), documented in `docs/commands.md`.

use events::{
    Actor, Command, CommandId, Control, Media, MemberId, RejectCode, Rejection, RoomId, Source,
};
use serde::{Deserialize, Serialize};

/// Commands for room `R` are requests on `chanshare.cmd.R`.
pub const COMMAND_SUBJECT_PREFIX: &str = "chanshare.cmd.";
/// Room creation requests.
pub const CREATE_SUBJECT: &str = "chanshare.rooms.create";
/// The content service's thread resolver.
pub const RESOLVE_SUBJECT: &str = "chanshare.content.resolve";
/// The content service's watch registration: `{"room", "board", "thread"}`.
pub const WATCH_SUBJECT: &str = "chanshare.content.watch";

/// The subject for commands to `room`.
pub fn command_subject(room: &RoomId) -> String {
    format!("{COMMAND_SUBJECT_PREFIX}{room}")
}

/// A command to a room: `{"id", "actor", "command": {"type": …}, "traceparent"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The client's command id: the same id twice has one effect.
    pub id: CommandId,
    /// The verified issuer (the gateway vouches for it).
    pub actor: Actor,
    /// The command.
    #[serde(with = "events::json::tagged")]
    pub command: Command,
    /// W3C trace context, stored on the commit.
    #[serde(default)]
    pub traceparent: Option<String>,
}

/// The outcome of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Reply {
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

impl Reply {
    pub(crate) fn rejected(rejection: Rejection) -> Self {
        Self::Rejected { code: rejection.code, message: rejection.message }
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::Error { code: RejectCode::Unavailable, message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
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

/// A request to create a room (the HTTP `POST /api/rooms` body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Title; empty or absent derives one from the source.
    #[serde(default)]
    pub title: Option<String>,
    /// A chan thread or URLs.
    pub source: Source,
    /// Control mode (default `everyone`).
    #[serde(default)]
    pub control: Option<Control>,
    /// Listed in the lobby (default true).
    #[serde(default)]
    pub listed: Option<bool>,
    /// The host's nickname (default `host`).
    #[serde(default)]
    pub name: Option<String>,
}

/// A created room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CreateReply {
    /// The room exists.
    Created {
        /// Its id.
        room_id: RoomId,
        /// The host's member id.
        member_id: MemberId,
        /// The host's signed token.
        host_token: String,
        /// The room's version after creation.
        version: u64,
    },
    /// Not created: see the code.
    Rejected {
        /// Why, as a pinned code.
        code: RejectCode,
        /// Why, in words.
        message: String,
    },
    /// A technical failure; try again.
    Error {
        /// `unavailable`.
        code: RejectCode,
        /// What happened.
        message: String,
    },
}

/// A thread resolution request to the content service: `{"board", "thread"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveRequest {
    /// The board.
    pub board: String,
    /// The thread number.
    pub thread: u64,
}

/// The content service's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ResolveReply {
    /// The thread's playable media, in thread order.
    Resolved {
        /// The items.
        items: Vec<Media>,
        /// The thread is archived or closed (it will not grow).
        #[serde(default)]
        archived: bool,
        /// The thread's subject, or the first words of its opening comment, as plain text
        /// (absent when it has neither, and from content services older than this field).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// The thread does not exist (404 upstream).
    NotFound {
        /// Details.
        message: String,
    },
    /// Upstream failed or the request was malformed.
    Error {
        /// `invalid` or `unavailable`.
        code: RejectCode,
        /// Details.
        message: String,
    },
}
