//! The room event log on NATS JetStream: the only code that writes room events.
//!
//! One stream (`CHANSHARE_ROOMS`), one subject per room (`chanshare.room.<room>`), one message
//! per [`Commit`]. Appends are optimistic: each carries the stream sequence of the room's
//! previous commit (`Nats-Expected-Last-Subject-Sequence`), so two writers cannot both extend a
//! room, and a `Nats-Msg-Id` of `<room>:<actor>:<command_id>`, so a retried command is stored once
//! (and a command id is its actor's: nobody can pre-empt another's command by reusing its id).
//!
//! # Layout
//! - [`subjects`]: stream, subject and header names (pinned).
//! - [`setup`]: applies `infra/jetstream/` (the room and snapshot streams) to the server.
//! - [`EventLog`]: append, head, read, follow, and reads across all rooms.
//! - [`snapshot`]: each room's folded state at a version, kept in its own stream, so that the room
//!   stream may expire old commits and cold readers start near the head.
//! - [`consumer`]: durable consumers (projectors) with explicit acknowledgement.
//! - [`LogError`]: failures by kind.

pub mod consumer;
pub mod error;
pub mod setup;
pub mod snapshot;
pub mod subjects;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream as JsStream};
use async_nats::jetstream::{self, Context};
use events::{Commit, RoomId, codec};
use futures::stream::{self, BoxStream, StreamExt};

pub use consumer::{Delivery, Durable, Lag};
pub use error::LogError;
pub use setup::{StreamChange, StreamSettings};
pub use snapshot::Snapshot;
use subjects::headers;

/// How long a JetStream request (an append's acknowledgement, a direct get) may take before it
/// counts as unavailable. Short, so an append to a stream leader that just died fails fast and the
/// (idempotent) retry reaches the new leader: measured on a 3-node cluster, the default 5 s made
/// writes pause for over 5 s when the leader was killed.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn context(client: async_nats::Client) -> Context {
    jetstream::ContextBuilder::new().timeout(REQUEST_TIMEOUT).build(client)
}

/// How far back `read`/`follow` walk the back-links with direct gets before they use an
/// ordered consumer instead. Resumes are short; long catch-ups stream.
const WALK_LIMIT: u64 = 64;

/// Where a commit is: its stream sequence and its room version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Stream sequence (across all rooms).
    pub seq: u64,
    /// Room version (1, 2, 3, … per room).
    pub version: u64,
}

/// A commit read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its stream sequence.
    pub seq: u64,
    /// The stream sequence of the room's previous commit (0 for the first).
    pub prev_seq: u64,
    /// The commit.
    pub commit: Commit,
    /// The W3C trace context it was appended with.
    pub traceparent: Option<String>,
}

impl Stored {
    /// Its position.
    pub fn position(&self) -> Position {
        Position { seq: self.seq, version: self.commit.version }
    }
}

/// The outcome of an accepted append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Where the commit is.
    pub position: Position,
    /// The command id had been stored already (within the duplicate window): `position` is
    /// that earlier commit's, and nothing new was stored.
    pub duplicate: bool,
}

/// A stream of commits.
pub type Commits = BoxStream<'static, Result<Stored, LogError>>;

/// A handle on the room log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventLog {
    js: Context,
    stream: JsStream,
    snapshots: JsStream,
}

impl EventLog {
    /// Applies the stream definitions with `settings` (or just a replica count) and returns a
    /// handle; the [`StreamChange`] is the room stream's.
    pub async fn connect(
        client: async_nats::Client,
        settings: impl Into<StreamSettings>,
    ) -> Result<(Self, StreamChange), LogError> {
        let js = context(client);
        let applied = setup::apply(&js, settings.into()).await?;
        Ok((Self::handles(js).await?, applied))
    }

    /// Opens the existing streams without applying their definitions (for read-only tools).
    pub async fn open(client: async_nats::Client) -> Result<Self, LogError> {
        Self::handles(context(client)).await
    }

    async fn handles(js: Context) -> Result<Self, LogError> {
        let stream = js.get_stream(subjects::STREAM).await.map_err(LogError::unavailable)?;
        let snapshots =
            js.get_stream(subjects::SNAPSHOT_STREAM).await.map_err(LogError::unavailable)?;
        Ok(Self { js, stream, snapshots })
    }

    /// Appends `commit` to its room, provided the room's last commit is at stream sequence
    /// `expected_seq` (0: the room has no commits yet, i.e. create-if-absent).
    ///
    /// A conflict means another commit got there first. Note that re-sending an append that
    /// already landed, with the same `expected_seq`, also reports a conflict (JetStream checks
    /// the sequence before the dedupe id): after a conflict or a timeout, look for the command
    /// id in the room's latest commits before deciding again.
    pub async fn append(
        &self,
        expected_seq: u64,
        commit: &Commit,
        traceparent: Option<&str>,
    ) -> Result<Appended, LogError> {
        let payload = codec::encode(commit).map_err(|e| LogError::Invalid(e.to_string()))?;
        let mut publish = PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("{}:{}:{}", commit.room, commit.actor, commit.command_id))
            .expected_last_subject_sequence(expected_seq)
            .header(headers::VERSION, commit.version.to_string().as_str())
            .header(headers::SCHEMA, codec::SCHEMA.to_string().as_str());
        if let Some(traceparent) = traceparent {
            publish = publish.header(headers::TRACEPARENT, traceparent);
        }
        let subject = subjects::room(&commit.room);
        // The one place room commits are published (ARCHITECTURE.md invariant 2).
        #[allow(clippy::disallowed_methods)]
        let ack = match self.js.send_publish(subject, publish).await {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        match ack {
            Ok(ack) if ack.duplicate => {
                Ok(Appended { position: self.position_of(ack.sequence).await?, duplicate: true })
            }
            Ok(ack) => Ok(Appended {
                position: Position { seq: ack.sequence, version: commit.version },
                duplicate: false,
            }),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                Err(LogError::Conflict { current: self.head(&commit.room).await? })
            }
            Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                Err(LogError::Invalid(e.to_string()))
            }
            Err(e) => Err(LogError::unavailable(e)),
        }
    }

    /// The room's last commit, `None` when it has none. Served by any replica (direct get), so
    /// it may trail a write that was just acknowledged elsewhere.
    pub async fn head(&self, room: &RoomId) -> Result<Option<Position>, LogError> {
        match self.stream.direct_get_last_for_subject(subjects::room(room)).await {
            Ok(message) => Ok(Some(Position {
                seq: message.sequence,
                version: version_header(&message.headers, message.sequence)?,
            })),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(LogError::unavailable(e)),
        }
    }

    /// The commit at stream sequence `seq`, `None` when the stream does not hold it (never
    /// stored, or expired by retention).
    pub async fn get(&self, seq: u64) -> Result<Option<Stored>, LogError> {
        match self.stream.direct_get(seq).await {
            Ok(message) => stored(message.sequence, &message.headers, &message.payload).map(Some),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(LogError::unavailable(e)),
        }
    }

    /// The room's commits with versions after `after_version`, in order, up to its head when
    /// called. [`LogError::Expired`] when the first of them has left the stream (retention).
    pub async fn read(&self, room: &RoomId, after_version: u64) -> Result<Commits, LogError> {
        self.read_at(room, after_version, self.head(room).await?).await
    }

    /// [`Self::read`] up to `head`, the room's head read just before.
    pub(crate) async fn read_at(
        &self,
        room: &RoomId,
        after_version: u64,
        head: Option<Position>,
    ) -> Result<Commits, LogError> {
        let mut commits = self.read_unchecked(room, after_version, head).await?.peekable();
        if let Some(Ok(first)) = std::pin::Pin::new(&mut commits).peek().await
            && first.commit.version != after_version + 1
        {
            return Err(LogError::Expired { after: after_version });
        }
        Ok(commits.boxed())
    }

    async fn read_unchecked(
        &self,
        room: &RoomId,
        after_version: u64,
        head: Option<Position>,
    ) -> Result<Commits, LogError> {
        let Some(head) = head else {
            return Ok(stream::empty().boxed());
        };
        if head.version <= after_version {
            return Ok(stream::empty().boxed());
        }
        if head.version - after_version <= WALK_LIMIT {
            match self.walk_back(head, after_version).await {
                Ok(commits) => return Ok(stream::iter(commits.into_iter().map(Ok)).boxed()),
                // A message the walk cannot decode or follow: read with a consumer instead,
                // which reports it in place and goes on.
                Err(LogError::Decode { .. } | LogError::MissingHeader { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let start = self.start_seq(room, after_version, head).await;
        let commits = self.ordered(subjects::room(room), start, Some(head.seq)).await?;
        Ok(after(commits, after_version))
    }

    /// The stream sequence a read of `room` after `after_version` starts at: the smallest
    /// sequence whose next commit of the room is past `after_version`, found by bisecting the
    /// stream with direct gets (`next_by_subject`; about log2 of the stream's length) instead of a
    /// consumer that starts at sequence 1 and skips every earlier commit of the room. `head` is
    /// past `after_version`. Any failure answers 1: the read is then slower, not wrong (commits
    /// up to `after_version` are skipped either way).
    pub async fn start_seq(&self, room: &RoomId, after_version: u64, head: Position) -> u64 {
        let subject = subjects::room(room);
        let (mut lo, mut hi) = (1, head.seq);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let Ok(message) = self.stream.direct_get_next_for_subject(&subject, Some(mid)).await
            else {
                return 1;
            };
            let Ok(version) = version_header(&message.headers, message.sequence) else {
                return 1;
            };
            if version > after_version {
                hi = mid;
            } else {
                lo = message.sequence + 1;
            }
        }
        lo
    }

    /// The room folded while `keep(version, at_ms)` holds for its commits (stops at the first it
    /// refuses), e.g. `|_, _| true` for the current state or `|v, _| v <= 7` for version 7.
    /// `keep` must hold for a prefix of the history. Starts from the room's snapshot when `keep`
    /// holds for it, else from the latest checkpoint it holds for, else from the first commit
    /// ([`LogError::Expired`] if the commits it needs have left the stream).
    pub async fn fold_while(
        &self,
        room: &RoomId,
        keep: impl Fn(u64, u64) -> bool,
    ) -> Result<events::RoomState, LogError> {
        // The version the room is known to have reached (from a snapshot `keep` refused).
        let (mut state, reached) = match self.snapshot(room).await? {
            Some(snapshot) if keep(snapshot.state.version, snapshot.state.updated_ms) => {
                (snapshot.state, 0)
            }
            Some(snapshot) => {
                let below = snapshot.state.version;
                let start = self.checkpoint_before(room, below, &keep).await?;
                (start.map(|c| c.state).unwrap_or_default(), below)
            }
            None => (events::RoomState::default(), 0),
        };
        let mut commits = self.read(room, state.version).await?;
        while let Some(stored) = commits.next().await {
            let stored = stored?;
            if !keep(stored.commit.version, stored.commit.at_ms) {
                return Ok(state);
            }
            state = state.apply(&stored.commit);
        }
        if state.version < reached {
            // Not refused, yet short of the snapshot: the commits have left the stream.
            return Err(LogError::Expired { after: state.version });
        }
        Ok(state)
    }

    /// The room's commits after `after_version`, then every new one as it is stored. Never ends
    /// on its own.
    pub async fn follow(&self, room: &RoomId, after_version: u64) -> Result<Commits, LogError> {
        let start = match self.head(room).await? {
            None => 1,
            Some(head) if head.version <= after_version => head.seq + 1,
            Some(head) if head.version - after_version <= WALK_LIMIT => {
                match self.walk_back(head, after_version).await {
                    Ok(missing) => missing.first().map_or(head.seq + 1, |first| first.seq),
                    Err(LogError::Decode { .. } | LogError::MissingHeader { .. }) => 1,
                    Err(e) => return Err(e),
                }
            }
            Some(head) => self.start_seq(room, after_version, head).await,
        };
        let commits = self.ordered(subjects::room(room), start, None).await?;
        Ok(after(commits, after_version))
    }

    /// Every room's commits from stream sequence `from_seq` up to the stream's last one when
    /// called (for projector rebuilds, replay and export).
    pub async fn read_all(&self, from_seq: u64) -> Result<Commits, LogError> {
        let last = self.last_seq().await?;
        if last < from_seq.max(1) {
            return Ok(stream::empty().boxed());
        }
        self.ordered(subjects::ROOMS.to_owned(), from_seq, Some(last)).await
    }

    /// Every room's commits from stream sequence `from_seq`, then live. Never ends on its own.
    pub async fn follow_all(&self, from_seq: u64) -> Result<Commits, LogError> {
        self.ordered(subjects::ROOMS.to_owned(), from_seq, None).await
    }

    /// The room of the commit at `seq`, from its subject (works for undecodable payloads).
    pub async fn room_of_seq(&self, seq: u64) -> Option<RoomId> {
        let message = self.stream.direct_get(seq).await.ok()?;
        subjects::room_of(&message.subject)
    }

    /// The log's epoch: the room stream's creation time. Positions (versions) from another epoch
    /// belong to another log and cannot be resumed.
    pub async fn epoch(&self) -> Result<String, LogError> {
        let mut stream = self.stream.clone();
        let info = stream.info().await.map_err(LogError::unavailable)?;
        Ok(info.created.unix_timestamp_nanos().to_string())
    }

    /// The stream's first sequence still stored (retention moves it; `last + 1` when empty) and
    /// its last sequence, from one stream info.
    pub async fn seq_range(&self) -> Result<(u64, u64), LogError> {
        let mut stream = self.stream.clone();
        let state = &stream.info().await.map_err(LogError::unavailable)?.state;
        Ok((state.first_sequence, state.last_sequence))
    }

    /// The stream's last sequence (0 when empty).
    pub async fn last_seq(&self) -> Result<u64, LogError> {
        let mut stream = self.stream.clone();
        Ok(stream.info().await.map_err(LogError::unavailable)?.state.last_sequence)
    }

    /// Decodes a commit republished on `chanshare.live.<room>` (its stream sequence travels in
    /// the `Nats-Sequence` header).
    pub fn decode_live(message: &async_nats::Message) -> Result<Stored, LogError> {
        let Some(headers) = &message.headers else {
            return Err(LogError::MissingHeader { seq: 0, header: "Nats-Sequence" });
        };
        let seq = header_u64(headers, headers::SEQUENCE.as_ref(), 0)
            .ok_or(LogError::MissingHeader { seq: 0, header: "Nats-Sequence" })?;
        stored(seq, headers, &message.payload)
    }

    async fn position_of(&self, seq: u64) -> Result<Position, LogError> {
        let message = self.stream.direct_get(seq).await.map_err(LogError::unavailable)?;
        Ok(Position { seq, version: version_header(&message.headers, seq)? })
    }

    /// The commits after `after_version` up to `head`, found by following each commit's
    /// back-link (its expected-last-subject-sequence header) with direct gets.
    async fn walk_back(&self, head: Position, after_version: u64) -> Result<Vec<Stored>, LogError> {
        let mut commits = Vec::with_capacity((head.version - after_version) as usize);
        let mut seq = head.seq;
        while seq != 0 {
            // Expired: `read` reports the gap.
            let Some(commit) = self.get(seq).await? else { break };
            if commit.commit.version <= after_version {
                break;
            }
            seq = commit.prev_seq;
            commits.push(commit);
        }
        commits.reverse();
        Ok(commits)
    }

    /// An ordered consumer on `filter` from `start_seq`, ending after `until_seq` if given.
    async fn ordered(
        &self,
        filter: String,
        start_seq: u64,
        until_seq: Option<u64>,
    ) -> Result<Commits, LogError> {
        let deliver_policy = if start_seq <= 1 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence { start_sequence: start_seq }
        };
        // Named, so it is made on `CONSUMER.CREATE.<stream>.<name>.<filter>`: the unnamed
        // create subject (whose body could name and replace the projectors' durable consumer)
        // is denied to every role but the projectors.
        let name = format!("chanshare-read-{}", uuid::Uuid::new_v4().simple());
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                name: Some(name.clone()),
                filter_subject: filter,
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(LogError::unavailable)?;
        let reader = Reader { stream: self.stream.clone(), name };
        let messages = consumer.messages().await.map_err(LogError::unavailable)?;
        Ok(stream::unfold(Some((messages, reader)), move |state| async move {
            // Ended: the state (and with it the consumer) is dropped on this last poll.
            let (mut messages, mut reader) = state?;
            let item = match messages.next().await? {
                Ok(message) => match message.info() {
                    Ok(info) => {
                        // async-nats replaces a consumer that stopped answering with
                        // `<name>_<n>` (deleting the old one): the newest is the one to delete.
                        if info.consumer != reader.name {
                            info.consumer.clone_into(&mut reader.name);
                        }
                        let seq = info.stream_sequence;
                        let headers = message.headers.clone().unwrap_or_default();
                        let more = until_seq.is_none_or(|until| seq < until);
                        let next = more.then_some((messages, reader));
                        return Some((stored(seq, &headers, &message.payload), next));
                    }
                    Err(e) => Err(LogError::unavailable(e)),
                },
                Err(e) => Err(LogError::unavailable(e)),
            };
            Some((item, Some((messages, reader))))
        })
        .boxed())
    }
}

/// The server side of a read: its ordered consumer, deleted when the read ends or its reader
/// drops it. Left to the server, it would stay for its 30 s inactivity threshold, and a gateway
/// whose members reconnect from far behind would hold hundreds. (A read dropped while async-nats
/// is replacing its consumer leaves the replacement to that threshold.)
struct Reader {
    stream: JsStream,
    name: String,
}

impl Drop for Reader {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(name = %self.name, "no runtime to delete a read's consumer");
            return;
        };
        let (stream, name) = (self.stream.clone(), std::mem::take(&mut self.name));
        runtime.spawn(async move {
            if let Err(error) = stream.delete_consumer(&name).await {
                // The inactivity threshold removes it in the end.
                tracing::debug!(%name, %error, "cannot delete a read's consumer");
            }
        });
    }
}

/// Keeps commits with versions above `after_version` (errors pass through).
fn after(commits: Commits, after_version: u64) -> Commits {
    commits
        .filter(move |item| {
            let keep = item.as_ref().map_or(true, |s| s.commit.version > after_version);
            std::future::ready(keep)
        })
        .boxed()
}

pub(crate) fn stored(seq: u64, headers: &HeaderMap, payload: &[u8]) -> Result<Stored, LogError> {
    let commit = codec::decode(payload).map_err(|source| LogError::Decode { seq, source })?;
    let prev_seq = header_u64(headers, headers::EXPECTED_LAST_SUBJECT_SEQUENCE.as_ref(), seq)
        .ok_or(LogError::MissingHeader { seq, header: "Nats-Expected-Last-Subject-Sequence" })?;
    let traceparent = headers.get(headers::TRACEPARENT).map(|v| v.as_str().to_owned());
    Ok(Stored { seq, prev_seq, commit, traceparent })
}

pub(crate) fn version_header(headers: &HeaderMap, seq: u64) -> Result<u64, LogError> {
    header_u64(headers, headers::VERSION, seq)
        .ok_or(LogError::MissingHeader { seq, header: headers::VERSION })
}

pub(crate) fn header_u64(headers: &HeaderMap, name: &str, _seq: u64) -> Option<u64> {
    headers.get(name).and_then(|v| v.as_str().parse().ok())
}
