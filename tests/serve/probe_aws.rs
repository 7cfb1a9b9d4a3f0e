//! The AWS probes against real HTTP: /s3 (HeadBucket) and /dynamodb (GetItem on a sentinel
//! key) on moto (A: auth off, B: IAM enforced), plus fault servers for what moto cannot do
//! (wrong-region 301, hung endpoint, closed port), secrets hygiene and `check s3 dynamodb`.

use harness::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::Duration;

const SENTINEL: &str = "suaicloudapp-probe";

/// A config with `[aws]` pointing at `endpoint` (when given) plus `extra` sections.
fn config(endpoint: Option<&str>, extra: &str) -> String {
    let aws = match endpoint {
        Some(url) => format!("[aws]\nendpoint_url = \"{url}\"\n"),
        None => String::new(),
    };
    format!("{}{aws}{extra}", server_section())
}

fn s3_section(bucket: &str) -> String {
    format!("[s3]\nbucket = \"{bucket}\"\n")
}

fn dynamo_section(table: &str) -> String {
    format!("[dynamodb]\ntable = \"{table}\"\n")
}

fn moto() -> String {
    env_var("SUAI_TEST_MOTO_URL")
}

fn moto_auth() -> String {
    env_var("SUAI_TEST_MOTO_AUTH_URL")
}

/// Keys of a moto B user, as the environment variables the app reads.
fn keys(user: &str) -> (String, String) {
    (
        env_var(&format!("SUAI_TEST_{user}_KEY_ID")),
        env_var(&format!("SUAI_TEST_{user}_SECRET")),
    )
}

fn start_as(name: &str, config: &str, (id, secret): &(String, String)) -> App {
    App::start_with(
        name,
        config,
        &[
            ("AWS_ACCESS_KEY_ID", id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ],
    )
}

#[track_caller]
fn assert_ok(r: &Resp) {
    assert_eq!((r.status, r.body.as_str()), (200, "OK"), "{r:?}");
}

/// Asserts a 503 at `stage` whose one-line body contains every word in `words`.
#[track_caller]
/// A server that answers every request with a bare 301 naming another bucket region, as S3
/// does for HeadBucket sent to the wrong regional endpoint (moto cannot emulate it).
fn wrong_region_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            // Read the request head, then answer and close.
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line == "\r\n" || line == "\n" {
                    break;
                }
                line.clear();
            }
            let _ = s.write_all(
                b"HTTP/1.1 301 Moved Permanently\r\nx-amz-bucket-region: eu-west-1\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    port
}

// ---------------------------------------------------------------------------------------
// S3

#[test]
fn s3_ok_via_config_endpoint() {
    let a = App::start(
        "s3-ok",
        &config(Some(&moto()), &s3_section(&env_var("SUAI_TEST_BUCKET"))),
    );
    let r = a.get("/s3");
    assert_ok(&r);
    assert!(r.header("x-probe-duration-ms").is_some(), "{r:?}");
}

#[test]
fn s3_ok_via_aws_endpoint_url_env() {
    let a = App::start_with(
        "s3-env-endpoint",
        &config(None, &s3_section(&env_var("SUAI_TEST_BUCKET"))),
        &[("AWS_ENDPOINT_URL", &moto())],
    );
    assert_ok(&a.get("/s3"));
}

#[test]
fn s3_missing_bucket_is_named() {
    let a = App::start(
        "s3-missing",
        &config(Some(&moto()), &s3_section("suai-no-such-bucket")),
    );
    let r = a.get("/s3");
    assert_fails(
        &r,
        "request",
        &["no such bucket", "suai-no-such-bucket", "[s3] bucket"],
    );
}

#[test]
fn s3_access_denied_names_permission_and_arn() {
    let bucket = env_var("SUAI_TEST_BUCKET");
    let a = start_as(
        "s3-denied",
        &config(Some(&moto_auth()), &s3_section(&bucket)),
        &keys("DENIED"),
    );
    let r = a.get("/s3");
    assert_fails(
        &r,
        "auth",
        &[
            "access denied",
            "s3:ListBucket",
            &format!("arn:aws:s3:::{bucket}"),
        ],
    );
}

#[test]
fn s3_unknown_keys_are_reported_as_rejected_credentials() {
    // HeadBucket's 403 has no body: the probe must still tell bad keys from a missing permission.
    let a = App::start(
        "s3-bad-keys",
        &config(
            Some(&moto_auth()),
            &s3_section(&env_var("SUAI_TEST_BUCKET")),
        ),
    );
    let r = a.get("/s3");
    assert_fails(
        &r,
        "auth",
        &["credentials were rejected", "InvalidAccessKeyId"],
    );
}

#[test]
fn s3_reader_keys_pass_on_iam_enforcing_moto() {
    let a = start_as(
        "s3-reader",
        &config(
            Some(&moto_auth()),
            &s3_section(&env_var("SUAI_TEST_BUCKET")),
        ),
        &keys("READER"),
    );
    assert_ok(&a.get("/s3"));
}

#[test]
fn s3_bucket_in_another_region_names_it() {
    let port = wrong_region_server();
    let a = App::start(
        "s3-region",
        &config(
            Some(&format!("http://127.0.0.1:{port}")),
            &s3_section("suai-elsewhere"),
        ),
    );
    let r = a.get("/s3");
    assert_fails(
        &r,
        "request",
        &[
            "suai-elsewhere",
            "eu-west-1",
            "us-east-1",
            "[aws] region = \"eu-west-1\"",
        ],
    );
}

#[test]
fn s3_hung_endpoint_times_out_within_budget() {
    let hung = HungServer::start();
    let a = App::start(
        "s3-hung",
        &config(
            Some(&format!("http://127.0.0.1:{}", hung.port)),
            "[s3]\nbucket = \"b\"\ntimeout_ms = 1000\n",
        ),
    );
    let r = a.get("/s3");
    assert_fails(&r, "timeout", &["1000 ms"]);
    assert!(r.elapsed >= Duration::from_millis(900), "{:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
    assert!(hung.accepted() >= 1, "the probe reached the hung server");
}

#[test]
fn s3_closed_port_is_a_connect_failure() {
    let port = closed_port();
    let a = App::start(
        "s3-closed",
        &config(
            Some(&format!("http://127.0.0.1:{port}")),
            "[s3]\nbucket = \"b\"\ntimeout_ms = 1000\n",
        ),
    );
    let r = a.get("/s3");
    assert_fails(
        &r,
        "connect",
        &[
            &format!("connection to http://127.0.0.1:{port} refused"),
            "[aws] endpoint_url",
        ],
    );
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
}

#[test]
fn s3_unresolvable_endpoint_is_a_dns_failure() {
    let host = unresolvable_host();
    let a = App::start(
        "s3-dns",
        &config(
            Some(&format!("http://{host}:9000")),
            "[s3]\nbucket = \"b\"\ntimeout_ms = 1000\n",
        ),
    );
    let r = a.get("/s3");
    assert_fails(
        &r,
        "dns",
        &["cannot resolve the host of", &host, "[aws] endpoint_url"],
    );
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
}

// ---------------------------------------------------------------------------------------
// DynamoDB

#[test]
fn dynamodb_ok_on_the_good_table() {
    let a = App::start(
        "ddb-ok",
        &config(Some(&moto()), &dynamo_section(&env_var("SUAI_TEST_TABLE"))),
    );
    let r = a.get("/dynamodb");
    assert_ok(&r);
    assert!(r.header("x-probe-duration-ms").is_some(), "{r:?}");
}

#[test]
fn dynamodb_missing_table_is_named() {
    let a = App::start(
        "ddb-missing",
        &config(Some(&moto()), &dynamo_section("suai-no-such-table")),
    );
    let r = a.get("/dynamodb");
    assert_fails(
        &r,
        "query",
        &[
            "table suai-no-such-table does not exist",
            "us-east-1",
            "[dynamodb] table",
        ],
    );
}

#[test]
fn dynamodb_wrong_key_schema_is_explained() {
    let table = env_var("SUAI_TEST_WRONG_TABLE");
    let a = App::start(
        "ddb-schema",
        &config(Some(&moto()), &dynamo_section(&table)),
    );
    let r = a.get("/dynamodb");
    assert_fails(
        &r,
        "query",
        &["key schema mismatch", &table, "pk", "sk", "`id`"],
    );
}

#[test]
fn dynamodb_access_denied_names_permission() {
    let table = env_var("SUAI_TEST_TABLE");
    let a = start_as(
        "ddb-denied",
        &config(Some(&moto_auth()), &dynamo_section(&table)),
        &keys("DENIED"),
    );
    let r = a.get("/dynamodb");
    assert_fails(
        &r,
        "auth",
        &[
            "access denied",
            "dynamodb:GetItem",
            &format!("arn:aws:dynamodb:us-east-1:*:table/{table}"),
        ],
    );
}

#[test]
fn dynamodb_unknown_keys_are_reported_as_rejected_credentials() {
    // moto answers 403 with an XML body here; the code inside it must still be read.
    let a = App::start(
        "ddb-bad-keys",
        &config(
            Some(&moto_auth()),
            &dynamo_section(&env_var("SUAI_TEST_TABLE")),
        ),
    );
    let r = a.get("/dynamodb");
    assert_fails(
        &r,
        "auth",
        &["credentials were rejected", "InvalidClientTokenId"],
    );
}

#[test]
fn dynamodb_reader_keys_pass_on_iam_enforcing_moto() {
    let a = start_as(
        "ddb-reader",
        &config(
            Some(&moto_auth()),
            &dynamo_section(&env_var("SUAI_TEST_TABLE")),
        ),
        &keys("READER"),
    );
    assert_ok(&a.get("/dynamodb"));
}

#[test]
fn dynamodb_write_mode_needs_put_item() {
    // The reader may read but not write: write mode must say which permission is missing.
    let table = env_var("SUAI_TEST_TABLE");
    let a = start_as(
        "ddb-write-denied",
        &config(
            Some(&moto_auth()),
            &format!("{}mode = \"write\"\n", dynamo_section(&table)),
        ),
        &keys("READER"),
    );
    let r = a.get("/dynamodb");
    assert_fails(&r, "auth", &["access denied", "dynamodb:PutItem"]);
}

/// Whether a sentinel item (the read key, or a write-mode item `suaicloudapp-probe-<instance>`)
/// exists in `table` on moto A, asked with boto3 from moto's venv.
fn sentinel_present(table: &str) -> bool {
    let server = env_var("SUAI_TEST_MOTO_SERVER");
    let python = std::path::Path::new(&server)
        .parent()
        .unwrap()
        .join("python");
    let script = "import sys, boto3\n\
c = boto3.client('dynamodb', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
    aws_access_key_id='testing', aws_secret_access_key='testing')\n\
items = c.scan(TableName=sys.argv[2], ConsistentRead=True)['Items']\n\
print('present' if any(i.get('id', {}).get('S', '').startswith(sys.argv[3]) for i in items) else 'absent')\n";
    let out = Command::new(python)
        .args(["-c", script, &moto(), table, SENTINEL])
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("run moto's python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "boto3 get_item failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match stdout.trim() {
        "present" => true,
        "absent" => false,
        other => panic!("unexpected answer from boto3: {other:?}"),
    }
}

#[test]
fn dynamodb_write_mode_passes_and_leaves_no_item() {
    let table = env_var("SUAI_TEST_TABLE");
    let a = App::start(
        "ddb-write",
        &config(
            Some(&moto()),
            &format!("{}mode = \"write\"\n", dynamo_section(&table)),
        ),
    );
    assert_ok(&a.get("/dynamodb"));
    assert!(
        !sentinel_present(&table),
        "the sentinel item {SENTINEL} was left in {table}"
    );
}

#[test]
fn dynamodb_hung_endpoint_times_out_within_budget() {
    let hung = HungServer::start();
    let a = App::start(
        "ddb-hung",
        &config(
            Some(&format!("http://127.0.0.1:{}", hung.port)),
            "[dynamodb]\ntable = \"t\"\ntimeout_ms = 1000\n",
        ),
    );
    let r = a.get("/dynamodb");
    assert_fails(&r, "timeout", &["1000 ms"]);
    assert!(r.elapsed >= Duration::from_millis(900), "{:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
}

// ---------------------------------------------------------------------------------------
// Secrets

#[test]
fn secret_access_key_never_appears_in_answers_or_logs() {
    let denied = keys("DENIED");
    let secret = denied.1.clone();
    let a = start_as(
        "aws-secret",
        &config(
            Some(&moto_auth()),
            &format!(
                "{}{}",
                s3_section(&env_var("SUAI_TEST_BUCKET")),
                dynamo_section(&env_var("SUAI_TEST_TABLE"))
            ),
        ),
        &denied,
    );
    let bodies: Vec<String> = ["/s3", "/dynamodb", "/logs"]
        .iter()
        .map(|p| a.get(p).body)
        .collect();
    assert!(bodies[0].starts_with("ERROR: auth:"), "{}", bodies[0]);
    assert!(bodies[1].starts_with("ERROR: auth:"), "{}", bodies[1]);
    assert!(
        eventually(Duration::from_secs(5), || a
            .log_file()
            .contains("path=/dynamodb")),
        "the probe requests reach output.log"
    );
    for (what, text) in [
        ("/s3", &bodies[0]),
        ("/dynamodb", &bodies[1]),
        ("/logs", &bodies[2]),
        ("output.log", &a.log_file()),
        ("stderr", &a.stderr()),
    ] {
        assert!(!text.contains(&secret), "secret key leaked into {what}");
    }
}

// ---------------------------------------------------------------------------------------
// The check CLI

/// Runs `suaicloudapp --config config.toml check <backends>` in a scratch dir, env as App's.
fn check(name: &str, config: &str, backends: &[&str]) -> Output {
    let dir = scratch_dir(name);
    std::fs::write(dir.join("config.toml"), config).unwrap();
    app_command()
        .current_dir(&dir)
        .args(["--config", "config.toml", "check"])
        .args(backends)
        .output()
        .expect("run suaicloudapp check")
}

#[test]
fn check_cli_exits_zero_when_both_pass() {
    let cfg = config(
        Some(&moto()),
        &format!(
            "{}{}",
            s3_section(&env_var("SUAI_TEST_BUCKET")),
            dynamo_section(&env_var("SUAI_TEST_TABLE"))
        ),
    );
    let out = check("check-ok", &cfg, &["s3", "dynamodb"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for name in ["s3", "dynamodb"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(name) && l.split_whitespace().nth(1) == Some("OK")),
            "{name}: {stdout}"
        );
    }
}

#[test]
fn check_cli_exits_one_when_one_fails() {
    let cfg = config(
        Some(&moto()),
        &format!(
            "{}{}",
            s3_section(&env_var("SUAI_TEST_BUCKET")),
            dynamo_section("suai-no-such-table")
        ),
    );
    let out = check("check-fail", &cfg, &["s3", "dynamodb"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("s3") && l.split_whitespace().nth(1) == Some("OK")),
        "{stdout}"
    );
    let ddb = lines
        .iter()
        .find(|l| l.starts_with("dynamodb"))
        .unwrap_or_else(|| panic!("no dynamodb line: {stdout}"));
    assert_eq!(ddb.split_whitespace().nth(1), Some("FAIL"), "{stdout}");
    assert!(
        ddb.contains("suai-no-such-table") && ddb.contains("does not exist"),
        "{ddb}"
    );
}

// ---------------------------------------------------------------------------------------
// HTTPS: the SDK's own client (rustls with ring, src/aws/mod.rs), end to end

/// A TLS-terminating proxy (Python's stdlib) in front of moto, with the test CA's certificate
/// for 127.0.0.1 and localhost: real AWS endpoints are HTTPS, moto is plain HTTP.
fn tls_proxy(upstream: &str) -> PythonServer {
    let script = r#"
import socket, ssl, sys, threading
port, cert, key, upstream = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
host, up_port = upstream.rsplit("/", 1)[-1].rsplit(":", 1)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
ls = socket.create_server(("127.0.0.1", port))
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
def handle(c):
    try: t = ctx.wrap_socket(c, server_side=True)
    except (ssl.SSLError, OSError): c.close(); return
    u = socket.create_connection((host, int(up_port)))
    threading.Thread(target=pipe, args=(t, u), daemon=True).start()
    pipe(u, t)
while True:
    c, _ = ls.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;
    PythonServer::start(
        script,
        &[
            env_var("SUAI_TEST_TLS_CERT"),
            env_var("SUAI_TEST_TLS_KEY"),
            upstream.to_string(),
        ],
    )
}

#[test]
fn s3_and_dynamodb_over_https_trust_the_system_bundle_and_name_an_unknown_ca() {
    let proxy = tls_proxy(&moto());
    let cfg = config(
        Some(&format!("https://localhost:{}", proxy.port)),
        &format!(
            "{}{}",
            s3_section(&env_var("SUAI_TEST_BUCKET")),
            dynamo_section(&env_var("SUAI_TEST_TABLE"))
        ),
    );
    // The test CA as the system bundle (rustls-native-certs reads SSL_CERT_FILE).
    let ca = env_var("SUAI_TEST_TLS_CA");
    let trusted = App::start_with("https-trusted", &cfg, &[("SSL_CERT_FILE", ca.as_str())]);
    assert_ok(&trusted.get("/s3"));
    assert_ok(&trusted.get("/dynamodb"));
    // Another CA: the handshake fails, and the page says it is TLS and why.
    let other = env_var("SUAI_TEST_TLS_OTHER_CA");
    let untrusted = App::start_with("https-other-ca", &cfg, &[("SSL_CERT_FILE", other.as_str())]);
    assert_fails(
        &untrusted.get("/s3"),
        "tls",
        &["certificate", "UnknownIssuer"],
    );
}
