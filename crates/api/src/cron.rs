//! CronJob schedules as `cron.ParseStandard` (robfig/cron v3) reads them: five fields (minute, hour, day of
//! month, month, day of week) of `*`, `?`, numbers, names, ranges, steps and lists, or a descriptor
//! (`@hourly`, `@every 1h30m`), optionally after `TZ=`/`CRON_TZ=`. Errors carry the library's messages.
//! Pure: whether a named time zone exists is the caller's to say (see [`parse`]).

use std::time::Duration;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// The five fields, as bit sets.
    Cron(Fields),
    /// `@every <duration>` (robfig's constant delay, whole seconds, at least one).
    Every(Duration),
}

/// The cron fields as bit sets (bit n: value n allowed); `*_star`: the field was `*` or `?` (with no step
/// above 1), which makes day of month and day of week both required rather than either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// Minutes, 0 to 59.
    pub minutes: u64,
    /// Hours, 0 to 23.
    pub hours: u64,
    /// Days of the month, 1 to 31.
    pub dom: u64,
    /// Months, 1 to 12.
    pub months: u64,
    /// Days of the week, 0 (Sunday) to 6.
    pub dow: u64,
    /// Day of month was a star.
    pub dom_star: bool,
    /// Day of week was a star.
    pub dow_star: bool,
}

struct Bounds {
    min: u64,
    max: u64,
    names: &'static [&'static str],
    /// The number the first name stands for.
    first_name: u64,
}

/// A field of numbers only.
const fn numbers(min: u64, max: u64) -> Bounds {
    Bounds {
        min,
        max,
        names: &[],
        first_name: 0,
    }
}

const MINUTES: Bounds = numbers(0, 59);
const HOURS: Bounds = numbers(0, 23);
const DOM: Bounds = numbers(1, 31);
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    first_name: 1,
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    first_name: 0,
};

/// `cron.ParseStandard` wrapped in Kubernetes' panic recovery: the time zone a `TZ=<zone> `/`CRON_TZ=<zone> `
/// prefix names, and the schedule. `location` stands for `time.LoadLocation`: it is asked about the zone
/// named (before the rest is parsed) and its error becomes `provided bad location <zone>: <error>`.
pub fn parse(
    spec: &str,
    location: impl FnOnce(&str) -> Result<(), String>,
) -> Result<(Option<&str>, Schedule), String> {
    if spec.is_empty() {
        return Err("empty spec string".to_owned());
    }
    let mut spec = spec;
    let mut zone = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        let Some(space) = spec.find(' ') else {
            // Upstream slices `spec[eq+1:-1]` and recovers from the panic.
            return Err(format!(
                "caught panic while parsing cron schedule: runtime error: slice bounds out of range [{}:-1]",
                eq + 1
            ));
        };
        let name = &spec[eq + 1..space];
        location(name).map_err(|e| format!("provided bad location {name}: {e}"))?;
        zone = Some(name);
        spec = spec[space..].trim();
    }
    if spec.starts_with('@') {
        return Ok((zone, descriptor(spec)?));
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let (minutes, _) = field(fields[0], &MINUTES)?;
    let (hours, _) = field(fields[1], &HOURS)?;
    let (dom, dom_star) = field(fields[2], &DOM)?;
    let (months, _) = field(fields[3], &MONTHS)?;
    let (dow, dow_star) = field(fields[4], &DOW)?;
    let fields = Fields {
        minutes,
        hours,
        dom,
        months,
        dow,
        dom_star,
        dow_star,
    };
    Ok((zone, Schedule::Cron(fields)))
}

fn descriptor(spec: &str) -> Result<Schedule, String> {
    let standard = match spec {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => {
            let Some(duration) = spec.strip_prefix("@every ") else {
                return Err(format!("unrecognized descriptor: {spec}"));
            };
            let nanos = go_duration(duration)
                .map_err(|e| format!("failed to parse duration {spec}: {e}"))?;
            // `cron.Every`: below a second is a second, and fractions of a second are dropped.
            let seconds = u64::try_from(nanos / 1_000_000_000).unwrap_or(0).max(1);
            return Ok(Schedule::Every(Duration::from_secs(seconds)));
        }
    };
    parse(standard, |_| Ok(())).map(|(_, schedule)| schedule)
}

/// `getField`: a comma-separated list of ranges, its bits, and whether one was a star.
fn field(text: &str, bounds: &Bounds) -> Result<(u64, bool), String> {
    let mut bits = 0;
    let mut star = false;
    for expr in text.split(',').filter(|e| !e.is_empty()) {
        let (b, s) = range(expr, bounds)?;
        bits |= b;
        star |= s;
    }
    Ok((bits, star))
}

/// `getRange`: `*`/`?`/number/name, an optional `-end`, an optional `/step`.
fn range(expr: &str, r: &Bounds) -> Result<(u64, bool), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let mut star = false;
    let (start, mut end) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        star = true;
        (r.min, r.max)
    } else {
        let start = int_or_name(low_and_high[0], r)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => int_or_name(low_and_high[1], r)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            if single {
                end = r.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < r.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            r.min
        ));
    }
    if end > r.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            r.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let bits = (start..=end)
        .step_by(usize::try_from(step).unwrap_or(usize::MAX))
        .fold(0u64, |bits, v| bits | 1 << v);
    Ok((bits, star))
}

fn int_or_name(expr: &str, r: &Bounds) -> Result<u64, String> {
    let lower = expr.to_ascii_lowercase();
    if let Some(i) = r.names.iter().position(|n| *n == lower) {
        return Ok(r.first_name + i as u64);
    }
    must_parse_int(expr)
}

/// `mustParseInt`: Go's `strconv.Atoi`, then no negatives.
fn must_parse_int(expr: &str) -> Result<u64, String> {
    let n = go_atoi(expr).map_err(|e| format!("failed to parse int from {expr}: {e}"))?;
    u64::try_from(n).map_err(|_| format!("negative number ({n}) not allowed: {expr}"))
}

/// `strconv.Atoi` with its error text.
fn go_atoi(s: &str) -> Result<i64, String> {
    let quoted = crate::field::go_quote(s);
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {quoted}: invalid syntax"));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {quoted}: value out of range"))
}

/// A Go duration (`time.ParseDuration`) in nanoseconds (saturating), with its error text.
fn go_duration(s: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {}", crate::field::go_quote(s));
    let negative = s.starts_with('-');
    let mut rest = s.strip_prefix(['+', '-']).unwrap_or(s);
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        rest = &rest[number_len..];
        let unit_len = rest
            .bytes()
            .take_while(|b| !b.is_ascii_digit() && *b != b'.')
            .count();
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(format!(
                "time: missing unit in duration {}",
                crate::field::go_quote(s)
            ));
        }
        let unit_nanos: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    crate::field::go_quote(unit),
                    crate::field::go_quote(s)
                ));
            }
        };
        rest = &rest[unit_len..];
        total = total.saturating_add(component_nanos(number, unit_nanos));
    }
    Ok(if negative { -total } else { total })
}

/// `<whole>.<fraction>` units of `unit` nanoseconds, as Go adds them up: the whole part exactly, the
/// fraction (its first 18 digits or so) through a float.
fn component_nanos(number: &str, unit: i128) -> i128 {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole = whole.bytes().fold(0i128, |v, b| {
        v.saturating_mul(10).saturating_add(i128::from(b - b'0'))
    });
    let (mut f, mut scale) = (0u64, 1f64);
    for b in fraction.bytes() {
        match f
            .checked_mul(10)
            .and_then(|f| f.checked_add(u64::from(b - b'0')))
        {
            Some(next) if next <= 1 << 63 => {
                f = next;
                scale *= 10.0;
            }
            _ => break,
        }
    }
    let fraction = (f as f64 * (unit as f64 / scale)) as i128;
    whole.saturating_mul(unit).saturating_add(fraction)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cron(spec: &str) -> Schedule {
        parse(spec, |_| Ok(())).unwrap().1
    }

    #[test]
    fn cron_fields_and_descriptors() {
        assert_eq!(
            cron("@every 0.3m"),
            Schedule::Every(Duration::from_secs(18))
        );
        assert_eq!(cron("@every 1.9s"), Schedule::Every(Duration::from_secs(1)));
        assert_eq!(cron("@every 0"), Schedule::Every(Duration::from_secs(1)));
        assert_eq!(cron("@every -5m"), Schedule::Every(Duration::from_secs(1)));
        let Schedule::Cron(f) = cron("0 0 * JAN,jul SUN") else {
            panic!()
        };
        assert_eq!((f.months, f.dow), (1 << 1 | 1 << 7, 1));
        assert_eq!(
            parse("CRON_TZ=Europe/Berlin 0 * * * *", |_| Ok(()))
                .unwrap()
                .0,
            Some("Europe/Berlin")
        );
        assert_eq!(
            parse("TZ=Nowhere 0 * * * *", |_| Err("no".into())).unwrap_err(),
            "provided bad location Nowhere: no"
        );
    }
}
