//! Repository rules checked as tests (rust-analyzer's `tidy`).

use std::collections::BTreeSet;
use std::process::Command;

/// ARCHITECTURE.md invariant 1: `events` does no I/O and has no async dependency.
/// `cargo tree -p events` resolves features for `events` alone on this host, which is what
/// the crate itself pulls in (workspace-wide metadata would mix in other crates' features).
#[test]
fn events_has_no_async_or_io_dependency() {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "-p", "events", "-e", "normal", "--prefix", "none", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let deps: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let forbidden = [
        "tokio",
        "async-nats",
        "redis",
        "axum",
        "hyper",
        "reqwest",
        "object_store",
        "mio",
        "futures-core",
        "async-trait",
        "getrandom",
        "socket2",
        "rand",
    ];
    let found: Vec<_> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
    assert!(found.is_empty(), "events depends on {found:?} (all: {deps:?})");
    assert!(deps.contains("postcard") && deps.contains("serde"), "the tree was read: {deps:?}");
}
