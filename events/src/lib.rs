//! The pure room domain of Chanshare.
//!
//! A room is event-sourced: commands are [`decide`]d against the current [`RoomState`] into
//! [`Event`]s, which are stored as one [`Commit`] per command and folded back with [`evolve`].
//!
//! This crate does no I/O and has no async dependency (ARCHITECTURE.md, invariant 1): time and
//! randomness come in as arguments, so every rule is a plain function, testable as a table.
//!
//! # Layout
//! - [`ids`]: validated identifiers (`RoomId`, `MemberId`, `ItemId`, `CommandId`, `Actor`).
//! - [`model`]: sources, settings, items, members, chat messages.
//! - [`command`] and [`event`]: what is asked and what happened.
//! - [`decide`](mod@decide): the rules; [`state`]: `RoomState` and `evolve`.
//! - [`playback`]: the derived playback clock.
//! - [`commit`], [`codec`]: the unit of storage and its versioned binary form.
//! - [`json`], [`view`]: the pinned JSON forms.
//! - [`timeline`]: a session's activity over time, what a rewatch draws.
//! - [`account`], [`dm`]: accounts and their direct messages.

pub mod account;
pub mod codec;
pub mod command;
pub mod commit;
pub mod decide;
pub mod dm;
pub mod event;
pub mod ids;
pub mod json;
pub mod model;
pub mod playback;
pub mod rejection;
pub mod state;
pub mod timeline;
pub mod view;

pub use account::{AccountEvent, AccountRejection, Username};
pub use command::{Command, LeaveReason};
pub use commit::Commit;
pub use decide::{Ctx, Limits, decide};
pub use event::{CloseReason, Event, PlaybackCause, RemovalReason};
pub use ids::{Actor, CommandId, IdError, ItemId, MemberId, MessageId, RoomId};
pub use model::{
    AccountRef, ChatMessage, Control, Item, ItemKind, Media, Member, Settings, Source,
};
pub use playback::{Playback, Rate};
pub use rejection::{RejectCode, Rejection};
pub use state::{DEFAULT_IMAGE_SECONDS, PlayMode, RoomState, evolve};

#[cfg(test)]
mod tests;
