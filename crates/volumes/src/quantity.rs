//! Just enough of Kubernetes' resource quantities for the downward API: a quantity (`500m`, `64Mi`, `1.5e3`)
//! scaled to whole units or thousandths, rounded up as `Quantity.Value()` and `MilliValue()` round.

/// A parsed quantity: `mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

fn parse(text: &str) -> Option<Parsed> {
    let text = text.trim();
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 36 {
        return None;
    }
    let mut mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    if negative {
        mantissa = -mantissa;
    }
    let mut exp10 = -i32::try_from(fraction.len()).ok()?;
    let mut exp2 = 0;
    match suffix {
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let index = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                .iter()
                .position(|s| *s == suffix)?;
            exp2 = 10 * (u32::try_from(index).ok()? + 1);
        }
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "" => {}
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        _ => {
            let exponent = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let valid = exponent
                .strip_prefix(['+', '-'])
                .unwrap_or(exponent)
                .bytes()
                .all(|b| b.is_ascii_digit());
            if !valid || exponent.is_empty() {
                return None;
            }
            exp10 += exponent.parse::<i32>().ok()?;
        }
    }
    Some(Parsed {
        mantissa,
        exp10,
        exp2,
    })
}

/// `ceil(q × 10^-scale)`, saturating at the bounds of `i64`.
fn scaled(q: Parsed, scale: i32) -> i64 {
    let saturate = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
    let mut value = q.mantissa;
    for _ in 0..q.exp2 {
        value = value.saturating_mul(2);
    }
    let shift = q.exp10 - scale;
    if shift >= 0 {
        for _ in 0..shift.min(40) {
            value = value.saturating_mul(10);
        }
        return saturate(value);
    }
    if shift < -38 {
        return i64::from(value > 0);
    }
    let divisor = 10_i128.pow(shift.unsigned_abs());
    let quotient = value.div_euclid(divisor);
    saturate(if value.rem_euclid(divisor) != 0 {
        quotient + 1
    } else {
        quotient
    })
}

/// `Quantity.Value()`: whole units, rounded up. `None` when `text` is no quantity.
pub fn value(text: &str) -> Option<i64> {
    parse(text).map(|q| scaled(q, 0))
}

/// A storage quantity (`1Gi`, `500M`, `1e3`) in bytes, rounded up; 0 when it is no quantity or negative.
pub fn bytes(text: &str) -> u64 {
    value(text).map_or(0, |v| v.max(0) as u64)
}

/// `Quantity.MilliValue()`: thousandths, rounded up.
pub fn milli_value(text: &str) -> Option<i64> {
    parse(text).map(|q| scaled(q, -3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_quantities_are_bytes() {
        assert_eq!(bytes("1Gi"), 1 << 30);
        assert_eq!(bytes("500M"), 500_000_000);
        assert_eq!(bytes("1e3"), 1000);
        assert_eq!(bytes("-1"), 0);
        assert_eq!(bytes("x"), 0);
    }

    #[test]
    fn values_round_up_like_kubernetes_quantities() {
        assert_eq!(value("64Mi"), Some(67_108_864));
        assert_eq!(value("1G"), Some(1_000_000_000));
        assert_eq!(value("1.5"), Some(2));
        assert_eq!(value("1500m"), Some(2));
        assert_eq!(value("1e3"), Some(1000));
        assert_eq!(value("0.5Ki"), Some(512));
        assert_eq!(milli_value("250m"), Some(250));
        assert_eq!(milli_value("2"), Some(2000));
        assert_eq!(milli_value("0.5m"), Some(1));
        assert_eq!(milli_value("1n"), Some(1));
        assert_eq!(milli_value("0"), Some(0));
        assert_eq!(value("12E"), Some(i64::MAX));
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for bad in ["", "Mi", "1.2.3", "1x", "1e", "--1", "1 Mi"] {
            assert_eq!(value(bad), None, "{bad:?}");
        }
    }
}
