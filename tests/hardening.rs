//! Hardening: real faults injected into real backends, floods, hostile input, secrets across
//! every output surface, and shutdown under load. Each test records its figures in
//! target/hardening/results.jsonl; scripts/hardening-report.sh renders docs/HARDENING.md.

mod common;
use common::load::*;
use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUDGET: Duration = Duration::from_millis(1000);

/// These tests measure latency on a 2-core machine: one at a time, or they measure each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}
/// Slack allowed past a probe's budget for scheduling and the HTTP round trip.
const SLACK: Duration = Duration::from_millis(500);

fn probes_section() -> String {
    format!(
        "[probes]\ntimeout_ms = {}\ncache_ms = 200\n",
        BUDGET.as_millis()
    )
}

fn mysql_section(port: u16, user: &str, password: &str, db: &str) -> String {
    format!("[database]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\npassword = \"{password}\"\ndbname = \"{db}\"\n")
}

fn shared_mysql() -> String {
    mysql_section(
        env_var("SUAI_TEST_MYSQL_PORT").parse().unwrap(),
        "probe",
        &env_var("SUAI_TEST_MYSQL_PASSWORD"),
        "suai",
    )
}

fn redis_section(port: u16) -> String {
    format!("[redis]\nhost = \"127.0.0.1\"\nport = {port}\n")
}

fn shared_redis() -> String {
    redis_section(env_var("SUAI_TEST_REDIS_PORT").parse().unwrap())
}

/// GET /health over keep-alive for `d` (at most 50,000 requests).
fn health_for(a: &App, d: Duration) -> Run {
    let deadline = Instant::now() + d;
    let mut run = Run::default();
    while Instant::now() < deadline && run.latencies.len() < 50_000 {
        run.absorb(keepalive(a.addr, "/health", 100));
    }
    run
}

/// What one fault did to the app while it lasted.
struct FaultRun {
    page: Run,
    /// `X-Probe-Stage` of the sampled failing answers, with how often each was seen.
    stages: BTreeMap<String, usize>,
    health: Run,
    other: Run,
    /// How long the page took to answer OK again once healed; `None` when never healed.
    recovered: Option<Duration>,
}

/// Requests `page` over keep-alive until `stop`, every tenth request on its own connection
/// so its `X-Probe-Stage` header is read (at most 20 s).
fn hammer(
    addr: std::net::SocketAddr,
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

/// Injects a fault, hammers the faulted page while measuring /health and a healthy page, heals,
/// and times the return to OK. Bounded: about 3 s of load, 30 s to recover at most.
fn fault(a: &App, page: &str, other: &str, inject: impl FnOnce(), heal: impl FnOnce()) -> FaultRun {
    assert_eq!(a.get(page).status, 200, "{page} healthy before the fault");
    inject();
    let stop = Arc::new(AtomicBool::new(false));
    let hammering = hammer(a.addr, page.to_string(), stop.clone());
    let health = health_for(a, Duration::from_millis(2500));
    let other_run = keepalive(a.addr, other, 20);
    stop.store(true, Ordering::SeqCst);
    let (page_run, stages) = hammering.join().unwrap();
    heal();
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
    FaultRun {
        page: page_run,
        stages,
        health,
        other: other_run,
        recovered: Some(healed.elapsed()),
    }
}

fn judge(backend: &str, kind: &str, baseline: &Run, r: &FaultRun, stage: &str) {
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
    assert_eq!(
        r.other.count(200),
        20,
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
            "other page OK": format!("{}/20", r.other.count(200)),
            "back to OK after heal (s)": r.recovered.map_or("- (not healed)".to_string(), |d| format!("{:.1}", d.as_secs_f64())),
        }),
    );
}

/// One fault: its name, the stage the page should report, how to inject it and how to heal it.
type FaultCase = (
    &'static str,
    &'static str,
    Box<dyn FnOnce()>,
    Box<dyn FnOnce()>,
);

/// Starts the app, measures a /health baseline, then runs each fault in turn.
fn run_faults(backend: &str, page: &str, other: &str, config: String, cases: Vec<FaultCase>) {
    let a = App::start(
        &format!("fault-{backend}"),
        &format!("{}{}{config}", server_section(), probes_section()),
    );
    let baseline = health_for(&a, Duration::from_millis(1000));
    for (kind, stage, inject, heal) in cases {
        let r = fault(&a, page, other, inject, heal);
        judge(backend, kind, &baseline, &r, stage);
    }
}

#[test]
fn faults_on_redis() {
    let _serial = serial();
    let redis = Arc::new(std::sync::Mutex::new(OwnRedis::start(&[])));
    let port = redis.lock().unwrap().port;
    let (r1, r2, r3, r4, r5) = (
        redis.clone(),
        redis.clone(),
        redis.clone(),
        redis.clone(),
        redis.clone(),
    );
    let pid =
        move |r: &Arc<std::sync::Mutex<OwnRedis>>| r.lock().unwrap().child.as_ref().unwrap().id();
    run_faults(
        "redis",
        "/redis",
        "/database",
        format!("{}{}", redis_section(port), shared_mysql()),
        vec![
            (
                "killed, restarted",
                "connect",
                Box::new(move || r1.lock().unwrap().down()),
                Box::new(move || r2.lock().unwrap().up()),
            ),
            (
                "paused (CLIENT PAUSE 4000 ALL)",
                "timeout",
                Box::new(move || {
                    r3.lock().unwrap().cli(&["CLIENT", "PAUSE", "4000", "ALL"]);
                }),
                Box::new(|| {}),
            ),
            (
                "paused (SIGSTOP/SIGCONT)",
                "timeout",
                Box::new(move || signal(pid(&r4), "STOP")),
                Box::new(move || signal(pid(&r5), "CONT")),
            ),
        ],
    );
}

#[test]
fn faults_on_mariadb() {
    let _serial = serial();
    let mut db = OwnMariaDb::install();
    db.start();
    let port = db.port;
    let db = Arc::new(std::sync::Mutex::new(db));
    // `db` stays in this scope: dropping the last handle would kill the server mid-test.
    let (d1, d2, d3, d4) = (db.clone(), db.clone(), db.clone(), db.clone());
    run_faults(
        "database",
        "/database",
        "/redis",
        format!(
            "{}{}",
            mysql_section(port, "root", "", "mysql"),
            shared_redis()
        ),
        vec![
            (
                "killed, restarted",
                "connect",
                Box::new(move || d1.lock().unwrap().stop()),
                Box::new(move || d2.lock().unwrap().start()),
            ),
            (
                "paused (SIGSTOP/SIGCONT)",
                "timeout",
                Box::new(move || signal(d3.lock().unwrap().child.as_ref().unwrap().id(), "STOP")),
                Box::new(move || signal(d4.lock().unwrap().child.as_ref().unwrap().id(), "CONT")),
            ),
        ],
    );
}

#[test]
fn hung_and_black_holed_backends() {
    let _serial = serial();
    for backend in ["database", "redis", "s3", "dynamodb"] {
        for (kind, stage) in [
            ("hung (accepts, never replies)", "timeout"),
            ("black-holed (connect never completes)", "timeout"),
        ] {
            let hung = HungServer::start();
            let hole = BlackHole::start();
            let port = if kind.starts_with("hung") {
                hung.port
            } else {
                hole.port
            };
            let section = match backend {
                "database" => format!("{}{}", mysql_section(port, "u", "p", "d"), shared_redis()),
                "redis" => format!("{}{}", redis_section(port), shared_mysql()),
                "s3" => format!("[aws]\nendpoint_url = \"http://127.0.0.1:{port}\"\n[s3]\nbucket = \"b\"\n{}", shared_redis()),
                _ => format!("[aws]\nendpoint_url = \"http://127.0.0.1:{port}\"\n[dynamodb]\ntable = \"t\"\n{}", shared_redis()),
            };
            let other = if backend == "redis" {
                "/database"
            } else {
                "/redis"
            };
            let a = App::start(
                &format!("hung-{backend}"),
                &format!("{}{}{section}", server_section(), probes_section()),
            );
            let baseline = health_for(&a, Duration::from_millis(500));
            // The fault is there from the start: hammer, measure, check the budget holds.
            let stop = Arc::new(AtomicBool::new(false));
            let hammering = hammer(a.addr, format!("/{backend}"), stop.clone());
            let health = health_for(&a, Duration::from_millis(2500));
            let other_run = keepalive(a.addr, other, 20);
            stop.store(true, Ordering::SeqCst);
            let (page, stages) = hammering.join().unwrap();
            let r = FaultRun {
                page,
                stages,
                health,
                other: other_run,
                recovered: None,
            };
            let body = a.get(&format!("/{backend}")).body;
            assert!(
                body.starts_with(&format!("ERROR: {stage}:")),
                "{backend}/{kind}: {body}"
            );
            judge(backend, kind, &baseline, &r, stage);
        }
    }
}

/// A private moto server for faults on S3 and DynamoDB (the shared one serves other tests).
struct OwnMoto {
    port: u16,
    child: Option<Child>,
}

impl OwnMoto {
    fn start(port: u16) -> OwnMoto {
        let child = Command::new(env_var("SUAI_TEST_MOTO_SERVER"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let m = OwnMoto {
            port,
            child: Some(child),
        };
        assert!(
            eventually(Duration::from_secs(30), || m.provision()),
            "own moto did not come up"
        );
        m
    }

    /// Creates the bucket and table (moto keeps no state across restarts).
    fn provision(&self) -> bool {
        let python = std::path::Path::new(&env_var("SUAI_TEST_MOTO_SERVER"))
            .parent()
            .unwrap()
            .join("python");
        let script = format!(
            "import boto3\nkw=dict(endpoint_url='http://127.0.0.1:{}',region_name='us-east-1',aws_access_key_id='testing',aws_secret_access_key='testing')\n\
             boto3.client('s3',**kw).create_bucket(Bucket='hard-bucket')\n\
             boto3.client('dynamodb',**kw).create_table(TableName='hard-table',KeySchema=[{{'AttributeName':'id','KeyType':'HASH'}}],AttributeDefinitions=[{{'AttributeName':'id','AttributeType':'S'}}],BillingMode='PAY_PER_REQUEST')\n",
            self.port
        );
        Command::new(python)
            .args(["-c", &script])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn faults_on_s3_and_dynamodb() {
    let _serial = serial();
    let port = closed_port();
    let moto = Arc::new(std::sync::Mutex::new(OwnMoto::start(port)));
    let config = format!(
        "[aws]\nendpoint_url = \"http://127.0.0.1:{port}\"\n[s3]\nbucket = \"hard-bucket\"\n[dynamodb]\ntable = \"hard-table\"\n{}",
        shared_redis()
    );
    for backend in ["s3", "dynamodb"] {
        let (m1, m2, m3, m4) = (moto.clone(), moto.clone(), moto.clone(), moto.clone());
        run_faults(
            backend,
            &format!("/{backend}"),
            "/redis",
            config.clone(),
            vec![
                (
                    "killed, restarted",
                    "connect",
                    Box::new(move || m1.lock().unwrap().kill()),
                    Box::new(move || *m2.lock().unwrap() = OwnMoto::start(port)),
                ),
                (
                    "paused (SIGSTOP/SIGCONT)",
                    "timeout",
                    Box::new(move || signal(m3.lock().unwrap().pid(), "STOP")),
                    Box::new(move || signal(m4.lock().unwrap().pid(), "CONT")),
                ),
            ],
        );
    }
}

fn mariadb_status(db: &OwnMariaDb, var: &str) -> u64 {
    db.sql(&format!("SHOW GLOBAL STATUS LIKE '{var}'"))
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {var}"))
}

/// Samples `f` every 100 ms until stopped; returns the maximum seen.
fn sample_max(
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

#[test]
fn flood_of_10000_database_requests_costs_one_query_per_cache_window() {
    let _serial = serial();
    let mut db = OwnMariaDb::install();
    db.start();
    let config = format!(
        "{}[probes]\ncache_ms = 250\n{}",
        server_section(),
        mysql_section(db.port, "root", "", "mysql")
    );
    let a = App::start("flood-db", &config);
    assert_eq!(a.get("/database").body, "OK", "pool warm");
    let db = Arc::new(db);
    let probe_selects_before = mariadb_status(&db, "Com_select");
    let d = db.clone();
    // Threads_connected counts the sampling client itself: subtract it.
    let (stop, sampler) =
        sample_max(move || mariadb_status(&d, "Threads_connected").saturating_sub(1));
    let started = Instant::now();
    let run = flood(a.addr, "/database", 200, 50);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let max_conns = sampler.join().unwrap();
    let selects = mariadb_status(&db, "Com_select") - probe_selects_before;
    let windows = elapsed.as_millis() as u64 / 250 + 1;
    assert_eq!(
        run.count(200),
        10_000,
        "errors {} statuses {:?}",
        run.errors,
        run.statuses.iter().find(|s| **s != 200)
    );
    assert!(
        selects <= windows + 1,
        "{selects} SELECTs in {windows} windows"
    );
    assert!(
        max_conns <= 2,
        "the pool held at most 2 connections, saw {max_conns}"
    );
    record(
        "floods",
        json!({
            "load": "10,000 GET /database over 200 keep-alive connections",
            "answered": format!("{} x 200 OK", run.count(200)),
            "time (s)": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
            "p50 / p99 ms": format!("{} / {}", ms(run.quantile(0.5)), ms(run.quantile(0.99))),
            "backend saw": format!("{selects} SELECTs in {windows} cache windows of 250 ms"),
            "backend connections (max)": max_conns,
        }),
    );
}

#[test]
fn flood_of_redis_requests_keeps_connections_bounded() {
    let _serial = serial();
    let redis = Arc::new(OwnRedis::start(&[]));
    let a = App::start(
        "flood-redis",
        &format!(
            "{}[probes]\ncache_ms = 250\n{}",
            server_section(),
            redis_section(redis.port)
        ),
    );
    assert_eq!(a.get("/redis").body, "OK");
    redis.cli(&["CONFIG", "RESETSTAT"]);
    let r = redis.clone();
    let clients = move || {
        r.cli(&["INFO", "clients"])
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
            .saturating_sub(1)
    };
    let (stop, sampler) = sample_max(clients);
    let started = Instant::now();
    let run = flood(a.addr, "/redis", 200, 50);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let max_clients = sampler.join().unwrap();
    let pings = redis.calls("ping");
    let windows = elapsed.as_millis() as u64 / 250 + 1;
    assert_eq!(run.count(200), 10_000);
    assert!(pings <= windows + 1, "{pings} PINGs in {windows} windows");
    assert!(
        max_clients <= 1,
        "one connection manager, saw {max_clients}"
    );
    record(
        "floods",
        json!({
            "load": "10,000 GET /redis over 200 keep-alive connections",
            "answered": format!("{} x 200 OK", run.count(200)),
            "time (s)": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
            "p50 / p99 ms": format!("{} / {}", ms(run.quantile(0.5)), ms(run.quantile(0.99))),
            "backend saw": format!("{pings} PINGs in {windows} cache windows of 250 ms"),
            "backend connections (max)": max_clients,
        }),
    );
}

/// Opens `n` connections that send a partial request head and never finish it.
fn slowloris(addr: std::net::SocketAddr, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    (0..n)
        .filter_map(|_| {
            let mut s = std::net::TcpStream::connect(addr).ok()?;
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .ok()?;
            Some(s)
        })
        .collect()
}

#[test]
fn a_thousand_slowloris_connections_do_not_stop_health() {
    let _serial = serial();
    let a = App::start(
        "slowloris",
        &format!("{}header_timeout_ms = 3000\n", server_section()),
    );
    let baseline = keepalive(a.addr, "/health", 500);
    let held = slowloris(a.addr, 1000);
    assert_eq!(held.len(), 1000);
    let during = keepalive(a.addr, "/health", 500);
    assert_eq!(during.count(200), 500);
    assert!(
        during.quantile(0.99) < Duration::from_millis(100),
        "{:?}",
        during.quantile(0.99)
    );
    // The header timeout reaps them: the server closes every one.
    use std::io::Read;
    let started = Instant::now();
    let mut closed = 0;
    for mut s in held {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        if matches!(s.read(&mut buf), Ok(0) | Ok(_)) {
            closed += 1;
        }
    }
    let reaped_in = started.elapsed();
    assert_eq!(closed, 1000);
    assert!(reaped_in < Duration::from_secs(8), "{reaped_in:?}");
    record(
        "floods",
        json!({
            "load": "1,000 slowloris connections (request head never finished), header timeout 3 s",
            "answered": format!("/health {}/500 OK while they were open", during.count(200)),
            "time (s)": (reaped_in.as_secs_f64() * 10.0).round() / 10.0,
            "p50 / p99 ms": format!("{} / {} (before: {} / {})", ms(during.quantile(0.5)), ms(during.quantile(0.99)), ms(baseline.quantile(0.5)), ms(baseline.quantile(0.99))),
            "backend saw": "- (no backend configured)",
            "backend connections (max)": "-",
        }),
    );
}

#[test]
fn the_connection_cap_holds_and_is_reported() {
    let _serial = serial();
    use std::io::{Read, Write};
    let a = App::start(
        "cap-hold",
        &format!(
            "{}max_connections = 100\nheader_timeout_ms = 20000\n",
            server_section()
        ),
    );
    let conns: Vec<_> = (0..150)
        .map(|_| std::net::TcpStream::connect(a.addr).unwrap())
        .collect();
    let started = Instant::now();
    let mut refused = 0;
    for mut s in conns.iter().skip(100) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Over the cap with every connection busy (silent), only /health would be answered.
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        if buf.starts_with("HTTP/1.1 503") {
            refused += 1;
        }
    }
    let refused_in = started.elapsed();
    assert_eq!(refused, 50, "the 50 connections over the cap got 503");
    // The first 100 are still open and unanswered: a read finds nothing yet.
    let mut held = 0;
    for mut s in conns.iter().take(100) {
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let mut b = [0u8; 1];
        if let Err(e) = s.read(&mut b) {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                held += 1;
            }
        }
    }
    assert_eq!(held, 100, "the 100 under the cap are held open");
    assert!(eventually(Duration::from_secs(5), || a
        .stderr()
        .contains("connection limit reached")));
    drop(conns);
    assert!(
        eventually(Duration::from_secs(5), || a.get("/health").status == 200),
        "served again once below the cap"
    );
    record(
        "floods",
        json!({
            "load": "150 idle connections against max_connections = 100",
            "answered": format!("{held} held, {refused} asking /metrics answered 503 and closed; logged 'connection limit reached'"),
            "time (s)": (refused_in.as_secs_f64() * 10.0).round() / 10.0,
            "p50 / p99 ms": "-",
            "backend saw": "- (no backend configured)",
            "backend connections (max)": "-",
        }),
    );
}

#[test]
fn hostile_requests_get_4xx_and_the_server_keeps_serving() {
    let _serial = serial();
    let a = App::start(
        "hostile",
        &format!("{}[logs]\nmax_lines = 1000\n", server_section()),
    );
    let big = "a".repeat(64 * 1024);
    let long_path = format!("/{}", "x".repeat(20 * 1024));
    let cases: Vec<(String, Vec<u8>, std::ops::RangeInclusive<u16>)> = vec![
        (
            "64 KiB header".into(),
            format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            431..=431,
        ),
        (
            "20 KiB path".into(),
            format!("GET {long_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            400..=499,
        ),
        (
            "invalid method token".into(),
            b"G@T /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            400..=400,
        ),
        (
            "not HTTP at all".into(),
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(),
            400..=400,
        ),
        (
            "bad HTTP version".into(),
            b"GET /health HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            400..=505,
        ),
        (
            "path traversal".into(),
            b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            400..=404,
        ),
    ];
    let mut rows = Vec::new();
    for (name, raw, want) in cases {
        let r = send_raw_lenient(a.addr, &raw);
        assert!(want.contains(&r), "{name}: got {r}");
        rows.push((name, r));
    }
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"] {
        let r = a.request(method, "/health", &[("Content-Length", "0")]);
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        rows.push((format!("method {method}"), r.status));
    }
    for q in [
        "lines=../../etc/passwd",
        "lines=%00",
        "lines=1e9",
        "lines=-1",
        "lines=0x10",
        "lines[]=1",
        "lines=1;rm",
        "a=b",
        &format!("lines={}", "9".repeat(5000)),
    ] {
        let r = a.get(&format!("/logs?{q}"));
        assert_eq!(r.status, 400, "/logs?{q}");
        rows.push((
            format!("/logs?{}", q.chars().take(30).collect::<String>()),
            r.status,
        ));
    }
    assert_eq!(a.get("/health").body, "healthy", "still serving");
    for (input, status) in rows {
        record(
            "bad input",
            json!({"input": input, "answer": status, "lost": "nothing (server kept serving)"}),
        );
    }
}

/// Like `send_raw`, but a connection the server closes without a response counts as 400.
fn send_raw_lenient(addr: std::net::SocketAddr, raw: &[u8]) -> u16 {
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

#[test]
fn a_multi_gigabyte_log_is_tailed_with_bounded_memory() {
    let _serial = serial();
    use std::io::Write;
    let dir = scratch_dir("biglog");
    let log = dir.join("huge.log");
    // 3 GiB: a sparse hole, then 20,000 real lines at the end (what /logs reads).
    let f = std::fs::File::create(&log).unwrap();
    f.set_len(3 * 1024 * 1024 * 1024).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for i in 0..20_000 {
        writeln!(
            f,
            "2026-11-23T00:00:00Z INFO old line {i} {}",
            "x".repeat(100)
        )
        .unwrap();
    }
    drop(f);
    let size = std::fs::metadata(&log).unwrap().len();
    let config = format!(
        "{}[logs]\nfile = \"{}\"\nmax_lines = 20000\n",
        server_section(),
        log.display()
    );
    let a = App::start("biglog-app", &config);
    let pid = a.child.id();
    let before = peak_rss_kib(pid);
    let mut answered = 0;
    for _ in 0..5 {
        let r = a.get("/logs?lines=20000");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.lines().count(), 20_000);
        assert!(r.body.lines().next().unwrap().contains("old line "));
        answered += 1;
    }
    let after = peak_rss_kib(pid);
    let growth_mib = (after.saturating_sub(before)) as f64 / 1024.0;
    assert!(after < 64 * 1024, "peak RSS {after} KiB");
    record(
        "memory",
        json!({
            "case": format!("/logs?lines=20000 x{answered} on a {:.1} GiB log", size as f64 / (1u64 << 30) as f64),
            "peak RSS before (MiB)": (before as f64 / 102.4).round() / 10.0,
            "peak RSS after (MiB)": (after as f64 / 102.4).round() / 10.0,
            "growth (MiB)": (growth_mib * 10.0).round() / 10.0,
        }),
    );
}

#[test]
fn secrets_appear_on_no_surface() {
    let _serial = serial();
    let db_pw = env_var("SUAI_TEST_MYSQL_PASSWORD");
    let redis_pw = env_var("SUAI_TEST_REDIS_DEFAULT_PASSWORD");
    let aws_secret = "Aws-Secret-Key-For-Surface-Test-0042";
    let wrong_db_pw = "Wrong-Db-Pw-Surface-77";
    let wrong_redis_pw = "Wrong-Redis-Pw-Surface-88";
    let denied_secret = env_var("SUAI_TEST_DENIED_SECRET");
    let secrets = [
        db_pw.as_str(),
        redis_pw.as_str(),
        aws_secret,
        wrong_db_pw,
        wrong_redis_pw,
        denied_secret.as_str(),
    ];
    let mut surfaces = 0;
    let mut checked = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "a secret leaked into {what}");
        }
        surfaces += 1;
    };
    let mysql = env_var("SUAI_TEST_MYSQL_PORT").parse().unwrap();
    let redis_port: u16 = env_var("SUAI_TEST_REDIS_AUTH_PORT").parse().unwrap();
    let moto = env_var("SUAI_TEST_MOTO_URL");
    let moto_auth = env_var("SUAI_TEST_MOTO_AUTH_URL");
    let variants = [
        (
            "success",
            db_pw.clone(),
            redis_pw.clone(),
            moto.clone(),
            "testing".to_string(),
            aws_secret.to_string(),
        ),
        (
            "failure",
            wrong_db_pw.to_string(),
            wrong_redis_pw.to_string(),
            moto_auth.clone(),
            env_var("SUAI_TEST_DENIED_KEY_ID"),
            denied_secret.clone(),
        ),
    ];
    for (name, dbp, rp, endpoint, key_id, secret) in variants {
        let config = format!(
            "{}[logs]\ntoken = \"logs-token-1\"\n[aws]\nendpoint_url = \"{endpoint}\"\n[s3]\nbucket = \"{}\"\n[dynamodb]\ntable = \"{}\"\n{}[redis]\nhost = \"127.0.0.1\"\nport = {redis_port}\npassword = \"{rp}\"\n",
            server_section(),
            env_var("SUAI_TEST_BUCKET"),
            env_var("SUAI_TEST_TABLE"),
            mysql_section(mysql, "probe", &dbp, "suai"),
        );
        let envs = [
            ("AWS_ACCESS_KEY_ID", key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ];
        let a = App::start_with(&format!("secrets-{name}"), &config, &envs);
        let want = if name == "success" { 200 } else { 503 };
        for page in ["/database", "/redis", "/s3", "/dynamodb"] {
            let r = a.get(page);
            assert_eq!(r.status, want, "{name} {page}: {}", r.body);
            checked(page, &r.body);
            checked(
                &format!("{page} json"),
                &a.get(&format!("{page}?format=json")).body,
            );
        }
        checked("/ text", &a.get("/").body);
        checked(
            "/ html",
            &a.request("GET", "/", &[("Accept", "text/html")]).body,
        );
        checked("/ json", &a.get("/?format=json").body);
        checked("/metrics", &a.get("/metrics").body);
        checked("/health", &a.get("/health").body);
        checked(
            "/logs",
            &a.request(
                "GET",
                "/logs?lines=1000",
                &[("Authorization", "Bearer logs-token-1")],
            )
            .body,
        );
        for args in [
            &["config", "show"][..],
            &["--help"][..],
            &["check"][..],
            &["config", "validate"][..],
        ] {
            let out = Command::new(BIN)
                .args(args)
                .current_dir(&a.dir)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("AWS_ACCESS_KEY_ID", &key_id)
                .env("AWS_SECRET_ACCESS_KEY", &secret)
                .env("AWS_REGION", "us-east-1")
                .output()
                .unwrap();
            checked(
                &format!("{args:?} stdout"),
                &String::from_utf8_lossy(&out.stdout),
            );
            checked(
                &format!("{args:?} stderr"),
                &String::from_utf8_lossy(&out.stderr),
            );
        }
        let mut a = a;
        a.terminate();
        a.wait(Duration::from_secs(10));
        checked("output.log", &a.log_file());
        checked("stderr", &a.stderr());
    }
    record(
        "secrets",
        json!({
            "secrets planted": "DB password (right and wrong), Redis password (right and wrong), AWS secret keys (accepted and denied)",
            "surfaces checked": surfaces,
            "where": "every probe page (text and JSON), / (text, HTML, JSON), /metrics, /health, /logs, output.log, stderr, config show, --help, check, config validate; under success and failure",
            "found": 0,
        }),
    );
}

/// A small web server for the URL-secret hunt: `/ok` wants the Basic credentials of
/// `argv[2]`, `/fail` answers 500, `/moved` redirects to a URL carrying the token `argv[3]`.
fn secret_web_server(userinfo: &str, token: &str) -> PythonServer {
    let script = r#"
import base64, http.server, sys
want = "Basic " + base64.b64encode(sys.argv[2].encode()).decode()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/ok":
            code, extra = (200 if self.headers.get("Authorization") == want else 401), {}
        elif path == "/moved":
            code, extra = 302, {"Location": "/elsewhere?token=" + sys.argv[3]}
        else:
            code, extra = 500, {}
        self.send_response(code)
        for k, v in extra.items(): self.send_header(k, v)
        self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"hi")
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;
    PythonServer::start(script, &[userinfo.to_string(), token.to_string()])
}

#[test]
fn secrets_in_urls_and_mistyped_passwords_appear_on_no_surface() {
    let _serial = serial();
    let token = "Url-Query-Token-Surface-5150";
    let user_pw = "Url-Userinfo-Pw-Surface-6160";
    let userinfo = format!("probe:{user_pw}");
    let number = "73915286";
    let secrets = [token, user_pw, number];
    let mut surfaces = 0;
    let mut checked = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "a secret leaked into {what}: {text}");
        }
        surfaces += 1;
    };
    let web = secret_web_server(&userinfo, token);
    let refused = closed_port();
    let entries = [
        (
            "ok",
            format!("http://{userinfo}@127.0.0.1:{}/ok?token={token}", web.port),
            200,
        ),
        (
            "fail",
            format!(
                "http://{userinfo}@127.0.0.1:{}/fail?token={token}&x=1",
                web.port
            ),
            503,
        ),
        (
            "moved",
            format!("http://127.0.0.1:{}/moved?{token}", web.port),
            503,
        ),
        (
            "refused",
            format!("https://{userinfo}@127.0.0.1:{refused}/?token={token}"),
            503,
        ),
    ];
    let mut config = format!("{}[logs]\ntoken = \"logs-token-2\"\n", server_section());
    for (name, url, _) in &entries {
        config.push_str(&format!(
            "[[http]]\nname = \"{name}\"\nurl = \"{url}\"\ntimeout_ms = 1000\n"
        ));
    }
    let mut a = App::start("secret-urls", &config);
    for (name, _, want) in &entries {
        let page = format!("/http/{name}");
        let r = a.get(&page);
        assert_eq!(r.status, *want, "{page}: {}", r.body);
        checked(&page, &r.body);
        checked(
            &format!("{page} json"),
            &a.get(&format!("{page}?format=json")).body,
        );
    }
    // What an operator sees instead: the shape of the URL with its secrets starred.
    let text = a.get("/").body;
    assert!(text.contains("FAIL"), "{text}");
    let json = a.get("/?format=json").body;
    assert!(
        json.contains(&format!("http://***@127.0.0.1:{}/ok?token=***", web.port)),
        "{json}"
    );
    checked("/ text", &text);
    checked("/ json", &json);
    checked(
        "/ html",
        &a.request("GET", "/", &[("Accept", "text/html")]).body,
    );
    checked("/metrics", &a.get("/metrics").body);
    checked(
        "/logs",
        &a.request(
            "GET",
            "/logs?lines=1000",
            &[("Authorization", "Bearer logs-token-2")],
        )
        .body,
    );
    for args in [
        &["config", "show"][..],
        &["check"][..],
        &["config", "validate"][..],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(&a.dir)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if args[0] == "config" && args[1] == "show" {
            assert!(stdout.contains("?token=***"), "{stdout}");
        }
        checked(&format!("{args:?} stdout"), &stdout);
        checked(
            &format!("{args:?} stderr"),
            &String::from_utf8_lossy(&out.stderr),
        );
    }
    // A password written as a number, on SIGHUP: refused without the number.
    let good = std::fs::read_to_string(a.dir.join("config.toml")).unwrap();
    let mistyped = format!("{good}[redis]\nhost = \"127.0.0.1\"\npassword = {number}\n");
    let line = mistyped.lines().count();
    std::fs::write(a.dir.join("config.toml"), &mistyped).unwrap();
    signal(a.child.id(), "HUP");
    a.wait_stderr(Duration::from_secs(10), |s| {
        s.contains("config reload rejected")
    });
    let rejected = a.stderr();
    assert!(
        rejected.contains(&format!("config.toml:{line}:"))
            && rejected.contains("invalid type: expected a string"),
        "{rejected}"
    );
    a.terminate();
    a.wait(Duration::from_secs(10));
    checked("output.log", &a.log_file());
    checked("stderr", &a.stderr());
    // The same at boot, for every secret field: exit 2, line and column, no value.
    for (section, field) in [
        (
            "[database]\nhost = \"h\"\nuser = \"u\"\ndbname = \"d\"\n",
            "password",
        ),
        (
            "[postgres]\nhost = \"h\"\nuser = \"u\"\ndbname = \"d\"\n",
            "password",
        ),
        ("[redis]\nhost = \"h\"\n", "password"),
        ("[logs]\n", "token"),
        ("[[http]]\nname = \"n\"\n", "url"),
    ] {
        let config = format!("{}{section}{field} = {number}\n", server_section());
        let line = config.lines().count();
        let dir = scratch_dir("mistyped");
        std::fs::write(dir.join("config.toml"), &config).unwrap();
        for args in [&[][..], &["config", "validate"][..]] {
            let out = Command::new(BIN)
                .args(args)
                .current_dir(&dir)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{field}: {stderr}");
            let want = format!(
                "config.toml:{line}:{}: invalid type: expected a string",
                field.len() + 4
            );
            assert!(stderr.contains(&want), "{field}: want {want:?} in {stderr}");
            checked(&format!("boot with {field} = <number>"), &stderr);
            checked(
                "output.log",
                &std::fs::read_to_string(dir.join("output.log")).unwrap_or_default(),
            );
        }
    }
    record(
        "secrets",
        json!({
            "secrets planted": "[[http]] url query token and user:pass@ (page OK, 500, redirect carrying the token, refused); password, token and url written as a TOML integer (at boot, config validate and SIGHUP)",
            "surfaces checked": surfaces,
            "where": "every /http page (text and JSON), / (text, HTML, JSON), /metrics, /logs, output.log, stderr, config show, check, config validate, the exit-2 error at boot and the rejected reload",
            "found": 0,
        }),
    );
}

#[test]
fn sigterm_during_100_in_flight_requests_completes_them_all() {
    let _serial = serial();
    let hung = HungServer::start();
    let config = format!(
        "{}[redis]\nhost = \"127.0.0.1\"\nport = {}\ntimeout_ms = 2000\n",
        server_section(),
        hung.port
    );
    let mut a = App::start("drain-100", &config);
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let (addr, sent, done) = (a.addr, sent.clone(), done.clone());
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /redis HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
                let mut buf = String::new();
                s.read_to_string(&mut buf).unwrap();
                done.fetch_add(1, Ordering::SeqCst);
                buf
            })
        })
        .collect();
    // Sent is not in flight: a request still in the kernel's queues when SIGTERM lands is
    // refused like any connection after the listener closes. Wait until the server has read
    // all 100 (or answered some: the probe's 2 s budget runs meanwhile) and the
    // single-flight probe has reached the hung backend.
    assert!(eventually(Duration::from_secs(10), || sent
        .load(Ordering::SeqCst)
        == 100
        && server_sockets_read(a.addr.port())
            + done.load(Ordering::SeqCst)
            >= 100
        && hung.accepted() > 0));
    let started = Instant::now();
    a.terminate();
    let answers: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let complete = answers
        .iter()
        .filter(|b| b.starts_with("HTTP/1.1 503") && b.contains("ERROR: timeout:"))
        .count();
    let code = a.wait(Duration::from_secs(15)).code();
    let drained_in = started.elapsed();
    assert_eq!(complete, 100, "every in-flight request got its full answer");
    assert_eq!(code, Some(0));
    let log = a.log_file();
    let access_lines = log.matches("path=/redis status=503").count();
    assert_eq!(access_lines, 100, "all 100 access lines flushed");
    assert!(log.contains("stopped"));
    record(
        "shutdown",
        json!({
            "case": "SIGTERM with 100 requests in flight (backend hung, 2 s budget)",
            "completed": format!("{complete}/100 full responses"),
            "exit code": code,
            "drained in (s)": (drained_in.as_secs_f64() * 10.0).round() / 10.0,
            "access lines in output.log": access_lines,
        }),
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config as PtConfig, TestRunner};
    use suaicloudapp::config::Config;

    /// TOML-shaped lines from the schema's own words, so the parser gets past the first token.
    fn toml_like() -> impl Strategy<Value = String> {
        let words = prop::sample::select(vec![
            "[server]",
            "[database]",
            "[redis]",
            "[s3]",
            "[logs]",
            "[probes]",
            "[aws]",
            "[dynamodb]",
            "[[x]]",
            "host",
            "port",
            "user",
            "password",
            "dbname",
            "mode",
            "tls",
            "timeout_ms",
            "cache_ms",
            "token",
            "bucket",
            "table",
        ]);
        prop::collection::vec((words, "[ =\\[\\]\"'a-z0-9.\\-_{},#]{0,24}"), 0..24).prop_map(
            |lines| {
                lines
                    .into_iter()
                    .map(|(k, v)| format!("{k}{v}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        )
    }

    #[test]
    fn config_parser_never_panics_and_errors_stay_one_line() {
        let _serial = serial();
        let cases = 5000;
        let mut runner = TestRunner::new(PtConfig {
            cases,
            ..PtConfig::default()
        });
        let strategy = prop_oneof![toml_like(), "\\PC{0,300}", any::<String>()];
        let rejected = std::sync::atomic::AtomicU32::new(0);
        runner
            .run(&strategy, |text| {
                if let Err(e) = Config::parse(&text, "fuzz.toml") {
                    rejected.fetch_add(1, Ordering::Relaxed);
                    let msg = e.to_string();
                    prop_assert!(!msg.contains('\n'), "multi-line error: {msg:?}");
                    prop_assert!(msg.starts_with("fuzz.toml"), "error names the file: {msg}");
                }
                Ok(())
            })
            .unwrap();
        record(
            "bad input",
            json!({
                "input": format!("{cases} generated configs (TOML-shaped and arbitrary text)"),
                "answer": format!("{} rejected with one-line file:line:column errors, the rest parsed", rejected.load(Ordering::Relaxed)),
                "lost": "no panic",
            }),
        );
    }

    #[test]
    fn request_paths_and_queries_never_break_the_server() {
        let _serial = serial();
        let a = App::start(
            "fuzz-http",
            &format!("{}{}", server_section(), shared_redis()),
        );
        let cases = 1000;
        let mut runner = TestRunner::new(PtConfig {
            cases,
            ..PtConfig::default()
        });
        let method = prop::sample::select(vec!["GET", "HEAD", "POST", "OPTIONS", "X-Y"]);
        let pages = prop::sample::select(vec![
            "/",
            "/health",
            "/logs",
            "/metrics",
            "/redis",
            "/database",
            "/s3",
        ]);
        let path = prop_oneof![
            pages.prop_map(str::to_string),
            "/[a-z0-9/._%~!$&'()*+,;=:@-]{0,60}"
        ];
        let query = proptest::option::of(prop_oneof![
            "(lines|format|refresh)=[a-z0-9%+._-]{0,20}",
            "[a-z0-9=&%+._-]{0,60}"
        ]);
        let strategy = (method, path, query);
        let statuses = std::sync::Mutex::new(std::collections::BTreeMap::new());
        runner
            .run(&strategy, |(m, path, query)| {
                let target = match &query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.clone(),
                };
                let raw = format!("{m} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let status = send_raw_lenient(a.addr, raw.as_bytes());
                prop_assert!((200..600).contains(&status));
                prop_assert!(status != 500 || path.starts_with("/logs"), "500 on {target}");
                *statuses.lock().unwrap().entry(status).or_insert(0u32) += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(a.get("/health").body, "healthy");
        record(
            "bad input",
            json!({
                "input": format!("{cases} generated requests (method, path, query)"),
                "answer": format!("status counts {:?}", statuses.lock().unwrap()),
                "lost": "no panic, server kept serving",
            }),
        );
    }
}
