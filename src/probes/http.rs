//! `/http/<name>`: one request to a configured URL (API Gateway stage, Lambda function URL,
//! internal service). Redirects are never followed; TLS is always verified.
//!
//! SECURITY: the URL's userinfo and query values are secrets ([`SecretUrl`]); every message and
//! the target show the redacted form, and a `user:pass@` is sent as HTTP Basic credentials.

use super::Probe;
use super::unit::{Build, Unit};
use crate::config::{ensure, Millis, PageName};
use crate::outcome::{Details, Failure, Stage};
use crate::secret::{redact_url, SecretUrl};
use crate::secret_ref::{Fill, SecretRef, Sourced};
use crate::tls::{self, Cause, Verify};
use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// One `[[http]]` entry: an API Gateway stage, a function URL, an internal service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// The page is `/http/<name>`: letters, digits, `-` and `_`.
    pub name: PageName,
    /// Its userinfo and query values are secrets: shown as `***` everywhere. Or a secret
    /// reference holding the whole URL (a webhook URL is its own credential).
    pub url: Sourced<SecretUrl>,
    #[serde(default)]
    pub method: HttpMethod,
    /// The exact status expected; any 2xx when unset. Redirects are never followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<u16>,
    /// A substring the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// PEM CA bundle for https URLs signed by a private CA; else system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

/// The methods an HTTP check may use: neither changes anything on the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
}

impl Unit for HttpCheck {
    type Probe = HttpProbe;

    fn target(&self) -> String {
        match &self.url {
            Sourced::Value(url) => url.redacted().to_string(),
            Sourced::Ref(r) => format!("the URL in {r}"),
        }
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn entry_name(&self) -> Option<String> {
        Some(self.name.to_string())
    }
    fn validate(&self) -> Result<(), String> {
        // A referenced URL is checked when it is fetched (`fill`).
        if let Sourced::Value(url) = &self.url {
            ensure(absolute(url.expose()), || {
                format!(
                    "[[http]] {}: url \"{}\" must be an absolute http:// or https:// URL",
                    self.name,
                    url.redacted()
                )
            })?;
        }
        ensure(
            self.expect_status.is_none_or(|s| (100..=599).contains(&s)),
            || format!("[[http]] {}: expect_status must be 100-599", self.name),
        )
    }
    fn secret_fields(&mut self) -> Vec<&mut dyn Fill> {
        vec![&mut self.url]
    }
    fn build(&self, build: &Build<'_>) -> HttpProbe {
        HttpProbe::new(self, build.budget)
    }
}

fn absolute(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://")) && url.parse::<Uri>().is_ok()
}

/// A URL fetched for a reference is checked as the file's would be (without showing it).
impl Fill for Sourced<SecretUrl> {
    fn reference(&self) -> Option<&SecretRef> {
        Sourced::reference(self)
    }
    fn fill(&mut self, value: String) -> Result<(), String> {
        let url = SecretUrl::new(value.trim().to_string());
        if !absolute(url.expose()) {
            // Not shown, not even redacted: what is not a URL may be a password.
            return Err("the secret is not an absolute http:// or https:// URL".into());
        }
        *self = Sourced::Value(url);
        Ok(())
    }
}

/// The URL a probe is built with: a reference is filled before the build (the probe wrapper
/// of [`super::rotating`]); an unfilled one would never get here, and would probe nothing.
fn filled(url: &Sourced<SecretUrl>) -> SecretUrl {
    url.value()
        .cloned()
        .unwrap_or_else(|| SecretUrl::new("http://unfilled.invalid/".into()))
}

/// The most body read when `expect_body` is set.
const MAX_BODY: usize = 1024 * 1024;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Probes one URL with a client (and its connection pool) built once.
pub struct HttpProbe {
    /// Without its userinfo (that goes in `basic`); the query may still hold a token.
    url: Uri,
    /// The configured URL: messages and the target use its redacted form.
    secret: SecretUrl,
    /// `Authorization: Basic ...` from the URL's userinfo, marked sensitive.
    basic: Option<HeaderValue>,
    method: Method,
    expect_status: Option<u16>,
    expect_body: Option<String>,
    budget: Duration,
    client: Result<HttpsClient, String>,
}

impl HttpProbe {
    /// Builds the client; a CA file that cannot be read is reported on every check.
    pub fn new(cfg: &HttpCheck, budget: Duration) -> HttpProbe {
        let secret = filled(&cfg.url);
        let (url, basic) = split_userinfo(secret.expose());
        let https = url.scheme_str() == Some("https");
        // Plain http never uses the TLS config, so a machine without CA bundle can still probe it.
        let tls = match tls::client_config(Verify::Full, cfg.ca_file.as_deref()) {
            Ok(c) => Ok(c),
            Err(e) if https => Err(e.to_string()),
            Err(_) => tls::client_config(Verify::Nothing, None).map_err(|e| e.to_string()),
        };
        let client = tls.map(|tls| {
            let mut http = HttpConnector::new();
            http.set_connect_timeout(Some(budget));
            http.set_nodelay(true);
            http.enforce_http(false);
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(1)
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector)
        });
        HttpProbe {
            url,
            secret,
            basic,
            method: match cfg.method {
                HttpMethod::Get => Method::GET,
                HttpMethod::Head => Method::HEAD,
            },
            expect_status: cfg.expect_status,
            expect_body: cfg.expect_body.clone(),
            budget,
            client,
        }
    }

    async fn run(&self) -> Result<Details, Failure> {
        let client = self
            .client
            .as_ref()
            .map_err(|e| Failure::new(Stage::Tls, e.clone()))?;
        let req = Request::builder()
            .method(self.method.clone())
            .uri(self.url.clone())
            .header(
                "user-agent",
                concat!("suaicloudapp/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map(|mut req| {
                if let Some(b) = &self.basic {
                    req.headers_mut().insert(AUTHORIZATION, b.clone());
                }
                req
            })
            .map_err(|e| Failure::new(Stage::Internal, e.to_string()))?;
        let resp = client
            .request(req)
            .await
            .map_err(|e| self.transport_failure(&e))?;
        let status = resp.status().as_u16();
        let ok = match self.expect_status {
            Some(want) => status == want,
            None => (200..300).contains(&status),
        };
        if !ok {
            let want = self
                .expect_status
                .map_or("a 2xx".to_string(), |s| s.to_string());
            let location = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(|l| format!(" (redirect to {}, not followed)", redact_url(l)))
                .unwrap_or_default();
            return Err(Failure::new(
                Stage::Request,
                format!(
                    "{} answered {status}, expected {want}{location}",
                    self.secret
                ),
            ));
        }
        if let Some(needle) = &self.expect_body {
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    Failure::new(
                        Stage::Request,
                        format!("reading the body of {} failed: {e}", self.secret),
                    )
                })?
                .to_bytes();
            if !String::from_utf8_lossy(&body).contains(needle.as_str()) {
                return Err(Failure::new(
                    Stage::Request,
                    format!(
                        "{} answered {status} but the body lacks {needle:?}",
                        self.secret
                    ),
                ));
            }
        }
        Ok(vec![("status", status.to_string())])
    }

    fn transport_failure(&self, e: &hyper_util::client::legacy::Error) -> Failure {
        let text = self.scrub(&tls::chain_text(e));
        let cause = Cause::new(Some(e), &text);
        let u = &self.secret;
        if cause.untrusted_certificate() {
            Failure::new(
                Stage::Tls,
                format!(
                    "certificate of {u} not trusted: set ca_file for this [[http]] entry ({text})"
                ),
            )
        } else if cause.refused() {
            Failure::new(
                Stage::Connect,
                format!("connection refused by {u}: nothing listens there"),
            )
        } else if cause.unresolved() {
            Failure::new(
                Stage::Dns,
                format!(
                    "cannot resolve the host of {u}: check the name and the VPC's DNS settings"
                ),
            )
        } else if cause.timed_out() {
            Failure::new(
                Stage::Timeout,
                format!("no answer from {u} within {} ms", self.budget.as_millis()),
            )
        } else if cause.mentions(&["tls", "handshake", "corrupt"]) {
            Failure::new(Stage::Tls, format!("TLS with {u} failed: {text}"))
        } else {
            Failure::new(Stage::Request, format!("{u}: {text}"))
        }
    }

    /// A client error's text with the URL's query replaced, should a library ever quote it.
    fn scrub(&self, text: &str) -> String {
        match self.url.query() {
            Some(q) if !q.is_empty() => text.replace(q, "***"),
            _ => text.to_string(),
        }
    }
}

/// The request URI without userinfo (hyper never sends it), and that userinfo as a Basic
/// `Authorization` header (percent-decoded, as curl does).
fn split_userinfo(url: &str) -> (Uri, Option<HeaderValue>) {
    let uri: Uri = url.parse().expect("validated in config");
    let Some((userinfo, host)) = uri
        .authority()
        .and_then(|a| a.as_str().rsplit_once('@'))
        .map(|(u, h)| (u.to_string(), h.to_string()))
    else {
        return (uri, None);
    };
    let decoded = percent_encoding::percent_decode_str(&userinfo).collect::<Vec<u8>>();
    use base64::Engine as _;
    let mut value = HeaderValue::try_from(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(decoded)
    ))
    .ok();
    if let Some(v) = value.as_mut() {
        v.set_sensitive(true);
    }
    let mut parts = uri.into_parts();
    parts.authority = host.parse().ok();
    let uri = Uri::from_parts(parts).expect("the same URI without its userinfo");
    (uri, value)
}

impl Probe for HttpProbe {
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        async move {
            let host = self.url.host().unwrap_or("");
            let https = self.url.scheme_str() == Some("https");
            let port = self.url.port_u16().unwrap_or(if https { 443 } else { 80 });
            tls::unless_unresolved(host, port, self.run().await).await
        }
        .boxed()
    }
}
