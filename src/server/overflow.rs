//! A connection over the cap while every open one is busy: it still gets an answer. `/health`
//! is answered 200 when its request can be read in time (the process serves; the load
//! balancer must not take the instance out because clients are slow), anything else 503 with
//! `retry-after`. Then the connection closes. A small pool of its own bounds this work; past
//! it a bare 503 is written without reading the request.

use super::{answered, head_deadline::Activity, render, routes, App};
use arc_swap::ArcSwap;
use futures_util::future;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::warn;

/// Connections over the cap being read at once; past this they get the bare 503.
const POOL: usize = 64;

/// The answer to everything but `/health` over the cap.
const BUSY_BODY: &str = "connection limit reached\n";

/// What the listener keeps to answer over the cap.
pub struct Overflow {
    pool: Arc<Semaphore>,
    /// Counts turned-away connections so the log reports the cap without a line for each.
    refused: AtomicU64,
    cap: usize,
}

impl Overflow {
    /// For a listener capped at `cap` connections.
    pub fn new(cap: usize) -> Overflow {
        Overflow {
            pool: Arc::new(Semaphore::new(POOL)),
            refused: AtomicU64::new(0),
            cap,
        }
    }

    /// Answers one request on `stream` (within `limit`) and closes it.
    pub fn answer(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        state: Arc<ArcSwap<App>>,
        limit: Duration,
    ) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 || n.is_power_of_two() {
            warn!(%peer, cap = self.cap, over_cap_total = n, "connection limit reached and every connection busy; answering /health only");
        }
        let Ok(permit) = self.pool.clone().try_acquire_owned() else {
            tokio::spawn(bare_503(stream));
            return;
        };
        let peer: Arc<str> = peer.to_string().into();
        let activity = Arc::new(Activity::new(Instant::now()));
        let service = service_fn(move |req| {
            let app = state.load_full();
            let started = Instant::now();
            let resp = routes::answer_now(&app, &req).unwrap_or_else(|| {
                let mut resp = render::text(StatusCode::SERVICE_UNAVAILABLE, BUSY_BODY);
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                resp
            });
            let resp = answered(&app, &req, resp, started, &peer, &activity);
            future::ready(Ok::<_, Infallible>(resp))
        });
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .keep_alive(false)
                .max_buf_size(super::MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limit, conn).await;
            drop(permit);
        });
    }
}

/// The answer when even the overflow pool is full: written without reading the request.
async fn bare_503(mut stream: TcpStream) {
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncache-control: no-store\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BUSY_BODY}",
        BUSY_BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(head.as_bytes())).await;
}
