//! Deployment: shellcheck on the scripts, the systemd unit (embedded in user-data.sh, verified
//! by systemd-analyze), the IMDSv2 test server's protocol, and user-data.sh run for real into a
//! throwaway root: binary and config from S3 (moto) with instance-role credentials from IMDS,
//! the service started by scripts/fake-systemctl, then /health, /s3 and the instance id.

use harness::imds::{Imds, ImdsOptions};
use harness::*;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const UNIT: &str = "systemd/suaicloudapp.service";
/// Debian's AWS CLI v2 (scripts/test-env.sh installs it); a plain `aws` may be a v1 shim.
const AWS_CLI: &str = "/usr/bin/aws";

fn repo(path: &str) -> PathBuf {
    Path::new(REPO).join(path)
}

fn run(cmd: &mut Command, what: &str) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{what}: cannot run ({e}): run scripts/test-env.sh up"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ------------------------------------------------------------------------------------------
// (a) shellcheck

#[test]
fn scripts_pass_shellcheck() {
    let mut files = vec![repo("user-data.sh"), repo("scripts/fake-systemctl")];
    for entry in std::fs::read_dir(repo("scripts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sh") {
            files.push(path);
        }
    }
    assert!(files.len() >= 4, "{files:?}");
    let out = run(
        Command::new("shellcheck")
            .args(["--severity=style", "--"])
            .args(&files),
        "shellcheck",
    );
    assert!(
        out.status.success(),
        "shellcheck {files:?}:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

// ------------------------------------------------------------------------------------------
// (b) the unit

/// The unit text user-data.sh writes: the body of its `<<'UNIT'` heredoc.
fn embedded_unit() -> String {
    let script = std::fs::read_to_string(repo("user-data.sh")).unwrap();
    let mut lines = script.split_inclusive('\n');
    lines
        .by_ref()
        .find(|l| l.trim_end().ends_with("<<'UNIT'"))
        .expect("user-data.sh embeds the unit in a <<'UNIT' heredoc");
    let mut unit = String::new();
    for line in lines {
        if line.trim_end_matches('\n') == "UNIT" {
            return unit;
        }
        unit.push_str(line);
    }
    panic!("the UNIT heredoc in user-data.sh is not closed");
}

#[test]
fn unit_embedded_in_user_data_is_byte_identical() {
    let file = std::fs::read_to_string(repo(UNIT)).unwrap();
    let embedded = embedded_unit();
    if embedded != file {
        let first = file
            .lines()
            .zip(embedded.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(file.lines().count().min(embedded.lines().count()));
        panic!(
            "user-data.sh's embedded unit differs from {UNIT} at line {}: regenerate the heredoc",
            first + 1
        );
    }
}

/// `[Service]` key=value pairs (last one wins, as systemd reads single-valued keys).
fn service_keys(unit: &str) -> HashMap<String, String> {
    let mut section = "";
    let mut keys = HashMap::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                keys.insert(k.to_string(), v.to_string());
            }
        }
    }
    keys
}

#[test]
fn unit_has_the_boot_and_hardening_settings() {
    let unit = std::fs::read_to_string(repo(UNIT)).unwrap();
    let keys = service_keys(&unit);
    for (k, v) in [
        ("Type", "notify"),
        ("ExecStart", "/usr/local/bin/suaicloudapp serve"),
        ("EnvironmentFile", "-/etc/suaicloudapp/env"),
        ("Restart", "on-failure"),
        ("RestartSec", "2"),
        ("TimeoutStartSec", "180"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "suaicloudapp"),
        ("LogsDirectory", "suaicloudapp"),
        ("WorkingDirectory", "/var/log/suaicloudapp"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        // No capability (issue 28): a port below 1024 gets CAP_NET_BIND_SERVICE from
        // user-data.sh's low-port.conf drop-in only.
        ("CapabilityBoundingSet", ""),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("SystemCallArchitectures", "native"),
        ("StandardOutput", "journal"),
        ("StandardError", "journal"),
        // Least privilege (issue 21): see tests/serve/least_privilege.rs for the filter at work.
        ("ProcSubset", "pid"),
        ("SystemCallErrorNumber", "EPERM"),
        ("MemoryMax", "256M"),
        ("TasksMax", "256"),
        ("WatchdogSec", "30"),
    ] {
        assert_eq!(keys.get(k).map(String::as_str), Some(v), "[Service] {k}");
    }
    assert!(
        !keys.contains_key("AmbientCapabilities"),
        "no ambient capability in the unit"
    );
    assert!(unit.contains(
        "\nSystemCallFilter=@system-service\nSystemCallFilter=~@privileged @resources\n"
    ));
    assert!(unit.contains("\n[Install]\nWantedBy=multi-user.target\n"));
}

/// `systemd-analyze verify` in a scratch root holding the unit, placeholders for the two
/// programs it names (verify checks they are executable) and the host's stock units (for
/// sysinit.target and friends). Any warning (unknown key, bad value) fails the test.
#[test]
fn unit_passes_systemd_analyze_verify_and_security() {
    let root = scratch_dir("unit-verify");
    for (dir, file) in [
        ("usr/local/bin", "suaicloudapp"),
        ("bin", "kill"),
        ("etc/systemd/system", ""),
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        if !file.is_empty() {
            let p = root.join(dir).join(file);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    std::fs::copy(
        repo(UNIT),
        root.join("etc/systemd/system/suaicloudapp.service"),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    let cp = run(
        Command::new("cp")
            .args(["-r", "/usr/lib/systemd/system"])
            .arg(root.join("usr/lib/systemd/")),
        "cp the host's units",
    );
    assert!(cp.status.success(), "{}", text(&cp.stderr));

    let out = run(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", root.display()))
            .arg("suaicloudapp.service"),
        "systemd-analyze",
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert_eq!(said.trim(), "", "systemd-analyze verify warned");

    // The exposure score is 1.2 or lower (the threshold counts tenths): 1.2 with systemd 252,
    // 1.4 while the unit granted CAP_NET_BIND_SERVICE.
    let out = run(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=12"])
            .arg(repo(UNIT)),
        "systemd-analyze security",
    );
    let said = text(&out.stdout);
    let score = said
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure line: {said}{}", text(&out.stderr)));
    assert!(out.status.success(), "exposure above 1.2: {score}\n{said}");

    // With user-data.sh's low-port drop-in the unit still verifies, and the drop-in grants
    // exactly the one capability.
    let dropin = low_port_dropin();
    let keys = service_keys(&dropin);
    assert_eq!(keys.len(), 2, "{dropin}");
    for k in ["AmbientCapabilities", "CapabilityBoundingSet"] {
        assert_eq!(
            keys.get(k).map(String::as_str),
            Some("CAP_NET_BIND_SERVICE"),
            "{dropin}"
        );
    }
    let dir = root.join("etc/systemd/system/suaicloudapp.service.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("low-port.conf"), &dropin).unwrap();
    let out = run(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", root.display()))
            .arg("suaicloudapp.service"),
        "systemd-analyze",
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify with low-port.conf: {said}"
    );
}

/// The drop-in user-data.sh writes for a port below 1024: the body of its `<<'LOWPORT'` heredoc.
fn low_port_dropin() -> String {
    let script = std::fs::read_to_string(repo("user-data.sh")).unwrap();
    let start = script
        .find("<<'LOWPORT'\n")
        .expect("user-data.sh writes low-port.conf from a <<'LOWPORT' heredoc")
        + "<<'LOWPORT'\n".len();
    let len = script[start..]
        .find("\nLOWPORT\n")
        .expect("the LOWPORT heredoc is closed");
    format!("{}\n", &script[start..start + len])
}

/// A port below 1024 (the stack's AppPort, user-data's APP_PORT) gets the drop-in, and the
/// service serves there; a later run with a high port removes it again. (The tests run as root,
/// which binds a low port anyway: this checks what user-data.sh installs and removes, while
/// systemd-analyze above checks that systemd reads it.)
#[test]
fn user_data_grants_cap_net_bind_service_only_for_a_low_port() {
    use harness::userdata::Instance;
    let started = Instant::now();
    let mut vm = Instance::new("low-port");
    // A loopback address of its own: port 443 there is free whatever else listens on 443.
    let host = format!(
        "127.0.{}.{}",
        100 + std::process::id() % 100,
        2 + std::process::id() % 200
    );
    let binary_key = vm.upload(BIN.as_path(), "suaicloudapp");
    let dropin = vm
        .root
        .join("etc/systemd/system/suaicloudapp.service.d/low-port.conf");
    let sha = userdata::sha256_of(BIN.as_path());
    let mut run_on = |port: u16| {
        let config = vm.scratch.join(format!("config-{port}.toml"));
        std::fs::write(
            &config,
            format!("[server]\nhost = \"{host}\"\nport = {port}\n"),
        )
        .unwrap();
        let config_key = vm.upload(&config, &format!("config-{port}.toml"));
        let port_s = port.to_string();
        let health_url = format!("http://{host}:{port}/health");
        let (ok, out) = vm.user_data(&[
            ("BINARY_KEY", binary_key.as_str()),
            ("SHA256", sha.as_str()),
            ("CONFIG_KEY", config_key.as_str()),
            ("APP_PORT", port_s.as_str()),
            ("HEALTH_URL", health_url.as_str()),
        ]);
        assert!(ok, "user-data.sh with APP_PORT={port}:\n{out}");
        assert!(
            out.contains(&format!("{health_url} answered: healthy")),
            "{out}"
        );
        out
    };
    let out = run_on(443);
    assert_eq!(
        std::fs::read_to_string(&dropin).unwrap_or_default(),
        low_port_dropin(),
        "low-port.conf for port 443:\n{out}"
    );
    let high = closed_port();
    let out = run_on(high);
    assert!(
        !dropin.exists(),
        "low-port.conf removed for port {high}:\n{out}"
    );
    assert!(out.contains("removed "), "{out}");
    eprintln!(
        "low-port drop-in, two user-data runs: {:?}",
        started.elapsed()
    );
}

// ------------------------------------------------------------------------------------------
// (c) the IMDSv2 server the other tests rely on

fn imds_req(imds: &Imds, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut raw =
        format!("{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "PUT" {
        raw.push_str("Content-Length: 0\r\n");
    }
    raw.push_str("\r\n");
    send_raw(imds.addr(), raw.as_bytes())
}

const TTL: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN: &str = "X-aws-ec2-metadata-token";

fn token(imds: &Imds, ttl: &str) -> String {
    let r = imds_req(imds, "PUT", "/latest/api/token", &[(TTL, ttl)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header(TTL),
        Some(ttl),
        "the TTL is echoed (the Rust SDK requires it)"
    );
    assert!(r.body.len() >= 40, "{r:?}");
    r.body
}

/// Parses a JSON object with python3's json module (no JSON crate among the dev-dependencies):
/// key -> value, strings bare, others as JSON.
fn json_object(body: &str) -> HashMap<String, String> {
    let out = run_with_stdin(
        Command::new("python3").args([
            "-c",
            "import json,sys\nfor k,v in json.load(sys.stdin).items(): print(k+'\\t'+(v if isinstance(v,str) else json.dumps(v)))",
        ]),
        body.as_bytes(),
        "python3",
    );
    assert!(out.status.success(), "not a JSON object: {body}");
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Seconds since the epoch for `YYYY-MM-DDTHH:MM:SSZ`.
fn epoch(iso: &str) -> i64 {
    assert!(
        iso.len() == 20 && iso.as_bytes()[10] == b'T' && iso.ends_with('Z'),
        "not ISO 8601 UTC: {iso}"
    );
    let n = |r: std::ops::Range<usize>| iso[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days * 86400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

#[test]
fn imds_server_speaks_imdsv2() {
    let user_data = scratch_dir("imds-ud").join("user-data");
    std::fs::write(&user_data, "#!/bin/bash\necho hi\n").unwrap();
    let opts = ImdsOptions {
        instance_id: "i-0feedfacecafe0001".into(),
        region: "eu-west-3".into(),
        az: "eu-west-3b".into(),
        role: "web-role".into(),
        access_key: "ASIAPROTOCOLTEST0001".into(),
        secret_key: "protocol-test-secret-Zq9".into(),
        user_data: Some(user_data),
        ..Default::default()
    };
    let imds = Imds::start(opts.clone());
    let md = "/latest/meta-data";

    // Token: the TTL header is required and bounded.
    for bad in [None, Some("0"), Some("21601"), Some("-5"), Some("abc")] {
        let h: Vec<(&str, &str)> = bad.map(|v| (TTL, v)).into_iter().collect();
        assert_eq!(
            imds_req(&imds, "PUT", "/latest/api/token", &h).status,
            400,
            "TTL {bad:?}"
        );
    }
    let _ = token(&imds, "1");
    let t = token(&imds, "21600");
    // A token request relayed by a proxy is refused.
    let r = imds_req(
        &imds,
        "PUT",
        "/latest/api/token",
        &[(TTL, "60"), ("X-Forwarded-For", "10.0.0.1")],
    );
    assert_eq!(r.status, 403);

    // Every GET needs a valid token (IMDSv2 only).
    assert_eq!(
        imds_req(&imds, "GET", &format!("{md}/instance-id"), &[]).status,
        401
    );
    let r = imds_req(
        &imds,
        "GET",
        &format!("{md}/instance-id"),
        &[(TOKEN, "forged")],
    );
    assert_eq!(r.status, 401);
    let r = imds_req(
        &imds,
        "GET",
        &format!("{md}/instance-id"),
        &[(TOKEN, &t), ("X-Forwarded-For", "10.0.0.1")],
    );
    assert_eq!(r.status, 403, "a GET with X-Forwarded-For is refused");
    let get = |path: &str| imds_req(&imds, "GET", path, &[(TOKEN, &t)]);
    assert_eq!(get("/latest/meta-data/nope").status, 404);
    assert_eq!(
        imds_req(&imds, "POST", "/latest/api/token", &[]).status,
        405
    );

    for (path, want) in [
        ("instance-id", "i-0feedfacecafe0001"),
        ("placement/region", "eu-west-3"),
        ("placement/availability-zone", "eu-west-3b"),
        ("iam/security-credentials/", "web-role"),
    ] {
        let r = get(&format!("{md}/{path}"));
        assert_eq!((r.status, r.body.as_str()), (200, want), "{path}");
    }
    assert_eq!(get("/latest/user-data").body, "#!/bin/bash\necho hi\n");

    let r = get(&format!("{md}/iam/security-credentials/web-role"));
    assert_eq!(r.status, 200);
    let c = json_object(&r.body);
    assert_eq!(c["Code"], "Success");
    assert_eq!(c["Type"], "AWS-HMAC");
    assert_eq!(c["AccessKeyId"], "ASIAPROTOCOLTEST0001");
    assert_eq!(c["SecretAccessKey"], "protocol-test-secret-Zq9");
    assert!(c["Token"].len() > 20, "{c:?}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let updated = epoch(&c["LastUpdated"]);
    assert!((updated - now).abs() < 60, "LastUpdated is now: {c:?}");
    assert_eq!(
        epoch(&c["Expiration"]) - updated,
        3600,
        "expires in one hour"
    );

    let r = get("/latest/dynamic/instance-identity/document");
    assert_eq!(r.status, 200);
    let doc = json_object(&r.body);
    for (k, v) in [
        ("instanceId", "i-0feedfacecafe0001"),
        ("region", "eu-west-3"),
        ("availabilityZone", "eu-west-3b"),
    ] {
        assert_eq!(doc.get(k).map(String::as_str), Some(v), "{k}: {doc:?}");
    }
    for k in ["accountId", "imageId", "instanceType"] {
        assert!(doc.get(k).is_some_and(|v| !v.is_empty()), "{k}: {doc:?}");
    }

    // A token expires after its TTL.
    let short = token(&imds, "1");
    assert_eq!(
        imds_req(
            &imds,
            "GET",
            &format!("{md}/instance-id"),
            &[(TOKEN, &short)]
        )
        .status,
        200
    );
    assert!(
        eventually(Duration::from_secs(5), || imds_req(
            &imds,
            "GET",
            &format!("{md}/instance-id"),
            &[(TOKEN, &short)]
        )
        .status
            == 401),
        "an expired token is refused"
    );

    // Every request is logged; the secret key and the tokens never are.
    let log = imds.log();
    assert!(
        log.contains("\"GET /latest/meta-data/iam/security-credentials/web-role HTTP/1.1\" 200"),
        "{log}"
    );
    assert!(
        log.contains("\"PUT /latest/api/token HTTP/1.1\" 400"),
        "{log}"
    );
    assert!(!log.contains(&opts.secret_key), "{log}");
    assert!(!log.contains(&t), "{log}");

    // Without an instance profile the credentials paths are 404; no user-data is 404 too.
    let bare = Imds::start(ImdsOptions {
        deny_credentials: true,
        ..Default::default()
    });
    let t = token(&bare, "60");
    for path in [
        "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/iam/security-credentials/suaicloudapp-test-role",
        "/latest/user-data",
    ] {
        assert_eq!(
            imds_req(&bare, "GET", path, &[(TOKEN, &t)]).status,
            404,
            "{path}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// (d) user-data.sh end to end

/// The AWS CLI with moto A's static test keys (the uploader's side, not the instance's).
fn moto_cli(args: &[&str]) {
    let out = userdata::moto_cli(args);
    assert!(
        out.status.success(),
        "aws {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Deletes the uploaded objects and stops the service, even when the test fails.
struct Deployed {
    root: PathBuf,
    keys: Vec<String>,
}

impl Drop for Deployed {
    fn drop(&mut self) {
        let _ = Command::new(repo("scripts/fake-systemctl"))
            .args(["stop", "suaicloudapp"])
            .env("ROOT", &self.root)
            .status();
        let bucket = env_var("SUAI_TEST_BUCKET");
        for key in &self.keys {
            let _ = userdata::moto_cli(&["s3", "rm", &format!("s3://{bucket}/{key}")]);
        }
    }
}

fn fake_systemctl(root: &Path, args: &[&str]) -> Output {
    run(
        Command::new(repo("scripts/fake-systemctl"))
            .args(args)
            .env("ROOT", root),
        "scripts/fake-systemctl",
    )
}

/// GET on the deployed service, or None while nothing listens.
fn try_get(addr: SocketAddr, path: &str) -> Option<Resp> {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    let raw = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    Some(send_raw(addr, raw.as_bytes()))
}

#[test]
fn user_data_installs_and_starts_the_service_with_instance_role_credentials() {
    let bucket = env_var("SUAI_TEST_BUCKET");
    let moto = env_var("SUAI_TEST_MOTO_URL");
    let scratch = scratch_dir("deploy");
    let root = scratch.join("root");
    std::fs::create_dir_all(&root).unwrap();

    let unique = format!(
        "deploy-tests/{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let binary_key = format!("{unique}/suaicloudapp");
    let config_key = format!("{unique}/config.toml");
    let deployed = Deployed {
        root: root.clone(),
        keys: vec![binary_key.clone(), config_key.clone()],
    };

    let port = closed_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let config = format!(
        "[server]\nhost = \"127.0.0.1\"\nport = {port}\n[aws]\nendpoint_url = \"{moto}\"\n[s3]\nbucket = \"{bucket}\"\n"
    );
    let config_file = scratch.join("config.toml");
    std::fs::write(&config_file, &config).unwrap();
    moto_cli(&[
        "s3",
        "cp",
        BIN.to_str().unwrap(),
        &format!("s3://{bucket}/{binary_key}"),
    ]);
    moto_cli(&[
        "s3",
        "cp",
        config_file.to_str().unwrap(),
        &format!("s3://{bucket}/{config_key}"),
    ]);

    let instance_id = format!("i-0d{:015x}", std::process::id());
    let imds = Imds::start(ImdsOptions {
        instance_id: instance_id.clone(),
        secret_key: "deploy-e2e-secret-Kq7vX".into(),
        ..Default::default()
    });

    // As cloud-init would run it, with no AWS keys anywhere: the CLI and the binary take the
    // instance role's credentials from IMDS, and REGION from IMDS placement/region.
    let user_data = || {
        let started = Instant::now();
        let out = run(
            Command::new("bash")
                .arg(repo("user-data.sh"))
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", &scratch)
                .env("BUCKET", &bucket)
                .env("BINARY_KEY", &binary_key)
                .env("CONFIG_KEY", &config_key)
                .env("SHA256", userdata::sha256_of(BIN.as_path()))
                .env("ROOT", &root)
                .env("SYSTEMCTL", repo("scripts/fake-systemctl"))
                .env("AWS", AWS_CLI)
                .env("IMDS", &imds.url)
                .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.sdk_endpoint())
                .env("AWS_ENDPOINT_URL", &moto),
            "bash user-data.sh",
        );
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "user-data.sh failed:\n{stdout}{}\nservice console:\n{}",
            text(&out.stderr),
            std::fs::read_to_string(root.join("var/log/suaicloudapp.console")).unwrap_or_default()
        );
        for line in stdout.lines() {
            let ts = line.split(' ').next().unwrap();
            assert!(
                epoch(ts) > 0,
                "each step is logged with a timestamp: {line}"
            );
        }
        assert!(stdout.contains("suaicloudapp is running"), "{stdout}");
        (stdout, started.elapsed())
    };

    let (first, took) = user_data();
    eprintln!("user-data.sh (first run, {took:?}):\n{first}");

    // What it installed.
    use std::os::unix::fs::PermissionsExt;
    let bin = root.join("usr/local/bin/suaicloudapp");
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/suaicloudapp/env")).unwrap(),
        format!(
            "SUAICLOUDAPP_CONFIG=s3://{bucket}/{config_key}\nAWS_REGION=us-east-1\nAWS_ENDPOINT_URL={moto}\n"
        )
    );
    assert_eq!(
        std::fs::read(root.join("etc/systemd/system/suaicloudapp.service")).unwrap(),
        std::fs::read(repo(UNIT)).unwrap()
    );
    assert!(root
        .join("etc/systemd/system/multi-user.target.wants/suaicloudapp.service")
        .exists());
    let leftovers: Vec<_> = std::fs::read_dir(root.join("usr/local/bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["suaicloudapp"], "no temp files left behind");

    // Serving: the unit's Type=notify made the start wait for READY, so it answers now.
    let health = try_get(addr, "/health").expect("listening once user-data.sh returned");
    assert_eq!((health.status, health.body.as_str()), (200, "healthy"));
    let s3 = try_get(addr, "/s3").unwrap();
    assert_eq!((s3.status, s3.body.as_str()), (200, "OK"), "{s3:?}");
    // The identity look-up runs in the background: poll for the header.
    assert!(
        eventually(Duration::from_secs(10), || try_get(addr, "/health")
            .and_then(|r| r.header("x-instance-id").map(str::to_string))
            .as_deref()
            == Some(instance_id.as_str())),
        "x-instance-id {instance_id}"
    );
    let r = try_get(addr, "/health").unwrap();
    assert_eq!(r.header("x-availability-zone"), Some("us-east-1a"));

    // The files the unit points at: the log under WorkingDirectory, the config copy under
    // the state directory.
    assert!(eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(root.join("var/log/suaicloudapp/output.log"))
            .is_ok_and(|l| l.contains("listening on"))
    }));
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/suaicloudapp/last-good.toml")).unwrap(),
        config
    );

    // The credentials came from the instance role: both the CLI and the binary asked IMDS.
    let log = imds.log();
    let role_fetches = log
        .matches("GET /latest/meta-data/iam/security-credentials/suaicloudapp-test-role ")
        .count();
    assert!(
        role_fetches >= 2,
        "CLI and binary fetched role credentials:\n{log}"
    );
    assert!(
        log.contains("GET /latest/meta-data/placement/region "),
        "{log}"
    );

    // Again: idempotent, the service restarted on the new install and still healthy.
    let pid_file = root.join("run/suaicloudapp.pid");
    let pid1 = std::fs::read_to_string(&pid_file).unwrap();
    let (second, _) = user_data();
    let pid2 = std::fs::read_to_string(&pid_file).unwrap();
    assert_ne!(pid1, pid2, "restarted by the second run:\n{second}");
    let r = try_get(addr, "/health").expect("listening after the second run");
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));
    assert_eq!(try_get(addr, "/s3").unwrap().body, "OK");
    assert!(eventually(Duration::from_secs(10), || try_get(
        addr, "/health"
    )
    .and_then(|r| r.header("x-instance-id").map(str::to_string))
    .as_deref()
        == Some(instance_id.as_str())));

    // Stop: the process drains and exits; nothing listens any more.
    let out = fake_systemctl(&root, &["stop", "suaicloudapp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = fake_systemctl(&root, &["is-active", "suaicloudapp"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout).trim(), "inactive");
    assert!(try_get(addr, "/health").is_none(), "stopped");
    let console = std::fs::read_to_string(root.join("var/log/suaicloudapp.console")).unwrap();
    assert!(
        console.contains("SIGTERM received") && console.contains("stopped"),
        "{console}"
    );

    // The role's secret key was never printed anywhere.
    let secret = &imds.opts.secret_key;
    for (what, s) in [
        ("user-data stdout", format!("{first}{second}")),
        ("console", console),
        (
            "output.log",
            std::fs::read_to_string(root.join("var/log/suaicloudapp/output.log")).unwrap(),
        ),
        ("imds log", imds.log()),
    ] {
        assert!(!s.contains(secret.as_str()), "secret key in the {what}");
    }
    drop(deployed);
}
