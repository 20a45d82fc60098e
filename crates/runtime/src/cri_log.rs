//! Container log files in the CRI format kubelet reads: one line per output line,
//! `<RFC 3339 time, nanoseconds> <stdout|stderr> <F|P> <text>`. Lines longer than the line limit are cut into
//! `P` (partial) pieces ended by an `F` one. Files rotate by size: `0.log` is current, `0.log.1` the one
//! before, up to the number of files kept.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// containerd's default `max_container_log_line_size`.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The log file of one container, rotated by size.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    /// Rotate before a write would take the file past this; 0: never.
    max_size: u64,
    /// Files kept, the current one included (at least 1: then the file is truncated instead).
    max_files: usize,
    file: File,
    size: u64,
}

impl LogWriter {
    /// Opens `path` for appending (an agent restart continues the same file).
    pub fn open(path: &Path, max_size: u64, max_files: usize) -> io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = File::options().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            max_size,
            max_files: max_files.max(1),
            file,
            size,
        })
    }

    /// Writes one entry (`text` without its newline).
    pub fn write(
        &mut self,
        time: SystemTime,
        stream: Stream,
        partial: bool,
        text: &[u8],
    ) -> io::Result<()> {
        let mut entry = Vec::with_capacity(text.len() + 48);
        entry.extend_from_slice(format_time(time).as_bytes());
        entry.push(b' ');
        entry.extend_from_slice(stream.name().as_bytes());
        entry.extend_from_slice(if partial { b" P " } else { b" F " });
        entry.extend_from_slice(text);
        entry.push(b'\n');
        if self.max_size > 0 && self.size > 0 && self.size + entry.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&entry)?;
        self.size += entry.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.max_files > 1 {
            let _ = std::fs::remove_file(numbered(self.max_files - 1));
            for n in (1..self.max_files - 1).rev() {
                match std::fs::rename(numbered(n), numbered(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
            self.file = File::options().create(true).append(true).open(&self.path)?;
        } else {
            self.file.set_len(0)?;
        }
        self.size = 0;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Cuts a byte stream into log entries: full lines, and pieces of at most `max` bytes of longer ones.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max: max.max(1),
        }
    }

    /// Takes what was read and calls `emit(text, partial)` for each entry it completes.
    pub fn push<E>(
        &mut self,
        mut data: &[u8],
        emit: &mut impl FnMut(&[u8], bool) -> Result<(), E>,
    ) -> Result<(), E> {
        while !data.is_empty() {
            let room = self.max - self.buf.len();
            match data.iter().take(room).position(|b| *b == b'\n') {
                Some(i) => {
                    self.buf.extend_from_slice(&data[..i]);
                    emit(&self.buf, false)?;
                    self.buf.clear();
                    data = &data[i + 1..];
                }
                None if data.len() >= room => {
                    self.buf.extend_from_slice(&data[..room]);
                    data = &data[room..];
                    // A newline right after a full piece ends the line: the piece is its last.
                    let ends = data.first() == Some(&b'\n');
                    emit(&self.buf, !ends)?;
                    self.buf.clear();
                    if ends {
                        data = &data[1..];
                    }
                }
                None => {
                    self.buf.extend_from_slice(data);
                    data = &[];
                }
            }
        }
        Ok(())
    }

    /// At end of stream: what is left, unterminated, is a full entry (containerd's rule).
    pub fn finish<E>(
        &mut self,
        emit: &mut impl FnMut(&[u8], bool) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.buf.is_empty() {
            emit(&self.buf, false)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// One parsed log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: String,
    pub stream: Stream,
    pub partial: bool,
    pub text: String,
}

/// Parses one line of a CRI log file.
pub fn parse(line: &str) -> Option<Entry> {
    let mut parts = line.splitn(4, ' ');
    let time = parts.next()?.to_string();
    let stream = match parts.next()? {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        "P" => true,
        "F" => false,
        _ => return None,
    };
    Some(Entry {
        time,
        stream,
        partial,
        text: parts.next().unwrap_or("").to_string(),
    })
}

/// RFC 3339 in UTC with nanoseconds, always 9 digits (`2024-05-01T12:00:00.000000001Z`): what Go's
/// RFC3339Nano parser reads, and sortable as text.
pub fn format_time(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_nanos()
    )
}

/// (year, month, day) of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_709_210_096, 123_456_789); // a leap day
        assert_eq!(format_time(t), "2024-02-29T12:34:56.123456789Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(format_time(t), "2000-02-29T00:00:00.000000000Z");
    }

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut emit = |t: &[u8], p: bool| -> Result<(), ()> {
            out.push((String::from_utf8_lossy(t).into_owned(), p));
            Ok(())
        };
        let mut s = LineSplitter::new(max);
        for c in chunks {
            s.push(c, &mut emit).unwrap();
        }
        s.finish(&mut emit).unwrap();
        out
    }

    #[test]
    fn splits_lines() {
        let f = |s: &str| (s.to_string(), false);
        let p = |s: &str| (s.to_string(), true);
        assert_eq!(
            split(100, &[b"a\nb", b"c\n\nd"]),
            [f("a"), f("bc"), f(""), f("d")]
        );
        assert_eq!(
            split(4, &[b"abcdefghij\n"]),
            [p("abcd"), p("efgh"), f("ij")]
        );
        assert_eq!(split(4, &[b"abcd\nxy"]), [f("abcd"), f("xy")]);
        assert_eq!(split(4, &[b"ab", b"cd", b"ef\n"]), [p("abcd"), f("ef")]);
    }

    #[test]
    fn rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 200, 3).unwrap();
        for i in 0..40 {
            w.write(
                UNIX_EPOCH,
                Stream::Stdout,
                false,
                format!("line {i}").as_bytes(),
            )
            .unwrap();
        }
        w.flush().unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["0.log", "0.log.1", "0.log.2"]);
        for name in &names {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(text.len() <= 200, "{name}: {}", text.len());
        }
        let last = std::fs::read_to_string(&path).unwrap();
        let entry = parse(last.lines().last().unwrap()).unwrap();
        assert_eq!(
            entry,
            Entry {
                time: "1970-01-01T00:00:00.000000000Z".into(),
                stream: Stream::Stdout,
                partial: false,
                text: "line 39".into()
            }
        );
    }
}
