//! Every NATS subject the roles use to talk to each other.

use events::RoomId;

/// Commands for room `R` are requests on `chanshare.cmd.R` (served by the commands role).
pub const COMMAND_PREFIX: &str = "chanshare.cmd.";
/// Room creation requests (served by the commands role).
pub const CREATE: &str = "chanshare.rooms.create";
/// Thread resolution requests (served by the content role).
pub const RESOLVE: &str = "chanshare.content.resolve";
/// Thread watch registrations (served by the content role).
pub const WATCH: &str = "chanshare.content.watch";
/// Commits the projectors could not apply (published, nobody has to listen).
pub const DEADLETTER: &str = "chanshare.deadletter";

/// The subject for commands to `room`.
pub fn command(room: &RoomId) -> String {
    format!("{COMMAND_PREFIX}{room}")
}

/// The room a command subject is for; `None` for any other subject or a bad room id.
pub fn command_room(subject: &str) -> Option<RoomId> {
    subject.strip_prefix(COMMAND_PREFIX).and_then(|room| RoomId::new(room).ok())
}
