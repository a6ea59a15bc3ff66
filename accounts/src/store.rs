//! The account stream and the session bucket, on JetStream.
//!
//! - `CHANSHARE_ACCOUNTS`: one subject per account, `chanshare.account.<username>`, its events as
//!   JSON. Registering appends the first event expecting the subject empty: JetStream's
//!   optimistic concurrency is the uniqueness constraint, across every gateway.
//! - `CHANSHARE_SESSIONS` (a KV bucket): one key per refresh family, the hash of its current
//!   refresh token, compare-and-set on rotation. Entries leave 30 days after their last use.
//!
//! Reads that decide something (is this name taken, which token is current) go to the stream
//! leader, not to a replica's direct get, which may trail a write acknowledged a moment ago.

use std::time::Duration;

use async_nats::jetstream::context::{GetStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_nats::jetstream::{self, ErrorCode, kv};
use events::Username;
use events::account::{Account, AccountEvent, AccountState};
use serde::{Deserialize, Serialize};

use crate::AccountError;

/// The account stream.
pub const ACCOUNT_STREAM: &str = "CHANSHARE_ACCOUNTS";
/// The session bucket.
pub const SESSION_BUCKET: &str = "CHANSHARE_SESSIONS";
/// How long a refresh family lives after its last rotation.
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The subject of an account.
pub fn account_subject(username: &Username) -> String {
    format!("chanshare.account.{username}")
}

/// Creates the stream and the bucket if they are missing (the commands role does, at start).
pub async fn setup(js: &jetstream::Context, replicas: usize) -> Result<(), AccountError> {
    let config = stream::Config {
        name: ACCOUNT_STREAM.into(),
        description: Some("Chanshare accounts: subject chanshare.account.<username>, the account's events as JSON".into()),
        subjects: vec!["chanshare.account.*".into()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_message_size: 64 << 10,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    };
    match js.get_stream(ACCOUNT_STREAM).await {
        Ok(_) => {}
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            js.create_stream(config).await.map_err(unavailable)?;
        }
        Err(e) => return Err(unavailable(e)),
    }
    if js.get_key_value(SESSION_BUCKET).await.is_err() {
        js.create_key_value(kv::Config {
            bucket: SESSION_BUCKET.into(),
            description: "Chanshare refresh-token families: key = family id, value = the current token's hash".into(),
            history: 1,
            max_age: REFRESH_TTL,
            max_value_size: 4096,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}

fn unavailable(e: impl std::fmt::Display) -> AccountError {
    AccountError::Unavailable(e.to_string())
}

/// Spent refresh-token digests a family remembers.
pub const SPENT_KEPT: usize = 16;

/// A refresh family as stored: never a token, only the SHA-256 of the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    /// The account.
    pub account_id: uuid::Uuid,
    /// Its username.
    pub username: Username,
    /// SHA-256 (base64url) of the refresh token that may be used next.
    pub current: String,
    /// SHA-256 of the last [`SPENT_KEPT`] tokens spent: one of them presented again is a stolen
    /// token in use (an unknown token is only refused, so a guess cannot sign anyone out).
    #[serde(default)]
    pub spent: Vec<String>,
    /// Signed out, or a spent token was presented again.
    pub revoked: bool,
    /// When the family began (the sign-in).
    pub created_ms: u64,
}

/// Handles on the stream and the bucket.
#[derive(Debug, Clone)]
pub struct Store {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    sessions: kv::Store,
}

impl Store {
    /// Opens what [`setup`] made.
    pub async fn open(js: jetstream::Context) -> Result<Self, AccountError> {
        let stream = js.get_stream(ACCOUNT_STREAM).await.map_err(unavailable)?;
        let sessions = js.get_key_value(SESSION_BUCKET).await.map_err(unavailable)?;
        Ok(Self { js, stream, sessions })
    }

    /// Appends `event` as the first event of `username`'s subject; `Taken` if it has one. A
    /// retried append of the same event (same account id) that already landed is a success.
    pub async fn claim(
        &self,
        username: &Username,
        event: &AccountEvent,
    ) -> Result<(), AccountError> {
        let AccountEvent::Registered { account_id, .. } = event;
        let payload = serde_json::to_vec(event).map_err(unavailable)?;
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("register:{account_id}"))
            .expected_last_subject_sequence(0);
        // The one place account events are published (ARCHITECTURE.md invariant 2).
        #[allow(clippy::disallowed_methods)]
        let ack = match self.js.send_publish(account_subject(username), publish).await {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        match ack {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                // Someone holds the name: us, if an earlier attempt of this append landed.
                match self.account(username).await? {
                    Some(account) if account.account_id == *account_id => Ok(()),
                    _ => Err(AccountError::Taken),
                }
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The account holding `username`, folded from its subject (leader read).
    pub async fn account(&self, username: &Username) -> Result<Option<Account>, AccountError> {
        let subject = account_subject(username);
        let mut state = AccountState::default();
        let mut seq = 1;
        while let Some(message) = next_message(&self.stream, &subject, seq).await? {
            let event: AccountEvent = serde_json::from_slice(&message.payload)
                .map_err(|e| AccountError::Unavailable(format!("unreadable account event: {e}")))?;
            state = state.apply(&event);
            seq = message.sequence + 1;
        }
        Ok(state.account)
    }

    /// Starts a family.
    pub async fn create_family(&self, id: uuid::Uuid, family: &Family) -> Result<(), AccountError> {
        let value = serde_json::to_vec(family).map_err(unavailable)?;
        self.sessions.create(key(id), value.into()).await.map_err(unavailable)?;
        Ok(())
    }

    /// A family and its revision (leader read), `None` if unknown or expired.
    pub async fn family(&self, id: uuid::Uuid) -> Result<Option<(Family, u64)>, AccountError> {
        let subject = format!("$KV.{SESSION_BUCKET}.{}", key(id));
        let message = match self.sessions.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message,
            Err(e) if not_found(&e.kind()) => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        if message.payload.is_empty() {
            return Ok(None); // a delete or purge marker
        }
        let family = serde_json::from_slice(&message.payload)
            .map_err(|e| AccountError::Unavailable(format!("unreadable session: {e}")))?;
        Ok(Some((family, message.sequence)))
    }

    /// Every refresh family in the bucket, by id (for `replay accounts`): the latest revision
    /// of each key, read in stream order; deleted ones left out.
    pub async fn families(
        &self,
    ) -> Result<std::collections::BTreeMap<uuid::Uuid, Family>, AccountError> {
        let mut families = std::collections::BTreeMap::new();
        let subjects = format!("$KV.{SESSION_BUCKET}.*");
        let mut seq = 1;
        while let Some(message) = next_message(&self.sessions.stream, &subjects, seq).await? {
            seq = message.sequence + 1;
            let Some(id) =
                message.subject.rsplit('.').next().and_then(|k| uuid::Uuid::try_parse(k).ok())
            else {
                continue;
            };
            match serde_json::from_slice::<Family>(&message.payload) {
                Ok(family) => families.insert(id, family),
                Err(_) => families.remove(&id),
            };
        }
        Ok(families)
    }

    /// Replaces a family if it is still at `revision`; `false` if another write came first.
    pub async fn update_family(
        &self,
        id: uuid::Uuid,
        family: &Family,
        revision: u64,
    ) -> Result<bool, AccountError> {
        let value = serde_json::to_vec(family).map_err(unavailable)?;
        match self.sessions.update(key(id), value.into(), revision).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Marks a family revoked, whatever its revision.
    pub async fn revoke_family(
        &self,
        id: uuid::Uuid,
        mut family: Family,
    ) -> Result<(), AccountError> {
        family.revoked = true;
        let value = serde_json::to_vec(&family).map_err(unavailable)?;
        self.sessions.put(key(id), value.into()).await.map_err(unavailable)?;
        Ok(())
    }

    /// The session families revoked from now on (signed out, or a refresh token used twice),
    /// as they are stored: a watch of the session bucket. Ends when the watch does.
    pub async fn revocations(
        &self,
    ) -> Result<impl futures::Stream<Item = uuid::Uuid> + Send + use<>, AccountError> {
        use futures::StreamExt as _;
        let watch = self.sessions.watch_all().await.map_err(unavailable)?;
        Ok(watch.filter_map(|entry| async move {
            let entry = entry.ok()?;
            let family: Family = serde_json::from_slice(&entry.value).ok()?;
            if !family.revoked {
                return None;
            }
            uuid::Uuid::parse_str(&entry.key).ok()
        }))
    }

    /// Every account, in registration order, for `chanshare replay accounts`.
    pub async fn all_accounts(&self) -> Result<Vec<Account>, AccountError> {
        let mut accounts = Vec::new();
        let mut seq = 1;
        while let Some(message) = next_message(&self.stream, "chanshare.account.*", seq).await? {
            seq = message.sequence + 1;
            if let Ok(event) = serde_json::from_slice::<AccountEvent>(&message.payload)
                && let Some(account) = AccountState::default().apply(&event).account
            {
                accounts.push(account);
            }
        }
        Ok(accounts)
    }
}

/// The first message on `filter` at or after stream sequence `seq` (a leader read); `None` past
/// the last one.
async fn next_message(
    stream: &stream::Stream,
    filter: &str,
    seq: u64,
) -> Result<Option<jetstream::message::StreamMessage>, AccountError> {
    match stream.get_first_raw_message_by_subject(filter, seq).await {
        Ok(message) => Ok(Some(message)),
        Err(e) if not_found(&e.kind()) => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

fn not_found(kind: &LastRawMessageErrorKind) -> bool {
    matches!(kind, LastRawMessageErrorKind::NoMessageFound)
}

fn key(id: uuid::Uuid) -> String {
    id.simple().to_string()
}
