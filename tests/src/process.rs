//! Finding binaries, free ports, and child processes that die with their owner.

use std::net::{SocketAddr, TcpListener, TcpStream};
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

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind an ephemeral loopback port")
}

/// Waits until something accepts TCP connections on `port`, or panics after `timeout`.
pub(crate) fn wait_for_port(port: u16, child: &mut Child, what: &str, timeout: Duration) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {port}: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on {port} within {timeout:?}");
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
