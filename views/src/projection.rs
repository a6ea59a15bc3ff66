//! The fold a view is made of, and how it renders into the view's fields.

use events::{Commit, Event, RoomState};
use serde::{Deserialize, Serialize};

/// The binary format of a stored fold; a fold of another format is rebuilt from the log.
/// (3: the longer chat tail, which nothing read, is gone; 4: accounts and the owner.)
const FOLD_FORMAT: u16 = 4;

/// A room as the projectors fold it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projection {
    /// The room.
    pub state: RoomState,
    /// Stream sequence of the last commit folded in.
    pub seq: u64,
    /// Accounts whose members joined or came back in the commits folded since the last
    /// render: their "your rooms" lists move this room to the front.
    #[serde(skip)]
    pub visited: Vec<uuid::Uuid>,
}

/// A room in the lobby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobbyEntry {
    /// The room.
    pub room_id: String,
    /// Its title.
    pub title: String,
    /// Listed members.
    pub members: usize,
    /// Members online.
    pub online: usize,
    /// Title of the current item.
    pub now_playing: Option<String>,
    /// Thumbnail of the current item.
    pub thumb_url: Option<String>,
    /// Time of the last commit.
    pub updated_ms: u64,
    /// The room's version.
    pub version: u64,
}

/// The view fields of one room, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The fold, binary.
    pub fold: Vec<u8>,
    /// The pinned state JSON.
    pub view: String,
    /// The lobby entry, when the room is listed and open.
    pub lobby: Option<String>,
    /// The room as a list entry whatever its listing (its members' "your rooms").
    pub card: String,
    /// Accounts that visited the room in the commits rendered.
    pub visited: Vec<uuid::Uuid>,
}

impl Projection {
    /// Starts from a room state whose last commit is at stream sequence `seq` (a snapshot).
    pub fn from_state(state: RoomState, seq: u64) -> Self {
        Self { state, seq, visited: Vec::new() }
    }

    /// Folds one commit in.
    pub fn apply(&mut self, commit: &Commit, seq: u64) {
        self.state = std::mem::take(&mut self.state).apply(commit);
        self.seq = seq;
        for event in &commit.events {
            let (Event::AccountBound { member_id: member, .. }
            | Event::MemberReturned { member_id: member }) = event
            else {
                continue;
            };
            if let Some(account) = self.state.accounts.get(member)
                && !self.visited.contains(&account.account_id)
            {
                self.visited.push(account.account_id);
            }
        }
    }

    /// The room as an entry of a list: the lobby's fields, and whether it is closed.
    pub fn card(&self) -> serde_json::Value {
        let state = &self.state;
        let current = state.current_index().map(|i| &state.playlist[i].media);
        serde_json::json!({
            "room_id": state.room_id,
            "title": state.title,
            "closed": state.closed.is_some(),
            "listed": state.settings.listed,
            "members": state.members.len(),
            "online": if state.closed.is_some() { 0 } else { state.online_count() },
            "now_playing": current.map(|m| &m.title),
            "thumb_url": current.and_then(|m| m.thumb_url.as_ref()),
            "updated_ms": state.updated_ms,
        })
    }

    /// The lobby entry, if the room belongs in the lobby.
    pub fn lobby_entry(&self) -> Option<LobbyEntry> {
        let state = &self.state;
        let room_id = state.room_id.as_ref()?;
        if !state.settings.listed || state.closed.is_some() {
            return None;
        }
        let current = state.current_index().map(|i| &state.playlist[i].media);
        Some(LobbyEntry {
            room_id: room_id.to_string(),
            title: state.title.clone(),
            members: state.members.len(),
            online: state.online_count(),
            now_playing: current.map(|m| m.title.clone()),
            thumb_url: current.and_then(|m| m.thumb_url.clone()),
            updated_ms: state.updated_ms,
            version: state.version,
        })
    }

    /// Renders every field of the view.
    pub fn render(&self) -> Result<Rendered, crate::ViewError> {
        let json = |value: &dyn erased::Json| value.to_json();
        Ok(Rendered {
            fold: postcard::to_allocvec(&(FOLD_FORMAT, self))
                .map_err(|e| crate::ViewError::Encode(e.to_string()))?,
            view: json(&self.state.view())?,
            lobby: self.lobby_entry().map(|entry| json(&entry)).transpose()?,
            card: self.card().to_string(),
            visited: self.visited.clone(),
        })
    }

    /// Reads a stored fold; `None` if it is unreadable (another format, corrupt).
    pub fn decode(fold: &[u8]) -> Option<Projection> {
        match postcard::from_bytes::<(u16, Projection)>(fold) {
            Ok((FOLD_FORMAT, projection)) => Some(projection),
            _ => None,
        }
    }
}

mod erased {
    /// JSON of any serializable value, without generics in `render`.
    pub(super) trait Json {
        fn to_json(&self) -> Result<String, crate::ViewError>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<String, crate::ViewError> {
            serde_json::to_string(self).map_err(|e| crate::ViewError::Encode(e.to_string()))
        }
    }
}
