//! Events: what happened to a room. A room's state is the fold of its events.
//!
//! Variants are append-only: the binary codec stores the variant index, so never reorder or
//! remove one; add new ones at the end and bump the schema when a variant's fields change.

use serde::{Deserialize, Serialize};

use crate::ids::{ItemId, MemberId, MessageId, RoomId};
use crate::model::{AccountRef, ChatMessage, Control, Item, Settings, Source};
use crate::playback::Playback;

/// Something that happened to a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
// The schema of the pinned JSON form (`crate::json`), not of the externally tagged serde form.
#[schemars(tag = "type")]
pub enum Event {
    /// The room exists.
    RoomCreated {
        /// Its id.
        room_id: RoomId,
        /// Its title.
        title: String,
        /// Where its playlist comes from.
        source: Source,
        /// Initial settings.
        settings: Settings,
    },
    /// Items were appended to the playlist.
    ItemsAdded {
        /// The items, with their new ids.
        items: Vec<Item>,
    },
    /// An item left the playlist.
    ItemRemoved {
        /// The item.
        item_id: ItemId,
    },
    /// An item moved to index `to`.
    ItemMoved {
        /// The item.
        item_id: ItemId,
        /// Its new index.
        to: u32,
    },
    /// Playback changed; `playback` is the complete new playback state.
    PlaybackChanged {
        /// Why.
        cause: PlaybackCause,
        /// The new state.
        playback: Playback,
    },
    /// A new member entered (online).
    MemberJoined {
        /// The member.
        member_id: MemberId,
        /// Nickname.
        name: String,
    },
    /// A listed, offline member came back online (and moved to the end of the join order).
    MemberReturned {
        /// The member.
        member_id: MemberId,
    },
    /// A member's connection timed out: still listed, offline.
    MemberWentOffline {
        /// The member.
        member_id: MemberId,
    },
    /// A member is no longer listed.
    MemberLeft {
        /// The member.
        member_id: MemberId,
        /// Why.
        reason: RemovalReason,
    },
    /// A member changed nickname.
    MemberRenamed {
        /// The member.
        member_id: MemberId,
        /// The new nickname.
        name: String,
    },
    /// The host changed; `None` when nobody is left.
    HostChanged {
        /// The new host.
        member_id: Option<MemberId>,
    },
    /// A chat message was posted.
    ChatPosted {
        /// The message.
        message: ChatMessage,
    },
    /// A chat message was deleted.
    ChatDeleted {
        /// The message.
        message_id: MessageId,
    },
    /// The control mode changed.
    ControlChanged {
        /// The new mode.
        control: Control,
    },
    /// The room was listed in or hidden from the lobby.
    ListedChanged {
        /// Whether it is listed.
        listed: bool,
    },
    /// The room closed for good.
    RoomClosed {
        /// Why.
        reason: CloseReason,
    },
    /// A member was seen joining from an address (a keyed fingerprint, never the address).
    /// Private (`is_private`): no client gets it, so no document describes it.
    #[schemars(skip)]
    MemberAddressSeen {
        /// The member.
        member_id: MemberId,
        /// The fingerprint.
        address: String,
    },
    /// How long an image is shown changed.
    ImageSecondsChanged {
        /// Seconds.
        seconds: u32,
    },
    /// Shuffle was turned on or off.
    ShuffleChanged {
        /// On or off.
        shuffle: bool,
    },
    /// Loop was turned on or off.
    LoopChanged {
        /// On or off.
        #[serde(rename = "loop")]
        looping: bool,
    },
    /// A member is a signed-in account: the same member on every device. With `owner`, the
    /// account created the room: it takes host back whenever it comes, and nobody may kick it.
    AccountBound {
        /// The member.
        member_id: MemberId,
        /// The account.
        account: AccountRef,
        /// Whether the account created the room.
        owner: bool,
    },
    /// Rewatching the room's history was allowed or stopped.
    RewatchChanged {
        /// On or off.
        rewatch: bool,
    },
}

/// Why playback changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlaybackCause {
    /// `play`.
    Play,
    /// `pause`.
    Pause,
    /// `seek`.
    Seek,
    /// `set_rate`.
    Rate,
    /// `next`.
    Next,
    /// `previous`.
    Previous,
    /// `jump`.
    Jump,
    /// The last item ended: playback paused at its end.
    Ended,
    /// The first items arrived in an empty playlist.
    ItemsAdded,
    /// The current item was removed.
    ItemRemoved,
}

/// Why a member is no longer listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// They left.
    Left,
    /// The host kicked them; they may not rejoin.
    Kicked,
    /// The member list was full and they were the longest-offline member.
    Pruned,
}

/// Why a room closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The host closed it.
    Host,
    /// Nobody was online for the idle timeout.
    Idle,
}

impl Event {
    /// Whether the event is kept out of what clients see (commit frames, `/events`): it records
    /// something about a member that other members must not learn (an address fingerprint).
    /// Folds, snapshots and developer tools still have it.
    pub fn is_private(&self) -> bool {
        matches!(self, Self::MemberAddressSeen { .. })
    }

    /// The event's name as in the JSON forms (`"playback_changed"`), for logs and exports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RoomCreated { .. } => "room_created",
            Self::ItemsAdded { .. } => "items_added",
            Self::ItemRemoved { .. } => "item_removed",
            Self::ItemMoved { .. } => "item_moved",
            Self::PlaybackChanged { .. } => "playback_changed",
            Self::MemberJoined { .. } => "member_joined",
            Self::MemberReturned { .. } => "member_returned",
            Self::MemberWentOffline { .. } => "member_went_offline",
            Self::MemberLeft { .. } => "member_left",
            Self::MemberRenamed { .. } => "member_renamed",
            Self::HostChanged { .. } => "host_changed",
            Self::ChatPosted { .. } => "chat_posted",
            Self::ChatDeleted { .. } => "chat_deleted",
            Self::ControlChanged { .. } => "control_changed",
            Self::ListedChanged { .. } => "listed_changed",
            Self::RoomClosed { .. } => "room_closed",
            Self::MemberAddressSeen { .. } => "member_address_seen",
            Self::ImageSecondsChanged { .. } => "image_seconds_changed",
            Self::ShuffleChanged { .. } => "shuffle_changed",
            Self::LoopChanged { .. } => "loop_changed",
            Self::AccountBound { .. } => "account_bound",
            Self::RewatchChanged { .. } => "rewatch_changed",
        }
    }
}
