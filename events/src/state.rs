//! Room state and `evolve`: how each event changes it. No rules live here, only facts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::commit::Commit;
use crate::event::{CloseReason, Event};
use crate::ids::{ItemId, MemberId, MessageId, RoomId};
use crate::model::{AccountRef, ChatMessage, Item, Member, Settings, Source};
use crate::playback::Playback;

/// How many chat messages the room state keeps.
pub const CHAT_TAIL: usize = 50;

/// A room, as the fold of its commits. `RoomState::default()` is a room that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoomState {
    /// The version of the last commit folded in (0: none).
    pub version: u64,
    /// Server time of the last commit.
    pub updated_ms: u64,
    /// Set by `room_created`.
    pub room_id: Option<RoomId>,
    /// Title.
    pub title: String,
    /// Where the playlist comes from.
    pub source: Option<Source>,
    /// Settings.
    pub settings: Settings,
    /// The playlist, in order.
    pub playlist: Vec<Item>,
    /// Where playback is.
    pub playback: Playback,
    /// Listed members in (re)join order.
    pub members: Vec<Member>,
    /// The host, when there is one.
    pub host: Option<MemberId>,
    /// Kicked members, who may not rejoin.
    pub banned: BTreeSet<MemberId>,
    /// The last [`CHAT_TAIL`] chat messages.
    pub chat: VecDeque<ChatMessage>,
    /// Set once the room is closed.
    pub closed: Option<CloseReason>,
    /// How many items were ever added (the next item id is `i{items_added + 1}`).
    pub items_added: u64,
    /// How many chat messages were ever posted (the next is `c{messages_posted + 1}`).
    pub messages_posted: u64,
    /// How the playlist plays: image time, shuffle, loop.
    #[serde(default)]
    pub play_mode: PlayMode,
    /// Items played in the current shuffle round (what `next` under shuffle avoids).
    #[serde(default)]
    pub played: BTreeSet<ItemId>,
    /// The address fingerprint each listed member last joined from.
    #[serde(default)]
    pub addresses: BTreeMap<MemberId, String>,
    /// Address fingerprints of kicked members: new members from them are refused.
    #[serde(default)]
    pub banned_addresses: BTreeSet<String>,
    /// The accounts of signed-in members.
    #[serde(default)]
    pub accounts: BTreeMap<MemberId, AccountRef>,
    /// The member of the account that created the room, if one did: host whenever online.
    #[serde(default)]
    pub owner: Option<MemberId>,
    /// The last [`DELETED_KEPT`] deleted chat messages, in the order they were deleted: what
    /// readers of the history (`/events`, `replay`, the archive) show as deleted.
    #[serde(default)]
    pub deleted: VecDeque<MessageId>,
    /// Whether the host stopped rewatching of the room's history (`rewatch_changed`).
    #[serde(default)]
    pub rewatch_off: bool,
    /// When the room closed (0: open, or closed before this was kept). A closed room still
    /// takes `set_rewatch`, which moves `updated_ms` but not this.
    #[serde(default)]
    pub closed_ms: u64,
}

/// How many deleted chat messages the room state remembers (older deletions are of messages
/// long gone from any log with retention).
pub const DELETED_KEPT: usize = 1000;

/// How the playlist plays; settings any member with control may change (image time: the host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayMode {
    /// How long an image is shown before the room moves on.
    pub image_seconds: u32,
    /// `next` picks an item not played yet in this round.
    pub shuffle: bool,
    /// After the last item the playlist starts again.
    pub looping: bool,
}

/// Images are shown this long unless the host says otherwise.
pub const DEFAULT_IMAGE_SECONDS: u32 = 6;

impl Default for PlayMode {
    fn default() -> Self {
        Self { image_seconds: DEFAULT_IMAGE_SECONDS, shuffle: false, looping: false }
    }
}

impl RoomState {
    /// Whether the room has been created.
    pub fn exists(&self) -> bool {
        self.room_id.is_some()
    }

    /// The member with `id`, if listed.
    pub fn member(&self, id: &MemberId) -> Option<&Member> {
        self.members.iter().find(|m| &m.member_id == id)
    }

    /// The index of item `id` in the playlist.
    pub fn item_index(&self, id: &ItemId) -> Option<usize> {
        self.playlist.iter().position(|i| &i.item_id == id)
    }

    /// The index of the current item.
    pub fn current_index(&self) -> Option<usize> {
        self.playback.item_id.as_ref().and_then(|id| self.item_index(id))
    }

    /// How many members are online.
    pub fn online_count(&self) -> usize {
        self.members.iter().filter(|m| m.online).count()
    }

    /// How many members are shown online: none once the room is closed, whatever their last
    /// presence said (views, the lobby, `GET /members`).
    pub fn shown_online(&self) -> usize {
        if self.closed.is_some() { 0 } else { self.online_count() }
    }

    /// Folds one commit in: its events, then its version and time.
    pub fn apply(self, commit: &Commit) -> RoomState {
        let was_open = self.closed.is_none();
        let mut state = commit.events.iter().fold(self, evolve);
        state.version = commit.version;
        state.updated_ms = commit.at_ms;
        if was_open && state.closed.is_some() {
            state.closed_ms = commit.at_ms;
        }
        state
    }

    /// Checks the invariants every reachable state keeps; returns the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut items = BTreeSet::new();
        if !self.playlist.iter().all(|i| items.insert(&i.item_id)) {
            return Err("item ids are not unique".into());
        }
        match &self.playback.item_id {
            None if !self.playlist.is_empty() => {
                return Err("the playlist has items but none is current".into());
            }
            Some(id) if !items.contains(id) => {
                return Err(format!("current item {id} is not in the playlist"));
            }
            None if self.playback.playing => return Err("playing an empty playlist".into()),
            _ => {}
        }
        let mut members = BTreeSet::new();
        if !self.members.iter().all(|m| members.insert(&m.member_id)) {
            return Err("member ids are not unique".into());
        }
        let online = self.online_count();
        match &self.host {
            Some(host) if !members.contains(host) => {
                return Err(format!("host {host} is not a member"));
            }
            Some(host) if online > 0 && !self.member(host).is_some_and(|m| m.online) => {
                return Err(format!("host {host} is offline while others are online"));
            }
            None if online > 0 => return Err("members are online but there is no host".into()),
            _ => {}
        }
        if let Some(stray) = self.played.iter().find(|id| !items.contains(id)) {
            return Err(format!("played item {stray} is not in the playlist"));
        }
        if let Some(stray) = self.addresses.keys().find(|id| !members.contains(id)) {
            return Err(format!("address of {stray}, who is not a member"));
        }
        if let Some(stray) = self.accounts.keys().find(|id| !members.contains(id)) {
            return Err(format!("account of {stray}, who is not a member"));
        }
        if self.chat.len() > CHAT_TAIL {
            return Err("chat tail is longer than its limit".into());
        }
        Ok(())
    }
}

/// Applies one event. Events are facts: this never refuses one and never decides anything.
pub fn evolve(mut state: RoomState, event: &Event) -> RoomState {
    match event {
        Event::RoomCreated { room_id, title, source, settings } => {
            state.room_id = Some(room_id.clone());
            state.title.clone_from(title);
            state.source = Some(source.clone());
            state.settings = settings.clone();
        }
        Event::ItemsAdded { items } => {
            state.items_added += items.len() as u64;
            state.playlist.extend(items.iter().cloned());
        }
        Event::ItemRemoved { item_id } => {
            state.playlist.retain(|i| &i.item_id != item_id);
            state.played.remove(item_id);
        }
        Event::ItemMoved { item_id, to } => {
            if let Some(from) = state.item_index(item_id) {
                let item = state.playlist.remove(from);
                let to = (*to as usize).min(state.playlist.len());
                state.playlist.insert(to, item);
            }
        }
        Event::PlaybackChanged { playback, .. } => {
            if let Some(item) = &playback.item_id
                && state.playback.item_id.as_ref() != Some(item)
            {
                // Entering an item already played this round starts a new round.
                if !state.played.insert(item.clone()) {
                    state.played.clear();
                    state.played.insert(item.clone());
                }
            }
            state.playback = playback.clone();
        }
        Event::MemberJoined { member_id, name } => state.members.push(Member {
            member_id: member_id.clone(),
            name: name.clone(),
            online: true,
        }),
        Event::MemberReturned { member_id } => {
            if let Some(at) = state.members.iter().position(|m| &m.member_id == member_id) {
                let mut member = state.members.remove(at);
                member.online = true;
                state.members.push(member);
            }
        }
        Event::MemberWentOffline { member_id } => {
            if let Some(m) = state.members.iter_mut().find(|m| &m.member_id == member_id) {
                m.online = false;
            }
        }
        Event::MemberLeft { member_id, reason } => {
            state.members.retain(|m| &m.member_id != member_id);
            state.accounts.remove(member_id);
            let address = state.addresses.remove(member_id);
            if *reason == crate::event::RemovalReason::Kicked {
                state.banned.insert(member_id.clone());
                state.banned_addresses.extend(address);
            }
        }
        Event::MemberRenamed { member_id, name } => {
            if let Some(m) = state.members.iter_mut().find(|m| &m.member_id == member_id) {
                m.name.clone_from(name);
            }
        }
        Event::HostChanged { member_id } => state.host.clone_from(member_id),
        Event::ChatPosted { message } => {
            state.messages_posted += 1;
            state.chat.push_back(message.clone());
            while state.chat.len() > CHAT_TAIL {
                state.chat.pop_front();
            }
        }
        Event::ChatDeleted { message_id } => {
            state.chat.retain(|m| &m.id != message_id);
            state.deleted.push_back(message_id.clone());
            while state.deleted.len() > DELETED_KEPT {
                state.deleted.pop_front();
            }
        }
        Event::ControlChanged { control } => state.settings.control = *control,
        Event::ListedChanged { listed } => state.settings.listed = *listed,
        Event::RoomClosed { reason } => state.closed = Some(*reason),
        Event::MemberAddressSeen { member_id, address } => {
            state.addresses.insert(member_id.clone(), address.clone());
        }
        Event::ImageSecondsChanged { seconds } => state.play_mode.image_seconds = *seconds,
        Event::ShuffleChanged { shuffle } => {
            state.play_mode.shuffle = *shuffle;
            // A round starts with the item playing now.
            state.played.clear();
            state.played.extend(state.playback.item_id.clone());
        }
        Event::LoopChanged { looping } => state.play_mode.looping = *looping,
        Event::AccountBound { member_id, account, owner } => {
            state.accounts.insert(member_id.clone(), account.clone());
            if *owner {
                state.owner = Some(member_id.clone());
            }
        }
        Event::RewatchChanged { rewatch } => state.rewatch_off = !*rewatch,
    }
    state
}
