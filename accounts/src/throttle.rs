//! Failed sign-ins, counted per account and per client address in Redis (shared by every
//! gateway): past a limit, sign-ins are refused with a wait before any password is hashed.

use std::time::Duration;

use events::Username;
use redis::aio::ConnectionManager;

use crate::AccountError;

/// Failed sign-ins an account takes per window before it is locked for the rest of it.
pub const PER_ACCOUNT: u64 = 10;
/// Failed sign-ins an address makes per window (over all accounts).
pub const PER_ADDRESS: u64 = 30;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// The counters.
#[derive(Clone)]
pub struct Throttle {
    redis: ConnectionManager,
    per_account: u64,
    per_address: u64,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle").field("per_account", &self.per_account).finish_non_exhaustive()
    }
}

fn keys(username: &Username, address: &str) -> [String; 2] {
    [format!("chanshare:signin:fail:u:{username}"), format!("chanshare:signin:fail:a:{address}")]
}

impl Throttle {
    /// Counters with the default limits.
    pub fn new(redis: ConnectionManager) -> Self {
        Self { redis, per_account: PER_ACCOUNT, per_address: PER_ADDRESS }
    }

    /// Refuses when either counter is at its limit, saying how long to wait.
    /// `address` is an opaque tag of the client's address (never the address).
    pub async fn check(&self, username: &Username, address: &str) -> Result<(), AccountError> {
        let [user, addr] = keys(username, address);
        let ((u, u_ttl), (a, a_ttl)): ((Option<u64>, i64), (Option<u64>, i64)) = redis::pipe()
            .get(&user)
            .pttl(&user)
            .get(&addr)
            .pttl(&addr)
            .query_async::<(Option<u64>, i64, Option<u64>, i64)>(&mut self.redis.clone())
            .await
            .map(|(u, ut, a, at)| ((u, ut), (a, at)))
            .map_err(|e| AccountError::Unavailable(format!("redis: {e}")))?;
        let wait = |ttl: i64| Duration::from_millis(ttl.max(1000) as u64).as_secs().max(1);
        if u.unwrap_or(0) >= self.per_account {
            return Err(AccountError::RateLimited { retry_after_s: wait(u_ttl) });
        }
        if a.unwrap_or(0) >= self.per_address {
            return Err(AccountError::RateLimited { retry_after_s: wait(a_ttl) });
        }
        Ok(())
    }

    /// Counts a failure against both.
    pub async fn failed(&self, username: &Username, address: &str) -> Result<(), AccountError> {
        let window = WINDOW.as_secs() as i64;
        let mut pipe = redis::pipe();
        for key in keys(username, address) {
            pipe.incr(&key, 1).ignore();
            pipe.cmd("EXPIRE").arg(&key).arg(window).arg("NX").ignore();
        }
        pipe.query_async::<()>(&mut self.redis.clone())
            .await
            .map_err(|e| AccountError::Unavailable(format!("redis: {e}")))
    }

    /// A success clears the account's count (the address keeps its own).
    pub async fn succeeded(&self, username: &Username) -> Result<(), AccountError> {
        let [user, _] = keys(username, "");
        redis::cmd("DEL")
            .arg(user)
            .query_async::<()>(&mut self.redis.clone())
            .await
            .map_err(|e| AccountError::Unavailable(format!("redis: {e}")))
    }
}
