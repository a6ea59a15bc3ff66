//! The WebSocket wire shapes (DESIGN §5, pinned): only the gateway knows them.

use events::{Actor, CommandId, Commit, Event, MemberId, RejectCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Close codes the gateway uses (documented in `docs/protocol.md`).
pub mod close {
    /// The server is shutting down: reconnect (to another gateway) and resume.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame was larger than the limit (16 KiB).
    pub const TOO_BIG: u16 = 1009;
    /// Nothing received for the idle timeout.
    pub const IDLE: u16 = 4000;
    /// The client fell too far behind the room's commits: reconnect and resume.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// Bad connection parameters (name).
    pub const BAD_REQUEST: u16 = 4400;
    /// The token is forged, expired or for another room.
    pub const BAD_TOKEN: u16 = 4401;
    /// The member was removed from the room (kicked), now or earlier: do not reconnect.
    pub const FORBIDDEN: u16 = 4403;
    /// The room has as many members as it may: retry later.
    pub const FULL: u16 = 4409;
    /// The room does not exist.
    pub const NOT_FOUND: u16 = 4404;
    /// The room is closed.
    pub const CLOSED: u16 = 4410;
    /// Too many connections from this address.
    pub const TOO_MANY: u16 = 4429;
    /// The room's services are unavailable: retry later.
    pub const UNAVAILABLE: u16 = 4503;
}

/// `welcome`: the first frame.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Welcome<'a> {
    #[serde(rename = "type")]
    #[schemars(extend("const" = "welcome"))]
    kind: &'static str,
    /// The member this socket is.
    pub member_id: &'a MemberId,
    /// Present it (with `resume` and `epoch`) to reconnect as the same member.
    pub token: &'a str,
    /// The log generation positions belong to.
    pub epoch: &'a str,
    /// The room version the client is at after the frames that follow the welcome.
    pub version: u64,
    /// Whether the client's position was kept (commits follow) or not (a snapshot follows).
    pub recovered: bool,
    /// Server time, for the clock offset.
    pub server_time_ms: u64,
}

impl<'a> Welcome<'a> {
    /// A welcome frame.
    pub fn new(
        member_id: &'a MemberId,
        token: &'a str,
        epoch: &'a str,
        version: u64,
        recovered: bool,
        server_time_ms: u64,
    ) -> Self {
        Self { kind: "welcome", member_id, token, epoch, version, recovered, server_time_ms }
    }
}

/// `snapshot`: the full state at a version (`state` is the pinned state JSON, inserted raw).
pub fn snapshot(version: u64, state_json: &str) -> String {
    format!(r#"{{"type":"snapshot","version":{version},"state":{state_json}}}"#)
}

/// `snapshot`, described: [`snapshot`] writes it, with the stored state inserted raw.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Snapshot")]
pub struct SnapshotFrame<'a> {
    #[serde(rename = "type")]
    #[schemars(extend("const" = "snapshot"))]
    kind: &'static str,
    /// The room version of the state.
    pub version: u64,
    /// The room's state (as `GET /api/rooms/{id}` answers it).
    pub state: events::view::RoomView<'a>,
}

/// `commit`: one commit, in the pinned JSON form.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Commit")]
pub struct CommitFrame<'a> {
    #[serde(rename = "type")]
    #[schemars(extend("const" = "commit"))]
    kind: &'static str,
    /// The room version this commit made.
    version: u64,
    /// Server time of the commit (ms since the Unix epoch).
    at_ms: u64,
    /// Who issued the command.
    actor: &'a Actor,
    /// The command's id.
    command_id: &'a CommandId,
    /// The commit's events in order, less the private ones ([`Event::is_private`]).
    #[serde(serialize_with = "events::json::tagged_vec::serialize")]
    #[schemars(with = "Vec<Event>")]
    events: Vec<&'a Event>,
}

impl<'a> CommitFrame<'a> {
    /// The frame of `commit`.
    pub fn new(commit: &'a Commit) -> Self {
        Self {
            kind: "commit",
            version: commit.version,
            at_ms: commit.at_ms,
            actor: &commit.actor,
            command_id: &commit.command_id,
            events: commit.events.iter().filter(|e| !e.is_private()).collect(),
        }
    }
}

/// `commits`: consecutive commits in one frame, for clients that connect with `batch=1`. A big
/// room's membership commits (joins, returns, leaves, presence) are held for a moment and sent
/// together (`hub`), so a burst of joins reaches each socket as a few frames.
pub fn commits<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut text = String::from(r#"{"type":"commits","commits":["#);
    for (n, part) in parts.into_iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        text.push_str(part);
    }
    text.push_str("]}");
    text
}

/// `commits`, described: [`commits`] writes it from the commits' own frames.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Commits")]
pub struct CommitsFrame<'a> {
    #[serde(rename = "type")]
    #[schemars(extend("const" = "commits"))]
    kind: &'static str,
    /// The commits, in version order, consecutive, each a `commit` frame.
    pub commits: Vec<CommitFrame<'a>>,
}

/// `ack` / `reject` / `pong`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// The command was stored (or was a no-op) at `version`.
    Ack {
        /// The command id.
        id: String,
        /// The room version.
        version: u64,
    },
    /// The command was refused or could not be decided.
    Reject {
        /// The command id (empty when the frame had none).
        id: String,
        /// A pinned reject code.
        code: RejectCode,
        /// Why.
        message: String,
    },
    /// The answer to a `ping`.
    Pong {
        /// The client's `t`, echoed.
        t: f64,
        /// Server time.
        server_time_ms: u64,
    },
}

/// A frame from the client.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// A command for the room.
    Command {
        /// The client's command id (UUID).
        #[schemars(extend("format" = "uuid"))]
        id: String,
        /// The command in its pinned shape (`docs/protocol.md` says which a member may send).
        #[schemars(with = "events::Command")]
        command: serde_json::Value,
    },
    /// A clock probe.
    Ping {
        /// The client's clock, echoed in the pong.
        t: f64,
    },
}

/// Serializes a frame (these shapes cannot fail to serialize).
pub fn text<T: Serialize>(frame: &T) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

/// The account socket's frames (`/api/me/ws`, DESIGN §4b, pinned).
pub mod account {
    use std::collections::BTreeMap;

    use events::Username;
    use events::dm::Status;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// A frame from the client.
    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    pub enum ClientFrame {
        /// Sends a direct message.
        Dm {
            /// The client's id for the message (a UUID): sending it again stores it once.
            #[schemars(extend("format" = "uuid"))]
            id: String,
            /// The receiver's username.
            to: String,
            /// The text (1 to 2000 characters, not blank).
            text: String,
        },
        /// Reports the messages from `with` up to `up_to` (a seq) as read (shown).
        DmRead {
            /// Echoed in the `ack` or `reject` (optional).
            #[serde(default)]
            id: Option<String>,
            /// The other account of the conversation.
            with: String,
            /// The seq of the last message shown.
            up_to: u64,
        },
        /// What the client has seen, per conversation: after it, every event it has not seen
        /// arrives, each once, in order (a conversation not named: all of it).
        DmSync {
            /// Echoed in the `ack` (optional).
            #[serde(default)]
            id: Option<String>,
            /// Per partner's username, the last seq the client has.
            since: BTreeMap<String, u64>,
        },
        /// A clock probe (also keeps the socket from idling out).
        Ping {
            /// The client's clock, echoed in the pong.
            t: f64,
        },
    }

    /// Why a client frame was refused: the room codes that apply, and two of DMs' own.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum RejectCode {
        /// Malformed, or a rule broken (the message says which).
        Invalid,
        /// Too many messages: wait.
        RateLimited,
        /// The receiver does not accept the sender's messages.
        Blocked,
        /// No account has that username.
        UnknownUser,
        /// Storage is unavailable: retry.
        Unavailable,
    }

    /// A frame from the server.
    #[derive(Debug, Serialize, JsonSchema)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum ServerFrame<'a> {
        /// A message of one of the account's conversations (sent or received), in order.
        Dm {
            /// The sender's id for it.
            id: uuid::Uuid,
            /// The sender.
            from: &'a Username,
            /// The receiver.
            to: &'a Username,
            /// The text.
            text: &'a str,
            /// Its place in the conversation: only grows (send it back in `dm_sync` and `dm_read`).
            seq: u64,
            /// Server time of sending.
            at_ms: u64,
        },
        /// A message the account sent moved on: `sent` (stored), `delivered` (on one of the
        /// receiver's screens' sockets), `read` (shown). Each once, never backwards.
        DmStatus {
            /// The message's id.
            id: uuid::Uuid,
            /// Where it is now.
            status: Status,
            /// When it got there.
            at_ms: u64,
        },
        /// The account read a conversation up to `up_to` (on this device or another): its
        /// messages from `with` up to there are no longer unread. Sent to the reader's sockets
        /// (the sender gets `dm_status read`).
        DmRead {
            /// The other account of the conversation.
            with: &'a Username,
            /// The last seq read.
            up_to: u64,
        },
        /// A client frame was done.
        Ack {
            /// The frame's id (empty when it had none).
            id: String,
            /// The seq a `dm` was stored at.
            #[serde(skip_serializing_if = "Option::is_none")]
            seq: Option<u64>,
        },
        /// A client frame was refused.
        Reject {
            /// The frame's id (empty when it had none).
            id: String,
            /// Why, to match on.
            code: RejectCode,
            /// Why, in words.
            message: String,
        },
        /// The answer to a `ping`.
        Pong {
            /// The client's `t`, echoed.
            t: f64,
            /// Server time.
            server_time_ms: u64,
        },
    }
}
