//! Routing: which page a path and method reach, and the answers for the paths that reach none
//! (404 not found, 404 not configured, 405 with `Allow`). Also `/ready`'s group and HEAD.

use crate::support::{section, Fixture, StandIn};
use suaicloudapp::outcome::Stage;
use suaicloudapp::probes::BACKENDS;

#[tokio::test]
async fn health_answers_healthy_and_head_sends_the_length_without_the_body() {
    let s = Fixture::new("").start().await;
    let r = s.get("/health").await;
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));
    let h = s.request("HEAD", "/health", &[]).await;
    assert_eq!(h.status, 200);
    assert_eq!(h.body, "");
    assert_eq!(h.header("content-length"), Some("7"));
}

#[tokio::test]
async fn health_never_runs_a_probe_even_when_every_backend_hangs() {
    let hung = StandIn::hang().budget_ms(5_000);
    let calls = hung.calls();
    let s = Fixture::new("").probe("database", hung).start().await;
    let r = s.get("/health").await;
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));
    assert!(r.elapsed.as_millis() < 1_000, "{:?}", r.elapsed);
    assert_eq!(calls.count(), 0, "/health must stay shallow");
}

#[tokio::test]
async fn a_query_string_does_not_change_the_page() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass())
        .start()
        .await;
    assert_eq!(s.get("/health?from=alb&x=1").await.body, "healthy");
    assert_eq!(s.get("/database?cache=bust").await.body, "OK");
}

#[tokio::test]
async fn paths_that_name_no_page_answer_404_not_found() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass())
        .probe("http/api", StandIn::pass())
        .start()
        .await;
    for path in [
        "/nope",
        "/health/",
        "/HEALTH",
        "//health",
        "/database/",
        "/database/x",
        "/http",
        "/http/",
        "/http/other",
        "/favicon.ico",
    ] {
        let r = s.get(path).await;
        assert_eq!((r.status, r.body.as_str()), (404, "not found\n"), "{path}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
    }
}

#[tokio::test]
async fn every_one_page_backend_without_a_probe_answers_not_configured() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass())
        .start()
        .await;
    let absent: Vec<&str> = BACKENDS
        .iter()
        .filter(|b| !b.per_entry && b.name != "database")
        .map(|b| b.name)
        .collect();
    assert!(
        absent.contains(&"redis") && absent.contains(&"s3"),
        "{absent:?}"
    );
    for name in absent {
        let r = s.get(&format!("/{name}")).await;
        assert_eq!(r.status, 404, "{name}");
        assert_eq!(
            r.body,
            format!("not configured: add a [{name}] section to the config\n")
        );
    }
    assert_eq!(s.get("/database").await.status, 200);
}

#[tokio::test]
async fn each_configured_page_reaches_its_own_probe() {
    let (db, cache, api) = (StandIn::pass(), StandIn::pass(), StandIn::pass());
    let (db_calls, cache_calls, api_calls) = (db.calls(), cache.calls(), api.calls());
    let s = Fixture::new("")
        .probe("database", db)
        .probe("redis", cache)
        .probe("http/api", api)
        .start()
        .await;
    assert_eq!(s.get("/redis").await.body, "OK");
    assert_eq!(
        (db_calls.count(), cache_calls.count(), api_calls.count()),
        (0, 1, 0)
    );
    assert_eq!(s.get("/http/api").await.body, "OK");
    assert_eq!(
        (db_calls.count(), cache_calls.count(), api_calls.count()),
        (0, 1, 1)
    );
}

#[tokio::test]
async fn other_methods_get_405_with_allow_and_run_nothing() {
    let probe = StandIn::pass();
    let calls = probe.calls();
    let s = Fixture::new("").probe("database", probe).start().await;
    for (method, path) in [
        ("POST", "/health"),
        ("PUT", "/"),
        ("DELETE", "/database"),
        ("PATCH", "/metrics"),
        ("OPTIONS", "/logs"),
        ("POST", "/ready"),
        ("TRACE", "/database"),
        ("POST", "/redis"),
    ] {
        let r = s.request(method, path, &[]).await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        assert_eq!(r.body, "method not allowed\n");
    }
    assert_eq!(calls.count(), 0, "a refused method must not probe");
}

/// The path is looked up before the method is judged: an unknown path is 404 for any method.
#[tokio::test]
async fn an_unknown_path_is_404_whatever_the_method() {
    let s = Fixture::new("").start().await;
    let r = s.request("POST", "/nope", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (404, "not found\n"));
}

#[tokio::test]
async fn head_on_a_probe_page_checks_and_sends_no_body() {
    let probe = StandIn::fail(Stage::Connect, "connection refused");
    let calls = probe.calls();
    let s = Fixture::new("").probe("redis", probe).start().await;
    let r = s.request("HEAD", "/redis", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "");
    let full = "ERROR: connect: connection refused\n";
    assert_eq!(r.header("content-length"), Some(&*full.len().to_string()));
    assert_eq!(r.header("x-probe-stage"), Some("connect"));
    assert_eq!(calls.count(), 1);
}

#[tokio::test]
async fn ready_without_a_group_answers_as_health_does_and_probes_nothing() {
    let probe = StandIn::fail(Stage::Auth, "denied");
    let calls = probe.calls();
    let s = Fixture::new("").probe("database", probe).start().await;
    let r = s.get("/ready").await;
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));
    assert_eq!(calls.count(), 0);
}

#[tokio::test]
async fn ready_checks_its_group_only_and_names_each_failure() {
    let toml = format!(
        "{}{}{}[health]\nready = [\"database\", \"redis\"]\n",
        section("database"),
        section("redis"),
        section("s3")
    );
    let outside = StandIn::fail(Stage::Auth, "not in the group");
    let outside_calls = outside.calls();
    let s = Fixture::new(&toml)
        .probe("database", StandIn::pass())
        .probe("redis", StandIn::fail(Stage::Connect, "connection refused"))
        .probe("s3", outside)
        .start()
        .await;
    let r = s.get("/ready").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "ERROR: redis: connect: connection refused\n");
    let doc = s.get("/ready?format=json").await.json();
    let keys: Vec<&String> = doc["checks"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["database:responseTime", "redis:responseTime"]);
    assert_eq!(outside_calls.count(), 0, "s3 is not in [health] ready");
}

#[tokio::test]
async fn ready_answers_ok_when_its_whole_group_passes() {
    let toml = format!(
        "{}{}[health]\nready = [\"database\", \"redis\"]\n",
        section("database"),
        section("redis")
    );
    let s = Fixture::new(&toml)
        .probe("database", StandIn::pass())
        .probe("redis", StandIn::pass())
        .start()
        .await;
    let r = s.get("/ready").await;
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
}
