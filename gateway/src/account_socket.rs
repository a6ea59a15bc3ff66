//! The account socket (`GET /api/me/ws?access_token=…`, DESIGN §4b): a signed-in account's
//! direct messages, on every device it keeps one open.
//!
//! After `dm_sync` the socket follows the account's feed (`dm::Messages::feed`): every event of
//! its conversations it has not seen, in order, then live. A message becomes a `dm` frame on
//! both sides' sockets and a `dm_status sent` on the sender's; a receipt becomes `dm_status`
//! frames on the sender's. Writing a message to one of the receiver's sockets reports it
//! delivered; `dm_read` reports it read. The receipts are decided in the `dm` crate, once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apierror::{ApiError, ErrorKind};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use dm::{DmError, Feed, FeedItem, Messages};
use events::Username;
use events::dm::{DmEvent, DmRejection, Status};

use serde::Deserialize;
use tracing::{debug, warn};

use crate::App;
use crate::frames::account::{ClientFrame, RejectCode, ServerFrame};
use crate::frames::{close, text};
use crate::limits::{Bucket, GatewayLimits};

/// The socket's query string.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// The account's access token.
    pub access_token: Option<String>,
}

/// How long a socket may take to accept a frame before it is closed as a slow consumer.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /api/me/ws`.
pub(crate) async fn upgrade(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let ip = app.client_ip(peer, &headers);
    if !app.origin_allowed(&headers) {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "this page may not open Chanshare's sockets (CHANSHARE_ALLOWED_ORIGINS)",
        ));
    }
    let (Some(accounts), Some(messages)) = (app.inner.accounts.clone(), app.inner.dm.clone())
    else {
        return Err(ApiError::unavailable("direct messages are not served here"));
    };
    let limits = app.inner.limits;
    let upgrade = crate::api::tuned(upgrade, &limits);
    app.per_minute(|i| &i.sockets_opened, ip, limits.sockets_per_minute, "new sockets")?;
    let slot = app.inner.connections.open(ip, limits.connections_per_ip);
    Ok(upgrade.on_upgrade(move |mut socket| async move {
        let Some(_slot) = slot else {
            closing(&mut socket, close::TOO_MANY, "too many connections from this address").await;
            return;
        };
        let token = params.access_token.unwrap_or_default();
        let claims = match accounts.authenticate(&token).await {
            Ok(claims) => claims,
            Err(accounts::AccountError::Unavailable(error)) => {
                warn!(%error, "account socket: cannot check the access token");
                closing(&mut socket, close::UNAVAILABLE, "accounts are unavailable; retry").await;
                return;
            }
            Err(error) => {
                closing(&mut socket, close::BAD_TOKEN, &error.to_string()).await;
                return;
            }
        };
        app.inner.metrics.sockets.inc();
        // The socket lives as long as its access token: then the client comes back with a new one.
        let lifetime = claims.exp.saturating_sub(crate::now_ms() / 1000);
        let expires = Instant::now() + Duration::from_secs(lifetime);
        let session = Session {
            expires,
            app: app.clone(),
            messages,
            me: claims.name,
            since: HashMap::new(),
            delivered: HashMap::new(),
            bucket: Bucket::full(&limits),
            limits,
            owed: Owed::default(),
            synced: false,
        };
        session.run(socket).await;
        app.inner.metrics.sockets.dec();
    }))
}

async fn closing(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame { code, reason: reason.chars().take(120).collect::<String>().into() };
    tokio::time::timeout(Duration::from_secs(2), socket.send(Message::Close(Some(frame))))
        .await
        .ok();
}

struct Session {
    app: App,
    messages: Messages,
    me: Username,
    /// Per partner, the last seq this socket has (from `dm_sync`, then as frames are sent).
    since: HashMap<Username, u64>,
    /// Per partner, how far the messages to this account are known delivered (its receipts
    /// seen, and the reports this socket made).
    delivered: HashMap<Username, u64>,
    bucket: Bucket,
    limits: GatewayLimits,
    owed: Owed,
    /// Whether `dm_sync` came.
    synced: bool,
    /// When the access token it was opened with expires.
    expires: Instant,
}

/// The delivered receipts a socket owes, one report in flight per conversation: a burst of
/// messages is reported in a few receipts, not one each (which would race one another for the
/// same receipts subject).
#[derive(Debug, Clone, Default)]
struct Owed(Arc<Mutex<HashMap<Username, u64>>>);

impl Owed {
    /// Owes delivered up to `seq` to `partner`'s messages; reports it (and whatever else comes
    /// meanwhile) unless a report for that conversation is running, which will.
    fn owe(&self, messages: &Messages, me: &Username, partner: Username, seq: u64) {
        {
            let mut owed = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(wanted) = owed.get_mut(&partner) {
                *wanted = (*wanted).max(seq);
                return;
            }
            owed.insert(partner.clone(), seq);
        }
        let (owed, messages, me) = (self.clone(), messages.clone(), me.clone());
        tokio::spawn(async move {
            let (mut reported, mut failures) = (0, 0);
            loop {
                let wanted = {
                    let mut all = owed.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match all.get(&partner) {
                        Some(wanted) if *wanted > reported => *wanted,
                        _ => {
                            all.remove(&partner);
                            return;
                        }
                    }
                };
                match messages
                    .report(&me, &partner, Status::Delivered, wanted, crate::now_ms())
                    .await
                {
                    Ok(_) => reported = wanted,
                    // The next delivery to this account reports these too.
                    Err(error) if failures >= 20 => {
                        warn!(account = %me, %error, "account socket: delivered receipt failed; giving up");
                        owed.0
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .remove(&partner);
                        return;
                    }
                    Err(error) => {
                        failures += 1;
                        warn!(account = %me, %error, "account socket: delivered receipt failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
    }
}

/// Why a session ends: the close frame it sends.
struct Closing(u16, &'static str);

impl Session {
    async fn run(mut self, mut socket: WebSocket) {
        let mut shutdown = self.app.inner.shutdown.clone();
        let mut feed: Option<Feed> = None;
        let mut last_heard = Instant::now();
        let closing = loop {
            let idle = tokio::time::sleep_until((last_heard + self.limits.idle).into());
            tokio::select! {
                received = socket.recv() => {
                    last_heard = Instant::now();
                    let frame = match received {
                        Some(Ok(Message::Text(frame))) => frame,
                        Some(Ok(Message::Binary(_))) => {
                            let reply = reject(String::new(), RejectCode::Invalid, "frames are JSON text".into());
                            if write(&mut socket, &reply).await.is_err() { break None; }
                            continue;
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                        Some(Ok(_)) => continue,
                    };
                    let (reply, sync) = self.on_frame(frame.as_str()).await;
                    if let Some(since) = sync {
                        feed = match self.messages.feed(&self.me, 1).await {
                            Ok(feed) => Some(feed),
                            Err(error) => {
                                warn!(account = %self.me, %error, "account socket: cannot follow the feed");
                                break Some(Closing(close::UNAVAILABLE, "cannot follow your messages now; reconnect"));
                            }
                        };
                        self.since = since;
                    }
                    if let Some(reply) = reply && write(&mut socket, &reply).await.is_err() {
                        break Some(Closing(close::SLOW_CONSUMER, "too slow to read"));
                    }
                }
                item = next(&mut feed) => match item {
                    Some(Ok(item)) => {
                        if let Err(closing) = self.on_item(&mut socket, item).await {
                            break Some(closing);
                        }
                    }
                    // A failed read: the feed waits, then reads again from where it was.
                    Some(Err(error)) => debug!(account = %self.me, %error, "account socket: the feed recovers"),
                    None => {
                        warn!(account = %self.me, "account socket: the feed ended");
                        break Some(Closing(close::UNAVAILABLE, "direct messages are unavailable; reconnect"));
                    }
                },
                () = idle => break Some(Closing(close::IDLE, "idle")),
                () = tokio::time::sleep_until(self.expires.into()) => {
                    break Some(Closing(close::BAD_TOKEN, "the access token expired: reconnect with a fresh one"));
                }
                _ = shutdown.changed() => break Some(Closing(close::GOING_AWAY, "the server is restarting; reconnect")),
            }
        };
        if let Some(Closing(code, reason)) = closing {
            self::closing(&mut socket, code, reason).await;
        }
    }

    /// Handles a client frame: the reply, and the `since` of a `dm_sync` (which (re)starts the feed).
    async fn on_frame(&mut self, frame: &str) -> (Option<String>, Option<HashMap<Username, u64>>) {
        let frame = match serde_json::from_str::<ClientFrame>(frame) {
            Ok(frame) => frame,
            Err(error) => {
                let reply =
                    reject(String::new(), RejectCode::Invalid, format!("bad frame: {error}"));
                return (Some(reply), None);
            }
        };
        match frame {
            ClientFrame::Ping { t } => {
                (Some(text(&ServerFrame::Pong { t, server_time_ms: crate::now_ms() })), None)
            }
            ClientFrame::Dm { id, to, text: body } => (Some(self.on_dm(id, &to, body).await), None),
            ClientFrame::DmRead { id, with, up_to } => {
                let id = id.unwrap_or_default();
                let Ok(partner) = Username::parse(&with) else {
                    return (
                        Some(reject(id, RejectCode::Invalid, "with: not a username".into())),
                        None,
                    );
                };
                if !self.bucket.take(&self.limits, Instant::now()) {
                    let reply = reject(
                        id,
                        RejectCode::RateLimited,
                        "too many frames; wait a moment".into(),
                    );
                    return (Some(reply), None);
                }
                // Read is what this socket has shown: never past what it was sent.
                let up_to = up_to.min(self.since.get(&partner).copied().unwrap_or(0));
                let reply = match self
                    .messages
                    .report(&self.me, &partner, Status::Read, up_to, crate::now_ms())
                    .await
                {
                    Ok(_) => ack(id, None),
                    Err(error) => refusal(id, error),
                };
                (Some(reply), None)
            }
            ClientFrame::DmSync { id, since } => {
                let id = id.unwrap_or_default();
                // One sync per socket: each reads the account's events from the stream.
                if self.synced {
                    let reply = reject(
                        id,
                        RejectCode::Invalid,
                        "this socket is synced already; reconnect to sync again".into(),
                    );
                    return (Some(reply), None);
                }
                self.synced = true;
                let mut parsed = HashMap::with_capacity(since.len());
                for (name, seq) in since {
                    let Ok(partner) = Username::parse(&name) else {
                        return (
                            Some(reject(
                                id,
                                RejectCode::Invalid,
                                format!("since: {name:?} is not a username"),
                            )),
                            None,
                        );
                    };
                    parsed.insert(partner, seq);
                }
                (Some(ack(id, None)), Some(parsed))
            }
        }
    }

    async fn on_dm(&mut self, id: String, to: &str, body: String) -> String {
        let Ok(message_id) = uuid::Uuid::parse_str(&id) else {
            return reject(id, RejectCode::Invalid, "the id must be a uuid".into());
        };
        let Ok(to) = Username::parse(to) else {
            return reject(id, RejectCode::UnknownUser, DmRejection::UnknownUser.to_string());
        };
        let key = self.me.to_string();
        if !self.bucket.take(&self.limits, Instant::now())
            || !self.app.inner.dm_sends.take(&key, self.limits.dm_sends_per_minute, Instant::now())
        {
            return reject(id, RejectCode::RateLimited, "too many messages; wait a moment".into());
        }
        match self.messages.send(&self.me, &to, message_id, body, crate::now_ms()).await {
            Ok(sent) => ack(id, Some(sent.seq)),
            Err(error) => refusal(id, error),
        }
    }

    /// Sends what a feed event means to this socket.
    async fn on_item(&mut self, socket: &mut WebSocket, item: FeedItem) -> Result<(), Closing> {
        let Some(partner) = item.conversation.partner(&self.me).cloned() else { return Ok(()) };
        if let DmEvent::Receipt { by, delivered, .. } = &item.event
            && *by == self.me
        {
            let known = self.delivered.entry(partner.clone()).or_default();
            *known = (*known).max(*delivered);
        }
        let seen = self.since.entry(partner.clone()).or_default();
        if item.seq <= *seen {
            return Ok(());
        }
        *seen = item.seq;
        let mut delivered_to_me = None;
        match &item.event {
            DmEvent::Message { id, from, to, text: body, at_ms } => {
                let frame =
                    ServerFrame::Dm { id: *id, from, to, text: body, seq: item.seq, at_ms: *at_ms };
                write(socket, &text(&frame)).await?;
                if *from == self.me {
                    let status =
                        ServerFrame::DmStatus { id: *id, status: Status::Sent, at_ms: *at_ms };
                    write(socket, &text(&status)).await?;
                } else {
                    delivered_to_me = Some(item.seq);
                }
            }
            DmEvent::Receipt { by, status, ids, at_ms, .. } if *by != self.me => {
                for id in ids {
                    let frame = ServerFrame::DmStatus { id: *id, status: *status, at_ms: *at_ms };
                    write(socket, &text(&frame)).await?;
                }
            }
            DmEvent::Receipt { .. } => {}
        }
        // Written to one of the receiver's sockets: delivered (decided once, whoever reports).
        if let Some(seq) = delivered_to_me {
            let known = self.delivered.entry(partner.clone()).or_default();
            if seq > *known {
                *known = seq;
                self.owed.owe(&self.messages, &self.me, partner, seq);
            }
        }
        Ok(())
    }
}

async fn next(feed: &mut Option<Feed>) -> Option<Result<FeedItem, DmError>> {
    match feed {
        Some(feed) => feed.next().await,
        None => std::future::pending().await,
    }
}

async fn write(socket: &mut WebSocket, frame: &str) -> Result<(), Closing> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(frame.into()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            debug!(%error, "account socket: send failed");
            Err(Closing(close::GOING_AWAY, "gone"))
        }
        Err(_) => Err(Closing(close::SLOW_CONSUMER, "too slow to read")),
    }
}

fn ack(id: String, seq: Option<u64>) -> String {
    text(&ServerFrame::Ack { id, seq })
}

fn reject(id: String, code: RejectCode, message: String) -> String {
    text(&ServerFrame::Reject { id, code, message })
}

fn refusal(id: String, error: DmError) -> String {
    match error {
        DmError::Rejected(rejection) => {
            let code = match rejection {
                DmRejection::Invalid(_) => RejectCode::Invalid,
                DmRejection::Blocked => RejectCode::Blocked,
                DmRejection::UnknownUser => RejectCode::UnknownUser,
            };
            reject(id, code, rejection.to_string())
        }
        DmError::Unavailable(cause) => {
            warn!(%cause, "account socket: storage failed");
            reject(id, RejectCode::Unavailable, "direct messages are unavailable; retry".into())
        }
    }
}
