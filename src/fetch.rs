//! A small bounded HTTP(S) GET for the process's own look-ups (ECS task metadata, the ALB's
//! public keys): one client with its pool, a deadline over the whole exchange and a cap on
//! the body. Not for probes: those own their clients and report staged failures.

use crate::tls::{self, Verify};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Why a GET gave no usable answer; messages carry the URL, which holds no secret here.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("cannot verify {0}: no CA bundle on this system (set SSL_CERT_FILE)")]
    NoCa(String),
    #[error("no answer from {url} within {ms} ms")]
    Timeout { url: String, ms: u128 },
    #[error("GET {url} failed: {cause}")]
    Transport { url: String, cause: String },
    #[error("GET {url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("reading the answer of {url} failed (or it is over {max} bytes)")]
    Body { url: String, max: usize },
}

/// One pooled client for plain and TLS-verified GETs.
pub struct Fetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    /// False when the system has no CA bundle: https is refused, http still works.
    verifies: bool,
}

impl Fetcher {
    /// Builds the client. TLS trusts the system's CA bundle (the image ships one).
    pub fn new() -> Fetcher {
        let (tls, verifies) = match tls::client_config(Verify::Full, None) {
            Ok(c) => (c, true),
            Err(_) => (
                tls::client_config(Verify::Nothing, None).expect("a config without roots"),
                false,
            ),
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Fetcher { client, verifies }
    }

    /// GETs `url`; only a 200 within `timeout` with a body of at most `max` bytes is an answer.
    pub async fn get(&self, url: &str, timeout: Duration, max: usize) -> Result<Bytes, FetchError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| FetchError::BadUrl(url.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if self.verifies => {}
            Some("https") => return Err(FetchError::NoCa(url.to_string())),
            _ => return Err(FetchError::BadUrl(url.to_string())),
        }
        let req = Request::get(uri)
            .header(
                "user-agent",
                concat!("suaicloudapp/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|_| FetchError::BadUrl(url.to_string()))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| FetchError::Transport {
                    url: url.to_string(),
                    cause: tls::chain_text(&e),
                })?;
            let status = resp.status().as_u16();
            if status != 200 {
                return Err(FetchError::Status {
                    url: url.to_string(),
                    status,
                });
            }
            Limited::new(resp.into_body(), max)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|_| FetchError::Body {
                    url: url.to_string(),
                    max,
                })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout {
                url: url.to_string(),
                ms: timeout.as_millis(),
            })?
    }
}

impl Default for Fetcher {
    fn default() -> Self {
        Fetcher::new()
    }
}
