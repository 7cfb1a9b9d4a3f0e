//! Logging: where every line goes (the log file and stderr, which is journald under systemd) and
//! `/logs`' reader of the file.
//!
//! Both sinks are written by one thread, in batches: a slow disk or journald never stalls a
//! request, and a busy server pays one write per batch rather than one wake-up per line. The
//! pieces, one concern each:
//! - `queue`: the queue and its writer thread (batching, order, the stderr sink); `writer`:
//!   how `tracing`'s events enter it;
//! - `access`: the access line (the request path's one log call) and the timestamp clock;
//! - `journal`: journald priorities (`<N>` prefixes) when stderr is the journal;
//! - `rotate`: the file, rotated by size and reopened on SIGUSR1;
//! - `tail`: the bounded reader behind `/logs`.
//!
//! This module ties them together: the global subscriber, the handle the serve lifecycle uses
//! (attach the file, apply the level, reopen, flush) and [`sync`].

mod access;
mod journal;
mod queue;
mod rotate;
mod tail;
mod writer;

pub use access::{access, Access, ACCESS_TARGET};
pub use rotate::{reopen_on_sigusr1, rotated};
pub use tail::{tail, TailBody, TailSlot, MAX_TAILS, MAX_TAIL_BYTES};

use crate::config::LogsConfig;
use queue::{Queue, Stderr, WriterThread, REST};
use rotate::{Limits, LogFile};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, Registry};
use writer::QueueWriter;

/// Why logging could not start, or what went wrong with the file since (said on stderr).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the log file {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("invalid [logs] level {level:?}: {cause}")]
    Level { level: String, cause: String },
    #[error("cannot reopen the log file {path} (SIGUSR1): {source}; still writing to the file open before")]
    Reopen { path: String, source: io::Error },
    #[error("cannot rotate the log file {path}: {source}; emptied it instead, to stay within [logs] max_bytes")]
    Rotate { path: String, source: io::Error },
}

/// A free place for one more `/logs` answer, or `None` when [`MAX_TAILS`] are being read or
/// sent already.
pub fn try_reserve_tail() -> Option<TailSlot> {
    tail::try_reserve()
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

/// How long stopping waits for the writer to finish its last batch. A sink that does not drain
/// (a hung journald, a pipe nobody reads) must not keep the process from exiting; the same
/// bound tracing-appender's guard used.
const EXIT_WAIT: Duration = Duration::from_secs(1);

/// The queue behind the global subscriber, for [`sync`] and the access line.
static GLOBAL: OnceLock<Arc<Queue>> = OnceLock::new();

/// Whether the global subscriber's filter lets access lines through: decided each time the
/// filter is set, so a request reads one flag instead of asking the subscriber's filter.
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
    let stderr = if journal::stderr_is_journal() {
        Stderr::Journal
    } else {
        Stderr::Plain
    };
    let queue = Arc::new(Queue::new(stderr, REST));
    let layer = fmt::layer()
        .with_ansi(false)
        .with_timer(access::Clock)
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

    /// Applies `[logs]`: the level, the rotation limits and, the first time, the file. A reload
    /// that names another file keeps the first (a restart moves it); new limits apply from the
    /// next write on.
    pub fn attach(&self, cfg: &LogsConfig) -> Result<(), LogError> {
        self.set_level(&cfg.level)?;
        self.queue.set_limits(Limits {
            max_bytes: cfg.max_bytes,
            keep: cfg.keep,
        });
        if !self.queue.has_file() {
            self.queue.set_file(LogFile::open(&cfg.file)?);
        }
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

    /// Reopens the log file's path before the next write (an external logrotate moved the file
    /// away). The line saying so is the first one in the new file.
    pub fn reopen(&self) {
        self.queue.reopen();
        tracing::info!("SIGUSR1: reopening the log file");
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
