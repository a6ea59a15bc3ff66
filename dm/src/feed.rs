//! An account's feed: its conversations' events, in order, each once, wherever its socket is.
//!
//! The data is always read from the stream, in sequence order (leader reads of "the next message
//! on the account's subjects after this sequence"); NATS interest only says *when*: the stream
//! republishes every stored event's headers to `chanshare.dmlive.<a>.<b>.<kind>`, and the
//! gateway holding a socket subscribes to its account's two patterns there. A notification
//! wakes a read from where the feed is. No consumer per socket (JetStream caps them per stream),
//! no map of who is where. A notification missed (a new subscription is not seen by republish
//! at once; a slow consumer's dropped messages) is caught by a read a moment after subscribing
//! and then every [`RESYNC`].

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::stream;
use events::Username;
use futures::StreamExt;

use crate::{DmError, FeedItem, read_range, unavailable};

/// How often a feed reads the stream without a notification.
pub const RESYNC: Duration = Duration::from_secs(30);
/// The first such read, once the subscriptions have settled.
const SETTLE: Duration = Duration::from_secs(2);

/// The live notifications' subject of a stored DM event's subject.
pub(crate) const LIVE_PREFIX: &str = "chanshare.dmlive";

/// An account's feed. [`Feed::next`] yields the events after the starting sequence, in order.
#[derive(Debug)]
pub struct Feed {
    stream: stream::Stream,
    filters: [String; 2],
    live: futures::stream::SelectAll<async_nats::Subscriber>,
    backlog: VecDeque<FeedItem>,
    /// Every event of the account up to here is in the backlog or was yielded.
    read_to: u64,
    /// Read up to at least this (a notification said so).
    wanted: u64,
    resync: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// Reads failed in a row.
    failures: u32,
}

impl Feed {
    pub(crate) async fn open(
        client: &async_nats::Client,
        stream: stream::Stream,
        me: &Username,
        start: u64,
    ) -> Result<Self, DmError> {
        // Subscribed first: whatever is stored from now on either is read below or notifies.
        let mut live = futures::stream::SelectAll::new();
        for pattern in [format!("{LIVE_PREFIX}.{me}.*.*"), format!("{LIVE_PREFIX}.*.{me}.*")] {
            live.push(client.subscribe(pattern).await.map_err(unavailable)?);
        }
        let mut feed = Self {
            stream,
            filters: [format!("chanshare.dm.{me}.*.*"), format!("chanshare.dm.*.{me}.*")],
            live,
            backlog: VecDeque::new(),
            read_to: start.saturating_sub(1),
            wanted: 0,
            resync: Box::pin(tokio::time::sleep(SETTLE)),
            failures: 0,
        };
        feed.read(None).await?;
        Ok(feed)
    }

    /// The next event (waiting for one), or an error when the stream cannot be read.
    pub async fn next(&mut self) -> Option<Result<FeedItem, DmError>> {
        loop {
            if let Some(item) = self.backlog.pop_front() {
                return Some(Ok(item));
            }
            if self.wanted > self.read_to {
                if let Err(error) = self.read(Some(self.wanted)).await {
                    return Some(Err(self.failed(error).await));
                }
                continue;
            }
            tokio::select! {
                message = self.live.next() => {
                    let message = message?;
                    let seq = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(async_nats::header::NATS_SEQUENCE))
                        .and_then(|v| v.as_str().parse::<u64>().ok());
                    // A notification without its sequence: read to the stream's end.
                    self.wanted = self.wanted.max(seq.unwrap_or(u64::MAX));
                }
                () = &mut self.resync => {
                    self.resync.as_mut().reset(tokio::time::Instant::now() + RESYNC);
                    if let Err(error) = self.read(None).await {
                        return Some(Err(self.failed(error).await));
                    }
                }
            }
        }
    }

    /// A read failed: waits before the next (¼ s, doubling to 30 s) so that a stream leader
    /// being elected is not hammered by every socket; the error.
    async fn failed(&mut self, error: DmError) -> DmError {
        self.failures = (self.failures + 1).min(8);
        tokio::time::sleep(Duration::from_millis(250 << (self.failures - 1)).min(RESYNC)).await;
        error
    }

    /// Reads the account's events after `read_to` up to `until` (the stream's end when `None`
    /// or past it) into the backlog, in sequence order.
    async fn read(&mut self, until: Option<u64>) -> Result<(), DmError> {
        // A notification names a stored sequence: no need to ask the stream where it ends.
        let until = match until {
            Some(until) if until != u64::MAX => until,
            _ => {
                let mut stream = self.stream.clone();
                stream.info().await.map_err(unavailable)?.state.last_sequence
            }
        };
        let mut items = Vec::new();
        for filter in &self.filters {
            items.extend(read_range(&self.stream, filter, self.read_to + 1, until).await?);
        }
        items.sort_by_key(|item| item.seq);
        self.backlog.extend(items);
        self.read_to = self.read_to.max(until);
        // A notification past what the stream holds (it cannot be) asks for nothing more.
        self.wanted = self.wanted.min(self.read_to);
        self.failures = 0;
        Ok(())
    }
}
