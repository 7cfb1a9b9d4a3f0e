//! Logging set-up (file + stderr) and the bounded tail reader behind `/logs`.
//!
//! Both sinks are written by one thread, in batches: a slow disk or journald never stalls a
//! request, and a busy server pays one write per batch rather than one wake-up per line. The
//! tail reader reads backwards from the end in fixed chunks and stops at a byte cap, so a
//! multi-gigabyte log costs at most that cap in memory.

use crate::config::LogsConfig;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::SystemTime;
use tracing::{Level, Metadata};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, Registry};

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
/// handle writes what is pending and stops the writer thread.
pub struct LogHandle {
    queue: Arc<Queue>,
    filter: reload::Handle<Targets, Registry>,
    writer: Mutex<Option<WriterThread>>,
}

/// The writer thread and how to learn that it has ended.
struct WriterThread {
    thread: JoinHandle<()>,
    /// Disconnects when the thread ends.
    exited: mpsc::Receiver<()>,
}

/// How long stopping waits for the writer to finish its last batch. A sink that does not drain
/// (a hung journald, a pipe nobody reads) must not keep the process from exiting; the same
/// bound tracing-appender's guard used.
const EXIT_WAIT: Duration = Duration::from_secs(1);

/// The queue behind the global subscriber, for [`sync`].
static GLOBAL: OnceLock<Arc<Queue>> = OnceLock::new();

/// Whether the global subscriber's filter lets access lines through: decided each time the
/// filter is set, so a request reads one flag instead of asking the subscriber (about 150
/// instructions per `/health` answer, callgrind).
static ACCESS_ON: AtomicBool = AtomicBool::new(false);

fn lets_access_lines_through(filter: &Targets) -> bool {
    filter.would_enable(ACCESS_TARGET, &Level::INFO)
}

/// Installs the global subscriber: stderr (journald) now, the file once [`LogHandle::attach`]
/// is called. `RUST_LOG` wins over `[logs] level` when set. Each event is formatted once, on
/// the calling thread, and appended to the queue: requests never wait on a disk or on
/// journald.
pub fn init() -> LogHandle {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let initial = filter(&spec).unwrap_or_else(|_| Targets::new().with_default(Level::INFO));
    let access_on = lets_access_lines_through(&initial);
    let (filter, handle) = reload::Layer::new(initial);
    let queue = Arc::new(Queue::new(true, REST));
    let layer = fmt::layer()
        .with_ansi(false)
        .with_timer(Clock)
        .with_writer(QueueWriter(queue.clone()));
    // A second init in the same process (unit tests) keeps the first subscriber and queue.
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .is_ok();
    if installed {
        ACCESS_ON.store(access_on, Ordering::Relaxed);
        let _ = GLOBAL.set(queue.clone());
    }
    let writer = queue.clone().spawn_writer();
    LogHandle {
        queue,
        filter: handle,
        writer: Mutex::new(writer),
    }
}

/// One request's access line.
pub struct Access<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub latency: Duration,
    /// The client's address, formatted once per connection.
    pub peer: &'a str,
}

/// The target access lines are logged under (and filtered by: `suaicloudapp::access=warn`
/// turns them off).
pub const ACCESS_TARGET: &str = "suaicloudapp::access";

thread_local! {
    /// Where this thread formats its access lines, reused.
    static ACCESS_LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Logs one access line at INFO, byte for byte what the fmt layer writes for
/// `info!(target: ACCESS_TARGET, method, path, status, latency_ms, peer, "request")`, but
/// formatted here and queued directly. The fmt layer's generic field visitor spent about
/// 6,000 instructions on this line (callgrind), nearly half of what hyper spends on a whole
/// `/health` answer; this costs a fraction of that. The level filter applies through
/// [`ACCESS_ON`].
pub fn access(a: &Access<'_>) {
    let Some(queue) = GLOBAL.get() else {
        // Another subscriber owns this process (unit tests): go through it.
        tracing::info!(
            target: ACCESS_TARGET,
            method = %a.method,
            path = %a.path,
            status = a.status,
            latency_ms = %Millis3(a.latency),
            peer = %a.peer,
            "request"
        );
        return;
    };
    if !ACCESS_ON.load(Ordering::Relaxed) {
        return;
    }
    ACCESS_LINE.with_borrow_mut(|line| {
        line.clear();
        format_access(line, a);
        queue.push(line, false);
    });
}

/// What follows the timestamp's fraction, up to the method: one copy instead of four.
/// `format!("Z  INFO {ACCESS_TARGET}: request method=")`; the unit test that compares lines
/// with the fmt layer's keeps the two in step.
const AFTER_FRACTION: &[u8] = b"Z  INFO suaicloudapp::access: request method=";

/// The line, in bytes: constant pieces are fixed-size copies the compiler writes inline, and
/// numbers are written digit by digit; with `String` pieces, each push was a call to musl's
/// `memcpy`, which for a few bytes costs more than the copy (callgrind).
fn format_access(line: &mut Vec<u8>, a: &Access<'_>) {
    push_timestamp(line);
    line.extend_from_slice(AFTER_FRACTION);
    // The method and the peer go in as they are: hyper only accepts a method made of token
    // characters, and the peer is a socket address this process formatted. Only the path
    // comes from the client as it was sent.
    line.extend_from_slice(a.method.as_bytes());
    line.extend_from_slice(b" path=");
    push_plain(line, a.path);
    line.extend_from_slice(b" status=");
    if (100..1000).contains(&a.status) {
        line.extend_from_slice(&digits::<3>(u32::from(a.status)));
    } else {
        line.extend_from_slice(itoa::Buffer::new().format(a.status).as_bytes());
    }
    line.extend_from_slice(b" latency_ms=");
    push_millis3(line, a.latency);
    line.extend_from_slice(b" peer=");
    line.extend_from_slice(a.peer.as_bytes());
    line.push(b'\n');
}

/// Milliseconds with three decimals (`0.014`), from integers: float formatting is the
/// costliest way to write a number.
fn push_millis3(line: &mut Vec<u8>, latency: Duration) {
    // From the seconds and the sub-second part: `as_micros` is a u128, and dividing one costs
    // a library call.
    let millis = latency.as_secs() * 1000 + u64::from(latency.subsec_millis());
    line.extend_from_slice(itoa::Buffer::new().format(millis).as_bytes());
    line.push(b'.');
    line.extend_from_slice(&digits::<3>(latency.subsec_micros() % 1000));
}

/// The last `N` decimal digits of `value`, with leading zeros (`7` → `007`). Divisions by the
/// constant 10 only (a multiplication each), and an array the caller copies at a fixed size.
fn digits<const N: usize>(mut value: u32) -> [u8; N] {
    let mut out = [b'0'; N];
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    out
}

/// [`push_millis3`] for the fmt layer (unit tests, the fallback).
struct Millis3(Duration);

impl std::fmt::Display for Millis3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = Vec::new();
        push_millis3(&mut text, self.0);
        f.write_str(std::str::from_utf8(&text).map_err(|_| std::fmt::Error)?)
    }
}

/// A field value as the fmt layer shows it: as is, with control characters escaped so a line
/// stays one line (the HTTP parser already refuses them in paths; this is the second guard).
fn push_plain(line: &mut Vec<u8>, value: &str) {
    if value.bytes().any(|b| b.is_ascii_control()) {
        line.extend_from_slice(value.escape_debug().to_string().as_bytes());
    } else {
        line.extend_from_slice(value.as_bytes());
    }
}

/// Opens (creating it and its directory if needed) the log file, appending. tracing-appender's
/// appender without rotation: logrotate's `copytruncate` or a restart handles the rest.
fn open_file(path: &Path) -> Result<RollingFileAppender, LogError> {
    let fail = |source: io::Error| LogError::Open {
        path: path.display().to_string(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        fail(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    RollingFileAppender::builder()
        .rotation(Rotation::NEVER)
        .filename_prefix(name.to_string_lossy())
        .build(dir)
        .map_err(|e| fail(io::Error::other(e)))
}

/// Writes every line logged so far to the sinks before returning, so a reader of the log
/// file (`/logs`) sees them. Blocking, for as long as a write under way takes: call it off the
/// async workers, with a time limit. While one call waits, others return at once, so a sink
/// that stopped draining holds one blocking thread, not one per request.
pub fn sync() {
    static WAITING: AtomicBool = AtomicBool::new(false);
    let Some(queue) = GLOBAL.get() else { return };
    if WAITING.swap(true, Ordering::AcqRel) {
        return;
    }
    queue.write_pending();
    WAITING.store(false, Ordering::Release);
}

/// `[logs] level` or `RUST_LOG` as a filter: a default level and `target=level` pairs
/// (`info,aws_config=debug,suaicloudapp::access=warn`). tracing-subscriber's `Targets`, not
/// `EnvFilter`: EnvFilter's span and field matching cost 0.19 MB of the release binary, for
/// filters an operator of this tool does not write.
fn filter(spec: &str) -> Result<Targets, LogError> {
    spec.parse::<Targets>().map_err(|e| LogError::Level {
        level: spec.to_string(),
        cause: e.to_string(),
    })
}

impl LogHandle {
    /// Whether this handle's subscriber is the process's (not so for a second `init` in tests).
    fn is_global(&self) -> bool {
        GLOBAL.get().is_some_and(|q| Arc::ptr_eq(q, &self.queue))
    }

    /// Opens the log file and applies the level. The file can be attached once; a reload
    /// that names another file keeps the first (a restart moves it).
    pub fn attach(&self, cfg: &LogsConfig) -> Result<(), LogError> {
        self.set_level(&cfg.level)?;
        if self.queue.file.get().is_some() {
            return Ok(());
        }
        let _ = self.queue.file.set(open_file(&cfg.file)?);
        Ok(())
    }

    /// Applies `[logs] level` unless `RUST_LOG` is set.
    pub fn set_level(&self, level: &str) -> Result<(), LogError> {
        if std::env::var_os("RUST_LOG").is_some() {
            return Ok(());
        }
        let filter = filter(level)?;
        let access_on = lets_access_lines_through(&filter);
        if self.filter.reload(filter).is_ok() && self.is_global() {
            ACCESS_ON.store(access_on, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes what is pending and stops the writer thread (also done on drop). Lines logged
    /// after this wait for a [`sync`] that will not come: call it last.
    pub fn flush(&self) {
        self.queue.stop();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(w) = writer {
            if let Err(RecvTimeoutError::Timeout) = w.exited.recv_timeout(EXIT_WAIT) {
                return; // stuck in a write: leave it behind
            }
            let _ = w.thread.join();
        }
        self.queue.try_write_pending();
    }
}

impl Drop for LogHandle {
    fn drop(&mut self) {
        self.flush();
    }
}

/// How long the writer thread rests after writing a batch. Lines logged meanwhile wait in
/// memory and go out together: under load one write (and one wake-up) per sink every rest
/// instead of one per request, which on one core was a third of a `/health` answer's cost
/// (bench/RESULTS.md). A quiet log is still written at once: a line that finds the writer
/// idle wakes it, and a warning or an error ends its rest.
const REST: Duration = Duration::from_millis(100);

/// Pending bytes that end a rest early (nginx's `access_log ... buffer=64k`). Without it, at
/// 190,000 requests/s on one core a rest gathered more than `MAX_PENDING` and a fifth of the
/// access lines were dropped (counted, but lost); written in pieces this size, none are, and
/// the queue's buffer stays in the CPU's cache.
const WAKE_AT: usize = 64 * 1024;

/// Bytes the queue holds at most (about 10,000 access lines); past it new lines are dropped
/// and counted rather than growing memory or making a request wait for the disk.
const MAX_PENDING: usize = 2 * 1024 * 1024;

/// Formatted lines on their way to stderr (journald) and the log file.
struct Queue {
    pending: Mutex<Pending>,
    /// Wakes the writer thread: a first line when it is idle, an urgent line or stop when it
    /// rests.
    wake: Condvar,
    /// Held while writing a batch, so the writer thread and [`sync`] keep lines in order.
    writing: Mutex<()>,
    /// Whether lines also go to stderr (off in unit tests).
    stderr: bool,
    /// [`REST`], except in unit tests.
    rest: Duration,
    file: OnceLock<RollingFileAppender>,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// The last batch's buffer, emptied, for the next one: under load a batch is hundreds of
    /// kB, and growing a fresh buffer to that size copied every line several times. At most
    /// `MAX_PENDING` (plus one line) is kept this way.
    spare: Vec<u8>,
    dropped: u64,
    urgent: bool,
    stop: bool,
    writer: WriterState,
}

/// What the writer thread is doing, so a new line wakes it only when that is needed.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum WriterState {
    /// Waiting for the first line.
    #[default]
    Idle,
    /// Letting lines gather after a write; only an urgent line or stop wakes it.
    Resting,
    /// Writing, or about to look at the queue again.
    Busy,
}

impl Queue {
    fn new(stderr: bool, rest: Duration) -> Queue {
        Queue {
            rest,
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            writing: Mutex::new(()),
            stderr,
            file: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one formatted line; never blocks on I/O.
    fn push(&self, line: &[u8], urgent: bool) {
        let mut p = self.lock();
        if p.lines.len() + line.len() > MAX_PENDING {
            // Counted; an idle writer is woken below so the count is reported.
            p.dropped += 1;
        } else {
            p.lines.extend_from_slice(line);
            p.urgent |= urgent;
        }
        let wake = match p.writer {
            WriterState::Idle => true,
            WriterState::Resting => urgent || p.lines.len() >= WAKE_AT,
            WriterState::Busy => false,
        };
        if wake {
            p.writer = WriterState::Busy;
            drop(p);
            self.wake.notify_one();
        }
    }

    /// Writes every pending line to the sinks, after any write already under way.
    fn write_pending(&self) {
        let order = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        self.write_batch(order);
    }

    /// As [`Queue::write_pending`], unless a write is under way (a sink that does not drain
    /// holds it forever): then nothing. For the last write at exit, which must not hang.
    fn try_write_pending(&self) {
        match self.writing.try_lock() {
            Ok(order) => self.write_batch(order),
            Err(TryLockError::Poisoned(p)) => self.write_batch(p.into_inner()),
            Err(TryLockError::WouldBlock) => {}
        }
    }

    /// Takes the pending lines and writes them, holding `_order` (the `writing` lock).
    fn write_batch(&self, _order: MutexGuard<'_, ()>) {
        let (mut batch, dropped) = {
            let mut p = self.lock();
            p.urgent = false;
            let spare = std::mem::take(&mut p.spare);
            (
                std::mem::replace(&mut p.lines, spare),
                std::mem::take(&mut p.dropped),
            )
        };
        if dropped > 0 {
            let note =
                format!("suaicloudapp: {dropped} log lines dropped (the log writer fell behind)\n");
            batch.extend_from_slice(note.as_bytes());
        }
        if batch.is_empty() {
            self.lock().spare = batch;
            return;
        }
        // A full disk must not silence journald, nor the reverse: each sink on its own. The
        // file first: `/logs` reads it, and a stderr pipe nobody drains blocks the write.
        if let Some(file) = self.file.get() {
            let _ = file.make_writer().write_all(&batch);
        }
        if self.stderr {
            let _ = io::stderr().lock().write_all(&batch);
        }
        batch.clear();
        self.lock().spare = batch;
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_one();
    }

    /// The writer thread, or `None` when the system refuses one: then lines are written by
    /// [`sync`] and at exit only.
    fn spawn_writer(self: Arc<Self>) -> Option<WriterThread> {
        let (done, exited) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                // Dropped when the loop ends, however it ends: `flush` waits for that.
                let _done = done;
                self.writer_loop();
            })
            .ok()?;
        Some(WriterThread { thread, exited })
    }

    fn writer_loop(&self) {
        loop {
            let mut p = self.lock();
            while p.lines.is_empty() && p.dropped == 0 && !p.stop {
                p.writer = WriterState::Idle;
                p = self.wake.wait(p).unwrap_or_else(PoisonError::into_inner);
            }
            p.writer = WriterState::Busy;
            let stop = p.stop;
            drop(p);
            self.write_pending();
            if stop {
                return;
            }
            let mut p = self.lock();
            if !p.urgent && !p.stop && p.lines.len() < WAKE_AT {
                p.writer = WriterState::Resting;
                p = self
                    .wake
                    .wait_timeout(p, self.rest)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            p.writer = WriterState::Busy;
        }
    }
}

/// RFC 3339 UTC timestamps with microseconds, the stock format (`2026-12-02T05:52:10.123456Z`).
/// The stock clock converts the date for every line, a tenth of what an access line cost in
/// the benchmark's profile; this one converts it once per second and thread and reuses it.
struct Clock;

thread_local! {
    /// The second last formatted on this thread, and its text up to the fraction's point
    /// included.
    static SECOND: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

impl FormatTime for Clock {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        // Other events are few (start, warnings): a short-lived buffer is fine for them.
        let mut stamp = Vec::with_capacity(27);
        push_timestamp(&mut stamp);
        stamp.push(b'Z');
        w.write_str(std::str::from_utf8(&stamp).map_err(|_| std::fmt::Error)?)
    }
}

/// Appends the current time in [`Clock`]'s format up to the fraction, without the closing
/// `Z` (the access line writes it with what follows). The access line calls it directly,
/// without the fmt layer's `Writer` and a UTF-8 check of the fraction.
fn push_timestamp(line: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != now.as_secs() {
            let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs());
            let mut stamp = humantime::format_rfc3339_seconds(whole).to_string();
            stamp.pop(); // the 'Z'; the fraction goes before it
            stamp.push('.');
            *text = stamp.into_bytes();
            *second = now.as_secs();
        }
        line.extend_from_slice(text);
    });
    line.extend_from_slice(&digits::<6>(now.subsec_micros()));
}

/// The fmt layer's writer: hands each formatted event to the queue. tracing-subscriber writes
/// an event with one `write_all`, so a line is never split between batches.
struct QueueWriter(Arc<Queue>);

/// One event's writer; knows whether the event may wait for the next batch.
struct LineWriter<'a> {
    queue: &'a Queue,
    urgent: bool,
}

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            queue: &self.0,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            queue: &self.0,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

impl io::Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.queue.push(buf, self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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

    /// Longer than any wait below: a line that arrives while the writer rests is written by
    /// something else (sync, urgency, stop) or not within the test.
    const LONG_REST: Duration = Duration::from_secs(600);

    /// A queue writing to a fresh file only (no stderr), with its writer thread running.
    fn queue_to_file() -> (Arc<Queue>, tempfile_path::TempPath, WriterThread) {
        let p = tempfile_path::TempPath::new();
        let queue = Arc::new(Queue::new(false, LONG_REST));
        assert!(queue.file.set(open_file(&p.0).unwrap()).is_ok());
        let writer = queue.clone().spawn_writer().unwrap();
        (queue, p, writer)
    }

    fn read(p: &tempfile_path::TempPath) -> String {
        std::fs::read_to_string(&p.0).unwrap_or_default()
    }

    /// Polls until the file holds `want` lines; the writer works on its own schedule.
    fn wait_for_lines(p: &tempfile_path::TempPath, want: usize) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = read(p);
            if text.lines().count() >= want || std::time::Instant::now() > deadline {
                return text;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_line_on_an_idle_queue_is_written_without_sync() {
        let (queue, p, _writer) = queue_to_file();
        queue.push(b"first\n", false);
        assert_eq!(wait_for_lines(&p, 1), "first\n");
    }

    #[test]
    fn lines_keep_their_order_across_batches_and_syncs() {
        let (queue, p, writer) = queue_to_file();
        for i in 0..5000 {
            queue.push(format!("line {i}\n").as_bytes(), false);
            if i % 1000 == 999 {
                queue.write_pending();
            }
        }
        queue.stop();
        writer.thread.join().unwrap();
        let want: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(read(&p), want);
    }

    #[test]
    fn sync_writes_lines_held_back_by_the_rest() {
        let (queue, p, _writer) = queue_to_file();
        queue.push(b"wakes the writer\n", false);
        wait_for_lines(&p, 1);
        // The writer now rests: this line waits in memory, unless synced.
        queue.push(b"held\n", false);
        assert_eq!(read(&p), "wakes the writer\n");
        queue.write_pending();
        assert_eq!(read(&p), "wakes the writer\nheld\n");
    }

    #[test]
    fn sixty_four_kilobytes_end_the_rest() {
        let (queue, p, _writer) = queue_to_file();
        queue.push(b"wakes the writer\n", false);
        wait_for_lines(&p, 1);
        let line = [vec![b'x'; 1023], vec![b'\n']].concat();
        let n = WAKE_AT / line.len();
        for _ in 0..n - 1 {
            queue.push(&line, false);
        }
        // Just below the mark: held back like any line during a rest.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(read(&p).lines().count(), 1);
        queue.push(&line, false);
        assert_eq!(wait_for_lines(&p, 1 + n).lines().count(), 1 + n);
    }

    #[test]
    fn a_warning_ends_the_rest() {
        let (queue, p, _writer) = queue_to_file();
        queue.push(b"wakes the writer\n", false);
        wait_for_lines(&p, 1);
        queue.push(b"warning\n", true);
        assert_eq!(wait_for_lines(&p, 2), "wakes the writer\nwarning\n");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_growing() {
        let queue = Queue::new(false, LONG_REST);
        let p = tempfile_path::TempPath::new();
        assert!(queue.file.set(open_file(&p.0).unwrap()).is_ok());
        let line = vec![b'x'; 1023];
        let fits = MAX_PENDING / 1024;
        for _ in 0..fits + 7 {
            queue.push(&[line.as_slice(), b"\n"].concat(), false);
        }
        assert!(queue.lock().lines.len() <= MAX_PENDING);
        queue.write_pending();
        let text = read(&p);
        assert_eq!(text.lines().filter(|l| l.starts_with('x')).count(), fits);
        assert!(
            text.ends_with("suaicloudapp: 7 log lines dropped (the log writer fell behind)\n"),
            "{}",
            &text[text.len() - 200..]
        );
    }

    #[test]
    fn stop_ends_the_rest_and_writes_what_is_pending() {
        let (queue, p, writer) = queue_to_file();
        queue.push(b"a\n", false);
        wait_for_lines(&p, 1);
        queue.push(b"b\n", false);
        let started = std::time::Instant::now();
        queue.stop();
        writer.thread.join().unwrap();
        assert!(
            started.elapsed() < LONG_REST / 10,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(read(&p), "a\nb\n");
    }

    #[test]
    fn a_missing_log_directory_is_created() {
        let dir = std::env::temp_dir().join(format!("suai-logdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested").join("app.log");
        let queue = Queue::new(false, LONG_REST);
        assert!(queue.file.set(open_file(&path).unwrap()).is_ok());
        queue.push(b"here\n", false);
        queue.write_pending();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "here\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The fast access line must stay byte-identical to what the fmt layer writes for the same
    /// event: scripts and the tests parse it.
    #[test]
    fn access_line_matches_the_fmt_layer() {
        use tracing_subscriber::fmt::MakeWriter;
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Buf {
            type Writer = Buf;
            fn make_writer(&'a self) -> Buf {
                self.clone()
            }
        }
        let cases = [
            (
                "GET",
                "/health",
                200,
                Duration::from_micros(14),
                "127.0.0.1:55196",
            ),
            (
                "HEAD",
                "/database",
                503,
                Duration::from_micros(3_000_123),
                "[::1]:8080",
            ),
            (
                "PATCH",
                "/a%20b",
                405,
                Duration::from_millis(12),
                "10.0.0.7:1",
            ),
            // Not an HTTP status (hyper's are 100-999), but the line must stay right.
            ("GET", "/", 1000, Duration::from_secs(86_400), "[::1]:1"),
        ];
        for (method, path, status, latency, peer) in cases {
            let buf = Buf::default();
            let subscriber = tracing_subscriber::registry().with(
                fmt::layer()
                    .with_ansi(false)
                    .with_timer(Clock)
                    .with_writer(buf.clone()),
            );
            tracing::subscriber::with_default(subscriber, || {
                tracing::info!(
                    target: ACCESS_TARGET,
                    method = %method,
                    path = %path,
                    status,
                    latency_ms = %Millis3(latency),
                    peer = %peer,
                    "request"
                );
            });
            let stock = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            let mut ours = Vec::new();
            let a = Access {
                method,
                path,
                status,
                latency,
                peer,
            };
            format_access(&mut ours, &a);
            let ours = String::from_utf8(ours).unwrap();
            // Timestamps are 27 bytes and read at different instants: compare the rest.
            assert_eq!(&ours[27..], &stock[27..], "{ours} vs {stock}");
        }
        let mut ours = Vec::new();
        let a = Access {
            method: "GET",
            path: "/x\n\u{1b}[31m",
            status: 404,
            latency: Duration::ZERO,
            peer: "127.0.0.1:1",
        };
        format_access(&mut ours, &a);
        let ours = String::from_utf8(ours).unwrap();
        assert_eq!(ours.lines().count(), 1, "{ours}");
        assert!(
            ours.contains("path=/x\\n\\u{1b}[31m latency") || ours.contains("path=/x\\n"),
            "{ours}"
        );
        assert!(!ours.contains('\u{1b}'), "{ours}");
    }

    #[test]
    fn level_filters_take_a_default_and_targets() {
        let f = filter("info").unwrap();
        assert!(f.would_enable("aws_config", &Level::INFO));
        assert!(!f.would_enable("aws_config", &Level::DEBUG));
        let f = filter("warn,aws_config=debug").unwrap();
        assert!(f.would_enable("aws_config::imds", &Level::DEBUG));
        assert!(!f.would_enable("suaicloudapp", &Level::INFO));
        // The README's way to turn access lines off and keep the rest.
        let f = filter("info,suaicloudapp::access=warn").unwrap();
        assert!(!f.would_enable(ACCESS_TARGET, &Level::INFO));
        assert!(f.would_enable("suaicloudapp::server", &Level::INFO));
        let e = filter("info,aws_config=loud").unwrap_err().to_string();
        assert!(e.contains("aws_config=loud"), "{e}");
    }

    #[test]
    fn digits_keep_their_leading_zeros() {
        assert_eq!(&digits::<6>(0), b"000000");
        assert_eq!(&digits::<6>(7), b"000007");
        assert_eq!(&digits::<6>(999_999), b"999999");
        assert_eq!(&digits::<3>(42), b"042");
        assert_eq!(&digits::<3>(503), b"503");
    }

    #[test]
    fn millis_have_three_decimals() {
        for (us, text) in [
            (0, "0.000"),
            (14, "0.014"),
            (1_500, "1.500"),
            (3_000_123, "3000.123"),
            (86_400_000_001, "86400000.001"),
        ] {
            assert_eq!(Millis3(Duration::from_micros(us)).to_string(), text);
        }
    }

    #[test]
    fn clock_writes_the_stock_rfc3339_format() {
        for _ in 0..3 {
            let mut ours = String::new();
            let mut stock = String::new();
            Clock.format_time(&mut Writer::new(&mut ours)).unwrap();
            fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut stock))
                .unwrap();
            // Same shape: 2026-12-02T05:52:10.123456Z
            assert_eq!(ours.len(), 27, "{ours}");
            assert_eq!(ours.len(), stock.len(), "{ours} vs {stock}");
            assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
            // Same instant to within a second (the two clocks read the time apart): the
            // whole-second parts agree unless a second boundary fell between the two reads.
            let parse = |t: &str| humantime::parse_rfc3339(t).unwrap();
            let apart = parse(&stock)
                .duration_since(parse(&ours))
                .unwrap_or_default();
            assert!(apart < Duration::from_secs(1), "{ours} vs {stock}");
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
