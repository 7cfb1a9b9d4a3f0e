//! Turns data into responses: an [`Outcome`] or a plain message into status, headers, body.
//!
//! SECURITY: every body is `text/plain` with `nosniff`, so no proxy or browser renders a
//! backend's error text as HTML; every response is `no-store`, so no cache serves a stale
//! health answer.

use crate::outcome::Outcome;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use std::sync::LazyLock;

/// The body type of every response.
pub type Body = Full<Bytes>;

/// The headers every answer carries, built once: copying a finished map costs a fraction of
/// hashing three inserts into a new one, and `/health` pays it at load-balancer rates.
static TEXT_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut h = HeaderMap::with_capacity(4);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h
});

/// A `text/plain` response with the headers every answer carries.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    *resp.headers_mut() = TEXT_HEADERS.clone();
    resp
}

/// Whether a failure's plain answer carries its cause. The cause names hosts, users, IAM
/// actions and ARNs: with `[auth]` set, only a signed-in user sees it, while the load balancer
/// still reads the status and the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Shown,
    Withheld,
}

/// `200 OK` or `503 ERROR: <stage>: <cause>`, with the probe's duration and failing stage.
pub fn outcome(o: &Outcome, cause: Cause) -> Response<Body> {
    let mut resp = match &o.result {
        Ok(_) => text(StatusCode::OK, "OK"),
        Err(f) if cause == Cause::Shown => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("ERROR: {}: {}\n", f.stage, f.cause),
        ),
        Err(f) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("ERROR: {}\n", f.stage),
        ),
    };
    let h = resp.headers_mut();
    h.insert(
        "x-probe-duration-ms",
        HeaderValue::from(o.duration.as_millis() as u64),
    );
    if let Err(f) = &o.result {
        h.insert("x-probe-stage", HeaderValue::from_static(f.stage.as_str()));
    }
    resp
}

/// The media type of the IETF "Health Check Response Format for HTTP APIs" draft.
pub const HEALTH_JSON: &str = "application/health+json";

/// Outcomes in the draft's shape: `status`, and `checks` keyed `<backend>:responseTime`, each
/// with `componentType`, `observedValue` (latency, ms), `time` and, on failure, `output` (on
/// success, `details`: what the backend reported).
/// Pass answers 200, fail 503.
pub fn health_json(outcomes: &[Outcome], instance_id: Option<&str>) -> Response<Body> {
    json(health_doc(outcomes, instance_id))
}

/// The document [`health_json`] sends, for a page that adds its own fields.
pub fn health_doc(outcomes: &[Outcome], instance_id: Option<&str>) -> serde_json::Value {
    let all_ok = outcomes.iter().all(Outcome::is_ok);
    let mut checks = serde_json::Map::new();
    for o in outcomes {
        let mut c = serde_json::json!({
            "componentId": o.target,
            "componentType": component_type(&o.name),
            "observedValue": (o.duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            "observedUnit": "ms",
            "status": if o.is_ok() { "pass" } else { "fail" },
            "time": humantime::format_rfc3339_millis(o.checked_at).to_string(),
        });
        match &o.result {
            Err(f) => c["output"] = format!("{}: {}", f.stage, f.cause).into(),
            // What a passing backend reported (`server_version`, `tls`...): an extension
            // field, as the draft keeps `output` for failures.
            Ok(details) if !details.is_empty() => {
                let map: serde_json::Map<String, serde_json::Value> = details
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone().into()))
                    .collect();
                c["details"] = map.into();
            }
            Ok(_) => {}
        }
        checks.insert(
            format!("{}:responseTime", o.name),
            serde_json::Value::Array(vec![c]),
        );
    }
    let mut doc = serde_json::json!({
        "status": if all_ok { "pass" } else { "fail" },
        "version": "1",
        "releaseId": env!("CARGO_PKG_VERSION"),
        "description": "suaicloudapp: backends as seen from this instance",
    });
    if let Some(id) = instance_id {
        doc["serviceId"] = id.into();
    }
    if !outcomes.is_empty() {
        doc["checks"] = serde_json::Value::Object(checks);
    }
    doc
}

/// A health document as `application/health+json`: 200 when its `status` is `pass`, else 503.
pub fn json(doc: serde_json::Value) -> Response<Body> {
    let status = if doc["status"] == "pass" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut resp = text(status, doc.to_string());
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    resp
}

/// The draft's `componentType`: databases and caches (as the registry marks them) are
/// `datastore`, every other backend (object store, streams, topics, functions, HTTP endpoints)
/// a `component`.
fn component_type(page: &str) -> &'static str {
    match crate::probes::backend(page) {
        Some(b) if b.datastore => "datastore",
        _ => "component",
    }
}

/// `/ready`: `200 OK` when every outcome passed, else 503 with one
/// `ERROR: <backend>: <stage>: <cause>` line per failing backend.
pub fn ready(outcomes: &[Outcome], cause: Cause) -> Response<Body> {
    let mut failed = String::new();
    for o in outcomes {
        match &o.result {
            Err(f) if cause == Cause::Shown => {
                failed.push_str(&format!("ERROR: {}: {}: {}\n", o.name, f.stage, f.cause))
            }
            Err(f) => failed.push_str(&format!("ERROR: {}: {}\n", o.name, f.stage)),
            Ok(_) => {}
        }
    }
    if failed.is_empty() {
        text(StatusCode::OK, "OK")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, failed)
    }
}

/// An HTML page with the dashboard's security headers.
pub fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = text(status, body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::dashboard::csp()),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}
