//! Passwords: Argon2id at OWASP's parameters, hashed on blocking threads, a bounded number at
//! once, so a flood of sign-ins cannot take the async workers (and the sockets) with it.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::AccountError;

/// OWASP's Password Storage Cheat Sheet, Argon2id: 19 MiB of memory, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// The shipped list of common passwords of 10 characters or more (lowercase; see
/// `accounts/data/README.md`).
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt").lines().filter(|l| !l.is_empty()).collect()
});

/// Whether `lowercased` is on the shipped list.
pub fn is_common(lowercased: &str) -> bool {
    COMMON.contains(lowercased)
}

fn argon2() -> Argon2<'static> {
    // These constants are valid parameters (tested below), so `new` cannot fail here.
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes and verifies passwords off the async runtime, `permits` at once.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Verified against when the username is unknown, so that a miss costs what a hit does.
    decoy: Arc<String>,
}

impl Hasher {
    /// A hasher running at most `permits` hashes at once. Fails without the decoy (an unknown
    /// user would then be answered faster than a wrong password).
    pub fn new(permits: usize) -> Result<Self, AccountError> {
        let decoy = hash_now("a decoy password nobody has")?;
        Ok(Self { permits: Arc::new(Semaphore::new(permits.max(1))), decoy: Arc::new(decoy) })
    }

    /// The PHC string of `password` with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, AccountError> {
        self.blocking(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `phc` (`None`: an unknown user; the decoy is checked instead
    /// and the answer is no).
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, AccountError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.decoy.as_ref().clone());
        let matches = self
            .blocking(move || {
                PasswordHash::new(&phc)
                    .map(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && matches)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AccountError::Unavailable("hasher closed".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AccountError::Unavailable(format!("hashing task: {e}")))
    }
}

fn hash_now(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt)
        .map_err(|_| AccountError::Unavailable("no randomness".into()))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| AccountError::Unavailable(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AccountError::Unavailable(format!("hashing: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_are_owasps_and_valid() {
        let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap();
        assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (19456, 2, 1));
    }

    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let hasher = Hasher::new(2).unwrap();
        let one = hasher.hash("correct horse battery".into()).await.unwrap();
        let two = hasher.hash("correct horse battery".into()).await.unwrap();
        assert!(one.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{one}");
        assert_ne!(one, two);
        assert!(!one.contains("correct horse"));
        assert!(hasher.verify("correct horse battery".into(), Some(one.clone())).await.unwrap());
        assert!(!hasher.verify("correct horse batterY".into(), Some(one)).await.unwrap());
        assert!(!hasher.verify("a decoy password nobody has".into(), None).await.unwrap());
        assert!(!hasher.verify("x".into(), Some("not a phc string".into())).await.unwrap());
    }

    #[test]
    fn the_common_list_is_shipped_lowercase() {
        assert!(COMMON.len() > 100, "{} entries", COMMON.len());
        assert!(COMMON.iter().all(|p| p.len() >= 10 && *p == p.to_lowercase()));
    }
}
