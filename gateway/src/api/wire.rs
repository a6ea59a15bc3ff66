//! The bodies of the HTTP API: what each route reads and answers, as types. The handlers build
//! their answers from these and the OpenAPI document describes them from the same types, so the
//! two cannot drift (`tests/it/documents.rs` also checks real answers against the document).

use events::{MemberId, RoomId, Username};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `POST /api/rooms` 201.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Created {
    /// The new room.
    pub room_id: RoomId,
    /// The host's member id.
    pub member_id: MemberId,
    /// The host's member token: open the room socket with it to be the host.
    pub host_token: String,
    /// The room's page, `/r/{room_id}`.
    pub url: String,
}

/// `GET /api/rooms` 200: a page of the lobby.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LobbyPage {
    /// Listed open rooms, most recently active first.
    pub rooms: Vec<views::LobbyEntry>,
    /// Pass it as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/rooms/{id}/members` 200: a page of the member list.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MembersPage<'a> {
    /// The room version the list is at.
    pub version: u64,
    /// How many members are listed.
    pub member_count: usize,
    /// How many of them are online.
    pub online_count: usize,
    /// Members in (re)join order, from `offset` on.
    pub members: Vec<events::view::MemberView<'a>>,
    /// Pass it as `offset` for the next page; null on the last page.
    pub next_offset: Option<usize>,
}

/// `GET /api/rooms/{id}/events` 200. The handler writes this shape as it reads the log (a page
/// ends at a byte cap), so this type only describes it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventsPage<'a> {
    /// Commits in order, as `commit` frames of the room socket; chat messages deleted since
    /// are shown deleted.
    pub commits: Vec<crate::frames::CommitFrame<'a>>,
    /// The version of the last commit of the page: pass it as `after` for the next page (equal
    /// to `after` when there was nothing more).
    pub next_after: u64,
}

/// `POST /api/accounts` and `POST /api/sessions`: `{username, password}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// 3 to 32 of `a-z 0-9 _ -`, any case (stored lowercase).
    #[schemars(extend("pattern" = "^[A-Za-z0-9_-]{3,32}$"))]
    pub username: String,
    /// 10 to 256 characters, not a common password.
    #[schemars(length(min = 10, max = 256))]
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// `POST /api/sessions/refresh`: `{refresh_token}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    /// The refresh token of the last pair (each is spent once).
    pub refresh_token: String,
}

/// `POST /api/accounts` 201 and `GET /api/me` 200.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Account {
    /// The account's id.
    pub account_id: uuid::Uuid,
    /// Its username.
    pub username: Username,
}

/// `POST /api/sessions` and `POST /api/sessions/refresh` 200.
#[derive(Serialize, JsonSchema)]
pub struct TokenPair {
    /// The access token (a JWT): `Authorization: Bearer …`, or `access_token=` on socket URLs.
    pub access_token: String,
    /// Spend it once at `/api/sessions/refresh` for the next pair.
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    /// The account's id.
    pub account_id: uuid::Uuid,
    /// Its username.
    pub username: Username,
}

impl From<accounts::Tokens> for TokenPair {
    fn from(tokens: accounts::Tokens) -> Self {
        Self {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_in: tokens.expires_in,
            account_id: tokens.account_id,
            username: tokens.username,
        }
    }
}

/// `GET /api/me/rooms` 200.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MyRooms {
    /// Rooms the account created or joined, most recently visited first (at most 50).
    pub rooms: Vec<views::VisitedRoom>,
}

/// `PUT /api/rooms/{id}/rewatch`: `{rewatch}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRewatch {
    /// Whether others may rewatch the room's history.
    pub rewatch: bool,
}

/// `GET /api/rooms/{id}/rewatch` 200: the room's session as a timeline.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Rewatch {
    /// The room.
    pub room_id: RoomId,
    /// Its title now.
    pub title: String,
    /// Whether it is closed (an open room's timeline ends at its head, and grows).
    pub closed: bool,
    /// Activity and item changes from the first point the history can be replayed from.
    pub timeline: events::timeline::Timeline,
    /// The titles of the items the timeline's marks name that are still in the playlist.
    pub titles: std::collections::BTreeMap<events::ItemId, String>,
    /// Whether the credentials sent are the host's (or the creator account's): they may turn
    /// rewatching off (`PUT`).
    pub host: bool,
}
