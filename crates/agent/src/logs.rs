//! Container logs as `kubectl logs` wants them, from the CRI-format files the shims write
//! (`<RFC 3339 time> <stdout|stderr> <F|P> <text>`): the current or previous run's file, `tailLines`,
//! `sinceSeconds`/`sinceTime`, `timestamps`, `limitBytes`, and following the file while the container runs.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The query of a log request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub since_seconds: Option<u64>,
    /// RFC 3339.
    pub since_time: Option<String>,
    pub limit_bytes: Option<usize>,
}

impl LogOptions {
    /// Reads `follow=true&tailLines=10&…` (unknown keys are ignored).
    pub fn from_query(query: &str) -> LogOptions {
        let mut options = LogOptions::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "follow" => options.follow = value == "true",
                "previous" => options.previous = value == "true",
                "timestamps" => options.timestamps = value == "true",
                "tailLines" => options.tail_lines = value.parse().ok(),
                "sinceSeconds" => options.since_seconds = value.parse().ok(),
                "sinceTime" => options.since_time = Some(value.into_owned()),
                "limitBytes" => options.limit_bytes = value.parse().ok(),
                _ => {}
            }
        }
        options
    }

    /// The query string that gives these options back.
    pub fn to_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, on) in [
            ("follow", self.follow),
            ("previous", self.previous),
            ("timestamps", self.timestamps),
        ] {
            if on {
                query.append_pair(key, "true");
            }
        }
        let numbers = [
            ("tailLines", self.tail_lines),
            ("limitBytes", self.limit_bytes),
        ];
        for (key, value) in numbers.into_iter().filter_map(|(k, v)| Some((k, v?))) {
            query.append_pair(key, &value.to_string());
        }
        if let Some(s) = self.since_seconds {
            query.append_pair("sinceSeconds", &s.to_string());
        }
        if let Some(t) = &self.since_time {
            query.append_pair("sinceTime", t);
        }
        query.finish()
    }
}

/// The log file of the container's latest run (`back` = 0) or of an earlier one, in `dir` (one file per run,
/// numbered from 0).
pub fn log_file(dir: &Path, back: usize) -> Option<PathBuf> {
    let mut runs: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_suffix(".log")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    runs.sort();
    runs.into_iter().rev().nth(back).map(|(_, path)| path)
}

/// Turns CRI lines into what the client sees. `text` holds whole lines only.
pub fn render(text: &str, options: &LogOptions, now: SystemTime) -> Vec<u8> {
    let since = options
        .since_time
        .as_deref()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(SystemTime::from)
        .or_else(|| options.since_seconds.map(|s| now - Duration::from_secs(s)));
    let mut lines: Vec<(&str, &str, bool)> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(4, ' ');
            let (at, _stream, tag) = (parts.next()?, parts.next()?, parts.next()?);
            let message = parts.next().unwrap_or("");
            Some((at, message, tag == "F"))
        })
        .filter(|(at, _, _)| match since {
            None => true,
            Some(since) => {
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .map(SystemTime::from)
                    .is_ok_and(|t| t >= since)
            }
        })
        .collect();
    if let Some(tail) = options.tail_lines {
        // Whole lines: a partial piece belongs to the full line that ends it.
        let mut full = 0;
        let mut start = lines.len();
        for (i, (_, _, complete)) in lines.iter().enumerate().rev() {
            if *complete {
                if full == tail {
                    break;
                }
                full += 1;
            }
            start = i;
        }
        lines.drain(..start);
    }
    let mut out = Vec::new();
    for (at, message, complete) in lines {
        if options.timestamps {
            out.extend_from_slice(at.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(message.as_bytes());
        if complete {
            out.push(b'\n');
        }
    }
    if let Some(limit) = options.limit_bytes {
        out.truncate(limit);
    }
    out
}

/// Reads `path` from `offset`: the complete lines there (as text) and the offset after them.
pub fn read_from(path: &Path, offset: u64) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(complete);
    Ok((
        String::from_utf8_lossy(&bytes).into_owned(),
        offset + complete as u64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-01-01T00:00:00.000000001Z stdout F one\n\
        2026-01-01T00:00:01.000000000Z stderr F two\n\
        2026-01-01T00:00:02.000000000Z stdout P thr\n\
        2026-01-01T00:00:02.500000000Z stdout F ee\n\
        2026-01-01T00:00:03.000000000Z stdout F four\n";

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + seconds)
    }

    #[test]
    fn renders_lines_tails_and_filters_by_time() {
        let all = render(LOG, &LogOptions::default(), at(10));
        assert_eq!(String::from_utf8(all).unwrap(), "one\ntwo\nthree\nfour\n");
        let tail = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(render(LOG, &tail, at(10))).unwrap(),
            "three\nfour\n"
        );
        let since = LogOptions {
            since_seconds: Some(8),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(render(LOG, &since, at(10))).unwrap(),
            "three\nfour\n"
        );
        let since = LogOptions {
            since_seconds: Some(7),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(render(LOG, &since, at(10))).unwrap(),
            "four\n"
        );
        let stamped = LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(render(LOG, &stamped, at(10))).unwrap(),
            "2026-01-01T00:00:03.000000000Z four\n"
        );
        let limited = LogOptions {
            limit_bytes: Some(5),
            ..Default::default()
        };
        assert_eq!(render(LOG, &limited, at(10)), b"one\nt");
    }

    #[test]
    fn queries_round_trip_and_files_are_picked_by_run() {
        let options = LogOptions::from_query(
            "follow=true&tailLines=5&sinceTime=2026-01-01T00%3A00%3A00Z&x=1",
        );
        assert!(options.follow);
        assert_eq!(options.tail_lines, Some(5));
        assert_eq!(options.since_time.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(LogOptions::from_query(&options.to_query()), options);
        let dir = tempfile::tempdir().unwrap();
        for n in [0, 1, 10] {
            std::fs::write(dir.path().join(format!("{n}.log")), "").unwrap();
        }
        assert_eq!(
            log_file(dir.path(), 0).unwrap().file_name().unwrap(),
            "10.log"
        );
        assert_eq!(
            log_file(dir.path(), 1).unwrap().file_name().unwrap(),
            "1.log"
        );
        std::fs::write(dir.path().join("10.log"), "a F x\nb F y\npartial").unwrap();
        let (text, offset) = read_from(&dir.path().join("10.log"), 0).unwrap();
        assert_eq!((text.as_str(), offset), ("a F x\nb F y\n", 12));
    }
}
