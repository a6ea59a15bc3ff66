//! Finding binaries, free ports, and child processes that die with their owner.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The path of `name`, from `PATH` or the `./dev/test` cache; panics with `install` if absent.
pub(crate) fn binary(name: &str, install: &str) -> PathBuf {
    let cache = std::env::var_os("CHANSHARE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/chanshare")));
    let path_dirs = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    cache
        .into_iter()
        .map(|dir| dir.join("bin"))
        .chain(path_dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found: run ./dev/test, which installs it ({install})")
        })
}

/// A loopback port that was free a moment ago: only for servers that cannot pick their own
/// (Redis: `--port 0` turns TCP off; a NATS cluster's routes must be known in advance). The
/// server's own listener is then confirmed with [`wait_for_listener`], never just a connect.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind an ephemeral loopback port")
}

/// Waits until `child` itself listens on a TCP port (`expected`, or any when `None`) and returns
/// the port; `Err` with its exit status if it exits first (a port taken meanwhile), panics after
/// `timeout`. Ownership is read from `/proc` (the child's socket inodes among the listening
/// sockets), so another test's server on a recycled port is never mistaken for this one.
pub(crate) fn wait_for_listener(
    child: &mut Child,
    expected: Option<u16>,
    what: &str,
    timeout: Duration,
) -> Result<u16, std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let ports = listening_ports(child.id());
        if let Some(port) = ports.into_iter().find(|port| expected.is_none_or(|e| e == *port)) {
            return Ok(port);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen within {timeout:?}");
}

/// The TCP ports process `pid` listens on.
fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return vec![] };
    let inodes: std::collections::HashSet<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            if *state != "0A" || !inodes.contains(*inode) {
                continue;
            }
            if let Some(port) =
                local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports
}

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) child: Child,
}

impl Guard {
    pub(crate) fn spawn(command: &mut Command, log: &Path) -> Guard {
        let out = std::fs::File::create(log).expect("create server log");
        let err = out.try_clone().expect("clone server log handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        Guard { child }
    }

    pub(crate) fn kill(&mut self) {
        // Already exited is fine: the point is that it is gone.
        if self.child.kill().is_ok() {
            self.child.wait().ok();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}
