//! The pinned JSON form of commands and events: `{"type": "seek", "position_ms": 5000}`.
//!
//! The binary codec (postcard) cannot read internally tagged enums, so [`Command`] and
//! [`Event`] derive serde's externally tagged form (`{"seek": {"position_ms": 5000}}`), and
//! this module converts between the two for human-readable formats only.
//!
//! [`Command`]: crate::Command
//! [`Event`]: crate::Event

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Serializes an externally tagged enum value into its `{"type": …}` form.
pub fn to_value<T: Serialize>(value: &T) -> Result<Value, serde_json::Error> {
    match serde_json::to_value(value)? {
        Value::String(tag) => Ok(tagged(tag, Map::new())),
        Value::Object(outer) if outer.len() == 1 => {
            let Some((tag, inner)) = outer.into_iter().next() else {
                return Err(serde_json::Error::custom("empty enum object"));
            };
            match inner {
                Value::Object(fields) => Ok(tagged(tag, fields)),
                _ => Err(serde_json::Error::custom("only unit and struct variants are supported")),
            }
        }
        _ => Err(serde_json::Error::custom("not an enum value")),
    }
}

/// Parses a `{"type": …}` value into an externally tagged enum. Unknown types, unknown fields
/// and wrong field types are errors.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    let Value::Object(mut fields) = value else {
        return Err(serde_json::Error::custom("expected an object with a \"type\" field"));
    };
    let tag = match fields.remove("type") {
        Some(Value::String(tag)) => tag,
        Some(_) => return Err(serde_json::Error::custom("\"type\" must be a string")),
        None => return Err(serde_json::Error::custom("missing field `type`")),
    };
    if fields.is_empty() {
        // A unit variant (`{"type": "play"}`) or a struct variant whose fields are all optional.
        if let Ok(value) = serde_json::from_value(Value::String(tag.clone())) {
            return Ok(value);
        }
    }
    serde_json::from_value(Value::Object(Map::from_iter([(tag, Value::Object(fields))])))
}

/// Shows a deleted chat message as deleted in an event's `{"type": …}` form: a `chat_posted`
/// of a message in `deleted` keeps its id, author and time, loses its text (`""`) and says
/// `"deleted": true`. The log keeps the fact of the posting; readers of the history redact it.
/// Other events are left alone. Returns whether it redacted.
pub fn redact_event(event: &mut Value, deleted: &impl Fn(&str) -> bool) -> bool {
    if event.get("type").and_then(Value::as_str) != Some("chat_posted") {
        return false;
    }
    let Some(message) = event.get_mut("message").and_then(Value::as_object_mut) else {
        return false;
    };
    if !message.get("id").and_then(Value::as_str).is_some_and(deleted) {
        return false;
    }
    message.insert("text".to_owned(), Value::String(String::new()));
    message.insert("deleted".to_owned(), Value::Bool(true));
    true
}

/// [`redact_event`] for every event of a commit's JSON form (its `events` array).
pub fn redact_commit(commit: &mut Value, deleted: &impl Fn(&str) -> bool) {
    if let Some(events) = commit.get_mut("events").and_then(Value::as_array_mut) {
        for event in events {
            redact_event(event, deleted);
        }
    }
}

/// Parses a `{"type": …}` JSON text.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    from_value(serde_json::from_str(text)?)
}

fn tagged(tag: String, fields: Map<String, Value>) -> Value {
    let mut object = Map::with_capacity(fields.len() + 1);
    object.insert("type".to_owned(), Value::String(tag));
    object.extend(fields);
    Value::Object(object)
}

/// `#[serde(with = "events::json::tagged")]` for a command or event field: the `{"type": …}`
/// form in human-readable formats, the derived form otherwise.
pub mod tagged {
    use super::*;

    /// Serializes.
    pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            super::to_value(value).map_err(serde::ser::Error::custom)?.serialize(s)
        } else {
            value.serialize(s)
        }
    }

    /// Deserializes.
    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        if d.is_human_readable() {
            super::from_value(Value::deserialize(d)?).map_err(D::Error::custom)
        } else {
            T::deserialize(d)
        }
    }
}

/// Like [`tagged`], for a `Vec` of commands or events.
pub mod tagged_vec {
    use super::*;

    /// Serializes.
    pub fn serialize<T: Serialize, S: Serializer>(values: &[T], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let values = values
                .iter()
                .map(super::to_value)
                .collect::<Result<Vec<_>, _>>()
                .map_err(serde::ser::Error::custom)?;
            values.serialize(s)
        } else {
            values.serialize(s)
        }
    }

    /// Deserializes.
    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        if d.is_human_readable() {
            Vec::<Value>::deserialize(d)?
                .into_iter()
                .map(|v| super::from_value(v).map_err(D::Error::custom))
                .collect()
        } else {
            Vec::<T>::deserialize(d)
        }
    }
}
