//! A real Prometheus server scraping given targets.

use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{Guard, binary, wait_for_listener};

/// One Prometheus server.
#[derive(Debug)]
pub struct PrometheusServer {
    _guard: Guard,
    port: u16,
    _dir: TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus scraping `targets` (`host:port`, path `/metrics`) every second.
    pub fn start(targets: &[String]) -> PrometheusServer {
        let dir = tempfile::tempdir().expect("create prometheus temp dir");
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: chanshare\n    static_configs:\n      - targets: [{list}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus config");
        let mut guard = Guard::spawn(
            Command::new(binary("prometheus", "apt-get install prometheus"))
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg("--web.listen-address=127.0.0.1:0"),
            &dir.path().join("prometheus.log"),
        );
        let port = wait_for_listener(&mut guard.child, None, "prometheus", Duration::from_secs(30))
            .unwrap_or_else(|status| panic!("prometheus exited: {status}"));
        PrometheusServer { _guard: guard, port, _dir: dir }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
