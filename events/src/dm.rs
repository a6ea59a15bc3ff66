//! Direct messages between accounts (DESIGN §4b): a conversation, its events, and the rules of
//! its receipts.
//!
//! A conversation is the pair of usernames, in order (`a < b`). Its events live in three
//! subjects of the DM stream: the messages (`…m`), and the receipts of each side (`…ra`, `…rb`).
//! A message's `seq` is its stream sequence: per conversation it only grows. A receipt says how
//! far its reader has been delivered and has read (cumulative), and which messages it moved on,
//! so a sender's socket forwards statuses without folding anything, and the last receipt of a
//! side is that side's whole state. Receipts are appended expecting the side's last receipt,
//! so two devices reporting at once store one transition, never two.

use serde::{Deserialize, Serialize};

use crate::account::Username;

/// The longest message, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// The most messages one receipt moves on (a receipt is one stream message, at most 16 KiB): a
/// report that covers more is decided in several receipts.
pub const MAX_RECEIPT_IDS: usize = 256;

/// Why a direct message or receipt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DmRejection {
    /// Malformed or out of bounds (the message says how).
    #[error("{0}")]
    Invalid(&'static str),
    /// The receiver has blocked the sender.
    #[error("this user does not accept your messages")]
    Blocked,
    /// No account has that username.
    #[error("no account has that username")]
    UnknownUser,
}

/// The two accounts of a conversation, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conversation {
    a: Username,
    b: Username,
}

/// One side of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The first username.
    A,
    /// The second.
    B,
}

impl Conversation {
    /// The conversation of `one` and `other` (in either order); nobody talks to themselves.
    pub fn new(one: &Username, other: &Username) -> Result<Self, DmRejection> {
        match one.cmp(other) {
            std::cmp::Ordering::Less => Ok(Self { a: one.clone(), b: other.clone() }),
            std::cmp::Ordering::Greater => Ok(Self { a: other.clone(), b: one.clone() }),
            std::cmp::Ordering::Equal => Err(DmRejection::Invalid("you cannot message yourself")),
        }
    }

    /// The first username.
    pub fn a(&self) -> &Username {
        &self.a
    }

    /// The second username.
    pub fn b(&self) -> &Username {
        &self.b
    }

    /// `me`'s side, if `me` is in it.
    pub fn side(&self, me: &Username) -> Option<Side> {
        if *me == self.a {
            Some(Side::A)
        } else if *me == self.b {
            Some(Side::B)
        } else {
            None
        }
    }

    /// The other account, seen from `me` (`None` when `me` is not in it).
    pub fn partner(&self, me: &Username) -> Option<&Username> {
        match self.side(me)? {
            Side::A => Some(&self.b),
            Side::B => Some(&self.a),
        }
    }

    /// The messages' subject token and each side's receipts' (`m`, `ra`, `rb`).
    pub fn kind_token(kind: Kind) -> &'static str {
        match kind {
            Kind::Messages => "m",
            Kind::Receipts(Side::A) => "ra",
            Kind::Receipts(Side::B) => "rb",
        }
    }

    /// Parses the three last tokens of a DM subject (`a`, `b`, kind).
    pub fn parse(a: &str, b: &str, kind: &str) -> Option<(Self, Kind)> {
        let (a, b) = (Username::parse(a).ok()?, Username::parse(b).ok()?);
        if a >= b {
            return None;
        }
        let kind = match kind {
            "m" => Kind::Messages,
            "ra" => Kind::Receipts(Side::A),
            "rb" => Kind::Receipts(Side::B),
            _ => return None,
        };
        Some((Self { a, b }, kind))
    }
}

/// Which of a conversation's subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Its messages.
    Messages,
    /// One side's receipts.
    Receipts(Side),
}

/// How far a message has come, in order: a status never goes back.
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
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored (replicated) in JetStream.
    Sent,
    /// Written to at least one of the receiver's sockets.
    Delivered,
    /// Shown to the receiver.
    Read,
}

/// What happened in a conversation. Stored as JSON, one event per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DmEvent {
    /// A message was sent (stored on the messages subject).
    Message {
        /// The sender's client-made id (a UUID): the same id twice is one message.
        id: uuid::Uuid,
        /// The sender.
        from: Username,
        /// The receiver.
        to: Username,
        /// The text, as typed.
        text: String,
        /// Server time of sending.
        at_ms: u64,
    },
    /// A side's receipts moved on (stored on that side's receipts subject).
    Receipt {
        /// The reader.
        by: Username,
        /// The status reached by `ids`: `delivered` or `read`.
        status: Status,
        /// The messages to the reader whose status this moved on, in order.
        ids: Vec<uuid::Uuid>,
        /// After this receipt: every message to the reader up to this seq was delivered.
        delivered: u64,
        /// After this receipt: every message to the reader up to this seq was read.
        read: u64,
        /// Server time.
        at_ms: u64,
    },
}

/// Checks a message's text: not blank, at most [`MAX_TEXT_CHARS`].
pub fn check_text(text: &str) -> Result<(), DmRejection> {
    if text.trim().is_empty() {
        return Err(DmRejection::Invalid("a message needs some text"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(DmRejection::Invalid("a message is at most 2000 characters"));
    }
    Ok(())
}

/// A side's receipts so far: the fold of its last receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Receipts {
    /// Messages to this side up to this seq were delivered.
    pub delivered: u64,
    /// Messages to this side up to this seq were read.
    pub read: u64,
}

impl Receipts {
    /// The receipts a stored receipt event leaves (other events leave them as they are).
    pub fn after(self, event: &DmEvent) -> Self {
        match event {
            DmEvent::Receipt { delivered, read, .. } => {
                Self { delivered: self.delivered.max(*delivered), read: self.read.max(*read) }
            }
            DmEvent::Message { .. } => self,
        }
    }
}

/// Decides a receipt: `by` reports `status` up to `up_to`, given its receipts so far and the
/// messages *to* it after the earlier of its two marks (`(seq, id)`, in order). Returns the
/// receipt events to append, in order (a read of something never delivered is delivered first),
/// or none when nothing moves on: each transition is decided once, statuses never go back. At
/// most [`MAX_RECEIPT_IDS`] messages move on: the caller decides again for the rest.
pub fn decide_receipt(
    by: &Username,
    receipts: Receipts,
    status: Status,
    up_to: u64,
    to_reader: &[(u64, uuid::Uuid)],
    now_ms: u64,
) -> Vec<DmEvent> {
    let mut events = Vec::new();
    let mut now = receipts;
    let from = receipts.delivered.min(receipts.read);
    let up_to = to_reader
        .iter()
        .filter(|(seq, _)| *seq > from && *seq <= up_to)
        .nth(MAX_RECEIPT_IDS - 1)
        .map_or(up_to, |(seq, _)| *seq);
    let moved = |from: u64| -> Vec<uuid::Uuid> {
        to_reader
            .iter()
            .filter(|(seq, _)| *seq > from && *seq <= up_to)
            .map(|(_, id)| *id)
            .collect()
    };
    if status >= Status::Delivered && up_to > now.delivered {
        let ids = moved(now.delivered);
        now.delivered = up_to;
        if !ids.is_empty() {
            events.push(DmEvent::Receipt {
                by: by.clone(),
                status: Status::Delivered,
                ids,
                delivered: now.delivered,
                read: now.read,
                at_ms: now_ms,
            });
        }
    }
    if status == Status::Read && up_to > now.read {
        let ids = moved(now.read);
        now.read = up_to;
        if !ids.is_empty() {
            events.push(DmEvent::Receipt {
                by: by.clone(),
                status: Status::Read,
                ids,
                delivered: now.delivered,
                read: now.read,
                at_ms: now_ms,
            });
        }
    }
    events
}
