//! Room creation (`chanshare.rooms.create`): the HTTP `POST /api/rooms` body, and the outcome.

use events::{AccountRef, Control, MemberId, RejectCode, RoomId, Source};
use serde::{Deserialize, Serialize};

/// `{"title"?, "source", "control"?, "listed"?, "name"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "CreateRoom")]
pub struct CreateRequest {
    /// Title; empty or absent derives one from the source.
    #[serde(default)]
    #[schemars(length(max = 120))]
    pub title: Option<String>,
    /// A chan thread or URLs.
    pub source: Source,
    /// Control mode (default `everyone`).
    #[serde(default)]
    #[schemars(extend("default" = "everyone"))]
    pub control: Option<Control>,
    /// Listed in the lobby (default true).
    #[serde(default)]
    #[schemars(extend("default" = true))]
    pub listed: Option<bool>,
    /// The host's nickname (default: the account's username, else `host`).
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub name: Option<String>,
    /// The creator's account, verified by the gateway from a bearer token (whatever a client
    /// put here is replaced): the room's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub account: Option<AccountRef>,
}

/// `{"status": "created" | "rejected" | "error", …}`.
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
    /// Not created: see the code (`invalid`, `not_found` for a thread that does not exist).
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
