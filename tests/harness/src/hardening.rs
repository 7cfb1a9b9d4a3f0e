//! Scaffolding shared by the hardening tests (tests/hardening_*.rs): the probe budget, the
//! config sections they combine, the one-at-a-time guard, and the one way a fault is measured
//! and judged. Every figure a test hands to [`super::load::record`] is something this run
//! observed; expectations are asserted, and published only in columns named as expectations.

use super::load::{keepalive, ms, record, Run};
use super::{env_var, eventually, send_raw, App};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The probe budget every hardening config sets (`[probes] timeout_ms`).
pub const BUDGET: Duration = Duration::from_millis(1000);

/// Slack allowed past a probe's budget for scheduling and the HTTP round trip.
pub const SLACK: Duration = Duration::from_millis(500);

static SERIAL: Mutex<()> = Mutex::new(());

/// These tests measure latency on a 2-core machine: one at a time, or they measure each other.
/// The guard covers the tests of one binary; `cargo test` runs the binaries one after another.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// `[probes]` with the hardening budget and a 200 ms cache.
pub fn probes_section() -> String {
    format!(
        "[probes]\ntimeout_ms = {}\ncache_ms = 200\n",
        BUDGET.as_millis()
    )
}

/// `[database]` for a MariaDB on 127.0.0.1.
pub fn mysql_section(port: u16, user: &str, password: &str, db: &str) -> String {
    format!("[database]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\npassword = \"{password}\"\ndbname = \"{db}\"\n")
}

/// `[database]` for the shared test MariaDB.
pub fn shared_mysql() -> String {
    mysql_section(
        env_var("SUAI_TEST_MYSQL_PORT").parse().unwrap(),
        "probe",
        &env_var("SUAI_TEST_MYSQL_PASSWORD"),
        "suai",
    )
}

/// `[redis]` for a Redis on 127.0.0.1.
pub fn redis_section(port: u16) -> String {
    format!("[redis]\nhost = \"127.0.0.1\"\nport = {port}\n")
}

/// `[redis]` for the shared test Redis.
pub fn shared_redis() -> String {
    redis_section(env_var("SUAI_TEST_REDIS_PORT").parse().unwrap())
}

/// GET /health over keep-alive for `d` (at most 50,000 requests).
pub fn health_for(a: &App, d: Duration) -> Run {
    let deadline = Instant::now() + d;
    let mut run = Run::default();
    while Instant::now() < deadline && run.latencies.len() < 50_000 {
        run.absorb(keepalive(a.addr, "/health", 100));
    }
    run
}

/// What one fault did to the app while it lasted.
pub struct FaultRun {
    pub page: Run,
    /// `X-Probe-Stage` of the sampled failing answers, with how often each was seen.
    pub stages: BTreeMap<String, usize>,
    pub health: Run,
    pub other: Run,
    /// How long the page took to answer OK again once healed; `None` when never healed.
    pub recovered: Option<Duration>,
}

/// Requests `page` over keep-alive until `stop`, every tenth request on its own connection
/// so its `X-Probe-Stage` header is read (at most 20 s).
fn hammer(
    addr: SocketAddr,
    page: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Run, BTreeMap<String, usize>)> {
    std::thread::spawn(move || {
        let mut run = Run::default();
        let mut stages = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            n += 1;
            if n % 10 != 1 {
                run.absorb(keepalive(addr, &page, 1));
                continue;
            }
            let raw = format!("GET {page} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let r = send_raw(addr, raw.as_bytes());
            if r.status != 200 {
                let stage = r.header("x-probe-stage").unwrap_or("(none)").to_string();
                *stages.entry(stage).or_insert(0) += 1;
            }
            run.latencies.push(r.elapsed);
            run.statuses.push(r.status);
        }
        (run, stages)
    })
}

/// "timeout (57)" or "connect (55), query (1)": every stage seen, most frequent first.
fn stages_text(stages: &BTreeMap<String, usize>) -> String {
    let mut v: Vec<_> = stages.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1));
    v.iter()
        .map(|(s, n)| format!("{s} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Measures the app while a fault is in place: hammers `page` while /health is measured for
/// 2.5 s, then asks `other` (a healthy page) 20 times. Not healed: `recovered` is `None`.
pub fn under_fault(a: &App, page: &str, other: &str) -> FaultRun {
    let stop = Arc::new(AtomicBool::new(false));
    let hammering = hammer(a.addr, page.to_string(), stop.clone());
    let health = health_for(a, Duration::from_millis(2500));
    let other = keepalive(a.addr, other, 20);
    stop.store(true, Ordering::SeqCst);
    let (page, stages) = hammering.join().unwrap();
    FaultRun {
        page,
        stages,
        health,
        other,
        recovered: None,
    }
}

/// Waits (30 s at most) for `page` to answer OK again after a heal; returns how long it took.
fn recovery(a: &App, page: &str) -> Duration {
    let healed = Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || a.get(page).status == 200),
        "{page} did not recover: {}\n{}",
        a.get(page).body,
        a.stderr()
            .lines()
            .rev()
            .filter(|l| !l.contains("access"))
            .take(15)
            .collect::<Vec<_>>()
            .join("\n")
    );
    healed.elapsed()
}

/// Asserts what an operator must see during a fault (the page reports it at the expected
/// stage within budget, /health and the other page unaffected) and records what was seen.
pub fn judge(backend: &str, kind: &str, baseline: &Run, r: &FaultRun, stage: &str) {
    let worst = r.page.quantile(1.0);
    let dominant = r
        .stages
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(s, _)| s.as_str());
    assert_eq!(
        dominant,
        Some(stage),
        "{backend}/{kind}: X-Probe-Stage seen {:?}",
        r.stages
    );
    assert!(
        r.page.count(503) > 0,
        "{backend}/{kind}: the page reported the fault: {:?}",
        r.page.statuses
    );
    assert!(
        worst < BUDGET + SLACK,
        "{backend}/{kind}: a page waited {worst:?}"
    );
    assert_eq!(
        r.health.count(200),
        r.health.latencies.len(),
        "{backend}/{kind}: /health always 200"
    );
    assert_eq!(r.health.errors, 0);
    let (p99_base, p99_fault) = (baseline.quantile(0.99), r.health.quantile(0.99));
    assert!(
        p99_fault < Duration::from_millis(100),
        "{backend}/{kind}: /health p99 {p99_fault:?}"
    );
    let asked = r.other.latencies.len() + r.other.errors;
    assert_eq!(
        r.other.count(200),
        asked,
        "{backend}/{kind}: the other page was unaffected: {:?}",
        r.other.statuses
    );
    assert!(r.other.quantile(1.0) < Duration::from_millis(500));
    record(
        "faults",
        json!({
            "backend": backend, "fault": kind, "stage expected": stage,
            "stage seen (sampled 503s)": stages_text(&r.stages),
            "page requests": r.page.latencies.len(), "page 503s": r.page.count(503),
            "slowest page ms": ms(worst), "budget ms": BUDGET.as_millis() as u64,
            "/health requests": r.health.latencies.len(),
            "/health p99 ms (no fault)": ms(p99_base), "/health p99 ms (fault)": ms(p99_fault),
            "other page OK": format!("{}/{asked}", r.other.count(200)),
            "back to OK after heal (s)": r.recovered.map_or("- (not healed)".to_string(), |d| format!("{:.1}", d.as_secs_f64())),
        }),
    );
}

/// One fault on a backend the test owns (`T`: its private server): its name, the stage the
/// page should report, and how to inject and heal it.
pub struct Fault<T> {
    pub kind: &'static str,
    pub stage: &'static str,
    pub inject: fn(&mut T),
    pub heal: fn(&mut T),
}

/// Starts the app on `config` (after the server and probes sections), measures a /health
/// baseline, then runs each fault on `target` in turn: inject, measure, heal, time the
/// recovery, judge. `page` is the faulted backend's page, `other` a healthy one.
pub fn run_faults<T>(
    backend: &str,
    page: &str,
    other: &str,
    config: &str,
    target: &mut T,
    faults: &[Fault<T>],
) {
    let a = App::start(
        &format!("fault-{backend}"),
        &format!("{}{}{config}", super::server_section(), probes_section()),
    );
    let baseline = health_for(&a, Duration::from_millis(1000));
    for f in faults {
        assert_eq!(a.get(page).status, 200, "{page} healthy before the fault");
        (f.inject)(target);
        let mut r = under_fault(&a, page, other);
        (f.heal)(target);
        r.recovered = Some(recovery(&a, page));
        judge(backend, f.kind, &baseline, &r, f.stage);
    }
}

/// Samples `f` every 100 ms until the returned flag is set (120 s at most); the thread
/// returns the maximum seen.
pub fn sample_max(
    f: impl Fn() -> u64 + Send + 'static,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let t = std::thread::spawn(move || {
        let mut max = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
            max = max.max(f());
            std::thread::sleep(Duration::from_millis(100));
        }
        max
    });
    (stop, t)
}

/// Like `send_raw`, but a connection the server closes without a response counts as 400.
pub fn send_raw_lenient(addr: SocketAddr, raw: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(raw);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(400)
}

/// Counts the output surfaces searched for planted secrets and every leak found, so the
/// report publishes the count this run saw.
pub struct SecretHunt<'a> {
    secrets: Vec<&'a str>,
    /// Surfaces searched.
    pub surfaces: usize,
    /// Where a secret was found (empty when none leaked).
    pub leaks: Vec<String>,
}

impl<'a> SecretHunt<'a> {
    pub fn new(secrets: &[&'a str]) -> Self {
        SecretHunt {
            secrets: secrets.to_vec(),
            surfaces: 0,
            leaks: Vec::new(),
        }
    }

    /// Searches one surface (`what` names it) for every planted secret.
    pub fn check(&mut self, what: &str, text: &str) {
        for (i, s) in self.secrets.iter().enumerate() {
            if text.contains(s) {
                self.leaks.push(format!("secret #{i} in {what}"));
            }
        }
        self.surfaces += 1;
    }
}
