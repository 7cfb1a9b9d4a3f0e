//! `suaicloudapp healthcheck`: one GET to the running server's `/health`, for Docker's
//! `HEALTHCHECK` and ECS's `healthCheck.command` in a scratch image that has no curl.
//!
//! Needs no config file and no AWS: a plain HTTP/1.0 request over a TCP stream, the whole
//! exchange under one deadline, so a hung server fails the check instead of hanging it.

use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where a container's own server answers by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080/health";

/// The most of the answer read: the status line is all that matters.
const MAX_READ: usize = 1024;

/// Why a check failed, printed on one line.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("bad --url {0:?}: expected http://HOST[:PORT]/PATH (https is not supported here)")]
    BadUrl(String),
    #[error("no answer from {url} within {ms} ms")]
    Timeout { url: String, ms: u128 },
    #[error("{url}: {cause}")]
    Io { url: String, cause: std::io::Error },
    #[error("{url} answered {status}, not 200")]
    Status { url: String, status: String },
}

/// Runs the check and maps it to the exit code: 0 on a 200, 1 otherwise (reason on stderr).
pub async fn run(url: &str, timeout: Duration) -> ExitCode {
    match check(url, timeout).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// GETs `url` and succeeds only on status 200 within `timeout`.
pub async fn check(url: &str, timeout: Duration) -> Result<(), HealthError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| HealthError::BadUrl(url.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(HealthError::BadUrl(url.to_string()));
    }
    let host = uri
        .host()
        .ok_or_else(|| HealthError::BadUrl(url.to_string()))?;
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let io = |cause| HealthError::Io {
        url: url.to_string(),
        cause,
    };
    let exchange = async {
        // An IPv6 literal is bracketed in a URL but not in a socket address.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let mut stream = TcpStream::connect((bare, port)).await.map_err(io)?;
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: suaicloudapp-healthcheck\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut buf = Vec::with_capacity(MAX_READ);
        while !buf.contains(&b'\n') && buf.len() < MAX_READ {
            let mut chunk = [0u8; 256];
            let n = stream.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, HealthError>(buf)
    };
    let buf = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HealthError::Timeout {
            url: url.to_string(),
            ms: timeout.as_millis(),
        })??;
    let line = String::from_utf8_lossy(&buf);
    let line = line.lines().next().unwrap_or("").trim();
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if line.starts_with("HTTP/") && status == "200" {
        Ok(())
    } else {
        Err(HealthError::Status {
            url: url.to_string(),
            status: if line.is_empty() {
                "nothing".into()
            } else {
                format!("{line:?}")
            },
        })
    }
}
