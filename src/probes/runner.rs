//! Runs probes so that no page waits past its budget and no flood reaches a backend.
//!
//! Three guards, generic over every probe: a timeout over the whole check, single-flight
//! (concurrent callers share one in-flight check) and a short result cache. The check runs in
//! its own task, so a caller that goes away does not cancel it for the others.

use super::Probe;
use crate::metrics::Metrics;
use crate::outcome::{Failure, Outcome, Stage};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

type SharedOutcome = Shared<BoxFuture<'static, Outcome>>;

enum State {
    Idle,
    Running(SharedOutcome),
    Done(Outcome, Instant),
}

/// The guarded handle to one probe. Cheap to call from every request.
pub struct ProbeRunner {
    name: String,
    /// Where the probe goes, as its section says: every outcome names it.
    target: Arc<str>,
    /// The whole check's budget, from its section or `[probes] timeout_ms`.
    budget: Duration,
    probe: Arc<dyn Probe>,
    cache: Duration,
    state: Arc<Mutex<State>>,
    metrics: Arc<Metrics>,
}

impl ProbeRunner {
    /// Wraps a probe with its target, budget and cache window.
    pub fn new(
        name: String,
        target: String,
        budget: Duration,
        probe: Arc<dyn Probe>,
        cache: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        ProbeRunner {
            name,
            target: target.into(),
            budget,
            probe,
            cache,
            metrics,
            state: Arc::new(Mutex::new(State::Idle)),
        }
    }

    /// The page name (`database`, `redis`, `http/api`...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The budget every check runs under.
    pub fn timeout(&self) -> Duration {
        self.budget
    }

    /// A fresh cached outcome, the in-flight one, or a new check: at most one backend call
    /// per cache window however many callers arrive.
    pub async fn run(&self) -> Outcome {
        let shared = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match &*state {
                State::Done(outcome, at) if at.elapsed() < self.cache => return outcome.clone(),
                State::Running(shared) => shared.clone(),
                _ => {
                    let shared = self.start();
                    *state = State::Running(shared.clone());
                    shared
                }
            }
        };
        shared.await
    }

    /// Spawns one bounded check; it stores its own result so the cache fills even if every
    /// caller has gone.
    fn start(&self) -> SharedOutcome {
        let (name, probe, timeout) = (self.name.clone(), self.probe.clone(), self.budget);
        let state = self.state.clone();
        let metrics = self.metrics.clone();
        let target = self.target.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let checked_at = SystemTime::now();
            let result = match tokio::time::timeout(timeout, probe.check()).await {
                Ok(result) => result,
                Err(_) => Err(timeout_failure(&target, timeout)),
            };
            let outcome = Outcome {
                name,
                target: target.to_string(),
                result,
                duration: started.elapsed(),
                checked_at,
            };
            record(&state, &metrics, &outcome);
            outcome
        });
        let (name, target) = (self.name.clone(), self.target.clone());
        let (state, metrics) = (self.state.clone(), self.metrics.clone());
        async move {
            task.await.unwrap_or_else(|e| {
                // The task panicked before storing its outcome: store this one, or the page
                // would keep answering this failure after the window instead of checking again.
                let outcome = Outcome {
                    name: name.clone(),
                    target: target.to_string(),
                    result: Err(Failure::new(
                        Stage::Internal,
                        format!("the {name} probe stopped unexpectedly ({e}); see the log"),
                    )),
                    duration: Duration::ZERO,
                    checked_at: SystemTime::now(),
                };
                record(&state, &metrics, &outcome);
                outcome
            })
        }
        .boxed()
        .shared()
    }
}

/// Counts a finished check and caches its outcome for the window.
fn record(state: &Mutex<State>, metrics: &Metrics, outcome: &Outcome) {
    metrics.observe_probe(
        &outcome.name,
        outcome.is_ok(),
        outcome.duration,
        outcome.checked_at,
    );
    *state.lock().unwrap_or_else(|p| p.into_inner()) = State::Done(outcome.clone(), Instant::now());
}

fn timeout_failure(target: &str, budget: Duration) -> Failure {
    Failure::new(
        Stage::Timeout,
        format!(
            "no answer from {target} within {} ms: check security groups and network ACLs, or the server is hung",
            budget.as_millis()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Details;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: Arc<AtomicUsize>,
        delay: Duration,
    }

    impl Probe for Counting {
        fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let delay = self.delay;
            async move {
                tokio::time::sleep(delay).await;
                Ok(vec![])
            }
            .boxed()
        }
    }

    fn runner(delay_ms: u64, timeout_ms: u64, cache_ms: u64) -> (ProbeRunner, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let probe = Counting {
            calls: calls.clone(),
            delay: Duration::from_millis(delay_ms),
        };
        let r = ProbeRunner::new(
            "t".into(),
            "test:1".into(),
            Duration::from_millis(timeout_ms),
            Arc::new(probe),
            Duration::from_millis(cache_ms),
            Arc::new(Metrics::new()),
        );
        (r, calls)
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_check() {
        let (r, calls) = runner(100, 1000, 0);
        let outcomes = futures_util::future::join_all((0..50).map(|_| r.run())).await;
        assert!(outcomes.iter().all(Outcome::is_ok));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn result_is_cached_for_the_window_then_refreshed() {
        let (r, calls) = runner(1, 1000, 500);
        r.run().await;
        r.run().await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(600)).await;
        r.run().await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// Panics in its first check, answers in every later one.
    struct PanicsOnce(AtomicUsize);

    impl Probe for PanicsOnce {
        fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
            let first = self.0.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                assert!(!first, "a bug in a probe");
                Ok(vec![])
            }
            .boxed()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_check_fails_its_page_alone_and_the_next_window_checks_again() {
        let calls = Arc::new(PanicsOnce(AtomicUsize::new(0)));
        let r = ProbeRunner::new(
            "t".into(),
            "test:1".into(),
            Duration::from_secs(1),
            calls.clone(),
            Duration::from_millis(500),
            Arc::new(Metrics::new()),
        );
        let f = r.run().await.result.unwrap_err();
        assert_eq!(f.stage, Stage::Internal);
        assert!(
            f.cause.contains("the t probe stopped unexpectedly"),
            "{}",
            f.cause
        );
        // Cached like any failure for the window, not retried by every caller...
        assert_eq!(r.run().await.result.unwrap_err().stage, Stage::Internal);
        assert_eq!(calls.0.load(Ordering::SeqCst), 1);
        // ...and checked again after it.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(r.run().await.is_ok());
        assert_eq!(calls.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_check_times_out_with_the_target_named() {
        let (r, _) = runner(60_000, 200, 0);
        let o = r.run().await;
        let f = o.result.unwrap_err();
        assert_eq!(f.stage, Stage::Timeout);
        assert!(f.cause.contains("test:1 within 200 ms"), "{}", f.cause);
        assert!(o.duration < Duration::from_millis(300));
    }
}
