//! Content negotiation: `?format=` first, then `Accept` (health+json, json, html), plain text
//! otherwise; and the plain answers the load balancer and scripts read stay exactly as they are.

use crate::support::{Fixture, StandIn};
use suaicloudapp::outcome::Stage;

const HEALTH_JSON: &str = "application/health+json";

#[tokio::test]
async fn health_answers_health_json_to_each_way_of_asking() {
    let s = Fixture::new("").start().await;
    for (path, accept) in [
        ("/health", HEALTH_JSON),
        ("/health", "application/json"),
        ("/health?format=json", "text/plain"),
        ("/health", "text/html, application/json;q=0.9"),
    ] {
        let r = s.get_as(path, accept).await;
        assert_eq!(r.status, 200, "{path} {accept}");
        assert_eq!(
            r.header("content-type"),
            Some(HEALTH_JSON),
            "{path} {accept}"
        );
        let doc = r.json();
        assert_eq!(doc["status"], "pass");
        assert_eq!(doc["version"], "1");
        assert_eq!(doc["releaseId"], env!("CARGO_PKG_VERSION"));
        assert!(doc.get("checks").is_none(), "/health checks nothing: {doc}");
        assert!(doc.get("serviceId").is_none(), "no identity known: {doc}");
    }
}

#[tokio::test]
async fn plain_answers_stay_plain_for_every_other_accept() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass())
        .start()
        .await;
    for accept in ["text/plain", "text/html", "*/*", "application/xml", ""] {
        let h = s.get_as("/health", accept).await;
        assert_eq!(h.body, "healthy", "{accept:?}");
        assert_eq!(h.header("content-type"), Some("text/plain; charset=utf-8"));
        // A probe page has no HTML form: a browser gets the same `OK` as the ALB.
        let p = s.get_as("/database", accept).await;
        assert_eq!(p.body, "OK", "{accept:?}");
        assert_eq!(p.header("content-type"), Some("text/plain; charset=utf-8"));
    }
}

#[tokio::test]
async fn the_format_parameter_wins_over_accept() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass())
        .start()
        .await;
    let r = s.get_as("/database?format=text", "application/json").await;
    assert_eq!(r.body, "OK");
    let r = s.get_as("/?format=json", "text/html").await;
    assert_eq!(r.header("content-type"), Some(HEALTH_JSON));
    let r = s.get_as("/?format=html", "application/json").await;
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = s.get_as("/?format=text", "text/html").await;
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    // An unknown value is no choice: Accept decides.
    let r = s.get_as("/database?format=xml", "application/json").await;
    assert_eq!(r.header("content-type"), Some(HEALTH_JSON));
}

#[tokio::test]
async fn a_passing_probe_in_json_carries_the_drafts_fields_and_its_details() {
    let s = Fixture::new("")
        .probe(
            "database",
            StandIn::pass_with(&[("server_version", "8.0.35"), ("tls", "TLSv1.3")])
                .target("db.internal:3306"),
        )
        .start()
        .await;
    let r = s.get_as("/database", "application/json").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["status"], "pass");
    let checks = doc["checks"].as_object().unwrap();
    assert_eq!(checks.len(), 1);
    let c = &doc["checks"]["database:responseTime"][0];
    assert_eq!(c["componentId"], "db.internal:3306");
    assert_eq!(c["componentType"], "datastore");
    assert_eq!(c["observedUnit"], "ms");
    assert_eq!(c["status"], "pass");
    assert!(c["observedValue"].as_f64().unwrap() >= 0.0, "{c}");
    let time = c["time"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
    assert_eq!(c["details"]["server_version"], "8.0.35");
    assert_eq!(c["details"]["tls"], "TLSv1.3");
    assert!(c.get("output").is_none(), "output is for failures: {c}");
}

#[tokio::test]
async fn a_failing_probe_in_json_is_503_with_output_and_no_details() {
    let s = Fixture::new("")
        .probe(
            "redis",
            StandIn::fail(Stage::Auth, "NOAUTH: set a password"),
        )
        .start()
        .await;
    let r = s.get("/redis?format=json").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some(HEALTH_JSON));
    let doc = r.json();
    assert_eq!(doc["status"], "fail");
    let c = &doc["checks"]["redis:responseTime"][0];
    assert_eq!(c["status"], "fail");
    assert_eq!(c["output"], "auth: NOAUTH: set a password");
    assert!(c.get("details").is_none(), "{c}");
}

#[tokio::test]
async fn component_types_follow_the_registry() {
    let mut f = Fixture::new("");
    for name in ["database", "redis", "dynamodb", "s3", "http/api"] {
        f = f.probe(name, StandIn::pass());
    }
    let s = f.start().await;
    let doc = s.get("/?format=json").await.json();
    for (name, kind) in [
        ("database", "datastore"),
        ("redis", "datastore"),
        ("dynamodb", "datastore"),
        ("s3", "component"),
        ("http/api", "component"),
    ] {
        let c = &doc["checks"][format!("{name}:responseTime")][0];
        assert_eq!(c["componentType"], kind, "{name}: {c}");
    }
}

#[tokio::test]
async fn the_dashboard_is_text_for_curl_html_for_a_browser_json_when_asked() {
    let s = Fixture::new("")
        .probe("database", StandIn::pass())
        .start()
        .await;
    let text = s.get("/").await;
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(text.body.starts_with("suaicloudapp "), "{}", text.body);
    let html = s.get_as("/", "text/html,application/xhtml+xml").await;
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(html.body.starts_with("<!doctype html>"), "{}", html.body);
    let json = s.get_as("/", HEALTH_JSON).await;
    assert_eq!(json.header("content-type"), Some(HEALTH_JSON));
    let doc = json.json();
    assert_eq!(doc["config_source"]["kind"], "file");
    assert_eq!(doc["config_source"]["origin"], crate::support::ORIGIN);
    assert!(doc["config_source"]["etag"].is_null());
    assert_eq!(doc["checks"].as_object().unwrap().len(), 1);
}
