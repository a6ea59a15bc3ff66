//! Failed sign-ins, counted per account and per client address in Redis (shared by every
//! gateway): past a limit, sign-ins are refused with a wait before any password is hashed.

use std::time::Duration;

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

fn keys(username: &str, address: &str) -> [String; 2] {
    [format!("chanshare:signin:fail:u:{username}"), format!("chanshare:signin:fail:a:{address}")]
}

impl Throttle {
    /// Counters with the default limits.
    pub fn new(redis: ConnectionManager) -> Self {
        Self { redis, per_account: PER_ACCOUNT, per_address: PER_ADDRESS }
    }

    /// Counts a sign-in attempt against both counters before any password is checked, and
    /// refuses it, saying how long to wait, when either is past its limit. The count is taken
    /// first and atomically (one script: increment, set the window on the first), so a burst of
    /// concurrent guesses is counted as it arrives, not after the hashing.
    /// `username` is lowercase (a valid username, or a key no username can be); `address` is an
    /// opaque tag of the client's address (never the address).
    pub async fn attempt(&self, username: &str, address: &str) -> Result<(), AccountError> {
        let [user, addr] = keys(username, address);
        let (u, u_ttl, a, a_ttl): (u64, i64, u64, i64) = attempt_script()
            .key(&user)
            .key(&addr)
            .arg(WINDOW.as_millis() as u64)
            .invoke_async(&mut self.redis.clone())
            .await
            .map_err(|e| AccountError::Unavailable(format!("redis: {e}")))?;
        let wait = |ttl: i64| Duration::from_millis(ttl.max(1000) as u64).as_secs().max(1);
        if u > self.per_account {
            return Err(AccountError::RateLimited { retry_after_s: wait(u_ttl) });
        }
        if a > self.per_address {
            return Err(AccountError::RateLimited { retry_after_s: wait(a_ttl) });
        }
        Ok(())
    }

    /// A success was not a failure: the account's count is cleared, and the address's attempt
    /// taken back (people behind one address sign in as often as they like).
    pub async fn succeeded(&self, username: &str, address: &str) -> Result<(), AccountError> {
        let [user, addr] = keys(username, address);
        redis::pipe()
            .del(&user)
            .ignore()
            .cmd("DECR")
            .arg(&addr)
            .ignore()
            .query_async::<()>(&mut self.redis.clone())
            .await
            .map_err(|e| AccountError::Unavailable(format!("redis: {e}")))
    }
}

/// Increments both counters; a counter's window starts at its first attempt. Returns each count
/// and its remaining window in milliseconds.
fn attempt_script() -> redis::Script {
    redis::Script::new(
        r"
        local out = {}
        for i, key in ipairs(KEYS) do
            local n = redis.call('INCR', key)
            if n == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
            local ttl = redis.call('PTTL', key)
            if ttl < 0 then redis.call('PEXPIRE', key, ARGV[1]); ttl = tonumber(ARGV[1]) end
            out[#out + 1] = n
            out[#out + 1] = ttl
        end
        return out
        ",
    )
}
