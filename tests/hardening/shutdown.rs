//! Hardening: SIGTERM with a hundred requests in flight; every one is answered and logged.
//! The "shutdown" table in docs/HARDENING.md.

use harness::hardening::*;
use harness::load::record;
use harness::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
