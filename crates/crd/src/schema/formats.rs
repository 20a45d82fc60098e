//! String formats (kube-openapi's `strfmt` registry, as apiextensions keeps it). Only strings are checked
//! against a format; formats upstream does not support are ignored.

use std::net::IpAddr;

/// The formats apiextensions keeps for validation, normalized (without `-`). Of these, `uri`, `email`,
/// `isbn*`, `creditcard`, `ssn`, `rgbcolor` and `password` are accepted without a check.
pub(super) const SUPPORTED: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    DateTime,
    Date,
    Byte,
    Uuid,
    Uuid3,
    Uuid4,
    Uuid5,
    Ipv4,
    Ipv6,
    Cidr,
    Mac,
    Hostname,
    Duration,
    HexColor,
    BsonObjectId,
}

impl Format {
    /// The checked format of a normalized name.
    pub(super) fn parse(normalized: &str) -> Option<Format> {
        Some(match normalized {
            "datetime" => Format::DateTime,
            "date" => Format::Date,
            "byte" => Format::Byte,
            "uuid" => Format::Uuid,
            "uuid3" => Format::Uuid3,
            "uuid4" => Format::Uuid4,
            "uuid5" => Format::Uuid5,
            "ipv4" => Format::Ipv4,
            "ipv6" => Format::Ipv6,
            "cidr" => Format::Cidr,
            "mac" => Format::Mac,
            "hostname" => Format::Hostname,
            "duration" => Format::Duration,
            "hexcolor" => Format::HexColor,
            "bsonobjectid" => Format::BsonObjectId,
            _ => return None,
        })
    }

    pub(super) fn accepts(self, s: &str) -> bool {
        match self {
            Format::DateTime => is_date_time(s),
            Format::Date => is_date(s),
            Format::Byte => is_base64(s),
            Format::Uuid => uuid_groups(s).is_some(),
            Format::Uuid3 => uuid_groups(s).is_some_and(|g| g[2].starts_with('3')),
            Format::Uuid4 => uuid_groups(s).is_some_and(|g| g[2].starts_with('4') && variant(g[3])),
            Format::Uuid5 => uuid_groups(s).is_some_and(|g| g[2].starts_with('5') && variant(g[3])),
            Format::Ipv4 => s.parse::<IpAddr>().is_ok() && s.contains('.'),
            Format::Ipv6 => s.parse::<IpAddr>().is_ok() && s.contains(':'),
            Format::Cidr => is_cidr(s),
            Format::Mac => is_mac(s),
            Format::Hostname => is_hostname(s),
            Format::Duration => is_go_duration(s) || has_unit_duration(s),
            Format::HexColor => {
                let hex = s.strip_prefix('#').unwrap_or(s);
                matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())
            }
            Format::BsonObjectId => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        }
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `time.Parse("2006-01-02", s)`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) = (digits(&s[..4]), digits(&s[5..7]), digits(&s[8..]))
    else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// strfmt's `IsDateTime`: an RFC 3339 date, `T`, and `hh:mm:ss[.frac](Z|±hh:mm)`, case-insensitively.
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if !is_date(date) || time.len() < 9 || !time.is_char_boundary(8) {
        return false;
    }
    let (clock, rest) = time.split_at(8);
    let c = clock.as_bytes();
    if c[2] != b':' || c[5] != b':' {
        return false;
    }
    let (Some(h), Some(m), Some(sec)) = (
        digits(&clock[..2]),
        digits(&clock[3..5]),
        digits(&clock[6..]),
    ) else {
        return false;
    };
    if h > 23 || m > 59 || sec > 59 {
        return false;
    }
    let zone = |z: &str| {
        z == "z"
            || (z.len() == 6
                && z.is_char_boundary(1)
                && matches!(&z[..1], "+" | "-")
                && digits(&z[1..3]).is_some()
                && &z[3..4] == ":"
                && digits(&z[4..]).is_some())
    };
    if zone(rest) {
        return true;
    }
    // `(.[0-9]+)?`: any one character, then digits.
    let mut chars = rest.chars();
    if chars.next().is_none() {
        return false;
    }
    let frac = chars.as_str();
    let n = frac.bytes().take_while(u8::is_ascii_digit).count();
    n > 0 && zone(&frac[n..])
}

/// Go's `base64.StdEncoding.DecodeString` (which skips line breaks).
fn is_base64(s: &str) -> bool {
    let data: Vec<u8> = s.bytes().filter(|b| !matches!(b, b'\r' | b'\n')).collect();
    if !data.len().is_multiple_of(4) {
        return false;
    }
    let body_len = data.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    let padding = data.len() - body_len;
    padding <= 2
        && data[..body_len]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
        && (padding == 0 || body_len % 4 >= 2)
}

/// The five groups of a UUID with optional hyphens (`(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?...{12}$`).
fn uuid_groups(s: &str) -> Option<[&str; 5]> {
    let mut groups = [""; 5];
    let mut rest = s;
    for (i, len) in [8, 4, 4, 4, 12].into_iter().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix('-').unwrap_or(rest);
        }
        if rest.len() < len || !rest.is_char_boundary(len) {
            return None;
        }
        let (group, tail) = rest.split_at(len);
        if !group.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        groups[i] = group;
        rest = tail;
    }
    rest.is_empty().then_some(groups)
}

fn variant(group: &str) -> bool {
    group
        .bytes()
        .next()
        .is_some_and(|b| matches!(b.to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b'))
}

/// Go's `net.ParseCIDR`.
fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let (Ok(ip), Some(bits)) = (ip.parse::<IpAddr>(), digits(bits)) else {
        return false;
    };
    bits <= if ip.is_ipv4() { 32 } else { 128 }
}

/// Go's `net.ParseMAC`: 6, 8 or 20 octets as `xx:xx:..`, `xx-xx-..` or `xxxx.xxxx...`.
fn is_mac(s: &str) -> bool {
    let hex = |g: &str, len: usize| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit());
    let octets_ok = |n: usize| matches!(n, 6 | 8 | 20);
    if let Some(&sep @ (b':' | b'-')) = s.as_bytes().get(2) {
        let groups: Vec<&str> = s.split(char::from(sep)).collect();
        return octets_ok(groups.len()) && groups.iter().all(|g| hex(g, 2));
    }
    let groups: Vec<&str> = s.split('.').collect();
    groups.len() > 1 && octets_ok(groups.len() * 2) && groups.iter().all(|g| hex(g, 4))
}

/// strfmt's `IsHostname`, approximately: labels of letters, digits and inner hyphens, at most 63 bytes
/// each and 255 in all, an optional final dot.
fn is_hostname(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    let trimmed = s.strip_suffix('.').unwrap_or(s);
    trimmed.split('.').all(|label| {
        let ok_char = |c: char| c.is_alphanumeric() || (!c.is_ascii() && !c.is_whitespace());
        label.len() <= 63
            && label.chars().next().is_some_and(ok_char)
            && label.chars().last().is_some_and(ok_char)
            && label.chars().all(|c| ok_char(c) || c == '-')
    })
}

/// Go's `time.ParseDuration` syntax: `[-+]?([0-9]*(\.[0-9]*)?unit)+` or `0`.
fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    if s.is_empty() {
        return false;
    }
    let mut rest = s;
    while !rest.is_empty() {
        let int = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut n = int;
        let mut frac = 0;
        if rest[n..].starts_with('.') {
            n += 1;
            frac = rest[n..].bytes().take_while(u8::is_ascii_digit).count();
            n += frac;
        }
        if int + frac == 0 {
            return false;
        }
        rest = &rest[n..];
        let Some(unit) = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .into_iter()
            .filter(|u| rest.starts_with(u))
            .max_by_key(|u| u.len())
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

/// strfmt's fallback: somewhere `<digits> <unit>` with a unit it knows (`5 days`, `3h`).
fn has_unit_duration(s: &str) -> bool {
    const UNITS: &[&str] = &[
        "ns",
        "nanosecond",
        "nanoseconds",
        "us",
        "µs",
        "microsecond",
        "microseconds",
        "ms",
        "millisecond",
        "milliseconds",
        "s",
        "sec",
        "secs",
        "second",
        "seconds",
        "m",
        "min",
        "mins",
        "minute",
        "minutes",
        "h",
        "hr",
        "hrs",
        "hour",
        "hours",
        "d",
        "day",
        "days",
        "w",
        "wk",
        "wks",
        "week",
        "weeks",
    ];
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let rest = s[i..].trim_start();
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphabetic() || *c == 'µ')
            .collect();
        if UNITS.contains(&word.to_lowercase().as_str()) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let good = [
            (Format::DateTime, "2024-02-29T10:00:00Z"),
            (Format::DateTime, "2024-01-01t23:59:59.123+01:00"),
            (Format::DateTime, "2024-01-01T00:00:00-05:30"),
            (Format::Date, "2024-02-29"),
            (Format::Byte, "aGVsbG8="),
            (Format::Byte, ""),
            (Format::Byte, "aGVs\nbG8h"),
            (Format::Uuid, "123e4567-e89b-12d3-a456-426614174000"),
            (Format::Uuid, "123E4567E89B12D3A456426614174000"),
            (Format::Uuid4, "123e4567-e89b-42d3-a456-426614174000"),
            (Format::Ipv4, "10.0.0.1"),
            (Format::Ipv6, "fe80::1"),
            (Format::Cidr, "10.0.0.0/8"),
            (Format::Cidr, "fd00::/64"),
            (Format::Mac, "00:1a:2b:3c:4d:5e"),
            (Format::Mac, "001a.2b3c.4d5e"),
            (Format::Hostname, "example.com"),
            (Format::Hostname, "a-b.example.com."),
            (Format::Duration, "1h30m"),
            (Format::Duration, "1.5s"),
            (Format::Duration, "5 days"),
            (Format::HexColor, "#ffAA00"),
            (Format::BsonObjectId, "507f1f77bcf86cd799439011"),
        ];
        for (format, s) in good {
            assert!(format.accepts(s), "{format:?} should accept {s:?}");
        }
        let bad = [
            (Format::DateTime, "2024-02-30T10:00:00Z"),
            (Format::DateTime, "2024-01-01T24:00:00Z"),
            (Format::DateTime, "2024-01-01T10:00:00"),
            (Format::DateTime, "2024-01-01"),
            (Format::DateTime, "yesterday"),
            (Format::Date, "2023-02-29"),
            (Format::Date, "2023-13-01"),
            (Format::Date, "23-01-01"),
            (Format::Byte, "aGVsbG8"),
            (Format::Byte, "a==="),
            (Format::Byte, "ab$d"),
            (Format::Uuid, "123e4567-e89b-12d3-a456-42661417400"),
            (Format::Uuid, "g23e4567-e89b-12d3-a456-426614174000"),
            (Format::Uuid4, "123e4567-e89b-12d3-a456-426614174000"),
            (Format::Ipv4, "10.0.0.256"),
            (Format::Ipv4, "fe80::1"),
            (Format::Ipv6, "10.0.0.1"),
            (Format::Cidr, "10.0.0.0/33"),
            (Format::Cidr, "10.0.0.0"),
            (Format::Mac, "00:1a:2b:3c:4d"),
            (Format::Hostname, "-bad.example.com"),
            (Format::Hostname, "a..b"),
            (Format::Duration, "soon"),
            (Format::Duration, "1x"),
            (Format::HexColor, "#ffAA0"),
        ];
        for (format, s) in bad {
            assert!(!format.accepts(s), "{format:?} should reject {s:?}");
        }
    }
}
