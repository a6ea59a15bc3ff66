//! Every setting of every role, each from a `--flag` or its pinned `CHANSHARE_*` variable
//! (DESIGN §7). This is the one place environment variable names are written down.

use std::net::SocketAddr;

use clap::Args;

/// Settings shared by the roles.
#[derive(Debug, Clone, Args)]
pub(crate) struct Config {
    /// HTTP/WebSocket address of the gateway (and of content in `serve`).
    #[arg(long, env = "CHANSHARE_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,

    /// NATS server URL(s), comma-separated.
    #[arg(
        long,
        env = "CHANSHARE_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub(crate) nats_url: String,

    /// Redis URL.
    #[arg(
        long,
        env = "CHANSHARE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub(crate) redis_url: String,

    /// Object store for cached media: `file://DIR` or `s3://BUCKET`.
    #[arg(
        long,
        env = "CHANSHARE_MEDIA_STORE",
        default_value = "file://./data/media"
    )]
    pub(crate) media_store: String,

    /// Endpoint of the S3 server for `s3://` stores (credentials from `AWS_*`).
    #[arg(long, env = "CHANSHARE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// 4chan API base URL.
    #[arg(
        long,
        env = "CHANSHARE_CHAN_API_URL",
        default_value = "https://a.4cdn.org"
    )]
    pub(crate) chan_api_url: String,

    /// 4chan media base URL.
    #[arg(
        long,
        env = "CHANSHARE_CHAN_MEDIA_URL",
        default_value = "https://i.4cdn.org"
    )]
    pub(crate) chan_media_url: String,

    /// Key that signs member and host tokens (generated and stored under ./data in dev).
    #[arg(long, env = "CHANSHARE_SECRET", hide_env_values = true)]
    pub(crate) secret: Option<String>,

    /// JetStream replicas of the room stream (3 in a cluster).
    #[arg(long, env = "CHANSHARE_STREAM_REPLICAS", default_value_t = 1)]
    pub(crate) stream_replicas: usize,
}
