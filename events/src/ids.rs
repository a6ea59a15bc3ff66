//! Identifiers: validated newtypes, so a value of one of these types is always well formed.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct IdError {
    kind: &'static str,
    reason: &'static str,
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $min:literal, $max:literal, $allowed:expr, $allowed_text:literal, $pattern:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                let allowed: fn(u8) -> bool = $allowed;
                if value.len() < $min || value.len() > $max {
                    return Err(IdError { kind: $kind, reason: concat!("length must be ", $min, " to ", $max) });
                }
                if !value.bytes().all(allowed) {
                    return Err(IdError { kind: $kind, reason: concat!("only ", $allowed_text, " are allowed") });
                }
                Ok(Self(value))
            }

            /// Returns the id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "pattern": $pattern})
            }
        }
    };
}

fn lower_digit_dash(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

fn lower_digit(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

string_id!(
    /// A room: `[a-z0-9-]{3,48}`. It is also the last token of the room's NATS subjects.
    RoomId, "room id", 3, 48, lower_digit_dash, "a-z, 0-9 and -", "^[a-z0-9-]{3,48}$"
);
string_id!(
    /// A member of a room: `[a-z0-9]{1,32}`, issued by the server and carried in signed tokens.
    MemberId, "member id", 1, 32, lower_digit, "a-z and 0-9", "^[a-z0-9]{1,32}$"
);
string_id!(
    /// A playlist item, stable for the life of the room: `i1`, `i2`, … assigned in order.
    ItemId, "item id", 1, 32, lower_digit, "a-z and 0-9", "^[a-z0-9]{1,32}$"
);
string_id!(
    /// A chat message, stable for the life of the room: `c1`, `c2`, … assigned in order.
    MessageId, "message id", 1, 32, lower_digit, "a-z and 0-9", "^[a-z0-9]{1,32}$"
);

const ADJECTIVES: [&str; 32] = [
    "amber", "brave", "calm", "dizzy", "eager", "fancy", "gentle", "happy", "icy", "jolly", "kind",
    "lively", "mellow", "noble", "odd", "plucky", "quiet", "rapid", "shy", "tidy", "upbeat",
    "vivid", "witty", "young", "zesty", "bold", "cosmic", "dusty", "fuzzy", "golden", "lucky",
    "sunny",
];
const COLOURS: [&str; 16] = [
    "red", "blue", "green", "teal", "violet", "coral", "ivory", "olive", "plum", "rose", "ruby",
    "sage", "slate", "tan", "navy", "mint",
];
const NOUNS: [&str; 32] = [
    "otter", "badger", "comet", "dune", "ember", "falcon", "glade", "harbor", "island", "jaguar",
    "koala", "lantern", "meadow", "nebula", "orchid", "panda", "quartz", "river", "salmon",
    "tiger", "urchin", "valley", "walrus", "yak", "zebra", "beacon", "canyon", "dolphin", "fjord",
    "gecko", "heron", "lynx",
];
const SUFFIX_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

impl RoomId {
    /// Makes a readable room id such as `brave-teal-otter-x7k2m9qp3ab` from caller-supplied
    /// entropy: three words and an eleven-character suffix, [`ROOM_ID_BITS`] bits in all, so a room
    /// id cannot be guessed (rooms are found by their link, not listed when unlisted). The domain
    /// stays free of I/O, so the caller supplies the randomness and retries on a collision.
    pub fn readable(entropy: u128) -> Self {
        let mut bits = entropy;
        let mut take = |n: usize| {
            let value = bits % n as u128;
            bits /= n as u128;
            value as usize
        };
        let adjective = ADJECTIVES[take(ADJECTIVES.len())];
        let colour = COLOURS[take(COLOURS.len())];
        let noun = NOUNS[take(NOUNS.len())];
        let suffix: String = (0..ROOM_ID_SUFFIX)
            .map(|_| char::from(SUFFIX_ALPHABET[take(SUFFIX_ALPHABET.len())]))
            .collect();
        Self(format!("{adjective}-{colour}-{noun}-{suffix}"))
    }
}

/// Characters of a readable room id's random suffix.
const ROOM_ID_SUFFIX: u32 = 11;

/// Bits of randomness in a readable room id: the three word lists' and the suffix's.
pub const ROOM_ID_BITS: u32 = ADJECTIVES.len().ilog2()
    + COLOURS.len().ilog2()
    + NOUNS.len().ilog2()
    + ROOM_ID_SUFFIX * SUFFIX_ALPHABET.len().ilog2();
const _: () = assert!(ROOM_ID_BITS >= 64, "a room id must carry at least 64 random bits");

impl MemberId {
    /// Makes a member id (`m` and twelve base-32 characters) from caller-supplied entropy.
    pub fn generate(entropy: u64) -> Self {
        let mut bits = entropy;
        let mut id = String::with_capacity(13);
        id.push('m');
        for _ in 0..12 {
            id.push(char::from(SUFFIX_ALPHABET[(bits % 32) as usize]));
            bits /= 32;
        }
        Self(id)
    }
}

impl ItemId {
    /// The id of the `n`th item ever added to a room (1-based).
    pub fn nth(n: u64) -> Self {
        Self(format!("i{n}"))
    }
}

impl MessageId {
    /// The id of the `n`th chat message ever posted in a room (1-based).
    pub fn nth(n: u64) -> Self {
        Self(format!("c{n}"))
    }
}

/// A client-made command id (a UUID). The same id twice has one effect.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct CommandId(pub Uuid);

impl CommandId {
    /// A deterministic command id for server-issued commands (the presence reaper, the thread
    /// watcher), so that two replicas issuing "the same" command produce one effect. `namespace`
    /// must be secret (derived from the deployment's key): a member who could compute the id
    /// could send a command with it first, and the server's command would pass for its retry.
    pub fn derived(namespace: Uuid, name: &str) -> Self {
        Self(Uuid::new_v5(&namespace, name.as_bytes()))
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for CommandId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, uuid::Error> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Who issued a command: a member of the room, or the server itself (reaper, watcher, idle close).
///
/// Serialized as a plain string: the member id, or `@system`, which no member id can be.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Actor {
    /// A member, identified by the gateway from a verified token.
    Member(MemberId),
    /// The server.
    System,
}

const SYSTEM: &str = "@system";

impl TryFrom<String> for Actor {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        if value == SYSTEM { Ok(Self::System) } else { MemberId::new(value).map(Self::Member) }
    }
}

impl From<Actor> for String {
    fn from(actor: Actor) -> String {
        match actor {
            Actor::Member(id) => id.0,
            Actor::System => SYSTEM.to_owned(),
        }
    }
}

impl schemars::JsonSchema for Actor {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Actor".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "a member id, or `@system` for the server",
            "type": "string",
            "pattern": "^([a-z0-9]{1,32}|@system)$",
        })
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Member(id) => id.fmt(f),
            Self::System => f.write_str(SYSTEM),
        }
    }
}
