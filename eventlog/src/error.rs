//! Errors of the log, by kind, so callers can match instead of parsing strings.

use events::codec::CodecError;

use crate::Position;

/// A boxed source error from the NATS client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong talking to the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The room moved on since the expected sequence: catch up and decide again. `current` is the
    /// room's head when the conflict was seen (`None`: the room has no commits).
    #[error("conflict: room is at {current:?}")]
    Conflict {
        /// The head after the conflict.
        current: Option<Position>,
    },
    /// NATS or JetStream did not answer, or answered with an error: retry later.
    #[error("log unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A stored commit could not be decoded (a poison commit).
    #[error("cannot decode commit at stream sequence {seq}: {source}")]
    Decode {
        /// Where it is.
        seq: u64,
        /// Why.
        #[source]
        source: CodecError,
    },
    /// A message on the log lacks a header every commit has.
    #[error("commit at stream sequence {seq} has no valid {header} header")]
    MissingHeader {
        /// Where it is.
        seq: u64,
        /// Which header.
        header: &'static str,
    },
    /// The commits right after `after` have left the room stream (its retention): start again
    /// from the room's snapshot ([`crate::EventLog::catch_up`] does).
    #[error("the commits after version {after} have left the log")]
    Expired {
        /// The version the reader had.
        after: u64,
    },
    /// The commit cannot be encoded or is larger than a log message may be.
    #[error("commit cannot be stored: {0}")]
    Invalid(String),
    /// The stream exists with settings that cannot be changed to the declared ones.
    #[error("stream {stream} cannot be updated to infra/jetstream: {reason}")]
    IncompatibleStream {
        /// The stream.
        stream: String,
        /// The server's reason.
        reason: String,
    },
}

impl LogError {
    pub(crate) fn unavailable(error: impl Into<BoxError>) -> Self {
        Self::Unavailable(error.into())
    }
}
