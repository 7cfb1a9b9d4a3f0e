//! Load and fault helpers for the hardening tests: keep-alive request loops with latency
//! percentiles, a black-holed port, and the results file that docs/HARDENING.md is made from.
//! Every loop here is bounded in count and time, and every target is on 127.0.0.1.

use crate::http::Conn;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Latencies and status codes from a run of requests.
#[derive(Debug, Default, Clone)]
pub struct Run {
    pub latencies: Vec<Duration>,
    pub statuses: Vec<u16>,
    pub errors: usize,
}

impl Run {
    /// The q-quantile latency (0.5, 0.99...).
    pub fn quantile(&self, q: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
    }

    /// Requests answered with `code`.
    pub fn count(&self, code: u16) -> usize {
        self.statuses.iter().filter(|&&s| s == code).count()
    }

    /// Merges another run into this one.
    pub fn absorb(&mut self, other: Run) {
        self.latencies.extend(other.latencies);
        self.statuses.extend(other.statuses);
        self.errors += other.errors;
    }
}

/// Sends `n` GETs for `path` over one keep-alive connection, reconnecting if it closes.
pub fn keepalive(addr: SocketAddr, path: &str, n: usize) -> Run {
    let mut run = Run::default();
    let mut conn: Option<Conn> = None;
    for _ in 0..n {
        if conn.as_ref().is_none_or(Conn::is_closed) {
            match Conn::open(addr) {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    run.errors += 1;
                    continue;
                }
            }
        }
        let started = Instant::now();
        match conn
            .as_mut()
            .unwrap()
            .send("GET", path, &[("host", "load")])
        {
            Ok(resp) => {
                run.latencies.push(started.elapsed());
                run.statuses.push(resp.status);
                if resp
                    .header("connection")
                    .is_some_and(|v| v.contains("close"))
                {
                    conn = None;
                }
            }
            Err(_) => {
                run.errors += 1;
                conn = None;
            }
        }
    }
    run
}

/// `conns` threads each sending `per_conn` keep-alive requests.
pub fn flood(addr: SocketAddr, path: &str, conns: usize, per_conn: usize) -> Run {
    let path = path.to_string();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || keepalive(addr, &path, per_conn))
        })
        .collect();
    let mut total = Run::default();
    for t in threads {
        total.absorb(t.join().unwrap());
    }
    total
}

/// A port whose accept queue is full: new connections hang in SYN-SENT until the client's
/// connect timeout, as behind a security group that drops packets.
pub struct BlackHole {
    pub port: u16,
    _listener: socket2::Socket,
    _fillers: Vec<std::net::TcpStream>,
}

impl BlackHole {
    /// Listens with backlog 0 and fills the queue with connections that are never accepted.
    pub fn start() -> BlackHole {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        s.listen(0).unwrap();
        let port = s.local_addr().unwrap().as_socket().unwrap().port();
        let mut fillers = Vec::new();
        // Fill the accept queue; once full, the kernel drops further SYNs.
        for _ in 0..4 {
            if let Ok(c) = TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(200),
            ) {
                fillers.push(c);
            }
        }
        BlackHole {
            port,
            _listener: s,
            _fillers: fillers,
        }
    }
}

/// Appends one result row for docs/HARDENING.md (rendered by scripts/hardening-report.sh).
pub fn record(table: &str, row: serde_json::Value) {
    let dir = PathBuf::from(super::REPO).join("target/hardening");
    std::fs::create_dir_all(&dir).unwrap();
    let mut doc = row;
    doc["table"] = table.into();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("results.jsonl"))
        .unwrap();
    writeln!(f, "{doc}").unwrap();
}

/// Milliseconds with one decimal, for reports.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Peak resident memory of a process in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
