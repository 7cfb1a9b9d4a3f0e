//! The request-head deadline (the slowloris guard), kept per connection instead of per request.
//!
//! hyper's `header_read_timeout` boxes a fresh timer-wheel entry for every request head, registers
//! it while the connection waits, and deregisters and frees it once the head is parsed: at the
//! request rate of load-balancer health checks that bookkeeping was one of the largest costs of
//! a `/health` answer (bench/RESULTS.md, instructions per request). The bound is the same here:
//! a connection that is between requests (reading a head, or idle on keep-alive) for longer
//! than the timeout is closed. But the request path only stores two words; one sleeping
//! watchdog per connection, woken about once per timeout, does the rest.
//!
//! An answer that the client has not read within the timeout counts as between requests too:
//! the same guard then also ends slow readers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What the watchdog of one connection needs to know from its requests.
#[derive(Debug)]
pub struct Activity {
    /// A request is being answered: its time does not count.
    busy: AtomicBool,
    /// When the connection last became idle (accepted or answered), in µs since `epoch()`.
    idle_since_us: AtomicU64,
}

/// The zero of the stored times: they are atomics, so they cannot hold an `Instant`.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_micros() as u64
}

impl Activity {
    /// A connection accepted at `now`, waiting for its first request head.
    pub fn new(now: Instant) -> Activity {
        Activity {
            busy: AtomicBool::new(false),
            idle_since_us: AtomicU64::new(micros(now)),
        }
    }

    /// A request head has arrived and is being answered.
    pub fn request_started(&self) {
        self.busy.store(true, Ordering::Relaxed);
    }

    /// The answer is ready at `now`: the next head is due within the timeout.
    pub fn request_answered(&self, now: Instant) {
        self.idle_since_us.store(micros(now), Ordering::Relaxed);
        self.busy.store(false, Ordering::Relaxed);
    }

    /// When the connection expires if nothing happens, or `None` while a request is answered.
    fn deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.busy.load(Ordering::Relaxed) {
            return None;
        }
        let since = Duration::from_micros(self.idle_since_us.load(Ordering::Relaxed));
        Some(epoch() + since + timeout)
    }
}

/// Resolves once the connection has been between requests for longer than `timeout`; the
/// caller then ends it (server/mod.rs aborts the connection's task). Sleeps until the current deadline and checks again, so a
/// busy keep-alive connection costs one wake-up per timeout.
pub async fn expired(activity: &Activity, timeout: Duration) {
    loop {
        let now = Instant::now();
        match activity.deadline(timeout) {
            Some(deadline) if deadline <= now => return,
            Some(deadline) => tokio::time::sleep(deadline - now).await,
            None => tokio::time::sleep(timeout).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_runs_from_the_accept_then_from_each_answer() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        let timeout = Duration::from_secs(5);
        let d0 = a.deadline(timeout).unwrap();
        assert!(d0.duration_since(t0) <= timeout);
        assert!(d0.duration_since(t0) > timeout - Duration::from_millis(1));
        a.request_started();
        assert_eq!(
            a.deadline(timeout),
            None,
            "a request in progress never expires"
        );
        let t1 = t0 + Duration::from_secs(7);
        a.request_answered(t1);
        let d1 = a.deadline(timeout).unwrap();
        assert!(d1 > d0 + Duration::from_secs(6), "{d1:?} vs {d0:?}");
    }

    #[tokio::test]
    async fn an_idle_connection_expires_after_the_timeout_and_not_before() {
        let timeout = Duration::from_millis(200);
        let a = Activity::new(Instant::now());
        let started = Instant::now();
        expired(&a, timeout).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(199), "{waited:?}");
    }

    #[tokio::test]
    async fn an_answer_moves_the_deadline_and_a_request_in_progress_holds_it() {
        let timeout = Duration::from_millis(100);
        let a = Activity::new(Instant::now());
        a.request_started();
        let r = tokio::time::timeout(timeout * 4, expired(&a, timeout)).await;
        assert!(r.is_err(), "expired while a request was being answered");
        let answered = Instant::now();
        a.request_answered(answered);
        expired(&a, timeout).await;
        assert!(answered.elapsed() >= timeout - Duration::from_millis(1));
    }
}
