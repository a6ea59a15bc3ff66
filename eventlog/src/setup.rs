//! Applies `infra/jetstream/` to the server: create the stream, or update it when it differs.

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::{self, context::GetStreamErrorKind, stream};
use serde_json::Value;

use crate::error::LogError;
use crate::subjects::STREAM;

/// The room stream's definition (DESIGN §2), embedded from `infra/jetstream/rooms.json`.
pub const ROOMS_STREAM_JSON: &str = include_str!("../../infra/jetstream/rooms.json");

/// What applying the definition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The stream did not exist and was created.
    Created,
    /// The stream existed with other settings and was updated.
    Updated,
    /// The stream already had the declared settings.
    Unchanged,
}

/// The declared room stream config, with `replicas` replicas.
pub fn rooms_stream_config(replicas: usize) -> Result<(Value, stream::Config), LogError> {
    let mut declared: Value = serde_json::from_str(ROOMS_STREAM_JSON)
        .map_err(|e| LogError::Invalid(format!("infra/jetstream/rooms.json: {e}")))?;
    declared["num_replicas"] = Value::from(replicas);
    let config = serde_json::from_value(declared.clone())
        .map_err(|e| LogError::Invalid(format!("infra/jetstream/rooms.json: {e}")))?;
    Ok((declared, config))
}

/// Creates the room stream or brings it to the declared settings; a second call is a no-op.
pub async fn apply(js: &jetstream::Context, replicas: usize) -> Result<Applied, LogError> {
    let (declared, config) = rooms_stream_config(replicas)?;
    let mut existing = match js.get_stream(STREAM).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(e.kind(), GetStreamErrorKind::JetStream(ref js)
                if js.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            js.create_stream(config).await.map_err(LogError::unavailable)?;
            return Ok(Applied::Created);
        }
        Err(e) => return Err(LogError::unavailable(e)),
    };
    let actual = existing.info().await.map_err(LogError::unavailable)?.config.clone();
    if differs(&declared, &config, &actual)? {
        js.update_stream(config).await.map_err(|e| LogError::IncompatibleStream {
            stream: STREAM.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Applied::Updated)
    } else {
        Ok(Applied::Unchanged)
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
        return Err(LogError::Invalid("infra/jetstream/rooms.json is not an object".into()));
    };
    Ok(keys.keys().any(|key| wanted.get(key) != actual.get(key)))
}
