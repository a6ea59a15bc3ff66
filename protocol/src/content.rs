//! The content role's services: thread resolution (`chanshare.content.resolve`) and watch
//! registration (`chanshare.content.watch`).

use events::{Media, RejectCode, RoomId};
use serde::{Deserialize, Serialize};

/// `{"board", "thread"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveRequest {
    /// The board.
    pub board: String,
    /// The thread number.
    pub thread: u64,
}

/// `{"status": "resolved" | "not_found" | "error", …}`.
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
    /// The thread does not exist (404 upstream), or its board does not (not on 4chan's board
    /// list: `no such board: /zzz/`).
    NotFound {
        /// Details.
        message: String,
    },
    /// Upstream failed, the request was malformed, or the board is not allowed here (`invalid`,
    /// `only worksafe boards are allowed here`).
    Error {
        /// `invalid` or `unavailable`.
        code: RejectCode,
        /// Details.
        message: String,
    },
}

/// `{"room", "board", "thread"}`: follow the thread and add its new media to the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    /// The room the thread feeds.
    pub room: RoomId,
    /// The board.
    pub board: String,
    /// The thread number.
    pub thread: u64,
}

/// `{"status": "watching" | "not_watched" | "error", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum WatchReply {
    /// The thread is followed.
    Watching,
    /// The thread is not followed: it will not grow (archived or closed), or the deployment
    /// follows as many threads as it may (`CHANSHARE_MAX_THREAD_WATCHES`). The room works all the
    /// same.
    NotWatched {
        /// Why: `archived` or `limit`.
        reason: String,
    },
    /// Could not resolve or register.
    Error {
        /// What happened.
        message: String,
    },
}
