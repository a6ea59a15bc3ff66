//! The room WebSocket: join (or rejoin), the initial snapshot or resume, then commits in
//! version order exactly once, commands forwarded with the member's verified identity.
//!
//! A session runs over any [`Transport`] (the gateway's WebSocket, or in-memory channels in the fast
//! tier) against any [`Rooms`] (the service, or the domain alone in memory).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use events::{AccountRef, Command, MemberId, RejectCode, RoomId};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{Instrument as _, debug, warn};

use crate::Metrics;
use crate::frames::{self, ClientFrame, Reply, Welcome, close, text};
use crate::hub::{Frame, Hub};
use crate::limits::{Bucket, GatewayLimits, PerMinute};
use crate::rooms::Rooms;

/// The socket's query string: `?name=..&token=..&resume=V&epoch=E`.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// Nickname (required for a new member).
    pub name: Option<String>,
    /// A token from an earlier welcome.
    pub token: Option<String>,
    /// An account's access token: the member is the account's (the same on every device).
    pub access_token: Option<String>,
    /// The last version the client has.
    pub resume: Option<u64>,
    /// The epoch that version belongs to.
    pub epoch: Option<String>,
    /// `1`: the client takes `commits` frames (several commits in one).
    pub batch: Option<u8>,
}

/// What every socket session on this process shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sessions(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    rooms: Arc<dyn Rooms>,
    signer: tokens::Signer,
    limits: GatewayLimits,
    epoch: String,
    token_ttl: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
    metrics: Metrics,
    /// New members per room and minute (on this process).
    joins: PerMinute<RoomId>,
    /// Lookups of rooms that do not exist, per address and minute (shared with the HTTP API).
    misses: Arc<PerMinute<IpAddr>>,
    /// Checks access tokens (`None`: accounts are not served, and access tokens are refused).
    accounts: Option<accounts::Accounts>,
    /// Join commands this process may have in flight ([`JOINS_IN_FLIGHT`]).
    join_slots: tokio::sync::Semaphore,
}

/// Join commands one gateway sends at once; later joins wait for a slot here. When a gateway
/// dies, its members come back through the others within a second: 15 000 joins at once, which
/// queued in the commands service past the request timeout and were refused (4503, and the
/// clients retried) until the gateways took them in turn (`storm` benchmark).
pub(crate) const JOINS_IN_FLIGHT: usize = 64;
/// How long a join waits for a slot before it is told to retry: less than the web client waits
/// for its welcome (7 s), so a join is not still queued after its page gave up on it.
const JOIN_WAIT: Duration = Duration::from_secs(5);

/// What [`Sessions`] are made from.
#[derive(Debug)]
pub struct SessionParts {
    /// The room service.
    pub rooms: Arc<dyn Rooms>,
    /// Verifies and issues member tokens.
    pub signer: tokens::Signer,
    /// Limits.
    pub limits: GatewayLimits,
    /// The log's epoch (resumes from another are refused).
    pub epoch: String,
    /// Member token lifetime.
    pub token_ttl: Duration,
    /// Flips to true when the process shuts down: sockets are told to go away.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Metrics.
    pub metrics: Metrics,
    /// Lookups of missing rooms per address (the HTTP API counts them too).
    pub misses: Arc<PerMinute<IpAddr>>,
    /// Checks access tokens.
    pub accounts: Option<accounts::Accounts>,
}

impl Sessions {
    /// Sessions over `parts`.
    pub fn new(parts: SessionParts) -> Self {
        let SessionParts {
            rooms,
            signer,
            limits,
            epoch,
            token_ttl,
            shutdown,
            metrics,
            misses,
            accounts,
        } = parts;
        Self(Arc::new(Shared {
            rooms,
            signer,
            limits,
            epoch,
            token_ttl,
            shutdown,
            metrics,
            joins: PerMinute::default(),
            misses,
            accounts,
            join_slots: tokio::sync::Semaphore::new(JOINS_IN_FLIGHT),
        }))
    }

    /// Sends `command` to the room as `member`; the reply in wire form.
    async fn command(
        &self,
        room: &RoomId,
        member: &MemberId,
        id: String,
        command: Command,
    ) -> Reply {
        let Ok(command_id) = uuid::Uuid::parse_str(&id) else {
            return Reply::Reject {
                id,
                code: RejectCode::Invalid,
                message: "the command id must be a uuid".into(),
            };
        };
        let request = protocol::CommandRequest {
            id: events::CommandId(command_id),
            actor: events::Actor::Member(member.clone()),
            command,
            traceparent: telemetry::current_traceparent(),
        };
        match self.0.rooms.command(room, request).await {
            Ok(protocol::CommandReply::Accepted { version }) => Reply::Ack { id, version },
            Ok(
                protocol::CommandReply::Rejected { code, message }
                | protocol::CommandReply::Error { code, message },
            ) => Reply::Reject { id, code, message },
            Err(error) => {
                warn!(%room, %error, "command not answered");
                Reply::Reject {
                    id,
                    code: RejectCode::Unavailable,
                    message: "the room service is unavailable, retry".into(),
                }
            }
        }
    }

    /// Counts a lookup of a room that does not exist from `ip`.
    fn missed(&self, ip: IpAddr) {
        self.0.misses.take(&tokens::subscriber(ip), usize::MAX, Instant::now());
    }
}

/// A client connection a session runs over: the gateway's WebSocket ([`crate::ws`]), or channels in tests.
pub trait Transport: Send {
    /// The client's next message; `None` once the connection is gone.
    fn recv(&mut self) -> impl Future<Output = Option<Result<Message, axum::Error>>> + Send;
    /// Sends `message` to the client.
    fn send(&mut self, message: Message) -> impl Future<Output = Result<(), axum::Error>> + Send;
}

impl Transport for crate::ws::Socket {
    fn recv(&mut self) -> impl Future<Output = Option<Result<Message, axum::Error>>> + Send {
        crate::ws::Socket::recv(self)
    }

    fn send(&mut self, message: Message) -> impl Future<Output = Result<(), axum::Error>> + Send {
        crate::ws::Socket::send(self, message)
    }
}

struct Closing(u16, &'static str);

/// How long a socket may take to accept a frame before it is closed as a slow consumer.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the closing frame may wait for room in the client's buffer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs one socket until it closes.
pub async fn run(
    sessions: Sessions,
    mut socket: impl Transport,
    room: RoomId,
    params: Params,
    ip: IpAddr,
) {
    let mut left = None;
    let result = session(&sessions, &mut socket, &room, params, ip, &mut left).await;
    let Closing(code, reason) = match result {
        Ok(closing) | Err(closing) => closing,
    };
    sessions.0.metrics.closes.with_label_values(&[&code.to_string()]).inc();
    // Bounded: a client that stopped reading has no room for it either, and must not keep the
    // session (its slot, its place in the room's hub) for ever.
    let close = Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }));
    tokio::time::timeout(CLOSE_TIMEOUT, socket.send(close)).await.ok();
    if let Some(member) = left {
        tokio::spawn(leave_after_grace(sessions, room, member, crate::now_ms()));
    }
}

/// A member closed a socket on purpose (the tab was closed): unless they come back within the
/// grace period (a reload, a quick reconnect to any gateway), they go offline at once instead of
/// after the presence timeout.
async fn leave_after_grace(sessions: Sessions, room: RoomId, member: MemberId, closed_ms: u64) {
    let shared = &sessions.0;
    tokio::time::sleep(shared.limits.leave_grace).await;
    if *shared.shutdown.borrow() || shared.rooms.has_member(&room, &member) {
        return;
    }
    // A socket on another gateway beats when it joins: a beat after the close means they are back.
    if shared.rooms.seen(&room, &member).await.is_some_and(|at| at > closed_ms) {
        return;
    }
    let leave = Command::Leave { reason: events::LeaveReason::Disconnected };
    if let Reply::Reject { code, message, .. } =
        sessions.command(&room, &member, uuid::Uuid::new_v4().to_string(), leave).await
        && code != RejectCode::Closed
    {
        debug!(%room, %member, %code, %message, "leave on disconnect refused");
    }
}

/// A socket that has joined: who it is, where it is, and its place in the room's feed.
struct Joined {
    member: MemberId,
    /// The account it joined as (a rejoin must say it again: an account's member is joined
    /// only with its account).
    account: Option<AccountRef>,
    last: u64,
    commits: broadcast::Receiver<Frame>,
    _guard: MemberGuard,
}

/// Brings a member with an open socket back online (a join without a name keeps theirs).
async fn rejoin(
    sessions: Sessions,
    room: RoomId,
    member: MemberId,
    account: Option<AccountRef>,
    ip: IpAddr,
) {
    let address = Some(sessions.0.signer.address_tag(&room, ip));
    let join = Command::Join { name: String::new(), address, account };
    if let Reply::Reject { code, message, .. } =
        sessions.command(&room, &member, uuid::Uuid::new_v4().to_string(), join).await
    {
        debug!(%room, %member, %code, %message, "rejoin refused");
    }
}

/// Runs a socket's join and live loop; `left` is set when the client closed it on purpose.
async fn session(
    sessions: &Sessions,
    socket: &mut impl Transport,
    room: &RoomId,
    params: Params,
    ip: IpAddr,
    left: &mut Option<MemberId>,
) -> Result<Closing, Closing> {
    // The join runs once; boxed, its futures (NATS requests, log and Redis reads) do not size
    // the state every idle socket keeps for its lifetime (7 KB unboxed, docs/benchmarks.md).
    let batch = params.batch == Some(1);
    let Joined { member, account, mut last, mut commits, _guard } =
        Box::pin(join(sessions, socket, room, params, ip)).await?;
    let shared = &sessions.0;

    // Live: commits from the hub (gaps filled from the log), commands and pings from the client.
    // What woke the socket is decided first and handled after, so the waiting futures and the
    // handling ones never occupy the socket's state at the same time.
    let mut replies = Replies::default();
    let mut bucket = Bucket::full(&shared.limits);
    let mut last_command = None;
    let mut shutdown = shared.shutdown.clone();
    let mut deadline = tokio::time::Instant::now() + shared.limits.idle;
    loop {
        let wake = tokio::select! {
            frame = commits.recv() => Wake::Commit(frame),
            reply = replies.recv() => Wake::Reply(reply),
            message = socket.recv() => Wake::Client(message),
            () = tokio::time::sleep_until(deadline) => return Ok(Closing(close::IDLE, "idle")),
            () = stopping(&mut shutdown) => return Ok(Closing(close::GOING_AWAY, "server shutting down: reconnect")),
        };
        match wake {
            Wake::Commit(Ok(frame)) => {
                let offline = frame.takes_offline(&member);
                let to = To { room, member: &member, batch };
                last = deliver(sessions, socket, &to, last, frame).await?;
                if offline {
                    // Shown offline while connected (a leave that raced a reconnect, another
                    // tab's clean close, a heartbeat gap): say it is back.
                    let account = account.clone();
                    tokio::spawn(rejoin(
                        sessions.clone(),
                        room.clone(),
                        member.clone(),
                        account,
                        ip,
                    ));
                }
            }
            Wake::Commit(Err(broadcast::error::RecvError::Lagged(_))) => {
                return Ok(Closing(close::SLOW_CONSUMER, "too far behind: reconnect and resume"));
            }
            Wake::Commit(Err(broadcast::error::RecvError::Closed)) => {
                return Ok(Closing(close::UNAVAILABLE, "room feed ended"));
            }
            Wake::Reply(reply) => send(sessions, socket, text(&reply).into()).await?,
            Wake::Client(message) => {
                deadline = tokio::time::Instant::now() + shared.limits.idle;
                shared.metrics.frames_in.inc();
                let reply = match message {
                    Some(Ok(Message::Text(body))) => {
                        let forward = Forward { sessions, room, member: &member };
                        handle_frame(&forward, &body, &mut bucket, &mut last_command, &mut replies)
                    }
                    Some(Ok(Message::Binary(_))) => Some(Reply::Reject {
                        id: String::new(),
                        code: RejectCode::Invalid,
                        message: "binary frames are not part of the protocol".into(),
                    }),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Ok(Message::Close(_))) => {
                        *left = Some(member);
                        return Ok(Closing(1000, "bye"));
                    }
                    None => return Ok(Closing(1000, "bye")),
                    Some(Err(error)) => {
                        debug!(%room, %error, "socket error");
                        return Ok(Closing(close::TOO_BIG, "frame too large or malformed"));
                    }
                };
                if let Some(reply) = reply {
                    send(sessions, socket, text(&reply).into()).await?;
                }
            }
        }
    }
}

/// What woke a live socket.
enum Wake {
    Commit(Result<Frame, broadcast::error::RecvError>),
    Reply(Reply),
    Client(Option<Result<Message, axum::Error>>),
}

/// The answers to a socket's commands, which are decided in the background. The channel is
/// made on the socket's first command: most sockets only watch.
#[derive(Default)]
struct Replies {
    channel: Option<(mpsc::Sender<Reply>, mpsc::Receiver<Reply>)>,
    /// Commands sent and not answered yet.
    waiting: usize,
}

/// Commands a socket may have waiting for their answers. Beyond, a command is refused at once: a
/// client sending faster than its room decides (an overloaded service, a flood within the rate)
/// would otherwise queue tasks without bound (a soak of 2 000 sockets grew the gateway by 200 MiB
/// a minute).
const MAX_WAITING: usize = 16;

impl Replies {
    /// A sender for one more command's answer; `None` when too many are waiting.
    fn sender(&mut self) -> Option<mpsc::Sender<Reply>> {
        if self.waiting >= MAX_WAITING {
            return None;
        }
        self.waiting += 1;
        Some(self.channel.get_or_insert_with(|| mpsc::channel(8)).0.clone())
    }

    /// The next answer; never resolves while there is nothing to wait for.
    async fn recv(&mut self) -> Reply {
        if let Some((_, rx)) = &mut self.channel
            && let Some(reply) = rx.recv().await
        {
            self.waiting = self.waiting.saturating_sub(1);
            return reply;
        }
        std::future::pending().await
    }
}

/// Where a socket's commands go, and as whom.
struct Forward<'a> {
    sessions: &'a Sessions,
    room: &'a RoomId,
    member: &'a MemberId,
}

/// Identifies the member, joins the room, and brings the client up to the head: a resume from
/// its version or a snapshot, then the log up to the head.
async fn join(
    sessions: &Sessions,
    socket: &mut impl Transport,
    room: &RoomId,
    params: Params,
    ip: IpAddr,
) -> Result<Joined, Closing> {
    let shared = &sessions.0;
    // Who: a verified token keeps the member id; otherwise a new member.
    let now_s = crate::now_ms() / 1000;
    let account = match (&params.access_token, &shared.accounts) {
        (None, _) => None,
        (Some(access), Some(accounts)) => match accounts.authenticate(access).await {
            Ok(claims) => Some(AccountRef { account_id: claims.sub, username: claims.name }),
            Err(accounts::AccountError::Unavailable(error)) => {
                warn!(%room, %error, "cannot check an access token");
                return Err(Closing(close::UNAVAILABLE, "accounts unavailable, retry"));
            }
            Err(_) => return Err(Closing(close::BAD_TOKEN, "sign in again")),
        },
        (Some(_), None) => return Err(Closing(close::BAD_TOKEN, "accounts are not served here")),
    };
    // The member: the account's (the same on every device), the one a verified token names (its
    // token kept), or a new one; a member without a token gets one.
    let (member, token) = match (&account, &params.token) {
        (Some(account), _) => (shared.signer.account_member(room, &account.account_id), None),
        (None, Some(token)) => match shared.signer.verify(token, room, now_s) {
            Ok(claims) => (claims.member, Some(token.clone())),
            Err(_) => return Err(Closing(close::BAD_TOKEN, "invalid token")),
        },
        (None, None) => {
            // New members are what a bot flood is made of: a room takes so many a minute.
            let limit = shared.limits.joins_per_minute;
            if !shared.joins.take(room, limit, Instant::now()) {
                return Err(Closing(close::TOO_MANY, "too many people joined this room just now"));
            }
            (MemberId::generate(uuid::Uuid::new_v4().as_u128() as u64), None)
        }
    };
    let token = token.unwrap_or_else(|| {
        shared.signer.issue(&tokens::Claims {
            room: room.clone(),
            member: member.clone(),
            role: tokens::TokenRole::Member,
            exp: now_s + shared.token_ttl.as_secs(),
        })
    });
    // Empty keeps a returning member's name; a new member without one is refused by the room.
    let name = params.name.clone().unwrap_or_default();

    // A slot for the join command, taken before subscribing (a socket waiting here must not
    // fall behind its room's ring), given up once the command is answered.
    let mut shutdown = shared.shutdown.clone();
    let slot = tokio::select! {
        slot = tokio::time::timeout(JOIN_WAIT, shared.join_slots.acquire()) => slot
            .ok()
            .and_then(Result::ok)
            .ok_or(Closing(close::UNAVAILABLE, "room unavailable, retry"))?,
        () = stopping(&mut shutdown) => {
            return Err(Closing(close::GOING_AWAY, "server shutting down: reconnect"));
        }
    };

    // Position first: subscribe before reading anything, so nothing falls between.
    let hub = shared
        .rooms
        .hub(room)
        .await
        .map_err(|_| Closing(close::UNAVAILABLE, "fan-out unavailable"))?;
    let commits = hub.feed.tx.subscribe();
    let member_guard = MemberGuard::new(hub.clone(), member.clone());
    let address = Some(shared.signer.address_tag(room, ip));
    let join = Command::Join { name, address, account: account.clone() };
    let joined = sessions.command(room, &member, uuid::Uuid::new_v4().to_string(), join).await;
    drop(slot);
    if let Reply::Reject { code, message, .. } = &joined {
        return Err(match code {
            RejectCode::NotFound => {
                sessions.missed(ip);
                Closing(close::NOT_FOUND, "no such room")
            }
            RejectCode::Closed => Closing(close::CLOSED, "room is closed"),
            RejectCode::Forbidden if message == events::decide::ROOM_FULL => {
                Closing(close::FULL, "room is full")
            }
            RejectCode::Forbidden if message == events::decide::SIGN_IN_FIRST => {
                Closing(close::BAD_TOKEN, "sign in to join as this member")
            }
            RejectCode::Forbidden => Closing(close::FORBIDDEN, REMOVED),
            RejectCode::Invalid => {
                Closing(close::BAD_REQUEST, "a name of 1 to 32 characters is required")
            }
            _ => Closing(close::UNAVAILABLE, "room unavailable, retry"),
        });
    }
    shared.rooms.beat(room, &member, crate::now_ms()).await;

    // Resume from the client's version when possible, else a snapshot; then the log up to its head.
    let head = shared.rooms.head(room).await.map_err(|error| {
        warn!(%room, %error, "cannot read the room head for a join");
        Closing(close::UNAVAILABLE, "log unavailable")
    })?;
    let resume = params.resume.filter(|&v| {
        params.epoch.as_deref() == Some(shared.epoch.as_str())
            && v <= head
            && head - v <= shared.limits.resume_cap
    });
    // The commits after the client's version, unless they have left the log (retention).
    let missed = match resume {
        Some(v) if v < head => match shared.rooms.read(room, v).await {
            Ok(commits) => Some((v, Some(commits))),
            Err(eventlog::LogError::Expired { .. }) => None,
            Err(error) => {
                warn!(%room, %error, "cannot read the commits a resume missed");
                return Err(Closing(close::UNAVAILABLE, "log unavailable"));
            }
        },
        Some(v) => Some((v, None)),
        None => None,
    };
    let resumable = missed.is_some();
    // What is sent from the log: up to the head, except after the hub's own state (the commits
    // after it reach this socket through the hub, which it joined before reading anything).
    let (mut last, snapshot, missed, until) = match missed {
        Some((v, commits)) => (v, None, commits, head),
        None => match hub.feed.snapshot() {
            Some((version, state)) => (version, Some(state), None, version),
            None => {
                let (version, state) = shared.rooms.join_state(room).await.map_err(|error| {
                    warn!(%room, %error, "cannot read the room state for a join");
                    Closing(close::UNAVAILABLE, "state unavailable")
                })?;
                (version, Some(state), None, head)
            }
        },
    };
    let outcome = if resumable { "recovered" } else { "snapshot" };
    shared.metrics.joins.with_label_values(&[outcome]).inc();
    let welcome =
        Welcome::new(&member, &token, &shared.epoch, head.max(last), resumable, crate::now_ms());
    send(sessions, socket, text(&welcome).into()).await?;
    if let Some(state) = snapshot {
        send(sessions, socket, frames::snapshot(last, &state).into()).await?;
    }
    last = catch_up(sessions, socket, room, &member, last, until, missed).await?;
    Ok(Joined { member, account, last, commits, _guard: member_guard })
}

/// Resolves once the process is shutting down.
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        // No sender: nobody will ever ask this socket to go away.
        std::future::pending::<()>().await;
    }
}

/// Sends the room's commits after `last` up to `until` from `commits`, or from the log when
/// they have not been read yet.
async fn catch_up(
    sessions: &Sessions,
    socket: &mut impl Transport,
    room: &RoomId,
    member: &MemberId,
    mut last: u64,
    until: u64,
    commits: Option<eventlog::Commits>,
) -> Result<u64, Closing> {
    if until <= last {
        return Ok(last);
    }
    let mut commits = match commits {
        Some(commits) => commits,
        None => sessions.0.rooms.read(room, last).await.map_err(|error| {
            warn!(%room, %error, "cannot read the commits a join missed");
            Closing(close::UNAVAILABLE, "log unavailable")
        })?,
    };
    while let Some(item) = commits.next().await {
        let stored = item.map_err(|error| {
            warn!(%room, %error, "a join's read of the log failed");
            Closing(close::UNAVAILABLE, "log unreadable")
        })?;
        if stored.commit.version != last + 1 || stored.commit.version > until {
            break;
        }
        last = stored.commit.version;
        let frame = Frame::of(&stored);
        send(sessions, socket, frame.text.clone()).await?;
        if frame.kicks(member) {
            return Err(Closing(close::FORBIDDEN, REMOVED));
        }
    }
    Ok(last)
}

/// The close reason of a kicked member's sockets, and of a join the room refuses.
const REMOVED: &str = "removed from this room";

/// Who a live frame goes to.
struct To<'a> {
    room: &'a RoomId,
    member: &'a MemberId,
    /// Whether the client takes `commits` frames.
    batch: bool,
}

/// Sends a live frame unless the client has it (of a batch, the commits it lacks); fills a gap
/// before it from the log.
async fn deliver(
    sessions: &Sessions,
    socket: &mut impl Transport,
    to: &To<'_>,
    last: u64,
    frame: Frame,
) -> Result<u64, Closing> {
    if frame.version <= last {
        return Ok(last);
    }
    let (room, member) = (to.room, to.member);
    // A gap is rare: its catch-up (a log read) is boxed so that it does not size every socket.
    let last = if frame.first <= last + 1 {
        last
    } else {
        Box::pin(catch_up(sessions, socket, room, member, last, frame.first - 1, None)).await?
    };
    if frame.first > last + 1 {
        return Err(Closing(close::UNAVAILABLE, "commits missing from the log: reconnect"));
    }
    let age_ms = crate::now_ms().saturating_sub(frame.at_ms);
    sessions.0.metrics.delivery_seconds.observe(age_ms as f64 / 1000.0);
    if frame.first == last + 1 && (to.batch || frame.parts.is_none()) {
        send(sessions, socket, frame.text.clone()).await?;
    } else {
        // Joined while the frame was held (its state has the first commits), or one at a time.
        let texts = frame.after(last);
        if to.batch && texts.len() > 1 {
            let rest = crate::frames::commits(texts.iter().map(Utf8Bytes::as_str));
            send(sessions, socket, rest.into()).await?;
        } else {
            for text in texts {
                send(sessions, socket, text).await?;
            }
        }
    }
    if frame.kicks(member) {
        return Err(Closing(close::FORBIDDEN, REMOVED));
    }
    Ok(frame.version)
}

async fn send(
    sessions: &Sessions,
    socket: &mut impl Transport,
    text: Utf8Bytes,
) -> Result<(), Closing> {
    sessions.0.metrics.frames_out.inc();
    // A client that stops reading blocks its own socket only; it is dropped after a while.
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Closing(1000, "gone")),
        Err(_) => Err(Closing(close::SLOW_CONSUMER, "not reading: reconnect and resume")),
    }
}

/// Handles one text frame: a `ping` is answered at once, a command is forwarded in the
/// background (its `ack` or `reject` arrives through `replies`).
fn handle_frame(
    forward: &Forward<'_>,
    body: &str,
    bucket: &mut Bucket,
    last_command: &mut Option<oneshot::Receiver<()>>,
    replies: &mut Replies,
) -> Option<Reply> {
    let Forward { sessions, room, member } = *forward;
    let invalid = |id: String, message: String| {
        Some(Reply::Reject { id, code: RejectCode::Invalid, message })
    };
    let frame = match serde_json::from_str::<ClientFrame>(body) {
        Ok(frame) => frame,
        Err(error) => return invalid(String::new(), format!("bad frame: {error}")),
    };
    match frame {
        ClientFrame::Ping { t } => Some(Reply::Pong { t, server_time_ms: crate::now_ms() }),
        ClientFrame::Command { id, command } => {
            if uuid::Uuid::parse_str(&id).is_err() {
                return invalid(id, "the command id must be a uuid".into());
            }
            let command: Command = match events::json::from_value(command) {
                Ok(command) => command,
                Err(error) => return invalid(id, format!("bad command: {error}")),
            };
            if !command.is_client_command() {
                return invalid(id, format!("{} is not a client command", command.name()));
            }
            if !bucket.take(&sessions.0.limits, Instant::now()) {
                return Some(Reply::Reject {
                    id,
                    code: RejectCode::RateLimited,
                    message: "too many commands: slow down".into(),
                });
            }
            let Some(replies) = replies.sender() else {
                return Some(Reply::Reject {
                    id,
                    code: RejectCode::RateLimited,
                    message: "too many commands waiting for an answer: slow down".into(),
                });
            };
            let span = tracing::info_span!("gateway.command", %room, command = command.name());
            let (sessions, room, member) = (sessions.clone(), room.clone(), member.clone());
            // A socket's commands are decided in the order it sent them: each waits for the
            // one before (a member's "seek" then "play" must not land as "play" then "seek").
            let (done, next) = oneshot::channel();
            let previous = last_command.replace(next);
            tokio::spawn(
                async move {
                    if let Some(previous) = previous {
                        previous.await.ok();
                    }
                    let reply = sessions.command(&room, &member, id, command).await;
                    replies.send(reply).await.ok();
                    done.send(()).ok();
                }
                .instrument(span),
            );
            None
        }
    }
}

/// Counts a member's socket on the room's hub while the socket lives.
struct MemberGuard {
    hub: Arc<Hub>,
    member: MemberId,
}

impl MemberGuard {
    fn new(hub: Arc<Hub>, member: MemberId) -> Self {
        *hub.members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(member.clone())
            .or_default() += 1;
        Self { hub, member }
    }
}

impl Drop for MemberGuard {
    fn drop(&mut self) {
        let mut members = self.hub.members.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = members.get_mut(&self.member) {
            *count -= 1;
            if *count == 0 {
                members.remove(&self.member);
            }
        }
    }
}

#[cfg(test)]
mod memory;
#[cfg(test)]
mod tests;
