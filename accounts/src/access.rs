//! Access tokens: JWTs (HS256) that say "account A, username U, session family F, until T".
//!
//! Every key has a `kid`; tokens are signed with the first key and verified with whichever key
//! their header names, so a new key is rolled out by putting it first and keeping the old one
//! listed for one access-token lifetime (docs/accounts.md, "Rotating the signing key").

use std::collections::HashMap;

use events::Username;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::AccountError;

/// How long an access token lives.
pub const ACCESS_TTL_SECS: u64 = 15 * 60;
const ISSUER: &str = "chanshare";

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The account id.
    pub sub: uuid::Uuid,
    /// The username.
    pub name: Username,
    /// The refresh family (session) it was issued in: signing out revokes it.
    pub sid: uuid::Uuid,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Always `chanshare`.
    pub iss: String,
}

/// The signing keys: the first signs, all verify.
#[derive(Clone)]
pub struct AccessKeys {
    signing: (String, EncodingKey),
    verifying: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeys").field("signing_kid", &self.signing.0).finish_non_exhaustive()
    }
}

impl AccessKeys {
    /// Keys from `(kid, secret)` pairs, the first signing. Secrets are at least 32 bytes.
    pub fn new(keys: &[(String, Vec<u8>)]) -> Result<Self, AccountError> {
        let Some((kid, secret)) = keys.first() else {
            return Err(AccountError::Config("no access-token key".into()));
        };
        if let Some((kid, _)) = keys.iter().find(|(_, s)| s.len() < 32) {
            return Err(AccountError::Config(format!(
                "access-token key {kid} is shorter than 32 bytes"
            )));
        }
        let verifying =
            keys.iter().map(|(kid, s)| (kid.clone(), DecodingKey::from_secret(s))).collect();
        Ok(Self { signing: (kid.clone(), EncodingKey::from_secret(secret)), verifying })
    }

    /// One key derived from the deployment's secret (`CHANSHARE_SECRET`), when no access-token
    /// keys are configured: its kid is a fingerprint of the key, so a new secret is a new kid.
    pub fn derived(secret: &[u8]) -> Self {
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
            b"access.v1",
        );
        let key = tag.as_ref().to_vec();
        let fingerprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key);
        let kid: String = fingerprint.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            signing: (format!("s-{kid}"), EncodingKey::from_secret(&key)),
            verifying: HashMap::from([(format!("s-{kid}"), DecodingKey::from_secret(&key))]),
        }
    }

    /// Parses `kid:secret,kid:secret` (`CHANSHARE_ACCESS_KEYS`).
    pub fn parse(list: &str) -> Result<Self, AccountError> {
        let keys = list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|pair| match pair.split_once(':') {
                Some((kid, secret)) if !kid.is_empty() => {
                    Ok((kid.to_owned(), secret.as_bytes().to_vec()))
                }
                _ => Err(AccountError::Config(
                    "access keys are kid:secret pairs, comma-separated".into(),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(&keys)
    }

    /// The kid tokens are signed with now.
    pub fn signing_kid(&self) -> &str {
        &self.signing.0
    }

    /// Signs an access token for `claims`.
    pub fn issue(&self, claims: &AccessClaims) -> Result<String, AccountError> {
        let header = Header { kid: Some(self.signing.0.clone()), ..Header::new(Algorithm::HS256) };
        jsonwebtoken::encode(&header, claims, &self.signing.1)
            .map_err(|e| AccountError::Unavailable(format!("signing: {e}")))
    }

    /// Checks a token's signature (by its kid), issuer and expiry at `now_s`.
    pub fn verify(&self, token: &str, now_s: u64) -> Result<AccessClaims, AccountError> {
        if token.len() > 2048 {
            return Err(AccountError::BadToken);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AccountError::BadToken)?;
        let key =
            header.kid.and_then(|kid| self.verifying.get(&kid)).ok_or(AccountError::BadToken)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // Expiry is checked below against the caller's clock, exactly.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .map_err(|_| AccountError::BadToken)?;
        if data.claims.exp <= now_s {
            return Err(AccountError::Expired);
        }
        Ok(data.claims)
    }

    /// Claims for a new token.
    pub fn claims(
        account_id: uuid::Uuid,
        name: Username,
        sid: uuid::Uuid,
        now_s: u64,
    ) -> AccessClaims {
        AccessClaims {
            sub: account_id,
            name,
            sid,
            iat: now_s,
            exp: now_s + ACCESS_TTL_SECS,
            iss: ISSUER.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: u64) -> AccessClaims {
        AccessKeys::claims(
            uuid::Uuid::from_u128(1),
            Username::parse("alice").unwrap(),
            uuid::Uuid::from_u128(2),
            now,
        )
    }

    #[test]
    fn tokens_verify_until_they_expire_and_carry_their_kid() {
        let keys = AccessKeys::derived(b"0123456789abcdef0123456789abcdef");
        let token = keys.issue(&claims(1000)).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys.signing_kid()));
        assert_eq!(keys.verify(&token, 1000).unwrap(), claims(1000));
        assert_eq!(keys.verify(&token, 1000 + ACCESS_TTL_SECS - 1).unwrap(), claims(1000));
        assert!(matches!(keys.verify(&token, 1000 + ACCESS_TTL_SECS), Err(AccountError::Expired)));
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_while_the_old_key_is_listed() {
        let old = AccessKeys::parse("k1:an old secret of at least 32 bytes!!").unwrap();
        let token = old.issue(&claims(0)).unwrap();
        let rotated = AccessKeys::parse(
            "k2:a new secret; also at least 32 bytes,k1:an old secret of at least 32 bytes!!",
        )
        .unwrap();
        assert_eq!(rotated.signing_kid(), "k2");
        assert!(rotated.verify(&token, 1).is_ok());
        let new_token = rotated.issue(&claims(0)).unwrap();
        assert!(old.verify(&new_token, 1).is_err(), "the old set does not know k2");
        let retired = AccessKeys::parse("k2:a new secret; also at least 32 bytes").unwrap();
        assert!(retired.verify(&token, 1).is_err());
        assert!(retired.verify(&new_token, 1).is_ok());
    }

    #[test]
    fn forged_and_malformed_tokens_are_refused() {
        let keys = AccessKeys::derived(b"0123456789abcdef0123456789abcdef");
        let other = AccessKeys::derived(b"another secret of thirty-two bytes!");
        let token = keys.issue(&claims(0)).unwrap();
        let (head, rest) = token.split_once('.').unwrap();
        let none_alg =
            format!("{}.{}", base64_url(r#"{"alg":"none","typ":"JWT","kid":"x"}"#), rest);
        let mut sig_flipped = token.clone();
        let last = sig_flipped.pop().unwrap();
        sig_flipped.push(if last == 'A' { 'B' } else { 'A' });
        for bad in [
            other.issue(&claims(0)).unwrap(),
            none_alg,
            sig_flipped,
            format!("{head}.e30.AAAA"),
            String::new(),
            "x".repeat(5000),
            "a.b.c".into(),
        ] {
            assert!(keys.verify(&bad, 1).is_err(), "{bad:.60}");
        }
        assert!(AccessKeys::parse("").is_err());
        assert!(AccessKeys::parse("k1:short").is_err());
        assert!(AccessKeys::parse("nocolon").is_err());
    }

    fn base64_url(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }
}
