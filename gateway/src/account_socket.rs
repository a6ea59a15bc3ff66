//! The account socket (`GET /api/me/ws?access_token=…`, DESIGN §4b): a signed-in account's
//! direct messages, on every device it keeps one open.
//!
//! After `dm_sync` the socket joins its account's inbox on this process (`dm::Inboxes`), reads
//! what came before from the stream, skipping what the client says it has seen, then follows the
//! inbox live. A message becomes a `dm` frame on both sides' sockets and a `dm_status sent` on
//! the sender's; a receipt becomes `dm_status` frames on the sender's. Writing a message to one
//! of the receiver's sockets reports it delivered; `dm_read` reports it read. The receipts are
//! decided in the `dm` crate, once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apierror::{ApiError, ErrorKind};
use axum::extract::ws::{CloseFrame, Message};

use crate::ws::Socket as WebSocket;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use dm::{Attached, DmError, FeedItem, Inbox, Inboxes, Messages};
use events::Username;
use events::dm::{DmEvent, DmRejection, Status};

use futures::StreamExt as _;
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::App;
use crate::frames::account::{ClientFrame, RejectCode, ServerFrame};
use crate::frames::{close, text};
use crate::hub::lock;
use crate::limits::{Bucket, GatewayLimits};

/// The socket's query string.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// The account's access token.
    pub access_token: Option<String>,
}

/// How many conversations a `dm_sync` reports delivered up to what the client says it has.
const CLAIMS_REPORTED: usize = 32;

/// How long a socket may take to accept a frame before it is closed as a slow consumer.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /api/me/ws`.
pub(crate) async fn upgrade(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
    upgrade: crate::ws::Upgrade,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let ip = app.client_ip(peer, &headers);
    if !app.origin_allowed(&headers) {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "this page may not open Chanshare's sockets (CHANSHARE_ALLOWED_ORIGINS)",
        ));
    }
    // Not cloned into the socket's task: an `Accounts` is large, and the task keeps what it
    // captures for as long as the socket lives.
    let (Some(_), Some(messages), Some(inboxes)) =
        (app.inner.accounts.as_ref(), app.inner.dm.clone(), app.inner.inboxes.clone())
    else {
        return Err(ApiError::unavailable("direct messages are not served here"));
    };
    let limits = app.inner.limits;
    app.per_minute(|i| &i.sockets_opened, ip, limits.sockets_per_minute, "new sockets")?;
    let slot = app.inner.connections.open(ip, limits.connections_per_ip);
    Ok(upgrade.on_upgrade(crate::api::socket_config(&limits), move |mut socket| async move {
        let Some(_slot) = slot else {
            closing(&mut socket, close::TOO_MANY, "too many connections from this address").await;
            return;
        };
        let token = params.access_token.unwrap_or_default();
        let Some(accounts) = app.inner.accounts.as_ref() else { return };
        let claims = match Box::pin(accounts.authenticate(&token)).await {
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
            inboxes,
            me: claims.name,
            sid: claims.sid,
            written: HashMap::new(),
            inbox: None,
            bucket: Bucket::full(&limits),
            limits,
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
    inboxes: Inboxes,
    me: Username,
    /// The session its access token belongs to: signed out, the socket closes.
    sid: uuid::Uuid,
    /// Per partner, the last seq this socket wrote or its client said it has in `dm_sync` (the
    /// catch-up skips up to it; `dm_read` reads no further).
    written: HashMap<Username, u64>,
    /// The account's inbox, after `dm_sync`.
    inbox: Option<Arc<Inbox>>,
    bucket: Bucket,
    limits: GatewayLimits,
    /// Whether `dm_sync` came.
    synced: bool,
    /// When the access token it was opened with expires.
    expires: Instant,
}

/// Why a session ends: the close frame it sends.
struct Closing(u16, &'static str);

impl Session {
    async fn run(mut self, mut socket: WebSocket) {
        let mut shutdown = self.app.inner.shutdown.clone();
        let mut signed_out = self.app.inner.revocations.watch(self.sid);
        let mut live: Option<Live> = None;
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
                    // Boxed: a frame's work makes large, short-lived futures; an idle socket
                    // keeps none of them.
                    let (reply, sync) = Box::pin(self.on_frame(frame.as_str())).await;
                    if let Some(reply) = reply && write(&mut socket, &reply).await.is_err() {
                        break Some(Closing(close::SLOW_CONSUMER, "too slow to read"));
                    }
                    if let Some(since) = sync {
                        match Box::pin(self.join(&mut socket, since)).await {
                            Ok(joined) => live = Some(joined),
                            Err(closing) => break Some(closing),
                        }
                    }
                }
                item = next(&mut live) => match item {
                    Some(item) => {
                        if let Err(closing) = Box::pin(self.on_item(&mut socket, &item)).await {
                            break Some(closing);
                        }
                    }
                    // The inbox dropped this socket (a whole queue behind) or failed.
                    None => break Some(Closing(close::SLOW_CONSUMER, "too slow to read; reconnect and sync")),
                },
                () = idle => break Some(Closing(close::IDLE, "idle")),
                () = tokio::time::sleep_until(self.expires.into()) => {
                    break Some(Closing(close::BAD_TOKEN, "the access token expired: reconnect with a fresh one"));
                }
                () = signed_out.wait() => {
                    break Some(Closing(close::BAD_TOKEN, "signed out"));
                }
                _ = shutdown.changed() => break Some(Closing(close::GOING_AWAY, "the server is restarting; reconnect")),
            }
        };
        if let Some(Closing(code, reason)) = closing {
            self::closing(&mut socket, code, reason).await;
        }
    }

    /// After `dm_sync`: joins the account's inbox and writes what the client has not seen of
    /// what came before (from the stream). The live queue, with the head it follows on from.
    async fn join(
        &mut self,
        socket: &mut WebSocket,
        since: HashMap<Username, u64>,
    ) -> Result<Live, Closing> {
        let me = self.me.clone();
        let unavailable = move |error: DmError| {
            warn!(account = %me, %error, "account socket: cannot follow the messages");
            Closing(close::UNAVAILABLE, "cannot follow your messages now; reconnect")
        };
        let Attached { inbox, live, head } =
            self.inboxes.attach(&self.me).await.map_err(&unavailable)?;
        // What the client has (no claim goes past what the stream holds) it may report read,
        // and was written to one of its sockets: delivered. Its gateway may have died before it
        // said so (the newest conversations; for an inbox that knows them, this costs nothing).
        self.written = since.into_iter().map(|(partner, seq)| (partner, seq.min(head))).collect();
        let mut claimed: Vec<(&Username, u64)> = self
            .written
            .iter()
            .map(|(partner, seq)| (partner, *seq))
            .filter(|(_, seq)| *seq > 0)
            .collect();
        claimed.sort_by_key(|(_, seq)| std::cmp::Reverse(*seq));
        for (partner, seq) in claimed.into_iter().take(CLAIMS_REPORTED) {
            inbox.delivered(partner, seq);
        }
        self.inbox = Some(inbox);
        let earlier = self.messages.catch_up(&self.me, 1, head).await.map_err(&unavailable)?;
        for item in earlier {
            let Some(partner) = item.conversation.partner(&self.me) else { continue };
            if item.seq > self.written.get(partner).copied().unwrap_or(0) {
                self.on_item(socket, &item).await?;
            }
        }
        Ok(Live { queue: live, head })
    }

    /// Handles a client frame: the reply, and the `since` of a `dm_sync` (which joins the inbox).
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
                // Read is what this socket has shown: never past what it wrote.
                let up_to = up_to.min(self.written.get(&partner).copied().unwrap_or(0));
                let reply = match &self.inbox {
                    Some(inbox) if up_to > 0 => {
                        match inbox.report(&partner, Status::Read, up_to).await {
                            Ok(()) => ack(id, None),
                            Err(error) => refusal(id, error),
                        }
                    }
                    _ => ack(id, None),
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

    /// Sends what an event of the account's conversations means to this socket.
    async fn on_item(&mut self, socket: &mut WebSocket, item: &FeedItem) -> Result<(), Closing> {
        let Some(partner) = item.conversation.partner(&self.me) else { return Ok(()) };
        match &item.event {
            DmEvent::Message { id, from, to, text: body, at_ms } => {
                let frame =
                    ServerFrame::Dm { id: *id, from, to, text: body, seq: item.seq, at_ms: *at_ms };
                write(socket, &text(&frame)).await?;
                let written = self.written.entry(partner.clone()).or_default();
                *written = (*written).max(item.seq);
                if *from == self.me {
                    let status =
                        ServerFrame::DmStatus { id: *id, status: Status::Sent, at_ms: *at_ms };
                    write(socket, &text(&status)).await?;
                } else if let Some(inbox) = &self.inbox {
                    // Written to one of the receiver's sockets: delivered (decided once,
                    // whoever reports).
                    inbox.delivered(partner, item.seq);
                }
            }
            DmEvent::Receipt { by, status, ids, at_ms, .. } if *by != self.me => {
                for id in ids {
                    let frame = ServerFrame::DmStatus { id: *id, status: *status, at_ms: *at_ms };
                    write(socket, &text(&frame)).await?;
                }
            }
            // The account's own read receipt: its other devices clear their unread marks.
            DmEvent::Receipt { status: Status::Read, read, .. } => {
                write(socket, &text(&ServerFrame::DmRead { with: partner, up_to: *read })).await?;
            }
            DmEvent::Receipt { .. } => {}
        }
        Ok(())
    }
}

/// This process's account sockets by session: told when their session is revoked (signed out,
/// or a refresh token used twice), so they close at once instead of at their token's expiry.
/// Only the sockets of the revoked session wake.
#[derive(Debug, Default)]
pub(crate) struct Revocations(Mutex<HashMap<uuid::Uuid, watch::Sender<bool>>>);

impl Revocations {
    /// Follows the session bucket's revocations until the process shuts down.
    pub(crate) async fn follow(
        self: Arc<Self>,
        accounts: accounts::Accounts,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            match accounts.revocations().await {
                Ok(sessions) => {
                    let mut sessions = std::pin::pin!(sessions);
                    loop {
                        tokio::select! {
                            sid = sessions.next() => match sid {
                                Some(sid) => self.revoke(sid),
                                None => break,
                            },
                            _ = shutdown.changed() => return,
                        }
                    }
                    warn!("the session revocations ended; following them again");
                }
                Err(error) => warn!(%error, "cannot follow session revocations; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn revoke(&self, sid: uuid::Uuid) {
        if let Some(sockets) = lock(&self.0).remove(&sid) {
            sockets.send_replace(true);
        }
    }

    /// What a socket of session `sid` waits on.
    fn watch(self: &Arc<Self>, sid: uuid::Uuid) -> SignedOut {
        let revoked =
            lock(&self.0).entry(sid).or_insert_with(|| watch::channel(false).0).subscribe();
        SignedOut { sid, revoked, revocations: self.clone() }
    }
}

/// A socket's watch on its session.
struct SignedOut {
    sid: uuid::Uuid,
    revoked: watch::Receiver<bool>,
    revocations: Arc<Revocations>,
}

impl SignedOut {
    /// Resolves when the session is revoked.
    async fn wait(&mut self) {
        if self.revoked.wait_for(|revoked| *revoked).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for SignedOut {
    fn drop(&mut self) {
        let mut sessions = lock(&self.revocations.0);
        // The session's last socket here (this one's receiver is still alive).
        if sessions.get(&self.sid).is_some_and(|sockets| sockets.receiver_count() <= 1) {
            sessions.remove(&self.sid);
        }
    }
}

/// A synced socket's live queue and the head it caught up to.
struct Live {
    queue: tokio::sync::mpsc::Receiver<Arc<FeedItem>>,
    head: u64,
}

/// The next live event after the head the socket caught up to (pending until `dm_sync`).
async fn next(live: &mut Option<Live>) -> Option<Arc<FeedItem>> {
    let Some(Live { queue, head }) = live else { return std::future::pending().await };
    loop {
        let item = queue.recv().await?;
        if item.seq > *head {
            return Some(item);
        }
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
