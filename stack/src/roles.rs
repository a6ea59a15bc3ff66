//! Connecting a role to its servers: NATS, the room log, Redis, the signing key.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use eventlog::EventLog;
use tracing::{info, warn};

use crate::config::{CommandsConfig, Config};

/// A NATS client for every URL in `CHANSHARE_NATS_URL`, waiting for a server to come up.
pub async fn nats(config: &Config) -> anyhow::Result<async_nats::Client> {
    connect(config, true).await
}

/// A NATS client that fails at once when no server answers (for command-line tools).
pub async fn nats_now(config: &Config) -> anyhow::Result<async_nats::Client> {
    connect(config, false).await
}

/// Messages a subscription holds before NATS drops the next ones (a slow consumer): async-nats
/// holds 65 536. A gateway that falls behind its rooms' commits (an overloaded machine) then
/// buffered up to that many per room: a soak of 2 000 sockets held 1.6 GB of them after 18
/// minutes. A room's hub fills what was dropped from the log in one read; a dropped reply is a
/// command answered `unavailable`, which clients retry.
const SUBSCRIPTION_CAPACITY: usize = 1024;

async fn connect(config: &Config, wait: bool) -> anyhow::Result<async_nats::Client> {
    let servers: Vec<async_nats::ServerAddr> = config
        .nats_url
        .split(',')
        .map(|url| url.trim().parse().with_context(|| format!("bad nats url {url:?}")))
        .collect::<anyhow::Result<_>>()?;
    let mut options = async_nats::ConnectOptions::new()
        .name("chanshare")
        .subscription_capacity(SUBSCRIPTION_CAPACITY);
    // Credentials ride in the URL (`nats://gateway:secret@host:4222`); async-nats does not read
    // them from there by itself.
    let user = servers.iter().find_map(|s| s.username());
    if let Some(user) = user {
        let password = servers.iter().find_map(|s| s.password()).unwrap_or_default();
        options = options.user_and_password(user.to_owned(), password.to_owned());
    }
    options = options.custom_inbox_prefix(inbox_prefix(user));
    let options = if wait { options.retry_on_initial_connect() } else { options };
    options
        .connect(servers)
        .await
        .with_context(|| format!("failed to connect to nats at {}", config.nats_url))
}

/// Where replies to `user` arrive: `_INBOX_<USER>` (`_INBOX_GATEWAY`, ...), the only inbox
/// `infra/jetstream/accounts.conf` lets that user subscribe to, so no role reads another's replies
/// (the commands role's carry host tokens). Without a user (development) it is NATS' `_INBOX`.
fn inbox_prefix(user: Option<&str>) -> String {
    let Some(user) = user else { return "_INBOX".to_owned() };
    // A subject token: no dots, wildcards or spaces.
    let user: String = user
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_uppercase() } else { '_' })
        .collect();
    format!("_INBOX_{user}")
}

/// The room log. The commands role owns the stream and applies its definition; every other role
/// only reads it (its NATS user may not change streams), waiting until the stream exists.
pub async fn log(
    config: &Config,
    client: async_nats::Client,
    owner: bool,
) -> anyhow::Result<EventLog> {
    let mut waited = false;
    loop {
        let attempt = if owner {
            EventLog::connect(client.clone(), config.stream_settings()).await.map(
                |(log, applied)| {
                    info!(stream = eventlog::subjects::STREAM, ?applied, "room stream ready");
                    log
                },
            )
        } else {
            EventLog::open(client.clone()).await
        };
        // A cluster that is still electing its JetStream leader answers "unavailable": wait.
        match attempt {
            Ok(log) => return Ok(log),
            Err(error) if !matches!(error, eventlog::LogError::Unavailable(_)) => {
                return Err(error).context("failed to set up the room stream");
            }
            Err(error) if !waited => {
                warn!(stream = eventlog::subjects::STREAM, %error, "waiting for the room stream");
                waited = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A Redis connection that reconnects by itself.
pub async fn redis(config: &Config) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(config.redis_url.as_str())
        .with_context(|| format!("bad redis url {:?}", config.redis_url))?;
    // Short timeouts: with Redis down, readers fall back to the log instead of waiting.
    let settings = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    client
        .get_connection_manager_with_config(settings)
        .await
        .with_context(|| format!("failed to connect to redis at {}", config.redis_url))
}

/// The deployment's secret: `CHANSHARE_SECRET`, or in development a key generated once and
/// kept in `./data/secret`.
fn secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.secret {
        anyhow::ensure!(secret.len() >= 32, "CHANSHARE_SECRET must be at least 32 characters");
        return Ok(secret.as_bytes().to_vec());
    }
    let path = std::path::Path::new("data/secret");
    if let Ok(secret) = std::fs::read_to_string(path) {
        return Ok(secret.trim().as_bytes().to_vec());
    }
    let secret: String = (0..2).map(|_| uuid::Uuid::new_v4().simple().to_string()).collect();
    std::fs::create_dir_all("data").context("failed to create ./data")?;
    std::fs::write(path, &secret)
        .context("failed to store the generated token key in ./data/secret")?;
    warn!(path = %path.display(), "no CHANSHARE_SECRET: generated a token key for development");
    Ok(secret.into_bytes())
}

/// The member-token signing key, from the deployment's secret.
pub fn signer(config: &Config) -> anyhow::Result<tokens::Signer> {
    Ok(tokens::Signer::new(&secret(config)?))
}

/// The access-token keys: `CHANSHARE_ACCESS_KEYS` (`kid:secret,…`, the first signs), else one
/// key derived from the deployment's secret.
fn access_keys(config: &Config) -> anyhow::Result<accounts::AccessKeys> {
    match config.access_keys.as_deref().filter(|k| !k.trim().is_empty()) {
        Some(list) => accounts::AccessKeys::parse(list).context("CHANSHARE_ACCESS_KEYS"),
        None => Ok(accounts::AccessKeys::derived(&secret(config)?)),
    }
}

/// The account service: the account stream and session bucket (made by the commands role;
/// waited for), Argon2id on half the cores, the sign-in throttle in Redis.
async fn accounts(
    client: async_nats::Client,
    config: &Config,
    redis: redis::aio::ConnectionManager,
    registry: &prometheus::Registry,
) -> anyhow::Result<accounts::Accounts> {
    let js = async_nats::jetstream::new(client);
    let mut waited = false;
    let store = loop {
        match accounts::Store::open(js.clone()).await {
            Ok(store) => break store,
            Err(error) if !waited => {
                warn!(%error, "waiting for the account stream");
                waited = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    Ok(accounts::Accounts::new(
        store,
        accounts::Hasher::new((cores / 2).max(1)).context("cannot make the decoy password hash")?,
        access_keys(config)?,
        accounts::Throttle::new(redis),
        accounts::Metrics::new(registry).context("failed to register account metrics")?,
    ))
}

/// Direct messages: the DM stream and the blocks bucket (made by the commands role; waited for).
async fn direct_messages(client: async_nats::Client) -> anyhow::Result<dm::Messages> {
    let js = async_nats::jetstream::new(client.clone());
    let mut waited = false;
    loop {
        let opened = match accounts::Store::open(js.clone()).await {
            Ok(store) => dm::Messages::open(client.clone(), store).await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match opened {
            Ok(messages) => return Ok(messages),
            Err(error) if !waited => {
                warn!(%error, "waiting for the direct-message stream");
                waited = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs `setup` until it succeeds, for up to a minute.
async fn until_made<F, E>(what: &str, setup: impl Fn() -> F) -> anyhow::Result<()>
where
    F: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match setup().await {
            Ok(()) => return Ok(()),
            Err(error) if tokio::time::Instant::now() < deadline => {
                warn!(%error, what, "set-up failed; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error).with_context(|| format!("failed to set up {what}")),
        }
    }
}

/// The commands role's service, ready to run.
pub async fn commands(
    config: &Config,
    commands: &CommandsConfig,
    client: async_nats::Client,
    log: EventLog,
    registry: &prometheus::Registry,
) -> anyhow::Result<commands::Service> {
    anyhow::ensure!(
        config.stream_max_age_secs == 0
            || commands.snapshot_interval_secs.saturating_mul(4) <= config.stream_max_age_secs,
        "CHANSHARE_SNAPSHOT_INTERVAL_SECS ({}) must be at most a quarter of \
         CHANSHARE_STREAM_MAX_AGE_SECS ({}): commits would expire before a snapshot holds them",
        commands.snapshot_interval_secs,
        config.stream_max_age_secs
    );
    let metrics = commands::Metrics::new(registry).context("failed to register command metrics")?;
    // Every commands replica makes these at start, at once: in a loaded cluster a create may
    // time out or meet another replica's, so each is tried again for a while.
    let js = async_nats::jetstream::new(client.clone());
    let replicas = config.stream_replicas;
    until_made("the account stream and session bucket", || accounts::store::setup(&js, replicas))
        .await?;
    until_made("the direct-message stream and blocks bucket", || dm::setup(&js, replicas)).await?;
    let limits = events::Limits { max_members: config.max_members, ..events::Limits::default() };
    let handler = commands::Handler::new(
        log.clone(),
        limits,
        commands.command_cache_mb << 20,
        metrics.clone(),
    );
    let signer = signer(config)?;
    let reaper_ids = signer.id_namespace("reaper");
    let provisioner = commands::Provisioner::new(
        client,
        log,
        signer,
        limits,
        Duration::from_secs(config.token_days * 24 * 3600),
    );
    Ok(commands::Service {
        handler: Arc::new(handler),
        provisioner: Arc::new(provisioner),
        presence: presence::Presence::new(redis(config).await?),
        reaper: commands::ReaperConfig {
            presence_timeout: Duration::from_secs(commands.presence_timeout_secs),
            idle_timeout: Duration::from_secs(commands.idle_timeout_secs),
            unjoined_timeout: Duration::from_secs(commands.unjoined_timeout_secs),
            interval: Duration::from_millis(commands.reap_interval_ms),
        },
        reaper_ids,
        snapshot_interval: Duration::from_secs(commands.snapshot_interval_secs),
        metrics,
    })
}

/// The projectors role, ready to run.
pub async fn projector(
    config: &Config,
    client: async_nats::Client,
    log: EventLog,
    registry: &prometheus::Registry,
) -> anyhow::Result<projectors::Projector> {
    let metrics =
        projectors::Metrics::new(registry).context("failed to register projector metrics")?;
    let views = views::Views::new(redis(config).await?)
        .with_closed_ttl(Duration::from_secs(config.closed_view_ttl_secs));
    // A stream just made on a cluster may not take a consumer for a moment (its leader is being
    // elected): the role waits for it rather than exiting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let opened =
            projectors::Projector::new(client.clone(), log.clone(), views.clone(), metrics.clone())
                .await;
        match opened {
            Ok(projector) => return Ok(projector),
            Err(error @ eventlog::LogError::Unavailable(_))
                if tokio::time::Instant::now() < deadline =>
            {
                warn!(%error, "the projector consumer cannot be opened yet; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error).context("failed to open the projector consumer"),
        }
    }
}

/// The DM projector's stream and views (the stream is made by the commands role; waited for).
pub async fn dm_projector(
    config: &Config,
    client: async_nats::Client,
) -> anyhow::Result<(dm::DmLog, views::Views)> {
    let js = async_nats::jetstream::new(client);
    let mut waited = false;
    let log = loop {
        match dm::DmLog::open(js.clone()).await {
            Ok(log) => break log,
            Err(error) if !waited => {
                warn!(%error, "waiting for the direct-message stream");
                waited = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    Ok((log, views::Views::new(redis(config).await?)))
}

/// The content role: resolver, watcher and media cache, ready to run.
pub async fn content(
    config: &Config,
    registry: &prometheus::Registry,
) -> anyhow::Result<content::Content> {
    let redis = redis(config).await?;
    let metrics = content::Metrics::new(registry).context("failed to register content metrics")?;
    let upstream = content::upstream::Upstream::new(
        &config.chan_api_url,
        &config.chan_media_url,
        redis.clone(),
    )
    .context("failed to build the upstream client")?
    .with_metrics(metrics.clone());
    let upstream = Arc::new(upstream);
    let store = storage::open(&config.media_store, config.s3_endpoint.as_deref())?;
    Ok(content::Content {
        resolver: content::Resolver::new(upstream.clone(), redis.clone())
            .worksafe_only(config.worksafe_only),
        media: content::Media::new(store, upstream, redis.clone(), metrics)
            .with_limits(config.media_limits()),
        redis,
        watch_tick: Duration::from_secs(1),
        watch_ids: signer(config)?.id_namespace("watcher"),
        max_watches: config.max_thread_watches,
    })
}

/// The gateway role, ready to serve.
pub async fn gateway(
    config: &Config,
    settings: &crate::config::GatewayConfig,
    client: async_nats::Client,
    log: EventLog,
    shutdown: tokio::sync::watch::Receiver<bool>,
    registry: &prometheus::Registry,
) -> anyhow::Result<gateway::App> {
    let redis = redis(config).await?;
    let accounts = accounts(client.clone(), config, redis.clone(), registry).await?;
    let dm = direct_messages(client.clone()).await?;
    let parts = gateway::Parts {
        client,
        log,
        views: views::Views::new(redis.clone()),
        presence: presence::Presence::new(redis),
        signer: signer(config)?,
        limits: gateway::limits::GatewayLimits {
            resume_cap: settings.resume_cap,
            connections_per_ip: settings.connections_per_ip,
            creations_per_minute: settings.creations_per_minute,
            sockets_per_minute: settings.sockets_per_minute,
            joins_per_minute: settings.joins_per_minute,
            misses_per_minute: settings.misses_per_minute,
            reads_per_minute: settings.reads_per_minute,
            idle: Duration::from_secs(settings.idle_secs),
            commands_per_second: f64::from(settings.commands_per_second),
            command_burst: 2.0 * f64::from(settings.commands_per_second),
            leave_grace: Duration::from_millis(settings.leave_grace_ms),
            dm_sends_per_minute: settings.dm_sends_per_minute as usize,
            ..gateway::limits::GatewayLimits::default()
        },
        trusted_proxies: settings.trusted_proxies.parse().context("CHANSHARE_TRUSTED_PROXIES")?,
        allowed_origins: settings
            .allowed_origins
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .collect(),
        token_ttl: Duration::from_secs(config.token_days * 24 * 3600),
        shutdown,
        metrics: gateway::Metrics::new(registry).context("failed to register gateway metrics")?,
        accounts: Some(accounts),
        dm: Some(dm),
    };
    gateway::App::new(parts).await.context("failed to start the gateway")
}

#[cfg(test)]
mod tests {
    use super::inbox_prefix;

    #[test]
    fn each_user_has_its_own_inbox_prefix() {
        assert_eq!(inbox_prefix(Some("gateway")), "_INBOX_GATEWAY");
        assert_eq!(inbox_prefix(Some("projectors")), "_INBOX_PROJECTORS");
        assert_eq!(inbox_prefix(Some("ops.team *")), "_INBOX_OPS_TEAM__");
        assert_eq!(inbox_prefix(None), "_INBOX");
    }
}
