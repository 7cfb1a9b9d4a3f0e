//! The listener: malformed requests (raw bytes, as no client would send them), the head
//! deadline, keep-alive, the connection cap, and the drain on shutdown.

use crate::support::{status_of, Fixture, StandIn};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::test]
async fn malformed_requests_get_4xx_and_the_server_keeps_serving() {
    let s = Fixture::new("").start().await;
    let big = "a".repeat(64 * 1024);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a 64 KiB header",
            format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").into_bytes(),
            431,
        ),
        (
            "an invalid method token",
            b"G@T /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a TLS hello on the plain port",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a header line without a colon",
            b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n".to_vec(),
            400,
        ),
    ];
    for (what, bytes, want) in cases {
        let answer = s.raw(&bytes).await;
        assert_eq!(status_of(&answer), want, "{what}: {answer:?}");
        assert_eq!(s.get("/health").await.body, "healthy", "after {what}");
    }
}

#[tokio::test]
async fn a_request_head_not_finished_in_time_is_dropped() {
    let s = Fixture::new("[server]\nheader_timeout_ms = 300\n")
        .start()
        .await;
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "still open after 5 s");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(s.get("/health").await.body, "healthy");
}

#[tokio::test]
async fn one_keep_alive_connection_carries_many_requests() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass())
        .start()
        .await;
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    for (path, body) in [
        ("/health", "healthy"),
        ("/database", "OK"),
        ("/health", "healthy"),
    ] {
        write
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut status = String::new();
        read.read_line(&mut status).await.unwrap();
        assert!(status.starts_with("HTTP/1.1 200 "), "{path}: {status:?}");
        let mut length = 0;
        loop {
            let mut line = String::new();
            read.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut got = vec![0; length];
        read.read_exact(&mut got).await.unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), body, "{path}");
    }
}

/// Two silent connections fill a cap of two; neither is an idle keep-alive to close, so a
/// third gets the overflow answer: 503 for a page, but `/health` still 200.
#[tokio::test]
async fn over_the_connection_cap_health_still_answers_and_the_rest_is_503() {
    let s = Fixture::new("[server]\nmax_connections = 2\nheader_timeout_ms = 5000\n")
        .start()
        .await;
    let _held = [
        TcpStream::connect(s.addr).await.unwrap(),
        TcpStream::connect(s.addr).await.unwrap(),
    ];
    let close = "Connection: close\r\n\r\n";
    // The accept loop takes the held connections in its own time: ask until the cap shows.
    let mut answer = String::new();
    for _ in 0..50 {
        answer = s
            .raw(format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{close}").as_bytes())
            .await;
        if status_of(&answer) == 503 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(status_of(&answer), 503, "{answer}");
    assert!(answer.ends_with("connection limit reached\n"), "{answer}");
    let health = s
        .raw(format!("GET /health HTTP/1.1\r\nHost: x\r\n{close}").as_bytes())
        .await;
    assert_eq!(status_of(&health), 200, "{health}");
    assert!(health.ends_with("healthy"), "{health}");
}

/// What SIGTERM does in the binary, through `serve`'s shutdown future: a request in flight
/// gets its answer, then nothing more is accepted.
#[tokio::test]
async fn shutdown_drains_the_request_in_flight_then_stops_accepting() {
    let slow = StandIn::hang().budget_ms(500);
    let calls = slow.calls();
    let s = Fixture::new("[server]\nshutdown_grace_ms = 5000\n")
        .probe("database", slow)
        .start()
        .await;
    let addr = s.addr;
    let in_flight = tokio::spawn(async move {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /database HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).await.unwrap();
        answer
    });
    calls.started().await;
    s.stop().await;
    let answer = in_flight.await.unwrap();
    assert_eq!(status_of(&answer), 503, "{answer}");
    assert!(answer.contains("ERROR: timeout: no answer"), "{answer}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed once serve has returned"
    );
}
