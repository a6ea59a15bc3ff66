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
