//! The nouns of a room: its source, settings, playlist items, members and chat messages.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{ItemId, MemberId, MessageId};

/// Where a room's playlist comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// A 4chan thread: its media posts become the playlist, and new ones are added as it grows.
    Chan {
        /// The board, e.g. `wsg`.
        board: String,
        /// The thread number (the opening post's `no`).
        #[schemars(range(min = 1))]
        thread: u64,
    },
    /// A list of media URLs, played by the browsers directly.
    Urls(#[schemars(length(min = 1))] Vec<String>),
}

/// Who may change playback and the playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Every member.
    #[default]
    Everyone,
    /// Only the host.
    Host,
}

/// Room settings the host can change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Settings {
    /// Who may control playback and the playlist.
    pub control: Control,
    /// Whether the room is shown in the public lobby.
    pub listed: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { control: Control::Everyone, listed: true }
    }
}

/// What a playlist item is played with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A `<video>`: webm, mp4.
    Video,
    /// An image (gif, jpg, png), shown for a while and then advanced.
    Image,
}

/// What a playlist item plays: everything about it but its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Media {
    /// Display title, e.g. the original filename with its extension.
    pub title: String,
    /// Where browsers load the media from (our `/media/...` for chan items).
    pub url: String,
    /// A thumbnail image URL.
    pub thumb_url: Option<String>,
    /// Video or image.
    pub kind: ItemKind,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// Width in pixels, when known.
    pub width: Option<u32>,
    /// Height in pixels, when known.
    pub height: Option<u32>,
    /// The post the media came from on boards.4chan.org (the API terms require crediting 4chan).
    pub post_url: Option<String>,
    /// Base64 MD5 of the media, as the 4chan API reports it.
    pub md5: Option<String>,
    /// A key unique to the media within its source (`{board}/{tim}` for chan items): a thread
    /// refresh adds only items whose key is not in the playlist yet.
    pub source_key: Option<String>,
}

impl Media {
    /// Bytes of text the item carries (what the playlist's byte budget counts).
    pub fn text_bytes(&self) -> usize {
        let opt = |o: &Option<String>| o.as_ref().map_or(0, String::len);
        self.title.len()
            + self.url.len()
            + opt(&self.thumb_url)
            + opt(&self.post_url)
            + opt(&self.md5)
            + opt(&self.source_key)
    }
}

/// A playlist item.
///
/// In JSON its fields are flat (`{"item_id", "title", "url", …}`, the pinned shape); in the
/// binary codec, which cannot flatten, it is the pair (id, media).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Stable for the life of the room.
    pub item_id: ItemId,
    /// What it plays.
    pub media: Media,
}

/// A playlist item: its id and what it plays.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Item")]
struct FlatRef<'a> {
    item_id: &'a ItemId,
    #[serde(flatten)]
    media: &'a Media,
}

#[derive(Deserialize)]
struct Flat {
    item_id: ItemId,
    #[serde(flatten)]
    media: Media,
}

impl Serialize for Item {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            FlatRef { item_id: &self.item_id, media: &self.media }.serialize(serializer)
        } else {
            (&self.item_id, &self.media).serialize(serializer)
        }
    }
}

/// The flat JSON shape.
impl JsonSchema for Item {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Item".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        FlatRef::json_schema(generator)
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let Flat { item_id, media } = Flat::deserialize(deserializer)?;
            Ok(Item { item_id, media })
        } else {
            let (item_id, media) = <(ItemId, Media)>::deserialize(deserializer)?;
            Ok(Item { item_id, media })
        }
    }
}

/// A member of the room, in the order they (re)joined: the longest-present online member
/// comes first, which is who becomes host when the host leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Member {
    /// Stable across reconnects (carried in the member's token).
    pub member_id: MemberId,
    /// Nickname.
    pub name: String,
    /// Whether the member has a live connection (false once the presence reaper timed them out).
    pub online: bool,
}

/// A signed-in member's account, as the gateway verified it from an access token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct AccountRef {
    /// The account's id.
    pub account_id: uuid::Uuid,
    /// Its username (lowercase; usernames never change hands).
    pub username: crate::account::Username,
}

/// A chat message. In a room's history (`/events`), a message deleted since has its `text`
/// emptied and `"deleted": true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = deleted_in_history)]
pub struct ChatMessage {
    /// Stable for the life of the room.
    pub id: MessageId,
    /// The author.
    pub member_id: MemberId,
    /// The text, as typed (clients escape it when rendering).
    pub text: String,
    /// Server time of posting.
    pub at_ms: u64,
}

/// The schema of a chat message also names the `deleted` mark of the history's redacted ones
/// (`crate::json::redact_event`).
fn deleted_in_history(schema: &mut schemars::Schema) {
    if let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        properties.insert(
            "deleted".into(),
            serde_json::json!({
                "description": "In a room's history only: the message was deleted since (its text is empty).",
                "type": "boolean",
                "const": true,
            }),
        );
    }
}
