//! Turns data into responses: an [`Outcome`] or a plain message into status, headers, body.
//!
//! SECURITY: every body is `text/plain` with `nosniff`, so no proxy or browser renders a
//! backend's error text as HTML; every response is `no-store`, so no cache serves a stale
//! health answer.

use crate::probes::Outcome;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

/// The body type of every response.
pub type Body = Full<Bytes>;

/// A `text/plain` response with the headers every answer carries.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `200 OK` or `503 ERROR: <stage>: <cause>`, with the probe's duration and failing stage.
pub fn outcome(o: &Outcome) -> Response<Body> {
    let mut resp = match &o.result {
        Ok(_) => text(StatusCode::OK, "OK"),
        Err(f) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("ERROR: {}: {}\n", f.stage, f.cause),
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
