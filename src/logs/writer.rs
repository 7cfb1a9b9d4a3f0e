//! The fmt layer's writer: each event `tracing` formats goes to the [`Queue`] with its priority.
//! Must not: buffer or write itself (the queue's writer thread does).

use super::journal::Priority;
use super::queue::Queue;
use std::io;
use std::sync::Arc;
use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// The fmt layer's writer: hands each formatted event to the queue. tracing-subscriber writes
/// an event with one `write_all`, so a line is never split between batches.
pub struct QueueWriter(pub Arc<Queue>);

/// One event's writer; knows the event's priority (journald's, and whether it may wait for the
/// next batch).
pub struct LineWriter<'a> {
    queue: &'a Queue,
    prio: Priority,
}

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            queue: &self.0,
            prio: Priority::INFO,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            queue: &self.0,
            prio: Priority::of(meta.level()),
        }
    }
}

impl io::Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.queue.push(buf, self.prio);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
