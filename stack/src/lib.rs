//! Any set of Chanshare's roles in one process, from settings to a running server.
//!
//! The `chanshare` binary only parses its command line and calls this crate (mini-redis's thin
//! binaries over a library); tests and tools can start the same stack in-process.
//!
//! # Layout
//! - [`config`]: every `CHANSHARE_*` setting, as clap arguments (one place).
//! - [`roles`]: connecting a role to NATS, the room log, Redis and the signing key.
//! - [`serve`]: running the chosen roles behind one HTTP listener, with `/healthz`, `/readyz`
//!   and `/metrics`, until shutdown.
//! - [`logging`]: the log subscriber (text or JSON, OpenTelemetry export).
//! - [`replay`]: `chanshare replay …`, read-only over the log.
//!
//! This crate is the process's edge: its errors are `anyhow` with context, like a binary's.

pub mod config;
pub mod http;
pub mod logging;
pub mod replay;
pub mod roles;
pub mod serve;

pub use config::{CommandsConfig, Config, GatewayConfig};
pub use serve::{Roles, run, run_on};

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for sigterm");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
