//! Repository rules checked as tests (rust-analyzer's `tidy`). Part of the fast tier: it needs
//! no server, only the sources and `cargo tree`.

// Test helpers panic on failure by design: that is how a test reports it.
#![allow(clippy::unwrap_used)]

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

fn read(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// The Rust files under `dir`, with their text up to any `#[cfg(test)]` (tests may build JSON).
fn sources(dir: &str) -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let mut out = Vec::new();
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "tests") {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_owned();
                out.push((path.display().to_string(), code));
            }
        }
    }
    out
}

/// ARCHITECTURE.md invariant 5: role crates never depend on each other; what two roles share is
/// its own small crate (`protocol`, `storage`, `tokens`, `presence`, `views`).
#[test]
fn roles_never_depend_on_each_other() {
    let roles = ["commands", "projectors", "content", "gateway", "replay"];
    for role in roles {
        // The HTTP error envelope has one table (`apierror`), shared by the gateway and /media.
        let code = sources(&format!("{role}/src"));
        for (path, code) in &code {
            let envelope = code.contains("{\"error\": {\"code\"");
            assert!(!envelope, "{path} writes the error envelope itself");
        }
        let manifest = read(&format!("{role}/Cargo.toml"));
        let dependencies = manifest.split("[dependencies]").nth(1).unwrap_or_default();
        let dependencies = dependencies.split("\n[").next().unwrap_or_default();
        // `replay rebuild` runs the projectors' own code path, on purpose (docs/views.md).
        let allowed = |other: &str| role == "replay" && other == "projectors";
        for other in roles.iter().filter(|other| **other != role && !allowed(other)) {
            let named = dependencies.lines().any(|line| {
                let line = line.trim_start();
                line.starts_with(&format!("{other}.")) || line.starts_with(&format!("{other} "))
            });
            assert!(!named, "{role} depends on {other}");
        }
    }
}

/// ARCHITECTURE.md invariant 2: clippy refuses every raw JetStream publish outside `eventlog`.
#[test]
fn clippy_bans_every_raw_jetstream_publish() {
    let clippy = read("clippy.toml");
    for method in ["publish", "publish_with_headers", "send_publish"] {
        let banned = format!("\"async_nats::jetstream::context::Context::{method}\"");
        assert!(clippy.contains(&banned), "clippy.toml does not ban {method}");
    }
    // (The benchmark's baseline publishes raw on purpose, to its own stream.)
    let crates = ["events", "protocol", "storage", "tokens", "presence", "commands", "views"];
    let more = ["projectors", "content", "gateway", "telemetry", "replay", "accounts", "dm", "src"];
    for dir in crates.iter().chain(more.iter()) {
        for (path, code) in sources(dir) {
            // Account events have their own stream and one writer: the username claim. Direct
            // messages have theirs: a message sent, a receipt appended (`dm`).
            let lifts = code.matches("disallowed_methods").count();
            let allowed = if path.ends_with("accounts/src/store.rs") {
                1
            } else if path.ends_with("dm/src/lib.rs") {
                2
            } else {
                0
            };
            assert_eq!(lifts, allowed, "{path} lifts the publish ban");
        }
    }
}

/// The roles talk through the `protocol` crate: no subject spelled out, no request or reply to
/// another role built as loose JSON (the gateway's HTTP bodies are its own wire shapes).
#[test]
fn roles_speak_through_the_protocol_crate() {
    let subjects =
        ["\"chanshare.cmd", "\"chanshare.rooms.", "\"chanshare.content.", "\"chanshare.deadletter"];
    for dir in ["commands/src", "projectors/src", "content/src", "gateway/src", "replay/src", "src"]
    {
        for (path, code) in sources(dir) {
            for subject in subjects {
                assert!(!code.contains(subject), "{path} spells the subject {subject}\"");
            }
            // The gateway's HTTP bodies, the client frames its socket tests send, and replay's
            // output lines are their own formats.
            let own_format = path.ends_with("gateway/src/api.rs")
                || path.contains("gateway/src/api/")
                || path.ends_with("gateway/src/socket/tests.rs")
                || path.contains("replay/src");
            assert!(own_format || !code.contains("json!("), "{path} builds JSON by hand");
            let indexes = code.contains("reply[\"");
            assert!(!indexes, "{path} indexes a reply's JSON");
        }
    }
}
