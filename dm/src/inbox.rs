//! An account's inbox on one gateway: its conversations' events as they are stored, shared by
//! every socket the account has open on this process, and what receipts need to know.
//!
//! - **Routing is NATS interest.** The stream republishes every stored event, whole, to
//!   `chanshare.dmlive.<a>.<b>.<kind>`. The first socket of an account on a gateway opens its
//!   inbox, which subscribes to the account's two patterns (`…<me>.*.*`, `…*.<me>.*`); the last
//!   socket to leave closes it. No consumer per socket (JetStream caps them per stream), no map
//!   of who is where, no read per event.
//! - **Nothing lost, nothing twice.** A conversation's events reach one subscription in stream
//!   order. Each carries the sequence of the event before it on its subject
//!   (`Nats-Last-Sequence`): an event whose predecessor was not seen is preceded by a read of the
//!   gap from the stream. Events stored while the subscriptions settle, or while the NATS
//!   connection was down (its reconnect counter moved), are found by reading the account's
//!   events after the last point known complete.
//! - **Sockets** get each event once through a bounded queue ([`QUEUE`]); one that falls a
//!   whole queue behind is dropped (the socket closes as a slow consumer, and its client
//!   resumes with `dm_sync`). A socket reads what came before it joined from the stream
//!   ([`crate::Messages::catch_up`]) up to the `head` it was given, and skips live events up to
//!   there.
//! - **Receipts without reads.** The inbox remembers, per conversation, its side's last receipt
//!   and the messages to the account after the read mark, so a report decides and appends with
//!   no read; one that finds it does not know enough, or loses a race to another writer, does
//!   what the stream says (`Messages::report_from_stream`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use events::Username;
use events::dm::{DmEvent, Kind, MAX_RECEIPT_IDS, Receipts, Status};
use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::{
    DmError, FeedItem, Messages, conversation_of, decode, lock, read_range, receipts_of, subject,
    unavailable,
};

/// The live events' subject prefix.
pub(crate) const LIVE_PREFIX: &str = "chanshare.dmlive";
/// How long after subscribing the inbox reads what the subscriptions may have missed.
const SETTLE: Duration = Duration::from_secs(2);
/// How often the inbox looks at its connection's reconnect counter.
const CHECK: Duration = Duration::from_secs(5);
/// Events a socket may be behind before it is dropped as a slow consumer.
pub const QUEUE: usize = 1024;
/// Messages to the account an inbox remembers per conversation, for receipts.
const REMEMBERED: usize = 4 * MAX_RECEIPT_IDS;
/// How many times a report decides again on what the inbox knows before it reads the stream.
const ROUNDS: usize = 8;

/// The inboxes open on this process, by account.
#[derive(Debug, Clone)]
pub struct Inboxes {
    messages: Messages,
    open: Arc<Mutex<HashMap<Username, Weak<Inbox>>>>,
}

/// A socket's place in its account's inbox.
#[derive(Debug)]
pub struct Attached {
    /// The inbox (reports go through it).
    pub inbox: Arc<Inbox>,
    /// The account's events after `head`, live (and some at or below it: skip those). Ends when
    /// the socket fell [`QUEUE`] behind or the inbox failed.
    pub live: mpsc::Receiver<Arc<FeedItem>>,
    /// Every event up to here is in the stream: read them with [`Messages::catch_up`].
    pub head: u64,
}

impl Inboxes {
    /// No inbox open yet.
    pub fn new(messages: Messages) -> Self {
        Self { messages, open: Arc::default() }
    }

    /// Joins `me`'s inbox (opening it for the account's first socket here).
    pub async fn attach(&self, me: &Username) -> Result<Attached, DmError> {
        let existing = lock(&self.open).get(me).and_then(Weak::upgrade);
        let inbox = match existing {
            Some(inbox) => inbox,
            None => {
                let made =
                    Arc::new(Inbox::open(&self.messages, me, Arc::downgrade(&self.open)).await?);
                let mut open = lock(&self.open);
                match open.get(me).and_then(Weak::upgrade) {
                    // Another socket opened it meanwhile: ours closes as it drops.
                    Some(theirs) => theirs,
                    None => {
                        open.insert(me.clone(), Arc::downgrade(&made));
                        made
                    }
                }
            }
        };
        let (sender, live) = mpsc::channel(QUEUE);
        {
            let mut sockets = lock(&inbox.shared.sockets);
            // Sockets gone since the last event: an account whose devices come and go while its
            // conversations are quiet keeps none of them.
            sockets.retain(|socket| !socket.is_closed());
            sockets.push(sender);
        }
        // Read after joining: whatever is stored from now on reaches the queue.
        let head = self.messages.head().await?;
        Ok(Attached { inbox, live, head })
    }
}

/// One account's inbox on this process.
#[derive(Debug)]
pub struct Inbox {
    messages: Messages,
    shared: Arc<Shared>,
    pump: tokio::task::JoinHandle<()>,
    registry: Weak<Mutex<HashMap<Username, Weak<Inbox>>>>,
}

#[derive(Debug)]
struct Shared {
    me: Username,
    /// The stream's last sequence when the inbox subscribed: later events are seen live.
    base: u64,
    sockets: Mutex<Vec<mpsc::Sender<Arc<FeedItem>>>>,
    known: Mutex<HashMap<Username, Known>>,
    /// Delivered reports owed, per partner: one report runs per conversation.
    owed: Mutex<HashMap<Username, u64>>,
}

/// What an inbox knows of one conversation, for its account's receipts.
#[derive(Debug)]
struct Known {
    /// The account's side's last receipt: its sequence and marks (`None`: not known yet).
    receipts: Option<(u64, Receipts)>,
    /// Messages to the account above the read mark, by sequence.
    to_me: VecDeque<(u64, uuid::Uuid)>,
    /// `to_me` holds every message to the account with a sequence above this.
    complete_above: u64,
    /// One report at a time in this conversation: two would race each other for the same
    /// receipts subject (other conversations' reports do not wait).
    reporting: Arc<tokio::sync::Mutex<()>>,
    /// The last message of the conversation the inbox handed on (either way): `to_me` says
    /// nothing of later ones yet.
    seen_to: u64,
}

impl Known {
    fn new(base: u64) -> Self {
        Self {
            receipts: None,
            to_me: VecDeque::new(),
            complete_above: base,
            seen_to: 0,
            reporting: Arc::default(),
        }
    }

    fn message(&mut self, seq: u64, id: uuid::Uuid) {
        self.seen_to = self.seen_to.max(seq);
        if self.receipts.is_some_and(|(_, marks)| seq <= marks.read) {
            return;
        }
        // Gap fills may come after later events: kept in order.
        let at = self.to_me.partition_point(|(s, _)| *s < seq);
        if self.to_me.get(at).is_some_and(|(s, _)| *s == seq) {
            return;
        }
        self.to_me.insert(at, (seq, id));
        if self.to_me.len() > REMEMBERED
            && let Some((dropped, _)) = self.to_me.pop_front()
        {
            self.complete_above = self.complete_above.max(dropped);
        }
    }

    fn receipt(&mut self, seq: u64, event: &DmEvent) {
        if self.receipts.is_some_and(|(known, _)| known >= seq) {
            return;
        }
        let marks = Receipts::default().after(event);
        self.receipts = Some((seq, marks));
        while self.to_me.front().is_some_and(|(s, _)| *s <= marks.read) {
            self.to_me.pop_front();
        }
    }

    /// What deciding a report needs, when known.
    fn plan(&self, status: Status, up_to: u64) -> Option<Plan> {
        let (last, marks) = self.receipts?;
        let from = match status {
            Status::Read => marks.delivered.min(marks.read),
            _ => marks.delivered,
        };
        // Messages below its start or past what it has seen (a socket wrote one from the stream
        // before the inbox handed it on): the stream knows.
        if from < self.complete_above || up_to > self.seen_to {
            return None;
        }
        let covered = self
            .to_me
            .iter()
            .filter(|(seq, _)| *seq > from && *seq <= up_to)
            .take(MAX_RECEIPT_IDS)
            .copied()
            .collect();
        Some(Plan { last, marks, covered })
    }
}

/// What a report is decided on: the side's last receipt (its sequence and marks) and the
/// messages to the account it may cover.
struct Plan {
    last: u64,
    marks: Receipts,
    covered: Vec<(u64, uuid::Uuid)>,
}

/// Conversations an inbox remembers before it forgets the idle ones.
const CONVERSATIONS: usize = 1024;

/// What the inbox knows of the conversation with `partner`, made when new. An inbox that
/// remembers [`CONVERSATIONS`] forgets, before making one more, those with nothing unread and no
/// report running: forgetting costs only a read from the stream at their next report.
fn known_of<'a>(
    known: &'a mut HashMap<Username, Known>,
    partner: &Username,
    base: u64,
) -> &'a mut Known {
    if known.len() >= CONVERSATIONS && !known.contains_key(partner) {
        known.retain(|_, k| !k.to_me.is_empty() || Arc::strong_count(&k.reporting) > 1);
    }
    known.entry(partner.clone()).or_insert_with(|| Known::new(base))
}

impl Shared {
    /// Learns from `item` and hands it to every socket (dropping those a whole queue behind).
    fn publish(&self, item: FeedItem) {
        self.learn(&item);
        let item = Arc::new(item);
        lock(&self.sockets).retain(|socket| socket.try_send(item.clone()).is_ok());
    }

    fn learn(&self, item: &FeedItem) {
        let Some(partner) = item.conversation.partner(&self.me) else { return };
        let mut known = lock(&self.known);
        match &item.event {
            DmEvent::Message { id, to, .. } if *to == self.me => {
                known_of(&mut known, partner, self.base).message(item.seq, *id);
            }
            DmEvent::Message { .. } => {
                let known = known_of(&mut known, partner, self.base);
                known.seen_to = known.seen_to.max(item.seq);
            }
            DmEvent::Receipt { by, .. } if *by == self.me => {
                known_of(&mut known, partner, self.base).receipt(item.seq, &item.event);
            }
            _ => {}
        }
    }

    fn learn_receipt(&self, partner: &Username, seq: u64, event: &DmEvent) {
        known_of(&mut lock(&self.known), partner, self.base).receipt(seq, event);
    }

    fn delivered_mark(&self, partner: &Username) -> u64 {
        lock(&self.known)
            .get(partner)
            .and_then(|known| known.receipts)
            .map_or(0, |(_, marks)| marks.delivered)
    }
}

impl Inbox {
    async fn open(
        messages: &Messages,
        me: &Username,
        registry: Weak<Mutex<HashMap<Username, Weak<Inbox>>>>,
    ) -> Result<Self, DmError> {
        // Subscribed first: whatever is stored from now on is seen live or read by the settle.
        let mut live = futures::stream::SelectAll::new();
        for pattern in [format!("{LIVE_PREFIX}.{me}.*.*"), format!("{LIVE_PREFIX}.*.{me}.*")] {
            live.push(messages.shared.client.subscribe(pattern).await.map_err(unavailable)?);
        }
        let base = messages.head().await?;
        let shared = Arc::new(Shared {
            me: me.clone(),
            base,
            sockets: Mutex::default(),
            known: Mutex::default(),
            owed: Mutex::default(),
        });
        let pump = Pump {
            shared: shared.clone(),
            messages: messages.clone(),
            last_on: HashMap::new(),
            verified: base,
        };
        let pump = tokio::spawn(pump.run(live));
        Ok(Self { messages: messages.clone(), shared, pump, registry })
    }

    /// The account.
    pub fn me(&self) -> &Username {
        &self.shared.me
    }

    /// One of this account's sockets was written the message `seq` from `partner`: reports it
    /// (and any before it) delivered, unless known delivered already. Reports of a burst are
    /// coalesced: one runs per conversation, taking whatever is owed when it starts.
    pub fn delivered(self: &Arc<Self>, partner: &Username, seq: u64) {
        if seq <= self.shared.delivered_mark(partner) {
            return;
        }
        {
            let mut owed = lock(&self.shared.owed);
            if let Some(wanted) = owed.get_mut(partner) {
                *wanted = (*wanted).max(seq);
                return;
            }
            owed.insert(partner.clone(), seq);
        }
        let (inbox, partner) = (self.clone(), partner.clone());
        tokio::spawn(async move {
            let (mut reported, mut failures) = (0, 0);
            loop {
                let wanted = {
                    let mut owed = lock(&inbox.shared.owed);
                    match owed.get(&partner) {
                        Some(wanted) if *wanted > reported => *wanted,
                        _ => {
                            owed.remove(&partner);
                            return;
                        }
                    }
                };
                match inbox.report(&partner, Status::Delivered, wanted).await {
                    Ok(()) => reported = wanted,
                    // It will not get better (a claim naming oneself, say).
                    Err(DmError::Rejected(rejection)) => {
                        debug!(account = %inbox.me(), %rejection, "delivered receipt refused");
                        lock(&inbox.shared.owed).remove(&partner);
                        return;
                    }
                    // The next delivery in this conversation reports these too.
                    Err(error) if failures >= 20 => {
                        warn!(account = %inbox.me(), %error, "delivered receipt failed; giving up");
                        lock(&inbox.shared.owed).remove(&partner);
                        return;
                    }
                    Err(error) => {
                        failures += 1;
                        debug!(account = %inbox.me(), %error, "delivered receipt failed; retrying");
                        tokio::time::sleep(Duration::from_millis(250 << failures.min(5))).await;
                    }
                }
            }
        });
    }

    /// The account reports `partner`'s messages up to `up_to` as `status` (delivered or read):
    /// decided on what the inbox knows, or on what the stream says when it does not know enough
    /// or another writer came first.
    pub async fn report(
        &self,
        partner: &Username,
        status: Status,
        up_to: u64,
    ) -> Result<(), DmError> {
        let me = &self.shared.me;
        let (_, receipts_subject) = receipts_of(me, partner)?;
        let reporting =
            known_of(&mut lock(&self.shared.known), partner, self.shared.base).reporting.clone();
        let _one = reporting.lock().await;
        for _ in 0..ROUNDS {
            let plan =
                lock(&self.shared.known).get(partner).and_then(|known| known.plan(status, up_to));
            let Some(Plan { mut last, marks, covered }) = plan else { break };
            // The marks go no further than the last message they cover (a claim past the end
            // would mark messages not yet sent).
            let Some(&(covered_to, _)) = covered.last() else { return Ok(()) };
            let up_to = up_to.min(covered_to);
            let decided =
                events::dm::decide_receipt(me, marks, status, up_to, &covered, crate::now_ms());
            if decided.is_empty() {
                return Ok(());
            }
            let mut lost = false;
            for event in decided {
                match self.messages.append_after(&receipts_subject, &event, last).await? {
                    Some(seq) => {
                        last = seq;
                        self.shared.learn_receipt(partner, seq, &event);
                    }
                    None => {
                        lost = true;
                        break;
                    }
                }
            }
            if lost {
                break;
            }
            // A decision bounded by `MAX_RECEIPT_IDS` goes on from where it got.
        }
        let (_, last) = self.messages.report_from_stream(me, partner, status, up_to).await?;
        if let Some((seq, event)) = last {
            self.shared.learn_receipt(partner, seq, &event);
        }
        Ok(())
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.pump.abort();
        if let Some(registry) = self.registry.upgrade() {
            let mut open = lock(&registry);
            if open.get(&self.shared.me).is_some_and(|inbox| inbox.strong_count() == 0) {
                open.remove(&self.shared.me);
            }
        }
    }
}

/// The task that turns the account's live events into the inbox's, in order, each once.
struct Pump {
    shared: Arc<Shared>,
    /// Not a clone of the stream handle: that holds the stream's whole description, and an
    /// account with one device pays for its inbox alone.
    messages: Messages,
    /// Per subject, the last event handed to the sockets.
    last_on: HashMap<String, u64>,
    /// Every event of the account up to here was handed on (or came before the inbox).
    verified: u64,
}

impl Pump {
    async fn run(mut self, mut live: futures::stream::SelectAll<async_nats::Subscriber>) {
        let statistics = self.messages.shared.client.statistics();
        let connects = move || statistics.connects.load(Ordering::Relaxed);
        let mut seen_connects = connects();
        // Whether the events up to `verified` were read since the subscriptions settled or the
        // connection came back; and the newest event handed on at the last check.
        let mut settled = false;
        let mut checkpoint = self.shared.base;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + SETTLE, CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = live.next() => {
                    let Some(message) = message else { break };
                    // Back from a reconnect: what was stored meanwhile goes first, before this
                    // event, so a conversation's events stay in order.
                    if connects() != seen_connects {
                        seen_connects = connects();
                        settled = self.read_missed().await;
                        checkpoint = self.handed_max();
                    }
                    // Boxed, as the reads: an idle inbox keeps no read's future.
                    if let Err(error) = Box::pin(self.live(&message)).await {
                        warn!(account = %self.shared.me, %error, "dm inbox: a gap could not be read; reading again at the next check");
                        settled = false;
                    }
                }
                _ = tick.tick() => {
                    if settled && connects() == seen_connects {
                        // Connected all along: every event before the newest handed on at the
                        // last check reached the subscriptions by now (a connection delivers
                        // in order), so reads after a reconnect start there.
                        self.verified = self.verified.max(checkpoint);
                    } else {
                        seen_connects = connects();
                        settled = self.read_missed().await;
                    }
                    checkpoint = self.handed_max();
                }
            }
        }
        // The subscriptions ended (the client is closing): the sockets' queues end.
        lock(&self.shared.sockets).clear();
    }

    fn handed_max(&self) -> u64 {
        self.last_on.values().copied().max().unwrap_or(self.shared.base)
    }

    /// A live event: handed on after whatever its subject's predecessor says is missing.
    async fn live(&mut self, message: &async_nats::Message) -> Result<(), DmError> {
        use async_nats::header::{NATS_LAST_SEQUENCE, NATS_SEQUENCE, NATS_SUBJECT};
        let Some(headers) = message.headers.as_ref() else {
            debug!(subject = %message.subject, "dm inbox: a live event without its headers");
            return Ok(());
        };
        let number = |value: Option<&async_nats::HeaderValue>| {
            value.and_then(|v| v.as_str().parse::<u64>().ok())
        };
        let (Some(subject), Some(seq)) = (
            headers.get(NATS_SUBJECT).map(|v| v.as_str().to_owned()),
            number(headers.get(NATS_SEQUENCE)),
        ) else {
            debug!(subject = %message.subject, "dm inbox: a live event without its headers");
            return Ok(());
        };
        let previous = number(headers.get(NATS_LAST_SEQUENCE)).unwrap_or(0);
        let handed = self.last_on.get(&subject).copied().unwrap_or(self.shared.base);
        if seq <= handed || seq <= self.shared.base {
            return Ok(());
        }
        if previous > handed {
            // Its predecessors on this subject were not seen: read from the stream first.
            for item in
                read_range(&self.messages.shared.stream, &subject, handed + 1, seq - 1).await?
            {
                self.hand_on(subject.clone(), item);
            }
        }
        let (Some(conversation), Ok(event)) = (conversation_of(&subject), decode(&message.payload))
        else {
            debug!(%subject, seq, "dm inbox: an unreadable live event");
            self.last_on.insert(subject, seq);
            return Ok(());
        };
        self.hand_on(subject, FeedItem { seq, conversation, event });
        Ok(())
    }

    fn hand_on(&mut self, subject: String, item: FeedItem) {
        let handed = self.last_on.entry(subject).or_insert(self.shared.base);
        if item.seq <= *handed {
            return;
        }
        *handed = item.seq;
        self.shared.publish(item);
    }

    /// Reads the account's events after the last point known complete and hands on those not
    /// seen live (the subscriptions were settling, or the connection was down): whether it
    /// could (if not, the next check reads again).
    async fn read_missed(&mut self) -> bool {
        let read = Box::pin(async {
            let until = self.messages.head().await?;
            let items = self.messages.catch_up(&self.shared.me, self.verified + 1, until).await?;
            Ok::<_, DmError>((until, items))
        })
        .await;
        let (until, items) = match read {
            Ok(read) => read,
            Err(error) => {
                warn!(account = %self.shared.me, %error, "dm inbox: cannot read what the live events missed; retrying");
                return false;
            }
        };
        for item in items {
            let subject = subject(&item.conversation, kind_of(&item));
            self.hand_on(subject, item);
        }
        self.verified = until;
        true
    }
}

/// Which subject of its conversation an event is on.
fn kind_of(item: &FeedItem) -> Kind {
    match &item.event {
        DmEvent::Message { .. } => Kind::Messages,
        DmEvent::Receipt { by, .. } => match item.conversation.side(by) {
            Some(side) => Kind::Receipts(side),
            None => Kind::Messages,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(delivered: u64, read: u64) -> DmEvent {
        DmEvent::Receipt {
            by: Username::parse("meg").unwrap(),
            status: Status::Delivered,
            ids: Vec::new(),
            delivered,
            read,
            at_ms: 0,
        }
    }

    fn id(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    #[test]
    fn an_inbox_forgets_idle_conversations_past_its_bound() {
        // Given an inbox that remembers as many conversations as it may, one with an unread
        // message and one whose report is running,
        let mut known = HashMap::new();
        let name = |n: usize| Username::parse(&format!("user{n}")).unwrap();
        for n in 0..CONVERSATIONS {
            known_of(&mut known, &name(n), 10);
        }
        known_of(&mut known, &name(0), 10).message(15, id(15));
        let running = known_of(&mut known, &name(1), 10).reporting.clone();
        // when a conversation it knows comes again, nothing is forgotten;
        known_of(&mut known, &name(2), 10);
        assert_eq!(known.len(), CONVERSATIONS);
        // when a new one comes, the idle ones are forgotten, not those two.
        known_of(&mut known, &name(CONVERSATIONS), 10);
        let mut kept: Vec<_> = known.keys().map(|k| k.to_string()).collect();
        kept.sort();
        assert_eq!(kept, ["user0", "user1", format!("user{CONVERSATIONS}").as_str()]);
        drop(running);
    }

    #[test]
    fn a_report_is_planned_only_on_what_the_inbox_has_seen() {
        // Given an inbox started at 10 that saw a receipt (delivered and read to 12) and
        // messages to the account at 15 and 18,
        let mut known = Known::new(10);
        assert!(known.plan(Status::Delivered, 15).is_none(), "no receipt seen: the stream knows");
        known.receipt(20, &receipt(12, 12));
        known.message(15, id(15));
        known.message(18, id(18));
        // when a report reaches what it saw, it is planned on it;
        let plan = known.plan(Status::Read, 18).unwrap();
        assert_eq!((plan.last, plan.covered), (20, vec![(15, id(15)), (18, id(18))]));
        // when it goes past (a socket wrote 19 from the stream before the inbox handed it on),
        // the stream decides.
        assert!(known.plan(Status::Read, 19).is_none());
        // A gap fill after later events keeps the order.
        known.message(16, id(16));
        let plan = known.plan(Status::Delivered, 18).unwrap();
        assert_eq!(plan.covered.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [15, 16, 18]);
        // A read receipt forgets what it covers; a report from below the inbox's start is the
        // stream's.
        known.receipt(21, &receipt(18, 16));
        assert_eq!(known.to_me.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [18]);
        let mut older = Known::new(10);
        older.receipt(20, &receipt(5, 5));
        older.message(15, id(15));
        assert!(older.plan(Status::Delivered, 15).is_none());
    }
}
