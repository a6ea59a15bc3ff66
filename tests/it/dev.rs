//! The developer scripts, as a person runs them.

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::Command;

/// `./dev/up` on an address something already serves (an earlier `./dev/up` left running)
/// refuses to start, instead of announcing the other process's health check as its own.
#[test]
fn dev_up_refuses_an_address_already_taken() {
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = squatter.local_addr().unwrap();
    // It answers every request 200, as a Chanshare would answer /healthz.
    std::thread::spawn(move || {
        for stream in squatter.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request_line = String::new();
            std::io::BufReader::new(&stream).read_line(&mut request_line).ok();
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").ok();
        }
    });
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(root.join("dev/up"))
        .env("CHANSHARE_LISTEN", addr.to_string())
        .output()
        .expect("run ./dev/up");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains(&format!("something already listens on {addr}")), "{said}");
    assert!(!said.contains("Chanshare is up"), "{said}");
}

/// `./dev/down` returns once what it stopped is gone: `./dev/down && ./dev/up` used to find the
/// old NATS still listening, take it for its own, and lose it a moment later.
#[test]
fn dev_down_waits_until_the_servers_are_gone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scratch = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(scratch.path().join("dev")).unwrap();
    std::fs::create_dir_all(scratch.path().join("data")).unwrap();
    std::fs::copy(root.join("dev/down"), scratch.path().join("dev/down")).unwrap();
    // A server that takes a second to shut down once told to, as NATS writing its store does.
    let mut slow = Command::new("bash")
        .args(["-c", "trap 'sleep 1; exit 0' TERM; while true; do sleep 0.05; done"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    std::fs::write(scratch.path().join("data/nats.pid"), slow.id().to_string()).unwrap();
    let output = Command::new(scratch.path().join("dev/down")).output().expect("run ./dev/down");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("stopped nats"));
    assert!(
        slow.try_wait().unwrap().is_some(),
        "./dev/down returned while the server was still shutting down"
    );
}
