//! `suaicloudapp healthcheck`: the container health command (Docker HEALTHCHECK, ECS
//! healthCheck.command). Up: exit 0; refused, hung or not 200: exit 1 within the timeout.
//! No config file is present in any of these runs.

use harness::{app_command, closed_port, scratch_dir, server_section, App, HungServer};
use std::process::Output;
use std::time::{Duration, Instant};

/// Runs the health command in an empty directory (no config.toml) with the sandboxed
/// environment (nothing from the caller's).
fn healthcheck(args: &[&str]) -> (Output, Duration) {
    let dir = scratch_dir("healthcheck");
    let started = Instant::now();
    let out = app_command()
        .current_dir(&dir)
        .arg("healthcheck")
        .args(args)
        .output()
        .expect("run suaicloudapp healthcheck");
    (out, started.elapsed())
}

#[test]
fn up_exits_0() {
    let app = App::start("hc-up", &server_section());
    let url = format!("http://{}/health", app.addr);
    let (out, took) = healthcheck(&["--url", &url]);
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn not_200_exits_1_and_says_what_answered() {
    let app = App::start("hc-404", &server_section());
    let url = format!("http://{}/no-such-page", app.addr);
    let (out, _) = healthcheck(&["--url", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("404"), "{err}");
}

#[test]
fn down_exits_1_at_once() {
    let url = format!("http://127.0.0.1:{}/health", closed_port());
    let (out, took) = healthcheck(&["--url", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "{err}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn hung_server_exits_1_within_the_timeout() {
    let hung = HungServer::start();
    let url = format!("http://127.0.0.1:{}/health", hung.port);
    let (out, took) = healthcheck(&["--url", &url, "--timeout-ms", "500"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("within 500 ms"), "{err}");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(1500),
        "took {took:?}"
    );
    assert_eq!(hung.accepted(), 1);
}

#[test]
fn default_url_is_the_containers_port_8080() {
    let help = app_command()
        .args(["healthcheck", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("http://127.0.0.1:8080/health"), "{text}");
}
