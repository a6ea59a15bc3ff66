//! Accounts: optional sign-up, sign-in and refresh (DESIGN §4a).
//!
//! - [`store`]: the account stream (registration, uniqueness by optimistic concurrency) and the
//!   session bucket (refresh families).
//! - [`password`]: Argon2id off the async workers, bounded.
//! - [`access`]: JWT access tokens with a `kid`.
//! - [`throttle`]: failed sign-ins per account and per address, in Redis.
//!
//! [`Accounts`] is what the gateway's HTTP handlers and sockets call. Nothing here stores or
//! logs a password or a raw token: passwords become Argon2id hashes, refresh tokens SHA-256
//! hashes, access tokens are never stored.

pub mod access;
pub mod metrics;
pub mod password;
pub mod store;
pub mod throttle;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use events::Username;
use events::account::{AccountCommand, AccountRejection, decide_account};
use tracing::{info, warn};

pub use access::{ACCESS_TTL_SECS, AccessClaims, AccessKeys};
pub use metrics::Metrics;
pub use password::Hasher;
pub use store::{Family, Store};
pub use throttle::Throttle;

/// Why an account operation failed; each kind maps to one HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The form broke a rule (400 `invalid`).
    #[error("{0}")]
    Invalid(&'static str),
    /// The username is held (409 `username_taken`).
    #[error("that username is taken")]
    Taken,
    /// Unknown username or wrong password, alike (401 `bad_credentials`).
    #[error("wrong username or password")]
    BadCredentials,
    /// Too many failures lately (429 `rate_limited` with `Retry-After`).
    #[error("too many failed sign-ins; try again in {retry_after_s} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// Not a token we issued (401).
    #[error("invalid token")]
    BadToken,
    /// An access token past its expiry (401).
    #[error("token expired")]
    Expired,
    /// The session was signed out, or a spent refresh token was used again (401).
    #[error("this session was signed out")]
    Revoked,
    /// A technical failure (503).
    #[error("accounts unavailable: {0}")]
    Unavailable(String),
    /// A configuration mistake (at start).
    #[error("accounts configuration: {0}")]
    Config(String),
}

impl From<AccountRejection> for AccountError {
    fn from(rejection: AccountRejection) -> Self {
        match rejection {
            AccountRejection::Invalid(rule) => Self::Invalid(rule),
            AccountRejection::Taken => Self::Taken,
        }
    }
}

/// A new account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Its id.
    pub account_id: uuid::Uuid,
    /// Its username.
    pub username: Username,
}

/// A signed-in session's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The JWT.
    pub access_token: String,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    /// The account.
    pub account_id: uuid::Uuid,
    /// Its username.
    pub username: Username,
}

/// Sign-up, sign-in, refresh, sign-out, and checking access tokens.
#[derive(Debug, Clone)]
pub struct Accounts {
    store: Store,
    hasher: Hasher,
    keys: AccessKeys,
    throttle: Throttle,
    metrics: Metrics,
}

const REFRESH_PREFIX: &str = "rt1";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn digest(token: &str) -> String {
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref())
}

/// A refresh token of family `family`: `rt1.<family>.<32 random bytes>`, and its digest.
fn refresh_token(family: uuid::Uuid) -> Result<(String, String), AccountError> {
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret)
        .map_err(|_| AccountError::Unavailable("no randomness".into()))?;
    let token = format!("{REFRESH_PREFIX}.{}.{}", family.simple(), B64.encode(secret));
    let hash = digest(&token);
    Ok((token, hash))
}

fn family_of(token: &str) -> Result<uuid::Uuid, AccountError> {
    if token.len() > 200 {
        return Err(AccountError::BadToken);
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(REFRESH_PREFIX), Some(family), Some(_), None) => {
            uuid::Uuid::try_parse(family).map_err(|_| AccountError::BadToken)
        }
        _ => Err(AccountError::BadToken),
    }
}

/// Compares digests in constant time.
fn same(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

impl Accounts {
    /// The service over its parts.
    pub fn new(
        store: Store,
        hasher: Hasher,
        keys: AccessKeys,
        throttle: Throttle,
        metrics: Metrics,
    ) -> Self {
        Self { store, hasher, keys, throttle, metrics }
    }

    /// The access-token keys (for verifying on sockets).
    pub fn keys(&self) -> &AccessKeys {
        &self.keys
    }

    /// Registers `username` with `password`.
    pub async fn register(
        &self,
        username: &str,
        password: String,
    ) -> Result<Registered, AccountError> {
        let username = Username::parse(username)?;
        events::account::check_password(&password, password::is_common)?;
        let password_hash = self.hasher.hash(password).await?;
        let account_id = uuid::Uuid::now_v7();
        let command = AccountCommand::Register {
            account_id,
            username: username.clone(),
            password_hash,
            now_ms: now_ms(),
        };
        // The state is "nobody holds it" as far as this gateway knows; the append expecting
        // an empty subject is what decides, for every gateway at once.
        let events = decide_account(&Default::default(), command)?;
        for event in &events {
            self.store.claim(&username, event).await?;
        }
        self.metrics.signups.inc();
        info!(%username, %account_id, "account registered");
        Ok(Registered { account_id, username })
    }

    /// Signs in; `address` is an opaque tag of the client's address, for the throttle.
    pub async fn sign_in(
        &self,
        username: &str,
        password: String,
        address: &str,
    ) -> Result<Tokens, AccountError> {
        // Every attempt is counted first, so that a flood is refused before it costs a hash. A
        // name that breaks the rules is nobody's: it is counted under a key no username can be,
        // and answered like an unknown name, after the same work.
        let parsed = Username::parse(username);
        let key = parsed.as_ref().map_or("!malformed", |name| name.as_str());
        if let Err(refused) = self.throttle.attempt(key, address).await {
            if matches!(refused, AccountError::RateLimited { .. }) {
                self.metrics.logins.with_label_values(&["limited"]).inc();
            }
            return Err(refused);
        }
        let account = match &parsed {
            Ok(name) => self.store.account(name).await?,
            Err(_) => None,
        };
        let phc = account.as_ref().map(|a| a.password_hash.clone());
        let matches = self.hasher.verify(password, phc).await?;
        let Some(account) = account.filter(|_| matches) else {
            self.metrics.logins.with_label_values(&["failed"]).inc();
            return Err(AccountError::BadCredentials);
        };
        self.throttle.succeeded(account.username.as_str(), address).await?;
        let family_id = uuid::Uuid::new_v4();
        let (refresh, hash) = refresh_token(family_id)?;
        let family = Family {
            account_id: account.account_id,
            username: account.username.clone(),
            current: hash,
            spent: Vec::new(),
            revoked: false,
            created_ms: now_ms(),
        };
        self.store.create_family(family_id, &family).await?;
        self.metrics.logins.with_label_values(&["ok"]).inc();
        self.tokens(&family, family_id, refresh)
    }

    fn tokens(
        &self,
        family: &Family,
        family_id: uuid::Uuid,
        refresh: String,
    ) -> Result<Tokens, AccountError> {
        let now_s = now_ms() / 1000;
        let claims =
            AccessKeys::claims(family.account_id, family.username.clone(), family_id, now_s);
        Ok(Tokens {
            access_token: self.keys.issue(&claims)?,
            refresh_token: refresh,
            expires_in: ACCESS_TTL_SECS,
            account_id: family.account_id,
            username: family.username.clone(),
        })
    }

    /// Spends `refresh_token` for a new pair. A token of the family that was spent already is
    /// being used a second time, by its owner or by a thief: the whole family is revoked.
    pub async fn refresh(&self, refresh_token_in: &str) -> Result<Tokens, AccountError> {
        let family_id = family_of(refresh_token_in)?;
        let Some((family, revision)) = self.store.family(family_id).await? else {
            return Err(AccountError::BadToken);
        };
        if family.revoked {
            return Err(AccountError::Revoked);
        }
        let presented = digest(refresh_token_in);
        if !same(&presented, &family.current) {
            if family.spent.iter().any(|spent| same(&presented, spent)) {
                return self.reused(family_id, family).await;
            }
            return Err(AccountError::BadToken);
        }
        let (refresh, hash) = refresh_token(family_id)?;
        let mut spent = family.spent.clone();
        spent.push(presented);
        let drop = spent.len().saturating_sub(store::SPENT_KEPT);
        spent.drain(..drop);
        let next = Family { current: hash, spent, ..family.clone() };
        if !self.store.update_family(family_id, &next, revision).await? {
            // Another refresh with this same token won the race: it was used twice.
            return self.reused(family_id, family).await;
        }
        self.metrics.refreshes.inc();
        self.tokens(&next, family_id, refresh)
    }

    async fn reused(&self, family_id: uuid::Uuid, family: Family) -> Result<Tokens, AccountError> {
        warn!(account = %family.account_id, family = %family_id.simple(), "spent refresh token presented again: family revoked");
        self.metrics.refresh_reuse.inc();
        self.store.revoke_family(family_id, family).await?;
        Err(AccountError::Revoked)
    }

    /// Checks an access token: signature, expiry, and that its session was not signed out.
    pub async fn authenticate(&self, access_token: &str) -> Result<AccessClaims, AccountError> {
        self.live_session(access_token).await.map(|(claims, _)| claims)
    }

    /// The sessions revoked from now on, by id (an access token's `sid`): sockets opened with
    /// them close.
    pub async fn revocations(
        &self,
    ) -> Result<impl futures::Stream<Item = uuid::Uuid> + Send + use<>, AccountError> {
        self.store.revocations().await
    }

    /// Signs out the session of `access_token`: its refresh family is revoked.
    pub async fn sign_out(&self, access_token: &str) -> Result<(), AccountError> {
        let (claims, family) = self.live_session(access_token).await?;
        self.store.revoke_family(claims.sid, family).await
    }

    /// The claims of a valid access token and its family, which must be live.
    async fn live_session(
        &self,
        access_token: &str,
    ) -> Result<(AccessClaims, Family), AccountError> {
        let claims = self.keys.verify(access_token, now_ms() / 1000)?;
        match self.store.family(claims.sid).await? {
            Some((family, _)) if !family.revoked && family.account_id == claims.sub => {
                Ok((claims, family))
            }
            _ => Err(AccountError::Revoked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_name_their_family_and_only_their_digest_is_kept() {
        let family = uuid::Uuid::new_v4();
        let (token, hash) = refresh_token(family).unwrap();
        assert_eq!(family_of(&token).unwrap(), family);
        assert!(!hash.contains(&token[40..]));
        assert!(same(&digest(&token), &hash));
        let (other, _) = refresh_token(family).unwrap();
        assert_ne!(token, other);
        assert!(!same(&digest(&other), &hash));
        for bad in [
            "",
            "rt1",
            "rt1.x.y",
            "rt2.00000000000000000000000000000000.x",
            "rt1.a.b.c",
            &"x".repeat(300),
        ] {
            assert_eq!(family_of(bad), Err(AccountError::BadToken), "{bad}");
        }
    }
}
