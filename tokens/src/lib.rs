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
    pub role: TokenRole,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// The role a token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
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

/// A client address as one subscriber holds it: an IPv6 address by its /64, IPv4-mapped IPv6 as
/// IPv4. Address fingerprints and the gateway's per-address limits both count by it.
pub fn subscriber(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::IpAddr;
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
        v4 => v4,
    }
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

    /// A fingerprint of a client address in `room`: keyed (nobody without the secret can tell
    /// which address it is, or test a guess) and scoped to the room (the same address has
    /// unrelated fingerprints in two rooms). IPv6 addresses count by their /64, which is what
    /// one subscriber usually holds; IPv4-mapped IPv6 is IPv4.
    pub fn address_tag(&self, room: &RoomId, ip: std::net::IpAddr) -> String {
        let ip = subscriber(ip);
        let tag = hmac::sign(&self.key, format!("address.v1.{room}.{ip}").as_bytes());
        B64.encode(&tag.as_ref()[..16])
    }

    /// The member an account is in `room`: the same on every device and gateway (so a ban of the
    /// member is a ban of the account there), unrelated across rooms, and not guessable from
    /// the account id without the secret.
    pub fn account_member(&self, room: &RoomId, account: &uuid::Uuid) -> MemberId {
        let tag = hmac::sign(&self.key, format!("member.v1.{room}.{account}").as_bytes());
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&tag.as_ref()[..8]);
        MemberId::generate(u64::from_le_bytes(bytes))
    }

    /// A keyed tag of a client address (by subscriber, see [`subscriber`]) for counters that
    /// are not about a room, such as failed sign-ins: Redis never holds the address.
    pub fn client_tag(&self, ip: std::net::IpAddr) -> String {
        let tag = hmac::sign(&self.key, format!("client.v1.{}", subscriber(ip)).as_bytes());
        B64.encode(&tag.as_ref()[..16])
    }

    /// The namespace of command ids the server derives for `purpose` (`"reaper"`, `"watcher"`):
    /// the same in every replica that shares the secret, unpredictable to everyone else, so that
    /// no member can send a command with the id of one the server is about to issue.
    pub fn id_namespace(&self, purpose: &str) -> uuid::Uuid {
        let tag = hmac::sign(&self.key, format!("ids.v1.{purpose}").as_bytes());
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&tag.as_ref()[..16]);
        uuid::Uuid::from_bytes(bytes)
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
            role: TokenRole::Host,
            exp,
        }
    }

    #[test]
    fn address_tags_are_keyed_scoped_and_group_an_ipv6_subscriber() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef");
        let other = Signer::new(b"another secret, another tag space");
        let (one, two) = (RoomId::new("room-one").unwrap(), RoomId::new("room-two").unwrap());
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let tag = signer.address_tag(&one, ip("203.0.113.7"));
        assert_eq!(tag, signer.address_tag(&one, ip("203.0.113.7")));
        assert_eq!(tag, signer.address_tag(&one, ip("::ffff:203.0.113.7")));
        assert!(!tag.contains("203"));
        assert_ne!(tag, signer.address_tag(&one, ip("203.0.113.8")));
        assert_ne!(tag, signer.address_tag(&two, ip("203.0.113.7")));
        assert_ne!(tag, other.address_tag(&one, ip("203.0.113.7")));
        assert_eq!(
            signer.address_tag(&one, ip("2001:db8:1:2:aaaa::1")),
            signer.address_tag(&one, ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            signer.address_tag(&one, ip("2001:db8:1:2::1")),
            signer.address_tag(&one, ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn an_account_is_one_member_per_room_and_another_in_each_room() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef");
        let other = Signer::new(b"another secret, another tag space");
        let (one, two) = (RoomId::new("room-one").unwrap(), RoomId::new("room-two").unwrap());
        let account = uuid::Uuid::from_u128(42);
        let member = signer.account_member(&one, &account);
        assert_eq!(member, signer.account_member(&one, &account));
        assert_ne!(member, signer.account_member(&two, &account));
        assert_ne!(member, signer.account_member(&one, &uuid::Uuid::from_u128(43)));
        assert_ne!(member, other.account_member(&one, &account));
        assert!(MemberId::new(member.as_str()).is_ok());
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

    proptest::proptest! {
        #[test]
        fn any_text_is_refused_or_verified_never_a_panic(token in ".{0,300}", now in proptest::prelude::any::<u64>()) {
            let signer = Signer::new(b"a key of at least thirty-two bytes!!");
            let room = RoomId::new("some-room").unwrap();
            proptest::prop_assert!(signer.verify(&token, &room, now).is_err());
        }

        #[test]
        fn issued_tokens_verify_until_they_expire(member in "m[a-z0-9]{12}", exp in 1u64..u64::MAX / 2, host in proptest::prelude::any::<bool>()) {
            let signer = Signer::new(b"a key of at least thirty-two bytes!!");
            let room = RoomId::new("some-room").unwrap();
            let role = if host { TokenRole::Host } else { TokenRole::Member };
            let claims = Claims { room: room.clone(), member: MemberId::new(member).unwrap(), role, exp };
            let token = signer.issue(&claims);
            proptest::prop_assert_eq!(signer.verify(&token, &room, exp - 1), Ok(claims));
            proptest::prop_assert!(signer.verify(&token, &room, exp).is_err());
            let other = RoomId::new("other-room").unwrap();
            proptest::prop_assert!(signer.verify(&token, &other, exp - 1).is_err());
            let forged = Signer::new(b"another key, also thirty-two bytes");
            proptest::prop_assert!(forged.verify(&token, &room, exp - 1).is_err());
        }
    }
}
