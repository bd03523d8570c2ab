//! The one home of "resolve the host, every address must be public": media downloads (and so
//! the `message` tool's URL attachments), the browser's URL policy and the browser's SOCKS5
//! proxy all call [`resolve_public`] (or the pure [`check_addresses`] on addresses they hold)
//! and connect only to the addresses it returns.
//!
//! - [`is_public`]: the classification of one address (pure).
//! - [`check_addresses`]: every address of a host must be public unless private networks are
//!   allowed; an empty list is an unresolvable host (pure).
//! - [`resolve_public`]: an IP literal is checked as it is, a name is resolved first; the
//!   returned socket addresses are the ones to pin the connection to.
//!
//! Refusals are [`AddressRefused`]; each caller maps them onto its own error, whose code for
//! [`AddressRefused::NonPublic`] is `NETWORK_POLICY_REFUSED` with `host` and `address` facts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a host's addresses were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefused {
    /// The host could not be resolved, or resolved to no address.
    #[error("could not resolve {host}: {reason}")]
    Unresolvable {
        /// The host as named (IPv6 without brackets).
        host: String,
        /// Why (the resolver's message, or "no addresses").
        reason: String,
    },
    /// One of the host's addresses is not public and private networks are not allowed.
    #[error("{host} resolves to {address}, a private, loopback or otherwise non-public address")]
    NonPublic {
        /// The host as named (IPv6 without brackets).
        host: String,
        /// The first address that is not public.
        address: IpAddr,
    },
}

/// Checks the addresses `host` resolved to: every one must be [`is_public`] unless
/// `allow_private`; an empty list is [`AddressRefused::Unresolvable`]. Pure.
pub fn check_addresses(
    host: &str,
    addrs: &[IpAddr],
    allow_private: bool,
) -> Result<(), AddressRefused> {
    if addrs.is_empty() {
        return Err(AddressRefused::Unresolvable {
            host: host.to_string(),
            reason: "no addresses".into(),
        });
    }
    if allow_private {
        return Ok(());
    }
    match addrs.iter().find(|a| !is_public(**a)) {
        Some(bad) => Err(AddressRefused::NonPublic {
            host: host.to_string(),
            address: *bad,
        }),
        None => Ok(()),
    }
}

/// Resolves `host` (an IP literal, bracketed or not, is taken as it is) and checks every
/// address with [`check_addresses`]. Returns the checked addresses with `port`: the caller
/// connects to one of these, never to a fresh resolution, so a DNS answer cannot change between
/// the check and the connection.
pub async fn resolve_public(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, AddressRefused> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| AddressRefused::Unresolvable {
                host: bare.to_string(),
                reason: e.to_string(),
            })?
            .collect(),
    };
    let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    check_addresses(bare, &ips, allow_private)?;
    Ok(addrs)
}

/// True for an address on the public internet; false for loopback, private, link-local,
/// CGNAT, unspecified, broadcast, multicast, reserved and documentation ranges, and for IPv6
/// forms that embed such an IPv4 address (mapped, compatible, NAT64, 6to4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_public(v4),
        IpAddr::V6(v6) => v6_public(v6),
    }
}

fn v4_public(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 CGNAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24 IETF
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15 benchmarking
        || o[0] >= 240) // reserved
}

fn v6_public(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_public(v4);
    }
    let s = ip.segments();
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    // ::a.b.c.d (deprecated IPv4-compatible)
    if s[..6].iter().all(|x| *x == 0) {
        return false;
    }
    if (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local
        || (s[0] == 0x2001 && s[1] == 0x0db8)
    // documentation
    {
        return false;
    }
    // 64:ff9b::/96 NAT64 and 2002::/16 6to4 embed an IPv4 address.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|x| *x == 0) {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return v4_public(v4);
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return v4_public(v4);
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Not public: loopback, private v4/v6, link-local, CGNAT, IPv4-mapped/compatible/NAT64/6to4
    /// forms of those, unspecified, broadcast, multicast, reserved, benchmarking, documentation.
    const REFUSED: &[&str] = &[
        "127.0.0.1",
        "127.1.2.3",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "0.1.2.3",
        "100.64.0.1",
        "100.127.255.254",
        "255.255.255.255",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "192.0.0.8",
        "198.18.0.1",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "::1",
        "::",
        "fd00::1",
        "fc00::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:192.168.1.1",
        "::ffff:100.64.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a00:1",
        "2002:7f00:1::",
        "::127.0.0.1",
    ];

    /// Public, including the edges next to refused ranges.
    const ALLOWED: &[&str] = &[
        "93.184.216.34",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.1",
        "172.32.0.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ];

    #[test]
    fn classification() {
        for a in REFUSED {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in ALLOWED {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn every_address_must_be_public() {
        let public: IpAddr = ALLOWED[0].parse().unwrap();
        for a in REFUSED {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(
                check_addresses("h", &[ip], false),
                Err(AddressRefused::NonPublic {
                    host: "h".into(),
                    address: ip
                }),
                "{a}"
            );
            // One bad address among public ones is enough (rebinding-style hosts).
            assert!(check_addresses("h", &[public, ip], false).is_err(), "{a}");
            // …unless private networks are allowed.
            check_addresses("h", &[ip], true).unwrap();
        }
        for a in ALLOWED {
            check_addresses("h", &[a.parse().unwrap()], false).unwrap();
        }
        for allow in [false, true] {
            assert!(matches!(
                check_addresses("h", &[], allow),
                Err(AddressRefused::Unresolvable { .. })
            ));
        }
    }

    #[tokio::test]
    async fn literals_are_checked_without_resolving() {
        let e = resolve_public("[::1]", 80, false).await.unwrap_err();
        assert_eq!(
            e,
            AddressRefused::NonPublic {
                host: "::1".into(),
                address: "::1".parse().unwrap()
            }
        );
        assert!(resolve_public("10.0.0.1", 80, false).await.is_err());
        let ok = resolve_public("127.0.0.1", 8080, true).await.unwrap();
        assert_eq!(ok, vec!["127.0.0.1:8080".parse().unwrap()]);
        let ok = resolve_public("1.1.1.1", 443, false).await.unwrap();
        assert_eq!(ok, vec!["1.1.1.1:443".parse().unwrap()]);
    }

    #[tokio::test]
    async fn names_are_resolved_then_checked() {
        let e = resolve_public("localhost", 80, false).await.unwrap_err();
        assert!(matches!(e, AddressRefused::NonPublic { .. }), "{e}");
        // A name no resolver is asked about (a NUL byte cannot be passed on): no network here.
        let e = resolve_public("bad\0name", 80, false).await.unwrap_err();
        assert!(matches!(e, AddressRefused::Unresolvable { .. }), "{e}");
    }
}
