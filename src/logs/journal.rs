//! journald's view of stderr: whether stderr is the journal, and the `<N>` priority prefix each
//! line needs there (sd-daemon(3)), so `journalctl -p warning -u suaicloudapp` finds the warnings
//! and errors. Without a prefix journald files every line at the unit's default level (info).
//!
//! The prefixes go on stderr's copy of a batch only, added by the writer thread: the log file
//! keeps plain lines, and a request pays for no more than one comparison when it queues its line.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::MetadataExt;
use tracing::Level;

/// A syslog priority as journald reads it from a line's `<N>` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority(u8);

impl Priority {
    /// `LOG_ERR`.
    pub const ERR: Priority = Priority(3);
    /// `LOG_WARNING`.
    pub const WARNING: Priority = Priority(4);
    /// `LOG_INFO`.
    pub const INFO: Priority = Priority(6);
    /// `LOG_DEBUG`, also for `trace`.
    pub const DEBUG: Priority = Priority(7);

    /// The priority of a `tracing` level.
    pub fn of(level: &Level) -> Priority {
        match *level {
            Level::ERROR => Priority::ERR,
            Level::WARN => Priority::WARNING,
            Level::INFO => Priority::INFO,
            _ => Priority::DEBUG,
        }
    }

    /// Warnings and errors are written at once, whatever the writer's rest.
    pub fn is_urgent(self) -> bool {
        self.0 <= Priority::WARNING.0
    }

    fn prefix(self) -> [u8; 3] {
        [b'<', b'0' + self.0, b'>']
    }
}

/// Where a stretch of queued bytes ends, and the priority of its lines. Consecutive lines of one
/// priority (a burst of access lines) share one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    end: usize,
    prio: Priority,
}

/// Records that the queued bytes up to `end` (the end of a line just queued) have `prio`.
pub fn mark(runs: &mut Vec<Run>, end: usize, prio: Priority) {
    match runs.last_mut() {
        Some(last) if last.prio == prio => last.end = end,
        _ => runs.push(Run { end, prio }),
    }
}

/// Appends `batch` to `out` with each line prefixed by its run's priority. Bytes past the last
/// run (none when every queued line was marked) count as info.
pub fn prefix(batch: &[u8], runs: &[Run], out: &mut Vec<u8>) {
    let mut start = 0;
    for run in runs {
        let end = run.end.min(batch.len());
        prefix_lines(&batch[start.min(end)..end], run.prio, out);
        start = end;
    }
    if start < batch.len() {
        prefix_lines(&batch[start..], Priority::INFO, out);
    }
}

/// Appends `lines` to `out`, each line prefixed with `prio`.
pub fn prefix_lines(lines: &[u8], prio: Priority, out: &mut Vec<u8>) {
    let tag = prio.prefix();
    let mut from = 0;
    for newline in memchr::memchr_iter(b'\n', lines) {
        out.extend_from_slice(&tag);
        out.extend_from_slice(&lines[from..=newline]);
        from = newline + 1;
    }
    if from < lines.len() {
        out.extend_from_slice(&tag);
        out.extend_from_slice(&lines[from..]);
    }
}

/// Whether stderr is connected to the journal: `JOURNAL_STREAM` (set by systemd for a unit whose
/// stderr is the journal) names the device and inode of stderr. A child that inherited the
/// variable but writes elsewhere (a shell redirect, a pipe) fails the comparison and writes plain
/// lines, as systemd.exec(5) recommends. Where `/proc` is missing (an empty chroot) the variable
/// alone decides.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let stderr = std::fs::metadata("/proc/self/fd/2").map(|m| (m.dev(), m.ino()));
    names_stderr(&value, stderr)
}

/// `JOURNAL_STREAM` is `DEVICE:INODE` in decimal; `stderr` is stderr's, when known.
fn names_stderr(value: &OsStr, stderr: io::Result<(u64, u64)>) -> bool {
    let parsed = value.to_str().and_then(|v| {
        let (dev, ino) = v.split_once(':')?;
        Some((dev.parse::<u64>().ok()?, ino.parse::<u64>().ok()?))
    });
    match (parsed, stderr) {
        (None, _) => false,
        (Some(named), Ok(actual)) => named == actual,
        (Some(_), Err(_)) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixed(batch: &[u8], runs: &[Run]) -> String {
        let mut out = Vec::new();
        prefix(batch, runs, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_line_gets_its_priority() {
        let mut runs = Vec::new();
        let mut batch = Vec::new();
        for (line, prio) in [
            ("a\n", Priority::INFO),
            ("b\n", Priority::INFO),
            ("w\n", Priority::WARNING),
            ("e1\ne2\n", Priority::ERR),
            ("d\n", Priority::DEBUG),
        ] {
            batch.extend_from_slice(line.as_bytes());
            mark(&mut runs, batch.len(), prio);
        }
        assert_eq!(runs.len(), 4, "{runs:?}");
        assert_eq!(
            prefixed(&batch, &runs),
            "<6>a\n<6>b\n<4>w\n<3>e1\n<3>e2\n<7>d\n"
        );
    }

    #[test]
    fn unmarked_bytes_are_info_and_a_last_line_without_newline_is_kept() {
        assert_eq!(prefixed(b"x\ny", &[]), "<6>x\n<6>y");
        assert_eq!(prefixed(b"", &[]), "");
    }

    #[test]
    fn levels_map_to_sd_daemon_priorities() {
        assert_eq!(Priority::of(&Level::ERROR), Priority::ERR);
        assert_eq!(Priority::of(&Level::WARN), Priority::WARNING);
        assert_eq!(Priority::of(&Level::INFO), Priority::INFO);
        assert_eq!(Priority::of(&Level::DEBUG), Priority::DEBUG);
        assert_eq!(Priority::of(&Level::TRACE), Priority::DEBUG);
        assert!(Priority::WARNING.is_urgent() && !Priority::INFO.is_urgent());
    }

    #[test]
    fn journal_stream_must_name_stderr() {
        let v = OsStr::new("64769:1234");
        assert!(names_stderr(v, Ok((64769, 1234))));
        assert!(!names_stderr(v, Ok((64769, 1235))));
        assert!(names_stderr(v, Err(io::ErrorKind::NotFound.into())));
        assert!(!names_stderr(OsStr::new("garbage"), Ok((1, 2))));
        assert!(!names_stderr(
            OsStr::new(""),
            Err(io::ErrorKind::NotFound.into())
        ));
    }
}
