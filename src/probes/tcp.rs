//! `/tcp/<name>`: a TCP connection to a configured host and port, for the services no other
//! probe speaks to (an internal service, an SMTP relay, an NFS or EFS mount target's 2049);
//! with `tls = true`, a verified TLS handshake (SNI from the host name) and the days its
//! certificate has left, so a certificate about to expire fails here before clients see it.
//!
//! One connection per check, closed at once (TLS with a close_notify): nothing is sent to the
//! service beyond the handshake.

use super::Probe;
use super::unit::{Build, Unit};
use crate::config::{ensure, Host, Millis, PageName, Port};
use crate::outcome::{Details, Failure, Stage};
use crate::tls::{self, Cause, Verify};
use futures_util::future::{BoxFuture, FutureExt};
use rustls_pki_types::ServerName;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use x509_cert::der::Decode;

/// One `[[tcp]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// The page is `/tcp/<name>`: letters, digits, `-` and `_`.
    pub name: PageName,
    pub host: Host,
    /// No default: a TCP check is only as good as the port it names.
    pub port: Port,
    /// A TLS handshake after the connect, the chain and host name verified.
    #[serde(default)]
    pub tls: bool,
    /// With `tls`: fail (stage `tls`) when the certificate expires within this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_min_days: Option<u32>,
    /// With `tls`: a PEM bundle of the CAs to trust (a private CA); else the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

impl Unit for TcpCheck {
    type Probe = TcpProbe;

    fn target(&self) -> String {
        format!("{}:{}", self.host, self.port.get())
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn entry_name(&self) -> Option<String> {
        Some(self.name.to_string())
    }
    fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        ensure(self.tls || self.cert_min_days.is_none(), || {
            format!("[[tcp]] {name}: cert_min_days needs tls = true")
        })?;
        ensure(self.tls || self.ca_file.is_none(), || {
            format!("[[tcp]] {name}: ca_file is set but tls = false: set tls = true or remove ca_file")
        })
    }
    fn build(&self, _: &Build<'_>) -> TcpProbe {
        TcpProbe::new(self)
    }
}

/// Connects to one host and port, with TLS when asked.
pub struct TcpProbe {
    host: String,
    port: u16,
    /// `None` for plain TCP; else the TLS client, or why it could not be built (a bad CA file).
    tls: Option<Result<TlsConnector, String>>,
    cert_min_days: Option<u32>,
}

impl TcpProbe {
    /// Builds the TLS configuration once (it reads the CA file); nothing is connected yet.
    pub fn new(cfg: &TcpCheck) -> TcpProbe {
        let tls = cfg.tls.then(|| {
            tls::client_config(Verify::Full, cfg.ca_file.as_deref())
                .map(|c| TlsConnector::from(Arc::new(c)))
                .map_err(|e| e.to_string())
        });
        TcpProbe {
            host: cfg.host.to_string(),
            port: cfg.port.get(),
            tls,
            cert_min_days: cfg.cert_min_days,
        }
    }

    async fn run(&self) -> Result<Details, Failure> {
        let (stream, addr) = self.connect().await?;
        let mut details = vec![("address", addr.to_string())];
        let Some(tls) = &self.tls else {
            return Ok(details);
        };
        let connector = tls.as_ref().map_err(|e| Failure::new(Stage::Tls, e.clone()))?;
        let name = ServerName::try_from(self.host.clone()).map_err(|_| {
            Failure::new(Stage::Tls, format!("{} is not a valid TLS server name", self.host))
        })?;
        let mut tls_stream = connector
            .connect(name, stream)
            .await
            .map_err(|e| self.handshake_failure(&e))?;
        let leaf = tls_stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|c| c.as_ref().to_vec());
        // A polite close; the answer is already known, so a failure to close changes nothing.
        let _ = tls_stream.shutdown().await;
        details.push(("tls", "verified".into()));
        let leaf = leaf.ok_or_else(|| {
            Failure::new(Stage::Tls, format!("{} sent no certificate", self.at()))
        })?;
        let expires = not_after(&leaf).map_err(|e| {
            Failure::new(Stage::Tls, format!("cannot read the certificate of {}: {e}", self.at()))
        })?;
        let days = days_left(expires, SystemTime::now());
        details.push(("cert_days_left", days.to_string()));
        details.push(("cert_expires", humantime::format_rfc3339_seconds(expires).to_string()));
        match self.cert_min_days {
            Some(min) if days < i64::from(min) => Err(Failure::new(
                Stage::Tls,
                format!(
                    "the certificate of {} expires in {days} days ({}), within cert_min_days = {min}: renew it",
                    self.at(),
                    humantime::format_rfc3339_seconds(expires)
                ),
            )),
            _ => Ok(details),
        }
    }

    fn at(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The first address of the host that accepts; a name that does not resolve is stage
    /// `dns`, refusals and other errors are `connect`, naming the last address tried.
    async fn connect(&self) -> Result<(TcpStream, SocketAddr), Failure> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map(Iterator::collect)
            .unwrap_or_default();
        if addrs.is_empty() {
            return Err(Failure::new(
                Stage::Dns,
                format!(
                    "cannot resolve {}: check the host name and the VPC's DNS settings",
                    self.host
                ),
            ));
        }
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok((stream, addr)),
                Err(e) => last = Some((addr, e)),
            }
        }
        let (addr, e) = last.expect("at least one address was tried");
        let cause = Cause::new(Some(&e), &e.to_string());
        let why = if cause.refused() {
            "connection refused: nothing listens on that port, or a firewall rejects it".to_string()
        } else {
            format!("{e}: check the security groups, network ACLs and route tables")
        };
        Err(Failure::new(
            Stage::Connect,
            format!("cannot connect to {} ({addr}): {why}", self.at()),
        ))
    }

    fn handshake_failure(&self, e: &std::io::Error) -> Failure {
        let text = tls::chain_text(e);
        let cause = Cause::new(Some(e), &text);
        let message = if cause.untrusted_certificate() {
            format!(
                "the certificate of {} is not trusted ({text}): check ca_file, the chain it sends and the host name",
                self.at()
            )
        } else {
            format!("TLS handshake with {} failed: {text} (is it a TLS port?)", self.at())
        };
        Failure::new(Stage::Tls, message)
    }
}

impl Probe for TcpProbe {
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        self.run().boxed()
    }
}

/// The certificate's `notAfter`.
fn not_after(der: &[u8]) -> Result<SystemTime, String> {
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
    Ok(UNIX_EPOCH + cert.tbs_certificate.validity.not_after.to_unix_duration())
}

/// Whole days from `now` to `expires`, rounded down; negative once it has passed.
fn days_left(expires: SystemTime, now: SystemTime) -> i64 {
    const DAY: u64 = 86_400;
    match expires.duration_since(now) {
        Ok(left) => (left.as_secs() / DAY) as i64,
        Err(past) => -(past.duration().as_secs().div_ceil(DAY) as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn days_left_rounds_down_and_goes_negative_after_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(days_left(now + day * 30, now), 30);
        assert_eq!(days_left(now + day * 30 - Duration::from_secs(1), now), 29);
        assert_eq!(days_left(now, now), 0);
        assert_eq!(days_left(now - Duration::from_secs(1), now), -1);
    }
}
