//! Rendering: the exact bodies and headers of a pass, a failure, a timeout and a panicking
//! probe; the dashboard as text and HTML (rows, escaping, CSP, refresh); where the config came
//! from; and who answers (instance or task) on every response.

use crate::support::{instance, Fixture, StandIn, ORIGIN};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use suaicloudapp::ecs::EcsTask;
use suaicloudapp::identity::Identity;
use suaicloudapp::load::last_good::Fallback;
use suaicloudapp::outcome::Stage;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the dashboard's HTML must carry: nothing may load from elsewhere, scripts and styles
/// only inline.
/// The CSP the page must carry: its own style and script by their SHA-256 (computed here from
/// the body served, so a script edited without its hash fails), nothing inline otherwise.
fn expected_csp(html: &str) -> String {
    let hash = |open: &str, close: &str| {
        let start = html.find(open).expect(open) + open.len();
        let text = &html[start..start + html[start..].find(close).expect(close)];
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        format!("'sha256-{}'", STANDARD.encode(digest.as_ref()))
    };
    format!(
        "default-src 'none'; style-src {}; script-src {}; base-uri 'none'; form-action 'none'",
        hash("<style>", "</style>"),
        hash("<script>", "</script>")
    )
}

/// A row of the HTML dashboard, from its `<tr` to its `</tr>`.
fn row<'a>(html: &'a str, backend: &str) -> &'a str {
    let at = html
        .find(&format!("data-backend=\"{backend}\""))
        .unwrap_or_else(|| panic!("no row for {backend}: {html}"));
    let start = html[..at].rfind("<tr").unwrap();
    let end = at + html[at..].find("</tr>").unwrap();
    &html[start..end]
}

#[tokio::test]
async fn every_answer_carries_no_store_and_nosniff() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass())
        .start()
        .await;
    for (method, path, accept) in [
        ("GET", "/health", ""),
        ("GET", "/database", ""),
        ("GET", "/database", "application/json"),
        ("GET", "/", ""),
        ("GET", "/", "text/html"),
        ("GET", "/metrics", ""),
        ("GET", "/nope", ""),
        ("GET", "/redis", ""),
        ("POST", "/health", ""),
    ] {
        let r = s.request(method, path, &[("accept", accept)]).await;
        assert_eq!(
            r.header("cache-control"),
            Some("no-store"),
            "{method} {path}"
        );
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn a_pass_is_exactly_ok_with_its_duration_and_no_stage() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass().latency_ms(60))
        .start()
        .await;
    let r = s.get("/database").await;
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let ms: u64 = r.header("x-probe-duration-ms").unwrap().parse().unwrap();
    assert!(ms >= 60, "the check took at least its 60 ms latency: {ms}");
    assert!(r.header("x-probe-stage").is_none());
}

#[tokio::test]
async fn a_failure_is_503_with_its_stage_and_one_line_cause() {
    let cause = "access denied for user 'admin' (wrong user or password, or the user may not connect from this host): check [database] user and password";
    let s = Fixture::new("")
        .probe("database", StandIn::fail(Stage::Auth, cause))
        .start()
        .await;
    let r = s.get("/database").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body, format!("ERROR: auth: {cause}\n"));
    assert_eq!(r.header("x-probe-stage"), Some("auth"));
    assert!(r.header("x-probe-duration-ms").is_some());
}

#[tokio::test]
async fn a_cause_spread_over_lines_is_folded_into_one() {
    let s = Fixture::new("")
        .probe(
            "redis",
            StandIn::fail(Stage::Query, "first line\n  second line\r\n\tthird"),
        )
        .start()
        .await;
    let r = s.get("/redis").await;
    assert_eq!(r.body, "ERROR: query: first line second line third\n");
}

#[tokio::test]
async fn a_hung_probe_answers_timeout_at_its_budget() {
    let s = Fixture::new("")
        .probe(
            "database",
            StandIn::hang().budget_ms(200).target("db.internal:3306"),
        )
        .start()
        .await;
    let r = s.get("/database").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body,
        "ERROR: timeout: no answer from db.internal:3306 within 200 ms: check security groups and network ACLs, or the server is hung\n"
    );
    assert_eq!(r.header("x-probe-stage"), Some("timeout"));
    assert!(r.elapsed >= Duration::from_millis(200), "{:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_secs(2), "{:?}", r.elapsed);
}

/// The runner checks in a task of its own: a panic there is a `JoinError`, which becomes an
/// `internal` failure of that page, cached for the window like any failure, while the other
/// pages keep answering.
#[tokio::test]
async fn a_panicking_probe_fails_its_own_page_as_internal_and_nothing_else() {
    let panics = StandIn::panicking();
    let calls = panics.calls();
    let s = Fixture::new("[probes]\ncache_ms = 60000\n")
        .probe("database", panics)
        .probe("redis", StandIn::pass())
        .start()
        .await;
    let r = s.get("/database").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-probe-stage"), Some("internal"));
    assert!(
        r.body
            .starts_with("ERROR: internal: the database probe stopped unexpectedly (")
            && r.body.ends_with("); see the log\n"),
        "{}",
        r.body
    );
    assert_eq!(r.body.lines().count(), 1, "{}", r.body);
    assert_eq!(s.get("/database").await.status, 503);
    assert_eq!(calls.count(), 1, "the failure is cached for the window");
    assert_eq!(s.get("/health").await.body, "healthy");
    assert_eq!(s.get("/redis").await.body, "OK");
}

#[tokio::test]
async fn the_text_dashboard_has_a_line_per_backend() {
    let s = Fixture::new("")
        .probe(
            "database",
            StandIn::pass_with(&[("server_version", "8.0.35")]),
        )
        .probe("redis", StandIn::fail(Stage::Connect, "connection refused"))
        .start()
        .await;
    let r = s.get("/").await;
    assert_eq!(r.status, 503, "one backend fails");
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(lines[0], format!("suaicloudapp {VERSION}"));
    assert!(
        lines[1].starts_with("database   OK    ")
            && lines[1].ends_with(" ms  server_version=8.0.35"),
        "{}",
        r.body
    );
    assert!(
        lines[2].starts_with("redis      FAIL  ")
            && lines[2].ends_with(" ms  connect: connection refused"),
        "{}",
        r.body
    );
    assert!(
        lines.contains(&"s3         -     not configured"),
        "{}",
        r.body
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("database   -")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_html_dashboard_shows_a_row_per_backend_and_is_locked_down() {
    let s = Fixture::new("")
        .probe(
            "database",
            StandIn::pass_with(&[("server_version", "8.0.35")]).target("db.internal:3306"),
        )
        .probe("redis", StandIn::fail(Stage::Connect, "connection refused"))
        .start()
        .await;
    let r = s.get_as("/", "text/html").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let html = &r.body;
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(csp, expected_csp(html));
    assert_eq!(html.matches("<script>").count(), 1, "{html}");
    assert_eq!(html.matches("<style>").count(), 1, "{html}");
    assert!(
        html.contains("<title>suaicloudapp: 1 failing</title>"),
        "{html}"
    );
    let db = row(html, "database");
    assert!(db.starts_with("<tr class=\"ok\""), "{db}");
    assert!(db.contains("<td class=\"status\">OK</td>"), "{db}");
    assert!(
        db.contains("<div class=\"target\">db.internal:3306</div>"),
        "{db}"
    );
    assert!(
        db.contains("<td class=\"cause\">server_version=8.0.35</td>"),
        "{db}"
    );
    let redis = row(html, "redis");
    assert!(redis.starts_with("<tr class=\"fail\""), "{redis}");
    assert!(
        redis.contains("<td class=\"stage\">connect</td>"),
        "{redis}"
    );
    assert!(
        redis.contains("<td class=\"cause\">connection refused</td>"),
        "{redis}"
    );
    let s3 = row(html, "s3");
    assert!(
        s3.starts_with("<tr class=\"off\"") && s3.contains("not configured"),
        "{s3}"
    );
    assert!(
        html.contains("<a href=\"/database\">/database</a>"),
        "{html}"
    );
    // Works in a private subnet: no absolute URL, no external resource.
    assert!(!html.contains("://"), "{html}");
    assert!(!html.contains(" src="), "{html}");
    assert!(!html.contains("<link"), "{html}");
}

#[tokio::test]
async fn the_dashboard_is_200_all_ok_only_when_every_backend_passes() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass())
        .probe("s3", StandIn::pass())
        .start()
        .await;
    let r = s.get_as("/", "text/html").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<title>suaicloudapp: all OK</title>"));
    assert_eq!(s.get("/").await.status, 200);
    assert_eq!(s.get("/?format=json").await.json()["status"], "pass");
}

#[tokio::test]
async fn backend_text_is_escaped_in_html() {
    let s = Fixture::new("")
        .probe(
            "redis",
            StandIn::fail(Stage::Query, "<script>alert(\"x\")</script> & <b>more</b>")
                .target("<img onerror=x>"),
        )
        .start()
        .await;
    let html = s.get_as("/", "text/html").await.body;
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<b>more"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; &lt;b&gt;more&lt;/b&gt;"),
        "{html}"
    );
    assert!(html.contains("&lt;img onerror=x&gt;"), "{html}");
}

#[tokio::test]
async fn the_dashboard_probes_in_parallel_within_the_longest_budget() {
    let s = Fixture::new("")
        .probe("database", StandIn::hang().budget_ms(400))
        .probe("redis", StandIn::hang().budget_ms(400))
        .probe("s3", StandIn::hang().budget_ms(400))
        .start()
        .await;
    let r = s.get("/").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body.matches("timeout: no answer").count(),
        3,
        "{}",
        r.body
    );
    assert!(
        r.elapsed < Duration::from_millis(800),
        "three 400 ms budgets one after another would take 1.2 s: {:?}",
        r.elapsed
    );
}

#[tokio::test]
async fn refresh_is_opt_in_and_clamped() {
    let s = Fixture::new("").start().await;
    let meta = |secs: &str| format!("<meta http-equiv=\"refresh\" content=\"{secs}\">");
    for (query, want) in [
        ("?refresh=5", Some("5")),
        ("?refresh=0", Some("1")),
        ("?refresh=999999", Some("3600")),
        ("?refresh=abc", None),
        ("", None),
    ] {
        let html = s.get_as(&format!("/{query}"), "text/html").await.body;
        match want {
            Some(secs) => assert!(html.contains(&meta(secs)), "{query}: {html}"),
            None => assert!(!html.contains("http-equiv=\"refresh\""), "{query}: {html}"),
        }
    }
}

#[tokio::test]
async fn the_config_source_is_named_with_its_etag() {
    let s = Fixture::new("")
        .loaded(|l| {
            l.origin = "s3://suai-config/web/config.toml".into();
            l.etag = Some("\"9b2cf535f27731c974343645a3985328\"".into());
        })
        .start()
        .await;
    let doc = s.get("/?format=json").await.json();
    assert_eq!(doc["config_source"]["kind"], "s3");
    assert_eq!(
        doc["config_source"]["origin"],
        "s3://suai-config/web/config.toml"
    );
    assert_eq!(
        doc["config_source"]["etag"],
        "\"9b2cf535f27731c974343645a3985328\""
    );
    let html = s.get_as("/", "text/html").await.body;
    assert!(
        html.contains(
            "<span id=\"config-source\" data-kind=\"s3\">s3://suai-config/web/config.toml</span>"
        ),
        "{html}"
    );
    // No cached copy: the text page has no config line.
    assert!(!s.get("/").await.body.contains("config:"));
}

#[tokio::test]
async fn the_last_known_good_copy_says_so_with_its_age_and_reason() {
    let s = Fixture::new("")
        .loaded(|l| {
            l.origin = "s3://suai-config/web/config.toml".into();
            l.etag = Some("e1".into());
            l.fallback = Some(Fallback {
                fetched_at: SystemTime::now() - Duration::from_secs(120),
                reason: "S3 could not be reached",
                attempts: Arc::new(AtomicU64::new(3)),
            });
        })
        .start()
        .await;
    let doc = s.get("/?format=json").await.json();
    let source = &doc["config_source"];
    assert_eq!(source["kind"], "cached_copy");
    assert_eq!(source["reason"], "S3 could not be reached");
    assert_eq!(source["fetch_attempts"], 3);
    assert!(source["age_seconds"].as_u64().unwrap() >= 120, "{source}");
    let text = s.get("/").await.body;
    let line = text.lines().find(|l| l.starts_with("config: ")).unwrap();
    assert!(
        line.starts_with(
            "config: cached copy of s3://suai-config/web/config.toml (ETag e1), fetched 12"
        ) && line.ends_with(
            " s ago: S3 could not be reached; fetching S3's in the background (3 attempts so far)"
        ),
        "{line}"
    );
}

#[tokio::test]
async fn an_instance_names_itself_on_every_answer() {
    let s = Fixture::new("[aws]\nregion = \"eu-west-1\"\n")
        .identity(instance("i-0abc123def4567890", "us-east-1b"))
        .start()
        .await;
    for path in ["/health", "/nope", "/"] {
        let r = s.get(path).await;
        assert_eq!(
            r.header("x-instance-id"),
            Some("i-0abc123def4567890"),
            "{path}"
        );
        assert_eq!(
            r.header("x-availability-zone"),
            Some("us-east-1b"),
            "{path}"
        );
        assert!(r.header("x-task-arn").is_none(), "{path}");
    }
    let text = s.get("/").await.body;
    assert_eq!(
        text.lines().next(),
        Some(&*format!(
            "suaicloudapp {VERSION} on i-0abc123def4567890 (us-east-1b)"
        ))
    );
    let doc = s.get("/health?format=json").await.json();
    assert_eq!(doc["serviceId"], "i-0abc123def4567890");
    let html = s.get_as("/", "text/html").await.body;
    assert!(html.contains("<dd id=\"instance-id\">i-0abc123def4567890</dd>"));
    // The config's region wins, and the page says the instance is elsewhere.
    assert!(
        html.contains("<dd>eu-west-1 ([aws] region; this instance is in us-east-1)</dd>"),
        "{html}"
    );
}

#[tokio::test]
async fn an_ecs_task_names_itself_instead_of_an_instance() {
    let arn = "arn:aws:ecs:us-east-1:123456789012:task/web/0a1b2c3d4e5f";
    let task = EcsTask {
        arn: arn.into(),
        cluster: "arn:aws:ecs:us-east-1:123456789012:cluster/web".into(),
        family: "flask-ecs-firehose".into(),
        revision: "7".into(),
        availability_zone: "us-east-1b".into(),
        launch_type: "FARGATE".into(),
    };
    let s = Fixture::new("")
        .identity(Identity {
            task: Some(task),
            ..instance("0a1b2c3d4e5f", "us-east-1b")
        })
        .start()
        .await;
    let r = s.get("/health").await;
    assert_eq!(r.header("x-task-arn"), Some(arn));
    assert!(r.header("x-instance-id").is_none());
    let text = s.get("/").await.body;
    assert_eq!(
        text.lines().next(),
        Some(&*format!(
            "suaicloudapp {VERSION} on task {arn} (flask-ecs-firehose:7, FARGATE, us-east-1b)"
        ))
    );
    assert_eq!(s.get("/health?format=json").await.json()["serviceId"], arn);
    let html = s.get_as("/", "text/html").await.body;
    assert!(
        html.contains(&format!("<dd id=\"task-arn\">{arn}</dd>")),
        "{html}"
    );
    assert!(
        html.contains("<dd id=\"family\">flask-ecs-firehose:7</dd>"),
        "{html}"
    );
}

#[tokio::test]
async fn the_registry_given_is_the_one_served() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass())
        .probe("http/api", StandIn::pass())
        .start()
        .await;
    let app = s.app();
    let names: Vec<&str> = app.registry.runners().iter().map(|r| r.name()).collect();
    assert_eq!(names, ["database", "http/api"]);
    assert!(app.registry.known().iter().any(|k| k == "http/api"));
    assert_eq!(app.origin, ORIGIN);
}
