//! The neighbouring architectures' backends: PostgreSQL (real server, TLS and password auth),
//! Kinesis, Firehose, SNS, Lambda (moto), and `[[http]]` endpoints (a local HTTP(S) server).

use harness::*;
use std::process::{Command, Stdio};
use std::time::Duration;

fn page(name: &str, config: &str, path: &str) -> Resp {
    App::start(name, &format!("{}{config}", server_section())).get(path)
}

fn pg(extra: &str) -> String {
    format!(
        "[postgres]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"probe\"\npassword = \"{}\"\ndbname = \"suai\"\ntimeout_ms = 1000\n{extra}\n",
        env_var("SUAI_TEST_PG_PORT"),
        env_var("SUAI_TEST_PG_PASSWORD")
    )
}

#[test]
fn postgres_ok_and_verified_tls() {
    assert_eq!(page("pg-ok", &pg(""), "/postgres").body, "OK");
    let ca = env_var("SUAI_TEST_TLS_CA");
    for mode in ["require", "verify-full"] {
        let extra = if mode == "require" {
            "sslmode = \"require\"".to_string()
        } else {
            format!("sslmode = \"verify-full\"\nca_file = \"{ca}\"")
        };
        assert_eq!(
            page("pg-tls", &pg(&extra), "/postgres").body,
            "OK",
            "{mode}"
        );
    }
    let other = env_var("SUAI_TEST_TLS_OTHER_CA");
    let r = page(
        "pg-untrusted",
        &pg(&format!("sslmode = \"verify-ca\"\nca_file = \"{other}\"")),
        "/postgres",
    );
    assert_fails(&r, "tls", &["not trusted", "ca_file"]);
}

#[test]
fn postgres_named_failures() {
    let secret = "Pg-Wrong-Pass-55";
    let config = pg("").replace(&env_var("SUAI_TEST_PG_PASSWORD"), secret);
    let a = App::start("pg-badpw", &format!("{}{config}", server_section()));
    let r = a.get("/postgres");
    assert_fails(
        &r,
        "auth",
        &["password authentication failed for user 'probe'"],
    );
    assert!(
        !r.body.contains(secret) && !a.log_file().contains(secret) && !a.stderr().contains(secret)
    );
    let r = page(
        "pg-nodb",
        &pg("").replace("dbname = \"suai\"", "dbname = \"no_such_db\""),
        "/postgres",
    );
    assert_fails(&r, "auth", &["database 'no_such_db' does not exist"]);
    let sslonly = pg("sslmode = \"disable\"")
        .replace("user = \"probe\"", "user = \"sslonly\"")
        .replace(
            &env_var("SUAI_TEST_PG_PASSWORD"),
            &env_var("SUAI_TEST_PG_SSLONLY_PASSWORD"),
        );
    assert_fails(
        &page("pg-sslonly", &sslonly, "/postgres"),
        "tls",
        &["pg_hba.conf", "only accepts SSL", "sslmode"],
    );
    let r = page(
        "pg-closed",
        &pg("").replace(&env_var("SUAI_TEST_PG_PORT"), &closed_port().to_string()),
        "/postgres",
    );
    assert_fails(&r, "connect", &["connection refused"]);
    let hung = HungServer::start();
    let r = page(
        "pg-hung",
        &pg("").replace(&env_var("SUAI_TEST_PG_PORT"), &hung.port.to_string()),
        "/postgres",
    );
    assert_eq!(r.status, 503);
    assert!(r.body.starts_with("ERROR: timeout:"), "{}", r.body);
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
    let r = page(
        "pg-dns",
        &pg("").replace(
            "host = \"127.0.0.1\"",
            &format!("host = \"{}\"", unresolvable_host()),
        ),
        "/postgres",
    );
    assert_fails(&r, "dns", &["cannot resolve"]);
}

/// A private PostgreSQL (trust auth, no TLS) this test stops and starts.
struct OwnPostgres {
    dir: std::path::PathBuf,
    port: u16,
}

impl OwnPostgres {
    fn bin(tool: &str) -> String {
        format!("{}/{tool}", env_var("SUAI_TEST_PG_BIN"))
    }
    fn as_postgres(args: &[&str]) -> bool {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
    fn init() -> OwnPostgres {
        // Outside /root: the postgres user must reach it.
        let dir = std::path::PathBuf::from(format!(
            "/var/tmp/suai-own-pg-{}-{}",
            std::process::id(),
            closed_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(Command::new("install")
            .args(["-d", "-o", "postgres", "-g", "postgres", "-m", "0700"])
            .arg(&dir)
            .status()
            .unwrap()
            .success());
        assert!(
            Self::as_postgres(&[
                &Self::bin("initdb"),
                "-D",
                dir.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "admin"
            ]),
            "initdb"
        );
        OwnPostgres {
            dir,
            port: closed_port(),
        }
    }
    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let log = format!("{}/server.log", self.dir.display());
        assert!(
            Self::as_postgres(&[
                &Self::bin("pg_ctl"),
                "-D",
                self.dir.to_str().unwrap(),
                "-l",
                &log,
                "-w",
                "-t",
                "30",
                "-o",
                &opts,
                "start"
            ]),
            "pg_ctl start"
        );
    }
    fn stop(&self) {
        Self::as_postgres(&[
            &Self::bin("pg_ctl"),
            "-D",
            self.dir.to_str().unwrap(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn postgres_recovers_after_a_restart_and_names_a_server_without_ssl() {
    let own = OwnPostgres::init();
    own.start();
    let config = format!(
        "{}[probes]\ncache_ms = 0\n[postgres]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"admin\"\ndbname = \"postgres\"\ntimeout_ms = 1000\n",
        server_section(),
        own.port
    );
    let a = App::start("pg-restart", &config);
    assert_eq!(a.get("/postgres").body, "OK");
    own.stop();
    assert_eq!(a.get("/postgres").status, 503);
    own.start();
    assert!(
        eventually(Duration::from_secs(15), || a.get("/postgres").body == "OK"),
        "{}",
        a.get("/postgres").body
    );
    let nossl = config.replace(
        "timeout_ms = 1000",
        "timeout_ms = 1000\nsslmode = \"require\"",
    );
    let r = App::start("pg-nossl", &nossl).get("/postgres");
    assert_fails(&r, "tls", &["does not offer SSL", "sslmode = \"require\""]);
}

fn aws(section: &str) -> String {
    format!(
        "[aws]\nendpoint_url = \"{}\"\n{section}\n",
        env_var("SUAI_TEST_MOTO_URL")
    )
}

#[test]
fn kinesis_firehose_sns_lambda_ok() {
    let config = aws(&format!(
        "[kinesis]\nstream = \"{}\"\nmode = \"write\"\n[firehose]\ndelivery_stream = \"{}\"\n[sns]\ntopic_arn = \"{}\"\n[lambda]\nfunction = \"{}\"",
        env_var("SUAI_TEST_STREAM"),
        env_var("SUAI_TEST_FIREHOSE"),
        env_var("SUAI_TEST_TOPIC_ARN"),
        env_var("SUAI_TEST_LAMBDA")
    ));
    let a = App::start("aws-more", &format!("{}{config}", server_section()));
    for p in ["/kinesis", "/firehose", "/sns", "/lambda"] {
        let r = a.get(p);
        assert_eq!((r.status, r.body.as_str()), (200, "OK"), "{p}");
    }
    // No extra code: the dashboard, JSON, metrics and check all list the new backends.
    let doc: serde_json::Value = serde_json::from_str(&a.get("/?format=json").body).unwrap();
    for b in ["kinesis", "firehose", "sns", "lambda"] {
        assert_eq!(
            doc["checks"][format!("{b}:responseTime")][0]["status"],
            "pass",
            "{b}"
        );
        assert!(
            a.get("/metrics")
                .body
                .contains(&format!("suaicloudapp_probe_up{{backend=\"{b}\"}} 1")),
            "{b}"
        );
    }
    let out = app_command()
        .current_dir(&a.dir)
        .args(["check", "kinesis", "firehose", "sns", "lambda"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(" OK "))
            .count(),
        4
    );
}

#[test]
fn kinesis_firehose_sns_lambda_named_failures() {
    let r = page(
        "kin-missing",
        &aws("[kinesis]\nstream = \"nope-stream\""),
        "/kinesis",
    );
    assert_fails(
        &r,
        "query",
        &["stream nope-stream does not exist in region us-east-1"],
    );
    let r = page(
        "fh-missing",
        &aws("[firehose]\ndelivery_stream = \"nope-fh\""),
        "/firehose",
    );
    assert_fails(&r, "query", &["delivery stream nope-fh does not exist"]);
    let r = page(
        "sns-missing",
        &aws("[sns]\ntopic_arn = \"arn:aws:sns:us-east-1:123456789012:nope\""),
        "/sns",
    );
    assert_fails(
        &r,
        "query",
        &["does not exist", "region us-east-1, account 123456789012"],
    );
    let r = page(
        "sns-elsewhere",
        &aws("[sns]\ntopic_arn = \"arn:aws:sns:eu-west-1:210987654321:suai-test-topic\""),
        "/sns",
    );
    assert_fails(&r, "query", &["region eu-west-1, account 210987654321"]);
    let r = page(
        "lambda-missing",
        &aws("[lambda]\nfunction = \"nope-fn\""),
        "/lambda",
    );
    assert_fails(&r, "query", &["function nope-fn does not exist"]);
    // Access denied: the IAM-enforcing emulator and a user without permissions. (moto answers
    // Lambda calls from this user with SignatureDoesNotMatch, an emulator quirk, so Kinesis only.)
    let denied = [
        ("AWS_ACCESS_KEY_ID", env_var("SUAI_TEST_DENIED_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY", env_var("SUAI_TEST_DENIED_SECRET")),
    ];
    let envs: Vec<(&str, &str)> = denied.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = format!(
        "{}[aws]\nendpoint_url = \"{}\"\n[kinesis]\nstream = \"s\"\n",
        server_section(),
        env_var("SUAI_TEST_MOTO_AUTH_URL")
    );
    let a = App::start_with("more-denied", &config, &envs);
    assert_fails(
        &a.get("/kinesis"),
        "auth",
        &["kinesis:DescribeStreamSummary"],
    );
    // A hung endpoint answers within the budget.
    let hung = HungServer::start();
    let config = format!("{}[aws]\nendpoint_url = \"http://127.0.0.1:{}\"\n[lambda]\nfunction = \"f\"\ntimeout_ms = 1000\n", server_section(), hung.port);
    let r = App::start("lambda-hung", &config).get("/lambda");
    assert_fails(&r, "timeout", &["within 1000 ms"]);
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
}

/// A local HTTP or HTTPS server (Python's stdlib) with fixed answers per path.
fn web_server(tls: bool) -> PythonServer {
    let script = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_HEAD(self): self.do_GET()
    def do_GET(self):
        code, body, extra = {"/ok": (200, b"service healthy", {}), "/fail": (500, b"boom", {}),
                             "/moved": (302, b"", {"Location": "/ok"})}.get(self.path, (404, b"no", {}))
        self.send_response(code)
        for k, v in extra.items(): self.send_header(k, v)
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        if self.command == "GET": self.wfile.write(body)
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
if sys.argv[2] == "tls":
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain(sys.argv[3], sys.argv[4])
    s.socket = c.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"#;
    PythonServer::start(
        script,
        &[
            if tls { "tls" } else { "plain" }.to_string(),
            env_var("SUAI_TEST_TLS_CERT"),
            env_var("SUAI_TEST_TLS_KEY"),
        ],
    )
}

fn http_entry(name: &str, url: &str, extra: &str) -> String {
    format!("[[http]]\nname = \"{name}\"\nurl = \"{url}\"\ntimeout_ms = 1000\n{extra}\n")
}

#[test]
fn http_endpoints_success_and_named_failures() {
    let web = web_server(false);
    let tls = web_server(true);
    let hung = HungServer::start();
    let (p, t) = (web.port, tls.port);
    let ca = env_var("SUAI_TEST_TLS_CA");
    let config = [
        http_entry(
            "ok",
            &format!("http://127.0.0.1:{p}/ok"),
            "expect_body = \"healthy\"",
        ),
        http_entry(
            "head",
            &format!("http://127.0.0.1:{p}/ok"),
            "method = \"HEAD\"",
        ),
        http_entry("fail", &format!("http://127.0.0.1:{p}/fail"), ""),
        http_entry(
            "expect500",
            &format!("http://127.0.0.1:{p}/fail"),
            "expect_status = 500",
        ),
        http_entry(
            "body",
            &format!("http://127.0.0.1:{p}/ok"),
            "expect_body = \"pong\"",
        ),
        http_entry("moved", &format!("http://127.0.0.1:{p}/moved"), ""),
        http_entry(
            "tls",
            &format!("https://localhost:{t}/ok"),
            &format!("ca_file = \"{ca}\""),
        ),
        http_entry("untrusted", &format!("https://localhost:{t}/ok"), ""),
        http_entry("hung", &format!("http://127.0.0.1:{}/", hung.port), ""),
        http_entry(
            "closed",
            &format!("http://127.0.0.1:{}/", closed_port()),
            "",
        ),
    ]
    .concat();
    let a = App::start("http-checks", &format!("{}{config}", server_section()));
    for ok in ["ok", "head", "expect500", "tls"] {
        let r = a.get(&format!("/http/{ok}"));
        assert_eq!((r.status, r.body.as_str()), (200, "OK"), "{ok}");
    }
    assert_fails(
        &a.get("/http/fail"),
        "request",
        &["answered 500, expected a 2xx"],
    );
    assert_fails(&a.get("/http/body"), "request", &["lacks \"pong\""]);
    assert_fails(
        &a.get("/http/moved"),
        "request",
        &["answered 302", "redirect to /ok, not followed"],
    );
    assert_fails(
        &a.get("/http/untrusted"),
        "tls",
        &["not trusted", "ca_file"],
    );
    let r = a.get("/http/hung");
    assert_fails(&r, "timeout", &[]);
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
    assert_fails(&a.get("/http/closed"), "connect", &["connection refused"]);
    let nope = a.get("/http/nope");
    assert_eq!(nope.status, 404);
}

#[test]
fn examples_validate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut configs = vec![root.join("config.toml")];
    for entry in std::fs::read_dir(root.join("examples")).expect("examples/") {
        let dir = entry.unwrap().path();
        if dir.is_dir() {
            configs.push(dir.join("config.toml"));
            let policy = std::fs::read_to_string(dir.join("iam-policy.json"))
                .expect("iam-policy.json beside each example");
            let doc: serde_json::Value = serde_json::from_str(&policy).expect("valid JSON policy");
            assert_eq!(doc["Version"], "2012-10-17");
            assert!(!doc["Statement"].as_array().unwrap().is_empty());
        }
    }
    assert!(configs.len() >= 4, "one example per architecture");
    for c in configs {
        let out = app_command()
            .args(["--config", c.to_str().unwrap(), "config", "validate"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            c.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn tcp_entry(name: &str, host: &str, port: impl std::fmt::Display, extra: &str) -> String {
    format!("[[tcp]]\nname = \"{name}\"\nhost = \"{host}\"\nport = {port}\ntimeout_ms = 2000\n{extra}\n")
}

/// The `details` object of a passing page's health+json answer.
fn details(app: &App, path: &str) -> serde_json::Value {
    let r = app.request("GET", path, &[("Accept", "application/health+json")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let doc: serde_json::Value = serde_json::from_str(&r.body).expect("health+json");
    let checks = doc["checks"].as_object().expect("checks").clone();
    let (_, list) = checks.into_iter().next().expect("one check");
    list[0]["details"].clone()
}

#[test]
fn tcp_endpoints_plain_and_tls_with_certificate_days_and_named_failures() {
    // Something that accepts: the kernel completes the handshake from the backlog.
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    let tls_port = env_var("SUAI_TEST_REDIS_TLS_PORT");
    // MariaDB greets first, in plain text: no TLS server answers that way.
    let plain_mysql = env_var("SUAI_TEST_MYSQL_PORT");
    let ca = env_var("SUAI_TEST_TLS_CA");
    let other_ca = env_var("SUAI_TEST_TLS_OTHER_CA");
    let tls = |extra: &str| format!("tls = true\nca_file = \"{ca}\"\n{extra}");
    let config = [
        tcp_entry("open", "127.0.0.1", open_port, ""),
        tcp_entry("closed", "127.0.0.1", closed_port(), ""),
        tcp_entry("nodns", &unresolvable_host(), 25, ""),
        tcp_entry("tls-ok", "localhost", &tls_port, &tls("cert_min_days = 30")),
        tcp_entry(
            "tls-expiring",
            "localhost",
            &tls_port,
            &tls("cert_min_days = 100000"),
        ),
        tcp_entry(
            "tls-untrusted",
            "localhost",
            &tls_port,
            &format!("tls = true\nca_file = \"{other_ca}\"\n"),
        ),
        tcp_entry("tls-wrong-port", "localhost", &plain_mysql, &tls("")),
    ]
    .concat();
    let app = App::start("tcp", &format!("{}{config}", server_section()));

    let r = app.get("/tcp/open");
    assert_eq!((r.status, r.body.as_str()), (200, "OK"), "{}", r.body);
    assert_eq!(
        details(&app, "/tcp/open")["address"],
        format!("127.0.0.1:{open_port}")
    );
    assert_fails(
        &app.get("/tcp/closed"),
        "connect",
        &["connection refused", "127.0.0.1:"],
    );
    assert_fails(&app.get("/tcp/nodns"), "dns", &["cannot resolve"]);

    // The test CA's server certificate is valid for 3650 days from when test-env made it.
    let r = app.get("/tcp/tls-ok");
    assert_eq!((r.status, r.body.as_str()), (200, "OK"), "{}", r.body);
    let d = details(&app, "/tcp/tls-ok");
    assert_eq!(d["tls"], "verified", "{d}");
    let days: i64 = d["cert_days_left"].as_str().unwrap().parse().unwrap();
    assert!((30..=3650).contains(&days), "{d}");
    let r = app.get("/tcp/tls-expiring");
    assert_fails(
        &r,
        "tls",
        &[
            &format!("expires in {days} days"),
            "within cert_min_days = 100000",
            "renew it",
        ],
    );
    assert_fails(
        &app.get("/tcp/tls-untrusted"),
        "tls",
        &["is not trusted", "check ca_file"],
    );
    assert_fails(
        &app.get("/tcp/tls-wrong-port"),
        "tls",
        &["TLS handshake with localhost:"],
    );
    drop(open);
}

#[test]
fn tcp_entries_are_checked_at_load() {
    let dir = scratch_dir("tcp-config");
    let cases = [
        (
            tcp_entry("a", "h", 1, "cert_min_days = 7"),
            "[[tcp]] a: cert_min_days needs tls = true",
        ),
        (
            format!(
                "{}{}",
                tcp_entry("a", "h", 1, ""),
                tcp_entry("a", "h", 2, "")
            ),
            "[[tcp]] name \"a\" is used twice: pages are /tcp/<name>",
        ),
        (
            "[[tcp]]\nname = \"a\"\nhost = \"h\"\n".to_string(),
            "missing field `port`",
        ),
    ];
    for (config, want) in cases {
        std::fs::write(dir.join("config.toml"), &config).unwrap();
        let out = app_command()
            .current_dir(&dir)
            .args(["config", "validate"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{config}: {stderr}");
        assert!(stderr.contains(want), "{config}: want {want:?} in {stderr}");
    }
}
