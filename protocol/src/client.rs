//! The typed request/reply client every caller uses.

use std::time::Duration;

use events::RoomId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{
    CommandReply, CommandRequest, CreateReply, CreateRequest, ResolveReply, ResolveRequest,
    WatchReply, WatchRequest, subjects,
};

/// Why a request got no typed reply.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Nobody answered in time (the serving role may be down or overloaded).
    #[error("no reply from {subject} within {timeout:?}")]
    Timeout {
        /// The subject asked.
        subject: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// NATS refused or lost the request (no responders, disconnected).
    #[error("request to {subject} failed: {source}")]
    Nats {
        /// The subject asked.
        subject: String,
        /// What NATS said.
        #[source]
        source: async_nats::RequestError,
    },
    /// The reply was not the message the protocol promises (a role of another version?).
    #[error("malformed reply from {subject}: {source}")]
    Malformed {
        /// The subject asked.
        subject: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// Sends typed requests over NATS. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    nats: async_nats::Client,
    timeout: Duration,
}

impl Client {
    /// A client over `nats` that waits `timeout` for each reply.
    pub fn new(nats: async_nats::Client, timeout: Duration) -> Self {
        Self { nats, timeout }
    }

    /// The same client with another reply timeout.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self { nats: self.nats.clone(), timeout }
    }

    /// The NATS connection underneath.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// Asks the commands role to decide `request` for `room`.
    pub async fn command(
        &self,
        room: &RoomId,
        request: &CommandRequest,
    ) -> Result<CommandReply, RequestError> {
        self.request(subjects::command(room), request).await
    }

    /// Asks the commands role to create a room.
    pub async fn create(&self, request: &CreateRequest) -> Result<CreateReply, RequestError> {
        self.request(subjects::CREATE.to_owned(), request).await
    }

    /// Asks the content role for a thread's media.
    pub async fn resolve(&self, request: &ResolveRequest) -> Result<ResolveReply, RequestError> {
        self.request(subjects::RESOLVE.to_owned(), request).await
    }

    /// Asks the content role to follow a room's thread.
    pub async fn watch(&self, request: &WatchRequest) -> Result<WatchReply, RequestError> {
        self.request(subjects::WATCH.to_owned(), request).await
    }

    async fn request<Q: Serialize, R: DeserializeOwned>(
        &self,
        subject: String,
        request: &Q,
    ) -> Result<R, RequestError> {
        // These messages are plain data: serializing them cannot fail.
        let payload = serde_json::to_vec(request).unwrap_or_default();
        let sent = self.nats.request(subject.clone(), payload.into());
        let response = match tokio::time::timeout(self.timeout, sent).await {
            Err(_) => return Err(RequestError::Timeout { subject, timeout: self.timeout }),
            Ok(Err(source)) => return Err(RequestError::Nats { subject, source }),
            Ok(Ok(response)) => response,
        };
        serde_json::from_slice(&response.payload)
            .map_err(|source| RequestError::Malformed { subject, source })
    }
}
