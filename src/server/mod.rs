//! The listener: accepts connections, caps how many are open (closing the longest-idle one to
//! make room), times out slow request heads and idle keep-alives, logs one line per request,
//! and drains in-flight requests on shutdown.

pub mod auth;
pub mod config_source;
mod connections;
pub mod dashboard;
mod head_deadline;
mod overflow;
pub mod render;
pub mod routes;
mod watched;

use crate::config::{LogsConfig, ServerConfig};
use crate::identity::SharedIdentity;
use crate::load::Loaded;
use crate::metrics::Metrics;
use crate::probes::Config;
use crate::probes::Registry;
use arc_swap::ArcSwap;
use connections::Connections;
use futures_util::future::{self, Either};
use head_deadline::{Activity, Timeouts};
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tracing::{info, warn};
use watched::Watched;

/// What the pages need: the probes and the log settings. Built once per config and swapped
/// whole on reload, so a request sees one config from start to end.
pub struct App {
    pub registry: Registry,
    pub logs: LogsConfig,
    pub server: ServerConfig,
    /// `[health] ready`, as positions in `registry.runners()`.
    pub ready: Vec<usize>,
    /// Where the config came from and its ETag, for the dashboard.
    pub origin: String,
    pub etag: Option<String>,
    /// `[auth]`: ALB sign-in for the detailed pages, with its key cache.
    pub auth: Option<auth::AlbAuth>,
    /// The region the AWS probes use when the config names one (`[aws] region`); else the
    /// SDK's chain picks it (`AWS_REGION`, instance metadata).
    pub region: Option<String>,
    /// Set while the config is the last known good copy, not S3's object.
    pub fallback: Option<crate::load::last_good::Fallback>,
    pub shared: Shared,
}

/// What outlives a config reload.
#[derive(Clone, Default)]
pub struct Shared {
    /// Which instance answers, once IMDS has said.
    pub identity: SharedIdentity,
    pub metrics: Arc<Metrics>,
}

impl App {
    /// Builds the probes (clients included) for `config`.
    pub fn new(config: &Config, loaded: &Loaded, shared: Shared) -> App {
        let registry = Registry::build(config, shared.metrics.clone());
        App::with_registry(config, loaded, registry, shared)
    }

    /// As [`App::new`], with the probes already built: the fast test tier passes a registry of
    /// stand-ins ([`Registry::from_probes`]), so pages are served in-process with no backend.
    /// `registry` should count into `shared.metrics`, as [`App::new`]'s does. A `[health]
    /// ready` name with no runner in `registry` is left out of the group (with
    /// [`Registry::build`] validation has made that impossible).
    pub fn with_registry(
        config: &Config,
        loaded: &Loaded,
        registry: Registry,
        shared: Shared,
    ) -> App {
        // Config validation has checked every name against the configured sections.
        let ready = config
            .health
            .ready
            .iter()
            .filter_map(|name| registry.runners().iter().position(|r| r.name() == name))
            .collect();
        App {
            registry,
            ready,
            logs: config.logs.clone(),
            server: config.server.clone(),
            origin: loaded.origin.clone(),
            etag: loaded.etag.clone(),
            auth: config.auth.as_ref().map(auth::AlbAuth::new),
            region: config.aws.region.clone(),
            fallback: loaded.fallback.clone(),
            shared,
        }
    }
}

/// Largest request head accepted; a larger one gets 431 from hyper.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Serves until `shutdown` resolves, then stops accepting and lets open requests finish
/// within the grace period.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ArcSwap<App>>,
    shutdown: impl Future<Output = ()>,
) {
    // Listener settings are fixed at start; a reload changes pages, not the socket.
    let cfg = state.load().server.clone();
    // Caps open connections; at the cap the longest-idle one makes room (connections.rs).
    let connections = Connections::new(cfg.max_connections.get());
    // Answers over the cap when every connection is busy: /health still, the rest 503.
    let overflow = overflow::Overflow::new(cfg.max_connections.get());
    // Counts idle connections closed at the cap, for a log line at powers of two.
    let reused = AtomicU64::new(0);
    // Tracks every connection so shutdown can wait for in-flight requests.
    let graceful = GracefulShutdown::new();
    let timeouts = Timeouts {
        head: cfg.header_timeout_ms.duration(),
        keepalive: cfg.keepalive_timeout_ms.duration(),
    };
    let mut http = http1::Builder::new();
    // The head deadline is kept per connection (head_deadline.rs), not by hyper per request.
    http.header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES)
        // Without it hyper reads the socket again while each request is in flight, to notice a
        // client that hangs up; the request still holds the read buffer then, so every request
        // cost a fresh 8 KB buffer. Probes run in tasks of their own (probes/runner.rs) and a
        // client's leaving never cancelled them, so nothing is lost: the answer goes out and the
        // next read sees the end of the stream.
        .half_close(true)
        // Every answer here is a few hundred bytes: one copy into the head's buffer and one
        // write beat queueing the pieces for a vectored write.
        .writev(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = connections.slot() else {
            overflow.answer(stream, peer, state.clone(), timeouts.head);
            continue;
        };
        if slot.reused {
            let n = reused.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_power_of_two() {
                info!(
                    cap = cfg.max_connections.get(),
                    closed_total = n,
                    "connection limit reached; closed the longest-idle connection to make room"
                );
            }
        }
        let state = state.clone();
        // Formatted once per connection, not per request's access line.
        let peer: Arc<str> = peer.to_string().into();
        let activity = Arc::new(Activity::new(Instant::now()));
        let requests = activity.clone();
        let service = service_fn(move |req| {
            let app = state.load_full();
            requests.request_started();
            let started = Instant::now();
            if let Some(resp) = routes::answer_now(&app, &req) {
                let resp = answered(&app, &req, resp, started, &peer, &requests);
                return Either::Left(future::ready(Ok::<_, Infallible>(resp)));
            }
            let peer = peer.clone();
            let activity = requests.clone();
            Either::Right(Box::pin(async move {
                let resp = routes::route(&app, &req).await;
                Ok(answered(&app, &req, resp, started, &peer, &activity))
            }))
        });
        let io = TokioIo::new(Watched::new(stream, activity.clone()));
        let conn = graceful.watch(http.serve_connection(io, service));
        let watched = activity.clone();
        connections.open(slot, activity, |registration| {
            let mut task = tokio::spawn(async move {
                let _registration = registration;
                let _ = conn.await;
            });
            // Aborting the connection's task closes it: a head not finished in time
            // (slowloris), a keep-alive idle too long, or the longest-idle one at the cap. A
            // task of its own, so answering a request never polls the clocks' timer.
            let abort = task.abort_handle();
            let handle = abort.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = &mut task => {}
                    () = head_deadline::expired(&watched, timeouts) => abort.abort(),
                }
            });
            handle
        });
    }
    drop(listener);
    info!("shutting down: no longer accepting, draining open connections");
    let grace = cfg.shutdown_grace_ms.duration();
    tokio::select! {
        () = graceful.shutdown() => info!("all connections closed"),
        () = tokio::time::sleep(grace) => warn!(grace_ms = grace.as_millis() as u64, "grace period over; exiting with connections still open"),
    }
}

/// Finishes an answer: metrics, the instance's headers, the head deadline, the access line.
fn answered<B>(
    app: &App,
    req: &Request<B>,
    mut resp: hyper::Response<render::Body>,
    started: Instant,
    peer: &str,
    activity: &Activity,
) -> hyper::Response<render::Body> {
    app.shared.metrics.observe_request(
        routes::page_label(app, req.uri().path()),
        resp.status().as_u16(),
    );
    if let Some(id) = app.shared.identity.get() {
        let h = resp.headers_mut();
        for (name, value) in id.headers() {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        }
    }
    let answered = Instant::now();
    activity.request_answered(answered);
    crate::logs::access(&crate::logs::Access {
        method: req.method().as_str(),
        path: req.uri().path(),
        status: resp.status().as_u16(),
        latency: answered - started,
        peer,
        forwarded_for: req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok()),
    });
    resp
}
