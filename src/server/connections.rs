//! The open connections and the cap on them. At the cap, room is made by closing the
//! connection that has been idle on keep-alive the longest, as nginx reuses its "reusable"
//! connections; only when no connection is idle is the new one turned away (overflow.rs). Idle keep-alive connections must never lock out the load
//! balancer's health check.
//!
//! The table is locked once when a connection opens, once when it closes, and for a scan only
//! at the cap; never per request.

use super::head_deadline::Activity;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::AbortHandle;

/// One open connection: what the cap needs to judge and close it.
struct Entry {
    activity: Arc<Activity>,
    abort: AbortHandle,
    /// The connection's slot under the cap: released when the entry goes.
    _permit: OwnedSemaphorePermit,
}

/// Every open connection, keyed by a number never reused.
pub struct Connections {
    /// The cap: one permit per open connection.
    permits: Arc<Semaphore>,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next: u64,
    open: HashMap<u64, Entry>,
}

/// A slot for a new connection, taken at the cap from a closed idle one when needed.
pub struct Slot {
    permit: OwnedSemaphorePermit,
    /// True when an idle connection was closed to make room.
    pub reused: bool,
}

/// Removes the connection from the table when its task ends, however it ends (an abort drops
/// the task's future, and this guard with it).
pub struct Registration {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.lock().open.remove(&self.id);
    }
}

impl Connections {
    /// At most `cap` connections open at once.
    pub fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            permits: Arc::new(Semaphore::new(cap)),
            table: Mutex::new(Table::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A free slot, or the slot of the longest-idle connection, which is closed; `None` when
    /// no connection is idle.
    pub fn slot(&self) -> Option<Slot> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(Slot {
                permit,
                reused: false,
            }),
            Err(TryAcquireError::Closed) => None,
            Err(TryAcquireError::NoPermits) => self.evict_longest_idle().map(|permit| Slot {
                permit,
                reused: true,
            }),
        }
    }

    fn evict_longest_idle(&self) -> Option<OwnedSemaphorePermit> {
        let mut table = self.lock();
        loop {
            let (&id, _) = table
                .open
                .iter()
                .filter_map(|(id, e)| e.activity.reusable_since().map(|s| (id, s)))
                .min_by_key(|&(_, since)| since)?;
            let entry = table.open.remove(&id)?;
            // Lost a race with a request that just began: leave it be, try the next.
            if entry.activity.evict() {
                entry.abort.abort();
                return Some(entry._permit);
            }
            table.open.insert(id, entry);
        }
    }

    /// Starts a connection's task through `spawn` (which gets the guard to move into it) and
    /// records it. The table stays locked until the entry is in, so a task that ends at once
    /// still finds its entry to remove.
    pub fn open(
        self: &Arc<Self>,
        slot: Slot,
        activity: Arc<Activity>,
        spawn: impl FnOnce(Registration) -> AbortHandle,
    ) {
        let mut table = self.lock();
        let id = table.next;
        table.next += 1;
        let abort = spawn(Registration {
            connections: self.clone(),
            id,
        });
        table.open.insert(
            id,
            Entry {
                activity,
                abort,
                _permit: slot.permit,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_makes_room_and_busy_ones_never_do() {
        let c = Connections::new(2);
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        let mut acts = Vec::new();
        for i in 0..2u64 {
            let a = Arc::new(Activity::new(t0));
            a.bytes_read();
            a.request_started();
            a.request_answered(t0 + Duration::from_millis(10 * (2 - i)));
            let slot = c.slot().expect("under the cap");
            assert!(!slot.reused);
            c.open(slot, a.clone(), |reg| {
                let t = tokio::spawn(async move {
                    let _reg = reg;
                    std::future::pending::<()>().await
                });
                let h = t.abort_handle();
                tasks.push(t);
                h
            });
            acts.push(a);
        }
        // The second connection answered first: it has been idle longest.
        let slot = c.slot().expect("an idle connection makes room");
        assert!(slot.reused);
        let second = tasks.pop().unwrap();
        assert!(second.await.unwrap_err().is_cancelled());
        drop(slot);
        // Now only a busy connection is open beside the free slot; take the slot, then none.
        acts[0].request_started();
        let _held = c.slot().expect("the slot the evicted one freed");
        assert!(c.slot().is_none(), "a busy connection is never closed");
    }
}
