//! Path and method to handler. Knows pages, not backends: a probe page asks the registry
//! for a runner and renders whatever [`Outcome`](crate::outcome::Outcome) comes back.

use super::render::{self, Body, Cause};
use super::{dashboard, App};
use crate::identity::Identity;
use crate::probes::Lookup;
use crate::secret::Secret;
use crate::secret_ref::Sourced;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::path::PathBuf;

/// `/health` answered on the spot, without the future every other page needs: at load-balancer
/// rates, moving a kilobyte-sized future into hyper's in-flight slot per request showed in the
/// profile. Any other path, or a method `/health` refuses, is `None`: [`route`] answers it.
pub fn answer_now<B>(app: &App, req: &Request<B>) -> Option<Response<Body>> {
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    (get && req.uri().path() == "/health").then(|| health(app, req))
}

fn health<B>(app: &App, req: &Request<B>) -> Response<Body> {
    match negotiate(req) {
        Format::Json => {
            let instance_id = app.shared.identity.get().map(Identity::service_id);
            render::health_json(&[], instance_id)
        }
        _ => render::text(StatusCode::OK, "healthy"),
    }
}

/// Answers one request. Never touches a backend except through the probe runners.
pub async fn route<B>(app: &App, req: &Request<B>) -> Response<Body> {
    // The listener asks `answer_now` first; a caller that did not still gets `/health`.
    if let Some(health) = answer_now(app, req) {
        return health;
    }
    let path = req.uri().path();
    let name = path.strip_prefix('/').unwrap_or(path);
    let page = match name {
        "" => Page::Dashboard,
        // `answer_now` took GET and HEAD: what is left is a method /health refuses.
        "health" => return method_not_allowed(),
        "logs" => Page::Logs,
        "metrics" => Page::Metrics,
        "ready" => Page::Ready,
        _ => match app.registry.lookup(name) {
            Lookup::Configured(runner) => Page::Probe(runner),
            Lookup::NotConfigured => Page::NotConfigured(name),
            Lookup::Unknown => return render::text(StatusCode::NOT_FOUND, "not found\n"),
        },
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed();
    }
    let mut cause = Cause::Shown;
    if let Some(auth) = &app.auth {
        if needs_sign_in(auth, &page, req) {
            if let Some(refused) = super::auth::refuse_unsigned(auth, req).await {
                return refused;
            }
        } else if matches!(page, Page::Probe(_) | Page::Ready) {
            cause = super::auth::cause_for(auth, req).await;
        }
    }
    let instance_id = app.shared.identity.get().map(Identity::service_id);
    match page {
        Page::Logs => logs(app, req).await,
        Page::Metrics => metrics(app, req).await,
        Page::Ready => ready(app, req, instance_id, cause).await,
        Page::NotConfigured(name) => render::text(
            StatusCode::NOT_FOUND,
            format!("not configured: add a [{name}] section to the config\n"),
        ),
        Page::Probe(runner) => {
            let outcome = runner.run().await;
            match negotiate(req) {
                Format::Json => render::health_json(std::slice::from_ref(&outcome), instance_id),
                _ => render::outcome(&outcome, cause),
            }
        }
        Page::Dashboard => dashboard(app, req, instance_id).await,
    }
}

fn method_not_allowed() -> Response<Body> {
    let mut resp = render::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    resp
}

enum Page<'a> {
    Dashboard,
    Logs,
    Metrics,
    Ready,
    Probe(&'a crate::probes::ProbeRunner),
    NotConfigured(&'a str),
}

/// With `[auth]`, the pages that show more than `OK`: the logs, the dashboard (targets,
/// causes, config origin), any JSON answer (its `output`) and, when asked, `/metrics`.
/// `/health` (answered before any page) and the plain answers of `/ready` and the probe pages
/// stay open for the load balancer, without their causes unless signed in.
fn needs_sign_in<B>(auth: &super::auth::AlbAuth, page: &Page<'_>, req: &Request<B>) -> bool {
    match page {
        Page::Logs | Page::Dashboard => true,
        Page::Metrics => auth.protect_metrics,
        Page::Probe(_) | Page::Ready => negotiate(req) == Format::Json,
        Page::NotConfigured(_) => false,
    }
}

/// Every configured backend, probed in parallel through the same cached runners: the page
/// answers within the longest probe budget even when a backend hangs.
async fn dashboard<B>(app: &App, req: &Request<B>, instance_id: Option<&str>) -> Response<Body> {
    let runs = app.registry.runners().iter().map(|r| r.run());
    let outcomes = futures_util::future::join_all(runs).await;
    let status = if outcomes.iter().all(|o| o.is_ok()) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    match negotiate(req) {
        Format::Json => {
            let mut doc = render::health_doc(&outcomes, instance_id);
            doc["config_source"] = super::config_source::json(app);
            render::json(doc)
        }
        Format::Html => {
            let refresh = query_param(req.uri().query(), "refresh")
                .and_then(|v| v.parse::<u32>().ok())
                .map(|s| s.clamp(1, 3600));
            render::html(status, dashboard::html(app, &outcomes, refresh))
        }
        Format::Text => render::text(status, dashboard::text(app, &outcomes)),
    }
}

/// `/ready`: the readiness group (`[health] ready`) through the same cached runners as the
/// pages, so a load balancer polling every few seconds costs each backend at most one check per
/// cache window. With no group it answers as `/health` does.
async fn ready<B>(
    app: &App,
    req: &Request<B>,
    instance_id: Option<&str>,
    cause: Cause,
) -> Response<Body> {
    if app.ready.is_empty() {
        return health(app, req);
    }
    let runners = app.registry.runners();
    let outcomes =
        futures_util::future::join_all(app.ready.iter().map(|&i| runners[i].run())).await;
    match negotiate(req) {
        Format::Json => render::health_json(&outcomes, instance_id),
        _ => render::ready(&outcomes, cause),
    }
}

/// `/metrics`: every configured backend is checked through its cached runner first (probe on
/// scrape, as blackbox_exporter does), so each scrape reports fresh `probe_up` for all of them
/// and costs each backend at most one check per cache window. OpenMetrics when the scraper
/// asks for it in `Accept`, the classic text format 0.0.4 otherwise.
async fn metrics<B>(app: &App, req: &Request<B>) -> Response<Body> {
    futures_util::future::join_all(app.registry.runners().iter().map(|r| r.run())).await;
    let openmetrics = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (body, content_type) = if openmetrics {
        (
            app.shared.metrics.render_openmetrics(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            app.shared.metrics.render_classic(),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    let mut resp = render::text(StatusCode::OK, body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// How a page answers: JSON when asked for (`?format=json` or an `Accept` naming JSON), HTML
/// for browsers, plain text otherwise (curl, the load balancer).
#[derive(Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Html,
}

fn negotiate<B>(req: &Request<B>) -> Format {
    match query_param(req.uri().query(), "format") {
        Some("json") => return Format::Json,
        Some("html") => return Format::Html,
        Some("text") => return Format::Text,
        _ => {}
    }
    // A scan rather than `get`: hashing the name costs more than comparing it with the few
    // headers a request carries, and the load balancer's requests carry no `Accept` at all.
    let Some(accept) = req
        .headers()
        .iter()
        .find(|(name, _)| *name == header::ACCEPT)
        .and_then(|(_, v)| v.to_str().ok())
    else {
        return Format::Text;
    };
    if accept.contains(render::HEALTH_JSON) || accept.contains("application/json") {
        Format::Json
    } else if accept.contains("text/html") {
        Format::Html
    } else {
        Format::Text
    }
}

fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The label a path is counted under in `/metrics`: a fixed page or a configured backend,
/// never the raw path (a scanner cannot create series).
pub fn page_label<'a>(app: &'a App, path: &str) -> &'a str {
    match path {
        "/" => "dashboard",
        "/health" => "health",
        "/logs" => "logs",
        "/metrics" => "metrics",
        "/ready" => "ready",
        _ => app
            .registry
            .known()
            .iter()
            .find(|n| path.strip_prefix('/') == Some(n.as_str()))
            .map_or("other", String::as_str),
    }
}

/// How long `/logs` waits for queued lines to reach the file before reading it anyway.
const LOG_SYNC_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether the request's bearer is `/logs`'s token. A referenced token is fetched (cached as
/// the probes' secrets are); a bearer that does not match it fetches it once more, at most once
/// per cache window, so a rotated token is accepted at once and wrong guesses cost no fetches.
/// `Err`: the token could not be fetched, or the fetched one is too short.
async fn token_allows<B>(
    app: &App,
    req: &Request<B>,
    token: &Sourced<Secret<String>>,
) -> Result<bool, String> {
    let r = match token {
        Sourced::Value(v) => return Ok(bearer_matches(req, v.expose())),
        // No bearer at all: nothing to compare, nothing to fetch.
        Sourced::Ref(_) if bearer(req).is_none() => return Ok(false),
        Sourced::Ref(r) => r,
    };
    let store = app.registry.secrets();
    let checked = |value: &Secret<String>| {
        crate::config::logs_token_length(value, &r.to_string())
            .map(|()| bearer_matches(req, value.expose()))
    };
    let fetched = store.get(r).await.map_err(|f| f.cause)?;
    if checked(&fetched.value)? {
        return Ok(true);
    }
    match store.refetch(r).await.map_err(|f| f.cause)? {
        Some(fresh) if fresh.version != fetched.version => checked(&fresh.value),
        _ => Ok(false),
    }
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
    // With `[auth]` the ALB's sign-in (checked in `route`) replaces the bearer token.
    if let (None, Some(token)) = (&app.auth, &cfg.token) {
        match token_allows(app, req, token).await {
            Ok(true) => {}
            Ok(false) => {
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
            Err(cause) => {
                return render::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("ERROR: secret: [logs] token: {cause}\n"),
                )
            }
        }
    }
    let max = cfg.max_lines.get();
    let lines = match parse_lines(req.uri().query(), max) {
        Ok(n) => n,
        Err(msg) => return render::text(StatusCode::BAD_REQUEST, msg),
    };
    // SECURITY: each answer holds up to 4 MiB until it is sent; a burst of requests must not
    // multiply that.
    let Some(slot) = crate::logs::try_reserve_tail() else {
        let mut resp = render::text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "busy: {} /logs answers are being read already; retry in a second\n",
                crate::logs::MAX_TAILS
            ),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    let path: PathBuf = cfg.file.clone();
    let keep = cfg.keep;
    // Lines still queued (up to the writer's rest) go to the file first, so the page shows
    // every request logged before this one; bounded, as a stalled stderr can hold the writer.
    let synced = tokio::time::timeout(
        LOG_SYNC_LIMIT,
        tokio::task::spawn_blocking(crate::logs::sync),
    );
    if synced.await.is_err() {
        tracing::warn!(
            "the log writer is stuck (stderr not draining?); /logs shows the file as it is"
        );
    }
    match tokio::task::spawn_blocking(move || crate::logs::tail(&path, keep, lines)).await {
        Ok(Ok(text)) => render::text(
            StatusCode::OK,
            bytes::Bytes::from_owner(crate::logs::TailBody::new(text, slot)),
        ),
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
/// The request's `Authorization: Bearer` value, if it sends one.
fn bearer<B>(req: &Request<B>) -> Option<&[u8]> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
}

fn bearer_matches<B>(req: &Request<B>, token: &str) -> bool {
    let Some(given) = bearer(req) else {
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
