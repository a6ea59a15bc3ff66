//! The binary commit codec: a schema number, then the commit in postcard.
//!
//! Payload = `varint(schema) ‖ postcard(commit)`. The schema number is also sent as the
//! `Chanshare-Schema` header so tools can tell without decoding.
//!
//! # Evolving the format
//!
//! postcard is not self-describing: it stores fields by position and enum variants by index.
//! So: add event variants only at the end of [`Event`](crate::Event) (old commits stay
//! readable, no bump needed); for any other change (a field added, removed or retyped), bump
//! [`SCHEMA`], freeze the old shapes in a `v{N}` module, and add an arm to [`decode`] that reads
//! them and upcasts to the current types. The golden-bytes test fails on any accidental change.

use crate::commit::Commit;

/// The schema written by this build.
pub const SCHEMA: u16 = 1;

/// Why a payload could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The payload names a schema this build does not know (written by a newer build).
    #[error("unknown schema {0}")]
    UnknownSchema(u16),
    /// The bytes are not a valid commit of their schema.
    #[error("corrupt payload: {0}")]
    Corrupt(String),
    /// The commit could not be serialized.
    #[error("cannot encode commit: {0}")]
    Encode(String),
}

/// Encodes a commit with the current schema.
pub fn encode(commit: &Commit) -> Result<Vec<u8>, CodecError> {
    postcard::to_allocvec(&(SCHEMA, commit)).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a payload of any known schema, upcasting it to the current types.
/// Never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<Commit, CodecError> {
    let (schema, body) = postcard::take_from_bytes::<u16>(bytes)
        .map_err(|e| CodecError::Corrupt(format!("schema number: {e}")))?;
    match schema {
        1 => exact::<Commit>(body),
        other => Err(CodecError::UnknownSchema(other)),
    }
}

/// The schema number of a payload, without decoding the rest.
pub fn schema_of(bytes: &[u8]) -> Result<u16, CodecError> {
    postcard::take_from_bytes::<u16>(bytes)
        .map(|(schema, _)| schema)
        .map_err(|e| CodecError::Corrupt(format!("schema number: {e}")))
}

fn exact<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(CodecError::Corrupt(format!("{} trailing bytes", rest.len())))
    }
}
