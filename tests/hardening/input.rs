//! Hardening: hostile and generated input. Malformed requests get a 4xx and the server keeps
//! serving; generated configs and requests never panic it. Rows of the "bad input" table in
//! docs/HARDENING.md.

use harness::hardening::*;
use harness::load::record;
use harness::*;
use serde_json::json;

#[test]
fn hostile_requests_get_4xx_and_the_server_keeps_serving() {
    let _serial = serial();
    let a = App::start(
        "hostile",
        &format!("{}[logs]\nmax_lines = 1000\n", server_section()),
    );
    let big = "a".repeat(64 * 1024);
    let long_path = format!("/{}", "x".repeat(20 * 1024));
    let cases: Vec<(String, Vec<u8>, std::ops::RangeInclusive<u16>)> = vec![
        (
            "64 KiB header".into(),
            format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            431..=431,
        ),
        (
            "20 KiB path".into(),
            format!("GET {long_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            400..=499,
        ),
        (
            "invalid method token".into(),
            b"G@T /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            400..=400,
        ),
        (
            "not HTTP at all".into(),
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(),
            400..=400,
        ),
        (
            "bad HTTP version".into(),
            b"GET /health HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            400..=505,
        ),
        (
            "path traversal".into(),
            b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            400..=404,
        ),
    ];
    // After each input, /health is asked again: what the row says was lost is what it answered.
    let health_after = || {
        let r = a.get("/health");
        assert_eq!(r.body, "healthy", "still serving");
        format!("nothing (/health {} {} right after)", r.status, r.body)
    };
    let mut rows = Vec::new();
    for (name, raw, want) in cases {
        let r = send_raw_lenient(a.addr, &raw);
        assert!(want.contains(&r), "{name}: got {r}");
        rows.push((name, r, health_after()));
    }
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"] {
        let r = a.request(method, "/health", &[("Content-Length", "0")]);
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        rows.push((format!("method {method}"), r.status, health_after()));
    }
    for q in [
        "lines=../../etc/passwd",
        "lines=%00",
        "lines=1e9",
        "lines=-1",
        "lines=0x10",
        "lines[]=1",
        "lines=1;rm",
        "a=b",
        &format!("lines={}", "9".repeat(5000)),
    ] {
        let r = a.get(&format!("/logs?{q}"));
        assert_eq!(r.status, 400, "/logs?{q}");
        rows.push((
            format!("/logs?{}", q.chars().take(30).collect::<String>()),
            r.status,
            health_after(),
        ));
    }
    for (input, status, lost) in rows {
        record(
            "bad input",
            json!({"input": input, "answer": status, "lost": lost}),
        );
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config as PtConfig, TestRunner};
    use std::sync::atomic::Ordering;
    use suaicloudapp::probes::Config;

    /// TOML-shaped lines from the schema's own words, so the parser gets past the first token.
    fn toml_like() -> impl Strategy<Value = String> {
        let words = prop::sample::select(vec![
            "[server]",
            "[database]",
            "[redis]",
            "[s3]",
            "[logs]",
            "[probes]",
            "[aws]",
            "[dynamodb]",
            "[[x]]",
            "host",
            "port",
            "user",
            "password",
            "dbname",
            "mode",
            "tls",
            "timeout_ms",
            "cache_ms",
            "token",
            "bucket",
            "table",
        ]);
        prop::collection::vec((words, "[ =\\[\\]\"'a-z0-9.\\-_{},#]{0,24}"), 0..24).prop_map(
            |lines| {
                lines
                    .into_iter()
                    .map(|(k, v)| format!("{k}{v}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        )
    }

    #[test]
    fn config_parser_never_panics_and_errors_stay_one_line() {
        let _serial = serial();
        let cases = 5000;
        let mut runner = TestRunner::new(PtConfig {
            cases,
            ..PtConfig::default()
        });
        let strategy = prop_oneof![toml_like(), "\\PC{0,300}", any::<String>()];
        let rejected = std::sync::atomic::AtomicU32::new(0);
        runner
            .run(&strategy, |text| {
                if let Err(e) = Config::parse(&text, "fuzz.toml") {
                    rejected.fetch_add(1, Ordering::Relaxed);
                    let msg = e.to_string();
                    prop_assert!(!msg.contains('\n'), "multi-line error: {msg:?}");
                    prop_assert!(msg.starts_with("fuzz.toml"), "error names the file: {msg}");
                }
                Ok(())
            })
            .unwrap();
        record(
            "bad input",
            json!({
                "input": format!("{cases} generated configs (TOML-shaped and arbitrary text)"),
                "answer": format!("{} rejected with one-line file:line:column errors, the rest parsed", rejected.load(Ordering::Relaxed)),
                "lost": "no panic",
            }),
        );
    }

    #[test]
    fn request_paths_and_queries_never_break_the_server() {
        let _serial = serial();
        let a = App::start(
            "fuzz-http",
            &format!("{}{}", server_section(), shared_redis()),
        );
        let cases = 1000;
        let mut runner = TestRunner::new(PtConfig {
            cases,
            ..PtConfig::default()
        });
        let method = prop::sample::select(vec!["GET", "HEAD", "POST", "OPTIONS", "X-Y"]);
        let pages = prop::sample::select(vec![
            "/",
            "/health",
            "/logs",
            "/metrics",
            "/redis",
            "/database",
            "/s3",
        ]);
        let path = prop_oneof![
            pages.prop_map(str::to_string),
            "/[a-z0-9/._%~!$&'()*+,;=:@-]{0,60}"
        ];
        let query = proptest::option::of(prop_oneof![
            "(lines|format|refresh)=[a-z0-9%+._-]{0,20}",
            "[a-z0-9=&%+._-]{0,60}"
        ]);
        let strategy = (method, path, query);
        let statuses = std::sync::Mutex::new(std::collections::BTreeMap::new());
        runner
            .run(&strategy, |(m, path, query)| {
                let target = match &query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.clone(),
                };
                let raw = format!("{m} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let status = send_raw_lenient(a.addr, raw.as_bytes());
                prop_assert!((200..600).contains(&status));
                prop_assert!(status != 500 || path.starts_with("/logs"), "500 on {target}");
                *statuses.lock().unwrap().entry(status).or_insert(0u32) += 1;
                Ok(())
            })
            .unwrap();
        let after = a.get("/health");
        assert_eq!(after.body, "healthy");
        record(
            "bad input",
            json!({
                "input": format!("{cases} generated requests (method, path, query)"),
                "answer": format!("status counts {:?}", statuses.lock().unwrap()),
                "lost": format!("no panic; /health {} {} after them", after.status, after.body),
            }),
        );
    }
}
