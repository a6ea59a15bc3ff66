//! Who the client is, behind reverse proxies.
//!
//! Per-address limits and kick bans key on the client's address. Behind a reverse proxy the TCP
//! peer is the proxy, shared by everyone; the client is in `X-Forwarded-For`. That header is
//! believed only from peers in `CHANSHARE_TRUSTED_PROXIES` (a list of CIDRs), and only as far as
//! the chain stays within them: the client is the right-most address that is not a trusted proxy
//! (anything left of it was written by the client and proves nothing).

use std::net::IpAddr;
use std::str::FromStr;

/// A network: an address and how many leading bits count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.bits)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket reports) is IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies whose `X-Forwarded-For` is believed. Empty (the default): none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

/// A `CHANSHARE_TRUSTED_PROXIES` entry that is not an address or a CIDR.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad trusted proxy {0:?}: expected an address or a CIDR like 10.0.0.0/8")]
pub struct BadProxy(String);

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// Comma-separated addresses (`10.1.2.3`) and networks (`10.0.0.0/8`, `fd00::/8`).
    fn from_str(text: &str) -> Result<Self, BadProxy> {
        let mut networks = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || BadProxy(entry.to_owned());
            let (address, bits) = match entry.split_once('/') {
                Some((address, bits)) => (address, Some(bits)),
                None => (entry, None),
            };
            let net = canonical(address.parse::<IpAddr>().map_err(|_| bad())?);
            let max = if net.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(bits) => bits.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(bad)?,
                None => max,
            };
            networks.push(Cidr { net, bits });
        }
        Ok(Self(networks))
    }
}

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client's address: `peer` itself unless it is a trusted proxy; then the right-most
    /// address of `forwarded` (the `X-Forwarded-For` values, in order) that is not one. Garbage
    /// in the chain stops the walk at the last address believed.
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let chain: Vec<&str> =
            forwarded.flat_map(|value| value.split(',')).map(str::trim).collect();
        let mut client = peer;
        for hop in chain.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>().map(canonical) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn client(proxies: &str, peer: &str, forwarded: &[&str]) -> IpAddr {
        proxies.parse::<TrustedProxies>().unwrap().client_ip(ip(peer), forwarded.iter().copied())
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        assert_eq!(client("", "203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
        assert_eq!(client("10.0.0.0/8", "203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let proxies = "10.0.0.0/8, 192.168.1.7";
        assert_eq!(client(proxies, "10.1.2.3", &["198.51.100.1"]), ip("198.51.100.1"));
        // The client wrote the left part itself: it proves nothing.
        assert_eq!(client(proxies, "10.1.2.3", &["1.2.3.4, 198.51.100.1"]), ip("198.51.100.1"));
        // Two proxies in a row, over two headers.
        assert_eq!(
            client(proxies, "10.1.2.3", &["6.6.6.6, 198.51.100.1", "192.168.1.7"]),
            ip("198.51.100.1")
        );
        // No header, or garbage: the last address believed.
        assert_eq!(client(proxies, "10.1.2.3", &[]), ip("10.1.2.3"));
        assert_eq!(client(proxies, "10.1.2.3", &["not-an-ip"]), ip("10.1.2.3"));
        assert_eq!(client(proxies, "10.1.2.3", &["10.9.9.9, junk"]), ip("10.1.2.3"));
        // A chain of nothing but proxies: the left-most of them.
        assert_eq!(client(proxies, "10.1.2.3", &["10.4.4.4"]), ip("10.4.4.4"));
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        assert_eq!(client("fd00::/8", "fd12::1", &["2001:db8::5"]), ip("2001:db8::5"));
        assert_eq!(
            client("10.0.0.0/8", "::ffff:10.0.0.2", &["::ffff:198.51.100.1"]),
            ip("198.51.100.1")
        );
        assert_eq!(client("::/0", "2001:db8::1", &["198.51.100.1"]), ip("198.51.100.1"));
        assert_eq!(client("0.0.0.0/0", "203.0.113.9", &["198.51.100.1"]), ip("198.51.100.1"));
    }

    #[test]
    fn bad_lists_are_refused() {
        for bad in ["10.0.0.0/33", "fd00::/129", "10.0.0", "proxy.local", "10.0.0.0/x"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad} parsed");
        }
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
        assert_eq!(" , ".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
    }

    proptest::proptest! {
        #[test]
        fn any_forwarded_chain_gives_the_peer_or_an_address_it_names(
            chain in proptest::collection::vec(".{0,60}", 0..4),
            proxies in ".{0,80}",
        ) {
            let peer: IpAddr = "10.0.0.1".parse().unwrap();
            let trusted: TrustedProxies = match proxies.parse() {
                Ok(trusted) => trusted,
                Err(_) => "10.0.0.0/8".parse().unwrap(),
            };
            let client = trusted.client_ip(peer, chain.iter().map(String::as_str));
            let named = chain.iter().any(|value| value.contains(&client.to_string()));
            proptest::prop_assert!(client == peer || named, "{client} from {chain:?}");
        }

        #[test]
        fn any_client_text_frame_parses_or_is_refused(text in ".{0,200}") {
            serde_json::from_str::<crate::frames::ClientFrame>(&text).ok();
        }
    }
}
