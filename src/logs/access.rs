//! The access line: one per answered request, formatted by hand on the request's thread and
//! queued for the writer, plus the clock every log line's timestamp comes from.
//!
//! This is `/health`'s hot path (benchmarked against nginx): it must not allocate per request,
//! take more than the queue's short lock, or touch a file. Its bytes must stay identical to what
//! the fmt layer writes for the same event (a unit test compares them).

use super::journal::Priority;
use super::{ACCESS_ON, GLOBAL};
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// One request's access line.
pub struct Access<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub latency: Duration,
    /// The client's address, formatted once per connection.
    pub peer: &'a str,
    /// `X-Forwarded-For` when the request has one: behind an ALB the peer is the balancer's
    /// node, and this is the client the balancer saw (appended last by the balancer).
    pub forwarded_for: Option<&'a str>,
}

/// The most of an `X-Forwarded-For` an access line keeps: a client may send a long one.
const MAX_FORWARDED: usize = 256;

/// The target access lines are logged under (and filtered by: `suaicloudapp::access=warn`
/// turns them off).
pub const ACCESS_TARGET: &str = "suaicloudapp::access";

thread_local! {
    /// Where this thread formats its access lines, reused.
    static ACCESS_LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Logs one access line at INFO, byte for byte what the fmt layer writes for
/// `info!(target: ACCESS_TARGET, method, path, status, latency_ms, peer, "request")`, but
/// formatted here and queued directly: the fmt layer's generic field visitor costs more than
/// the rest of a `/health` answer. The level filter applies through [`ACCESS_ON`].
pub fn access(a: &Access<'_>) {
    let Some(queue) = GLOBAL.get() else {
        // Another subscriber owns this process (unit tests): go through it.
        if let Some(forwarded) = a.forwarded_for {
            tracing::info!(
                target: ACCESS_TARGET,
                method = %a.method,
                path = %a.path,
                status = a.status,
                latency_ms = %Millis3(a.latency),
                peer = %a.peer,
                forwarded_for = %forwarded,
                "request"
            );
            return;
        }
        tracing::info!(
            target: ACCESS_TARGET,
            method = %a.method,
            path = %a.path,
            status = a.status,
            latency_ms = %Millis3(a.latency),
            peer = %a.peer,
            "request"
        );
        return;
    };
    if !ACCESS_ON.load(Ordering::Relaxed) {
        return;
    }
    ACCESS_LINE.with_borrow_mut(|line| {
        line.clear();
        format_access(line, a);
        queue.push(line, Priority::INFO);
    });
}

/// What follows the timestamp's fraction, up to the method: one copy instead of four.
/// `format!("Z  INFO {ACCESS_TARGET}: request method=")`; the unit test that compares lines
/// with the fmt layer's keeps the two in step.
const AFTER_FRACTION: &[u8] = b"Z  INFO suaicloudapp::access: request method=";

/// The line, in bytes: constant pieces are fixed-size copies the compiler writes inline, and
/// numbers are written digit by digit: a call to libc's `memcpy` for a few bytes costs more
/// than the copy.
fn format_access(line: &mut Vec<u8>, a: &Access<'_>) {
    push_timestamp(line);
    line.extend_from_slice(AFTER_FRACTION);
    // The method and the peer go in as they are: hyper only accepts a method made of token
    // characters, and the peer is a socket address this process formatted. Only the path
    // comes from the client as it was sent.
    line.extend_from_slice(a.method.as_bytes());
    line.extend_from_slice(b" path=");
    push_plain(line, a.path);
    line.extend_from_slice(b" status=");
    if (100..1000).contains(&a.status) {
        line.extend_from_slice(&digits::<3>(u32::from(a.status)));
    } else {
        line.extend_from_slice(itoa::Buffer::new().format(a.status).as_bytes());
    }
    line.extend_from_slice(b" latency_ms=");
    push_millis3(line, a.latency);
    line.extend_from_slice(b" peer=");
    line.extend_from_slice(a.peer.as_bytes());
    if let Some(forwarded) = a.forwarded_for {
        line.extend_from_slice(b" forwarded_for=");
        push_forwarded(line, forwarded);
    }
    line.push(b'\n');
}

/// The header's addresses without its spaces (`203.0.113.7, 10.0.1.5` becomes
/// `203.0.113.7,10.0.1.5`, one token for whoever splits the line on spaces), control
/// characters escaped, at most [`MAX_FORWARDED`] bytes.
fn push_forwarded(line: &mut Vec<u8>, value: &str) {
    let start = line.len();
    for c in value.chars().filter(|c| !c.is_whitespace()) {
        if c.is_control() {
            line.extend_from_slice(c.escape_debug().to_string().as_bytes());
        } else {
            let mut buf = [0u8; 4];
            line.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        if line.len() - start >= MAX_FORWARDED {
            break;
        }
    }
}

/// Milliseconds with three decimals (`0.014`), from integers: float formatting is the
/// costliest way to write a number.
fn push_millis3(line: &mut Vec<u8>, latency: Duration) {
    // From the seconds and the sub-second part: `as_micros` is a u128, and dividing one costs
    // a library call.
    let millis = latency.as_secs() * 1000 + u64::from(latency.subsec_millis());
    line.extend_from_slice(itoa::Buffer::new().format(millis).as_bytes());
    line.push(b'.');
    line.extend_from_slice(&digits::<3>(latency.subsec_micros() % 1000));
}

/// The last `N` decimal digits of `value`, with leading zeros (`7` → `007`). Divisions by the
/// constant 10 only (a multiplication each), and an array the caller copies at a fixed size.
fn digits<const N: usize>(mut value: u32) -> [u8; N] {
    let mut out = [b'0'; N];
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    out
}

/// [`push_millis3`] for the fmt layer (unit tests, the fallback).
struct Millis3(Duration);

impl std::fmt::Display for Millis3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = Vec::new();
        push_millis3(&mut text, self.0);
        f.write_str(std::str::from_utf8(&text).map_err(|_| std::fmt::Error)?)
    }
}

/// A field value as the fmt layer shows it: as is, with control characters escaped so a line
/// stays one line (the HTTP parser already refuses them in paths; this is the second guard).
fn push_plain(line: &mut Vec<u8>, value: &str) {
    if value.bytes().any(|b| b.is_ascii_control()) {
        line.extend_from_slice(value.escape_debug().to_string().as_bytes());
    } else {
        line.extend_from_slice(value.as_bytes());
    }
}

/// RFC 3339 UTC timestamps with microseconds, the stock format (`2026-12-02T05:52:10.123456Z`).
/// The stock clock converts the date for every line; this one converts it once per second and
/// thread and reuses it.
pub struct Clock;

thread_local! {
    /// The second last formatted on this thread, and its text up to the fraction's point
    /// included.
    static SECOND: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

impl FormatTime for Clock {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        // Other events are few (start, warnings): a short-lived buffer is fine for them.
        let mut stamp = Vec::with_capacity(27);
        push_timestamp(&mut stamp);
        stamp.push(b'Z');
        w.write_str(std::str::from_utf8(&stamp).map_err(|_| std::fmt::Error)?)
    }
}

/// Appends the current time in [`Clock`]'s format up to the fraction, without the closing
/// `Z` (the access line writes it with what follows). The access line calls it directly,
/// without the fmt layer's `Writer` and a UTF-8 check of the fraction.
fn push_timestamp(line: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != now.as_secs() {
            let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs());
            let mut stamp = humantime::format_rfc3339_seconds(whole).to_string();
            stamp.pop(); // the 'Z'; the fraction goes before it
            stamp.push('.');
            *text = stamp.into_bytes();
            *second = now.as_secs();
        }
        line.extend_from_slice(text);
    });
    line.extend_from_slice(&digits::<6>(now.subsec_micros()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt;
    use tracing_subscriber::layer::SubscriberExt;

    /// The fast access line must stay byte-identical to what the fmt layer writes for the same
    /// event: scripts and the tests parse it.
    #[test]
    fn access_line_matches_the_fmt_layer() {
        use tracing_subscriber::fmt::MakeWriter;
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Buf {
            type Writer = Buf;
            fn make_writer(&'a self) -> Buf {
                self.clone()
            }
        }
        let cases = [
            (
                "GET",
                "/health",
                200,
                Duration::from_micros(14),
                "127.0.0.1:55196",
            ),
            (
                "HEAD",
                "/database",
                503,
                Duration::from_micros(3_000_123),
                "[::1]:8080",
            ),
            (
                "PATCH",
                "/a%20b",
                405,
                Duration::from_millis(12),
                "10.0.0.7:1",
            ),
            // Not an HTTP status (hyper's are 100-999), but the line must stay right.
            ("GET", "/", 1000, Duration::from_secs(86_400), "[::1]:1"),
        ];
        for (method, path, status, latency, peer) in cases {
            for forwarded in [None, Some("203.0.113.7,10.0.1.5")] {
                let buf = Buf::default();
                let subscriber = tracing_subscriber::registry().with(
                    fmt::layer()
                        .with_ansi(false)
                        .with_timer(Clock)
                        .with_writer(buf.clone()),
                );
                tracing::subscriber::with_default(subscriber, || match forwarded {
                    None => tracing::info!(
                        target: ACCESS_TARGET,
                        method = %method,
                        path = %path,
                        status,
                        latency_ms = %Millis3(latency),
                        peer = %peer,
                        "request"
                    ),
                    Some(f) => tracing::info!(
                        target: ACCESS_TARGET,
                        method = %method,
                        path = %path,
                        status,
                        latency_ms = %Millis3(latency),
                        peer = %peer,
                        forwarded_for = %f,
                        "request"
                    ),
                });
                let stock = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
                let mut ours = Vec::new();
                let a = Access {
                    method,
                    path,
                    status,
                    latency,
                    peer,
                    forwarded_for: forwarded,
                };
                format_access(&mut ours, &a);
                let ours = String::from_utf8(ours).unwrap();
                // Timestamps are 27 bytes and read at different instants: compare the rest.
                assert_eq!(&ours[27..], &stock[27..], "{ours} vs {stock}");
            }
        }
        let mut ours = Vec::new();
        let a = Access {
            method: "GET",
            path: "/x\n\u{1b}[31m",
            status: 404,
            latency: Duration::ZERO,
            peer: "127.0.0.1:1",
            forwarded_for: Some("203.0.113.7, \n10.0.1.5"),
        };
        format_access(&mut ours, &a);
        let ours = String::from_utf8(ours).unwrap();
        assert_eq!(ours.lines().count(), 1, "{ours}");
        assert!(
            ours.contains("path=/x\\n\\u{1b}[31m latency") || ours.contains("path=/x\\n"),
            "{ours}"
        );
        assert!(!ours.contains('\u{1b}'), "{ours}");
        assert!(
            ours.ends_with(" forwarded_for=203.0.113.7,10.0.1.5\n"),
            "{ours}"
        );
        let mut long = Vec::new();
        push_forwarded(&mut long, &"1.2.3.4,".repeat(100));
        assert!(long.len() <= MAX_FORWARDED + 4, "{}", long.len());
    }

    #[test]
    fn digits_keep_their_leading_zeros() {
        assert_eq!(&digits::<6>(0), b"000000");
        assert_eq!(&digits::<6>(7), b"000007");
        assert_eq!(&digits::<6>(999_999), b"999999");
        assert_eq!(&digits::<3>(42), b"042");
        assert_eq!(&digits::<3>(503), b"503");
    }

    #[test]
    fn millis_have_three_decimals() {
        for (us, text) in [
            (0, "0.000"),
            (14, "0.014"),
            (1_500, "1.500"),
            (3_000_123, "3000.123"),
            (86_400_000_001, "86400000.001"),
        ] {
            assert_eq!(Millis3(Duration::from_micros(us)).to_string(), text);
        }
    }

    #[test]
    fn clock_writes_the_stock_rfc3339_format() {
        for _ in 0..3 {
            let mut ours = String::new();
            let mut stock = String::new();
            Clock.format_time(&mut Writer::new(&mut ours)).unwrap();
            fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut stock))
                .unwrap();
            // Same shape: 2026-12-02T05:52:10.123456Z
            assert_eq!(ours.len(), 27, "{ours}");
            assert_eq!(ours.len(), stock.len(), "{ours} vs {stock}");
            assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
            // Same instant to within a second (the two clocks read the time apart): the
            // whole-second parts agree unless a second boundary fell between the two reads.
            let parse = |t: &str| humantime::parse_rfc3339(t).unwrap();
            let apart = parse(&stock)
                .duration_since(parse(&ours))
                .unwrap_or_default();
            assert!(apart < Duration::from_secs(1), "{ours} vs {stock}");
        }
    }
}
