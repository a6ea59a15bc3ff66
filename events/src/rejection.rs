//! Domain rejections: why a command was refused. Never a technical failure.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The pinned reject codes (DESIGN §5). `rate_limited` and `unavailable` are produced outside
/// the domain (gateway, commands service) but belong to the same vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The command is malformed or out of bounds.
    Invalid,
    /// The actor may not do this.
    Forbidden,
    /// The room, item, member or message does not exist.
    NotFound,
    /// The room is closed.
    Closed,
    /// Too many commands.
    RateLimited,
    /// The room moved on (a guarded `next`), or concurrent writers kept winning.
    Conflict,
    /// A dependency is down; try again.
    Unavailable,
}

impl RejectCode {
    /// The code as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Closed => "closed",
            Self::RateLimited => "rate_limited",
            Self::Conflict => "conflict",
            Self::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused command: a code callers can match on and a lowercase message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    /// What kind of refusal.
    pub code: RejectCode,
    /// Why, in words.
    pub message: String,
}

impl Rejection {
    /// A rejection with `code` and `message`.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(RejectCode::Invalid, message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(RejectCode::Forbidden, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(RejectCode::NotFound, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(RejectCode::Conflict, message)
    }
}
