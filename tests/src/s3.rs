//! A real S3 protocol server (s3s-fs) on a temp directory.

use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{Guard, binary, wait_for_listener};

/// One s3s-fs server. Buckets are directories under its root.
#[derive(Debug)]
pub struct S3Server {
    _guard: Guard,
    port: u16,
    dir: TempDir,
}

impl S3Server {
    /// The access key the server accepts.
    pub const ACCESS_KEY: &'static str = "chanshare-test";
    /// The secret key the server accepts.
    pub const SECRET_KEY: &'static str = "chanshare-test-secret";

    /// Starts a server with one bucket, `bucket`.
    pub fn start(bucket: &str) -> S3Server {
        let dir = tempfile::tempdir().expect("create s3 temp dir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join(bucket)).expect("create bucket directory");
        let mut guard = Guard::spawn(
            Command::new(binary(
                "s3s-fs",
                "cargo install s3s-fs --version 0.14.1 --features binary --locked",
            ))
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", Self::ACCESS_KEY, "--secret-key", Self::SECRET_KEY])
            .arg(&root),
            &dir.path().join("s3s-fs.log"),
        );
        let port = wait_for_listener(&mut guard.child, None, "s3s-fs", Duration::from_secs(20))
            .unwrap_or_else(|status| panic!("s3s-fs exited: {status}"));
        S3Server { _guard: guard, port, dir }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A client for `bucket`.
    pub fn store(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_bucket_name(bucket)
            .with_access_key_id(Self::ACCESS_KEY)
            .with_secret_access_key(Self::SECRET_KEY)
            .with_region("us-east-1")
            .with_allow_http(true)
            .build()
            .expect("an s3 client for the test server")
    }

    /// The directory holding the buckets.
    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }
}
