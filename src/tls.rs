//! TLS for every client, in one place: the rustls configurations of the clients that open
//! their own connections (PostgreSQL, HTTP, the process's own look-ups in `fetch`), and one
//! reading of a failed connection (untrusted certificate, refused, timed out, unresolvable
//! name) that every probe and the AWS error reading share.
//!
//! The reading prefers typed errors (`io::ErrorKind`, `rustls::Error`) found anywhere in an
//! error's chain; the text is the fallback, because several clients (Redis, MySQL's TLS layer,
//! hyper's resolver) hand their causes over only as text.
//!
//! SECURITY: the unverified and chain-only verifiers exist because libpq's `sslmode=require`
//! and `verify-ca` mean exactly that; they are only used when the config asks for those modes.

use crate::outcome::{Details, Failure, Stage};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::error::Error;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// How much of the server's certificate to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Encrypt only (libpq `prefer` / `require`).
    Nothing,
    /// The chain up to a trusted CA, not the host name (libpq `verify-ca`).
    Chain,
    /// Chain and host name (libpq `verify-full`, every https URL).
    Full,
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA file {path}: {cause}")]
    CaFile { path: String, cause: String },
    #[error("no CA certificates: {0}")]
    NoRoots(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration for `verify`, trusting `ca_file` or else the system's CA bundle.
pub fn client_config(verify: Verify, ca_file: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::NoRoots(e.to_string()))?;
    let config = match verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth(),
        Verify::Full => builder
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth(),
        Verify::Chain => {
            let inner =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots(ca_file)?), provider)
                    .build()
                    .map_err(|e| TlsError::NoRoots(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let err = |cause: String| TlsError::CaFile {
                path: path.display().to_string(),
                cause,
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))? {
                let cert = cert.map_err(|e| err(e.to_string()))?;
                store.add(cert).map_err(|e| err(e.to_string()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = store.add(cert);
            }
        }
    }
    if store.is_empty() {
        return Err(TlsError::NoRoots(match ca_file {
            Some(p) => format!("{} holds no certificate", p.display()),
            None => "this system has no CA bundle (install ca-certificates, or set ca_file)".into(),
        }));
    }
    Ok(store)
}

/// Accepts any certificate but still checks the handshake signatures.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Verifies the chain like WebPKI but forgives a host-name mismatch.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The Display texts of an error and its sources on one line, repeats dropped: the cause an
/// operator reads, and the text the checks of [`Cause`] fall back to.
pub fn chain_text(err: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let t = e.to_string();
        if !t.is_empty() && !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// What a failed connection's error says, asked one question at a time so that each probe
/// keeps its own order of questions (and so its own messages).
pub struct Cause<'a> {
    err: Option<&'a (dyn Error + 'static)>,
    lower: String,
}

impl<'a> Cause<'a> {
    /// Reads `err` (its whole chain) and `text`, the words the client gave for it; `err` is
    /// `None` when a client hands over text only.
    pub fn new(err: Option<&'a (dyn Error + 'static)>, text: &str) -> Cause<'a> {
        Cause {
            err,
            lower: text.to_ascii_lowercase(),
        }
    }

    /// True when some error in the chain passes `test`. `io::Error` hides the error it wraps
    /// from `source()` (tokio-rustls wraps `rustls::Error` that way), so that one is looked at too.
    pub fn any(&self, test: impl Fn(&(dyn Error + 'static)) -> bool) -> bool {
        fn walk(
            err: &(dyn Error + 'static),
            test: &dyn Fn(&(dyn Error + 'static)) -> bool,
        ) -> bool {
            let mut next = Some(err);
            while let Some(e) = next {
                if test(e) {
                    return true;
                }
                let wrapped = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref);
                if let Some(inner) = wrapped {
                    if walk(inner, test) {
                        return true;
                    }
                }
                next = e.source();
            }
            false
        }
        self.err.is_some_and(|e| walk(e, &test))
    }

    /// True when the text holds any of `words` (lower case).
    pub fn mentions(&self, words: &[&str]) -> bool {
        words.iter().any(|w| self.lower.contains(w))
    }

    fn io_kind(&self, kind: io::ErrorKind) -> bool {
        self.any(|e| {
            e.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == kind)
        })
    }

    /// The server's certificate was not trusted (unknown issuer, expired, wrong name...).
    pub fn untrusted_certificate(&self) -> bool {
        self.any(|e| {
            matches!(
                e.downcast_ref::<rustls::Error>(),
                Some(rustls::Error::InvalidCertificate(_))
            )
        }) || self.mentions(&["certificate", "unknownissuer"])
    }

    /// Nothing listens at the address (or a firewall answers for it).
    pub fn refused(&self) -> bool {
        self.io_kind(io::ErrorKind::ConnectionRefused) || self.mentions(&["refused"])
    }

    /// The connection or the answer did not come in time.
    pub fn timed_out(&self) -> bool {
        self.io_kind(io::ErrorKind::TimedOut) || self.mentions(&["timed out", "timeout"])
    }

    /// The host name did not resolve. hyper's resolver error is private, so this is text only.
    pub fn unresolved(&self) -> bool {
        self.mentions(&["dns error", "failed to lookup"])
    }
}

/// Turns a connect-stage failure into a DNS one when the host does not resolve. Database and
/// Redis clients report an unknown name in their own words, often as a plain connect error,
/// so the probe asks the resolver itself before blaming the network.
pub async fn unless_unresolved(
    host: &str,
    port: u16,
    result: Result<Details, Failure>,
) -> Result<Details, Failure> {
    match result {
        Err(f) if f.stage == Stage::Connect => Err(dns_failure(host, port).await.unwrap_or(f)),
        other => other,
    }
}

/// A DNS-stage failure when `host` does not resolve, else `None`.
async fn dns_failure(host: &str, port: u16) -> Option<Failure> {
    let resolved = tokio::net::lookup_host((host, port)).await;
    match resolved.map(|mut addrs| addrs.next().is_some()) {
        Ok(true) => None,
        _ => Some(Failure::new(
            Stage::Dns,
            format!("cannot resolve {host}: check the endpoint name and the VPC's DNS settings"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_text_joins_sources_without_repeats() {
        #[derive(Debug)]
        struct Outer(io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl Error for Outer {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(io::Error::other("Connection refused"));
        assert_eq!(chain_text(&e), "dispatch failure: Connection refused");
    }

    #[test]
    fn typed_causes_are_found_inside_io_errors() {
        let bad_cert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        // The typed check finds it even when the words a client chose do not say so.
        assert!(Cause::new(Some(&bad_cert), "handshake failed").untrusted_certificate());
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(Cause::new(Some(&refused), "").refused());
        assert!(!Cause::new(Some(&refused), "").timed_out());
    }

    #[test]
    fn text_is_the_fallback() {
        assert!(Cause::new(None, "invalid peer certificate: UnknownIssuer").untrusted_certificate());
        assert!(Cause::new(None, "dns error: failed to lookup address information").unresolved());
        assert!(Cause::new(None, "io error: operation timed out").timed_out());
        assert!(!Cause::new(None, "connection reset").refused());
    }
}
