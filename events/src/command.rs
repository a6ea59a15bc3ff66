//! Commands: what someone asks a room to do. Each is decided into zero or more events.

use serde::{Deserialize, Serialize};

use crate::ids::{ItemId, MemberId, MessageId};
use crate::model::{AccountRef, Control, Media, Settings, Source};

/// A command to a room.
///
/// The serde form is externally tagged (what postcard needs); the pinned wire form
/// `{"type": "seek", "position_ms": 5000}` is produced by [`crate::json`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
// The schema is of the pinned JSON form (`crate::json`), not of the externally tagged serde
// form, and of the commands a client may send (`is_client_command`; the others are skipped).
#[schemars(tag = "type")]
pub enum Command {
    /// Creates the room; the actor becomes its host. Issued by provisioning, not by sockets.
    #[schemars(skip)]
    CreateRoom {
        /// Room title; empty means a default derived from the source.
        title: String,
        /// Where the playlist comes from.
        source: Source,
        /// Initial settings.
        settings: Settings,
        /// The host's nickname.
        name: String,
        /// Resolved items of a chan thread (URL rooms build their items from the source).
        items: Vec<Media>,
        /// The creator's account, when signed in: the room's owner.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<AccountRef>,
    },
    /// Appends media URLs to the playlist.
    AddItems {
        /// http(s) URLs of media files.
        urls: Vec<String>,
    },
    /// Removes an item from the playlist.
    RemoveItem {
        /// The item.
        item_id: ItemId,
    },
    /// Moves an item to index `to` of the playlist.
    MoveItem {
        /// The item.
        item_id: ItemId,
        /// Its new index, counted in the playlist after the move.
        to: u32,
    },
    /// Starts playback from the current position.
    Play,
    /// Pauses playback, freezing the position.
    Pause,
    /// Moves the position within the current item.
    Seek {
        /// The new position.
        position_ms: u64,
    },
    /// Advances to the next item. With `expected_item_id` (sent by clients at the end of an
    /// item) it applies only while that item is current, so many clients advance the room once.
    Next {
        /// The item the sender thinks is current.
        #[serde(default)]
        expected_item_id: Option<ItemId>,
    },
    /// Goes back to the previous item (guarded like `next`).
    Previous {
        /// The item the sender thinks is current.
        #[serde(default)]
        expected_item_id: Option<ItemId>,
    },
    /// Makes an item current, from its start.
    Jump {
        /// The item.
        item_id: ItemId,
    },
    /// Changes the playback rate (0.25–4.0).
    SetRate {
        /// The factor, e.g. `1.25`.
        rate: f64,
    },
    /// Enters the room (or comes back online). Issued by the gateway when a socket opens.
    #[schemars(skip)]
    Join {
        /// Nickname; empty for a listed member keeps their name (a reconnect).
        name: String,
        /// A keyed fingerprint of the client's address (never the address itself), made by the
        /// gateway: a kick bars the kicked member's address for the room's life.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        /// The member's account, verified by the gateway from an access token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<AccountRef>,
    },
    /// Leaves the room (`left`), is timed out by the presence reaper (`timeout`), or closed their
    /// last socket cleanly (`disconnected`, issued by the gateway after a grace period).
    #[schemars(skip)]
    Leave {
        /// Why.
        #[serde(default)]
        reason: LeaveReason,
    },
    /// Changes the actor's nickname.
    Rename {
        /// The new nickname.
        name: String,
    },
    /// Posts a chat message.
    Chat {
        /// The message.
        text: String,
    },
    /// Deletes a chat message (its author or the host).
    DeleteChat {
        /// The message.
        message_id: MessageId,
    },
    /// Sets who may control playback (host only).
    SetControl {
        /// The new mode.
        control: Control,
    },
    /// Shows or hides the room in the lobby (host only).
    SetListed {
        /// Whether it is listed.
        listed: bool,
    },
    /// Removes a member and bars them from rejoining (host only).
    Kick {
        /// The member.
        member_id: MemberId,
    },
    /// Makes another online member the host (host only).
    TransferHost {
        /// The member.
        member_id: MemberId,
    },
    /// Closes the room for good: by the host, or by the server when it has been idle.
    Close,
    /// Adds a chan thread's new media (issued by the thread watcher).
    #[schemars(skip)]
    RefreshThread {
        /// The thread's playable items as resolved now; only unseen ones are added.
        items: Vec<Media>,
    },
    /// Sets how long an image is shown before the room moves on (host only).
    SetImageSeconds {
        /// Seconds, 1 to [`crate::Limits::max_image_seconds`].
        seconds: u32,
    },
    /// Turns shuffle on or off: `next` picks an item not played yet in this round.
    SetShuffle {
        /// On or off.
        shuffle: bool,
    },
    /// Turns loop on or off: after the last item (or the last of a shuffle round) the playlist
    /// starts again.
    SetLoop {
        /// On or off.
        #[serde(rename = "loop")]
        looping: bool,
    },
    /// Lets people rewatch the room's history (its log) after the fact, or stops them (host
    /// only): off, the rewatch page and the history API refuse.
    SetRewatch {
        /// On or off.
        rewatch: bool,
    },
}

/// Why a member leaves.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// They left on purpose: they are removed from the member list.
    #[default]
    Left,
    /// Their connection has been gone for the presence timeout: they stay listed, offline.
    Timeout,
    /// Their last socket closed cleanly (the tab was closed): they stay listed, offline at once.
    Disconnected,
}

impl Command {
    /// The command's name as on the wire (`"set_rate"`), for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreateRoom { .. } => "create_room",
            Self::AddItems { .. } => "add_items",
            Self::RemoveItem { .. } => "remove_item",
            Self::MoveItem { .. } => "move_item",
            Self::Play => "play",
            Self::Pause => "pause",
            Self::Seek { .. } => "seek",
            Self::Next { .. } => "next",
            Self::Previous { .. } => "previous",
            Self::Jump { .. } => "jump",
            Self::SetRate { .. } => "set_rate",
            Self::Join { .. } => "join",
            Self::Leave { .. } => "leave",
            Self::Rename { .. } => "rename",
            Self::Chat { .. } => "chat",
            Self::DeleteChat { .. } => "delete_chat",
            Self::SetControl { .. } => "set_control",
            Self::SetListed { .. } => "set_listed",
            Self::Kick { .. } => "kick",
            Self::TransferHost { .. } => "transfer_host",
            Self::Close => "close",
            Self::RefreshThread { .. } => "refresh_thread",
            Self::SetImageSeconds { .. } => "set_image_seconds",
            Self::SetShuffle { .. } => "set_shuffle",
            Self::SetLoop { .. } => "set_loop",
            Self::SetRewatch { .. } => "set_rewatch",
        }
    }

    /// Whether a client may send this command over its socket. The others are issued by the
    /// server on a member's behalf (join, leave) or on its own (create, refresh).
    pub fn is_client_command(&self) -> bool {
        !matches!(
            self,
            Self::CreateRoom { .. }
                | Self::Join { .. }
                | Self::Leave { .. }
                | Self::RefreshThread { .. }
        )
    }

    /// Whether the command changes playback or the playlist, which control mode `host`
    /// reserves to the host.
    pub fn is_control(&self) -> bool {
        matches!(
            self,
            Self::AddItems { .. }
                | Self::RemoveItem { .. }
                | Self::MoveItem { .. }
                | Self::Play
                | Self::Pause
                | Self::Seek { .. }
                | Self::Next { .. }
                | Self::Previous { .. }
                | Self::Jump { .. }
                | Self::SetRate { .. }
                | Self::SetShuffle { .. }
                | Self::SetLoop { .. }
        )
    }
}
