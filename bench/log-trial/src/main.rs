//! The log trial (issue 32 item 6): what tracing-appender's non_blocking writer (lossy, a
//! channel of 16,384 lines) and rolling-file's size rotation do where the product's own writer
//! (src/logs) gives guarantees. Driven by bench/stalled_log_memory.py; see
//! bench/log-trial-results.md.
//!
//! `log-trial stall N L`: sets up tracing-subscriber fmt over non_blocking whose worker writes
//! to stderr, prints `ready` on stdout and waits for a line on stdin, then logs N INFO events
//! each with a field of L bytes (as the product's access line carries the path), prints
//! `done SENT DROPPED` and waits for stdin to close. With stderr a pipe nobody reads, the
//! worker blocks in write(2) and the channel fills: the caller reads VmHWM in between.
//!
//! `log-trial rotate-fail DIR MAX_BYTES LINES`: writes LINES lines of 1,000 bytes through
//! non_blocking into rolling-file (`max_size(MAX_BYTES)`, 3 rotated copies) at DIR/output.log,
//! first with nothing in the way, then (in DIR/blocked) with `output.log.1`..`.3` existing as
//! non-empty directories so every rename(2) of the rotation fails; prints each file's size.

use std::io::{BufRead, Write};
use std::path::Path;

use rolling_file::{BasicRollingFileAppender, RollingConditionBasic};
use tracing_appender::non_blocking::NonBlockingBuilder;

const LINES_LIMIT: usize = 16_384;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("stall") => stall(num(&args, 2), num(&args, 3)),
        Some("rotate-fail") => rotate_fail(Path::new(&args[2]), num(&args, 3), num(&args, 4)),
        _ => {
            eprintln!("usage: log-trial stall N L | log-trial rotate-fail DIR MAX_BYTES LINES");
            std::process::exit(2);
        }
    }
}

fn num(args: &[String], i: usize) -> usize {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} must be a number"))
}

fn stall(n: usize, len: usize) {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LINES_LIMIT)
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .init();
    let path = "/".to_string() + &"a".repeat(len.saturating_sub(1));
    let mut stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let mut go = String::new();
    stdin.read_line(&mut go).unwrap();
    for _ in 0..n {
        tracing::info!(target: "suaicloudapp::access", method = "GET", path = %path, status = 404u16, "request");
    }
    writeln!(out, "done {n} {}", dropped.dropped_lines()).unwrap();
    out.flush().unwrap();
    // Hold on (the queued lines stay queued) until the caller closes stdin; then leave the
    // stalled worker behind rather than wait for it.
    let mut rest = String::new();
    while stdin.read_line(&mut rest).map(|r| r > 0).unwrap_or(false) {}
    std::mem::forget(guard);
    std::process::exit(0);
}

fn rotate_fail(dir: &Path, max_bytes: usize, lines: usize) {
    let line = "x".repeat(999) + "\n";
    for (name, blocked) in [("free", false), ("blocked", true)] {
        let d = dir.join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        if blocked {
            for i in 1..=3 {
                let sub = d.join(format!("output.log.{i}"));
                std::fs::create_dir_all(&sub).unwrap();
                std::fs::write(sub.join("keep"), b"a directory in rotation's way\n").unwrap();
            }
        }
        let file = BasicRollingFileAppender::new(
            d.join("output.log"),
            RollingConditionBasic::new().max_size(max_bytes as u64),
            3,
        )
        .unwrap();
        let (mut writer, guard) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(LINES_LIMIT)
            .finish(file);
        for _ in 0..lines {
            writer.write_all(line.as_bytes()).unwrap();
        }
        drop(writer);
        drop(guard); // flushes the worker's queue and the file
        let size = std::fs::metadata(d.join("output.log")).unwrap().len();
        let rotated: Vec<String> = (1..=3)
            .map(|i| d.join(format!("output.log.{i}")))
            .map(|p| match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => "dir".to_string(),
                Ok(m) => m.len().to_string(),
                Err(_) => "-".to_string(),
            })
            .collect();
        println!(
            "{name}: wrote {} bytes, max_bytes {max_bytes}: output.log is {size} bytes ({}), rotated .1/.2/.3: {}",
            lines * line.len(),
            if size as usize > max_bytes { "PAST max_bytes" } else { "within max_bytes" },
            rotated.join("/")
        );
    }
}
