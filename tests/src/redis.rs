//! A real redis-server, without persistence, in its own temp dir.

use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{Guard, binary, free_port, wait_for_listener};

/// One redis-server.
#[derive(Debug)]
pub struct RedisServer {
    guard: Option<Guard>,
    port: u16,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free port (`--port 0` would turn TCP off in Redis), another one if a
    /// parallel test took it first.
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("create redis temp dir");
        let mut server = RedisServer { guard: None, port: 0, dir };
        for _ in 0..5 {
            server.port = free_port();
            if server.try_start().is_ok() {
                return server;
            }
        }
        panic!("redis-server did not start on any of five free ports (see its log)");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().map(|guard| guard.child.id())
    }

    /// Kills the server.
    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        if let Err(status) = self.try_start() {
            panic!("redis-server exited on restart: {status}");
        }
    }

    fn try_start(&mut self) -> Result<(), std::process::ExitStatus> {
        self.kill();
        let dir = self.dir.path();
        let mut guard = Guard::spawn(
            Command::new(binary("redis-server", "apt-get install redis-server"))
                .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(dir),
            &dir.join("redis.log"),
        );
        wait_for_listener(
            &mut guard.child,
            Some(self.port),
            "redis-server",
            Duration::from_secs(20),
        )?;
        self.guard = Some(guard);
        Ok(())
    }
}
