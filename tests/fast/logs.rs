//! `/logs` in-process: on and off, the bearer token, `?lines=` validation and the tail of a
//! log file the test writes itself (current file and rotated copies).
//!
//! What is not here: that `/logs` shows the server's own access lines. Those reach the file
//! through the process-wide subscriber and writer thread (`logs::init`, once per process),
//! which a test binary running tests side by side cannot give each test; the full tier
//! (tests/serve/pages.rs, tests/serve/logs.rs) covers it against the real binary.

use crate::support::{tail_turn, Fixture};
use std::path::Path;

/// A `[logs]` section reading `file`, plus `extra` keys.
fn logs_section(file: &Path, extra: &str) -> String {
    format!("[logs]\nfile = {:?}\n{extra}", file.display().to_string())
}

/// `n` numbered lines, as the log would hold them.
fn numbered(from: usize, to: usize) -> String {
    (from..=to).map(|i| format!("line {i:03}\n")).collect()
}

#[tokio::test]
async fn logs_can_be_turned_off() {
    let s = Fixture::new("[logs]\nenabled = false\n").start().await;
    let r = s.get("/logs").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body, "logs are disabled ([logs] enabled = false)\n");
}

#[tokio::test]
async fn the_tail_is_the_last_lines_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("output.log");
    std::fs::write(&file, numbered(1, 300)).unwrap();
    let s = Fixture::new(&logs_section(&file, "")).start().await;
    let _turn = tail_turn().await;
    let r = s.get("/logs").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.body, numbered(101, 300), "200 lines by default");
    let r = s.get("/logs?lines=3").await;
    assert_eq!(r.body, numbered(298, 300));
}

#[tokio::test]
async fn lines_are_capped_at_max_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("output.log");
    std::fs::write(&file, numbered(1, 50)).unwrap();
    let s = Fixture::new(&logs_section(&file, "max_lines = 5\n"))
        .start()
        .await;
    let _turn = tail_turn().await;
    assert_eq!(s.get("/logs").await.body, numbered(46, 50));
    assert_eq!(s.get("/logs?lines=999999").await.body, numbered(46, 50));
    assert_eq!(s.get("/logs?lines=2").await.body, numbered(49, 50));
}

#[tokio::test]
async fn the_tail_reads_on_into_the_rotated_copies() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("output.log");
    std::fs::write(dir.path().join("output.log.2"), numbered(1, 10)).unwrap();
    std::fs::write(dir.path().join("output.log.1"), numbered(11, 20)).unwrap();
    std::fs::write(&file, numbered(21, 25)).unwrap();
    let s = Fixture::new(&logs_section(&file, "keep = 2\n"))
        .start()
        .await;
    let _turn = tail_turn().await;
    assert_eq!(s.get("/logs?lines=8").await.body, numbered(18, 25));
    assert_eq!(s.get("/logs?lines=100").await.body, numbered(1, 25));
}

#[tokio::test]
async fn a_missing_log_file_is_a_500_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("never-written.log");
    let s = Fixture::new(&logs_section(&file, "")).start().await;
    let _turn = tail_turn().await;
    let r = s.get("/logs").await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        format!(
            "cannot read the log file {}: entity not found\n",
            file.display()
        )
    );
}

#[tokio::test]
async fn any_query_but_lines_n_is_a_400() {
    let s = Fixture::new("").start().await;
    for q in [
        "lines=0",
        "lines=-3",
        "lines=abc",
        "lines=",
        "lines=1e3",
        "lines=0x10",
        "lines=1&lines=2",
        "x=1",
        "lines=99999999999999999999",
    ] {
        let r = s.get(&format!("/logs?{q}")).await;
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(
            r.body, "bad query: the only parameter is lines=N with N from 1 to 5000\n",
            "{q}"
        );
    }
}

#[tokio::test]
async fn the_bearer_token_is_required_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("output.log");
    std::fs::write(&file, numbered(1, 3)).unwrap();
    let token = "tok-Very-Secret-42-0123456789abcdef";
    let s = Fixture::new(&logs_section(&file, &format!("token = \"{token}\"\n")))
        .start()
        .await;
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer tok-Very-Secret-4"),
        Some("Bearer tok-Very-Secret-42-0123456789abcdef0"),
        Some(&*format!("Basic {token}")),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        let r = s.request("GET", "/logs", &headers).await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(
            r.body,
            "unauthorized: send Authorization: Bearer <[logs] token>\n"
        );
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"suaicloudapp logs\"")
        );
    }
    let _turn = tail_turn().await;
    let bearer = format!("Bearer {token}");
    let r = s
        .request("GET", "/logs", &[("authorization", &bearer)])
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, &*numbered(1, 3)));
}
