//! The room's state as JSON, in the pinned shape of DESIGN §5 (API, snapshots, exports).

use schemars::JsonSchema;
use serde::Serialize;

use crate::account::Username;
use crate::ids::{MemberId, RoomId};
use crate::model::{ChatMessage, Item, Settings, Source};
use crate::playback::Playback;
use crate::state::RoomState;

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// The host.
    Host,
    /// Everyone else.
    Member,
}

/// The pinned state JSON: `{"room_id", "title", "closed", "settings", "playlist", "playback",
/// "members", "chat"}` plus `version` and `source`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "RoomState")]
pub struct RoomView<'a> {
    /// Room id (`None` only for a room that does not exist, which is never served).
    #[schemars(with = "RoomId")]
    pub room_id: Option<&'a RoomId>,
    /// The version this view is at.
    pub version: u64,
    /// Title.
    pub title: &'a str,
    /// Whether the room is closed.
    pub closed: bool,
    /// Where the playlist comes from (every created room has one).
    #[schemars(with = "Source")]
    pub source: Option<&'a Source>,
    /// Settings.
    pub settings: SettingsView<'a>,
    /// Items in order.
    pub playlist: &'a [Item],
    /// Playback anchor.
    pub playback: &'a Playback,
    /// Members in (re)join order: all of them up to [`MEMBER_PAGE`]; in a bigger room the
    /// latest [`MEMBER_PAGE`] to (re)join, after the host and the chat tail's authors when
    /// those are not among them (the rest: `GET /api/rooms/{id}/members` pages, and the commits
    /// that follow).
    pub members: Vec<MemberView<'a>>,
    /// How many members are listed (online or not).
    pub member_count: usize,
    /// How many of them are online.
    pub online_count: usize,
    /// The chat tail, oldest first.
    pub chat: Vec<&'a ChatMessage>,
}

/// The room's settings: `{"control", "listed", "image_seconds", "shuffle", "loop", "rewatch"}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "RoomSettings")]
pub struct SettingsView<'a> {
    /// Control and listing.
    #[serde(flatten)]
    pub settings: &'a Settings,
    /// How long an image is shown.
    pub image_seconds: u32,
    /// Whether `next` shuffles.
    pub shuffle: bool,
    /// Whether the playlist starts again after its end.
    #[serde(rename = "loop")]
    pub looping: bool,
    /// Whether the room's history may be rewatched (`/r/{id}/rewatch`, `/events`).
    pub rewatch: bool,
}

/// A member with their role.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "RoomMember")]
pub struct MemberView<'a> {
    /// Id.
    pub member_id: &'a MemberId,
    /// Nickname.
    pub name: &'a str,
    /// Host or member.
    pub role: MemberRole,
    /// Whether connected.
    pub online: bool,
    /// The username of a signed-in member (a mark guests cannot fake: only a verified
    /// access token binds one).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Username")]
    pub account: Option<&'a Username>,
    /// Whether this member's account created the room.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub owner: bool,
}

/// The most members a view lists: what a joining socket, the room's JSON and its Redis view
/// carry of a big room's member list.
pub const MEMBER_PAGE: usize = 100;

impl RoomState {
    /// The state in its pinned JSON shape, with the room's latest [`MEMBER_PAGE`] members and,
    /// before them, the host and the chat tail's authors when they joined earlier (a client
    /// names what it shows).
    pub fn view(&self) -> RoomView<'_> {
        let start = self.members.len().saturating_sub(MEMBER_PAGE);
        let (earlier, page) = self.members.split_at(start);
        // Looked up once per member: a join's view of a room of 10 000 scanned the chat tail
        // for each of them (half a million comparisons per join).
        let authors: std::collections::HashSet<&crate::MemberId> =
            self.chat.iter().map(|c| &c.member_id).chain(self.host.as_ref()).collect();
        let named = |m: &&crate::model::Member| authors.contains(&m.member_id);
        let members = earlier.iter().filter(named).chain(page).map(|m| self.member_view(m));
        self.view_with(members.collect())
    }

    /// The state in its pinned JSON shape with every member (developers' tools: `replay`).
    pub fn full_view(&self) -> RoomView<'_> {
        let members = self.members.iter().map(|m| self.member_view(m)).collect();
        self.view_with(members)
    }

    fn view_with<'a>(&'a self, members: Vec<MemberView<'a>>) -> RoomView<'a> {
        RoomView {
            room_id: self.room_id.as_ref(),
            version: self.version,
            title: &self.title,
            closed: self.closed.is_some(),
            source: self.source.as_ref(),
            settings: SettingsView {
                settings: &self.settings,
                image_seconds: self.play_mode.image_seconds,
                shuffle: self.play_mode.shuffle,
                looping: self.play_mode.looping,
                rewatch: !self.rewatch_off,
            },
            playlist: &self.playlist,
            playback: &self.playback,
            members,
            member_count: self.members.len(),
            online_count: self.shown_online(),
            chat: self.chat.iter().collect(),
        }
    }

    /// One member in its pinned JSON shape.
    pub fn member_view<'a>(&'a self, m: &'a crate::model::Member) -> MemberView<'a> {
        let role = if self.host.as_ref() == Some(&m.member_id) {
            MemberRole::Host
        } else {
            MemberRole::Member
        };
        MemberView {
            member_id: &m.member_id,
            name: &m.name,
            role,
            online: m.online,
            account: self.accounts.get(&m.member_id).map(|a| &a.username),
            owner: self.owner.as_ref() == Some(&m.member_id),
        }
    }
}
