//! The runner seen through HTTP: concurrent requests share one in-flight check, a result is
//! reused for `[probes] cache_ms`, and every page that shows a backend reads the same runner.

use crate::support::{Fixture, StandIn};
use futures_util::future::join_all;
use suaicloudapp::outcome::Stage;

#[tokio::test]
async fn twenty_concurrent_requests_cost_the_backend_one_check() {
    let probe = StandIn::pass().latency_ms(500);
    let calls = probe.calls();
    let s = Fixture::new("[probes]\ncache_ms = 0\n")
        .probe("database", probe)
        .start()
        .await;
    let answers = join_all((0..20).map(|_| s.get("/database"))).await;
    assert!(
        answers
            .iter()
            .all(|r| (r.status, r.body.as_str()) == (200, "OK")),
        "{answers:?}"
    );
    assert_eq!(calls.count(), 1, "single-flight: one check for 20 callers");
    // With no cache window, the next request after the check is a new check.
    assert_eq!(s.get("/database").await.status, 200);
    assert_eq!(calls.count(), 2);
}

#[tokio::test]
async fn a_result_is_reused_for_the_cache_window() {
    let probe = StandIn::fail(Stage::Connect, "connection refused");
    let calls = probe.calls();
    let s = Fixture::new("[probes]\ncache_ms = 60000\n")
        .probe("redis", probe)
        .start()
        .await;
    for _ in 0..5 {
        assert_eq!(s.get("/redis").await.status, 503);
    }
    assert_eq!(calls.count(), 1, "a failure is cached like a pass");
}

#[tokio::test]
async fn without_a_window_each_request_checks_again() {
    let probe = StandIn::pass();
    let calls = probe.calls();
    let s = Fixture::new("[probes]\ncache_ms = 0\n")
        .probe("s3", probe)
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(s.get("/s3").await.body, "OK");
    }
    assert_eq!(calls.count(), 3);
}

#[tokio::test]
async fn the_page_the_dashboard_json_and_metrics_share_one_runner() {
    let probe = StandIn::pass();
    let calls = probe.calls();
    let s = Fixture::new("[probes]\ncache_ms = 60000\n")
        .probe("dynamodb", probe)
        .start()
        .await;
    assert_eq!(s.get("/dynamodb").await.status, 200);
    assert_eq!(s.get("/").await.status, 200);
    assert_eq!(s.get("/dynamodb?format=json").await.status, 200);
    assert_eq!(s.get("/metrics").await.status, 200);
    assert_eq!(calls.count(), 1);
}
