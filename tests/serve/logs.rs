//! The log as an operator meets it after months unattended: the file stays within its size
//! bound and keeps the newest lines, an external logrotate can move it (SIGUSR1), `/logs` costs
//! bounded memory however many ask at once, and journald gets each line's priority.

use harness::load::peak_rss_kib;
use harness::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

/// Sends `GET path` on a keep-alive connection and reads the answer; returns its status.
fn get_keepalive(conn: &mut BufReader<TcpStream>, path: &str) -> u16 {
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    conn.get_mut().write_all(req.as_bytes()).unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        conn.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    conn.read_exact(&mut body).unwrap();
    status
}

/// The sequence numbers of `/seq/N/...` access lines in `text`, in order.
fn sequence_numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.split("path=/seq/").nth(1))
        .map(|rest| rest[..6].parse().unwrap())
        .collect()
}

/// Asserts that `seqs` is `last - len + 1 ..= last` without gap or repeat.
fn assert_continuous_up_to(seqs: &[u64], last: u64, what: &str) {
    let first = last + 1 - seqs.len() as u64;
    let want: Vec<u64> = (first..=last).collect();
    if seqs != want {
        let gap = seqs.windows(2).find(|w| w[1] != w[0] + 1);
        panic!(
            "{what}: {} lines, not {first}..={last} in order (first break: {gap:?}, ends {:?})",
            seqs.len(),
            seqs.last()
        );
    }
}

/// `[logs] max_bytes = 1 MiB, keep = 2` under a flood of 6 MiB of access lines: three files,
/// none over 1 MiB, no fourth, and the newest lines all there, in order; `/logs` reads across
/// the current file into the rotated ones.
#[test]
fn rotation_bounds_the_files_and_keeps_the_newest_lines_in_order() {
    let a = App::start(
        "rotate",
        &format!(
            "{}[logs]\nmax_bytes = {}\nkeep = 2\n",
            server_section(),
            MIB
        ),
    );
    // About 1 kB per access line: 6,000 requests write about 6 MiB.
    let pad = "x".repeat(900);
    let total = 6_000u64;
    let started = Instant::now();
    let mut conn = BufReader::new(TcpStream::connect(a.addr).unwrap());
    for i in 0..total {
        assert_eq!(get_keepalive(&mut conn, &format!("/seq/{i:06}/{pad}")), 404);
    }
    let flood = started.elapsed();
    // `/logs` writes out what is queued before it reads: every flood line is on disk after it.
    let r = a.get("/logs?lines=2000");
    assert_eq!(r.status, 200, "{}", r.body);
    let dir = &a.dir;
    let file = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let (current, one, two) = (
        file("output.log"),
        file("output.log.1"),
        file("output.log.2"),
    );
    assert!(
        !dir.join("output.log.3").exists(),
        "keep = 2 left a third rotated file"
    );
    let longest = [&current, &one, &two]
        .iter()
        .flat_map(|t| t.lines())
        .map(|l| l.len() as u64 + 1)
        .max()
        .unwrap();
    for (name, text) in [("output.log", &current), (".1", &one), (".2", &two)] {
        assert!(text.len() as u64 <= MIB, "{name}: {} bytes", text.len());
    }
    let on_disk = (current.len() + one.len() + two.len()) as u64;
    assert!(on_disk <= 3 * MIB + longest, "{on_disk} bytes on disk");
    // Both rotated files are full (within a line), so the bound is used, not just respected.
    assert!(one.len() as u64 + longest > MIB && two.len() as u64 + longest > MIB);
    let seqs = sequence_numbers(&format!("{two}{one}{current}"));
    assert_continuous_up_to(&seqs, total - 1, "the files");
    assert!(
        seqs.len() as u64 * longest >= 2 * MIB,
        "{} lines",
        seqs.len()
    );
    // The current file is short of 2,000 lines: the page also reads `.1`.
    let page = sequence_numbers(&r.body);
    assert!(
        page.len() > sequence_numbers(&current).len(),
        "{}",
        page.len()
    );
    assert!(
        page.len() >= 1_990,
        "{} flood lines on the page",
        page.len()
    );
    assert_continuous_up_to(&page, total - 1, "/logs?lines=2000");
    eprintln!(
        "rotation: {total} requests in {flood:?}; on disk {on_disk} bytes \
         (current {}, .1 {}, .2 {}), longest line {longest}, {} newest lines kept",
        current.len(),
        one.len(),
        two.len(),
        seqs.len()
    );
}

/// logrotate's `create` mode: the file is moved away, SIGUSR1 sent; the process keeps running
/// and writes its next lines to a new file at the configured path.
#[test]
fn sigusr1_reopens_a_log_file_moved_away() {
    let a = App::start("reopen", &server_section());
    assert_eq!(a.get("/before").status, 404);
    let log = a.dir.join("output.log");
    let moved = a.dir.join("output.log-20261203");
    assert!(
        eventually(Duration::from_secs(10), || a
            .log_file()
            .contains("path=/before")),
        "{}",
        a.log_file()
    );
    std::fs::rename(&log, &moved).unwrap();
    signal(a.child.id(), "USR1");
    // The line saying so is the first one in the new file.
    assert!(
        eventually(Duration::from_secs(10), || a
            .log_file()
            .contains("SIGUSR1: reopening the log file")),
        "no new file: {}",
        a.stderr()
    );
    assert_eq!(a.get("/after").status, 404);
    assert!(
        eventually(Duration::from_secs(10), || a
            .log_file()
            .contains("path=/after")),
        "{}",
        a.log_file()
    );
    let old = std::fs::read_to_string(&moved).unwrap();
    assert!(
        old.contains("path=/before") && !old.contains("path=/after"),
        "{old}"
    );
    assert!(!a.log_file().contains("path=/before"));
    assert_eq!(a.get("/health").status, 200);
}

/// 200 clients ask for `/logs?lines=5000` at once on a log of 2 kB lines (each answer is the
/// 4 MiB cap): at most two are read at a time, the others get 503 with `Retry-After: 1`, peak
/// memory grows by at most 64 MiB, and `/health` answers 200 throughout.
#[test]
fn concurrent_tails_are_capped_and_memory_stays_bounded() {
    let logs_dir = scratch_dir("tail-memory-log");
    let log = logs_dir.join("big.log");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
        let filler = "y".repeat(2_000);
        for i in 0..12_000 {
            writeln!(
                f,
                "2026-12-03T00:00:00.000000Z  INFO suaicloudapp::test: line {i:05} {filler}"
            )
            .unwrap();
        }
    }
    let a = App::start(
        "tail-memory",
        &format!("{}[logs]\nfile = \"{}\"\n", server_section(), log.display()),
    );
    assert_eq!(a.get("/health").status, 200);
    let pid = a.child.id();
    let before = peak_rss_kib(pid);
    assert!(before > 0, "no VmHWM for {pid}");

    let clients = 200;
    let barrier = Arc::new(Barrier::new(clients));
    let addr = a.addr;
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                barrier.wait();
                s.write_all(
                    b"GET /logs?lines=5000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                )
                .unwrap();
                let mut raw = Vec::new();
                s.read_to_end(&mut raw).unwrap();
                let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
                let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
                (status, head, raw.len() - head_end - 4)
            })
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let health = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let r = send_raw(
                    addr,
                    b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                );
                statuses.push((r.status, r.elapsed));
                std::thread::sleep(Duration::from_millis(20));
            }
            statuses
        })
    };
    let started = Instant::now();
    let answers: Vec<(u16, String, usize)> =
        workers.into_iter().map(|w| w.join().unwrap()).collect();
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let health = health.join().unwrap();
    let after = peak_rss_kib(pid);

    let served: Vec<_> = answers.iter().filter(|(s, ..)| *s == 200).collect();
    let refused: Vec<_> = answers.iter().filter(|(s, ..)| *s == 503).collect();
    assert_eq!(served.len() + refused.len(), clients, "other statuses");
    assert!(!served.is_empty());
    for (_, head, len) in &served {
        assert!(
            *len as u64 <= 4 * MIB && *len as u64 > 3 * MIB,
            "{len}: {head}"
        );
    }
    for (_, head, _) in &refused {
        assert!(
            head.to_ascii_lowercase().contains("\r\nretry-after: 1"),
            "{head}"
        );
    }
    assert!(!health.is_empty());
    assert!(health.iter().all(|(s, _)| *s == 200), "/health: {health:?}");
    let slowest = health.iter().map(|(_, e)| *e).max().unwrap();
    let grown_mib = after.saturating_sub(before) as f64 / 1024.0;
    eprintln!(
        "tails: {} served, {} refused in {took:?}; VmHWM {before} -> {after} KiB \
         (+{grown_mib:.1} MiB); /health {} x 200, slowest {slowest:?}",
        served.len(),
        refused.len(),
        health.len()
    );
    assert!(grown_mib <= 64.0, "peak RSS grew by {grown_mib:.1} MiB");
}

/// Spawns the binary with stderr going to a file, with `JOURNAL_STREAM` as given, triggers
/// info, warning and error lines, and returns (stderr, log file).
fn run_with_stderr_file(name: &str, journal_stream: JournalStream) -> (String, String) {
    let dir = scratch_dir(name);
    let port = closed_port();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!("[server]\nhost = \"127.0.0.1\"\nport = {port}\n"),
    )
    .unwrap();
    let stderr_path = dir.join("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let mut cmd = app_command();
    cmd.current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr));
    match journal_stream {
        JournalStream::Unset => {}
        JournalStream::ThisStderr => {
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        JournalStream::Elsewhere => {
            cmd.env(
                "JOURNAL_STREAM",
                format!("{}:{}", meta.dev(), meta.ino() + 1),
            );
        }
    }
    let mut child = cmd.spawn().unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let waited = |what: &str| {
        eventually(Duration::from_secs(20), || {
            read(&stderr_path).contains(what)
        })
    };
    let ok = waited("listening on");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    if ok {
        let r = send_raw(
            addr,
            b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.status, 200);
        // A reload that changes the listener: a warning. Then a malformed one: an error.
        std::fs::write(
            &config,
            format!("[server]\nhost = \"127.0.0.1\"\nport = {}\n", port + 1),
        )
        .unwrap();
        signal(child.id(), "HUP");
        waited("take effect at the next restart");
        std::fs::write(&config, "[server\n").unwrap();
        signal(child.id(), "HUP");
        waited("config reload rejected");
        waited("path=/health");
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "did not start: {}", read(&stderr_path));
    (read(&stderr_path), read(&dir.join("output.log")))
}

#[derive(Clone, Copy)]
enum JournalStream {
    Unset,
    ThisStderr,
    Elsewhere,
}

/// The stderr line holding `needle`.
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

/// Under systemd (stderr is the journal named by `JOURNAL_STREAM`) each stderr line starts with
/// its sd-daemon priority; the file keeps plain lines. Without the variable, or when it names
/// another stream (inherited by a process whose stderr was redirected), stderr is plain too.
#[test]
fn journald_gets_priority_prefixes_and_the_file_stays_plain() {
    let (stderr, file) = run_with_stderr_file("journal", JournalStream::ThisStderr);
    for (needle, prio) in [
        ("listening on", "<6>"),
        ("path=/health", "<6>"),
        ("take effect at the next restart", "<4>"),
        ("config reload rejected", "<3>"),
    ] {
        let line = line_with(&stderr, needle);
        assert!(line.starts_with(prio), "{prio} expected: {line}");
    }
    for line in stderr.lines() {
        let tagged = line.len() > 3
            && line.as_bytes()[0] == b'<'
            && line.as_bytes()[1].is_ascii_digit()
            && line.as_bytes()[2] == b'>';
        assert!(tagged, "untagged stderr line: {line:?}");
    }
    assert!(file.contains("path=/health"), "{file}");
    assert!(file.lines().all(|l| l.starts_with("20")), "{file}");

    for (name, how) in [
        ("journal-unset", JournalStream::Unset),
        ("journal-elsewhere", JournalStream::Elsewhere),
    ] {
        let (stderr, _) = run_with_stderr_file(name, how);
        assert!(stderr.contains("config reload rejected"), "{stderr}");
        assert!(
            stderr.lines().all(|l| !l.starts_with('<')),
            "{name}: {stderr}"
        );
    }
}
