//! The `chanshare` binary as a child process.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use tempfile::TempDir;

use crate::http;
use crate::process::Guard;
use crate::{NatsServer, RedisServer};

/// The `chanshare` binary of the same build as this executable: beside it (the `bench` binary)
/// or one level up (test executables live in `deps/`). `./dev/test` and `./dev/bench` build it.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let dir = exe.parent().expect("executable directory");
    let candidates = [Some(dir.join("chanshare")), dir.parent().map(|up| up.join("chanshare"))];
    candidates.into_iter().flatten().find(|bin| bin.is_file()).unwrap_or_else(|| {
        panic!("no chanshare binary near {}: run `cargo build --bin chanshare`", exe.display())
    })
}

/// The token key of every test stack.
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Creates a room through `addr`'s HTTP API from `body` (the `POST /api/rooms` JSON); the reply.
/// No retry: a process that says it is up serves (`stack::serve` opens its port once the
/// services of its roles answer).
pub fn create_room(addr: &str, body: &serde_json::Value) -> serde_json::Value {
    let (status, reply) = crate::http::post_json(addr, "/api/rooms", &body.to_string());
    assert_eq!(status, 201, "room creation: {reply}");
    serde_json::from_str(&reply).expect("a json reply")
}

/// Creates a room of two URL items through `addr`: its id and the host's token.
pub fn create_url_room(addr: &str, title: &str) -> (String, String) {
    let body = serde_json::json!({"title": title, "source": {"urls": [
        "https://example.com/a.webm", "https://example.com/b.webm"]}});
    let reply = create_room(addr, &body);
    let field = |name: &str| reply[name].as_str().expect("a created room").to_owned();
    (field("room_id"), field("host_token"))
}

/// What every role needs: `nats` and `redis`, the token key `secret`, and a 4chan that is never
/// contacted (rooms from URL lists only).
pub fn env(nats: &NatsServer, redis: &RedisServer, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CHANSHARE_NATS_URL", nats.url()),
        ("CHANSHARE_REDIS_URL", redis.url()),
        ("CHANSHARE_SECRET", secret.to_owned()),
        ("CHANSHARE_CHAN_API_URL", "http://127.0.0.1:9".to_owned()),
        ("CHANSHARE_CHAN_MEDIA_URL", "http://127.0.0.1:9".to_owned()),
        // As the image runs it (Dockerfile; docs/decisions/0007-malloc-arenas.md).
        ("MALLOC_ARENA_MAX", "2".to_owned()),
    ]
    .into_iter()
    .chain(LIFTED.iter().map(|(key, value)| (*key, (*value).to_owned())))
    .collect()
}

/// Per-minute limits meant for the open internet, lifted: every test client is 127.0.0.1. A
/// test of one of them sets it again (a later setting wins).
pub const LIFTED: [(&str, &str); 4] = [
    ("CHANSHARE_SOCKETS_PER_MINUTE", "1000000"),
    ("CHANSHARE_JOINS_PER_MINUTE", "1000000"),
    ("CHANSHARE_MISSES_PER_MINUTE", "1000000"),
    ("CHANSHARE_READS_PER_MINUTE", "1000000"),
];

/// Runs `chanshare replay <args>` with `env` to completion.
pub fn replay(env: &[(&str, String)], args: &[&str]) -> Output {
    let mut command = Command::new(binary());
    command.arg("replay").args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run chanshare replay")
}

/// Waits until `chanshare` logs that it is up (text or JSON logs); the port it listens on.
fn announced_port(log: &std::path::Path, child: &mut std::process::Child, limit: Duration) -> u16 {
    const AT: &str = "http://127.0.0.1:";
    let deadline = std::time::Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let port = text.lines().filter(|line| line.contains("chanshare is up")).find_map(|line| {
            let rest = &line[line.find(AT)? + AT.len()..];
            rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        });
        if let Some(port) = port {
            return port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("chanshare exited ({status}) before listening:\n{text}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "chanshare did not come up in {limit:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `chanshare` process.
#[derive(Debug)]
pub struct Chanshare {
    guard: Guard,
    port: u16,
    dir: TempDir,
}

impl Chanshare {
    /// Runs `chanshare <role>` with `env` on a free port, and waits until it listens.
    pub fn start(role: &str, env: &[(&str, String)]) -> Chanshare {
        let dir = tempfile::tempdir().expect("create chanshare temp dir");
        let mut command = Command::new(binary());
        // Port 0: the process picks a free port itself and says which in its "up" line.
        command
            .arg(role)
            .current_dir(dir.path())
            .env("CHANSHARE_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info");
        for (key, value) in env {
            command.env(key, value);
        }
        let log = dir.path().join("chanshare.log");
        let mut guard = Guard::spawn(&mut command, &log);
        let port = announced_port(&log, &mut guard.child, Duration::from_secs(30));
        Chanshare { guard, port, dir }
    }

    /// `chanshare serve` on `nats` and `redis` with the test key [`SECRET`], plus `extra` settings.
    pub fn serve(nats: &NatsServer, redis: &RedisServer, extra: &[(&str, String)]) -> Chanshare {
        let mut settings = env(nats, redis, SECRET);
        settings.extend(extra.iter().cloned());
        Chanshare::start("serve", &settings)
    }

    /// The process id (to read its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.guard.child.id()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `GET path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http::get(&self.addr(), path)
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.guard.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.guard.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chanshare.log")).unwrap_or_default()
    }
}
