//! The direct-message views (DESIGN §4b): each account's inbox and each conversation's
//! history, kept by the DM projector from the DM stream.
//!
//! Keys (`<a>`, `<b>`: the conversation's usernames in order):
//! - `chanshare:dm:inbox:<user>` — sorted set, partner → seq of the conversation's last message.
//! - `chanshare:dm:msgs:<a>:<b>` — sorted set, message JSON by seq.
//! - `chanshare:dm:to:<a>:<b>:<reader>` — sorted set, the seqs of the messages to `reader`.
//! - `chanshare:dm:marks:<a>:<b>` — hash, `delivered:<reader>` and `read:<reader>` (seqs).
//! - `chanshare:dm:projected` — set while the views hold the stream (gone: rebuild).
//!
//! Every write is idempotent and commutative (set members by seq, marks only rise), so
//! projector replicas may apply events in any order, twice, or again in a rebuild, and the
//! views end the same.

use events::Username;
use events::dm::{Conversation, DmEvent, Status};
use redis::AsyncCommands as _;
use serde::Serialize;

use crate::{ViewError, Views};

/// The key that says the DM views are projected.
pub const PROJECTED: &str = "chanshare:dm:projected";

fn inbox_key(user: &Username) -> String {
    format!("chanshare:dm:inbox:{user}")
}

fn messages_key(conversation: &Conversation) -> String {
    format!("chanshare:dm:msgs:{}:{}", conversation.a(), conversation.b())
}

fn to_key(conversation: &Conversation, reader: &Username) -> String {
    format!("chanshare:dm:to:{}:{}:{reader}", conversation.a(), conversation.b())
}

fn marks_key(conversation: &Conversation) -> String {
    format!("chanshare:dm:marks:{}:{}", conversation.a(), conversation.b())
}

/// Raises a hash field to a value (never lowers it): `KEYS[1]`, field `ARGV[1]`, `ARGV[2]`.
const RAISE: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local value = tonumber(ARGV[2])
if value > current then redis.call('HSET', KEYS[1], ARGV[1], value) end
return 0
";

/// A message as the views keep and serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct StoredMessage {
    /// The sender's id for it.
    pub id: uuid::Uuid,
    /// The sender.
    pub from: Username,
    /// The receiver.
    pub to: Username,
    /// The text.
    pub text: String,
    /// Its place in the conversation.
    pub seq: u64,
    /// When it was sent.
    pub at_ms: u64,
}

/// A message with where it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Message {
    /// The message.
    #[serde(flatten)]
    pub message: StoredMessage,
    /// `sent`, `delivered` or `read` (by its receiver).
    pub status: Status,
}

/// An entry of an account's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ConversationEntry {
    /// The other account.
    pub with: Username,
    /// The conversation's last message.
    pub last: Message,
    /// Messages to the account it has not read.
    pub unread: u64,
}

impl Views {
    /// Applies one event of the DM stream (stream sequence `seq`) to the views.
    pub async fn apply_dm(
        &self,
        seq: u64,
        conversation: &Conversation,
        event: &DmEvent,
    ) -> Result<(), ViewError> {
        let mut conn = self.conn();
        match event {
            DmEvent::Message { id, from, to, text, at_ms } => {
                let stored = StoredMessage {
                    id: *id,
                    from: from.clone(),
                    to: to.clone(),
                    text: text.clone(),
                    seq,
                    at_ms: *at_ms,
                };
                let json = serde_json::to_string(&stored).map_err(encode_error)?;
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .zadd(messages_key(conversation), json, seq)
                    .ignore()
                    .zadd(to_key(conversation, to), seq, seq)
                    .ignore();
                for (user, partner) in [(from, to), (to, from)] {
                    pipe.cmd("ZADD")
                        .arg(inbox_key(user))
                        .arg("GT")
                        .arg(seq)
                        .arg(partner.as_str())
                        .ignore();
                }
                pipe.query_async::<()>(&mut conn).await?;
            }
            DmEvent::Receipt { by, delivered, read, .. } => {
                static SCRIPT: std::sync::LazyLock<redis::Script> =
                    std::sync::LazyLock::new(|| redis::Script::new(RAISE));
                let script = &*SCRIPT;
                for (field, value) in
                    [(format!("delivered:{by}"), delivered), (format!("read:{by}"), read)]
                {
                    script
                        .key(marks_key(conversation))
                        .arg(field)
                        .arg(*value)
                        .invoke_async::<()>(&mut conn)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Marks the DM views as projected (a rebuild sets it when done).
    pub async fn set_dm_projected(&self) -> Result<(), ViewError> {
        let _: () = self.conn().set(PROJECTED, "1").await?;
        Ok(())
    }

    /// Whether the DM views are there (Redis lost them when not: rebuild).
    pub async fn dm_projected(&self) -> Result<bool, ViewError> {
        Ok(self.conn().exists(PROJECTED).await?)
    }

    /// Deletes every DM view (before a rebuild).
    pub async fn clear_dm(&self) -> Result<(), ViewError> {
        let mut conn = self.conn();
        let keys = self.dm_keys().await?;
        for chunk in keys.chunks(500) {
            let _: () = conn.del(chunk).await?;
        }
        Ok(())
    }

    async fn dm_keys(&self) -> Result<Vec<String>, ViewError> {
        let mut conn = self.conn();
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("chanshare:dm:*")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        Ok(keys)
    }

    /// Every DM view, as text (for comparing a rebuild with the projection).
    pub async fn dump_dm(&self) -> Result<Vec<(String, Vec<String>)>, ViewError> {
        let mut conn = self.conn();
        let mut dump = Vec::new();
        for key in self.dm_keys().await? {
            let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await?;
            let mut values: Vec<String> = match kind.as_str() {
                "zset" => conn
                    .zrange_withscores::<_, Vec<(String, String)>>(&key, 0, -1)
                    .await?
                    .into_iter()
                    .map(|(m, s)| format!("{s} {m}"))
                    .collect(),
                "hash" => conn
                    .hgetall::<_, Vec<(String, String)>>(&key)
                    .await?
                    .into_iter()
                    .map(|(f, v)| format!("{f}={v}"))
                    .collect(),
                _ => vec![conn.get::<_, Option<String>>(&key).await?.unwrap_or_default()],
            };
            values.sort();
            dump.push((key, values));
        }
        Ok(dump)
    }

    /// `me`'s conversations, newest first (at most `limit`).
    pub async fn conversations(
        &self,
        me: &Username,
        limit: usize,
    ) -> Result<Vec<ConversationEntry>, ViewError> {
        let mut conn = self.conn();
        let partners: Vec<String> =
            conn.zrevrange(inbox_key(me), 0, limit.saturating_sub(1) as isize).await?;
        let mut entries = Vec::with_capacity(partners.len());
        for partner in partners {
            let Ok(partner) = Username::parse(&partner) else { continue };
            let Ok(conversation) = Conversation::new(me, &partner) else { continue };
            let (last, marks) = self.last_and_marks(&conversation).await?;
            let Some(last) = last else { continue };
            let read = marks.read(me);
            let unread: u64 =
                conn.zcount(to_key(&conversation, me), format!("({read}"), "+inf").await?;
            entries.push(ConversationEntry { with: partner, last: marks.message(last), unread });
        }
        Ok(entries)
    }

    /// The messages of `me` and `partner` before seq `before` (all when `None`), newest first.
    pub async fn history(
        &self,
        me: &Username,
        partner: &Username,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Message>, ViewError> {
        let Ok(conversation) = Conversation::new(me, partner) else { return Ok(Vec::new()) };
        let max = before.map_or("+inf".to_owned(), |seq| format!("({seq}"));
        let texts: Vec<String> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(messages_key(&conversation))
            .arg(max)
            .arg("-inf")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn())
            .await?;
        let marks = self.marks(&conversation).await?;
        texts
            .iter()
            .map(|text| {
                let stored: StoredMessage = serde_json::from_str(text).map_err(encode_error)?;
                Ok(marks.message(stored))
            })
            .collect()
    }

    async fn last_and_marks(
        &self,
        conversation: &Conversation,
    ) -> Result<(Option<StoredMessage>, Marks), ViewError> {
        let last: Vec<String> = self.conn().zrevrange(messages_key(conversation), 0, 0).await?;
        let last = match last.first() {
            Some(text) => Some(serde_json::from_str(text).map_err(encode_error)?),
            None => None,
        };
        Ok((last, self.marks(conversation).await?))
    }

    async fn marks(&self, conversation: &Conversation) -> Result<Marks, ViewError> {
        let fields: Vec<(String, u64)> = self.conn().hgetall(marks_key(conversation)).await?;
        Ok(Marks(fields))
    }
}

/// A conversation's receipts marks.
struct Marks(Vec<(String, u64)>);

impl Marks {
    fn get(&self, field: &str) -> u64 {
        self.0.iter().find(|(f, _)| f == field).map_or(0, |(_, v)| *v)
    }

    fn read(&self, reader: &Username) -> u64 {
        self.get(&format!("read:{reader}"))
    }

    fn message(&self, message: StoredMessage) -> Message {
        let status = if message.seq <= self.read(&message.to) {
            Status::Read
        } else if message.seq <= self.get(&format!("delivered:{}", message.to)) {
            Status::Delivered
        } else {
            Status::Sent
        };
        Message { message, status }
    }
}

fn encode_error(error: serde_json::Error) -> ViewError {
    ViewError::Encode(error.to_string())
}
