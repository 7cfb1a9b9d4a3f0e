//! Boot: config from s3:// (late object, denied, missing, wrong content), SIGHUP reload, and
//! instance identity headers (absent off EC2). IMDS-backed boots live in tests/deploy/deploy.rs.

use harness::imds::{Imds, ImdsOptions};
use harness::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs boto3 from the moto venv the test environment installed.
fn s3(op: &str, key: &str, body: &str) {
    let script = format!(
        "import boto3,sys\ns=boto3.client('s3',endpoint_url='{}',region_name='us-east-1',aws_access_key_id='testing',aws_secret_access_key='testing')\n\
         b='{}'\nk=sys.argv[1]\n\
         if sys.argv[2]=='put': s.put_object(Bucket=b,Key=k,Body=sys.stdin.buffer.read())\n\
         else: s.delete_object(Bucket=b,Key=k)\n",
        env_var("SUAI_TEST_MOTO_URL"),
        env_var("SUAI_TEST_BUCKET")
    );
    let out = run_with_stdin(
        Command::new(moto::venv_python()).args(["-c", &script, key, op]),
        body.as_bytes(),
        "the moto venv's python",
    );
    assert!(
        out.status.success(),
        "boto3 {op} {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn unique_key(name: &str) -> String {
    format!(
        "boot-tests/{name}-{}-{:?}.toml",
        std::process::id(),
        Instant::now()
    )
    .replace([' ', ':', '{', '}'], "")
}

fn s3_url(key: &str) -> String {
    format!("s3://{}/{key}", env_var("SUAI_TEST_BUCKET"))
}

/// A config that serves on a free loopback port and probes the test bucket.
fn served_config() -> String {
    format!(
        "{}[aws]\nendpoint_url = \"{}\"\n[s3]\nbucket = \"{}\"\n",
        server_section(),
        env_var("SUAI_TEST_MOTO_URL"),
        env_var("SUAI_TEST_BUCKET")
    )
}

/// Starts the binary with `--config s3://...` and env credentials for moto A.
fn boot(name: &str, key: &str, extra_env: &[(&str, &str)]) -> std::process::Child {
    let dir = scratch_dir(name);
    let mut cmd = app_command();
    cmd.current_dir(&dir)
        .args(["--config", &s3_url(key), "--state-dir", "state"])
        .env("AWS_ENDPOINT_URL", env_var("SUAI_TEST_MOTO_URL"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn finish(child: std::process::Child, limit: Duration) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed < limit, "took {elapsed:?}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed,
    )
}

#[test]
fn config_object_that_appears_after_start_is_waited_for_then_served() {
    let key = unique_key("late");
    let starting = Starting::spawn(
        "boot-late",
        None,
        &["--config", &s3_url(&key), "--state-dir", "state"],
        &[("AWS_ENDPOINT_URL", &env_var("SUAI_TEST_MOTO_URL"))],
    );
    starting.wait_stderr(Duration::from_secs(10), |e| e.contains("no such key"));
    // The app is retrying (it logged why); now the object appears.
    s3("put", &key, &served_config());
    let a = starting.wait_listening(Duration::from_secs(30));
    assert_eq!(a.get("/health").body, "healthy");
    assert_eq!(a.get("/s3").body, "OK");
    let err = a.stderr();
    assert!(
        err.contains("cannot fetch the config: no such key"),
        "{err}"
    );
    assert!(err.contains("retry_in_ms="), "{err}");
    assert!(
        err.contains("config fetched") && err.contains("etag="),
        "{err}"
    );
    // The fetched copy (0600, it may hold secrets) and its ETag are kept in the state dir.
    use std::os::unix::fs::PermissionsExt;
    let copy = a.dir.join("state/last-good.toml");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), served_config());
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let meta = std::fs::read_to_string(a.dir.join("state/last-good.meta")).unwrap();
    assert!(
        meta.lines()
            .any(|l| l.len() > "etag=".len() && l.starts_with("etag=")),
        "{meta}"
    );
    s3("delete", &key, "");
}

#[test]
fn region_and_credentials_come_from_instance_metadata_when_unset() {
    // A baked AMI whose unit sets no AWS_REGION: the region and the role's credentials come
    // from IMDS, for the config download and for the probes, through the binary's own HTTP
    // client (the SDK's default one is not linked).
    let imds = Imds::start(ImdsOptions::default());
    let key = unique_key("imds-region");
    s3("put", &key, &served_config());
    let moto = env_var("SUAI_TEST_MOTO_URL");
    let endpoint = imds.sdk_endpoint();
    let a = Starting::spawn_wrapped(
        &[
            "env",
            "-u",
            "AWS_REGION",
            "-u",
            "AWS_ACCESS_KEY_ID",
            "-u",
            "AWS_SECRET_ACCESS_KEY",
        ],
        "boot-imds-region",
        None,
        &["--config", &s3_url(&key), "--state-dir", "state"],
        &[
            ("AWS_ENDPOINT_URL", moto.as_str()),
            ("AWS_EC2_METADATA_DISABLED", "false"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint.as_str()),
        ],
    )
    .wait_listening(Duration::from_secs(30));
    assert_eq!(a.get("/s3").body, "OK");
    let log = imds.log();
    assert!(
        log.contains("GET /latest/meta-data/placement/region "),
        "{log}"
    );
    assert!(
        log.contains("GET /latest/meta-data/iam/security-credentials/"),
        "{log}"
    );
    s3("delete", &key, "");
}

#[test]
fn missing_key_gives_up_at_the_deadline_with_the_cause() {
    let child = boot(
        "boot-missing",
        &unique_key("never"),
        &[("SUAICLOUDAPP_CONFIG_DEADLINE_SECS", "2")],
    );
    let (code, err, elapsed) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        elapsed >= Duration::from_secs(2),
        "kept retrying until the deadline: {elapsed:?}"
    );
    assert!(
        err.contains("gave up after") && err.contains("no such key"),
        "{err}"
    );
    assert!(
        err.matches("cannot fetch the config").count() >= 2,
        "each failure logged: {err}"
    );
}

#[test]
fn access_denied_is_named_and_the_secret_never_shown() {
    let key = unique_key("denied");
    let denied_secret = env_var("SUAI_TEST_DENIED_SECRET");
    let child = boot(
        "boot-denied",
        &key,
        &[
            ("SUAICLOUDAPP_CONFIG_DEADLINE_SECS", "1"),
            ("AWS_ENDPOINT_URL", &env_var("SUAI_TEST_MOTO_AUTH_URL")),
            ("AWS_ACCESS_KEY_ID", &env_var("SUAI_TEST_DENIED_KEY_ID")),
            ("AWS_SECRET_ACCESS_KEY", &denied_secret),
        ],
    );
    let (code, err, _) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("access denied") && err.contains("s3:GetObject"),
        "{err}"
    );
    assert!(!err.contains(&denied_secret));
}

#[test]
fn a_fetched_file_that_does_not_parse_fails_at_once() {
    let key = unique_key("bad");
    s3("put", &key, "[server]\nport = = 1\n");
    let child = boot(
        "boot-bad",
        &key,
        &[("SUAICLOUDAPP_CONFIG_DEADLINE_SECS", "60")],
    );
    let (code, err, elapsed) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        elapsed < Duration::from_secs(5),
        "no retry loop on a parse error: {elapsed:?}"
    );
    assert!(
        err.contains(&format!("{}:2:8:", s3_url(&key))),
        "names the object, line, column: {err}"
    );
    s3("delete", &key, "");
}

#[test]
fn sighup_swaps_in_a_good_config_and_rejects_a_bad_one() {
    let a = App::start("reload", &server_section());
    assert!(a.get("/redis").body.starts_with("not configured"));
    let redis_port = env_var("SUAI_TEST_REDIS_PORT");
    let good = format!(
        "{}[redis]\nhost = \"127.0.0.1\"\nport = {redis_port}\n",
        server_section()
    );
    std::fs::write(a.dir.join("config.toml"), &good).unwrap();
    signal(a.child.id(), "HUP");
    assert!(
        eventually(Duration::from_secs(10), || a.get("/redis").body == "OK"),
        "reloaded"
    );
    assert!(eventually(Duration::from_secs(5), || a
        .stderr()
        .contains("config reloaded")));

    std::fs::write(a.dir.join("config.toml"), "[redis]\nhots = 1\n").unwrap();
    signal(a.child.id(), "HUP");
    assert!(eventually(Duration::from_secs(10), || a
        .stderr()
        .contains("config reload rejected")));
    let err = a.stderr();
    assert!(err.contains("did you mean `host`?"), "{err}");
    assert_eq!(a.get("/redis").body, "OK", "the running config is kept");
    assert_eq!(a.get("/health").body, "healthy");
}

#[test]
fn identity_headers_are_absent_off_ec2_and_start_up_does_not_wait() {
    // The harness disables instance metadata, as off EC2.
    let started = Instant::now();
    let a = App::start("noimds", &server_section());
    let r = a.get("/health");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.header("x-instance-id"), None);
    assert_eq!(r.header("x-availability-zone"), None);
}

/// Answers like S3 for a bucket in eu-west-1: a request signed for another region gets a 301
/// naming the bucket's region; one signed for eu-west-1 gets the object.
fn regional_s3(body: String) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut scope = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    scope = line.split('/').nth(2).unwrap_or("").to_string();
                }
            }
            log.lock().unwrap().push(scope.clone());
            let resp = if scope == "eu-west-1" {
                format!("HTTP/1.1 200 OK\r\nETag: \"abc123\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            } else {
                "HTTP/1.1 301 Moved Permanently\r\nx-amz-bucket-region: eu-west-1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            };
            let _ = stream.write_all(resp.as_bytes());
        }
    });
    (port, seen)
}

#[test]
fn a_wrong_region_answer_is_retried_once_in_the_buckets_region() {
    let (port, seen) = regional_s3(server_section());
    let endpoint = format!("http://127.0.0.1:{port}");
    let a = Starting::spawn(
        "boot-region",
        None,
        &[
            "--config",
            "s3://eu-bucket/config.toml",
            "--region",
            "us-east-1",
        ],
        &[("AWS_ENDPOINT_URL", &endpoint)],
    )
    .wait_listening(Duration::from_secs(20));
    assert_eq!(a.get("/health").body, "healthy");
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["us-east-1".to_string(), "eu-west-1".to_string()]
    );
    assert!(a
        .stderr()
        .contains("the bucket is in region eu-west-1; retrying there"));
}

#[test]
fn ready_is_sent_to_systemd_after_the_listener_is_bound_and_stopping_on_sigterm() {
    use std::os::unix::net::UnixDatagram;
    let dir = scratch_dir("notify");
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let starting = Starting::spawn(
        "notify-app",
        Some(&server_section()),
        &[],
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("a READY datagram");
    assert_eq!(std::str::from_utf8(&buf[..n]).unwrap().trim(), "READY=1");
    // READY came after bind: the listening line is already out and the port answers.
    let mut a = starting.wait_listening(Duration::from_secs(5));
    assert_eq!(a.get("/health").body, "healthy");
    a.terminate();
    let n = sock.recv(&mut buf).expect("a STOPPING datagram");
    assert_eq!(std::str::from_utf8(&buf[..n]).unwrap().trim(), "STOPPING=1");
    assert_eq!(a.wait(Duration::from_secs(10)).code(), Some(0));
}
