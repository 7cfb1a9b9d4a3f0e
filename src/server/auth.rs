//! ALB sign-in: verifies the `x-amzn-oidc-data` token an Application Load Balancer adds after
//! it authenticated a user (Cognito or another OIDC provider), for the pages `[auth]` guards.
//!
//! The token is a JWT signed with ES256; its header names the `signer` (the ALB's ARN) and a
//! `kid` whose PEM public key the ALB publishes at `<key_url><kid>`. Accepted when the signer is
//! the configured ALB, the signature verifies with that key, and `exp` has not passed. The
//! ALB pads its base64url parts with `=`, which strict JWT libraries refuse: parts are decoded
//! with padding optional. Keys are fetched under a timeout and cached (bounded).
//!
//! SECURITY: the token is never logged or echoed; a refusal names only the reason. The key
//! id is checked to be a plain identifier before it becomes part of a URL, and the signer
//! is compared before any key is fetched, so foreign tokens cost no outbound request.

use crate::config::AuthConfig;
use crate::fetch::Fetcher;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::SubjectPublicKeyInfoDer;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header the ALB forwards with the user's claims, signed.
pub const HEADER: &str = "x-amzn-oidc-data";

/// Keys kept at most. Only keys the endpoint really published get in, and the ALB rotates
/// few, so this is never reached in practice; if it is, the cache starts over.
const MAX_KEYS: usize = 32;

/// Key ids the endpoint did not know, remembered so a flood of made-up ids costs one
/// outbound request each at most once; cleared when full.
const MAX_UNKNOWN: usize = 256;

/// A published key is a short PEM; anything larger is not one.
const MAX_KEY_BYTES: usize = 8 * 1024;

/// A DER SubjectPublicKeyInfo of a P-256 key is this fixed header (id-ecPublicKey,
/// prime256v1, a 66-byte BIT STRING) followed by the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// base64url with or without `=` padding, as the ALB writes it.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a request was refused; each is one line for the 401 body and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("sign-in required: no x-amzn-oidc-data header (reach this page through the ALB)")]
    Missing,
    #[error("sign-in token malformed: {0}")]
    Malformed(&'static str),
    #[error("sign-in token uses algorithm {0:?}, not ES256")]
    Algorithm(String),
    #[error("sign-in token was signed by another load balancer")]
    ForeignSigner,
    #[error("sign-in token names an unknown key id")]
    UnknownKey,
    #[error("sign-in key unavailable: {0}")]
    KeyFetch(String),
    #[error("sign-in token signature does not verify")]
    BadSignature,
    #[error("sign-in token expired")]
    Expired,
    /// Signed in, but `[auth]`'s authorization keys refuse this user: 403, not 401.
    #[error("signed in, but not allowed: {0}")]
    Forbidden(String),
}

impl Denied {
    /// 403 for a user who signed in but may not see the page; 401 for anything else.
    pub fn status(&self) -> hyper::StatusCode {
        match self {
            Denied::Forbidden(_) => hyper::StatusCode::FORBIDDEN,
            _ => hyper::StatusCode::UNAUTHORIZED,
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: String,
    signer: String,
    #[serde(default)]
    exp: Option<u64>,
    /// The OIDC client (or Cognito app client) the ALB signed this user in for.
    #[serde(default)]
    client: Option<String>,
}

/// The user's claims as the ALB forwards them (the IdP's userinfo, with `exp`).
type Claims = serde_json::Map<String, serde_json::Value>;

/// `[auth]`'s authorization keys, checked after the signature (see [`AuthConfig`]).
struct Allow {
    clients: Vec<String>,
    email_domains: Vec<String>,
    groups: Vec<String>,
    claims: Vec<(String, Vec<String>)>,
}

impl Allow {
    fn new(cfg: &AuthConfig) -> Allow {
        Allow {
            clients: cfg.allowed_clients.clone(),
            email_domains: cfg
                .email_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            groups: cfg.groups.clone(),
            claims: cfg.claims.clone().into_iter().collect(),
        }
    }

    /// The first key the token fails, as the log line's reason. Names the token's own values
    /// (who was refused is what an operator needs) but never the token.
    fn check(&self, client: Option<&str>, claims: &Claims) -> Result<(), String> {
        if !self.clients.is_empty() && !client.is_some_and(|c| self.clients.iter().any(|a| a == c))
        {
            return Err(format!(
                "client {:?} is not in [auth] allowed_clients",
                client.unwrap_or("")
            ));
        }
        if !self.email_domains.is_empty() {
            let email = claims.get("email").and_then(|v| v.as_str()).unwrap_or("");
            let domain = email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
            if !domain.is_some_and(|d| self.email_domains.contains(&d)) {
                return Err(format!("email {email:?} is not in [auth] email_domains"));
            }
            if claims
                .get("email_verified")
                .is_some_and(|v| v == false || v == "false")
            {
                return Err(format!("email {email:?} is not verified"));
            }
        }
        if !self.groups.is_empty()
            && !self
                .groups
                .iter()
                .any(|g| holds(claims.get("cognito:groups"), g))
        {
            return Err("none of the user's cognito:groups is in [auth] groups".into());
        }
        for (claim, values) in &self.claims {
            if !values.iter().any(|v| holds(claims.get(claim), v)) {
                return Err(format!(
                    "claim {claim:?} has none of the values [auth] claims allows"
                ));
            }
        }
        Ok(())
    }
}

/// Whether a claim equals `want` (a string claim) or holds it (a list claim).
fn holds(claim: Option<&serde_json::Value>, want: &str) -> bool {
    match claim {
        Some(serde_json::Value::String(s)) => s == want,
        Some(serde_json::Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(want)),
        _ => false,
    }
}

/// The verifier for one `[auth]` section, with its key cache.
pub struct AlbAuth {
    alb_arn: String,
    key_base: String,
    key_timeout: Duration,
    /// Whether `/metrics` is guarded too.
    pub protect_metrics: bool,
    fetcher: Fetcher,
    /// Key id -> the raw 65-byte public point.
    keys: Mutex<HashMap<String, Arc<[u8]>>>,
    /// Key ids the endpoint answered 403/404 for.
    unknown: Mutex<HashSet<String>>,
    allow: Allow,
}

impl AlbAuth {
    /// A verifier for `cfg` (validated already); nothing is fetched until a token arrives.
    pub fn new(cfg: &AuthConfig) -> AlbAuth {
        AlbAuth {
            alb_arn: cfg.alb_arn.clone(),
            key_base: cfg.key_base(),
            key_timeout: cfg.key_timeout_ms.duration(),
            protect_metrics: cfg.protect_metrics,
            fetcher: Fetcher::new(),
            keys: Mutex::new(HashMap::new()),
            unknown: Mutex::new(HashSet::new()),
            allow: Allow::new(cfg),
        }
    }

    /// Verifies the header's value (`None` when absent) at the current time.
    pub async fn verify(&self, token: Option<&[u8]>) -> Result<(), Denied> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.verify_at(token, now).await
    }

    /// As [`AlbAuth::verify`], at `now` (seconds since the epoch).
    pub async fn verify_at(&self, token: Option<&[u8]>, now: u64) -> Result<(), Denied> {
        let token = token.ok_or(Denied::Missing)?;
        let token = std::str::from_utf8(token).map_err(|_| Denied::Malformed("not ASCII"))?;
        let mut parts = token.trim().split('.');
        let (Some(head64), Some(body64), Some(sig64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Denied::Malformed("not three dot-separated parts"));
        };
        let header: Header = decode_json(head64).ok_or(Denied::Malformed("header"))?;
        if header.alg != "ES256" {
            return Err(Denied::Algorithm(header.alg.chars().take(16).collect()));
        }
        if header.signer != self.alb_arn {
            return Err(Denied::ForeignSigner);
        }
        if !plain_key_id(&header.kid) {
            return Err(Denied::Malformed("key id"));
        }
        let key = self.key(&header.kid).await?;
        let signature = B64URL
            .decode(sig64)
            .map_err(|_| Denied::Malformed("signature encoding"))?;
        let signed_len = head64.len() + 1 + body64.len();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key[..])
            .verify(&token.trim().as_bytes()[..signed_len], &signature)
            .map_err(|_| Denied::BadSignature)?;
        let claims: Claims = decode_json(body64).ok_or(Denied::Malformed("payload"))?;
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_u64)
            .or(header.exp)
            .ok_or(Denied::Malformed("no exp"))?;
        if exp <= now {
            return Err(Denied::Expired);
        }
        self.allow
            .check(header.client.as_deref(), &claims)
            .map_err(Denied::Forbidden)
    }

    /// The public point for `kid`: cached, or fetched from `<key_url><kid>` under the timeout.
    async fn key(&self, kid: &str) -> Result<Arc<[u8]>, Denied> {
        if let Some(k) = self.keys.lock().expect("key cache").get(kid) {
            return Ok(k.clone());
        }
        if self.unknown.lock().expect("unknown keys").contains(kid) {
            return Err(Denied::UnknownKey);
        }
        let url = format!("{}{kid}", self.key_base);
        let pem = match self
            .fetcher
            .get(&url, self.key_timeout, MAX_KEY_BYTES)
            .await
        {
            Ok(pem) => pem,
            Err(crate::fetch::FetchError::Status {
                status: 403 | 404, ..
            }) => {
                let mut unknown = self.unknown.lock().expect("unknown keys");
                if unknown.len() >= MAX_UNKNOWN {
                    unknown.clear();
                }
                unknown.insert(kid.to_string());
                return Err(Denied::UnknownKey);
            }
            Err(e) => return Err(Denied::KeyFetch(e.to_string())),
        };
        let point: Arc<[u8]> = p256_point(&pem)
            .ok_or_else(|| Denied::KeyFetch(format!("{url} is not a P-256 public key in PEM")))?
            .into();
        let mut keys = self.keys.lock().expect("key cache");
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(kid.to_string(), point.clone());
        Ok(point)
    }
}

/// `None` when the request may see the page; otherwise the 401 (not signed in) or 403 (signed
/// in, not allowed) to answer, with the reason logged (never the token).
pub async fn refuse_unsigned<B>(
    auth: &AlbAuth,
    req: &hyper::Request<B>,
) -> Option<hyper::Response<super::render::Body>> {
    let token = req.headers().get(HEADER).map(|v| v.as_bytes());
    let denied = auth.verify(token).await.err()?;
    tracing::warn!(path = req.uri().path(), reason = %denied, "sign-in refused");
    let word = match denied {
        Denied::Forbidden(_) => {
            "forbidden: signed in, but not allowed here (the server log says why)"
        }
        _ => {
            return Some(super::render::text(
                denied.status(),
                format!("unauthorized: {denied}\n"),
            ))
        }
    };
    Some(super::render::text(denied.status(), format!("{word}\n")))
}

/// For the plain answers the load balancer reads: the cause only for a signed-in, allowed
/// user; anyone else gets the status and the stage. A refusal here is no event worth a log line
/// (every health check without a token would make one).
pub async fn cause_for<B>(auth: &AlbAuth, req: &hyper::Request<B>) -> super::render::Cause {
    let token = req.headers().get(HEADER).map(|v| v.as_bytes());
    match auth.verify(token).await {
        Ok(()) => super::render::Cause::Shown,
        Err(_) => super::render::Cause::Withheld,
    }
}

/// A key id safe to append to a URL: the ALB's are UUIDs.
fn plain_key_id(kid: &str) -> bool {
    (1..=128).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Option<T> {
    serde_json::from_slice(&B64URL.decode(part).ok()?).ok()
}

/// The uncompressed point of a PEM `PUBLIC KEY` holding a P-256 key.
fn p256_point(pem: &[u8]) -> Option<Vec<u8>> {
    let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem).ok()?;
    let der: &[u8] = spki.as_ref();
    let point = der.strip_prefix(&P256_SPKI_PREFIX[..])?;
    (point.len() == 65 && point[0] == 0x04).then(|| point.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_that_would_change_the_url_are_refused() {
        assert!(plain_key_id("4b3b6a1c-7d0e-4c6f-9a1e-2f3c4d5e6f70"));
        for bad in ["", "../x", "a/b", "a?b", "a%2f", &"k".repeat(129)] {
            assert!(!plain_key_id(bad), "{bad}");
        }
    }

    #[test]
    fn padding_is_optional() {
        assert_eq!(B64URL.decode("eyJ9").unwrap(), b"{\"}");
        assert_eq!(B64URL.decode("eyI=").unwrap(), b"{\"");
        assert_eq!(B64URL.decode("eyI").unwrap(), b"{\"");
    }
}
