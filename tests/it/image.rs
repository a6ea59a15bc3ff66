//! The container image (issue 23), as `./dev/image` builds it here (podman over a base made by
//! mmdebstrap; `./dev/test` builds it before the tests): every role of the local cluster runs
//! from it and the cluster smoke test passes against the containers; it runs as non-root, has a
//! CA bundle, drains on SIGTERM as PID 1, and is at most 60 MB.

use std::process::Command;
use std::time::Duration;

use tests::DevCluster;

const IMAGE: &str = "localhost/chanshare:dev";

/// `podman --runtime runc <args>` (as `dev/lib.sh` runs it): its stdout; panics on failure.
fn podman(args: &[&str]) -> String {
    let output = Command::new("podman")
        .args(["--runtime", "runc"])
        .args(args)
        .output()
        .expect("podman (./dev/test installs it and builds the image with ./dev/image)");
    assert!(
        output.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_runs_from_the_image() {
    // What the image is: small, non-root, with a CA bundle.
    let size: u64 = podman(&["image", "inspect", "--format", "{{.Size}}", IMAGE]).parse().unwrap();
    crate::failover::save_report("image.txt", &format!("{IMAGE}: {} MB", size / 1_000_000));
    assert!(size <= 60_000_000, "the image is {size} bytes");
    assert_eq!(podman(&["image", "inspect", "--format", "{{.Config.User}}", IMAGE]), "10001:10001");
    let probe = podman(&["create", IMAGE]);
    let bundle = tempfile::NamedTempFile::new().unwrap();
    let copied = bundle.path().to_str().unwrap().to_owned();
    podman(&["cp", &format!("{probe}:/etc/ssl/certs/ca-certificates.crt"), &copied]);
    podman(&["rm", &probe]);
    let pem = std::fs::read_to_string(bundle.path()).unwrap();
    assert!(pem.matches("BEGIN CERTIFICATE").count() > 100, "a CA bundle");

    // The cluster, every role a container; the smoke test against it.
    let cluster = DevCluster::up_image();
    let name = format!("chanshare-gateway-1-{}", cluster.offset());
    // (No ps in the image: the process's own status, from the host.)
    let pid = podman(&["inspect", "--format", "{{.State.Pid}}", &name]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.split_whitespace().skip(1).all(|id| id == "10001"), "runs as 10001: {uid}");
    crate::cluster::smoke(&cluster).await;

    // SIGTERM to PID 1: the gateway drains and exits 0 (a container of its own, kept after exit
    // so that its exit code can be read).
    let listen = format!("127.0.0.1:{}", 8089 + cluster.offset());
    let env = [
        format!("CHANSHARE_NATS_URL={}", cluster.nats_urls_as("gateway")),
        format!("CHANSHARE_REDIS_URL={}", cluster.redis_url()),
        format!("CHANSHARE_LISTEN={listen}"),
        "CHANSHARE_SECRET=dev-cluster-token-key-dev-cluster-token-key".to_owned(),
    ];
    let mut args = vec!["run", "-d", "--network", "host", "--ulimit", "nofile=20000:20000"];
    args.extend(["--ulimit", "nproc=4096:4096"]);
    for pair in &env {
        args.extend(["--env", pair]);
    }
    args.extend([IMAGE, "gateway"]);
    let container = podman(&args);
    tests::eventually(Duration::from_secs(30), "the gateway container is ready", || async {
        reqwest::get(format!("http://{listen}/readyz")).await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    podman(&["stop", "--time", "20", &container]);
    let code = podman(&["inspect", "--format", "{{.State.ExitCode}}", &container]);
    // (The process logs to stderr, which `podman logs` replays on its stderr.)
    let logs =
        Command::new("podman").args(["--runtime", "runc", "logs", &container]).output().unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    podman(&["rm", &container]);
    assert_eq!(code, "0", "a clean exit on SIGTERM: {logs}");
    assert!(logs.contains("shutting down"), "it drained: {logs}");
}
