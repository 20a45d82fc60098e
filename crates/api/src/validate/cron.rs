//! CronJob schedules as `cron.ParseStandard` (robfig/cron v3) reads them, for validation: the parsing is
//! [`crate::cron`]'s; here only the guess at which time zone names `time.LoadLocation` knows.

/// `cron.ParseStandard` wrapped in Kubernetes' panic recovery: `Ok` when the schedule parses.
pub(crate) fn parse_standard(spec: &str) -> Result<(), String> {
    crate::cron::parse(spec, |location| {
        if plausible_location(location) {
            Ok(())
        } else {
            Err(format!("unknown time zone {location}"))
        }
    })
    .map(|_| ())
}

/// A location name `time.LoadLocation` could know (the tz database itself is not consulted).
fn plausible_location(name: &str) -> bool {
    name.is_empty()
        || name == "UTC"
        || name == "Local"
        || name.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_schedules() {
        for good in [
            "* * * * *",
            "*/5 * * * *",
            "0 0 * * 0",
            "0 0 1 1 *",
            "15,45 9-17 * * mon-fri",
            "0 0 * JAN,jul SUN",
            "5/15 * * * *",
            "0 12 ? * *",
            "@hourly",
            "@daily",
            "@every 1h30m",
            "@every 90s",
            "TZ=UTC 0 * * * *",
            "CRON_TZ=Europe/Berlin 0 * * * *",
        ] {
            assert_eq!(parse_standard(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn errors_match_robfig_cron() {
        let cases = [
            ("", "empty spec string"),
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            (
                "not a cron",
                "expected exactly 5 fields, found 3: [not a cron]",
            ),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* 24 * * *", "end of range (24) above maximum (23): 24"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1): 5-1",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            ("*/1/2 * * * *", "too many slashes: */1/2"),
            (
                "x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                "* * * foo *",
                "failed to parse int from foo: strconv.Atoi: parsing \"foo\": invalid syntax",
            ),
            ("@sometimes", "unrecognized descriptor: @sometimes"),
            (
                "@every 1x",
                "failed to parse duration @every 1x: time: unknown unit \"x\" in duration \"1x\"",
            ),
            (
                "@every 5",
                "failed to parse duration @every 5: time: missing unit in duration \"5\"",
            ),
            (
                "TZ=UTC",
                "caught panic while parsing cron schedule: runtime error: slice bounds out of range [3:-1]",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_standard(spec), Err(want.to_owned()), "{spec}");
        }
    }
}
