//! The core binary: /health, routing, /logs, config errors, CLI, SIGTERM drain.

use harness::*;
use std::time::Duration;

fn app(name: &str, extra: &str) -> App {
    App::start(name, &format!("{}{extra}", server_section()))
}

#[test]
fn health_get_and_head() {
    let a = app("health", "");
    let r = a.get("/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "healthy");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let h = a.request("HEAD", "/health", &[]);
    assert_eq!(h.status, 200);
    assert_eq!(h.body, "", "HEAD has no body");
    assert_eq!(h.header("content-length"), Some("7"));
}

#[test]
fn health_never_touches_a_backend() {
    // Every backend points at a hung server: /health must still answer at once.
    let hung = HungServer::start();
    let p = hung.port;
    let a = app(
        "health-hung",
        &format!("[database]\nhost=\"127.0.0.1\"\nport={p}\nuser=\"u\"\ndbname=\"d\"\n[redis]\nhost=\"127.0.0.1\"\nport={p}\n"),
    );
    let r = a.get("/health");
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));
    assert!(r.elapsed < Duration::from_millis(500), "{:?}", r.elapsed);
}

#[test]
fn unknown_path_wrong_method_and_unconfigured_section() {
    let a = app("routes", "");
    let r = a.get("/nope");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = a.request("POST", "/health", &[("Content-Length", "0")]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    for page in ["database", "redis", "s3", "dynamodb"] {
        let r = a.get(&format!("/{page}"));
        assert_eq!(r.status, 404, "{page}");
        assert!(r.body.starts_with("not configured"), "{page}: {}", r.body);
        assert!(r.body.contains(&format!("[{page}]")), "{}", r.body);
    }
}

#[test]
fn logs_show_request_lines_tail_and_cap() {
    let a = app("logs", "[logs]\nmax_lines = 5\n");
    for i in 0..10 {
        assert_eq!(a.get(&format!("/health?n={i}")).status, 200);
    }
    // The file writer is non-blocking: wait until all ten lines have landed.
    assert!(eventually(Duration::from_secs(5), || a
        .log_file()
        .matches("path=/health")
        .count()
        == 10));
    let r = a.get("/logs");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.body.lines().count(), 5, "capped at max_lines: {}", r.body);
    assert!(eventually(Duration::from_secs(5), || a
        .log_file()
        .contains("path=/logs")));
    let r = a.get("/logs?lines=2");
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.body);
    assert!(
        lines[1].contains("path=/logs") && lines[1].contains("status=200"),
        "{}",
        r.body
    );
    assert!(
        lines[0].contains("method=GET path=/health status=200"),
        "{}",
        r.body
    );
    assert!(
        lines[0].contains("latency_ms=") && lines[0].contains("peer=127.0.0.1:"),
        "{}",
        r.body
    );
    // The same lines are in output.log in the working directory and on stderr.
    assert!(a.log_file().contains("path=/health status=200"));
    a.wait_stderr(Duration::from_secs(5), |e| {
        e.contains("path=/health status=200")
    });
    for bad in [
        "/logs?lines=abc",
        "/logs?lines=0",
        "/logs?lines=-3",
        "/logs?x=1",
        "/logs?lines=1&lines=2",
    ] {
        assert_eq!(a.get(bad).status, 400, "{bad}");
    }
}

#[test]
fn access_lines_follow_the_level_filter_and_its_reload() {
    let quiet = "[logs]\nlevel = \"info,suaicloudapp::access=warn\"\n";
    let a = app("logs-level", quiet);
    for _ in 0..3 {
        assert_eq!(a.get("/health").status, 200);
    }
    // `/logs` writes out what is pending before reading the file.
    let r = a.get("/logs?lines=100");
    assert!(
        r.body.contains("listening on"),
        "other INFO lines stay: {}",
        r.body
    );
    assert!(!r.body.contains("suaicloudapp::access"), "{}", r.body);

    let loud = format!("{}[logs]\nlevel = \"info\"\n", server_section());
    std::fs::write(a.dir.join("config.toml"), loud).unwrap();
    signal(a.child.id(), "HUP");
    assert!(eventually(Duration::from_secs(10), || a
        .stderr()
        .contains("config reloaded")));
    assert_eq!(a.get("/health").status, 200);
    assert!(eventually(Duration::from_secs(5), || a
        .log_file()
        .contains("path=/health status=200")));
    let log = a.log_file();
    assert_eq!(
        log.matches("suaicloudapp::access").count(),
        1,
        "only the request after the reload: {log}"
    );
}

#[test]
fn logs_token_is_required_when_set_and_never_logged() {
    let token = "tok-Very-Secret-42-0123456789abcdef";
    let a = app("logs-token", &format!("[logs]\ntoken = \"{token}\"\n"));
    let r = a.get("/logs");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(
        a.request("GET", "/logs", &[("Authorization", "Bearer wrong")])
            .status,
        401
    );
    // The refusals' access lines reach the file through the log's writer thread: poll.
    let authorized = || {
        a.request(
            "GET",
            "/logs",
            &[("Authorization", &format!("Bearer {token}"))],
        )
    };
    assert!(eventually(Duration::from_secs(5), || authorized()
        .body
        .contains("status=401")));
    let ok = authorized();
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("status=401"));
    assert!(
        !ok.body.contains(token) && !a.log_file().contains(token) && !a.stderr().contains(token)
    );
}

#[test]
fn logs_can_be_disabled() {
    let a = app("logs-off", "[logs]\nenabled = false\n");
    let r = a.get("/logs");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("disabled"));
}

#[test]
fn log_file_path_is_configurable() {
    let a = app("logs-path", "[logs]\nfile = \"custom.log\"\n");
    a.get("/health");
    assert!(harness::eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(a.dir.join("custom.log"))
            .unwrap_or_default()
            .contains("path=/health")
    }));
}

#[test]
fn slow_request_head_is_dropped_after_header_timeout() {
    use std::io::{Read, Write};
    let a = app("slowloris", "header_timeout_ms = 300\n");
    let mut s = std::net::TcpStream::connect(a.addr).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed by the server, not our timeout"
    );
    // Others are still served.
    assert_eq!(a.get("/health").status, 200);
}

/// Reads one response (head plus `content-length` body) from a keep-alive connection.
fn read_response(r: &mut impl std::io::BufRead) -> Option<(u16, String)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })?
        .parse()
        .ok()?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// An app whose `/redis` waits on a server that never answers, until the probe's timeout.
/// `server` goes into the `[server]` section; keep the returned server alive.
fn app_with_hung_redis(name: &str, server: &str, timeout_ms: u64) -> (HungServer, App) {
    let hung = HungServer::start();
    let extra = format!(
        "{server}[redis]\nhost = \"127.0.0.1\"\nport = {}\n[probes]\ntimeout_ms = {timeout_ms}\n",
        hung.port
    );
    let a = app(name, &extra);
    (hung, a)
}

#[test]
fn the_head_deadline_runs_from_each_answer_and_spares_a_slow_probe() {
    use std::io::{BufReader, Read, Write};
    let (_hung, a) = app_with_hung_redis(
        "head-deadline",
        "header_timeout_ms = 300\nkeepalive_timeout_ms = 300\n",
        1000,
    );
    let s = std::net::TcpStream::connect(a.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    // A client that asks every 100 ms keeps its connection well past 300 ms.
    let started = std::time::Instant::now();
    for i in 0..8 {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        w.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(
            read_response(&mut r),
            Some((200, "healthy".to_string())),
            "request {i}, {:?} after connecting",
            started.elapsed()
        );
    }
    // A probe that takes longer than the head deadline still gets its answer.
    w.write_all(b"GET /redis HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, body) = read_response(&mut r).expect("the slow probe's answer");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("timeout"), "{body}");
    // Then the connection is idle: the server closes it after the keep-alive timeout, 300 ms.
    let idle = std::time::Instant::now();
    let mut rest = Vec::new();
    let n = r
        .read_to_end(&mut rest)
        .expect("closed by the server, not our read timeout");
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&rest));
    assert!(
        idle.elapsed() >= Duration::from_millis(250),
        "{:?}",
        idle.elapsed()
    );
    assert!(
        idle.elapsed() < Duration::from_secs(3),
        "{:?}",
        idle.elapsed()
    );
}

/// `printf 'GET /health ...' | nc -N`, and clients like it, shut their sending side once the
/// request is out. They still get the whole answer, a slow probe's too, and then the close.
#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    use std::io::{Read, Write};
    let (_hung, a) = app_with_hung_redis("half-close", "", 500);
    for (path, status, body) in [("/health", 200, "healthy"), ("/redis", 503, "timeout")] {
        let mut s = std::net::TcpStream::connect(a.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer)
            .unwrap_or_else(|e| panic!("{path}: no close within 5 s ({e}): {answer:?}"));
        let mut r = std::io::BufReader::new(answer.as_bytes());
        let (got, text) = read_response(&mut r).unwrap_or_else(|| panic!("{path}: {answer:?}"));
        assert_eq!(got, status, "{path}: {answer}");
        assert!(text.contains(body), "{path}: {answer}");
    }
}

#[test]
fn connections_over_the_cap_get_503_except_health() {
    let a = app("cap", "max_connections = 2\nheader_timeout_ms = 5000\n");
    let _held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(a.addr).unwrap())
        .collect();
    // Give the server a moment to accept both held connections: poll until refusal shows.
    assert!(eventually(Duration::from_secs(5), || a
        .get("/metrics")
        .status
        == 503));
    let r = a.get("/metrics");
    assert_eq!(r.status, 503);
    assert!(r.body.contains("connection limit"));
    // Two silent new connections are not idle ones to close: /health is still answered.
    assert_eq!(a.get("/health").status, 200);
    // The log is written by its own thread (a request never waits on journald): poll.
    a.wait_stderr(Duration::from_secs(5), |e| {
        e.contains("connection limit reached")
    });
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let hung = HungServer::start();
    let a = app(
        "drain",
        &format!(
            "[redis]\nhost=\"127.0.0.1\"\nport={}\ntimeout_ms=1500\n",
            hung.port
        ),
    );
    let addr = a.addr;
    let inflight = std::thread::spawn(move || {
        send_raw(
            addr,
            b"GET /redis HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    });
    // The request is in flight once the probe has connected to the hung server.
    assert!(eventually(Duration::from_secs(5), || hung.accepted() > 0));
    let mut a = a;
    a.terminate();
    let r = inflight.join().unwrap();
    assert_eq!(r.status, 503, "the in-flight request completed: {}", r.body);
    assert!(r.body.starts_with("ERROR: timeout:"), "{}", r.body);
    let status = a.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    // After exit, the log holds the drained request and the final line: it was flushed.
    let log = a.log_file();
    assert!(log.contains("path=/redis status=503"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    // And nothing is accepted any more.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

fn run_cli(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = app_command().args(args).current_dir(dir).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn the_root_config_toml_validates_and_show_masks_its_password() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, out, _) = run_cli(&["config", "validate"], root);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run_cli(&["config", "show"], root);
    assert_eq!(code, 0);
    assert!(out.contains("password = \"***\""), "{out}");
    assert!(!out.contains("change-me-please"), "{out}");
    assert!(
        out.contains("header_timeout_ms = 5000"),
        "defaults filled in: {out}"
    );
}

#[test]
fn bad_configs_exit_2_with_file_line_column_and_serve_nothing() {
    let dir = scratch_dir("badcfg");
    let cases = [
        ("[server]\nport = = 1\n", "config.toml:2:8: "),
        ("[server]\nport = \"x\"\n", "config.toml:2:8: invalid type"),
        ("[server]\nprot = 1\n", "did you mean `port`?"),
        (
            "[redis]\nhost = \"r\"\nport = 99999\n",
            "config.toml:3:8: port must be between 1 and 65535",
        ),
        (
            "[database]\nhost = \"\"\nuser = \"u\"\ndbname = \"d\"\n",
            "config.toml:2:8: host must not be empty",
        ),
        // A backend's own values are checked at load too, not by a 503 on its first check.
        (
            "[sns]\ntopic_arn = \"suai-test-topic\"\n",
            "config.toml:2:13: \"suai-test-topic\" is not an SNS topic ARN",
        ),
        (
            "[lambda]\nfunction = \"my function\"\n",
            "config.toml:2:12: \"my function\" is not a Lambda function name or ARN",
        ),
        (
            "[kinesis]\nstream = \"arn:aws:kinesis:us-east-1:123456789012:stream/s\"\n",
            "config.toml:2:10: \"arn:aws:kinesis:us-east-1:123456789012:stream/s\" is not a stream name",
        ),
        (
            "[firehose]\ndelivery_stream = \"to s3\"\n",
            "config.toml:2:19: \"to s3\" is not a delivery stream name",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(dir.join("config.toml"), text).unwrap();
        for args in [&["config", "validate"][..], &[][..]] {
            let (code, _, err) = run_cli(args, &dir);
            assert_eq!(code, 2, "{text:?} {args:?}: {err}");
            assert!(err.contains(want), "{text:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "one message: {err}");
        }
    }
    let (code, _, err) = run_cli(&["--config", "missing.toml"], &dir);
    assert_eq!(code, 2);
    assert!(
        err.contains("missing.toml: cannot read the config: no such file"),
        "{err}"
    );
    assert!(
        !dir.join("output.log").exists(),
        "nothing started on a bad config"
    );
}

#[test]
fn help_and_version_are_useful_and_secret_free() {
    let dir = scratch_dir("help");
    std::fs::write(
        dir.join("config.toml"),
        "[database]\nhost=\"h\"\nuser=\"u\"\npassword=\"pw-in-file-77\"\ndbname=\"d\"\n",
    )
    .unwrap();
    let (code, out, _) = run_cli(&["--help"], &dir);
    assert_eq!(code, 0);
    for word in [
        "serve",
        "check",
        "config",
        "--config",
        "SUAICLOUDAPP_DATABASE_PASSWORD",
        "/health",
    ] {
        assert!(out.contains(word), "--help mentions {word}: {out}");
    }
    assert!(!out.contains("pw-in-file-77"));
    let (code, out, _) = run_cli(&["--version"], &dir);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("suaicloudapp {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn seed_launch_line_reads_config_toml_in_the_working_directory() {
    // `./suaicloudapp` with no arguments: the seed's way of starting it.
    let a = App::start("seedlaunch", "[server]\nhost = \"127.0.0.1\"\nport = 0\n");
    assert_eq!(a.get("/health").body, "healthy");
}

/// On one CPU the binary runs the single-threaded scheduler (see `runtime` in src/lib.rs):
/// pages, a probe's timeout and the log still work there. And `/logs` lists every request
/// answered before it, without waiting: lines still queued for the log writer are written
/// first.
#[test]
fn one_cpu_serves_and_logs_show_every_answered_request() {
    let hung = HungServer::start();
    let config = format!(
        "{}[redis]\nhost = \"127.0.0.1\"\nport = {}\n[probes]\ntimeout_ms = 300\n",
        server_section(),
        hung.port
    );
    // The first CPU this test may use (a container or CI runner may not have CPU 0).
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let allowed = own
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    let cpu = allowed
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .to_string();
    let a = Starting::spawn_wrapped(&["taskset", "-c", &cpu], "one-cpu", Some(&config), &[], &[])
        .wait_listening(Duration::from_secs(20));
    let status = std::fs::read_to_string(format!("/proc/{}/status", a.child.id())).unwrap();
    assert!(
        status.contains(&format!("Cpus_allowed_list:\t{cpu}\n")),
        "not pinned to CPU {cpu}: {status}"
    );
    let r = a.get("/redis");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("within 300 ms"), "{}", r.body);
    // Twenty answers in far less than the writer's rest: most of their lines are still queued.
    for i in 0..20 {
        assert_eq!(a.get(&format!("/health?one-cpu={i}")).status, 200);
    }
    let r = a.get("/logs?lines=50");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body.matches("path=/health status=200").count(),
        20,
        "{}",
        r.body
    );
    assert!(r.body.contains("path=/redis status=503"), "{}", r.body);
}

/// A stderr nobody reads (a hung journald, a parent that stopped reading) must hang nothing:
/// pages keep answering, `/logs` answers from the file as it is (the one writer thread is
/// stuck, so the file stops growing too, as before), and SIGTERM still ends the process.
#[test]
fn a_stderr_nobody_reads_hangs_nothing() {
    let port = closed_port();
    let dir = scratch_dir("stderr-stall");
    std::fs::write(
        dir.join("config.toml"),
        format!("[server]\nhost = \"127.0.0.1\"\nport = {port}\n"),
    )
    .unwrap();
    let mut child = app_command()
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Held open and never read: once the pipe's 64 KiB are full, every write to it blocks.
    let _stderr = child.stderr.take().unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(
        eventually(Duration::from_secs(20), || std::net::TcpStream::connect(
            addr
        )
        .is_ok()),
        "never listened"
    );
    let get = |path: &str| {
        send_raw(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    };
    // About 130 bytes per access line: 1,500 lines are three pipes' worth.
    for _ in 0..1500 {
        assert_eq!(get("/health").status, 200);
    }
    let r = get("/logs?lines=5");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    assert_eq!(r.body.lines().count(), 5, "{}", r.body);
    signal(child.id(), "TERM");
    let stopped = eventually(Duration::from_secs(20), || {
        child.try_wait().unwrap().is_some()
    });
    if !stopped {
        let _ = child.kill();
    }
    assert!(
        stopped,
        "SIGTERM did not end the process while stderr was full"
    );
}

const OPEN_LOGS: &str = "/logs is unauthenticated: anyone who reaches the port reads the log";

#[test]
fn an_open_logs_page_is_said_once_at_start_and_by_config_show() {
    let open = app("logs-open", "");
    open.wait_stderr(Duration::from_secs(10), |s| s.contains("listening on"));
    eventually(Duration::from_secs(10), || {
        open.log_file().contains(OPEN_LOGS)
    });
    assert_eq!(
        open.log_file().matches(OPEN_LOGS).count(),
        1,
        "{}",
        open.log_file()
    );
    assert!(open
        .log_file()
        .lines()
        .any(|l| l.contains("WARN") && l.contains(OPEN_LOGS)));
    let token = format!("[logs]\ntoken = \"{}\"\n", "t".repeat(32));
    let closed = app("logs-closed", &token);
    closed.wait_stderr(Duration::from_secs(10), |s| s.contains("listening on"));
    assert!(!closed.stderr().contains(OPEN_LOGS), "{}", closed.stderr());

    let dir = scratch_dir("logs-open-show");
    std::fs::write(dir.join("config.toml"), server_section()).unwrap();
    let (code, out, _) = run_cli(&["config", "show"], &dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("# {OPEN_LOGS}")), "{out}");
    std::fs::write(
        dir.join("config.toml"),
        format!("{}{token}", server_section()),
    )
    .unwrap();
    let (_, out, _) = run_cli(&["config", "show"], &dir);
    assert!(!out.contains(OPEN_LOGS), "{out}");
}

#[test]
fn a_short_logs_token_is_a_config_error_that_never_shows_the_token() {
    let dir = scratch_dir("logs-short");
    let token = "Short-But-Secret-Token-17";
    std::fs::write(
        dir.join("config.toml"),
        format!("{}[logs]\ntoken = \"{token}\"\n", server_section()),
    )
    .unwrap();
    let (code, out, err) = run_cli(&["config", "validate"], &dir);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("[logs] token is 25 characters; it must be at least 32"),
        "{err}"
    );
    assert!(!err.contains(token) && !out.contains(token), "{err}");
}

#[test]
fn the_access_line_records_x_forwarded_for_beside_the_peer() {
    let a = app("xff", "");
    let r = a.request(
        "GET",
        "/health",
        &[("X-Forwarded-For", "203.0.113.7, 10.0.1.5")],
    );
    assert_eq!(r.status, 200);
    let line = || {
        a.log_file()
            .lines()
            .find(|l| l.contains("path=/health") && l.contains("forwarded_for="))
            .map(str::to_string)
    };
    assert!(
        eventually(Duration::from_secs(10), || line().is_some()),
        "{}",
        a.log_file()
    );
    let line = line().unwrap();
    assert!(line.contains(" peer=127.0.0.1:"), "{line}");
    assert!(
        line.ends_with(" forwarded_for=203.0.113.7,10.0.1.5"),
        "{line}"
    );
}
