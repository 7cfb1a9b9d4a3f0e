//! The harness's HTTP client: hyper's, the client the product links already, driven from the
//! tests' plain threads on a small runtime of its own. Everything a well-formed request can
//! show goes through here; [`crate::raw`] is only for bytes no client would send.

use crate::Resp;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// How long one exchange may take before the test fails: a hung server fails the test, it
/// never hangs the suite.
const LIMIT: Duration = Duration::from_secs(30);

/// Why an exchange did not produce a response.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// One request on a connection of its own, closed after the answer (`Connection: close`),
/// as a browser's or curl's first request is.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut conn = Conn::open(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let mut all = vec![("connection", "close")];
    all.extend_from_slice(headers);
    conn.send(method, path, &all)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// One keep-alive HTTP/1.1 connection: requests in turn on the same socket, as a load
/// balancer's health checker or a scraper sends them.
pub struct Conn {
    rt: Runtime,
    sender: SendRequest<Empty<Bytes>>,
}

impl Conn {
    /// Connects and completes hyper's handshake (no bytes are sent before the first request).
    pub fn open(addr: SocketAddr) -> Result<Conn, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let sender = rt.block_on(async {
            let stream = tokio::time::timeout(LIMIT, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| "connect timed out")??;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            // The connection's driver: it ends when either side closes.
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok::<_, Error>(sender)
        })?;
        Ok(Conn { rt, sender })
    }

    /// GET `path`.
    pub fn get(&mut self, path: &str) -> Result<Resp, Error> {
        self.send("GET", path, &[])
    }

    /// Any method and headers (a `Host` of the test's own overrides the default one).
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Resp, Error> {
        let mut req = Request::builder().method(method).uri(path);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req = req.header("host", "test");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Empty::new())?;
        let started = Instant::now();
        let sender = &mut self.sender;
        self.rt.block_on(async {
            tokio::time::timeout(LIMIT, async {
                sender.ready().await?;
                let resp = sender.send_request(req).await?;
                let status = resp.status().as_u16();
                let headers = resp
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                        (k.as_str().to_string(), v)
                    })
                    .collect();
                let body = resp.into_body().collect().await?.to_bytes();
                Ok::<_, Error>(Resp {
                    status,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                    elapsed: started.elapsed(),
                })
            })
            .await
            .map_err(|_| format!("no complete response within {LIMIT:?}"))?
        })
    }

    /// Whether the server has closed the connection (hyper has seen it end).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}
