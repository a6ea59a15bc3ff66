//! The one integration-test binary (matklad, "Delete Cargo Integration Tests"): every test
//! against real servers lives in a module here.

// Test helpers panic on failure by design: that is how a test reports it.
#![allow(clippy::unwrap_used)]

mod accounts;
mod attack;
mod bench;
mod browser;
mod cluster;
mod commands;
mod content;
mod dev;
mod dms;
mod documents;
mod eventlog;
mod failover;
mod gateway;
mod harness;
mod image;
mod infra;
mod limits;
mod observability;
mod projectors;
mod replay;
mod retention;
mod rewatch;
mod serve;
mod workload;
mod ws;
