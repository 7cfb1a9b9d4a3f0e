//! The operator's view: the dashboard in a real headless Chromium, the health+json form
//! checked against the draft's rules, and /metrics read by Prometheus' own parser.

use harness::*;
use std::process::Command;
use std::time::Duration;

/// Database and DynamoDB reachable, Redis down (a closed port).
fn one_down_config() -> String {
    format!(
        "{}[aws]\nendpoint_url = \"{}\"\n[dynamodb]\ntable = \"{}\"\n\
         [database]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"probe\"\npassword = \"{}\"\ndbname = \"suai\"\n\
         [redis]\nhost = \"127.0.0.1\"\nport = {}\ntimeout_ms = 1000\n",
        server_section(),
        env_var("SUAI_TEST_MOTO_URL"),
        env_var("SUAI_TEST_TABLE"),
        env_var("SUAI_TEST_MYSQL_PORT"),
        env_var("SUAI_TEST_MYSQL_PASSWORD"),
        closed_port(),
    )
}

/// Headless Chromium as the machine kind documents it: no network chatter, a fresh profile.
fn chromium(args: &[&str]) -> String {
    let profile = scratch_dir("chromium-profile");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium (scripts/test-env.sh installs Debian's chromium)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `<tr>` of one backend in a serialized DOM.
fn row<'a>(dom: &'a str, backend: &str) -> &'a str {
    let start = dom
        .find(&format!("data-backend=\"{backend}\""))
        .unwrap_or_else(|| panic!("no row for {backend}: {dom}"));
    let row_start = dom[..start].rfind("<tr").unwrap();
    let end = start + dom[start..].find("</tr>").unwrap();
    &dom[row_start..end]
}

#[test]
fn dashboard_in_a_real_browser_shows_the_down_row_and_its_cause() {
    let a = App::start("dash-browser", &one_down_config());
    let url = format!("http://{}/", a.addr);
    let dom = chromium(&["--virtual-time-budget=2000", "--dump-dom", &url]);
    // The inline script ran: this is the rendered DOM, not just the served HTML.
    assert!(dom.contains("data-rendered=\"yes\""), "{dom}");
    assert!(
        dom.contains(" s ago"),
        "check times made relative by the script: {dom}"
    );
    let redis = row(&dom, "redis");
    assert!(redis.contains("class=\"fail\""), "{redis}");
    assert!(
        redis.contains("FAIL") && redis.contains("connect") && redis.contains("connection refused"),
        "{redis}"
    );
    for ok in ["database", "dynamodb"] {
        let r = row(&dom, ok);
        assert!(
            r.contains("class=\"ok\"") && r.contains(">OK<"),
            "{ok}: {r}"
        );
    }
    assert!(
        row(&dom, "database").contains("server_version="),
        "a passing row says what answered"
    );
    assert!(row(&dom, "s3").contains("not configured"));
    assert!(dom.contains("href=\"/logs\"") && dom.contains("href=\"/redis\""));
    assert!(dom.contains("1 failing"), "title summary: {dom}");
    // Screenshots for a person: desktop and phone widths.
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    for (file, size) in [
        ("dashboard.png", "1200,700"),
        ("dashboard-phone.png", "390,844"),
    ] {
        let path = target.join(file);
        let _ = std::fs::remove_file(&path);
        chromium(&[
            &format!("--screenshot={}", path.display()),
            &format!("--window-size={size}"),
            &url,
        ]);
        assert!(
            std::fs::metadata(&path)
                .map(|m| m.len() > 10_000)
                .unwrap_or(false),
            "{file}"
        );
    }
}

#[test]
fn dashboard_answers_within_the_budget_when_a_backend_hangs() {
    let hung = HungServer::start();
    let config = format!(
        "{}[redis]\nhost = \"127.0.0.1\"\nport = {}\ntimeout_ms = 1000\n[database]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"probe\"\npassword = \"{}\"\ndbname = \"suai\"\n",
        server_section(),
        hung.port,
        env_var("SUAI_TEST_MYSQL_PORT"),
        env_var("SUAI_TEST_MYSQL_PASSWORD"),
    );
    let a = App::start("dash-hung", &config);
    let r = a.request("GET", "/", &[("Accept", "text/html")]);
    assert_eq!(r.status, 503);
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    assert!(r.body.contains("timeout") && r.body.contains("within 1000 ms"));
    assert!(!r.body.contains(&env_var("SUAI_TEST_MYSQL_PASSWORD")));
    // Plain text for curl, with a line per backend.
    let t = a.get("/");
    assert_eq!(t.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(
        t.body
            .lines()
            .any(|l| l.starts_with("redis") && l.contains("FAIL")),
        "{}",
        t.body
    );
    assert!(
        t.body
            .lines()
            .any(|l| l.starts_with("database") && l.contains(" OK ")),
        "{}",
        t.body
    );
    // Auto-refresh is opt-in and clamped.
    assert!(a
        .request("GET", "/?refresh=5", &[("Accept", "text/html")])
        .body
        .contains("content=\"5\""));
    assert!(a
        .request("GET", "/?refresh=0", &[("Accept", "text/html")])
        .body
        .contains("content=\"1\""));
}

/// The draft's rules for one response body.
fn assert_health_json(r: &Resp, want_status: &str) -> serde_json::Value {
    assert_eq!(r.header("content-type"), Some("application/health+json"));
    let doc: serde_json::Value = serde_json::from_str(&r.body).expect("valid JSON");
    let status = doc["status"].as_str().expect("status is required");
    assert_eq!(status, want_status);
    match status {
        "pass" => assert!((200..300).contains(&r.status)),
        "warn" => assert!((200..400).contains(&r.status)),
        "fail" => assert!((400..600).contains(&r.status)),
        other => panic!("status must be pass, warn or fail, not {other}"),
    }
    if let Some(checks) = doc.get("checks") {
        for (key, list) in checks.as_object().expect("checks is an object") {
            assert_eq!(
                key.split(':').count(),
                2,
                "key is component:measurement: {key}"
            );
            for c in list.as_array().expect("each check is an array") {
                let s = c["status"].as_str().unwrap();
                assert!(["pass", "warn", "fail"].contains(&s));
                assert!(c["componentType"].is_string());
                assert!(c["observedValue"].as_f64().unwrap() >= 0.0);
                assert_eq!(c["observedUnit"], "ms");
                let t = c["time"].as_str().unwrap();
                assert!(humantime::parse_rfc3339(t).is_ok(), "time is RFC 3339: {t}");
                assert_eq!(
                    c.get("output").is_some(),
                    s != "pass",
                    "output only on failure: {c}"
                );
            }
        }
    }
    doc
}

#[test]
fn json_forms_follow_the_health_check_draft() {
    let a = App::start("dash-json", &one_down_config());
    let r = a.request("GET", "/", &[("Accept", "application/health+json")]);
    let doc = assert_health_json(&r, "fail");
    assert_eq!(doc["checks"].as_object().unwrap().len(), 3);
    assert!(doc["checks"]["redis:responseTime"][0]["output"]
        .as_str()
        .unwrap()
        .contains("connection refused"));
    let r = a.request("GET", "/database", &[("Accept", "application/json")]);
    let doc = assert_health_json(&r, "pass");
    assert_eq!(doc["checks"]["database:responseTime"][0]["status"], "pass");
    assert_health_json(&a.get("/redis?format=json"), "fail");
    assert_health_json(&a.get("/health?format=json"), "pass");
    let accept = [
        ("User-Agent", "t"),
        ("Accept", "text/html, application/json;q=0.9"),
    ];
    assert_health_json(&a.request("GET", "/health", &accept), "pass");
    // text/plain stays exactly as the ALB and curl expect.
    assert_eq!(a.get("/health").body, "healthy");
    assert_eq!(a.get("/database").body, "OK");
}

#[test]
fn metrics_parse_with_the_prometheus_parser() {
    let a = App::start("dash-metrics", &one_down_config());
    assert_eq!(a.get("/database").status, 200);
    assert_eq!(a.get("/redis").status, 503);
    a.get("/health");
    a.get("/no/such/page");
    let r = a.request(
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    );
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    // Prints "name{labels} value" for every sample, as the official parser read them.
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n\
        for f in p(sys.stdin.read()):\n  for s in f.samples:\n    print(s.name, sorted(s.labels.items()), s.value)\n";
    let out = run_with_stdin(
        Command::new(moto::venv_python()).args(["-c", script]),
        r.body.as_bytes(),
        "the moto venv's python",
    );
    assert!(
        out.status.success(),
        "parser rejected /metrics: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.body
    );
    let samples = String::from_utf8_lossy(&out.stdout);
    let has = |needle: &str| samples.lines().any(|l| l.contains(needle));
    assert!(
        has("suaicloudapp_probe_up [('backend', 'database')] 1"),
        "{samples}"
    );
    assert!(
        has("suaicloudapp_probe_up [('backend', 'redis')] 0"),
        "{samples}"
    );
    assert!(
        has("suaicloudapp_probe_duration_seconds_count [('backend', 'redis')] 1"),
        "{samples}"
    );
    assert!(
        has("suaicloudapp_http_requests_total [('page', 'health'), ('status', '200')] 1"),
        "{samples}"
    );
    assert!(
        has("suaicloudapp_http_requests_total [('page', 'other'), ('status', '404')] 1"),
        "{samples}"
    );
    assert!(has("suaicloudapp_build_info [('version', '"), "{samples}");
    assert!(!r.body.contains(&env_var("SUAI_TEST_MYSQL_PASSWORD")));
}
