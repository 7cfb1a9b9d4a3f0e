//! Path and method to handler. Knows pages, not backends: a probe page asks the registry
//! for a runner and renders whatever [`Outcome`](crate::probes::Outcome) comes back.

use super::render::{self, Body};
use super::App;
use crate::probes::Lookup;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::path::PathBuf;

/// Answers one request. Never touches a backend except through the probe runners.
pub async fn route<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let path = req.uri().path();
    let name = path.strip_prefix('/').unwrap_or(path);
    let page = match name {
        "health" => Page::Health,
        "logs" => Page::Logs,
        _ => match app.registry.lookup(name) {
            Lookup::Configured(_) => Page::Probe(name),
            Lookup::NotConfigured => Page::NotConfigured(name),
            Lookup::Unknown => return render::text(StatusCode::NOT_FOUND, "not found\n"),
        },
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = render::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    match page {
        Page::Health => render::text(StatusCode::OK, "healthy"),
        Page::Logs => logs(app, req).await,
        Page::NotConfigured(name) => render::text(
            StatusCode::NOT_FOUND,
            format!("not configured: add a [{name}] section to the config\n"),
        ),
        Page::Probe(name) => match app.registry.lookup(name) {
            Lookup::Configured(runner) => render::outcome(&runner.run().await),
            _ => render::text(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

enum Page<'a> {
    Health,
    Logs,
    Probe(&'a str),
    NotConfigured(&'a str),
}

/// `/logs`: the tail of the log file, behind an optional bearer token.
async fn logs<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let cfg = &app.logs;
    if !cfg.enabled {
        return render::text(
            StatusCode::NOT_FOUND,
            "logs are disabled ([logs] enabled = false)\n",
        );
    }
    if let Some(token) = &cfg.token {
        if !bearer_matches(req, token.expose()) {
            let mut resp = render::text(
                StatusCode::UNAUTHORIZED,
                "unauthorized: send Authorization: Bearer <[logs] token>\n",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"suaicloudapp logs\""),
            );
            return resp;
        }
    }
    let max = cfg.max_lines.get();
    let lines = match parse_lines(req.uri().query(), max) {
        Ok(n) => n,
        Err(msg) => return render::text(StatusCode::BAD_REQUEST, msg),
    };
    let path: PathBuf = cfg.file.clone();
    match tokio::task::spawn_blocking(move || crate::logs::tail(&path, lines)).await {
        Ok(Ok(text)) => render::text(StatusCode::OK, text),
        Ok(Err(e)) => render::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "cannot read the log file {}: {}\n",
                cfg.file.display(),
                e.kind()
            ),
        ),
        Err(_) => render::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "log reader failed; see stderr\n",
        ),
    }
}

/// Default number of lines `/logs` returns.
pub const DEFAULT_LOG_LINES: usize = 200;

/// `lines=N` is the only parameter; anything else is a 400, large N is capped at `max`.
fn parse_lines(query: Option<&str>, max: usize) -> Result<usize, String> {
    let bad = || format!("bad query: the only parameter is lines=N with N from 1 to {max}\n");
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Ok(DEFAULT_LOG_LINES.min(max));
    };
    let value = q.strip_prefix("lines=").ok_or_else(bad)?;
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match value.parse::<usize>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(n) => Ok(n.min(max)),
    }
}

/// Compares the bearer token in constant time, so timing does not leak it.
fn bearer_matches<B>(req: &Request<B>, token: &str) -> bool {
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    let want = token.as_bytes();
    given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parameter_is_strict_and_capped() {
        assert_eq!(parse_lines(None, 5000), Ok(200));
        assert_eq!(parse_lines(Some(""), 5000), Ok(200));
        assert_eq!(parse_lines(Some("lines=3"), 5000), Ok(3));
        assert_eq!(parse_lines(Some("lines=999999"), 5000), Ok(5000));
        assert_eq!(parse_lines(None, 50), Ok(50));
        for bad in [
            "lines=0",
            "lines=-1",
            "lines=",
            "lines=1e3",
            "x=1",
            "lines=1&x=2",
            "lines=99999999999999999999",
        ] {
            assert!(parse_lines(Some(bad), 5000).is_err(), "{bad}");
        }
    }

    #[test]
    fn bearer_needs_the_exact_token() {
        let req = |v: &str| {
            Request::builder()
                .header("authorization", v)
                .body(())
                .unwrap()
        };
        assert!(bearer_matches(&req("Bearer s3cret"), "s3cret"));
        assert!(!bearer_matches(&req("Bearer s3cre"), "s3cret"));
        assert!(!bearer_matches(&req("Bearer s3cretX"), "s3cret"));
        assert!(!bearer_matches(&req("Basic s3cret"), "s3cret"));
        assert!(!bearer_matches(&Request::new(()), "s3cret"));
    }
}
