//! Direct messages between accounts (DESIGN §4b), stored in JetStream.
//!
//! - Stream `CHANSHARE_DMS`, subjects `chanshare.dm.<a>.<b>.<kind>`: a conversation's messages
//!   (`m`) and each side's receipts (`ra`, `rb`), as JSON [`DmEvent`]s. A message's `seq` is its
//!   stream sequence. A retried send (same sender and id) is stored once: the stream's
//!   duplicate window, [`DEDUPE_WINDOW`].
//! - Receipts are appended expecting the side's last receipt ([`Messages::report`]): two
//!   devices or gateways reporting at once store one transition; the loser reads the winner's
//!   and finds nothing left to report.
//! - Bucket `CHANSHARE_DM_BLOCKS`: key `<blocker>.<blocked>` while blocked.
//! - An account's inbox on a gateway ([`Inboxes`]): its conversations' events as they are
//!   stored, republished whole by the stream to the account's subjects, which only gateways
//!   holding the account's sockets subscribe to. NATS interest is the routing; no map of who is
//!   where, no read per event. What came before a socket is read from the stream
//!   ([`Messages::catch_up`]).

mod inbox;

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_nats::jetstream::context::{GetStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_nats::jetstream::{self, ErrorCode, kv};
use events::Username;
use events::dm::{Conversation, DmEvent, DmRejection, Kind, Receipts, Status};
use futures::{Stream, StreamExt};

pub use inbox::{Attached, Inbox, Inboxes, QUEUE};

/// The DM stream.
pub const DM_STREAM: &str = "CHANSHARE_DMS";
/// The blocks bucket.
pub const BLOCKS_BUCKET: &str = "CHANSHARE_DM_BLOCKS";
/// How long a retried send is recognised as the same message.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(600);
/// How many times a receipt is decided again after another writer came first.
const REPORT_ATTEMPTS: usize = 8;
/// How many usernames a process remembers as accounts.
const KNOWN_ACCOUNTS: usize = 100_000;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum DmError {
    /// The request broke a rule.
    #[error(transparent)]
    Rejected(#[from] DmRejection),
    /// JetStream or the account store failed.
    #[error("direct messages unavailable: {0}")]
    Unavailable(String),
}

fn unavailable(e: impl std::fmt::Display) -> DmError {
    DmError::Unavailable(e.to_string())
}

/// The subject of a conversation's messages or receipts.
pub fn subject(conversation: &Conversation, kind: Kind) -> String {
    format!(
        "chanshare.dm.{}.{}.{}",
        conversation.a(),
        conversation.b(),
        Conversation::kind_token(kind)
    )
}

/// The conversation of `by` and `partner`, and the subject of `by`'s receipts in it.
pub(crate) fn receipts_of(
    by: &Username,
    partner: &Username,
) -> Result<(Conversation, String), DmError> {
    let conversation = Conversation::new(by, partner)?;
    let side = conversation.side(by).ok_or(DmRejection::Invalid("not your conversation"))?;
    let subject = subject(&conversation, Kind::Receipts(side));
    Ok((conversation, subject))
}

/// Creates the stream and the bucket if they are missing (the commands role does, at start).
pub async fn setup(js: &jetstream::Context, replicas: usize) -> Result<(), DmError> {
    let config = stream::Config {
        name: DM_STREAM.into(),
        description: Some(
            "Chanshare direct messages: chanshare.dm.<a>.<b>.<m|ra|rb>, JSON events".into(),
        ),
        subjects: vec!["chanshare.dm.*.*.*".into()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_message_size: 16 << 10,
        duplicate_window: DEDUPE_WINDOW,
        // Each stored event, whole, to the inboxes of its two accounts.
        republish: Some(stream::Republish {
            source: "chanshare.dm.*.*.*".into(),
            destination: format!(
                "{}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}",
                inbox::LIVE_PREFIX
            ),
            headers_only: false,
        }),
        allow_direct: true,
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    };
    match js.get_stream(DM_STREAM).await {
        // A stream made before the live events were republished whole: given them.
        Ok(existing)
            if existing.cached_info().config.republish.as_ref().is_none_or(|r| r.headers_only) =>
        {
            js.update_stream(config).await.map_err(unavailable)?;
        }
        Ok(_) => {}
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            js.create_stream(config).await.map_err(unavailable)?;
        }
        Err(e) => return Err(unavailable(e)),
    }
    if js.get_key_value(BLOCKS_BUCKET).await.is_err() {
        js.create_key_value(kv::Config {
            bucket: BLOCKS_BUCKET.into(),
            description: "Chanshare DM blocks: key <blocker>.<blocked>".into(),
            history: 1,
            max_value_size: 64,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}

/// A stored message: where it landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Its stream sequence.
    pub seq: u64,
    /// Whether it was a retry of a message already stored.
    pub duplicate: bool,
}

/// One event of an account's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    /// Its stream sequence.
    pub seq: u64,
    /// Its conversation.
    pub conversation: Conversation,
    /// The event.
    pub event: DmEvent,
}

/// Direct messages: sending, receipts, blocks and catch-ups. Cheap to clone: every account
/// socket holds one.
#[derive(Debug, Clone)]
pub struct Messages {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    blocks: kv::Store,
    accounts: accounts::Store,
    /// Usernames found to be accounts (sends skip the lookup).
    known_accounts: Mutex<HashSet<Username>>,
}

impl Messages {
    /// Opens what [`setup`] made.
    pub async fn open(
        client: async_nats::Client,
        accounts: accounts::Store,
    ) -> Result<Self, DmError> {
        let js = jetstream::new(client.clone());
        let stream = js.get_stream(DM_STREAM).await.map_err(unavailable)?;
        let blocks = js.get_key_value(BLOCKS_BUCKET).await.map_err(unavailable)?;
        let shared =
            Shared { client, js, stream, blocks, accounts, known_accounts: Mutex::default() };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// Whether `username` is an account (an account, once made, stays: remembered).
    pub async fn exists(&self, username: &Username) -> Result<bool, DmError> {
        if lock(&self.shared.known_accounts).contains(username) {
            return Ok(true);
        }
        let exists = self.shared.accounts.account(username).await.map_err(unavailable)?.is_some();
        if exists {
            let mut known = lock(&self.shared.known_accounts);
            if known.len() >= KNOWN_ACCOUNTS {
                known.clear();
            }
            known.insert(username.clone());
        }
        Ok(exists)
    }

    /// Sends a message: refused for a blank or long text, oneself, an unknown receiver or one
    /// who blocked the sender; stored once per `(from, id)` within [`DEDUPE_WINDOW`].
    pub async fn send(
        &self,
        from: &Username,
        to: &Username,
        id: uuid::Uuid,
        text: String,
        now_ms: u64,
    ) -> Result<Sent, DmError> {
        events::dm::check_text(&text)?;
        let conversation = Conversation::new(from, to)?;
        if !self.exists(to).await? {
            return Err(DmRejection::UnknownUser.into());
        }
        if self.is_blocked(to, from).await? {
            return Err(DmRejection::Blocked.into());
        }
        let event =
            DmEvent::Message { id, from: from.clone(), to: to.clone(), text, at_ms: now_ms };
        let payload = serde_json::to_vec(&event).map_err(unavailable)?;
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("dm:{from}:{id}"));
        // DMs are not room events: this stream is the `dm` crate's alone (ARCHITECTURE.md).
        #[allow(clippy::disallowed_methods)]
        let ack = match self
            .shared
            .js
            .send_publish(subject(&conversation, Kind::Messages), publish)
            .await
        {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        let ack = ack.map_err(unavailable)?;
        Ok(Sent { seq: ack.sequence, duplicate: ack.duplicate })
    }

    /// `by` reports the messages from `partner` up to `up_to` as `status` (delivered or read),
    /// decided on what the stream says: the receipts appended, with their sequences (none when
    /// nothing moved on), and `by`'s last receipt after it. `up_to` past the conversation's last
    /// message counts as its last message. ([`Inbox::report`] decides without reading when it
    /// can.)
    pub(crate) async fn report_from_stream(
        &self,
        by: &Username,
        partner: &Username,
        status: Status,
        up_to: u64,
    ) -> Result<(Vec<(u64, DmEvent)>, Option<(u64, DmEvent)>), DmError> {
        let (conversation, receipts_subject) = receipts_of(by, partner)?;
        let messages_subject = subject(&conversation, Kind::Messages);
        let mut stored = Vec::new();
        let mut conflicts = 0;
        loop {
            let last_receipt = self.last(&receipts_subject).await?;
            let Some(last_message) = self.last(&messages_subject).await? else {
                return Ok((stored, last_receipt));
            };
            let up_to = up_to.min(last_message.0);
            let (mut last_seq, receipts) = match &last_receipt {
                Some((seq, event)) => (*seq, Receipts::default().after(event)),
                None => (0, Receipts::default()),
            };
            // Delivered needs the messages after the delivered mark; read, after the lower one.
            let from = match status {
                Status::Read => receipts.delivered.min(receipts.read),
                _ => receipts.delivered,
            };
            if up_to <= from {
                return Ok((stored, last_receipt));
            }
            let to_reader = self.to_reader(&messages_subject, by, from + 1, up_to).await?;
            let decided =
                events::dm::decide_receipt(by, receipts, status, up_to, &to_reader, now_ms());
            if decided.is_empty() {
                return Ok((stored, last_receipt));
            }
            // Appended in order, each on the one before; another writer first: decided again on
            // top of its receipt. A decision bounded by `MAX_RECEIPT_IDS` goes on the same way.
            let reached =
                decided.last().map(|last| Receipts::default().after(last)).is_some_and(|marks| {
                    match status {
                        Status::Read => marks.read >= up_to,
                        _ => marks.delivered >= up_to,
                    }
                });
            let mut lost = false;
            for event in decided {
                match self.append_after(&receipts_subject, &event, last_seq).await? {
                    Some(seq) => {
                        last_seq = seq;
                        stored.push((seq, event));
                    }
                    None => {
                        conflicts += 1;
                        if conflicts >= REPORT_ATTEMPTS {
                            return Err(DmError::Unavailable("receipts kept conflicting".into()));
                        }
                        lost = true;
                        break;
                    }
                }
            }
            if reached && !lost {
                let last = stored.last().cloned();
                return Ok((stored, last));
            }
        }
    }

    /// The messages to `reader` on `subject` with sequences in `from..=to`, in order, at most
    /// [`events::dm::MAX_RECEIPT_IDS`] (one receipt's worth).
    async fn to_reader(
        &self,
        subject: &str,
        reader: &Username,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, uuid::Uuid)>, DmError> {
        let mut found = Vec::new();
        scan(&self.shared.stream, subject, from, to, |item| {
            if let DmEvent::Message { id, to, .. } = item.event
                && to == *reader
            {
                found.push((item.seq, id));
            }
            if found.len() < events::dm::MAX_RECEIPT_IDS {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })
        .await?;
        Ok(found)
    }

    /// Appends `event` to `subject` if its last message is still `last_seq`: its sequence, or
    /// `None` when another write came first.
    pub(crate) async fn append_after(
        &self,
        subject: &str,
        event: &DmEvent,
        last_seq: u64,
    ) -> Result<Option<u64>, DmError> {
        let payload = serde_json::to_vec(event).map_err(unavailable)?;
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .expected_last_subject_sequence(last_seq);
        #[allow(clippy::disallowed_methods)]
        let ack = match self.shared.js.send_publish(subject.to_owned(), publish).await {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        match ack {
            Ok(ack) => Ok(Some(ack.sequence)),
            // Another writer, or our own earlier attempt that landed: decided again either way.
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The last event on `subject` with its sequence (a leader read).
    async fn last(&self, subject: &str) -> Result<Option<(u64, DmEvent)>, DmError> {
        match self.shared.stream.get_last_raw_message_by_subject(subject).await {
            Ok(message) => Ok(Some((message.sequence, decode(&message.payload)?))),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Blocks `whom` for `by`: their messages are refused with `blocked`.
    pub async fn block(&self, by: &Username, whom: &Username) -> Result<(), DmError> {
        Conversation::new(by, whom)?;
        self.shared.blocks.put(block_key(by, whom), "1".into()).await.map_err(unavailable)?;
        Ok(())
    }

    /// Lifts a block (a no-op when there is none).
    pub async fn unblock(&self, by: &Username, whom: &Username) -> Result<(), DmError> {
        Conversation::new(by, whom)?;
        self.shared.blocks.delete(block_key(by, whom)).await.map_err(unavailable)?;
        Ok(())
    }

    /// Whether `by` blocks `whom`.
    pub async fn is_blocked(&self, by: &Username, whom: &Username) -> Result<bool, DmError> {
        let value = self.shared.blocks.get(block_key(by, whom)).await.map_err(unavailable)?;
        Ok(value.is_some_and(|v| !v.is_empty()))
    }

    /// `me`'s conversations' events with sequences in `from..=until`, in order (from 1: what
    /// came before a socket joined its inbox, [`Attached::head`]).
    pub async fn catch_up(
        &self,
        me: &Username,
        from: u64,
        until: u64,
    ) -> Result<Vec<FeedItem>, DmError> {
        let mut items = Vec::new();
        for filter in [format!("chanshare.dm.{me}.*.*"), format!("chanshare.dm.*.{me}.*")] {
            items.extend(read_range(&self.shared.stream, &filter, from, until).await?);
        }
        items.sort_by_key(|item| item.seq);
        Ok(items)
    }

    /// The stream's last sequence (0 when empty).
    pub async fn head(&self) -> Result<u64, DmError> {
        last_sequence(&self.shared.stream).await
    }
}

/// The projectors' durable consumer of the DM stream.
pub const PROJECTOR: &str = "chanshare-dm-projector";

/// The DM stream as the projectors read it: their durable consumer, and the whole stream for a
/// rebuild.
#[derive(Debug, Clone)]
pub struct DmLog {
    stream: stream::Stream,
}

/// One event of the stream, with what acknowledges it (for the durable consumer).
#[derive(Debug)]
pub struct Delivery {
    /// The event, or why it cannot be read (acknowledge it anyway: it will not get better).
    pub item: Result<FeedItem, DmError>,
    message: jetstream::Message,
}

impl Delivery {
    /// Acknowledges it: the projector has applied it.
    pub async fn ack(self) -> Result<(), DmError> {
        self.message.ack().await.map_err(unavailable)
    }
}

impl DmLog {
    /// Opens the DM stream (made by the commands role).
    pub async fn open(js: jetstream::Context) -> Result<Self, DmError> {
        Ok(Self { stream: js.get_stream(DM_STREAM).await.map_err(unavailable)? })
    }

    /// The projectors' deliveries: every event, at least once, from where they left off.
    pub async fn deliveries(
        &self,
    ) -> Result<impl Stream<Item = Result<Delivery, DmError>> + Send + use<>, DmError> {
        let consumer = self
            .stream
            .get_or_create_consumer(
                PROJECTOR,
                jetstream::consumer::pull::Config {
                    durable_name: Some(PROJECTOR.into()),
                    description: Some(
                        "Chanshare DM projectors: the inbox and history views".into(),
                    ),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        let messages = consumer.messages().await.map_err(unavailable)?;
        Ok(messages.map(|message| {
            let message = message.map_err(unavailable)?;
            let item = item(&message);
            Ok(Delivery { item, message })
        }))
    }

    /// Every event from stream sequence `start` to the stream's end as it was when asked.
    pub async fn read_all(&self, start: u64) -> Result<Vec<FeedItem>, DmError> {
        let last = last_sequence(&self.stream).await?;
        read_range(&self.stream, "chanshare.dm.*.*.*", start.max(1), last).await
    }
}

/// The conversation of a DM subject (`chanshare.dm.<a>.<b>.<kind>`).
pub(crate) fn conversation_of(subject: &str) -> Option<Conversation> {
    let mut tokens = subject.split('.').skip(2);
    let (a, b, kind) = (tokens.next()?, tokens.next()?, tokens.next()?);
    Conversation::parse(a, b, kind).map(|(conversation, _)| conversation)
}

/// The events on `filter` with sequences in `from..=until`, in order (leader reads). An event
/// that cannot be read is left out (the projector logs it).
pub(crate) async fn read_range(
    stream: &stream::Stream,
    filter: &str,
    from: u64,
    until: u64,
) -> Result<Vec<FeedItem>, DmError> {
    let mut items = Vec::new();
    scan(stream, filter, from, until, |item| {
        items.push(item);
        ControlFlow::Continue(())
    })
    .await?;
    Ok(items)
}

/// Visits the events on `filter` with sequences in `from..=until`, in order, one leader read
/// each, until `visit` breaks. An event that cannot be read is left out.
async fn scan(
    stream: &stream::Stream,
    filter: &str,
    from: u64,
    until: u64,
    mut visit: impl FnMut(FeedItem) -> ControlFlow<()>,
) -> Result<(), DmError> {
    let mut seq = from;
    while seq <= until {
        let message = match stream.get_first_raw_message_by_subject(filter, seq).await {
            Ok(message) => message,
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => break,
            Err(e) => return Err(unavailable(e)),
        };
        if message.sequence > until {
            break;
        }
        seq = message.sequence + 1;
        if let (Some(conversation), Ok(event)) =
            (conversation_of(&message.subject), decode(&message.payload))
            && visit(FeedItem { seq: message.sequence, conversation, event }).is_break()
        {
            break;
        }
    }
    Ok(())
}

/// The stream's last sequence (0 when empty).
async fn last_sequence(stream: &stream::Stream) -> Result<u64, DmError> {
    Ok(stream.get_info().await.map_err(unavailable)?.state.last_sequence)
}

fn item(message: &jetstream::Message) -> Result<FeedItem, DmError> {
    let seq = message.info().map_err(unavailable)?.stream_sequence;
    let conversation = conversation_of(&message.subject)
        .ok_or_else(|| DmError::Unavailable(format!("a dm on {}", message.subject)))?;
    Ok(FeedItem { seq, conversation, event: decode(&message.payload)? })
}

fn block_key(by: &Username, whom: &Username) -> String {
    format!("{by}.{whom}")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn decode(payload: &[u8]) -> Result<DmEvent, DmError> {
    serde_json::from_slice(payload)
        .map_err(|e| DmError::Unavailable(format!("unreadable dm event: {e}")))
}
