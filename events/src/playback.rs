//! The playback clock: derived from an anchor in server time, never ticked.

use serde::{Deserialize, Serialize};

use crate::ids::ItemId;

/// A playback rate in hundredths (100 = normal speed), so equality and folds are exact.
/// JSON shows the factor (`1.25`); the binary codec stores the hundredths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u16);

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_f64(self.factor())
        } else {
            serializer.serialize_u16(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let rate = if deserializer.is_human_readable() {
            Rate::from_factor(f64::deserialize(deserializer)?)
        } else {
            Some(Rate(u16::deserialize(deserializer)?))
                .filter(|r| (Self::MIN..=Self::MAX).contains(r))
        };
        rate.ok_or_else(|| serde::de::Error::custom("rate must be between 0.25 and 4.0"))
    }
}

impl schemars::JsonSchema for Rate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rate".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "the speed factor (1 is normal speed), rounded to hundredths",
            "type": "number",
            "minimum": 0.25,
            "maximum": 4.0,
        })
    }
}

impl Rate {
    /// Normal speed.
    pub const NORMAL: Rate = Rate(100);
    /// The slowest allowed rate, 0.25×.
    pub const MIN: Rate = Rate(25);
    /// The fastest allowed rate, 4×.
    pub const MAX: Rate = Rate(400);

    /// Converts a factor such as `1.25` to a rate, rounded to hundredths; `None` outside
    /// 0.25–4.0 or when not a number.
    pub fn from_factor(factor: f64) -> Option<Rate> {
        if !factor.is_finite() {
            return None;
        }
        let hundredths = (factor * 100.0).round();
        if hundredths < f64::from(Self::MIN.0) || hundredths > f64::from(Self::MAX.0) {
            return None;
        }
        Some(Rate(hundredths as u16))
    }

    /// The rate as a factor (`1.25`).
    pub fn factor(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// The rate in hundredths (`125`).
    pub fn hundredths(self) -> u16 {
        self.0
    }
}

impl Default for Rate {
    fn default() -> Self {
        Self::NORMAL
    }
}

/// Where the room's player is: `position_ms` at server time `anchor_ms`, moving at `rate`
/// while `playing`. Everything a client needs to compute the position at any instant.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Playback {
    /// The current item, `None` while the playlist is empty.
    pub item_id: Option<ItemId>,
    /// Playing or paused.
    pub playing: bool,
    /// The position in the item at `anchor_ms`.
    pub position_ms: u64,
    /// Server time (ms since the Unix epoch) at which the position was `position_ms`.
    pub anchor_ms: u64,
    /// The playback rate.
    pub rate: Rate,
}

impl Playback {
    /// The position at server time `now_ms`: `position + (now - anchor) × rate` while playing.
    /// Never negative and never before the anchor position, even if `now_ms` is in the past.
    pub fn position_at(&self, now_ms: u64) -> u64 {
        if !self.playing {
            return self.position_ms;
        }
        let elapsed = now_ms.saturating_sub(self.anchor_ms);
        let advanced = elapsed.saturating_mul(u64::from(self.rate.hundredths())) / 100;
        self.position_ms.saturating_add(advanced)
    }

    /// The same playback re-anchored at `now_ms` (position carried forward).
    pub fn reanchored(&self, now_ms: u64) -> Playback {
        Playback { position_ms: self.position_at(now_ms), anchor_ms: now_ms, ..self.clone() }
    }
}
