//! ALB sign-in (`[auth]`): tokens shaped like the ALB's `x-amzn-oidc-data` (ES256, `signer` and
//! `kid` in the header, base64url with or without `=` padding), signed in the test with
//! python3-cryptography, and the public key served by a local key server. No network.

use harness::{env_var, scratch_dir, server_section, App, PythonServer};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

const ALB_ARN: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
const OTHER_ARN: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/other/0123456789abcdef";

/// Generates the ALB's key pair (public PEM under `<out>/keys/<kid>`) and a set of tokens
/// (`<out>/tokens.json`). Argument order: out dir, the ALB ARN, a foreign ARN.
const MINT: &str = r#"
import base64, json, sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
out, arn, other_arn = sys.argv[1:4]
kid = "4b3b6a1c-7d0e-4c6f-9a1e-2f3c4d5e6f70"
key, stranger = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
open(out + "/keys/" + kid, "wb").write(pem)
def b64(data, pad):
    s = base64.urlsafe_b64encode(data).decode()
    return s if pad else s.rstrip("=")
def part(doc, pad):
    raw = json.dumps(doc).encode()
    while pad and len(raw) % 3 == 0:  # make sure the padded form really carries '='
        doc["x"] = doc.get("x", "") + "x"; raw = json.dumps(doc).encode()
    return b64(raw, pad)
def token(signer=arn, exp=600, pad=False, k=key, kid=kid):
    now = int(time.time())
    h = part({"typ": "JWT", "kid": kid, "alg": "ES256", "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool",
              "client": "client-id", "signer": signer, "exp": now + exp}, pad)
    p = part({"sub": "operator-1", "email": "ops@example.com", "username": "ops", "exp": now + exp,
              "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool"}, pad)
    r, s = utils.decode_dss_signature(k.sign((h + "." + p).encode(), ec.ECDSA(hashes.SHA256())))
    return h + "." + p + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"), pad)
valid = token()
h, p, s = valid.split(".")
forged = part({"sub": "admin", "exp": int(time.time()) + 600}, False)
tokens = {
    "valid": valid,
    "padded": token(pad=True),
    "expired": token(exp=-60),
    "tampered": h + "." + forged + "." + s,
    "foreign": token(signer=other_arn),
    "unknown_kid": token(kid="00000000-0000-0000-0000-000000000000"),
    "wrong_key": token(k=stranger),
}
json.dump(tokens, open(out + "/tokens.json", "w"))
"#;

/// Serves `<dir>/<kid>` files and appends each requested path to `<dir>/../hits.log`.
const KEY_SERVER: &str = r#"
import http.server, os, sys
port, root = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        with open(os.path.join(root, "..", "hits.log"), "a") as f:
            f.write(self.path + "\n")
        path = os.path.join(root, os.path.basename(self.path))
        if not os.path.isfile(path):
            self.send_response(404); self.end_headers(); return
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

struct Keys {
    server: PythonServer,
    dir: PathBuf,
    tokens: HashMap<String, String>,
}

impl Keys {
    fn start() -> Keys {
        let dir = scratch_dir("alb-keys");
        std::fs::create_dir(dir.join("keys")).unwrap();
        let ok = Command::new("python3")
            .args(["-c", MINT])
            .arg(&dir)
            .args([ALB_ARN, OTHER_ARN])
            .status()
            .expect("python3")
            .success();
        assert!(ok, "minting tokens failed (needs python3-cryptography)");
        let tokens =
            serde_json::from_str(&std::fs::read_to_string(dir.join("tokens.json")).unwrap())
                .unwrap();
        let server = PythonServer::start(KEY_SERVER, &[dir.join("keys").display().to_string()]);
        Keys {
            server,
            dir,
            tokens,
        }
    }

    fn token(&self, name: &str) -> &str {
        &self.tokens[name]
    }

    fn hits(&self) -> String {
        std::fs::read_to_string(self.dir.join("hits.log")).unwrap_or_default()
    }

    fn config(&self, extra: &str) -> String {
        format!(
            "{}[aws]\nendpoint_url = \"{}\"\nregion = \"us-east-1\"\n[s3]\nbucket = \"{}\"\n[logs]\ntoken = \"bearer-not-used-with-auth-0123456789\"\n[auth]\nalb_arn = \"{ALB_ARN}\"\nkey_url = \"http://127.0.0.1:{}/\"\n{extra}",
            server_section(),
            env_var("SUAI_TEST_MOTO_URL"),
            env_var("SUAI_TEST_BUCKET"),
            self.server.port
        )
    }
}

fn with_token(app: &App, path: &str, token: &str) -> harness::Resp {
    app.request("GET", path, &[("x-amzn-oidc-data", token)])
}

#[test]
fn detailed_pages_need_a_valid_alb_token() {
    let keys = Keys::start();
    assert!(
        keys.token("padded").contains('='),
        "the padded token carries no padding"
    );
    let app = App::start("alb-auth", &keys.config(""));

    // Open for the load balancer: /health, plain probe answers, /metrics (not protected here).
    assert_eq!(app.get("/health").status, 200);
    let s3 = app.get("/s3");
    assert_eq!((s3.status, s3.body.as_str()), (200, "OK"));
    assert_eq!(app.get("/metrics").status, 200);

    // Guarded without a token: logs, the dashboard, JSON.
    for path in ["/logs", "/", "/?format=json", "/s3?format=json"] {
        let r = app.get(path);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        assert_eq!(
            r.body,
            "unauthorized: sign-in required: no x-amzn-oidc-data header (reach this page through the ALB)\n"
        );
    }

    for name in ["valid", "padded"] {
        for path in ["/logs", "/", "/s3?format=json"] {
            let r = with_token(&app, path, keys.token(name));
            assert_eq!(r.status, 200, "{name} {path}: {}", r.body);
        }
    }

    for (name, reason) in [
        ("expired", "sign-in token expired"),
        ("tampered", "sign-in token signature does not verify"),
        ("wrong_key", "sign-in token signature does not verify"),
        (
            "foreign",
            "sign-in token was signed by another load balancer",
        ),
        ("unknown_kid", "sign-in token names an unknown key id"),
        (
            "garbage",
            "sign-in token malformed: not three dot-separated parts",
        ),
    ] {
        let token = keys.tokens.get(name).map_or("not-a-jwt", String::as_str);
        let r = with_token(&app, "/logs", token);
        assert_eq!(r.status, 401, "{name}");
        assert_eq!(r.body, format!("unauthorized: {reason}\n"), "{name}");
    }

    // An unknown key id is asked for once, then remembered.
    let again = with_token(&app, "/logs", keys.token("unknown_kid"));
    assert_eq!(
        again.body,
        "unauthorized: sign-in token names an unknown key id\n"
    );

    // The bearer token of [logs] does not open /logs once [auth] is set.
    let bearer = app.request(
        "GET",
        "/logs",
        &[(
            "authorization",
            "Bearer bearer-not-used-with-auth-0123456789",
        )],
    );
    assert_eq!(bearer.status, 401);

    // The key is fetched once and cached; the foreign token fetched nothing.
    let hits = keys.hits();
    assert_eq!(
        hits.matches("/4b3b6a1c-7d0e-4c6f-9a1e-2f3c4d5e6f70")
            .count(),
        1,
        "{hits}"
    );
    assert_eq!(hits.matches("/00000000-").count(), 1, "{hits}");

    // Refusals are logged with their reason, never with the token.
    app.wait_stderr(std::time::Duration::from_secs(5), |e| {
        e.contains("sign-in refused") && e.contains("sign-in token expired")
    });
    let logged = app.stderr() + &app.log_file();
    for token in keys.tokens.values() {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logged.contains(signature), "a token reached the log");
    }
}

#[test]
fn metrics_can_be_protected_too() {
    let keys = Keys::start();
    let app = App::start("alb-metrics", &keys.config("protect_metrics = true\n"));
    assert_eq!(app.get("/metrics").status, 401);
    assert_eq!(
        with_token(&app, "/metrics", keys.token("valid")).status,
        200
    );
    assert_eq!(app.get("/health").status, 200);
}

#[test]
fn a_bad_alb_arn_is_refused_at_load() {
    let dir = scratch_dir("alb-bad-arn");
    let config = dir.join("config.toml");
    std::fs::write(&config, "[auth]\nalb_arn = \"arn:aws:s3:::bucket\"\n").unwrap();
    let out = Command::new(&*harness::BIN)
        .args([
            "--config",
            &config.display().to_string(),
            "config",
            "validate",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[auth] alb_arn"), "{err}");
}

#[test]
fn a_hung_key_server_refuses_within_the_key_timeout() {
    let keys = Keys::start();
    let hung = harness::HungServer::start();
    let config = keys.config("key_timeout_ms = 300\n").replace(
        &format!("127.0.0.1:{}/", keys.server.port),
        &format!("127.0.0.1:{}/", hung.port),
    );
    let app = App::start("alb-hung-keys", &config);
    let r = with_token(&app, "/logs", keys.token("valid"));
    assert_eq!(r.status, 401);
    assert!(
        r.body
            .starts_with("unauthorized: sign-in key unavailable: no answer from")
            && r.body.contains("within 300 ms"),
        "{}",
        r.body
    );
    assert!(
        r.elapsed < std::time::Duration::from_secs(2),
        "{:?}",
        r.elapsed
    );
    assert_eq!(app.get("/health").status, 200);
}
