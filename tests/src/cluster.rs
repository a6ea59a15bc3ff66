//! `./dev/cluster`: the production topology on one machine (3 clustered nats-servers with the
//! production accounts, Redis, s3s-fs, 2 of each role), started by the real script on a free
//! block of ports, in its own data directory, and stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::chanshare::binary;
use crate::nats::{USERS, password};

/// Base ports the script adds its offset to (see the header of `dev/cluster`).
const PORTS: [u16; 15] =
    [4222, 4223, 4224, 6222, 6223, 6224, 8222, 8223, 8224, 6380, 9000, 8081, 8101, 8111, 8121];

/// A running `./dev/cluster`.
#[derive(Debug)]
pub struct DevCluster {
    offset: u16,
    dir: TempDir,
}

impl DevCluster {
    /// Runs `./dev/cluster up` on ports that are free now; panics with its output if it fails.
    pub fn up() -> DevCluster {
        Self::up_with(&["up"])
    }

    /// `./dev/cluster up --image`: every role in a container of the image `./dev/image` built.
    pub fn up_image() -> DevCluster {
        Self::up_with(&["up", "--image"])
    }

    fn up_with(args: &[&str]) -> DevCluster {
        let dir = tempfile::tempdir().expect("create cluster temp dir");
        let offset = free_offset();
        let cluster = DevCluster { offset, dir };
        let output = cluster.script(args);
        assert!(
            output.status.success(),
            "./dev/cluster up failed:\n{}\nlogs: {}",
            String::from_utf8_lossy(&output.stderr),
            cluster.logs()
        );
        cluster
    }

    fn script(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(repo().join("dev/cluster"));
        command
            .args(args)
            .env("PORT_OFFSET", self.offset.to_string())
            .env("CLUSTER_DATA", self.dir.path())
            .env("CHANSHARE_BIN", binary());
        for user in USERS {
            command.env(format!("CHANSHARE_NATS_{}_PASSWORD", user.to_uppercase()), password(user));
        }
        command.output().expect("run ./dev/cluster")
    }

    /// What the script adds to every port (container names end with it: `chanshare-<role>-<n>-<offset>`).
    pub fn offset(&self) -> u16 {
        self.offset
    }

    /// `127.0.0.1:<port>` of the service whose unshifted port is `base` (e.g. 8081: gateway 1).
    pub fn addr(&self, base: u16) -> String {
        format!("127.0.0.1:{}", base + self.offset)
    }

    /// Gateway `n` (1 or 2).
    pub fn gateway(&self, n: u16) -> String {
        self.addr(8080 + n)
    }

    /// The three nats-servers' URLs with `user`'s credentials.
    pub fn nats_urls_as(&self, user: &str) -> String {
        let password = password(user);
        (4222..=4224)
            .map(|p| format!("nats://{user}:{password}@{}", self.addr(p)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A NATS client of `user` that knows every node.
    pub async fn client_as(&self, user: &str) -> async_nats::Client {
        let urls: Vec<async_nats::ServerAddr> = (4222..=4224)
            .map(|p| format!("nats://{}", self.addr(p)).parse().expect("url"))
            .collect();
        crate::nats::options_as(user).connect(urls).await.expect("connect to the dev cluster")
    }

    /// The Redis URL.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr(6380))
    }

    /// Kills process `name` (`gateway-1`, `commands-2`, `nats-n3`, ...) with SIGKILL.
    pub fn kill(&self, name: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join("pids").join(name))
            .unwrap_or_else(|e| panic!("no pid file for {name}: {e}"));
        let status = Command::new("kill").args(["-KILL", pid.trim()]).status().expect("run kill");
        assert!(status.success(), "kill {name}");
    }

    /// The tail of every log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("logs")) else { return out };
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("\n--- {}\n", entry.path().display()));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        self.script(&["down"]);
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An offset in 10 000..20 000 (below the ephemeral port range) that frees every port it shifts.
fn free_offset() -> u16 {
    for offset_tries in 0..200u32 {
        let random = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), offset_tries);
        let offset = 10_000 + (random % 10_000) as u16;
        let free = PORTS.iter().all(|&base| {
            [0, 1].iter().all(|n| TcpListener::bind(("127.0.0.1", base + n + offset)).is_ok())
        });
        if free {
            return offset;
        }
    }
    panic!("no free block of ports for ./dev/cluster");
}
