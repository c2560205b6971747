//! Who the client is: `ClientIp`, resolved from the TCP peer and, only behind a trusted proxy,
//! `X-Forwarded-For`; and `Cidr`, the notation `TRUSTED_PROXIES` names those proxies in.
//!
//! Putting the resolved address on the request is `request_context`'s job (`context.rs`); the
//! rate limiter, the request log and the login audit read it from there.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;

/// The client's IP address, as the request log and login audit see it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then
/// `X-Forwarded-For` is read right to left, skipping trusted hops, and the first address that
/// is not trusted is the client. A client cannot choose its own address this way: entries it
/// wrote itself are left of every address a trusted proxy appended.
pub fn resolve_client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|cidr| cidr.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => client = ip,
            Ok(ip) => return ip,
            // Garbage where an address belongs: trust nothing further left.
            Err(_) => return client,
        }
    }
    client
}

/// The TCP peer of a request: `ConnectInfo` from the server, or the `MockConnectInfo` that
/// in-process tests install (which axum's `ConnectInfo` extractor also falls back to).
pub(super) fn peer_addr(req: &Request) -> Option<IpAddr> {
    let extensions = req.extensions();
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .or_else(|| {
            extensions
                .get::<MockConnectInfo<SocketAddr>>()
                .map(|mock| mock.0.ip())
        })
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, how a
    /// dual-stack listener reports IPv4 peers) counts as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let (addr, prefix) = text
            .split_once('/')
            .map_or((text, None), |(a, p)| (a, Some(p)));
        let network: IpAddr = addr.trim().parse().map_err(|_| ())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| ())?,
            None => max,
        };
        if prefix > max {
            return Err(());
        }
        Ok(Self { network, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let trusted = ["10.0.0.0/8".parse::<Cidr>().unwrap()];
        let cases = [
            // An untrusted peer is the client, whatever it claims.
            (client, "1.2.3.4", &trusted[..], client),
            (client, "1.2.3.4", &[][..], client),
            // Behind a trusted proxy: the rightmost untrusted hop.
            (proxy, "203.0.113.7", &trusted[..], client),
            (proxy, "1.2.3.4, 203.0.113.7", &trusted[..], client),
            (
                proxy,
                "1.2.3.4, 203.0.113.7, 10.0.0.9",
                &trusted[..],
                client,
            ),
            // Only trusted hops: the leftmost of them.
            (proxy, "10.0.0.9", &trusted[..], "10.0.0.9".parse().unwrap()),
            // Garbage stops the walk at the last trusted hop.
            (proxy, "203.0.113.7, nonsense", &trusted[..], proxy),
        ];
        for (peer, header, trusted, expected) in cases {
            assert_eq!(
                resolve_client_ip(peer, &xff(header), trusted),
                expected,
                "{peer} {header}"
            );
        }
        assert_eq!(resolve_client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[test]
    fn cidrs_parse_with_or_without_a_prefix_and_match_their_network() {
        for refused in ["10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/x", ""] {
            assert!(refused.parse::<Cidr>().is_err(), "{refused:?}");
        }
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        for (cidr, inside, outside) in [
            ("10.0.0.0/8", "10.255.0.1", "11.0.0.1"),
            ("192.168.1.7", "192.168.1.7", "192.168.1.8"),
            ("0.0.0.0/0", "203.0.113.7", "::1"),
            ("::1", "::1", "::2"),
            ("fd00::/8", "fd12::1", "fe80::1"),
            // A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6.
            ("10.0.0.0/8", "::ffff:10.1.2.3", "::ffff:11.1.2.3"),
        ] {
            let cidr: Cidr = cidr.parse().unwrap();
            assert!(cidr.contains(ip(inside)), "{cidr:?} {inside}");
            assert!(!cidr.contains(ip(outside)), "{cidr:?} {outside}");
        }
    }
}
