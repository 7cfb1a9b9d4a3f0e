//! `/logs`' reader: the last N lines of the log, across the current file and its rotated copies,
//! within a byte cap; and the cap on how many of these answers exist at once.
//!
//! Memory per answer is one 64 KiB scan buffer plus the answer itself (at most
//! [`MAX_TAIL_BYTES`]): a first pass reads backwards, chunk by chunk into the same buffer, only
//! to find where the wanted lines start; a second pass reads that range once, forwards, into the
//! answer. At most [`MAX_TAILS`] answers are read or sent at a time: each holds a [`TailSlot`]
//! until its body is dropped. Must not: run on an async worker (it reads files), or read past the
//! cap whatever `lines` asks.

use super::rotate::rotated;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The most bytes `/logs` will ever read or return, whatever `?lines` asks.
pub const MAX_TAIL_BYTES: u64 = 4 * 1024 * 1024;

/// How many `/logs` answers may be read or sent at once; more are refused (503), so a burst of
/// requests costs at most this many times [`MAX_TAIL_BYTES`] in memory.
pub const MAX_TAILS: usize = 2;

/// Bytes read per step of the backwards scan.
const CHUNK: u64 = 64 * 1024;

static SLOTS: Semaphore = Semaphore::const_new(MAX_TAILS);

/// One of the [`MAX_TAILS`] places, held from the read until the answer's body is dropped (sent,
/// or abandoned by the client).
pub struct TailSlot {
    _permit: SemaphorePermit<'static>,
}

/// A free place for one more `/logs` answer, or `None` when all are taken.
pub fn try_reserve() -> Option<TailSlot> {
    SLOTS
        .try_acquire()
        .ok()
        .map(|permit| TailSlot { _permit: permit })
}

/// A tail's text that keeps its [`TailSlot`] for as long as the response body lives
/// (`Bytes::from_owner`).
pub struct TailBody {
    text: String,
    _slot: TailSlot,
}

impl TailBody {
    /// Ties `text` to `slot`.
    pub fn new(text: String, slot: TailSlot) -> TailBody {
        TailBody { text, _slot: slot }
    }
}

impl AsRef<[u8]> for TailBody {
    fn as_ref(&self) -> &[u8] {
        self.text.as_bytes()
    }
}

/// The last `lines` lines of the log at `path`, reading `path`, then `path.1` ... `path.keep`
/// while more are wanted, at most [`MAX_TAIL_BYTES`] in all. A line cut by the byte cap at the
/// front is left out rather than shown in part (unless it is the only one).
pub fn tail(path: &Path, keep: usize, lines: usize) -> io::Result<String> {
    let sources = open_newest_first(path, keep)?;
    if lines == 0 || sources.is_empty() {
        return Ok(String::new());
    }
    let start = find_start(&sources, lines)?;
    let mut text = read_from(&sources, start)?;
    if text.last().is_some_and(|&b| b != b'\n') {
        text.push(b'\n');
    }
    Ok(String::from_utf8(text)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// An open log file and its length when opened: what is appended later is not read, so the two
/// passes see the same bytes.
struct Source {
    file: File,
    len: u64,
}

/// Opens the current file and the rotated ones, newest first. A rotation may run meanwhile and
/// rename a file already opened to the next name: the same file (device and inode) seen twice is
/// read once, so no line appears twice and none is skipped between files.
fn open_newest_first(path: &Path, keep: usize) -> io::Result<Vec<Source>> {
    let mut sources: Vec<Source> = Vec::new();
    let mut seen = Vec::new();
    let mut missing = None;
    for n in 0..=keep {
        let name = if n == 0 {
            path.to_path_buf()
        } else {
            rotated(path, n)
        };
        let file = match File::open(&name) {
            Ok(f) => f,
            // The current file can be missing for a moment (moved away by logrotate).
            Err(e) if e.kind() == io::ErrorKind::NotFound && n == 0 => {
                missing = Some(e);
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let id = (meta.dev(), meta.ino());
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        sources.push(Source {
            file,
            len: meta.len(),
        });
    }
    match missing {
        Some(e) if sources.is_empty() => Err(e),
        _ => Ok(sources),
    }
}

/// Where the tail starts: a source (an index into the newest-first list) and an offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    source: usize,
    offset: u64,
}

/// Scans backwards for the newline before the first wanted line, reusing one buffer.
fn find_start(sources: &[Source], lines: usize) -> io::Result<Place> {
    let mut buf = vec![0u8; CHUNK as usize];
    let mut budget = MAX_TAIL_BYTES;
    let mut newlines = 0;
    // The newline that ends the log is not between two lines.
    let mut at_end = true;
    // Just after the earliest newline found so far: where a tail cut by the cap starts.
    let mut after_earliest = None;
    let mut oldest = Place {
        source: 0,
        offset: 0,
    };
    for (i, src) in sources.iter().enumerate() {
        oldest = Place {
            source: i,
            offset: 0,
        };
        let mut pos = src.len;
        while pos > 0 {
            if budget == 0 {
                return Ok(after_earliest.unwrap_or(Place {
                    source: i,
                    offset: pos,
                }));
            }
            let n = CHUNK.min(pos).min(budget);
            let start = pos - n;
            let chunk = &mut buf[..n as usize];
            read_exact_at(&src.file, chunk, start)?;
            budget -= n;
            let mut scan: &[u8] = chunk;
            if std::mem::take(&mut at_end) && scan.last() == Some(&b'\n') {
                scan = &scan[..scan.len() - 1];
            }
            for at in memchr::memrchr_iter(b'\n', scan) {
                let after = Place {
                    source: i,
                    offset: start + at as u64 + 1,
                };
                newlines += 1;
                if newlines == lines {
                    return Ok(after);
                }
                after_earliest = Some(after);
            }
            pos = start;
        }
    }
    Ok(oldest)
}

/// `read_exact_at`, except that a file cut shorter meanwhile (emptied by a failed rotation)
/// reads as zeros instead of failing the page.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let got = read_at_most(file, buf, offset)?;
    buf[got..].fill(0);
    Ok(())
}

/// Reads into `buf` from `offset` until it is full or the file ends; returns the bytes read.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Everything from `start` to the end of the newest file, oldest first, in one buffer sized
/// once.
fn read_from(sources: &[Source], start: Place) -> io::Result<Vec<u8>> {
    let ranges = || {
        (0..=start.source).rev().map(|i| {
            let from = if i == start.source { start.offset } else { 0 };
            (&sources[i], from)
        })
    };
    let total: u64 = ranges().map(|(s, from)| s.len.saturating_sub(from)).sum();
    let mut out = vec![0u8; total as usize];
    let mut filled = 0;
    for (src, from) in ranges() {
        let want = src.len.saturating_sub(from) as usize;
        filled += read_at_most(&src.file, &mut out[filled..filled + want], from)?;
    }
    out.truncate(filled);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("suai-tail-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write_lines(path: &Path, from: usize, to: usize) {
        let mut f = File::create(path).unwrap();
        for i in from..to {
            writeln!(f, "line {i}").unwrap();
        }
    }

    fn file_with(name: &str, lines: usize) -> PathBuf {
        let p = dir(name).join("app.log");
        write_lines(&p, 0, lines);
        p
    }

    #[test]
    fn returns_the_last_lines_in_order() {
        let p = file_with("order", 1000);
        assert_eq!(tail(&p, 0, 3).unwrap(), "line 997\nline 998\nline 999\n");
    }

    #[test]
    fn short_file_returns_everything() {
        let p = file_with("short", 2);
        assert_eq!(tail(&p, 3, 200).unwrap(), "line 0\nline 1\n");
    }

    #[test]
    fn spans_chunk_boundaries() {
        let p = file_with("chunks", 50_000);
        let t = tail(&p, 0, 20_000).unwrap();
        assert_eq!(t.lines().count(), 20_000);
        assert!(t.starts_with("line 30000\n"));
        assert!(t.ends_with("line 49999\n"));
    }

    #[test]
    fn empty_file_is_empty() {
        let p = file_with("empty", 0);
        assert_eq!(tail(&p, 3, 10).unwrap(), "");
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let p = dir("missing").join("app.log");
        assert_eq!(tail(&p, 3, 10).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn reads_across_rotated_files_when_the_current_one_is_short() {
        let p = dir("rotated").join("app.log");
        write_lines(&rotated(&p, 3), 0, 10); // beyond keep = 2: never read
        write_lines(&rotated(&p, 2), 10, 20);
        write_lines(&rotated(&p, 1), 20, 30);
        write_lines(&p, 30, 33);
        let want = |from: usize| -> String { (from..33).map(|i| format!("line {i}\n")).collect() };
        assert_eq!(tail(&p, 2, 2).unwrap(), want(31));
        assert_eq!(tail(&p, 2, 3).unwrap(), want(30));
        assert_eq!(tail(&p, 2, 4).unwrap(), want(29));
        assert_eq!(tail(&p, 2, 15).unwrap(), want(18));
        assert_eq!(tail(&p, 2, 100).unwrap(), want(10));
        // An empty current file (just rotated): the newest lines are in `.1`.
        write_lines(&p, 0, 0);
        assert_eq!(tail(&p, 2, 2).unwrap(), "line 28\nline 29\n");
    }

    #[test]
    fn a_file_seen_under_two_names_is_read_once() {
        let d = dir("hardlink");
        let p = d.join("app.log");
        write_lines(&p, 0, 3);
        // What a rotation between two opens looks like: `.1` is the file already opened.
        std::fs::hard_link(&p, rotated(&p, 1)).unwrap();
        assert_eq!(tail(&p, 3, 10).unwrap(), "line 0\nline 1\nline 2\n");
    }

    #[test]
    fn the_byte_cap_holds_and_drops_a_cut_line() {
        let p = dir("cap").join("app.log");
        let line = format!("{}\n", "x".repeat(999));
        let mut f = File::create(&p).unwrap();
        for i in 0..5000 {
            write!(f, "{i:05}{}", &line[5..]).unwrap();
        }
        drop(f);
        let t = tail(&p, 0, 5000).unwrap();
        assert!(t.len() as u64 <= MAX_TAIL_BYTES, "{}", t.len());
        let got: Vec<&str> = t.lines().collect();
        assert_eq!(got.len() as u64, MAX_TAIL_BYTES / 1000);
        assert!(got.iter().all(|l| l.len() == 999));
        assert!(got.last().unwrap().starts_with("04999"));
    }

    #[test]
    fn at_most_two_slots_and_a_dropped_body_frees_its_slot() {
        let mut held: Vec<TailSlot> = std::iter::from_fn(try_reserve).take(10).collect();
        assert_eq!(held.len(), MAX_TAILS);
        let body = TailBody::new("x".into(), held.pop().unwrap());
        assert!(try_reserve().is_none());
        drop(body);
        let again = try_reserve();
        assert!(again.is_some());
        assert!(try_reserve().is_none());
    }
}
