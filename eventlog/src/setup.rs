//! Applies `infra/jetstream/` to the server: create the streams, or update them when they differ.

use std::time::Duration;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::{self, context::GetStreamErrorKind, stream};
use serde_json::Value;

use crate::error::LogError;
use crate::subjects::{SNAPSHOT_STREAM, STREAM};

/// The room stream's definition (DESIGN §2), embedded from `infra/jetstream/rooms.json`.
pub const ROOMS_STREAM_JSON: &str = include_str!("../../infra/jetstream/rooms.json");
/// The snapshot stream's definition, embedded from `infra/jetstream/snapshots.json`.
pub const SNAPSHOTS_STREAM_JSON: &str = include_str!("../../infra/jetstream/snapshots.json");

/// What the deployment chooses about the streams; the rest is in `infra/jetstream/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// Replicas of each stream (1, or 3 on a cluster).
    pub replicas: usize,
    /// Commits older than this leave the room stream (zero: kept forever). Rooms stay readable
    /// from their snapshots; the archive keeps the history.
    pub max_age: Duration,
    /// The room stream's size cap in bytes, oldest commits leaving first (`None`: no cap). Note
    /// that JetStream reserves this much storage on every replica when the stream is created.
    pub max_bytes: Option<u64>,
}

impl From<usize> for StreamSettings {
    /// `replicas` replicas, everything kept.
    fn from(replicas: usize) -> Self {
        Self { replicas, max_age: Duration::ZERO, max_bytes: None }
    }
}

/// How long `Nats-Msg-Id` dedupes retried commands when the stream keeps everything. A
/// stream with `max_age` dedupes for at most that long (JetStream refuses a longer window).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// What applying the definition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamChange {
    /// The stream did not exist and was created.
    Created,
    /// The stream existed with other settings and was updated.
    Updated,
    /// The stream already had the declared settings.
    Unchanged,
}

/// The declared room stream config with `settings` applied.
pub fn rooms_stream_config(settings: StreamSettings) -> Result<(Value, stream::Config), LogError> {
    declared("rooms.json", ROOMS_STREAM_JSON, |declared| {
        declared["num_replicas"] = Value::from(settings.replicas);
        if !settings.max_age.is_zero() {
            let window = settings.max_age.min(DUPLICATE_WINDOW);
            declared["max_age"] = Value::from(nanos(settings.max_age));
            declared["duplicate_window"] = Value::from(nanos(window));
        }
        if let Some(bytes) = settings.max_bytes {
            declared["max_bytes"] = Value::from(bytes);
        }
    })
}

/// The declared snapshot stream config with `replicas` replicas.
pub fn snapshots_stream_config(replicas: usize) -> Result<(Value, stream::Config), LogError> {
    declared("snapshots.json", SNAPSHOTS_STREAM_JSON, |declared| {
        declared["num_replicas"] = Value::from(replicas);
    })
}

fn declared(
    file: &str,
    json: &str,
    set: impl FnOnce(&mut Value),
) -> Result<(Value, stream::Config), LogError> {
    let invalid = |e: serde_json::Error| LogError::Invalid(format!("infra/jetstream/{file}: {e}"));
    let mut declared: Value = serde_json::from_str(json).map_err(invalid)?;
    set(&mut declared);
    let config = serde_json::from_value(declared.clone()).map_err(invalid)?;
    Ok((declared, config))
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Creates both streams or brings them to the declared settings; a second call is a no-op.
/// Reports what happened to the room stream.
pub async fn apply(
    js: &jetstream::Context,
    settings: StreamSettings,
) -> Result<StreamChange, LogError> {
    let (declared, config) = snapshots_stream_config(settings.replicas)?;
    apply_one(js, SNAPSHOT_STREAM, declared, config).await?;
    let (declared, config) = rooms_stream_config(settings)?;
    apply_one(js, STREAM, declared, config).await
}

async fn apply_one(
    js: &jetstream::Context,
    name: &str,
    declared: Value,
    config: stream::Config,
) -> Result<StreamChange, LogError> {
    let mut existing = match js.get_stream(name).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(e.kind(), GetStreamErrorKind::JetStream(ref js)
                if js.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            js.create_stream(config).await.map_err(LogError::unavailable)?;
            return Ok(StreamChange::Created);
        }
        Err(e) => return Err(LogError::unavailable(e)),
    };
    let actual = existing.info().await.map_err(LogError::unavailable)?.config.clone();
    if differs(&declared, &config, &actual)? {
        js.update_stream(config).await.map_err(|e| LogError::IncompatibleStream {
            stream: name.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(StreamChange::Updated)
    } else {
        Ok(StreamChange::Unchanged)
    }
}

/// Whether any field the definition declares has another value on the server. Fields the
/// definition leaves out (server defaults, metadata the server adds) are not compared.
fn differs(
    declared: &Value,
    config: &stream::Config,
    actual: &stream::Config,
) -> Result<bool, LogError> {
    let normalize = |c: &stream::Config| {
        serde_json::to_value(c).map_err(|e| LogError::Invalid(format!("stream config: {e}")))
    };
    let (wanted, actual) = (normalize(config)?, normalize(actual)?);
    let Some(keys) = declared.as_object() else {
        return Err(LogError::Invalid("a stream definition is not an object".into()));
    };
    Ok(keys.keys().any(|key| wanted.get(key) != actual.get(key)))
}
