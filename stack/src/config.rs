//! Every setting of every role, each from a `--flag` or its pinned `CHANSHARE_*` variable
//! (DESIGN §7). This is the one place environment variable names are written down.

use std::net::SocketAddr;

use clap::Args;
use clap::builder::TypedValueParser as _;

/// Settings shared by the roles.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// HTTP/WebSocket address of the gateway (and of content in `serve`).
    #[arg(long, env = "CHANSHARE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "CHANSHARE_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Redis URL.
    #[arg(long, env = "CHANSHARE_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Object store for cached media: `file://DIR` or `s3://BUCKET`.
    #[arg(long, env = "CHANSHARE_MEDIA_STORE", default_value = "file://./data/media")]
    pub media_store: String,

    /// Endpoint of the S3 server for `s3://` stores (credentials from `AWS_*`).
    #[arg(long, env = "CHANSHARE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// 4chan API base URL.
    #[arg(long, env = "CHANSHARE_CHAN_API_URL", default_value = "https://a.4cdn.org")]
    pub chan_api_url: String,

    /// 4chan media base URL.
    #[arg(long, env = "CHANSHARE_CHAN_MEDIA_URL", default_value = "https://i.4cdn.org")]
    pub chan_media_url: String,

    /// Only threads of worksafe boards (`ws_board` 1 in 4chan's board list) make rooms
    /// (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`).
    #[arg(long, env = "CHANSHARE_WORKSAFE_ONLY", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub worksafe_only: bool,

    /// The most members a room lists (online or not); the longest-offline one is pruned to make
    /// room, and a room whose members are all online refuses more (`room is full`).
    #[arg(long, env = "CHANSHARE_MAX_MEMBERS", default_value_t = events::Limits::default().max_members,
          value_parser = clap::value_parser!(u32).range(2..=10_000).map(|n| n as usize))]
    pub max_members: usize,

    /// The most threads the deployment follows at once (0: none); rooms beyond it work but do
    /// not gain their thread's new posts.
    #[arg(long, env = "CHANSHARE_MAX_THREAD_WATCHES", default_value_t = 500)]
    pub max_thread_watches: usize,

    /// Byte budget of the media cache, shared by the content replicas: storing a download
    /// evicts the least recently used files until it fits (default 10 GiB).
    #[arg(long, env = "CHANSHARE_MEDIA_CACHE_BYTES", default_value_t = content::media::DEFAULT_CACHE_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    pub media_cache_bytes: u64,

    /// Media downloads one content replica runs at once (4chan's CDN is asked politely).
    #[arg(long, env = "CHANSHARE_MEDIA_DOWNLOADS", default_value_t = content::media::DEFAULT_DOWNLOADS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub media_downloads: usize,

    /// Media downloads (of distinct files) one content replica lets wait for a slot; a miss
    /// beyond them is answered 503 with `Retry-After`.
    #[arg(long, env = "CHANSHARE_MEDIA_DOWNLOAD_QUEUE", default_value_t = content::media::DEFAULT_DOWNLOAD_QUEUE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=10_000))]
    pub media_download_queue: usize,

    /// Key that signs member and host tokens (generated and stored under ./data in dev).
    #[arg(long, env = "CHANSHARE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Access-token signing keys, `kid:secret,kid:secret` (each secret at least 32 bytes): the
    /// first signs, all verify, so a key is rotated by putting a new one first and dropping the
    /// old one 15 minutes later (docs/accounts.md). Unset: one key derived from CHANSHARE_SECRET.
    #[arg(long, env = "CHANSHARE_ACCESS_KEYS", hide_env_values = true)]
    pub access_keys: Option<String>,

    /// Days a member or host token stays valid (tokens are issued by the commands role for hosts
    /// and by the gateway for members).
    #[arg(long, env = "CHANSHARE_TOKEN_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub token_days: u64,

    /// JetStream replicas of the room and snapshot streams (3 in a cluster).
    #[arg(long, env = "CHANSHARE_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,

    /// Seconds a commit stays in the room stream (0: forever). Rooms stay readable from their
    /// snapshots; `chanshare replay export` keeps the history.
    #[arg(long, env = "CHANSHARE_STREAM_MAX_AGE_SECS", default_value_t = 0)]
    pub stream_max_age_secs: u64,

    /// Size cap of the room stream in bytes, oldest commits leaving first (unset: none).
    /// JetStream reserves this much storage on every replica.
    #[arg(long, env = "CHANSHARE_STREAM_MAX_BYTES")]
    pub stream_max_bytes: Option<u64>,

    /// Seconds a closed room's read view stays in Redis (then it is folded from the room's
    /// snapshot and the log when read).
    #[arg(long, env = "CHANSHARE_CLOSED_VIEW_TTL_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub closed_view_ttl_secs: u64,

    /// Seconds a client has to send a request's headers (slowloris; silent connections too).
    #[arg(long, env = "CHANSHARE_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub http_header_timeout_secs: u64,

    /// Seconds a request may take, its body included, before a 503 (WebSockets and streamed
    /// media are past it once they start).
    #[arg(long, env = "CHANSHARE_HTTP_REQUEST_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_request_timeout_secs: u64,
}

impl Config {
    /// The streams' settings.
    pub fn stream_settings(&self) -> eventlog::StreamSettings {
        eventlog::StreamSettings {
            replicas: self.stream_replicas,
            max_age: std::time::Duration::from_secs(self.stream_max_age_secs),
            max_bytes: self.stream_max_bytes,
        }
    }

    /// The media cache's limits.
    pub fn media_limits(&self) -> content::MediaLimits {
        content::MediaLimits {
            cache_bytes: self.media_cache_bytes,
            downloads: self.media_downloads,
            queue: self.media_download_queue,
            ..content::MediaLimits::default()
        }
    }

    /// The HTTP server's time limits.
    pub fn http_limits(&self) -> crate::http::HttpLimits {
        crate::http::HttpLimits {
            header_timeout: std::time::Duration::from_secs(self.http_header_timeout_secs),
            request_timeout: std::time::Duration::from_secs(self.http_request_timeout_secs),
        }
    }
}

/// Settings of the gateway role.
#[derive(Debug, Clone, Args)]
pub struct GatewayConfig {
    /// The most commits a reconnecting client is replayed; further behind gets a snapshot.
    #[arg(long, env = "CHANSHARE_RESUME_CAP", default_value_t = 1000)]
    pub resume_cap: u64,

    /// Open WebSockets allowed per client address.
    #[arg(long, env = "CHANSHARE_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub connections_per_ip: usize,

    /// Rooms a client address may create per minute.
    #[arg(long, env = "CHANSHARE_CREATIONS_PER_MINUTE", default_value_t = 10)]
    pub creations_per_minute: usize,

    /// WebSockets a client address may open per minute.
    #[arg(long, env = "CHANSHARE_SOCKETS_PER_MINUTE", default_value_t = 60)]
    pub sockets_per_minute: usize,

    /// New members a room may gain per minute on one gateway (bot floods cannot fill a room).
    #[arg(long, env = "CHANSHARE_JOINS_PER_MINUTE", default_value_t = 60)]
    pub joins_per_minute: usize,

    /// Lookups of rooms that do not exist a client address may make per minute.
    #[arg(long, env = "CHANSHARE_MISSES_PER_MINUTE", default_value_t = 30)]
    pub misses_per_minute: usize,

    /// `/events` pages a client address may read per minute.
    #[arg(long, env = "CHANSHARE_READS_PER_MINUTE", default_value_t = 120)]
    pub reads_per_minute: usize,

    /// Seconds a socket may stay silent (clients ping every few seconds) before it is closed.
    #[arg(long, env = "CHANSHARE_IDLE_SECS", default_value_t = 60)]
    pub idle_secs: u64,

    /// Commands per second one socket may sustain (bursts of twice that are allowed).
    #[arg(long, env = "CHANSHARE_COMMANDS_PER_SECOND", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub commands_per_second: u32,

    /// Direct messages one account may send a minute through one gateway.
    #[arg(long, env = "CHANSHARE_DM_SENDS_PER_MINUTE", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub dm_sends_per_minute: u32,

    /// Reverse proxies (comma-separated addresses or CIDRs) whose `X-Forwarded-For` is believed:
    /// the client is the right-most forwarded address that is not one of them. Empty: the TCP
    /// peer is the client.
    #[arg(long, env = "CHANSHARE_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// Origins whose pages may open room sockets, comma-separated (`https://watch.example`).
    /// Empty: only pages served from the host the socket is opened on.
    #[arg(long, env = "CHANSHARE_ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: String,

    /// Milliseconds a member whose last socket closed cleanly has to come back before they are
    /// shown offline (a reload or a quick reconnect does not flap the member list); at most 5000.
    #[arg(long, env = "CHANSHARE_LEAVE_GRACE_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=5000))]
    pub leave_grace_ms: u64,
}

/// Settings of the commands role.
#[derive(Debug, Clone, Args)]
pub struct CommandsConfig {
    /// Memory for cached room states, in MiB.
    #[arg(long, env = "CHANSHARE_COMMAND_CACHE_MB", default_value_t = 64)]
    pub command_cache_mb: usize,

    /// Seconds without a heartbeat after which a member goes offline.
    #[arg(long, env = "CHANSHARE_PRESENCE_TIMEOUT_SECS", default_value_t = 30)]
    pub presence_timeout_secs: u64,

    /// Seconds with nobody online after which a room closes.
    #[arg(long, env = "CHANSHARE_IDLE_TIMEOUT_SECS", default_value_t = 1800)]
    pub idle_timeout_secs: u64,

    /// Seconds with nobody online after which a room nobody but its creator ever joined closes.
    #[arg(long, env = "CHANSHARE_UNJOINED_TIMEOUT_SECS", default_value_t = 600)]
    pub unjoined_timeout_secs: u64,

    /// Milliseconds between two presence checks.
    #[arg(long, env = "CHANSHARE_REAP_INTERVAL_MS", default_value_t = 5000)]
    pub reap_interval_ms: u64,

    /// Seconds between two passes that bring every room's snapshot up to its head. At most a
    /// quarter of `CHANSHARE_STREAM_MAX_AGE_SECS`, so no commit expires before a snapshot holds it.
    #[arg(long, env = "CHANSHARE_SNAPSHOT_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_interval_secs: u64,
}

/// How a process logs (every subcommand takes these).
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format: human-readable `text`, or `json` lines for production.
    #[arg(long, global = true, env = "CHANSHARE_LOG_FORMAT", value_enum, default_value_t = crate::logging::LogFormat::Text)]
    pub log_format: crate::logging::LogFormat,

    /// More log detail, once per step: the servers log `info` (`-v` debug, `-vv` trace),
    /// `replay` only warnings (`-v` info, `-vv` debug). `RUST_LOG`, when set, decides instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}
