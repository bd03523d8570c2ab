//! Properties of names and address checks over random input.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use carapace_media::netguard::is_public;
use carapace_media::{display_name, sanitize_stem};
use proptest::prelude::*;

proptest! {
    #[test]
    fn sanitized_stems_are_safe_file_name_parts(s in "\\PC{0,200}") {
        if let Some(stem) = sanitize_stem(&s) {
            prop_assert!(!stem.is_empty() && stem.chars().count() <= 60);
            prop_assert!(stem.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
            prop_assert!(!stem.contains("---"));
            prop_assert!(!stem.starts_with('.') && !stem.starts_with('-'));
            prop_assert!(stem != "..");
            // A stored name round-trips to "<stem>.<ext>" for recipients.
            let name = format!("{stem}---{}.png", uuid::Uuid::new_v4());
            prop_assert_eq!(display_name(&name), format!("{stem}.png"));
        }
    }

    #[test]
    fn v4_mapped_v6_agrees_with_v4(a in any::<u32>()) {
        let v4 = Ipv4Addr::from(a);
        prop_assert_eq!(is_public(IpAddr::V4(v4)), is_public(IpAddr::V6(v4.to_ipv6_mapped())));
        // NAT64 and 6to4 embeddings never make a private address public.
        let o = v4.octets();
        let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([o[0], o[1]]), u16::from_be_bytes([o[2], o[3]]));
        let six2four = Ipv6Addr::new(0x2002, u16::from_be_bytes([o[0], o[1]]), u16::from_be_bytes([o[2], o[3]]), 0, 0, 0, 0, 1);
        if !is_public(IpAddr::V4(v4)) {
            prop_assert!(!is_public(IpAddr::V6(nat64)));
            prop_assert!(!is_public(IpAddr::V6(six2four)));
        }
    }

    #[test]
    fn private_ranges_are_never_public(b in any::<[u8; 3]>()) {
        for first in [10u8, 127] {
            prop_assert!(!is_public(IpAddr::V4(Ipv4Addr::new(first, b[0], b[1], b[2]))));
        }
        prop_assert!(!is_public(IpAddr::V4(Ipv4Addr::new(192, 168, b[0], b[1]))));
        prop_assert!(!is_public(IpAddr::V4(Ipv4Addr::new(172, 16 + (b[0] % 16), b[1], b[2]))));
        prop_assert!(!is_public(IpAddr::V4(Ipv4Addr::new(169, 254, b[0], b[1]))));
    }
}
