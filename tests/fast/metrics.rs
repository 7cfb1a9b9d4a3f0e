//! `/metrics`: the classic text format by default, OpenMetrics when asked, probe-on-scrape,
//! counters that move with checks and requests, and page labels no scanner can multiply.

use crate::support::{Fixture, Resp, StandIn};
use suaicloudapp::outcome::Stage;

const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The value of the sample line `series` (name and labels exactly as exposed), if present.
fn sample(r: &Resp, series: &str) -> Option<f64> {
    r.body.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.parse().unwrap_or_else(|_| panic!("{line}")))
    })
}

#[tokio::test]
async fn the_classic_text_format_by_default() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass())
        .start()
        .await;
    let r = s.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(CLASSIC));
    for line in [
        "# TYPE suaicloudapp_probe_up gauge",
        "# TYPE suaicloudapp_probe_checks_total counter",
        "# TYPE suaicloudapp_probe_duration_seconds histogram",
        "# TYPE suaicloudapp_probe_last_check_timestamp_seconds gauge",
        "# TYPE suaicloudapp_http_requests_total counter",
        "# TYPE suaicloudapp_build_info gauge",
    ] {
        assert!(r.body.lines().any(|l| l == line), "{line}: {}", r.body);
    }
    let build = format!(
        "suaicloudapp_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&r, &build), Some(1.0), "{}", r.body);
    assert!(
        !r.body.contains("# EOF") && !r.body.contains("# UNIT"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn openmetrics_only_when_accept_names_it() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass())
        .start()
        .await;
    let r = s
        .get_as(
            "/metrics",
            "application/openmetrics-text; version=1.0.0,text/plain;q=0.5",
        )
        .await;
    assert_eq!(r.header("content-type"), Some(OPENMETRICS));
    assert!(r.body.ends_with("# EOF\n"), "{}", r.body);
    assert!(
        r.body.contains("# TYPE suaicloudapp_build info"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("# UNIT suaicloudapp_probe_duration_seconds seconds"),
        "{}",
        r.body
    );
    let r = s.get_as("/metrics", "text/plain").await;
    assert_eq!(r.header("content-type"), Some(CLASSIC));
}

#[tokio::test]
async fn a_scrape_checks_every_backend_and_reports_up_and_down() {
    let (up, down) = (
        StandIn::pass(),
        StandIn::fail(Stage::Connect, "connection refused"),
    );
    let (up_calls, down_calls) = (up.calls(), down.calls());
    let s = Fixture::new("[probes]\ncache_ms = 60000\n")
        .probe("database", up)
        .probe("redis", down)
        .start()
        .await;
    let r = s.get("/metrics").await;
    assert_eq!(
        (up_calls.count(), down_calls.count()),
        (1, 1),
        "probe on scrape"
    );
    assert_eq!(
        sample(&r, "suaicloudapp_probe_up{backend=\"database\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&r, "suaicloudapp_probe_up{backend=\"redis\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &r,
            "suaicloudapp_probe_checks_total{backend=\"database\",result=\"pass\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &r,
            "suaicloudapp_probe_checks_total{backend=\"redis\",result=\"fail\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &r,
            "suaicloudapp_probe_duration_seconds_count{backend=\"redis\"}"
        ),
        Some(1.0)
    );
    let checked = sample(
        &r,
        "suaicloudapp_probe_last_check_timestamp_seconds{backend=\"database\"}",
    )
    .expect("a last check time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - checked).abs() < 60.0, "{checked} vs {now}");
    // A backend that is not configured has no series at all.
    assert!(!r.body.contains("backend=\"s3\""), "{}", r.body);
}

#[tokio::test]
async fn the_check_counter_moves_only_when_a_check_really_runs() {
    let s = Fixture::new("[probes]\ncache_ms = 0\n")
        .probe("database", StandIn::pass())
        .start()
        .await;
    let series = "suaicloudapp_probe_checks_total{backend=\"database\",result=\"pass\"}";
    assert_eq!(sample(&s.get("/metrics").await, series), Some(1.0));
    assert_eq!(s.get("/database").await.status, 200);
    assert_eq!(sample(&s.get("/metrics").await, series), Some(3.0));

    let cached = Fixture::new("[probes]\ncache_ms = 60000\n")
        .probe("database", StandIn::pass())
        .start()
        .await;
    assert_eq!(cached.get("/database").await.status, 200);
    assert_eq!(sample(&cached.get("/metrics").await, series), Some(1.0));
    assert_eq!(
        sample(&cached.get("/metrics").await, series),
        Some(1.0),
        "cache hits are not checks"
    );
}

#[tokio::test]
async fn requests_are_counted_by_page_and_status_never_by_raw_path() {
    let s = Fixture::new("")
        .probe("database", StandIn::fail(Stage::Auth, "denied"))
        .start()
        .await;
    for _ in 0..3 {
        s.get("/health").await;
    }
    s.get("/database").await;
    s.get("/redis").await;
    for i in 0..5 {
        s.get(&format!("/scan/{i}")).await;
    }
    s.request("POST", "/health", &[]).await;
    let r = s.get("/metrics").await;
    let count = |page: &str, status: u16| {
        sample(
            &r,
            &format!("suaicloudapp_http_requests_total{{page=\"{page}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(count("health", 200), Some(3.0), "{}", r.body);
    assert_eq!(count("database", 503), Some(1.0), "{}", r.body);
    assert_eq!(count("redis", 404), Some(1.0), "{}", r.body);
    assert_eq!(count("other", 404), Some(5.0), "{}", r.body);
    assert_eq!(count("health", 405), Some(1.0), "{}", r.body);
    assert!(!r.body.contains("scan"), "{}", r.body);
    // The scrape itself is counted once it is answered, so it is not in its own body yet.
    assert_eq!(count("metrics", 200), None, "{}", r.body);
    let again = s.get("/metrics").await;
    assert_eq!(
        sample(
            &again,
            "suaicloudapp_http_requests_total{page=\"metrics\",status=\"200\"}"
        ),
        Some(1.0)
    );
}
