//! Which addresses a webhook may reach when `WEBHOOK_ALLOW_PRIVATE` is off: public unicast
//! only. A webhook URL is chosen by a client, so without this rule any client who may register
//! one could make the service send requests into its own network (SSRF): to the loopback
//! interface, a private subnet, a cloud metadata endpoint on a link-local address.
//!
//! The rule is applied to the addresses a host name resolves to, not to the name, and an
//! IPv6 address that embeds an IPv4 one (mapped, compatible, NAT64, 6to4) is judged by the
//! IPv4 address inside; tunnels that hide theirs (Teredo, local-use NAT64) are refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a public unicast address a webhook may be sent to.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let refused = ip.is_unspecified()
        || a == 0 // "this network", 0.0.0.0/8
        || ip.is_loopback() // 127.0.0.0/8
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local() // 169.254/16, where cloud metadata services answer
        || (a == 100 && (b & 0xc0) == 64) // carrier-grade NAT, 100.64/10
        || (a == 198 && (b & 0xfe) == 18) // benchmarking, 198.18/15 (some clouds use it inside)
        || matches!(ip.octets(), [192, 0, 0 | 2, _] | [198, 51, 100, _] | [203, 0, 113, _])
        // 192.0.0/24 (protocol assignments) and the documentation networks
        || ip.is_broadcast()
        || ip.is_multicast() // 224/4
        || a >= 240; // reserved, 240/4
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || (first & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || (first == 0x2001 && ip.segments()[1] == 0) // Teredo, 2001::/32: a tunnel to IPv4
        || (first == 0x2001 && ip.segments()[1] == 0xdb8) // documentation, 2001:db8::/32
        || (first == 0x64 && ip.segments()[1] == 0xff9b && ip.segments()[2] == 1) // local NAT64
        || (first == 0x100 && ip.segments()[1..4].iter().all(|&x| x == 0)) // discard, 100::/64
        || ip.is_multicast(); // ff00::/8
    !refused
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::/48`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    if s[0] == 0x2002 {
        let ([a, b], [c, d]) = (s[1].to_be_bytes(), s[2].to_be_bytes());
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    let ([a, b], [c, d]) = (s[6].to_be_bytes(), s[7].to_be_bytes());
    let low = Ipv4Addr::new(a, b, c, d);
    let compatible = s[..6].iter().all(|&x| x == 0) && !ip.is_unspecified() && !ip.is_loopback();
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0);
    (compatible || nat64).then_some(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_refused() {
        for refused in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:192.168.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "100::1",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(!is_public(ip), "{refused} must be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for allowed in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "169.253.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = allowed.parse().unwrap();
            assert!(is_public(ip), "{allowed} must be allowed");
        }
    }
}
