//! Hardening: real faults injected into real backends, floods, hostile input, secrets across
//! every output surface, and shutdown under load. Each test records its figures in
//! target/hardening/results.jsonl; scripts/hardening-report.sh renders docs/HARDENING.md.

mod common;
use common::load::*;
use common::*;
use serde_json::json;
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
    format!("[probes]\ntimeout_ms = {}\ncache_ms = 200\n", BUDGET.as_millis())
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
    health: Run,
    other: Run,
    recovered: Duration,
}

/// Injects a fault, hammers the faulted page while measuring /health and a healthy page, heals,
/// and times the return to OK. Bounded: about 3 s of load, 30 s to recover at most.
fn fault(a: &App, page: &str, other: &str, inject: impl FnOnce(), heal: impl FnOnce()) -> FaultRun {
    assert_eq!(a.get(page).status, 200, "{page} healthy before the fault");
    inject();
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, p, s) = (a.addr, page.to_string(), stop.clone());
    let hammer = std::thread::spawn(move || {
        let mut run = Run::default();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
            run.absorb(keepalive(addr, &p, 1));
        }
        run
    });
    let health = health_for(a, Duration::from_millis(2500));
    let other_run = keepalive(a.addr, other, 20);
    stop.store(true, Ordering::SeqCst);
    let page_run = hammer.join().unwrap();
    heal();
    let healed = Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || a.get(page).status == 200),
        "{page} did not recover: {}\n{}",
        a.get(page).body,
        a.stderr().lines().rev().filter(|l| !l.contains("access")).take(15).collect::<Vec<_>>().join("\n")
    );
    FaultRun {
        page: page_run,
        health,
        other: other_run,
        recovered: healed.elapsed(),
    }
}

fn judge(backend: &str, kind: &str, baseline: &Run, r: &FaultRun, stage: &str) {
    let worst = r.page.quantile(1.0);
    assert!(r.page.count(503) > 0, "{backend}/{kind}: the page reported the fault: {:?}", r.page.statuses);
    assert!(worst < BUDGET + SLACK, "{backend}/{kind}: a page waited {worst:?}");
    assert_eq!(r.health.count(200), r.health.latencies.len(), "{backend}/{kind}: /health always 200");
    assert_eq!(r.health.errors, 0);
    let (p99_base, p99_fault) = (baseline.quantile(0.99), r.health.quantile(0.99));
    assert!(p99_fault < Duration::from_millis(100), "{backend}/{kind}: /health p99 {p99_fault:?}");
    assert_eq!(r.other.count(200), 20, "{backend}/{kind}: the other page was unaffected: {:?}", r.other.statuses);
    assert!(r.other.quantile(1.0) < Duration::from_millis(500));
    record(
        "faults",
        json!({
            "backend": backend, "fault": kind, "stage seen": stage,
            "page requests": r.page.latencies.len(), "page 503s": r.page.count(503),
            "slowest page ms": ms(worst), "budget ms": BUDGET.as_millis() as u64,
            "/health requests": r.health.latencies.len(),
            "/health p99 ms (no fault)": ms(p99_base), "/health p99 ms (fault)": ms(p99_fault),
            "other page OK": format!("{}/20", r.other.count(200)),
            "back to OK after heal (s)": (r.recovered.as_secs_f64() * 10.0).round() / 10.0,
        }),
    );
}

/// Starts the app, measures a /health baseline, then runs each fault in turn.
fn run_faults(backend: &str, page: &str, other: &str, config: String, cases: Vec<(&str, &str, Box<dyn FnOnce()>, Box<dyn FnOnce()>)>) {
    let a = App::start(&format!("fault-{backend}"), &format!("{}{}{config}", server_section(), probes_section()));
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
    let (r1, r2, r3, r4, r5) = (redis.clone(), redis.clone(), redis.clone(), redis.clone(), redis.clone());
    let pid = move |r: &Arc<std::sync::Mutex<OwnRedis>>| r.lock().unwrap().child.as_ref().unwrap().id();
    run_faults(
        "redis",
        "/redis",
        "/database",
        format!("{}{}", redis_section(port), shared_mysql()),
        vec![
            ("killed, restarted", "connect", Box::new(move || r1.lock().unwrap().down()), Box::new(move || r2.lock().unwrap().up())),
            ("paused (CLIENT PAUSE 4000 ALL)", "timeout", Box::new(move || { r3.lock().unwrap().cli(&["CLIENT", "PAUSE", "4000", "ALL"]); }), Box::new(|| {})),
            ("paused (SIGSTOP/SIGCONT)", "timeout", Box::new(move || signal(pid(&r4), "STOP")), Box::new(move || signal(pid(&r5), "CONT"))),
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
        format!("{}{}", mysql_section(port, "root", "", "mysql"), shared_redis()),
        vec![
            ("killed, restarted", "connect", Box::new(move || d1.lock().unwrap().stop()), Box::new(move || d2.lock().unwrap().start())),
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
        for (kind, stage) in [("hung (accepts, never replies)", "timeout"), ("black-holed (connect never completes)", "timeout")] {
            let hung = HungServer::start();
            let hole = BlackHole::start();
            let port = if kind.starts_with("hung") { hung.port } else { hole.port };
            let section = match backend {
                "database" => format!("{}{}", mysql_section(port, "u", "p", "d"), shared_redis()),
                "redis" => format!("{}{}", redis_section(port), shared_mysql()),
                "s3" => format!("[aws]\nendpoint_url = \"http://127.0.0.1:{port}\"\n[s3]\nbucket = \"b\"\n{}", shared_redis()),
                _ => format!("[aws]\nendpoint_url = \"http://127.0.0.1:{port}\"\n[dynamodb]\ntable = \"t\"\n{}", shared_redis()),
            };
            let other = if backend == "redis" { "/database" } else { "/redis" };
            let a = App::start(&format!("hung-{backend}"), &format!("{}{}{section}", server_section(), probes_section()));
            let baseline = health_for(&a, Duration::from_millis(500));
            // The fault is there from the start: hammer, measure, check the budget holds.
            let stop = Arc::new(AtomicBool::new(false));
            let (addr, p, s) = (a.addr, format!("/{backend}"), stop.clone());
            let hammer = std::thread::spawn(move || {
                let mut run = Run::default();
                while !s.load(Ordering::SeqCst) {
                    run.absorb(keepalive(addr, &p, 1));
                }
                run
            });
            let health = health_for(&a, Duration::from_millis(2500));
            let other_run = keepalive(a.addr, other, 20);
            stop.store(true, Ordering::SeqCst);
            let page = hammer.join().unwrap();
            let r = FaultRun { page, health, other: other_run, recovered: Duration::ZERO };
            let body = a.get(&format!("/{backend}")).body;
            assert!(body.starts_with(&format!("ERROR: {stage}:")), "{backend}/{kind}: {body}");
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
        let m = OwnMoto { port, child: Some(child) };
        assert!(eventually(Duration::from_secs(30), || m.provision()), "own moto did not come up");
        m
    }

    /// Creates the bucket and table (moto keeps no state across restarts).
    fn provision(&self) -> bool {
        let python = std::path::Path::new(&env_var("SUAI_TEST_MOTO_SERVER")).parent().unwrap().join("python");
        let script = format!(
            "import boto3\nkw=dict(endpoint_url='http://127.0.0.1:{}',region_name='us-east-1',aws_access_key_id='testing',aws_secret_access_key='testing')\n\
             boto3.client('s3',**kw).create_bucket(Bucket='hard-bucket')\n\
             boto3.client('dynamodb',**kw).create_table(TableName='hard-table',KeySchema=[{{'AttributeName':'id','KeyType':'HASH'}}],AttributeDefinitions=[{{'AttributeName':'id','AttributeType':'S'}}],BillingMode='PAY_PER_REQUEST')\n",
            self.port
        );
        Command::new(python).args(["-c", &script]).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
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
                ("killed, restarted", "connect", Box::new(move || m1.lock().unwrap().kill()), Box::new(move || *m2.lock().unwrap() = OwnMoto::start(port))),
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
