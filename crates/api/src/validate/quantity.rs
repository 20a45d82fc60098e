//! Kubernetes resource quantities (apimachinery's `resource.Quantity`): `100m`, `1Gi`, `1e3`, `0.5`.
//! Parsing follows `ParseQuantity` (same errors, values rounded up to nano precision), comparison is by value,
//! and [`Quantity`]'s `Display` is upstream's canonical `String()` (`1000m` prints `1`, `1024Mi` prints `1Gi`).

use std::cmp::Ordering;
use std::fmt;

/// `ErrFormatWrong`.
pub const FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// `ErrNumeric`.
pub const NUMERIC: &str = "unable to parse numeric part of quantity";
/// `ErrSuffix`.
pub const SUFFIX: &str = "unable to parse quantity's suffix";

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// How a quantity prints: with an SI suffix (`k`, `M`), a binary one (`Ki`, `Mi`) or an exponent (`e3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// A parsed quantity: its value in billionths (nano units) and the format it was written in.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Quantity {
    /// `ParseQuantity`; the error is upstream's message.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err(FORMAT_WRONG);
        }
        let parts = split(s)?;
        let (base, exponent, format) = suffix(parts.suffix).ok_or(SUFFIX)?;
        if parts.denom.is_empty() && parts.num.is_empty() && parts.value_is_dot {
            return Err(NUMERIC);
        }
        let digits = format!("{}{}", parts.num, parts.denom);
        let mantissa: i128 = if digits.is_empty() {
            0
        } else if digits.trim_start_matches('0').len() > 38 {
            i128::MAX
        } else {
            digits.parse().map_err(|_| NUMERIC)?
        };
        let scale = parts.denom.len() as i64;
        let magnitude = if base == 10 {
            scale10_round_up(mantissa, i64::from(exponent) - scale + 9)
        } else {
            let shifted = shift2(mantissa, exponent);
            scale10_round_up(shifted, 9 - scale)
        };
        let mut format = format;
        let mut magnitude = magnitude;
        if format == Format::BinarySi {
            let max = i128::from(i64::MAX) * NANOS_PER_UNIT;
            magnitude = magnitude.min(max);
            if magnitude > 0 && magnitude < NANOS_PER_UNIT {
                format = Format::DecimalSi;
            }
        }
        let nanos = if parts.positive {
            magnitude
        } else {
            -magnitude
        };
        Ok(Self { nanos, format })
    }

    /// A quantity from a JSON value: quantities are strings, but plain numbers decode too.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, String> {
        match v {
            serde_json::Value::String(s) => Self::parse(s.trim()).map_err(str::to_owned),
            serde_json::Value::Number(n) => Self::parse(&n.to_string()).map_err(str::to_owned),
            _ => Err(FORMAT_WRONG.to_owned()),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Whether the value is a whole number (upstream: `MilliValue() % 1000 == 0`).
    pub fn is_integer(&self) -> bool {
        self.nanos % NANOS_PER_UNIT == 0
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The value in nano units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// A quantity of `nanos` billionths, printed in `format`.
    pub fn from_nanos(nanos: i128, format: Format) -> Self {
        Self { nanos, format }
    }

    /// A whole number, printed with SI suffixes (`resource.NewQuantity(n, DecimalSI)`).
    pub fn from_units(units: i64) -> Self {
        Self::from_nanos(i128::from(units) * NANOS_PER_UNIT, Format::DecimalSi)
    }

    /// `q.Add(y)`: the sum, in this quantity's format unless it is zero (then in `other`'s).
    pub fn plus(&self, other: &Self) -> Self {
        let format = if self.nanos == 0 {
            other.format
        } else {
            self.format
        };
        Self::from_nanos(self.nanos.saturating_add(other.nanos), format)
    }

    /// `q.Sub(y)`: the difference, formatted as [`plus`](Self::plus) does.
    pub fn minus(&self, other: &Self) -> Self {
        self.plus(&Self::from_nanos(
            other.nanos.saturating_neg(),
            other.format,
        ))
    }

    /// `Value()`: whole units, rounded up (away from zero), saturating at the bounds of `i64`.
    pub fn value(&self) -> i64 {
        scaled_up(self.nanos, NANOS_PER_UNIT)
    }

    /// `MilliValue()`: thousandths, rounded up (away from zero), saturating at the bounds of `i64`.
    pub fn milli_value(&self) -> i64 {
        scaled_up(self.nanos, 1_000_000)
    }

    /// `RoundUp(0)`: rounded up to whole units.
    pub fn rounded_up(&self) -> Self {
        Self::from_nanos(i128::from(self.value()) * NANOS_PER_UNIT, self.format)
    }
}

/// `nanos / per`, rounded away from zero, saturating.
fn scaled_up(nanos: i128, per: i128) -> i64 {
    let mut whole = nanos / per;
    if nanos % per != 0 {
        whole += nanos.signum();
    }
    i64::try_from(whole).unwrap_or(if whole < 0 { i64::MIN } else { i64::MAX })
}

struct Parts<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
    /// The numeric part was just `.`: no digits anywhere (`ErrNumeric`).
    value_is_dot: bool,
}

/// `parseQuantityString`: sign, whole digits, optional fraction, then the suffix (letters, then an optional
/// signed exponent).
fn split(s: &str) -> Result<Parts<'_>, &'static str> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    let sign_end = pos;
    while pos < b.len() && b[pos] == b'0' {
        pos += 1;
    }
    let num_start = pos;
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = &s[num_start..pos];
    let mut denom = "";
    let mut saw_dot = false;
    if pos < b.len() && b[pos] == b'.' {
        saw_dot = true;
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[start..pos];
    }
    let value_is_dot = saw_dot && pos - sign_end == 1;
    let suffix_start = pos;
    while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < b.len() && matches!(b[pos], b'-' | b'+') {
        pos += 1;
    }
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < b.len() {
        return Err(FORMAT_WRONG);
    }
    Ok(Parts {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
        value_is_dot,
    })
}

/// The base, exponent and format a suffix stands for (`quantitySuffixer.interpret`).
fn suffix(s: &str) -> Option<(u32, i32, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSi));
    let bin = |e| Some((2, e, Format::BinarySi));
    match s {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        _ if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let exp: i64 = s[1..].parse().ok()?;
            Some((10, i32::try_from(exp).ok()?, Format::DecimalExponent))
        }
        _ => None,
    }
}

/// `m * 2^e`, saturating.
fn shift2(m: i128, e: i32) -> i128 {
    let mut v = m;
    for _ in 0..e {
        v = v.saturating_mul(2);
    }
    v
}

/// `m * 10^e` for a non-negative `m`, rounding up (away from zero) when `e` is negative; saturating.
fn scale10_round_up(m: i128, e: i64) -> i128 {
    if m == 0 {
        return 0;
    }
    if e >= 0 {
        let mut v = m;
        for _ in 0..e {
            v = v.saturating_mul(10);
            if v == i128::MAX {
                break;
            }
        }
        return v;
    }
    let mut v = m;
    let mut remainder = false;
    for _ in 0..(-e) {
        remainder |= v % 10 != 0;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if remainder || v == 0 { v + 1 } else { v }
}

impl fmt::Display for Quantity {
    /// `Quantity.String()`: the canonical form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let magnitude = self.nanos.unsigned_abs();
        let mut format = self.format;
        if format == Format::BinarySi
            && (magnitude < 1024 * NANOS_PER_UNIT as u128
                || !magnitude.is_multiple_of(NANOS_PER_UNIT as u128))
        {
            format = Format::DecimalSi;
        }
        if format == Format::BinarySi {
            let mut units = magnitude / NANOS_PER_UNIT as u128;
            let mut exponent = 0;
            while units.is_multiple_of(1024) && exponent < 6 {
                units /= 1024;
                exponent += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exponent];
            return write!(f, "{sign}{units}{suffix}");
        }
        let (mut mantissa, mut exponent) = (magnitude, -9i32);
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exponent += 1;
        }
        match exponent.rem_euclid(3) {
            1 => {
                mantissa *= 10;
                exponent -= 1;
            }
            2 => {
                mantissa *= 100;
                exponent -= 2;
            }
            _ => {}
        }
        if format == Format::DecimalExponent {
            return if exponent == 0 {
                write!(f, "{sign}{mantissa}")
            } else {
                write!(f, "{sign}{mantissa}e{exponent}")
            };
        }
        while exponent > 18 {
            mantissa *= 1000;
            exponent -= 3;
        }
        let suffix = match exponent {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => "",
        };
        write!(f, "{sign}{mantissa}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect("a valid quantity")
    }

    #[test]
    fn canonical_forms() {
        let cases = [
            ("0", "0"),
            ("100m", "100m"),
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1", "1"),
            ("1500", "1500"),
            ("2000", "2k"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("512Ki", "512Ki"),
            ("1000Ki", "1000Ki"),
            ("100Ki", "100Ki"),
            ("1Ki", "1Ki"),
            ("0.1Ki", "102400m"),
            ("512", "512"),
            ("-1", "-1"),
            ("-100m", "-100m"),
            ("1.5", "1500m"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("123Mi", "123Mi"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("5G", "5G"),
            ("1E", "1E"),
            ("+5", "5"),
            ("007", "7"),
            ("1.", "1"),
            ("+", "0"),
        ];
        for (input, want) in cases {
            assert_eq!(q(input).to_string(), want, "{input}");
        }
    }

    #[test]
    fn errors_match_upstream() {
        for bad in ["", "abc", "1.5.5", "1 Gi", "1Gi5x"] {
            assert_eq!(Quantity::parse(bad), Err(FORMAT_WRONG), "{bad}");
        }
        for bad in ["1K", "1Kie", "1e", "1iK", "--1"] {
            assert_eq!(Quantity::parse(bad), Err(SUFFIX), "{bad}");
        }
        assert_eq!(Quantity::parse("."), Err(NUMERIC));
    }

    #[test]
    fn arithmetic_keeps_upstream_formats() {
        assert_eq!(q("1").plus(&q("500m")).to_string(), "1500m");
        assert_eq!(q("0").plus(&q("1Gi")).to_string(), "1Gi");
        assert_eq!(q("1Gi").plus(&q("512Mi")).to_string(), "1536Mi");
        assert_eq!(q("2").minus(&q("500m")).to_string(), "1500m");
        assert_eq!(Quantity::from_units(3).to_string(), "3");
        assert_eq!(q("1500m").value(), 2);
        assert_eq!(q("-1500m").value(), -2);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("2Ki").milli_value(), 2_048_000);
        assert_eq!(q("1500m").rounded_up().to_string(), "2");
    }

    #[test]
    fn compare_by_value() {
        assert!(q("500m") < q("1"));
        assert_eq!(q("1000m"), q("1"));
        assert_eq!(q("1Ki"), q("1024"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("-1").is_negative());
        assert!(q("2").is_integer());
        assert!(!q("1500m").is_integer());
        assert!(q("0").is_zero());
        assert_eq!(
            Quantity::from_json(&serde_json::json!(0.5)).map(|q| q.to_string()),
            Ok("500m".to_owned())
        );
    }
}
