//! Durable consumers of the room log (projectors), defined in `infra/jetstream/`.

use std::time::Duration;

use async_nats::jetstream::consumer::{PullConsumer, pull};
use async_nats::jetstream::{self, AckKind};
use events::RoomId;
use futures::stream::{BoxStream, StreamExt};

use crate::error::LogError;
use crate::{Stored, subjects};

/// The projectors' consumer, embedded from `infra/jetstream/projector.json`.
pub const PROJECTOR: &str = include_str!("../../infra/jetstream/projector.json");

/// One delivered commit: acknowledge it only once its effect is durable.
#[derive(Debug)]
pub struct Delivery {
    message: jetstream::Message,
    /// Its stream sequence.
    pub seq: u64,
    /// How many times it was delivered (1 on the first delivery).
    pub delivered: i64,
    /// The room, from the subject (known even when the payload is corrupt).
    pub room: Option<RoomId>,
    /// The decoded commit, or why it could not be decoded.
    pub commit: Result<Stored, LogError>,
}

impl Delivery {
    /// Done: do not deliver it again.
    pub async fn ack(&self) -> Result<(), LogError> {
        self.message.ack().await.map_err(LogError::unavailable)
    }

    /// Not now: deliver it again after `delay`.
    pub async fn nak(&self, delay: Duration) -> Result<(), LogError> {
        self.message.ack_with(AckKind::Nak(Some(delay))).await.map_err(LogError::unavailable)
    }

    /// Never: it cannot be processed (a poison commit, already reported).
    pub async fn term(&self) -> Result<(), LogError> {
        self.message.ack_with(AckKind::Term).await.map_err(LogError::unavailable)
    }
}

/// How far behind a durable consumer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Commits stored but not yet acknowledged: last stream sequence − ack floor.
    pub commits: u64,
    /// The stream sequence up to which every commit is acknowledged.
    pub ack_floor: u64,
}

/// A durable pull consumer, shared by every replica that opens it.
#[derive(Debug, Clone)]
pub struct Durable {
    consumer: PullConsumer,
    log: crate::EventLog,
}

impl crate::EventLog {
    /// Creates (or updates) the durable consumer in `definition` and opens it.
    pub async fn durable(&self, definition: &str) -> Result<Durable, LogError> {
        let config: pull::Config = serde_json::from_str(definition)
            .map_err(|e| LogError::Invalid(format!("consumer definition: {e}")))?;
        let consumer = self.stream.create_consumer(config).await.map_err(LogError::unavailable)?;
        Ok(Durable { consumer, log: self.clone() })
    }
}

impl Durable {
    /// Deliveries, as long as the connection lives.
    pub async fn deliveries(
        &self,
    ) -> Result<BoxStream<'static, Result<Delivery, LogError>>, LogError> {
        let messages = self.consumer.messages().await.map_err(LogError::unavailable)?;
        Ok(messages
            .map(|message| {
                let message = message.map_err(LogError::unavailable)?;
                let info = message.info().map_err(LogError::unavailable)?;
                let (seq, delivered) = (info.stream_sequence, info.delivered);
                let room = subjects::room_of(&message.subject);
                let headers = message.headers.clone().unwrap_or_default();
                let commit = crate::stored(seq, &headers, &message.payload);
                Ok(Delivery { message, seq, delivered, room, commit })
            })
            .boxed())
    }

    /// How far behind the consumer is.
    pub async fn lag(&self) -> Result<Lag, LogError> {
        let mut consumer = self.consumer.clone();
        let ack_floor =
            consumer.info().await.map_err(LogError::unavailable)?.ack_floor.stream_sequence;
        let last = self.log.last_seq().await?;
        Ok(Lag { commits: last.saturating_sub(ack_floor), ack_floor })
    }
}
