//! Hardening: floods and caps. Ten thousand requests against a cached probe, a thousand
//! slowloris connections, the connection cap, and a multi-gigabyte log tailed with bounded
//! memory. Rows of the "floods" and "memory" tables in docs/HARDENING.md.

use harness::hardening::*;
use harness::load::*;
use harness::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn mariadb_status(db: &OwnMariaDb, var: &str) -> u64 {
    db.sql(&format!("SHOW GLOBAL STATUS LIKE '{var}'"))
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {var}"))
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
            "backend saw": format!("{selects} SELECTs in {} ms (cache 250 ms: {windows} windows at most)", elapsed.as_millis()),
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
            "backend saw": format!("{pings} PINGs in {} ms (cache 250 ms: {windows} windows at most)", elapsed.as_millis()),
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
        // Ok means the server closed the connection after its answer (EOF within 5 s).
        let closed = s.read_to_string(&mut buf).is_ok();
        if closed && buf.starts_with("HTTP/1.1 503") {
            refused += 1;
        }
    }
    let refused_in = started.elapsed();
    assert_eq!(
        refused, 50,
        "the 50 connections over the cap got 503 and were closed"
    );
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
