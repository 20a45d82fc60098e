//! IP addresses and CIDRs as Kubernetes parses them (`netutils.ParseIPSloppy`: IPv4 parts may have leading
//! zeros) and the address checks of `IsValidIP`, `ValidateNonSpecialIP` and `IsValidCIDR`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::common::{Errors, Path};
use crate::field::FieldError;

/// Go's pre-1.17 `net.ParseIP`, which Kubernetes keeps: dotted IPv4 (leading zeros allowed) or IPv6.
pub(crate) fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    if s.contains('.') && !s.contains(':') {
        return parse_ipv4_sloppy(s).map(IpAddr::V4);
    }
    s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn parse_ipv4_sloppy(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = part.trim_start_matches('0');
        if digits.len() > 3 {
            return None;
        }
        *octet = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

/// The IPv4 address an address stands for, including IPv4-mapped IPv6 (Go's `To4`).
fn to4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

/// `IsValidIP`.
pub(crate) fn valid_ip(path: &Path, value: &str) -> Errors {
    if parse_ip_sloppy(value).is_some() {
        return Vec::new();
    }
    vec![FieldError::invalid(
        path,
        value,
        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
    )]
}

/// `IsValidIPv4Address`.
pub(crate) fn valid_ipv4(path: &Path, value: &str) -> Errors {
    match parse_ip_sloppy(value).and_then(to4) {
        Some(_) => Vec::new(),
        None => vec![FieldError::invalid(
            path,
            value,
            "must be a valid IPv4 address",
        )],
    }
}

/// `IsValidIPv6Address`.
pub(crate) fn valid_ipv6(path: &Path, value: &str) -> Errors {
    match parse_ip_sloppy(value) {
        Some(ip) if to4(ip).is_none() => Vec::new(),
        _ => vec![FieldError::invalid(
            path,
            value,
            "must be a valid IPv6 address",
        )],
    }
}

/// `ValidateNonSpecialIP`: no unspecified, loopback or link-local addresses (Endpoints, external IPs).
pub(crate) fn non_special_ip(value: &str, path: &Path) -> Errors {
    let Some(ip) = parse_ip_sloppy(value) else {
        return vec![FieldError::invalid(
            path,
            value,
            "must be a valid IP address",
        )];
    };
    let mut errs = Vec::new();
    let v4 = to4(ip);
    let unspecified = v4.map_or(ip.is_unspecified(), |v| v.is_unspecified());
    let loopback = v4.map_or(ip.is_loopback(), |v| v.octets()[0] == 127);
    let (link_local_unicast, link_local_multicast) = match (v4, ip) {
        (Some(v), _) => {
            let o = v.octets();
            (
                o[0] == 169 && o[1] == 254,
                o[0] == 224 && o[1] == 0 && o[2] == 0,
            )
        }
        (None, IpAddr::V6(v6)) => {
            let o = v6.octets();
            (
                o[0] == 0xfe && o[1] & 0xc0 == 0x80,
                o[0] == 0xff && o[1] & 0x0f == 0x02,
            )
        }
        (None, IpAddr::V4(_)) => (false, false),
    };
    if unspecified {
        errs.push(FieldError::invalid(
            path,
            value,
            format!("may not be unspecified ({value})"),
        ));
    }
    if loopback {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if link_local_unicast {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_multicast {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

/// Whether `s` is `ip/prefix` with a prefix within the address length (`ParseCIDRSloppy`).
pub(crate) fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    let Some(ip) = parse_ip_sloppy(ip) else {
        return false;
    };
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    !prefix.is_empty()
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && prefix
            .trim_start_matches('0')
            .parse::<u32>()
            .map_or(prefix.bytes().all(|b| b == b'0'), |n| n <= bits)
}

/// `IsValidCIDR`.
pub(crate) fn valid_cidr(path: &Path, value: &str) -> Errors {
    if is_cidr(value) {
        return Vec::new();
    }
    vec![FieldError::invalid(
        path,
        value,
        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
    )]
}

/// Whether an address is IPv6 (`netutils.IsIPv6String`).
pub(crate) fn is_ipv6(s: &str) -> bool {
    matches!(parse_ip_sloppy(s), Some(ip) if to4(ip).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sloppy_parsing() {
        assert!(parse_ip_sloppy("10.0.0.1").is_some());
        assert!(parse_ip_sloppy("010.000.0.01").is_some());
        assert!(parse_ip_sloppy("256.0.0.1").is_none());
        assert!(parse_ip_sloppy("1.2.3").is_none());
        assert!(parse_ip_sloppy("1.2.3.4.5").is_none());
        assert!(parse_ip_sloppy("::1").is_some());
        assert!(parse_ip_sloppy("2001:db8::ffff").is_some());
        assert!(parse_ip_sloppy("::ffff:1.2.3.4").is_some());
        assert!(parse_ip_sloppy("example.com").is_none());
        assert!(parse_ip_sloppy("").is_none());
    }

    #[test]
    fn special_addresses() {
        let p = Path::new("ip");
        let msgs = |v: &str| -> Vec<String> {
            non_special_ip(v, &p)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert!(msgs("10.1.2.3").is_empty());
        assert_eq!(
            msgs("0.0.0.0"),
            ["ip: Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)"]
        );
        assert_eq!(
            msgs("127.0.0.1"),
            [
                "ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
            ]
        );
        assert_eq!(
            msgs("::1"),
            ["ip: Invalid value: \"::1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"]
        );
        assert_eq!(msgs("169.254.1.1").len(), 1);
        assert_eq!(msgs("fe80::1").len(), 1);
        assert_eq!(msgs("224.0.0.5").len(), 1);
        assert_eq!(msgs("ff02::1").len(), 1);
    }

    #[test]
    fn cidrs() {
        assert!(is_cidr("10.0.0.0/8"));
        assert!(is_cidr("2001:db8::/64"));
        assert!(is_cidr("0.0.0.0/0"));
        assert!(!is_cidr("10.0.0.0/33"));
        assert!(!is_cidr("10.0.0.0"));
        assert!(!is_cidr("10.0.0.0/"));
        assert!(is_ipv6("fd00::1"));
        assert!(!is_ipv6("10.0.0.1"));
    }
}
