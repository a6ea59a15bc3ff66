//! Room provisioning: allocate an id, resolve a chan thread, append the first commit, sign the
//! host's token.

use std::time::Duration;

use eventlog::{EventLog, LogError};
use events::{
    Actor, Command, CommandId, Commit, Ctx, Limits, MemberId, RejectCode, RoomId, RoomState,
    Settings, Source, decide,
};
use tokens::{Claims, Signer, TokenRole};
use tracing::warn;

use crate::handler::now_ms;
use protocol::{
    CreateReply, CreateRequest, RequestError, ResolveReply, ResolveRequest, WatchReply,
    WatchRequest,
};

/// How many fresh ids to try when a generated room id is taken.
const ID_ATTEMPTS: usize = 8;

/// Creates rooms.
#[derive(Debug)]
pub struct Provisioner {
    content: protocol::Client,
    log: EventLog,
    signer: Signer,
    limits: Limits,
    token_ttl: Duration,
}

impl Provisioner {
    /// A provisioner appending to `log`, resolving threads over `client`, signing with `signer`.
    pub fn new(
        client: async_nats::Client,
        log: EventLog,
        signer: Signer,
        limits: Limits,
        token_ttl: Duration,
    ) -> Self {
        let content = protocol::Client::new(client, Duration::from_secs(15));
        Self { content, log, signer, limits, token_ttl }
    }

    /// Creates a room from `request`.
    pub async fn create(&self, request: CreateRequest) -> CreateReply {
        let (items, thread_title) = match &request.source {
            Source::Chan { board, thread } => match self.resolve(board, *thread).await {
                Ok(resolved) => resolved,
                Err(reply) => return reply,
            },
            Source::Urls(_) => (Vec::new(), None),
        };
        let account = request.account;
        let settings = Settings {
            control: request.control.unwrap_or_default(),
            listed: request.listed.unwrap_or(true),
        };
        let source = request.source;
        // The creator's title, else the thread's; empty lets the domain derive one.
        let title = request
            .title
            .filter(|title| !title.trim().is_empty())
            .or_else(|| thread_title.filter(|title| self.fits_title(title)))
            .unwrap_or_default();
        let command = Command::CreateRoom {
            title,
            source: source.clone(),
            settings,
            // A signed-in creator without a nickname is called by their username.
            name: request.name.unwrap_or_else(|| {
                if account.is_some() { String::new() } else { "host".to_owned() }
            }),
            items,
            account: account.clone(),
        };
        for _ in 0..ID_ATTEMPTS {
            let room = RoomId::readable(random_wide());
            // An account is the same member on every device: its member id comes from it.
            let host = match &account {
                Some(account) => self.signer.account_member(&room, &account.account_id),
                None => MemberId::generate(random()),
            };
            // The append below expects an empty subject, which only rules out live commits: an
            // id whose commits have all expired is still taken.
            match self.log.is_free(&room).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => return creation_failed(&error),
            }
            let ctx = Ctx {
                room: room.clone(),
                actor: Actor::Member(host.clone()),
                now_ms: now_ms(),
                limits: self.limits,
                entropy: 0,
            };
            let events = match decide(&RoomState::default(), command.clone(), &ctx) {
                Ok(events) => events,
                Err(rejection) => {
                    return CreateReply::Rejected {
                        code: rejection.code,
                        message: rejection.message,
                    };
                }
            };
            let commit = Commit {
                room: room.clone(),
                version: 1,
                command_id: CommandId(uuid::Uuid::new_v4()),
                actor: ctx.actor,
                at_ms: ctx.now_ms,
                events,
            };
            match self.log.append(0, &commit, None).await {
                Ok(appended) => {
                    if let Source::Chan { board, thread } = &source {
                        self.watch(&room, board, *thread).await;
                    }
                    let claims = Claims {
                        room: room.clone(),
                        member: host.clone(),
                        role: TokenRole::Host,
                        exp: now_ms() / 1000 + self.token_ttl.as_secs(),
                    };
                    return CreateReply::Created {
                        room_id: room,
                        member_id: host,
                        host_token: self.signer.issue(&claims),
                        version: appended.position.version,
                    };
                }
                Err(LogError::Conflict { .. }) => continue, // the id is taken: draw another
                Err(LogError::Invalid(message)) => {
                    return CreateReply::Rejected { code: RejectCode::Invalid, message };
                }
                Err(error) => return creation_failed(&error),
            }
        }
        CreateReply::Error {
            code: RejectCode::Unavailable,
            message: "could not allocate a room id".into(),
        }
    }

    /// Asks the content service to follow the room's thread (and warm its first items). A room
    /// works without it; it just does not grow with its thread.
    async fn watch(&self, room: &RoomId, board: &str, thread: u64) {
        let request = WatchRequest { room: room.clone(), board: board.to_owned(), thread };
        match self.content.watch(&request).await {
            Ok(WatchReply::Watching | WatchReply::NotWatched { .. }) => {}
            Ok(WatchReply::Error { message }) => {
                warn!(%room, %message, "thread watch not registered")
            }
            Err(error) => warn!(%room, %error, "thread watch not registered"),
        }
    }

    /// Whether a title from the content service is one the domain accepts (a content service
    /// of another version might send one it refuses; the room is then titled by its thread).
    fn fits_title(&self, title: &str) -> bool {
        let title = title.trim();
        !title.is_empty()
            && title.chars().count() <= self.limits.max_title_chars
            && !title.chars().any(char::is_control)
    }

    /// Asks the content service for a thread's playable media and its title.
    async fn resolve(
        &self,
        board: &str,
        thread: u64,
    ) -> Result<(Vec<events::Media>, Option<String>), CreateReply> {
        let unavailable =
            |message: String| CreateReply::Error { code: RejectCode::Unavailable, message };
        let request = ResolveRequest { board: board.to_owned(), thread };
        match self.content.resolve(&request).await {
            Ok(ResolveReply::Resolved { items, title, .. }) => Ok((items, title)),
            Ok(ResolveReply::NotFound { message }) => {
                Err(CreateReply::Rejected { code: RejectCode::NotFound, message })
            }
            Ok(ResolveReply::Error { code, message }) if code == RejectCode::Invalid => {
                Err(CreateReply::Rejected { code, message })
            }
            Ok(ResolveReply::Error { message, .. }) => Err(unavailable(message)),
            Err(RequestError::Timeout { .. }) => {
                Err(unavailable("the content service did not answer in time".into()))
            }
            Err(error) => Err(unavailable(format!("the content service is unavailable: {error}"))),
        }
    }
}

fn random() -> u64 {
    uuid::Uuid::new_v4().as_u128() as u64
}

/// 110 random bits from a v4 UUID, packed low: its top 48 bits above its low 62, leaving out the
/// fixed version and variant bits in between.
fn random_wide() -> u128 {
    let uuid = uuid::Uuid::new_v4().as_u128();
    ((uuid >> 80) << 62) | (uuid & ((1 << 62) - 1))
}

fn creation_failed(error: &LogError) -> CreateReply {
    warn!(%error, "room creation failed");
    CreateReply::Error { code: RejectCode::Unavailable, message: error.to_string() }
}
