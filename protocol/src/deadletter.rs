//! `chanshare.deadletter`: a commit the projectors parked instead of applying.

use serde::{Deserialize, Serialize};

/// `{"room", "seq", "reason"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The room (as found in the subject; it may be malformed, which is why it was parked).
    pub room: String,
    /// The commit's stream sequence.
    pub seq: u64,
    /// Why it could not be applied.
    pub reason: String,
}
