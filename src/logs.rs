//! Logging set-up (file + stderr) and the bounded tail reader behind `/logs`.
//!
//! Both sinks are non-blocking: a slow disk or journald never stalls a request. The tail reader
//! reads backwards from the end in fixed chunks and stops at a byte cap, so a multi-gigabyte
//! log costs at most that cap in memory.

use crate::config::LogsConfig;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// The most bytes `/logs` will ever read or return, whatever `?lines` asks.
pub const MAX_TAIL_BYTES: u64 = 4 * 1024 * 1024;

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the log file {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("invalid [logs] level {level:?}: {cause}")]
    Level { level: String, cause: String },
}

/// The global subscriber's handles: where the file goes once opened and which filter applies.
///
/// Logging starts before the config is known (an S3 config may take retries to arrive, and
/// those must be logged), so the file and the level are attached afterwards. Dropping the
/// handle flushes both sinks.
pub struct LogHandle {
    file: FileSlot,
    filter: reload::Handle<EnvFilter, Registry>,
    /// The writer thread's guard: dropping it drains the queue and flushes.
    guard: Mutex<Option<WorkerGuard>>,
}

/// Lines the writer thread may hold queued before new ones are dropped. tracing-appender's
/// default (128,000) preallocates about 4 MB, a third of the idle footprint measured; 8,192
/// lines still absorb bursts far beyond what one core formats before the writer drains them.
const QUEUED_LINES: usize = 8192;

/// Buffer in front of each sink: under load the writer thread hands the kernel many lines
/// per write; it flushes whenever its queue runs dry, so an idle log is always current.
const SINK_BUFFER: usize = 64 * 1024;

/// The log file, once [`LogHandle::attach`] has opened it. Only the writer thread writes to
/// it; the lock is never contended.
#[derive(Clone, Default)]
struct FileSlot(Arc<OnceLock<Mutex<io::BufWriter<File>>>>);

/// What the writer thread writes each line to: stderr (journald) always, the file once it is
/// attached. One thread for both sinks, so a request hands its line over once and wakes at
/// most one thread (on one core, each hand-over and wake-up is a visible share of a
/// `/health` request; see bench/RESULTS.md).
struct Sinks {
    stderr: io::BufWriter<io::Stderr>,
    file: FileSlot,
}

impl Sinks {
    /// Runs `op` on both sinks; a full disk must not silence journald, nor the reverse.
    fn each(&mut self, op: impl Fn(&mut dyn io::Write) -> io::Result<()>) -> io::Result<()> {
        let stderr = op(&mut self.stderr);
        let file = match self.file.0.get() {
            Some(f) => op(&mut *f.lock().unwrap_or_else(PoisonError::into_inner)),
            None => Ok(()),
        };
        stderr.and(file)
    }
}

impl io::Write for Sinks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.each(|w| w.write_all(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.each(|w| w.flush())
    }
}

/// Installs the global subscriber: stderr (journald) now, the file once [`LogHandle::attach`]
/// is called. `RUST_LOG` wins over `[logs] level` when set. Each event is formatted once, on
/// the calling thread, and queued to the writer thread: requests never wait on a disk or on
/// journald.
pub fn init() -> LogHandle {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let initial = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(initial);
    let file = FileSlot::default();
    let sinks = Sinks {
        stderr: io::BufWriter::with_capacity(SINK_BUFFER, io::stderr()),
        file: file.clone(),
    };
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("log-writer")
        .finish(sinks);
    let layer = fmt::layer().with_ansi(false).with_writer(writer);
    // A second init in the same process (unit tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
    LogHandle {
        file,
        filter: handle,
        guard: Mutex::new(Some(guard)),
    }
}

impl LogHandle {
    /// Opens the log file and applies the level. The file can be attached once; a reload
    /// that names another file keeps the first (a restart moves it).
    pub fn attach(&self, cfg: &LogsConfig) -> Result<(), LogError> {
        self.set_level(&cfg.level)?;
        if self.file.0.get().is_some() {
            return Ok(());
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.file)
            .map_err(|source| LogError::Open {
                path: cfg.file.display().to_string(),
                source,
            })?;
        let _ = self
            .file
            .0
            .set(Mutex::new(io::BufWriter::with_capacity(SINK_BUFFER, file)));
        Ok(())
    }

    /// Applies `[logs] level` unless `RUST_LOG` is set.
    pub fn set_level(&self, level: &str) -> Result<(), LogError> {
        if std::env::var_os("RUST_LOG").is_some() {
            return Ok(());
        }
        let filter = EnvFilter::try_new(level).map_err(|e| LogError::Level {
            level: level.to_string(),
            cause: e.to_string(),
        })?;
        let _ = self.filter.reload(filter);
        Ok(())
    }

    /// Drains the queue, flushes both sinks and stops the writer (also done on drop). Lines
    /// logged after this are dropped: call it last.
    pub fn flush(&self) {
        self.guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// The last `lines` lines of the file at `path`, reading at most [`MAX_TAIL_BYTES`] from its end.
pub fn tail(path: &Path, lines: usize) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.seek(SeekFrom::End(0))?;
    let floor = len.saturating_sub(MAX_TAIL_BYTES);
    let mut pos = len;
    let mut buf: Vec<u8> = Vec::new();
    let mut newlines = 0;
    const CHUNK: u64 = 64 * 1024;
    // N whole lines need N + 1 newlines: the last one ends the file, the first precedes them.
    while pos > floor && newlines <= lines {
        let start = pos.saturating_sub(CHUNK).max(floor);
        let mut chunk = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        newlines += count_lines(&chunk);
        chunk.extend_from_slice(&buf);
        buf = chunk;
        pos = start;
    }
    let text = String::from_utf8_lossy(&buf);
    let body = text.strip_suffix('\n').unwrap_or(&text);
    let mut kept: Vec<&str> = body.rsplit('\n').take(lines).collect();
    // A line cut by the byte cap at the front is dropped rather than shown half.
    if pos > 0 && kept.len() == body.split('\n').count() && kept.len() > 1 {
        kept.pop();
    }
    kept.reverse();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

fn count_lines(buf: &[u8]) -> usize {
    buf.iter().filter(|&&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(lines: usize) -> tempfile_path::TempPath {
        let p = tempfile_path::TempPath::new();
        let mut f = File::create(&p.0).unwrap();
        for i in 0..lines {
            writeln!(f, "line {i}").unwrap();
        }
        p
    }

    /// A throwaway file under the target dir, removed on drop (no extra crate for one test).
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let n = N.fetch_add(1, Ordering::SeqCst);
                let p =
                    std::env::temp_dir().join(format!("suai-tail-{}-{n}.log", std::process::id()));
                TempPath(p)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn returns_the_last_lines_in_order() {
        let p = file_with(1000);
        assert_eq!(tail(&p.0, 3).unwrap(), "line 997\nline 998\nline 999\n");
    }

    #[test]
    fn short_file_returns_everything() {
        let p = file_with(2);
        assert_eq!(tail(&p.0, 200).unwrap(), "line 0\nline 1\n");
    }

    #[test]
    fn spans_chunk_boundaries() {
        let p = file_with(50_000);
        let t = tail(&p.0, 20_000).unwrap();
        assert_eq!(t.lines().count(), 20_000);
        assert!(t.starts_with("line 30000\n"));
        assert!(t.ends_with("line 49999\n"));
    }

    #[test]
    fn empty_file_is_empty() {
        let p = file_with(0);
        assert_eq!(tail(&p.0, 10).unwrap(), "");
    }
}
