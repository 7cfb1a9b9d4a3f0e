//! The log file: appended to by the writer thread, rotated by size, reopened on SIGUSR1.
//!
//! Rotation is decided by a byte counter the writer keeps (its size at open plus what it wrote
//! since), never by a `stat` per write, and happens between lines, never inside one: each file
//! holds at most `[logs] max_bytes` unless a single line is longer. `output.log` becomes
//! `output.log.1`, `.1` becomes `.2`, and so on up to `[logs] keep`; the oldest is overwritten.
//! Hand-written rather than the `file-rotate` crate: that one cuts at write boundaries (a batch
//! here is up to 2 MiB, so a file would overshoot by that much) and brings chrono and flate2
//! into a binary downloaded at every boot.
//!
//! SIGUSR1 makes the writer reopen the path, for an external logrotate in `create` mode that
//! moved the file away. Only the writer thread (or [`super::sync`], holding the same order lock)
//! touches a [`LogFile`]; nothing here runs on a request's path.

use super::{LogError, LogHandle};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::signal::unix::Signal;

/// When to rotate and how many rotated files to keep (`[logs] max_bytes` and `keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A file is rotated before a line would take it past this; 0: never.
    pub max_bytes: u64,
    /// Rotated files kept: `.1` (newest) to `.keep`. 0: the file is emptied instead.
    pub keep: usize,
}

impl Limits {
    /// No rotation (until the config is attached; unit tests).
    pub const NONE: Limits = Limits {
        max_bytes: 0,
        keep: 0,
    };
}

/// `path` with `.n` appended: the `n`th rotated file (`output.log.1` is the newest).
pub fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The open log file and how many bytes it holds.
pub struct LogFile {
    path: PathBuf,
    file: File,
    /// Bytes in the file, as this process counts them.
    written: u64,
}

impl LogFile {
    /// Opens `path` for appending, creating it and its directory when missing.
    pub fn open(path: &Path) -> Result<LogFile, LogError> {
        let fail = |source: io::Error| LogError::Open {
            path: path.display().to_string(),
            source,
        };
        if path.file_name().is_none() {
            return Err(fail(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file name",
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(fail)?;
        }
        let (file, written) = open_append(path).map_err(fail)?;
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            written,
        })
    }

    /// Opens the path afresh (it was moved away by an external logrotate); on failure the old
    /// file stays in use.
    pub fn reopen(&mut self) -> Result<(), LogError> {
        let (file, written) = open_append(&self.path).map_err(|source| LogError::Reopen {
            path: self.path.display().to_string(),
            source,
        })?;
        self.file = file;
        self.written = written;
        Ok(())
    }

    /// Appends whole lines, rotating first whenever the next lines would not fit. Every line is
    /// written even when a rotation fails (the file is then emptied, so the bound holds); the
    /// error says so.
    pub fn write_lines(&mut self, mut lines: &[u8], limits: Limits) -> Result<(), LogError> {
        let mut outcome = Ok(());
        loop {
            let room = match limits.max_bytes {
                0 => u64::MAX,
                max => max.saturating_sub(self.written),
            };
            if lines.len() as u64 <= room {
                self.append(lines);
                return outcome;
            }
            // `room` < `lines.len()`, so it fits in a usize.
            let mut cut = memchr::memrchr(b'\n', &lines[..room as usize]).map_or(0, |i| i + 1);
            if cut == 0 && self.written == 0 {
                // One line longer than max_bytes: it gets a file of its own.
                cut = memchr::memchr(b'\n', lines).map_or(lines.len(), |i| i + 1);
            }
            self.append(&lines[..cut]);
            lines = &lines[cut..];
            if lines.is_empty() {
                return outcome;
            }
            if let Err(e) = self.rotate(limits.keep) {
                outcome = Err(e);
            }
        }
    }

    /// A failed write (a full disk) is not retried: the line is lost, as with any logger, and
    /// counted as written so a full disk never delays a rotation.
    fn append(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            let _ = self.file.write_all(bytes);
            self.written += bytes.len() as u64;
        }
    }

    /// Shifts the rotated files up by one and starts an empty current file. When that fails
    /// (a directory that refuses renames), the current file is emptied: older lines are lost
    /// rather than the disk filled.
    fn rotate(&mut self, keep: usize) -> Result<(), LogError> {
        let shifted = self.shift(keep);
        self.written = 0;
        shifted.map_err(|source| {
            let _ = self.file.set_len(0);
            LogError::Rotate {
                path: self.path.display().to_string(),
                source,
            }
        })
    }

    fn shift(&mut self, keep: usize) -> io::Result<()> {
        if keep == 0 {
            return self.file.set_len(0);
        }
        for n in (1..keep).rev() {
            match fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        fs::rename(&self.path, rotated(&self.path, 1))?;
        let (file, _) = open_append(&self.path)?;
        self.file = file;
        Ok(())
    }
}

/// The file opened for appending (created when missing) and its current size.
fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let len = file.metadata()?.len();
    Ok((file, len))
}

/// Reopens the log file on each SIGUSR1 (logrotate's `postrotate` sends it after moving the
/// file away in `create` mode). The signal must be registered before the service says it is
/// ready: SIGUSR1's default action ends the process.
pub async fn reopen_on_sigusr1(mut usr1: Signal, logs: Arc<LogHandle>) {
    while usr1.recv().await.is_some() {
        logs.reopen();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("suai-rotate-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_default()
    }

    fn lines(from: usize, to: usize) -> String {
        (from..to).map(|i| format!("line {i:04}\n")).collect()
    }

    #[test]
    fn rotates_between_lines_and_keeps_the_newest_files() {
        let d = dir("keep");
        let path = d.join("app.log");
        let mut f = LogFile::open(&path).unwrap();
        let limits = Limits {
            max_bytes: 100,
            keep: 2,
        };
        // Ten-byte lines, written in uneven batches.
        for (from, to) in [(0, 3), (3, 15), (15, 16), (16, 47)] {
            f.write_lines(lines(from, to).as_bytes(), limits).unwrap();
        }
        let newest = read(&path);
        let one = read(&rotated(&path, 1));
        let two = read(&rotated(&path, 2));
        assert!(!rotated(&path, 3).exists());
        for text in [&newest, &one, &two] {
            assert!(text.len() <= 100, "{text}");
            assert!(text.ends_with('\n'), "{text}");
        }
        assert_eq!(format!("{two}{one}{newest}"), lines(20, 47));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_line_longer_than_the_limit_gets_its_own_file() {
        let d = dir("long");
        let path = d.join("app.log");
        let mut f = LogFile::open(&path).unwrap();
        let limits = Limits {
            max_bytes: 10,
            keep: 3,
        };
        let long = format!("{}\n", "x".repeat(25));
        f.write_lines(format!("a\n{long}b\n").as_bytes(), limits)
            .unwrap();
        assert_eq!(read(&rotated(&path, 2)), "a\n");
        assert_eq!(read(&rotated(&path, 1)), long);
        assert_eq!(read(&path), "b\n");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_existing_file_counts_and_keep_zero_empties_it() {
        let d = dir("existing");
        let path = d.join("app.log");
        fs::write(&path, "old old old\n").unwrap();
        let mut f = LogFile::open(&path).unwrap();
        let limits = Limits {
            max_bytes: 16,
            keep: 0,
        };
        f.write_lines(b"new new\n", limits).unwrap();
        assert_eq!(read(&path), "new new\n");
        assert!(!rotated(&path, 1).exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn reopen_follows_a_file_moved_away() {
        let d = dir("reopen");
        let path = d.join("app.log");
        let mut f = LogFile::open(&path).unwrap();
        f.write_lines(b"before\n", Limits::NONE).unwrap();
        fs::rename(&path, d.join("moved.log")).unwrap();
        f.write_lines(b"still old\n", Limits::NONE).unwrap();
        f.reopen().unwrap();
        f.write_lines(b"after\n", Limits::NONE).unwrap();
        assert_eq!(read(&d.join("moved.log")), "before\nstill old\n");
        assert_eq!(read(&path), "after\n");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_rotation_empties_the_file_and_says_so() {
        let d = dir("fail");
        let path = d.join("app.log");
        let mut f = LogFile::open(&path).unwrap();
        // A directory where `.1` must go: the rename of the current file fails.
        fs::create_dir_all(rotated(&path, 1).join("blocker")).unwrap();
        let limits = Limits {
            max_bytes: 20,
            keep: 1,
        };
        let e = f
            .write_lines(lines(0, 3).as_bytes(), limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot rotate"), "{e}");
        assert_eq!(read(&path), lines(2, 3));
        fs::remove_dir_all(&d).unwrap();
    }
}
