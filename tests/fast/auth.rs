//! `[auth]` (ALB sign-in) in-process: which pages it guards, each refusal's line, and tokens
//! signed here with ring (the library's own ES256 verifier checks them) against a key server
//! on loopback that counts what it is asked.

use crate::support::{Fixture, Server, StandIn};
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use suaicloudapp::outcome::Stage;
use tokio::net::TcpListener;

const ALB_ARN: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
const OTHER_ARN: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/other/0123456789abcdef";
const KID: &str = "4b3b6a1c-7d0e-4c6f-9a1e-2f3c4d5e6f70";
const HEADER: &str = "x-amzn-oidc-data";
const MISSING: &str =
    "unauthorized: sign-in required: no x-amzn-oidc-data header (reach this page through the ALB)\n";

/// The fixed DER header of a P-256 SubjectPublicKeyInfo; the 65-byte point follows it.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Serves `/<kid>` PEM keys on loopback, 404 for any other path, and remembers every path asked.
struct KeyServer {
    url: String,
    hits: Arc<Mutex<Vec<String>>>,
}

impl KeyServer {
    async fn start(keys: HashMap<String, String>) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (keys, seen) = (Arc::new(keys), hits.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (keys, seen) = (keys.clone(), seen.clone());
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let path = req.uri().path().to_string();
                    seen.lock().unwrap().push(path.clone());
                    let resp = match keys.get(path.trim_start_matches('/')) {
                        Some(pem) => Response::new(Full::new(Bytes::from(pem.clone()))),
                        None => {
                            let mut r = Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = StatusCode::NOT_FOUND;
                            r
                        }
                    };
                    async move { Ok::<_, Infallible>(resp) }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        KeyServer { url, hits }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }

    fn total(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

/// An ALB's signing key, making tokens shaped as the ALB's `x-amzn-oidc-data`.
struct Alb {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Alb {
    fn new() -> Alb {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Alb { key, rng }
    }

    /// The public key as the ALB publishes it: a PEM `PUBLIC KEY`.
    fn pem(&self) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.public_key().as_ref());
        let b64 = STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// A token for `signer` and `kid` expiring `exp_in` seconds from now (negative: past).
    fn token(&self, signer: &str, kid: &str, exp_in: i64, padded: bool) -> String {
        let claims = json!({"sub": "operator-1", "email": "ops@example.com"});
        self.token_for(signer, kid, exp_in, padded, "client-id", claims)
    }

    /// A valid token for another `client` and other user claims (`exp` added).
    fn user(&self, client: &str, claims: serde_json::Value) -> String {
        self.token_for(ALB_ARN, KID, 600, false, client, claims)
    }

    fn token_for(
        &self,
        signer: &str,
        kid: &str,
        exp_in: i64,
        padded: bool,
        client: &str,
        mut claims: serde_json::Value,
    ) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let header = json!({"typ": "JWT", "kid": kid, "alg": "ES256", "signer": signer,
                            "iss": "https://cognito-idp.us-east-1.amazonaws.com/pool",
                            "client": client, "exp": now + exp_in});
        claims["exp"] = json!(now + exp_in);
        let engine = if padded { &URL_SAFE } else { &URL_SAFE_NO_PAD };
        let signed = format!(
            "{}.{}",
            engine.encode(header.to_string()),
            engine.encode(claims.to_string())
        );
        let signature = self.key.sign(&self.rng, signed.as_bytes()).unwrap();
        format!("{signed}.{}", engine.encode(signature.as_ref()))
    }

    fn valid(&self) -> String {
        self.token(ALB_ARN, KID, 600, false)
    }
}

/// A server with `[auth]` trusting `ALB_ARN`, keys at `key_url`, a `[logs]` token that
/// `[auth]` replaces, and a passing `/s3`.
async fn guarded(key_url: &str, extra: &str) -> Server {
    let toml = format!(
        "[logs]\ntoken = \"bearer-not-used-with-auth-0123456789\"\n[auth]\nalb_arn = \"{ALB_ARN}\"\nkey_url = \"{key_url}\"\n{extra}"
    );
    Fixture::new(&toml)
        .probe("s3", StandIn::pass())
        .start()
        .await
}

/// A key URL where nothing listens: a refusal that needs no key must not try it either.
fn nowhere() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/")
}

async fn with_token(s: &Server, path: &str, token: &str) -> crate::support::Resp {
    s.request("GET", path, &[(HEADER, token)]).await
}

/// A token-shaped string from a header and a payload, with a made-up signature.
fn unsigned(header: serde_json::Value) -> String {
    let claims = json!({"exp": 4_000_000_000u64});
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode([7u8; 64])
    )
}

#[tokio::test]
async fn without_sign_in_the_detailed_pages_are_401_and_the_lb_pages_stay_open() {
    let s = guarded(&nowhere(), "").await;
    for path in [
        "/",
        "/?format=json",
        "/s3?format=json",
        "/logs",
        "/ready?format=json",
    ] {
        let r = s.get(path).await;
        assert_eq!((r.status, r.body.as_str()), (401, MISSING), "{path}");
    }
    let r = s.get_as("/", "text/html").await;
    assert_eq!(r.status, 401);
    let json = s.get_as("/s3", "application/health+json").await;
    assert_eq!(json.status, 401, "JSON by Accept is guarded as by ?format");
    assert_eq!(s.get("/health").await.body, "healthy");
    assert_eq!(s.get("/s3").await.body, "OK");
    assert_eq!(s.get("/ready").await.body, "healthy");
    assert_eq!(
        s.get("/metrics").await.status,
        200,
        "unless protect_metrics"
    );
    assert_eq!(
        s.get("/redis").await.status,
        404,
        "not configured is no secret"
    );
}

#[tokio::test]
async fn protect_metrics_guards_metrics_too() {
    let s = guarded(&nowhere(), "protect_metrics = true\n").await;
    let r = s.get("/metrics").await;
    assert_eq!((r.status, r.body.as_str()), (401, MISSING));
    assert_eq!(s.get("/health").await.status, 200);
}

#[tokio::test]
async fn the_logs_bearer_token_does_not_open_logs_once_auth_is_set() {
    let s = guarded(&nowhere(), "").await;
    let r = s
        .request(
            "GET",
            "/logs",
            &[(
                "authorization",
                "Bearer bearer-not-used-with-auth-0123456789",
            )],
        )
        .await;
    assert_eq!((r.status, r.body.as_str()), (401, MISSING));
}

#[tokio::test]
async fn malformed_tokens_are_refused_before_any_key_is_fetched() {
    let keys = KeyServer::start(HashMap::new()).await;
    let s = guarded(&keys.url, "").await;
    let header = |alg: &str, kid: &str, signer: &str| {
        unsigned(json!({"alg": alg, "kid": kid, "signer": signer}))
    };
    for (token, reason) in [
        (
            "not-a-jwt".to_string(),
            "sign-in token malformed: not three dot-separated parts",
        ),
        (
            "a.b.c.d".to_string(),
            "sign-in token malformed: not three dot-separated parts",
        ),
        ("!!.??.##".to_string(), "sign-in token malformed: header"),
        (
            header("HS256", KID, ALB_ARN),
            "sign-in token uses algorithm \"HS256\", not ES256",
        ),
        (
            header("ES256", KID, OTHER_ARN),
            "sign-in token was signed by another load balancer",
        ),
        (
            header("ES256", "../../etc/passwd", ALB_ARN),
            "sign-in token malformed: key id",
        ),
    ] {
        let r = with_token(&s, "/logs", &token).await;
        assert_eq!(r.status, 401, "{token}");
        assert_eq!(r.body, format!("unauthorized: {reason}\n"), "{token}");
    }
    assert_eq!(keys.total(), 0, "no key was asked for");
}

#[tokio::test]
async fn a_token_signed_by_the_alb_opens_the_guarded_pages_padded_or_not() {
    let alb = Alb::new();
    let keys = KeyServer::start(HashMap::from([(KID.to_string(), alb.pem())])).await;
    let s = guarded(&keys.url, "protect_metrics = true\n").await;
    let padded = alb.token(ALB_ARN, KID, 600, true);
    assert!(
        padded.contains('='),
        "the padded form carries padding: {padded}"
    );
    for token in [alb.valid(), padded] {
        for path in ["/", "/?format=json", "/s3?format=json", "/metrics"] {
            let r = with_token(&s, path, &token).await;
            assert_eq!(r.status, 200, "{path}: {}", r.body);
        }
    }
    assert_eq!(
        keys.hits(&format!("/{KID}")),
        1,
        "the key is fetched once, then cached"
    );
}

#[tokio::test]
async fn expired_tampered_and_foreign_key_tokens_are_refused_with_their_reason() {
    let alb = Alb::new();
    let stranger = Alb::new();
    let keys = KeyServer::start(HashMap::from([(KID.to_string(), alb.pem())])).await;
    let s = guarded(&keys.url, "").await;
    let valid = alb.valid();
    let (head, _, signature) = {
        let parts: Vec<&str> = valid.split('.').collect();
        (
            parts[0].to_string(),
            parts[1].to_string(),
            parts[2].to_string(),
        )
    };
    let forged_claims =
        URL_SAFE_NO_PAD.encode(json!({"sub": "admin", "exp": 4_000_000_000u64}).to_string());
    for (token, reason) in [
        (alb.token(ALB_ARN, KID, -60, false), "sign-in token expired"),
        (
            format!("{head}.{forged_claims}.{signature}"),
            "sign-in token signature does not verify",
        ),
        (
            stranger.token(ALB_ARN, KID, 600, false),
            "sign-in token signature does not verify",
        ),
    ] {
        let r = with_token(&s, "/", &token).await;
        assert_eq!(r.status, 401, "{reason}");
        assert_eq!(r.body, format!("unauthorized: {reason}\n"));
    }
}

#[tokio::test]
async fn an_unknown_key_id_is_asked_for_once_then_remembered() {
    let alb = Alb::new();
    let keys = KeyServer::start(HashMap::new()).await;
    let s = guarded(&keys.url, "").await;
    let kid = "00000000-0000-0000-0000-000000000000";
    let token = alb.token(ALB_ARN, kid, 600, false);
    for _ in 0..3 {
        let r = with_token(&s, "/logs", &token).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (401, "unauthorized: sign-in token names an unknown key id\n")
        );
    }
    assert_eq!(keys.hits(&format!("/{kid}")), 1);
}

#[tokio::test]
async fn a_hung_key_server_refuses_within_the_key_timeout() {
    let hung = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", hung.local_addr().unwrap());
    // Accepts and holds every connection, silent.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hung.accept().await {
            held.push(stream);
        }
    });
    let s = guarded(&url, "key_timeout_ms = 300\n").await;
    let r = with_token(&s, "/logs", &Alb::new().valid()).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        format!("unauthorized: sign-in key unavailable: no answer from {url}{KID} within 300 ms\n")
    );
    assert!(r.elapsed < Duration::from_secs(2), "{:?}", r.elapsed);
    assert_eq!(s.get("/health").await.status, 200);
}

/// What a failing probe's cause gives away: a host, a user, a port.
const CAUSE: &str = "access denied for user 'admin'@'10.0.1.5' on db.example:3306";

#[tokio::test]
async fn without_sign_in_a_failure_answers_its_stage_but_not_its_cause() {
    let alb = Alb::new();
    let keys = KeyServer::start(HashMap::from([(KID.to_string(), alb.pem())])).await;
    let toml = format!(
        "{}[health]\nready = [\"s3\"]\n[auth]\nalb_arn = \"{ALB_ARN}\"\nkey_url = \"{}\"\n",
        crate::support::section("s3"),
        keys.url
    );
    let s = Fixture::new(&toml)
        .probe("s3", StandIn::fail(Stage::Auth, CAUSE))
        .start()
        .await;
    let foreign = alb.token(OTHER_ARN, KID, 600, false);
    let expired = alb.token(ALB_ARN, KID, -60, false);
    for token in [None, Some(foreign.as_str()), Some(expired.as_str())] {
        let headers: Vec<(&str, &str)> = token.map(|t| (HEADER, t)).into_iter().collect();
        let page = s.request("GET", "/s3", &headers).await;
        assert_eq!((page.status, page.body.as_str()), (503, "ERROR: auth\n"));
        assert_eq!(page.header("x-probe-stage"), Some("auth"));
        let ready = s.request("GET", "/ready", &headers).await;
        assert_eq!(
            (ready.status, ready.body.as_str()),
            (503, "ERROR: s3: auth\n")
        );
    }
    let page = with_token(&s, "/s3", &alb.valid()).await;
    assert_eq!(page.body, format!("ERROR: auth: {CAUSE}\n"));
    let ready = with_token(&s, "/ready", &alb.valid()).await;
    assert_eq!(ready.body, format!("ERROR: s3: auth: {CAUSE}\n"));
}

#[tokio::test]
async fn without_auth_the_cause_stays_on_the_plain_answer() {
    let s = Fixture::new("")
        .probe("s3", StandIn::fail(Stage::Auth, CAUSE))
        .start()
        .await;
    assert_eq!(s.get("/s3").await.body, format!("ERROR: auth: {CAUSE}\n"));
}

const FORBIDDEN: &str = "forbidden: signed in, but not allowed here (the server log says why)\n";

#[tokio::test]
async fn a_token_for_another_client_is_refused_with_403() {
    let alb = Alb::new();
    let keys = KeyServer::start(HashMap::from([(KID.to_string(), alb.pem())])).await;
    let s = guarded(&keys.url, "allowed_clients = [\"client-id\"]\n").await;
    let ours = alb.user("client-id", json!({"email": "ops@example.com"}));
    assert_eq!(with_token(&s, "/", &ours).await.status, 200);
    let other = alb.user("another-app", json!({"email": "ops@example.com"}));
    for path in ["/logs", "/", "/s3?format=json"] {
        let r = with_token(&s, path, &other).await;
        assert_eq!((r.status, r.body.as_str()), (403, FORBIDDEN), "{path}");
    }
}

#[tokio::test]
async fn email_domains_groups_and_claims_each_must_hold() {
    let alb = Alb::new();
    let keys = KeyServer::start(HashMap::from([(KID.to_string(), alb.pem())])).await;
    let s = guarded(
        &keys.url,
        "email_domains = [\"example.com\"]\ngroups = [\"sre\", \"admins\"]\nclaims = { \"custom:team\" = [\"web\"] }\n",
    )
    .await;
    let ok =
        json!({"email": "Ops@Example.com", "cognito:groups": ["dev", "sre"], "custom:team": "web"});
    assert_eq!(
        with_token(&s, "/", &alb.user("c", ok.clone())).await.status,
        200
    );
    let mut refused = Vec::new();
    for (what, key, value) in [
        ("another domain", "email", json!("ops@example.com.evil")),
        ("no domain", "email", json!("ops")),
        ("unverified", "email_verified", json!(false)),
        ("no group of ours", "cognito:groups", json!(["dev"])),
        ("no groups at all", "cognito:groups", json!(null)),
        ("another team", "custom:team", json!("data")),
        (
            "team as a list without ours",
            "custom:team",
            json!(["data", "ml"]),
        ),
    ] {
        let mut claims = ok.clone();
        claims[key] = value;
        let r = with_token(&s, "/logs", &alb.user("c", claims)).await;
        assert_eq!((r.status, r.body.as_str()), (403, FORBIDDEN), "{what}");
        refused.push(what);
    }
    let mut as_list = ok.clone();
    as_list["custom:team"] = json!(["data", "web"]);
    assert_eq!(
        with_token(&s, "/", &alb.user("c", as_list)).await.status,
        200
    );
    assert_eq!(refused.len(), 7);
}
