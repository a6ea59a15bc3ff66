//! The gateway: everything a client touches.
//!
//! - The HTTP API (DESIGN §4): rooms, lobby, state, members, commit history, `/openapi.json`.
//! - The room WebSocket (DESIGN §5): join and resume, commits exactly once in version order,
//!   commands forwarded to the commands service with the member's verified identity.
//! - Fan-out: one core NATS subscription per active room, each commit serialized once.
//!
//! Only this crate knows the HTTP and WebSocket wire shapes (ARCHITECTURE.md invariant 6).
//!
//! # Layout
//! - [`api`]: the HTTP routes (one table builds both the router and the OpenAPI document).
//! - [`socket`]: one WebSocket session, over any transport.
//! - [`rooms`]: what a session needs from the rest of the service.
//! - [`hub`]: per-room fan-out.
//! - [`frames`]: the WebSocket wire shapes and close codes.
//! - [`ws`]: the WebSocket upgrade, and a socket that sends large messages in pieces.
//! - [`limits`]: rate limits.
//! - [`client_ip`]: the client's address behind trusted reverse proxies.

pub mod account_socket;
pub mod api;
pub mod client_ip;
pub mod frames;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod rooms;
pub mod socket;
pub mod ui;
pub mod ws;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use eventlog::EventLog;
use events::RoomId;
use tokio::sync::watch;
use tracing::warn;
use views::Views;

use crate::hub::Hubs;
use crate::limits::{Connections, GatewayLimits, PerMinute};
use crate::socket::{SessionParts, Sessions};

pub use api::router;
pub use metrics::Metrics;

/// The gateway's shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The other roles' services (commands, creation), over NATS.
    services: protocol::Client,
    log: EventLog,
    views: Views,
    presence: presence::Presence,
    signer: tokens::Signer,
    hubs: Hubs,
    limits: GatewayLimits,
    trusted_proxies: client_ip::TrustedProxies,
    allowed_origins: Vec<String>,
    /// Open sockets per address.
    connections: Arc<Connections>,
    /// Per address and minute: room creations, new sockets, lookups of rooms that do not exist,
    /// `/events` pages.
    creations: PerMinute<IpAddr>,
    signups: PerMinute<IpAddr>,
    sockets_opened: PerMinute<IpAddr>,
    misses: Arc<PerMinute<IpAddr>>,
    reads: PerMinute<IpAddr>,
    /// Log reads of `/events` running at once on this process.
    log_readers: tokio::sync::Semaphore,
    /// What the room sockets share.
    sessions: Sessions,
    /// Accounts, when served.
    accounts: Option<accounts::Accounts>,
    /// Direct messages, when served.
    dm: Option<dm::Messages>,
    /// The inboxes of the accounts with sockets here.
    inboxes: Option<dm::Inboxes>,
    /// Per account and minute: direct messages sent through this process.
    dm_sends: PerMinute<String>,
    /// The account sockets by session, closed when it is revoked anywhere.
    revocations: Arc<account_socket::Revocations>,
    /// Flips to true when the process shuts down.
    shutdown: watch::Receiver<bool>,
    metrics: Metrics,
}

/// What the gateway is built from.
#[derive(Debug)]
pub struct Parts {
    /// NATS (commands, fan-out).
    pub client: async_nats::Client,
    /// The room log (resume, gap fill, history).
    pub log: EventLog,
    /// The Redis views (snapshots, lobby).
    pub views: Views,
    /// Presence heartbeats.
    pub presence: presence::Presence,
    /// Verifies and issues member tokens.
    pub signer: tokens::Signer,
    /// GatewayLimits.
    pub limits: GatewayLimits,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: client_ip::TrustedProxies,
    /// Origins whose pages may open room sockets (`https://watch.example`); empty: only pages
    /// served from the host the socket is opened on.
    pub allowed_origins: Vec<String>,
    /// Member token lifetime.
    pub token_ttl: Duration,
    /// Flips to true when the process shuts down: sockets are told to go away.
    pub shutdown: watch::Receiver<bool>,
    /// Metrics, registered by the caller.
    pub metrics: Metrics,
    /// Sign-up, sign-in and access tokens (`None`: accounts are not served).
    pub accounts: Option<accounts::Accounts>,
    /// Direct messages (`None`: not served).
    pub dm: Option<dm::Messages>,
}

impl App {
    /// Builds the gateway; the epoch is the room stream's creation time.
    pub async fn new(parts: Parts) -> Result<App, eventlog::LogError> {
        let epoch = parts.log.epoch().await?;
        let hubs = Hubs::new(parts.client.clone(), parts.log.clone(), parts.views.clone());
        let services = protocol::Client::new(parts.client, Duration::from_secs(10));
        let misses = Arc::new(PerMinute::default());
        let shutdown = parts.shutdown.clone();
        let rooms = rooms::Live {
            services: services.clone(),
            log: parts.log.clone(),
            views: parts.views.clone(),
            presence: parts.presence.clone(),
            hubs: hubs.clone(),
        };
        let sessions = Sessions::new(SessionParts {
            rooms: Arc::new(rooms),
            signer: parts.signer.clone(),
            limits: parts.limits,
            epoch,
            token_ttl: parts.token_ttl,
            shutdown: parts.shutdown,
            metrics: parts.metrics.clone(),
            misses: misses.clone(),
            accounts: parts.accounts.clone(),
        });
        let revocations = Arc::new(account_socket::Revocations::default());
        if let Some(accounts) = parts.accounts.clone() {
            tokio::spawn(revocations.clone().follow(accounts, shutdown.clone()));
        }
        Ok(App {
            inner: Arc::new(Inner {
                services,
                log: parts.log,
                views: parts.views,
                presence: parts.presence,
                signer: parts.signer,
                hubs,
                limits: parts.limits,
                trusted_proxies: parts.trusted_proxies,
                allowed_origins: parts.allowed_origins,
                connections: Arc::default(),
                creations: PerMinute::default(),
                signups: PerMinute::default(),
                sockets_opened: PerMinute::default(),
                misses,
                reads: PerMinute::default(),
                log_readers: tokio::sync::Semaphore::new(parts.limits.log_readers),
                sessions,
                accounts: parts.accounts,
                inboxes: parts.dm.clone().map(dm::Inboxes::new),
                dm: parts.dm,
                dm_sends: PerMinute::default(),
                revocations,
                shutdown,
                metrics: parts.metrics,
            }),
        })
    }

    /// The room's state JSON with its version: from the Redis view when it is there and not behind
    /// the log's head, else folded from the log (Redis down, flushed or behind).
    pub async fn state_json(&self, room: &RoomId) -> Result<(u64, String), eventlog::LogError> {
        let head = self.inner.log.head(room).await?.map_or(0, |h| h.version);
        if let Ok(Some(snapshot)) = self.inner.views.stored_state(room).await
            && snapshot.version >= head
        {
            return Ok((snapshot.version, snapshot.state_json));
        }
        self.folded(room).await
    }

    /// The room folded up to the log's head: from the Redis view's fold when it has one (only
    /// the commits after it are read, usually a few direct gets), else from the log's snapshot.
    async fn folded(&self, room: &RoomId) -> Result<(u64, String), eventlog::LogError> {
        Ok(rooms::view_json(&self.room_state(room).await?))
    }

    /// The room's state at the log's head (see [`Self::folded`]).
    pub(crate) async fn room_state(
        &self,
        room: &RoomId,
    ) -> Result<events::RoomState, eventlog::LogError> {
        rooms::room_state(&self.inner.log, &self.inner.views, room).await
    }

    /// The client's address: the TCP peer, or behind a trusted proxy the forwarded client.
    pub(crate) fn client_ip(
        &self,
        peer: std::net::SocketAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        let forwarded = headers.get_all("x-forwarded-for").into_iter();
        let forwarded = forwarded.filter_map(|value| value.to_str().ok());
        self.inner.trusted_proxies.client_ip(peer.ip(), forwarded)
    }

    /// Counts one event of `limiter` for `ip`'s address; a 429 (with `Retry-After`) once the
    /// address has had `limit` this minute.
    pub(crate) fn per_minute(
        &self,
        limiter: impl Fn(&Inner) -> &PerMinute<IpAddr>,
        ip: IpAddr,
        limit: usize,
        what: &str,
    ) -> Result<(), apierror::ApiError> {
        let key = tokens::subscriber(ip);
        if limiter(&self.inner).take(&key, limit, std::time::Instant::now()) {
            return Ok(());
        }
        Err(apierror::ApiError::new(
            apierror::ErrorKind::RateLimited,
            format!("too many {what} from this address; wait a minute"),
        )
        .retry_after(Duration::from_secs(60)))
    }

    /// Refuses (429) an address that looked up too many rooms that do not exist this minute.
    pub(crate) fn check_misses(&self, ip: IpAddr) -> Result<(), apierror::ApiError> {
        let key = tokens::subscriber(ip);
        let limit = self.inner.limits.misses_per_minute;
        if self.inner.misses.spent(&key, limit, std::time::Instant::now()) {
            return Err(apierror::ApiError::new(
                apierror::ErrorKind::RateLimited,
                "too many lookups of rooms that do not exist from this address; wait a minute",
            )
            .retry_after(Duration::from_secs(60)));
        }
        Ok(())
    }

    /// Counts a lookup of a room that does not exist; the error to answer it with.
    pub(crate) fn missed(&self, ip: IpAddr) -> apierror::ApiError {
        let key = tokens::subscriber(ip);
        self.inner.misses.take(&key, usize::MAX, std::time::Instant::now());
        apierror::ApiError::not_found("no such room")
    }

    /// Whether a WebSocket may be opened from the page that asks (its `Origin`): a page of
    /// another site must not act as a member with the visitor's stored token. Clients that are not
    /// browsers send no `Origin` and are let in.
    pub(crate) fn origin_allowed(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some(origin) = headers.get(axum::http::header::ORIGIN) else { return true };
        let Ok(origin) = origin.to_str() else { return false };
        let origin = origin.trim_end_matches('/');
        if !self.inner.allowed_origins.is_empty() {
            return self.inner.allowed_origins.iter().any(|o| o.eq_ignore_ascii_case(origin));
        }
        let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        matches!((host, origin_host), (Some(host), Some(origin)) if host.eq_ignore_ascii_case(origin))
    }

    /// Waits (up to `timeout`) until every socket has closed: after shutdown was signalled, so
    /// each has sent its "going away" and clients reconnect elsewhere. Upgraded connections are
    /// not tracked by the HTTP server's graceful shutdown, hence this.
    pub async fn drain(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.inner.metrics.sockets.get() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Records heartbeats for every member with a socket here, every 10 s, until dropped.
    pub async fn heartbeats(self) {
        let mut ticks = tokio::time::interval(Duration::from_secs(10));
        loop {
            ticks.tick().await;
            self.inner.metrics.rooms.set(self.inner.hubs.active() as i64);
            for (room, members) in self.inner.hubs.members() {
                if let Err(error) = self.inner.presence.beat(&room, &members, now_ms()).await {
                    warn!(%room, %error, "presence heartbeat failed");
                }
            }
        }
    }
}

/// Wall-clock ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
