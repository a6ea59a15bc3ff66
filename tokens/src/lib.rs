//! Signed member tokens.
//!
//! A token says "member M of room R (as host or member), until T". The server issues one on room
//! creation (the host's) and on a first join, and the client presents it to reconnect as the same
//! member. Format: `v1.<base64url(claims json)>.<base64url(hmac-sha256)>`, the MAC over
//! `v1.<claims>`. Verification compares MACs in constant time before reading any claim.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use events::{MemberId, RoomId};
use serde::{Deserialize, Serialize};

const VERSION: &str = "v1";

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The room.
    pub room: RoomId,
    /// The member.
    pub member: MemberId,
    /// The role when issued (the room's state is authoritative for what the member may do).
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// The role a token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The room's creator.
    Host,
    /// Anyone else.
    Member,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match: forged, or signed with another key.
    #[error("bad token signature")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Issued for another room.
    #[error("token is for another room")]
    WrongRoom,
}

/// The signing key.
#[derive(Clone)]
pub struct Signer {
    key: hmac::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// A signer with `secret` (use 32 random bytes or more).
    pub fn new(secret: &[u8]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    /// Signs `claims`.
    pub fn issue(&self, claims: &Claims) -> String {
        // Serializing these claims cannot fail: plain strings and numbers.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let signed = format!("{VERSION}.{}", B64.encode(json));
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", B64.encode(tag.as_ref()))
    }

    /// Checks `token` for room `room` at `now_s` (seconds since the Unix epoch).
    pub fn verify(&self, token: &str, room: &RoomId, now_s: u64) -> Result<Claims, TokenError> {
        if token.len() > 1024 {
            return Err(TokenError::Malformed);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (version, claims) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if version != VERSION {
            return Err(TokenError::Malformed);
        }
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        hmac::verify(&self.key, signed.as_bytes(), &tag).map_err(|_| TokenError::BadSignature)?;
        let json = B64.decode(claims).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now_s {
            return Err(TokenError::Expired);
        }
        if &claims.room != room {
            return Err(TokenError::WrongRoom);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            room: RoomId::new("room-one").unwrap(),
            member: MemberId::new("mabc").unwrap(),
            role: Role::Host,
            exp,
        }
    }

    #[test]
    fn issued_tokens_verify() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef");
        let token = signer.issue(&claims(1000));
        assert_eq!(signer.verify(&token, &claims(0).room, 999), Ok(claims(1000)));
    }

    #[test]
    fn bad_tokens_are_refused_by_kind() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef");
        let other = Signer::new(b"another key entirely, 32 bytes!!");
        let room = claims(0).room;
        let token = signer.issue(&claims(1000));
        let (signed, _) = token.rsplit_once('.').unwrap();
        let forged_claims = B64.encode(serde_json::to_vec(&claims(u64::MAX)).unwrap());
        let forged = format!("v1.{forged_claims}.{}", token.rsplit_once('.').unwrap().1);
        let cases = [
            (token.clone(), 1000, &room, TokenError::Expired),
            (token.clone(), 0, &RoomId::new("room-two").unwrap(), TokenError::WrongRoom),
            (other.issue(&claims(1000)), 0, &room, TokenError::BadSignature),
            (forged, 0, &room, TokenError::BadSignature),
            (format!("{signed}.AAAA"), 0, &room, TokenError::BadSignature),
            (format!("v2{}", &token[2..]), 0, &room, TokenError::Malformed),
            ("".into(), 0, &room, TokenError::Malformed),
            ("v1..".into(), 0, &room, TokenError::BadSignature),
            ("v1.!!.!!".into(), 0, &room, TokenError::Malformed),
            ("x".repeat(2000), 0, &room, TokenError::Malformed),
        ];
        for (token, now, room, expected) in cases {
            assert_eq!(signer.verify(&token, room, now), Err(expected), "{token:.40}");
        }
    }
}
