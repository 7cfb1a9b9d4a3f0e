//! Behind a load balancer and watched by Prometheus (issue 20), through the static release
//! binary on loopback: keep-alive outlives the balancer's idle timeout while a slow head is
//! still cut, the connection cap never takes `/health` down, `/ready` checks a group through
//! the cache, a first scrape reports every backend in a format promtool accepts, and HAProxy
//! in front (`http-reuse always`, idle pauses longer than 5 s) sees no 5xx.
//!
//! The binary is target/x86_64-unknown-linux-musl/release/suaicloudapp (`make test` builds it
//! first); `SUAI_FLEET_BIN=<path>` runs these tests against another build (a debug binary
//! while developing, an older build to measure "before").

use harness::*;
use harness::{http, raw};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test: the static release build unless `SUAI_FLEET_BIN` names another.
fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SUAI_FLEET_BIN") {
        return PathBuf::from(p);
    }
    release_bin("x86_64-unknown-linux-musl", "static")
}

/// Starts the binary under test with room for a few thousand descriptors (a systemd unit's
/// default soft limit of 1024 would be below the default connection cap).
fn start(name: &str, config: &str) -> App {
    let script = format!("ulimit -n 4096 && exec '{}' \"$@\"", bin().display());
    Starting::spawn_wrapped(&["sh", "-c", &script], name, Some(config), &[], &[])
        .wait_listening(Duration::from_secs(20))
}

/// The soft limit on open files of this test process.
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .expect("Max open files in /proc/self/limits")
}

#[test]
fn an_idle_keepalive_connection_is_reused_after_10_s_and_a_slow_head_is_still_cut_at_5_s() {
    let a = start("fleet-idle", &server_section());
    let addr = a.addr;
    // Three clients at once, so the test costs one 10 s idle spell.
    let idle = std::thread::spawn(move || {
        let mut c = http::Conn::open(addr).unwrap();
        assert_eq!(c.get("/health").unwrap().status, 200);
        std::thread::sleep(Duration::from_secs(10));
        let second = c.get("/health");
        eprintln!("idle 10 s then GET /health on the same connection: {second:?}");
        assert_eq!(
            second
                .expect("the idle keep-alive connection was closed")
                .status,
            200
        );
    });
    let slowloris = std::thread::spawn(move || {
        let mut c = raw::Conn::open(addr);
        c.send(b"GET /health HTTP/1.1\r\nHo").unwrap();
        let closed = c.time_to_close(Duration::from_secs(20));
        eprintln!("half-sent head on a new connection: closed after {closed:?}");
        assert!(
            closed >= Duration::from_millis(4900) && closed < Duration::from_secs(7),
            "{closed:?}"
        );
    });
    let idle_then_slow = std::thread::spawn(move || {
        let mut c = raw::Conn::open(addr);
        assert_eq!(c.get("/health").unwrap().0, 200);
        std::thread::sleep(Duration::from_secs(3));
        if c.send(b"GET /health HTTP/1.1\r\nHo").is_err() {
            panic!("closed during a 3 s idle spell");
        }
        let closed = c.time_to_close(Duration::from_secs(20));
        eprintln!("idle 3 s, then a half-sent head: closed {closed:?} after its first bytes");
        assert!(
            closed >= Duration::from_millis(4900) && closed < Duration::from_secs(7),
            "{closed:?}"
        );
    });
    for t in [idle, slowloris, idle_then_slow] {
        t.join().unwrap();
    }
}

#[test]
fn keepalive_timeout_ms_closes_an_idle_connection() {
    let a = start(
        "fleet-keepalive",
        &format!("{}keepalive_timeout_ms = 1500\n", server_section()),
    );
    let mut c = raw::Conn::open(a.addr);
    assert_eq!(c.get("/health").unwrap().0, 200);
    let closed = c.time_to_close(Duration::from_secs(10));
    assert!(
        closed >= Duration::from_millis(1400) && closed < Duration::from_secs(3),
        "{closed:?}"
    );
}

#[test]
fn at_the_cap_1100_idle_connections_do_not_lock_out_health() {
    let limit = open_files_limit();
    assert!(
        limit >= 2_000,
        "this test holds 1,100 sockets; the open-files limit is {limit}: run `ulimit -n 4096` first"
    );
    let a = start("fleet-cap", &server_section());
    let mut conns = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..1_100 {
        let mut c = raw::Conn::open(a.addr);
        let status = c.get("/health").map_or(0, |(s, _)| s);
        *statuses.entry(status).or_insert(0) += 1;
        conns.push(c);
    }
    eprintln!("1,100 keep-alive connections, one GET /health each: statuses {statuses:?}");
    let started = Instant::now();
    let resp = a.get("/health");
    let took = started.elapsed();
    eprintln!(
        "then a new connection's /health: {} in {took:?}",
        resp.status
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(statuses.get(&200), Some(&1_100), "{statuses:?}");
    // The oldest connections made room: the first is closed, the last still answers.
    assert!(
        conns[0].get("/health").is_err(),
        "the longest-idle was kept"
    );
    assert_eq!(conns.last_mut().unwrap().get("/health").unwrap().0, 200);
    a.wait_stderr(Duration::from_secs(5), |s| {
        s.contains("closed the longest-idle connection")
    });
}

#[test]
fn a_database_flood_with_mariadb_stopped_does_not_fail_health() {
    let mut db = OwnMariaDb::install();
    db.start();
    let config = format!(
        "{}max_connections = 40\n[probes]\ncache_ms = 0\n[database]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"root\"\ndbname = \"mysql\"\ntimeout_ms = 3000\n",
        server_section(),
        db.port
    );
    let a = start("fleet-flood", &config);
    assert_eq!(a.get("/database").body, "OK", "pool warm");
    let pid = db.child.as_ref().unwrap().id();
    signal(pid, "STOP");
    // 60 clients on a cap of 40: every slot busy waiting on the stopped database.
    let flood: Vec<_> = (0..60)
        .map(|_| {
            let addr = a.addr;
            std::thread::spawn(move || {
                let mut c = http::Conn::open(addr).unwrap();
                c.get("/database").map_or(0, |r| r.status)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut health = Vec::new();
    for _ in 0..5 {
        let r = a.get("/health");
        health.push((r.status, r.elapsed));
        std::thread::sleep(Duration::from_millis(200));
    }
    let statuses: Vec<u16> = flood.into_iter().map(|t| t.join().unwrap()).collect();
    signal(pid, "CONT");
    eprintln!("/health during the flood: {health:?}");
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    eprintln!(
        "flood statuses: {busy} of {} were 503: {statuses:?}",
        statuses.len()
    );
    for (status, took) in &health {
        assert_eq!(*status, 200, "{health:?}");
        assert!(*took < Duration::from_millis(500), "{health:?}");
    }
    assert!(
        a.stderr().contains("every connection busy"),
        "the cap was never reached: {}",
        a.stderr()
    );
}

fn redis_section(port: u16) -> String {
    format!("[redis]\nhost = \"127.0.0.1\"\nport = {port}\n")
}

fn shared_mysql() -> String {
    format!(
        "[database]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"probe\"\npassword = \"{}\"\ndbname = \"suai\"\n",
        env_var("SUAI_TEST_MYSQL_PORT"),
        env_var("SUAI_TEST_MYSQL_PASSWORD")
    )
}

#[test]
fn ready_checks_its_group_through_the_cache() {
    let mut redis = OwnRedis::start(&[]);
    let config = format!(
        "{}[probes]\ncache_ms = 2000\ntimeout_ms = 1000\n[health]\nready = [\"database\", \"redis\"]\n{}{}[[http]]\nname = \"down\"\nurl = \"http://127.0.0.1:{}/\"\n",
        server_section(),
        shared_mysql(),
        redis_section(redis.port),
        closed_port()
    );
    let a = start("fleet-ready", &config);
    // Connected and warm; then count what 40 load-balancer checks cost the backend.
    assert_eq!(a.get("/redis").status, 200);
    std::thread::sleep(Duration::from_millis(2100));
    redis.cli(&["CONFIG", "RESETSTAT"]);
    let checks: Vec<_> = (0..40)
        .map(|_| {
            let addr = a.addr;
            std::thread::spawn(move || {
                send_raw(
                    addr,
                    b"GET /ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                )
            })
        })
        .collect();
    for t in checks {
        let r = t.join().unwrap();
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "OK"),
            "an http failure outside the group does not count"
        );
    }
    let pings = redis.calls("ping");
    eprintln!("40 concurrent /ready: {pings} PING at redis");
    assert_eq!(pings, 1);
    let json = a.request("GET", "/ready", &[("Accept", "application/health+json")]);
    assert_eq!(json.status, 200);
    let doc: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(doc["status"], "pass");
    assert_eq!(doc["checks"].as_object().unwrap().len(), 2, "{doc}");

    redis.down();
    let failed = eventually(Duration::from_secs(5), || a.get("/ready").status == 503);
    assert!(failed, "/ready kept passing with redis down");
    let r = a.get("/ready");
    eprintln!("/ready with redis down: {} {:?}", r.status, r.body);
    assert!(r.body.starts_with("ERROR: redis: "), "{}", r.body);
    assert!(!r.body.contains("database"), "{}", r.body);
    let json = a.request("GET", "/ready", &[("Accept", "application/health+json")]);
    assert_eq!(json.status, 503);
    let doc: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(
        doc["checks"]["redis:responseTime"][0]["status"], "fail",
        "{doc}"
    );
    assert_eq!(
        a.get("/health").status,
        200,
        "liveness never follows a backend"
    );
}

#[test]
fn ready_without_a_group_answers_as_health_and_an_unknown_name_is_refused_at_load() {
    let a = start("fleet-ready-none", &server_section());
    let r = a.get("/ready");
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));

    for (ready, says) in [
        ("\"redis\"", "no [redis] section"),
        ("\"databse\"", "\"databse\" is not a backend"),
    ] {
        let dir = scratch_dir("fleet-ready-bad");
        std::fs::write(
            dir.join("config.toml"),
            format!("{}[health]\nready = [{ready}]\n", server_section()),
        )
        .unwrap();
        let mut child = Command::new(bin())
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let exited = eventually(Duration::from_secs(10), || {
            child.try_wait().unwrap().is_some()
        });
        if !exited {
            let _ = child.kill();
            panic!("started with [health] ready = [{ready}]");
        }
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(2), "{err}");
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn the_first_scrape_reports_every_backend_in_a_format_promtool_accepts() {
    let config = format!(
        "{}{}{}[[http]]\nname = \"down\"\nurl = \"http://127.0.0.1:{}/\"\n",
        server_section(),
        shared_mysql(),
        redis_section(env_var("SUAI_TEST_REDIS_PORT").parse().unwrap()),
        closed_port()
    );
    let a = start("fleet-metrics", &config);
    let m = a.get("/metrics");
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    for (backend, up) in [("database", 1), ("redis", 1), ("http/down", 0)] {
        let line = format!("suaicloudapp_probe_up{{backend=\"{backend}\"}} {up}\n");
        assert!(m.body.contains(&line), "{line} missing:\n{}", m.body);
        let ts =
            format!("suaicloudapp_probe_last_check_timestamp_seconds{{backend=\"{backend}\"}} ");
        assert!(m.body.contains(&ts), "{ts} missing:\n{}", m.body);
    }
    assert!(!m.body.contains("# EOF"), "{}", m.body);
    assert!(!m.body.contains(" info\n"), "{}", m.body);

    let out = run_with_stdin(
        Command::new("promtool").args(["check", "metrics"]),
        m.body.as_bytes(),
        "promtool (Debian package prometheus; scripts/test-env.sh up installs it)",
    );
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        m.body
    );

    let om = a.request(
        "GET",
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    );
    assert!(
        om.header("content-type")
            .is_some_and(|v| v.starts_with("application/openmetrics-text")),
        "{:?}",
        om.headers
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);

    let json = a.request("GET", "/", &[("Accept", "application/health+json")]);
    let doc: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    for (check, kind) in [
        ("database", "datastore"),
        ("redis", "datastore"),
        ("http/down", "component"),
    ] {
        assert_eq!(
            doc["checks"][format!("{check}:responseTime")][0]["componentType"],
            kind,
            "{doc}"
        );
    }
}

/// HAProxy in the foreground with `config`; killed on drop.
struct Haproxy {
    child: std::process::Child,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn haproxy_with_http_reuse_always_sees_no_5xx_across_idle_pauses() {
    let a = start("fleet-haproxy", &server_section());
    let (front, stats) = (closed_port(), closed_port());
    let dir = scratch_dir("fleet-haproxy");
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 500\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  http-reuse always\n\
             frontend fe\n  bind 127.0.0.1:{front}\n  default_backend app\n\
             backend app\n  http-reuse always\n  server app {} pool-purge-delay 60s\n\
             listen stats\n  bind 127.0.0.1:{stats}\n  stats enable\n  stats uri /stats\n",
            a.addr
        ),
    )
    .unwrap();
    let check = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .expect("haproxy (Debian package haproxy; scripts/test-env.sh up installs it)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _haproxy = Haproxy {
        child: Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let front: SocketAddr = format!("127.0.0.1:{front}").parse().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || TcpStream::connect(front)
            .is_ok()),
        "haproxy did not listen"
    );
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let burst = |round: usize| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let statuses = statuses.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        let r = send_raw(
                            front,
                            b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                        );
                        statuses.lock().unwrap().push((round, r.status));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    };
    for round in 0..3 {
        if round > 0 {
            // Longer than the 5 s after which a keep-alive connection used to be closed.
            std::thread::sleep(Duration::from_millis(6_500));
        }
        burst(round);
    }
    let statuses = statuses.lock().unwrap();
    let bad: Vec<_> = statuses.iter().filter(|(_, s)| *s != 200).collect();
    let csv = send_raw(
        format!("127.0.0.1:{stats}").parse().unwrap(),
        // HTTP/1.0: the page comes unchunked.
        b"GET /stats;csv HTTP/1.0\r\n\r\n",
    )
    .body;
    let header: Vec<&str> = csv
        .lines()
        .find(|l| l.starts_with("# pxname"))
        .unwrap_or_else(|| panic!("no CSV header: {csv}"))
        .split(',')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim_start_matches("# ") == name)
            .unwrap()
    };
    let server = csv
        .lines()
        .find(|l| l.starts_with("app,app,"))
        .expect("the server's stats row");
    let fields: Vec<&str> = server.split(',').collect();
    let (h5xx, reuse, conn_tot) = (
        fields[col("hrsp_5xx")],
        fields[col("reuse")],
        fields[col("connect")],
    );
    eprintln!(
        "haproxy: {} requests in 3 bursts 6.5 s apart, non-200 {bad:?}; server row hrsp_5xx={h5xx} connect={conn_tot} reuse={reuse}",
        statuses.len()
    );
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(h5xx, "0");
    assert_ne!(
        reuse, "0",
        "haproxy never reused a connection: the test proves nothing"
    );
}
