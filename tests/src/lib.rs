//! Test support: real servers on free loopback ports, each with its own data directory,
//! killed and removed on drop (modelled on nats.rs' `nats-server` test crate).
//!
//! The binaries come from `PATH` or from the cache `./dev/test` installs into
//! (`$CHANSHARE_CACHE/bin`, by default `~/.cache/chanshare/bin`). A missing binary panics with
//! the command that installs it.

mod process;

pub mod chan;
pub mod chanshare;
pub mod cluster;
pub mod http;
pub mod nats;
pub mod prometheus;
pub mod redis;
pub mod s3;

pub use chan::{ChanFixture, Fault};
pub use chanshare::Chanshare;
pub use cluster::DevCluster;
pub use nats::{NatsCluster, NatsServer};
pub use redis::RedisServer;
pub use s3::S3Server;

/// Polls `check` every 50 ms until it holds; panics naming `what` after `limit`.
pub async fn eventually<F: Future<Output = bool>>(
    limit: std::time::Duration,
    what: &str,
    check: impl Fn() -> F,
) {
    let deadline = std::time::Instant::now() + limit;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
