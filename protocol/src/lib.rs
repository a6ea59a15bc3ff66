//! The messages Chanshare's roles send each other over NATS, in one place.
//!
//! Roles never depend on each other (ARCHITECTURE.md, invariant 5): what one asks and another
//! answers is declared here, once, with its subject. Every message is JSON; its form is pinned by
//! golden tests (`src/tests/golden.rs`) because replicas of different versions talk during a
//! rolling upgrade. Callers use [`Client`], which sends a typed request and returns the typed
//! reply or a [`RequestError`] they can match on.
//!
//! The log's own subjects (`chanshare.room.*`, `chanshare.live.*`, snapshots) belong to
//! `eventlog`; the browser-facing HTTP and WebSocket shapes to `gateway`.
//!
//! # Layout
//! - [`subjects`]: every subject name.
//! - [`command`]: a command for a room, and its outcome (gateway, content, commands' reaper →
//!   commands).
//! - [`create`]: room creation (gateway → commands).
//! - [`content`]: thread resolution and watch registration (commands → content).
//! - [`deadletter`]: a commit the projectors could not apply.
//! - [`client`]: the typed request/reply client.

pub mod client;
pub mod command;
pub mod content;
pub mod create;
pub mod deadletter;
pub mod subjects;

pub use client::{Client, RequestError};
pub use command::{CommandReply, CommandRequest};
pub use content::{ResolveReply, ResolveRequest, WatchReply, WatchRequest};
pub use create::{CreateReply, CreateRequest};
pub use deadletter::DeadLetter;

#[cfg(test)]
mod tests;
