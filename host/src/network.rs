//! IP networks as the config writes them (`10.0.0.0/8`, `192.168.1.7`, `fd00::/8`), and
//! the client address of a request that may have come through trusted proxies. Pure: the
//! server hands in the connection's peer and the `X-Forwarded-For` header.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network: an address and a prefix length (a plain address is a network of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The network's address, host bits cleared.
    addr: IpAddr,
    /// Leading bits that must match.
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => masked(u32::from(ip).into(), 32, self.prefix) == u32::from(net).into(),
            (IpAddr::V6(net), IpAddr::V6(ip)) => masked(u128::from(ip), 128, self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

/// `bits` of an address `width` bits wide with all but the first `prefix` cleared.
fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { bits & (u128::MAX << (width - prefix)) & (u128::MAX >> (128 - u32::from(width))) }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or network (e.g. `10.0.0.0/8`, `192.168.1.7`)"))?;
        let addr = addr.to_canonical();
        let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            // Digits only: `u8`'s parser would also take `+8`.
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(length) if length <= width && prefix.bytes().all(|b| b.is_ascii_digit()) => length,
                _ => return Err(format!("`{text}`: the prefix length must be a number from 0 to {width}")),
            },
        };
        let network = match addr {
            IpAddr::V4(v4) => IpAddr::V4((masked(u32::from(v4).into(), 32, prefix) as u32).into()),
            IpAddr::V6(v6) => IpAddr::V6(masked(u128::from(v6), 128, prefix).into()),
        };
        // `10.1.2.3/8` is most likely a typo for an address or a narrower network:
        // saying so beats widening it silently.
        if network != addr {
            return Err(format!("`{text}` has bits set past its prefix: write `{network}/{prefix}` for that network"));
        }
        Ok(Network { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether any of `networks` holds `ip`.
pub fn any_contains(networks: &[Network], ip: IpAddr) -> bool {
    networks.iter().any(|network| network.contains(ip))
}

/// The address a request came from: the connection's `peer`, unless the peer is a
/// trusted proxy and says whom it forwarded for. Then `X-Forwarded-For` (every value,
/// in order) is read from the right, past the addresses of trusted proxies, to the first
/// one that is not: each proxy appends the address it heard from, so only that one was
/// written by a proxy we trust; anything left of it is the client's to invent. `None`
/// when that entry is not an address (the origin cannot be known).
pub fn client(peer: IpAddr, forwarded_for: &[&str], trusted_proxies: &[Network]) -> Option<IpAddr> {
    let peer = peer.to_canonical();
    if !any_contains(trusted_proxies, peer) {
        return Some(peer);
    }
    let hops: Vec<&str> =
        forwarded_for.iter().flat_map(|value| value.split(',')).map(str::trim).filter(|hop| !hop.is_empty()).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        client = hop.parse::<IpAddr>().ok()?.to_canonical();
        if !any_contains(trusted_proxies, client) {
            return Some(client);
        }
    }
    // Every hop is a trusted proxy: the left-most is as far back as anyone vouches for.
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Network> {
        list.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[test]
    fn networks_hold_what_their_prefix_says() {
        let cases = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
            ("192.168.1.7", "::ffff:192.168.1.7", true),
            ("0.0.0.0/0", "203.0.113.5", true),
            ("0.0.0.0/0", "::1", false),
            ("fd00::/8", "fd12:3456::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::1", "::1", true),
            ("::/0", "2001:db8::1", true),
            ("127.0.0.1/32", "127.0.0.2", false),
        ];
        for (network, ip, inside) in cases {
            let network: Network = network.parse().unwrap();
            assert_eq!(network.contains(ip.parse().unwrap()), inside, "{network} holds {ip}");
        }
        assert_eq!("10.0.0.0/8".parse::<Network>().unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            "10.1.2.3/8".parse::<Network>().unwrap_err(),
            "`10.1.2.3/8` has bits set past its prefix: write `10.0.0.0/8` for that network"
        );
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "host.example", "10.0.0.0/x", "", "10.0.0.0/+8", "fd00::1/8"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_right_most_address_no_trusted_proxy_wrote() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let cases: [(&str, &[&str], Option<&str>); 9] = [
            // Not from a proxy: the header is the client's invention.
            ("203.0.113.9", &["10.1.1.1"], Some("203.0.113.9")),
            // From a proxy without the header: the proxy itself.
            ("127.0.0.1", &[], Some("127.0.0.1")),
            ("127.0.0.1", &["192.168.1.7"], Some("192.168.1.7")),
            // A client who sends its own header cannot pick the address that counts.
            ("127.0.0.1", &["10.9.9.9, 192.168.1.7, 198.51.100.4"], Some("198.51.100.4")),
            ("127.0.0.1", &["192.168.1.7, 198.51.100.4, 10.0.0.2"], Some("198.51.100.4")),
            // Several header lines are one list, in order.
            ("127.0.0.1", &["192.168.1.7", "198.51.100.4"], Some("198.51.100.4")),
            // Only trusted hops: the left-most.
            ("127.0.0.1", &["10.0.0.3, 10.0.0.2"], Some("10.0.0.3")),
            // Garbage where the client should be: unknown.
            ("127.0.0.1", &["192.168.1.7, unknown"], None),
            ("::ffff:127.0.0.1", &["192.168.1.7"], Some("192.168.1.7")),
        ];
        for (peer, forwarded, want) in cases {
            assert_eq!(client(ip(peer), forwarded, &trusted), want.map(ip), "{peer} {forwarded:?}");
        }
    }
}
