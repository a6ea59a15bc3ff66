//! The fold a view is made of, and how it renders into the view's fields.

use events::{Commit, Event, RoomState};
use serde::{Deserialize, Serialize};

/// The binary format of a stored fold; a fold of another format is rebuilt from the log.
/// (3: the longer chat tail, which nothing read, is gone; 4: accounts and the owner; 5: the
/// rewatch setting.)
const FOLD_FORMAT: u16 = 5;

/// A room as the projectors fold it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projection {
    /// The room.
    pub state: RoomState,
    /// Stream sequence of the last commit folded in.
    pub seq: u64,
    /// Accounts whose members joined or came back in the commits folded since the fold was
    /// loaded, each with the time of its latest visit: their "your rooms" lists put the room
    /// at that time. (The visit's own time, not the room's last commit: a rebuild that folds a
    /// room's whole log at once orders "your rooms" as the commit-by-commit projection did.)
    #[serde(skip)]
    pub visited: Vec<(uuid::Uuid, u64)>,
}

/// A room in the lobby. (Read back leniently: a field added later is defaulted in entries and
/// cards written before it.)
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
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

/// A room as an entry of an account's "your rooms": the lobby's fields, whether it is closed,
/// and whether it is listed (an account lists its unlisted and closed rooms too).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct Card {
    /// The lobby's fields.
    #[serde(flatten)]
    pub entry: LobbyEntry,
    /// Whether the room is closed.
    pub closed: bool,
    /// Whether it is listed in the lobby.
    pub listed: bool,
}

/// An entry of an account's "your rooms": when the account last visited the room, and the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisitedRoom {
    /// When the account's member last joined or came back (ms since the Unix epoch).
    pub visited_ms: u64,
    /// The room.
    #[serde(flatten)]
    pub room: Visited,
}

/// Described as either of two whole objects, each with `visited_ms` (a `flatten` of an
/// untagged enum would read, in client generators, as a union of the parts).
impl schemars::JsonSchema for VisitedRoom {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "VisitedRoom".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let visited = serde_json::json!({
            "description": "When the account's member last joined or came back (ms since the Unix epoch).",
            "type": "integer",
            "minimum": 0,
        });
        let mut card = Card::json_schema(generator);
        let mut gone = schemars::json_schema!({
            "description": "A closed room whose view has left: only its id.",
            "type": "object",
            "required": ["room_id", "closed"],
            "properties": {
                "room_id": {"type": "string"},
                "closed": {"type": "boolean", "const": true},
            },
        });
        for schema in [&mut card, &mut gone] {
            if let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
                properties.insert("visited_ms".into(), visited.clone());
            }
            if let Some(required) = schema.get_mut("required").and_then(|r| r.as_array_mut()) {
                required.push("visited_ms".into());
            }
        }
        schemars::json_schema!({
            "description": "A room the account created or joined.",
            "anyOf": [card, gone],
        })
    }
}

/// A visited room: its card while its view is kept, else only its id (a closed room's view
/// leaves after a while).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Visited {
    /// The room's card.
    Card(Card),
    /// A closed room whose view has left.
    Gone {
        /// The room.
        room_id: String,
        /// Always true.
        closed: bool,
    },
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
    pub card: Option<String>,
    /// The room's entry among the recently closed rooms, when it is one (listed, closed, its
    /// history rewatchable).
    pub closed: Option<String>,
    /// Accounts that visited the room in the commits rendered, with the time of the visit.
    pub visited: Vec<(uuid::Uuid, u64)>,
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
            let Some(account) = self.state.accounts.get(member) else { continue };
            self.visited.retain(|(id, _)| *id != account.account_id);
            self.visited.push((account.account_id, commit.at_ms));
        }
    }

    /// The room's entry in a list, whatever its listing (an account's "your rooms").
    pub fn card(&self) -> Option<Card> {
        let settings = &self.state.settings;
        let closed = self.state.closed.is_some();
        self.entry().map(|entry| Card { entry, closed, listed: settings.listed })
    }

    /// The lobby entry, if the room belongs in the lobby (listed and open).
    pub fn lobby_entry(&self) -> Option<LobbyEntry> {
        let state = &self.state;
        if !state.settings.listed || state.closed.is_some() {
            return None;
        }
        self.entry()
    }

    /// The room's entry among the recently closed ones (listed, closed, rewatchable).
    pub fn closed_entry(&self) -> Option<LobbyEntry> {
        let state = &self.state;
        if !state.settings.listed || state.closed.is_none() || state.rewatch_off {
            return None;
        }
        // "Ended": when it closed, not when its host last changed something in it.
        let ended = if state.closed_ms > 0 { state.closed_ms } else { state.updated_ms };
        self.entry().map(|entry| LobbyEntry { updated_ms: ended, ..entry })
    }

    /// The room as a list shows it (nobody is online in a closed room).
    fn entry(&self) -> Option<LobbyEntry> {
        let state = &self.state;
        let room_id = state.room_id.as_ref()?;
        let current = state.current_index().map(|i| &state.playlist[i].media);
        Some(LobbyEntry {
            room_id: room_id.to_string(),
            title: state.title.clone(),
            members: state.members.len(),
            online: state.shown_online(),
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
            card: self.card().map(|card| json(&card)).transpose()?,
            closed: self.closed_entry().map(|entry| json(&entry)).transpose()?,
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

#[cfg(test)]
mod tests {
    use events::{AccountRef, Actor, Command, CommandId, Ctx, LeaveReason, MemberId, RoomId};

    use super::*;

    /// Commits of a room: `(at_ms, member, command)` each, decided in order.
    fn commits(steps: Vec<(u64, &str, Command)>) -> Vec<Commit> {
        let room = RoomId::new("visited-room").unwrap();
        let mut state = RoomState::default();
        let mut out = Vec::new();
        for (n, (at_ms, member, command)) in steps.into_iter().enumerate() {
            let actor = Actor::Member(MemberId::new(member).unwrap());
            let ctx = Ctx::new(room.clone(), actor.clone(), at_ms);
            let events = events::decide(&state, command, &ctx).unwrap();
            let commit = Commit {
                room: room.clone(),
                version: state.version + 1,
                command_id: CommandId(uuid::Uuid::from_u128(n as u128 + 1)),
                actor,
                at_ms,
                events,
            };
            state = std::mem::take(&mut state).apply(&commit);
            out.push(commit);
        }
        out
    }

    /// A card stored before a field was added still reads as the room it is (it read as a
    /// closed room when `version` came: "your rooms" showed open rooms as closed).
    #[test]
    fn a_card_from_before_a_field_reads_as_the_room() {
        let stored = r#"{"room_id":"old-room","title":"from before","members":2,"online":1,
            "now_playing":null,"thumb_url":null,"updated_ms":5,"closed":false,"listed":true}"#;
        let card: Card = serde_json::from_str(stored).unwrap();
        assert_eq!(
            (card.entry.room_id.as_str(), card.entry.version, card.closed),
            ("old-room", 0, false)
        );
    }

    /// A rebuild folds a room's whole log into one projection and writes it once: each account's
    /// visit keeps the time of its own latest join or return, as the commit-by-commit projection
    /// wrote it, not the time of the room's last commit.
    #[test]
    fn visits_carry_their_own_time_whatever_is_folded_after_them() {
        let bob = AccountRef {
            account_id: uuid::Uuid::from_u128(7),
            username: events::Username::parse("bob").unwrap(),
        };
        let join = |account: Option<AccountRef>| Command::Join {
            name: String::new(),
            address: None,
            account,
        };
        let create = Command::CreateRoom {
            title: "visits".into(),
            source: events::Source::Urls(vec!["https://example.com/a.webm".into()]),
            settings: events::Settings::default(),
            name: "host".into(),
            items: vec![],
            account: None,
        };
        let log = commits(vec![
            (1_000, "mhost", create),
            (2_000, "mbob", join(Some(bob.clone()))),
            (3_000, "mbob", Command::Leave { reason: LeaveReason::Disconnected }),
            (4_000, "mbob", join(Some(bob.clone()))),
            (9_000, "mhost", Command::Chat { text: "later".into() }),
        ]);
        let mut whole = Projection::default();
        for (seq, commit) in log.iter().enumerate() {
            whole.apply(commit, seq as u64 + 1);
        }
        assert_eq!(whole.visited, [(bob.account_id, 4_000)], "the return, not the chat");
        let rendered = whole.render().unwrap();
        assert_eq!(rendered.visited, whole.visited);
        let card: serde_json::Value = serde_json::from_str(&rendered.card.unwrap()).unwrap();
        assert_eq!(
            (&card["closed"], &card["listed"], &card["online"]),
            (&false.into(), &true.into(), &2.into())
        );
        // One commit at a time (a fold loaded fresh each time), the visits are the same.
        let mut visits = Vec::new();
        for (seq, commit) in log.iter().enumerate() {
            let before = log[..seq].iter().fold(RoomState::default(), |s, c| s.apply(c));
            let mut one = Projection::from_state(before, seq as u64);
            one.apply(commit, seq as u64 + 1);
            visits.extend(one.visited);
        }
        assert_eq!(visits, [(bob.account_id, 2_000), (bob.account_id, 4_000)]);
    }
}
