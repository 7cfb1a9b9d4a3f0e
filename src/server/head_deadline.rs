//! The two clocks of a connection, kept per connection instead of per request: the request-head
//! deadline (`header_timeout_ms`, the slowloris guard) and the keep-alive idle timeout
//! (`keepalive_timeout_ms`, longer than a load balancer's own idle timeout).
//!
//! hyper's `header_read_timeout` boxes a fresh timer-wheel entry for every request head, registers
//! it while the connection waits, and deregisters and frees it once the head is parsed: for a
//! `/health` answer that bookkeeping costs about as much as the answer. Here the request path
//! only stores a phase and a time; one sleeping watchdog per connection does the rest.
//!
//! A connection is in one of three phases. HEAD (accepted, or bytes of a head arriving) runs on
//! the head clock from the accept or from the first byte after an idle spell. BUSY (a request
//! being answered) runs no clock. IDLE (answered, waiting) runs on the keep-alive clock; the
//! watchdog then sleeps long and is woken when the next head starts, so a slow head after an
//! idle spell is still cut after `header_timeout_ms`. IDLE connections are the reusable ones
//! that the connection cap may close (connections.rs); a new connection is a client about to
//! send its first request, never closed to make room.
//!
//! An answer that the client has not read counts as IDLE: a slow reader is bounded by the
//! keep-alive clock.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const HEAD: u8 = 1;
const BUSY: u8 = 2;
const IDLE: u8 = 3;
/// Closed by the connection cap to make room; its task is being aborted.
const EVICTED: u8 = 4;

/// The two bounds, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the accept, or from the first byte of a head after an idle spell, to the full head.
    pub head: Duration,
    /// From an answer to the first byte of the next head.
    pub keepalive: Duration,
}

/// What the watchdog of one connection needs to know from its requests.
#[derive(Debug)]
pub struct Activity {
    phase: AtomicU8,
    /// When the current clock started, in µs since `epoch()`.
    since_us: AtomicU64,
    /// While the watchdog sleeps: a head starting before this time (µs since `epoch()`)
    /// would end before the deadline it sleeps on, so it must wake it. 0: nobody to wake.
    wake_if_head_before_us: AtomicU64,
    /// The same for an answer: its keep-alive clock may end before that deadline (a short
    /// `keepalive_timeout_ms` under a longer head deadline). 0 in the usual configuration.
    wake_if_answer_before_us: AtomicU64,
    wake: Notify,
}

/// The zero of the stored times: they are atomics, so they cannot hold an `Instant`.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_micros() as u64
}

fn instant(us: u64) -> Instant {
    epoch() + Duration::from_micros(us)
}

/// Which clock runs, and until when.
#[derive(Debug, PartialEq, Eq)]
enum Clock {
    Head(Instant),
    KeepAlive(Instant),
    Stopped,
}

impl Activity {
    /// A connection accepted at `now`, waiting for its first request head.
    pub fn new(now: Instant) -> Activity {
        Activity {
            phase: AtomicU8::new(HEAD),
            since_us: AtomicU64::new(micros(now)),
            wake_if_head_before_us: AtomicU64::new(0),
            wake_if_answer_before_us: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    /// Bytes arrived from the client. Only the first read after an idle spell does any work:
    /// it starts the head clock. The watchdog, asleep on the keep-alive clock, is not woken
    /// here: a head that arrives whole is answered before its clock could matter, and waking
    /// the watchdog for every request would cost a timer re-armed per request. A head still
    /// incomplete when the socket runs dry wakes it, in [`Activity::read_waiting`].
    pub fn bytes_read(&self) {
        if self.phase.load(Ordering::Relaxed) != IDLE {
            return;
        }
        let now = micros(Instant::now());
        self.since_us.store(now, Ordering::Relaxed);
        let _ = self
            .phase
            .compare_exchange(IDLE, HEAD, Ordering::SeqCst, Ordering::Relaxed);
    }

    /// The connection waits for more bytes. If a head has begun and the watchdog sleeps past
    /// its deadline (on the keep-alive clock), wake it so the head clock is kept.
    pub fn read_waiting(&self) {
        if self.phase.load(Ordering::Relaxed) != HEAD {
            return;
        }
        // Paired with the watchdog's store of the threshold then load of `phase`: the phase
        // became HEAD (SeqCst) before this load, so either this sees the threshold, or the
        // watchdog sees HEAD when it checks the clock again. Once woken, the watchdog sleeps
        // on this head's own deadline and the threshold no longer exceeds `since`.
        let since = self.since_us.load(Ordering::Relaxed);
        if since < self.wake_if_head_before_us.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    /// A request head has arrived and is being answered.
    pub fn request_started(&self) {
        self.phase.store(BUSY, Ordering::Relaxed);
    }

    /// The answer is ready at `now`: the keep-alive clock starts. The watchdog may be asleep
    /// on a deadline later than that clock's end (a short keep-alive under the head clock it
    /// saw at accept): then it is woken. With the defaults (75 s against 5 s) it never is.
    pub fn request_answered(&self, now: Instant) {
        let now = micros(now);
        self.since_us.store(now, Ordering::Relaxed);
        self.phase.store(IDLE, Ordering::SeqCst);
        if now < self.wake_if_answer_before_us.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    /// Since when the connection has been idle between requests, in µs of the module's epoch;
    /// `None` while it waits for its first request, reads a head or answers one.
    pub fn reusable_since(&self) -> Option<u64> {
        match self.phase.load(Ordering::Acquire) {
            IDLE => Some(self.since_us.load(Ordering::Relaxed)),
            _ => None,
        }
    }

    /// Marks an idle connection as closed by the cap; false when it has just started a request
    /// (then the caller picks another).
    pub fn evict(&self) -> bool {
        self.phase
            .compare_exchange(IDLE, EVICTED, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }

    fn clock(&self, t: Timeouts) -> Clock {
        let phase = self.phase.load(Ordering::SeqCst);
        let since = instant(self.since_us.load(Ordering::Relaxed));
        match phase {
            HEAD => Clock::Head(since + t.head),
            IDLE => Clock::KeepAlive(since + t.keepalive),
            _ => Clock::Stopped,
        }
    }
}

/// Resolves once the connection's current clock has run out; the caller then ends it
/// (server/mod.rs aborts the connection's task). A connection answering requests back to
/// back costs about one wake-up per head timeout; an idle one, one per keep-alive timeout.
/// Each sleep is on the deadline of the clock it saw; a phase change that would end sooner
/// than that deadline wakes it early.
pub async fn expired(activity: &Activity, t: Timeouts) {
    loop {
        let now = Instant::now();
        let clock = activity.clock(t);
        let deadline = match clock {
            Clock::Head(deadline) | Clock::KeepAlive(deadline) if deadline <= now => return,
            Clock::Head(deadline) | Clock::KeepAlive(deadline) => deadline,
            // A request in progress never expires; look again at the latest after a head
            // timeout, or at once when it is answered.
            Clock::Stopped => now + t.head,
        };
        // The thresholds are set before the clock is read again: a phase change in between
        // either shows in that read or finds its threshold and wakes this task (SeqCst on both
        // sides). A change that only moves the deadline later wakes nobody.
        let until = micros(deadline);
        let before = |d: Duration| until.saturating_sub(d.as_micros() as u64);
        activity
            .wake_if_head_before_us
            .store(before(t.head), Ordering::SeqCst);
        activity
            .wake_if_answer_before_us
            .store(before(t.keepalive), Ordering::SeqCst);
        if activity.clock(t) == clock {
            tokio::select! {
                () = tokio::time::sleep(deadline - now) => {}
                () = activity.wake.notified() => {}
            }
        }
        activity.wake_if_head_before_us.store(0, Ordering::Relaxed);
        activity
            .wake_if_answer_before_us
            .store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        head: Duration::from_millis(100),
        keepalive: Duration::from_millis(400),
    };

    /// The watchdog already asleep on the accept's head clock must still close an answered
    /// connection when a shorter keep-alive clock runs out.
    #[tokio::test]
    async fn a_short_keepalive_under_a_longer_head_clock_ends_first() {
        let t = Timeouts {
            head: Duration::from_millis(3000),
            keepalive: Duration::from_millis(100),
        };
        let a = std::sync::Arc::new(Activity::new(Instant::now()));
        let watchdog = tokio::spawn({
            let a = a.clone();
            async move { expired(&a, t).await }
        });
        // Single-threaded runtime: the watchdog runs until it sleeps on the head clock.
        tokio::task::yield_now().await;
        a.request_started();
        let answered = Instant::now();
        a.request_answered(answered);
        watchdog.await.unwrap();
        let waited = answered.elapsed();
        assert!(
            waited >= t.keepalive - Duration::from_millis(1)
                && waited < Duration::from_millis(2000),
            "{waited:?}"
        );
    }

    #[test]
    fn each_phase_runs_its_own_clock() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        let Clock::Head(d0) = a.clock(T) else {
            panic!("a fresh connection runs on the head clock")
        };
        assert!(d0.duration_since(t0) <= T.head);
        assert_eq!(
            a.reusable_since(),
            None,
            "a new connection is never closed for room"
        );
        a.bytes_read();
        assert_eq!(
            a.clock(T),
            Clock::Head(d0),
            "the first head keeps the accept's clock"
        );
        assert_eq!(a.reusable_since(), None);
        a.request_started();
        assert_eq!(
            a.clock(T),
            Clock::Stopped,
            "a request in progress never expires"
        );
        let t1 = t0 + Duration::from_secs(7);
        a.request_answered(t1);
        let Clock::KeepAlive(d1) = a.clock(T) else {
            panic!("an answered connection runs on the keep-alive clock")
        };
        assert!(d1 >= t1 + T.keepalive - Duration::from_millis(1), "{d1:?}");
        assert!(a.evict(), "an idle connection can be closed by the cap");
        assert!(!a.evict(), "only once");
    }

    #[tokio::test]
    async fn an_idle_connection_lives_the_keepalive_timeout() {
        let a = Activity::new(Instant::now());
        a.bytes_read();
        a.request_started();
        let answered = Instant::now();
        a.request_answered(answered);
        expired(&a, T).await;
        let waited = answered.elapsed();
        assert!(
            waited >= T.keepalive - Duration::from_millis(1),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn a_head_started_after_an_idle_spell_is_cut_at_the_head_timeout() {
        let a = std::sync::Arc::new(Activity::new(Instant::now()));
        a.request_started();
        a.request_answered(Instant::now());
        let watchdog = tokio::spawn({
            let a = a.clone();
            async move { expired(&a, T).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let head_started = Instant::now();
        a.bytes_read();
        // The head is incomplete and the socket has run dry.
        a.read_waiting();
        watchdog.await.unwrap();
        let waited = head_started.elapsed();
        assert!(waited >= T.head - Duration::from_millis(1), "{waited:?}");
        assert!(
            waited < T.keepalive - Duration::from_millis(100),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn a_request_in_progress_holds_the_clock() {
        let a = Activity::new(Instant::now());
        a.request_started();
        let r = tokio::time::timeout(T.keepalive * 2, expired(&a, T)).await;
        assert!(r.is_err(), "expired while a request was being answered");
    }
}
