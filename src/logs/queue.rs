//! The queue between the threads that log and the one thread that writes: a line is formatted
//! by whoever logs it and appended here; the writer thread writes the lines out in batches, to
//! the log file and to stderr (journald).
//!
//! Owns batching (the rest between writes, the early wake-up, the drop-and-count cap), the order
//! between the writer thread and [`super::sync`], stderr's journald prefixes and, through
//! [`LogFile`], rotation. Must not: make a caller wait for I/O ([`Queue::push`] takes one short
//! lock), or let a slow sink hold up the other one for longer than its own write.

use super::journal::{self, Priority, Run};
use super::rotate::{Limits, LogFile};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer thread rests after writing a batch. Lines logged meanwhile wait in
/// memory and go out together: under load one write (and one wake-up) per sink every rest
/// instead of one per request, which would cost more than the answer itself. A quiet log is
/// still written at once: a line that finds the writer idle wakes it, and a warning or an
/// error ends its rest.
pub const REST: Duration = Duration::from_millis(100);

/// Pending bytes that end a rest early (nginx's `access_log ... buffer=64k`): at a high request
/// rate a whole rest could gather more than `MAX_PENDING` and drop lines; written in pieces
/// this size, none are, and the queue's buffer stays in the CPU's cache.
const WAKE_AT: usize = 64 * 1024;

/// Bytes the queue holds at most (about 10,000 access lines); past it new lines are dropped
/// and counted rather than growing memory or making a request wait for the disk.
const MAX_PENDING: usize = 2 * 1024 * 1024;

/// Where stderr's copy of the lines goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// Nowhere (unit tests).
    #[cfg(test)]
    Off,
    /// Plain lines, as in the file.
    Plain,
    /// The journal: each line with its `<N>` priority.
    Journal,
}

/// The writer thread and how to learn that it has ended.
pub struct WriterThread {
    pub thread: JoinHandle<()>,
    /// Disconnects when the thread ends.
    pub exited: mpsc::Receiver<()>,
}

/// Formatted lines on their way to stderr (journald) and the log file.
pub struct Queue {
    pending: Mutex<Pending>,
    /// Wakes the writer thread: a first line when it is idle, an urgent line or stop when it
    /// rests.
    wake: Condvar,
    /// Held while writing a batch, so the writer thread and [`super::sync`] keep lines in
    /// order; holds stderr's prefixed copy of a batch (journald), reused.
    writing: Mutex<Vec<u8>>,
    stderr: Stderr,
    /// [`REST`], except in unit tests.
    rest: Duration,
    /// Set once, when the config names the file (before that, lines go to stderr only). The
    /// lock is only ever taken by the holder of `writing`.
    file: OnceLock<Mutex<LogFile>>,
    /// `[logs] max_bytes` and `keep`, read at each batch, so a reload applies them.
    max_bytes: AtomicU64,
    keep: AtomicUsize,
    /// Set by SIGUSR1: the next batch opens the file's path afresh before writing.
    reopen: AtomicBool,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// The priority of each stretch of `lines`; kept only when stderr is the journal.
    levels: Vec<Run>,
    /// The last batch's buffers, emptied, for the next one: under load a batch is hundreds of
    /// kB, and growing a fresh buffer to that size copied every line several times. At most
    /// `MAX_PENDING` (plus one line) is kept this way.
    spare: Vec<u8>,
    spare_levels: Vec<Run>,
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
    pub fn new(stderr: Stderr, rest: Duration) -> Queue {
        Queue {
            rest,
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            writing: Mutex::new(Vec::new()),
            stderr,
            file: OnceLock::new(),
            max_bytes: AtomicU64::new(Limits::NONE.max_bytes),
            keep: AtomicUsize::new(Limits::NONE.keep),
            reopen: AtomicBool::new(false),
        }
    }

    /// Whether a file is attached already.
    pub fn has_file(&self) -> bool {
        self.file.get().is_some()
    }

    /// Attaches the log file; the first one stays.
    pub fn set_file(&self, file: LogFile) {
        let _ = self.file.set(Mutex::new(file));
    }

    /// Applies `[logs] max_bytes` and `keep` from the next batch on.
    pub fn set_limits(&self, limits: Limits) {
        self.max_bytes.store(limits.max_bytes, Ordering::Relaxed);
        self.keep.store(limits.keep, Ordering::Relaxed);
    }

    /// Makes the next batch reopen the file's path first.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one formatted line (or one event's lines); never blocks on I/O.
    pub fn push(&self, line: &[u8], prio: Priority) {
        let mut p = self.lock();
        if p.lines.len() + line.len() > MAX_PENDING {
            // Counted; an idle writer is woken below so the count is reported.
            p.dropped += 1;
        } else {
            p.lines.extend_from_slice(line);
            if self.stderr == Stderr::Journal {
                let end = p.lines.len();
                journal::mark(&mut p.levels, end, prio);
            }
            p.urgent |= prio.is_urgent();
        }
        let wake = match p.writer {
            WriterState::Idle => true,
            WriterState::Resting => p.urgent || p.lines.len() >= WAKE_AT,
            WriterState::Busy => false,
        };
        if wake {
            p.writer = WriterState::Busy;
            drop(p);
            self.wake.notify_one();
        }
    }

    /// Writes every pending line to the sinks, after any write already under way.
    pub fn write_pending(&self) {
        let order = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        self.write_batch(order);
    }

    /// As [`Queue::write_pending`], unless a write is under way (a sink that does not drain
    /// holds it forever): then nothing. For the last write at exit, which must not hang.
    pub fn try_write_pending(&self) {
        match self.writing.try_lock() {
            Ok(order) => self.write_batch(order),
            Err(TryLockError::Poisoned(p)) => self.write_batch(p.into_inner()),
            Err(TryLockError::WouldBlock) => {}
        }
    }

    /// Takes the pending lines and writes them, holding `writing` (the order lock).
    fn write_batch(&self, mut writing: MutexGuard<'_, Vec<u8>>) {
        let (mut batch, mut levels, dropped) = {
            let mut p = self.lock();
            p.urgent = false;
            let spare = std::mem::take(&mut p.spare);
            let spare_levels = std::mem::take(&mut p.spare_levels);
            (
                std::mem::replace(&mut p.lines, spare),
                std::mem::replace(&mut p.levels, spare_levels),
                std::mem::take(&mut p.dropped),
            )
        };
        if dropped > 0 {
            let note =
                format!("suaicloudapp: {dropped} log lines dropped (the log writer fell behind)\n");
            batch.extend_from_slice(note.as_bytes());
            journal::mark(&mut levels, batch.len(), Priority::WARNING);
        }
        if !batch.is_empty() {
            // A full disk must not silence journald, nor the reverse: each sink on its own. The
            // file first: `/logs` reads it, and a stderr pipe nobody drains blocks the write.
            let trouble = self.write_file(&batch).err();
            self.write_stderr(&batch, &levels, trouble, &mut writing);
        }
        batch.clear();
        levels.clear();
        let mut p = self.lock();
        p.spare = batch;
        p.spare_levels = levels;
    }

    fn write_file(&self, batch: &[u8]) -> Result<(), super::LogError> {
        let Some(file) = self.file.get() else {
            return Ok(());
        };
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        let reopened = if self.reopen.swap(false, Ordering::AcqRel) {
            file.reopen()
        } else {
            Ok(())
        };
        let limits = Limits {
            max_bytes: self.max_bytes.load(Ordering::Relaxed),
            keep: self.keep.load(Ordering::Relaxed),
        };
        let written = file.write_lines(batch, limits);
        reopened.and(written)
    }

    /// `trouble`: what went wrong with the file, said on stderr only (the file is what failed).
    fn write_stderr(
        &self,
        batch: &[u8],
        levels: &[Run],
        trouble: Option<super::LogError>,
        prefixed: &mut Vec<u8>,
    ) {
        let trouble = trouble.map(|e| format!("suaicloudapp: {e}\n"));
        let mut err = io::stderr().lock();
        match self.stderr {
            #[cfg(test)]
            Stderr::Off => {}
            Stderr::Plain => {
                let _ = err.write_all(batch);
                if let Some(t) = trouble {
                    let _ = err.write_all(t.as_bytes());
                }
            }
            Stderr::Journal => {
                prefixed.clear();
                journal::prefix(batch, levels, prefixed);
                if let Some(t) = trouble {
                    journal::prefix_lines(t.as_bytes(), Priority::ERR, prefixed);
                }
                let _ = err.write_all(prefixed);
                // One batch can be megabytes: what is kept for the next one stays small.
                if prefixed.capacity() > 2 * WAKE_AT {
                    *prefixed = Vec::new();
                }
            }
        }
    }

    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_one();
    }

    /// The writer thread, or `None` when the system refuses one: then lines are written by
    /// [`super::sync`] and at exit only.
    pub fn spawn_writer(self: Arc<Self>) -> Option<WriterThread> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway file in the temp dir, removed on drop (no extra crate for a few tests).
    struct TempPath(std::path::PathBuf);

    impl TempPath {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::SeqCst);
            let p = std::env::temp_dir().join(format!("suai-queue-{}-{n}.log", std::process::id()));
            TempPath(p)
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A queue writing to `path` only (no stderr), without a writer thread.
    fn queue_at(path: &std::path::Path, rest: Duration) -> Queue {
        let queue = Queue::new(Stderr::Off, rest);
        queue.set_file(LogFile::open(path).unwrap());
        queue
    }

    /// Longer than any wait below: a line that arrives while the writer rests is written by
    /// something else (sync, urgency, stop) or not within the test.
    const LONG_REST: Duration = Duration::from_secs(600);

    /// A queue writing to a fresh file only (no stderr), with its writer thread running.
    fn queue_to_file() -> (Arc<Queue>, TempPath, WriterThread) {
        let p = TempPath::new();
        let queue = Arc::new(queue_at(&p.0, LONG_REST));
        let writer = queue.clone().spawn_writer().unwrap();
        (queue, p, writer)
    }

    fn read(p: &TempPath) -> String {
        std::fs::read_to_string(&p.0).unwrap_or_default()
    }

    /// Polls until the file holds `want` lines; the writer works on its own schedule.
    fn wait_for_lines(p: &TempPath, want: usize) -> String {
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
        queue.push(b"first\n", Priority::INFO);
        assert_eq!(wait_for_lines(&p, 1), "first\n");
    }

    #[test]
    fn lines_keep_their_order_across_batches_and_syncs() {
        let (queue, p, writer) = queue_to_file();
        for i in 0..5000 {
            queue.push(format!("line {i}\n").as_bytes(), Priority::INFO);
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
        queue.push(b"wakes the writer\n", Priority::INFO);
        wait_for_lines(&p, 1);
        // The writer now rests: this line waits in memory, unless synced.
        queue.push(b"held\n", Priority::INFO);
        assert_eq!(read(&p), "wakes the writer\n");
        queue.write_pending();
        assert_eq!(read(&p), "wakes the writer\nheld\n");
    }

    #[test]
    fn sixty_four_kilobytes_end_the_rest() {
        let (queue, p, _writer) = queue_to_file();
        queue.push(b"wakes the writer\n", Priority::INFO);
        wait_for_lines(&p, 1);
        let line = [vec![b'x'; 1023], vec![b'\n']].concat();
        let n = WAKE_AT / line.len();
        for _ in 0..n - 1 {
            queue.push(&line, Priority::INFO);
        }
        // Just below the mark: held back like any line during a rest.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(read(&p).lines().count(), 1);
        queue.push(&line, Priority::INFO);
        assert_eq!(wait_for_lines(&p, 1 + n).lines().count(), 1 + n);
    }

    #[test]
    fn a_warning_ends_the_rest() {
        let (queue, p, _writer) = queue_to_file();
        queue.push(b"wakes the writer\n", Priority::INFO);
        wait_for_lines(&p, 1);
        queue.push(b"warning\n", Priority::WARNING);
        assert_eq!(wait_for_lines(&p, 2), "wakes the writer\nwarning\n");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_growing() {
        let p = TempPath::new();
        let queue = queue_at(&p.0, LONG_REST);
        let line = vec![b'x'; 1023];
        let fits = MAX_PENDING / 1024;
        for _ in 0..fits + 7 {
            queue.push(&[line.as_slice(), b"\n"].concat(), Priority::INFO);
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
        queue.push(b"a\n", Priority::INFO);
        wait_for_lines(&p, 1);
        queue.push(b"b\n", Priority::INFO);
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
        let queue = queue_at(&path, LONG_REST);
        queue.push(b"here\n", Priority::INFO);
        queue.write_pending();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "here\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
