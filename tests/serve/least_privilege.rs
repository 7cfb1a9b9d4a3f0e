//! What the systemd unit's sandbox and watchdog ask of the binary, checked without systemd
//! (the test machine's PID 1 is not systemd):
//! - the binary starts (prctl, re-exec), serves, probes real backends, reloads on SIGHUP and
//!   drains on SIGTERM under the unit's own `SystemCallFilter=`, expanded by this machine's
//!   `systemd-analyze syscall-filter` and loaded with libseccomp (Debian's python3-seccomp) as a
//!   kill-on-violation filter: stricter than the unit, whose violations return EPERM;
//! - `WATCHDOG=1` reaches the notify socket repeatedly when `WATCHDOG_USEC` is set.
//!
//! The unit's keys, its `systemd-analyze verify` and its exposure score are in tests/deploy/deploy.rs.

use harness::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const UNIT: &str = "systemd/suaicloudapp.service";

/// The `SystemCallFilter=` values of the unit's `[Service]` section, in order.
fn unit_filters() -> Vec<String> {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(UNIT)).unwrap();
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix("SystemCallFilter="))
        .map(str::to_string)
        .collect()
}

/// The system calls a set such as `@system-service` names, groups expanded, as this machine's
/// systemd defines them.
fn expand(set: &str) -> BTreeSet<String> {
    let out = Command::new("systemd-analyze")
        .args(["syscall-filter", set])
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    assert!(out.status.success(), "systemd-analyze syscall-filter {set}");
    let mut calls = BTreeSet::new();
    for word in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
    {
        match word {
            w if w == set => {}
            w if w.starts_with('@') => calls.extend(expand(w)),
            w => {
                calls.insert(w.to_string());
            }
        }
    }
    calls
}

/// The allow list systemd builds from the unit: the first (allow) assignment, less every set
/// named by a later `~` assignment.
fn allowed_calls() -> BTreeSet<String> {
    let filters = unit_filters();
    let (allow, denies) = filters
        .split_first()
        .expect("the unit has SystemCallFilter=");
    assert!(
        !allow.starts_with('~'),
        "the first SystemCallFilter= must be an allow list"
    );
    let mut calls: BTreeSet<String> = allow.split_whitespace().flat_map(expand).collect();
    for deny in denies {
        let deny = deny.strip_prefix('~').expect("later assignments deny");
        for set in deny.split_whitespace() {
            for call in expand(set) {
                calls.remove(&call);
            }
        }
    }
    calls
}

/// Loads a seccomp filter allowing only the calls listed in argv[1] (anything else kills the
/// process with SIGSYS), then execs $SECCOMP_PROGRAM, or else argv[2], with the rest of argv.
/// Names this libseccomp does not know for this architecture are skipped: the binary cannot
/// make them either.
const SECCOMP_EXEC: &str = r#"
import os, seccomp, sys
f = seccomp.SyscallFilter(defaction=seccomp.KILL_PROCESS)
for name in open(sys.argv[1]).read().split():
    if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) >= 0:
        f.add_rule(seccomp.ALLOW, name)
f.load()
program = os.environ.get("SECCOMP_PROGRAM") or sys.argv[2]
os.execv(program, [program] + sys.argv[3:])
"#;

/// A config probing the shared MariaDB (over TLS, verified), Redis and moto's S3 and DynamoDB.
fn probing_config() -> String {
    let e = test_env();
    format!(
        "{}[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n\
         [s3]\nbucket = \"{}\"\n[dynamodb]\ntable = \"{}\"\n\
         [database]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\npassword = \"{}\"\ndbname = \"{}\"\ntls = \"verify-ca\"\nca_file = \"{}\"\n\
         [redis]\nhost = \"127.0.0.1\"\nport = {}\n",
        server_section(),
        e["SUAI_TEST_MOTO_URL"],
        e["SUAI_TEST_BUCKET"],
        e["SUAI_TEST_TABLE"],
        e["SUAI_TEST_MYSQL_TLS_PORT"],
        e["SUAI_TEST_MYSQL_USER"],
        e["SUAI_TEST_MYSQL_PASSWORD"],
        e["SUAI_TEST_MYSQL_DB"],
        e["SUAI_TEST_TLS_CA"],
        e["SUAI_TEST_REDIS_PORT"],
    )
}

/// Runs `program` (None: the debug binary under test) under the unit's filter through start
/// (the config fetched from S3 and kept in the state directory, as on EC2), every probe,
/// /logs, /metrics, a SIGHUP reload and a SIGTERM drain.
fn serves_under_the_units_filter(name: &str, program: Option<&Path>) {
    let allowed = allowed_calls();
    for call in ["read", "prctl", "execve", "socket"] {
        assert!(
            allowed.contains(call),
            "{call} missing: the expansion is wrong"
        );
    }
    for call in [
        "setuid",
        "setrlimit",
        "sched_setaffinity",
        "mount",
        "reboot",
    ] {
        assert!(
            !allowed.contains(call),
            "{call} allowed: the ~ sets were not applied"
        );
    }
    let list = scratch_dir(name).join("allowed-syscalls");
    std::fs::write(&list, allowed.into_iter().collect::<Vec<_>>().join("\n")).unwrap();
    let key = format!("least-privilege/{name}-{}.toml", std::process::id());
    let bucket = env_var("SUAI_TEST_BUCKET");
    let moto = env_var("SUAI_TEST_MOTO_URL");
    harness::moto::put_object(&moto, &bucket, &key, &probing_config());
    let config = format!("s3://{bucket}/{key}");
    let mut envs = vec![("AWS_ENDPOINT_URL", moto.as_str())];
    if let Some(p) = program {
        envs.push(("SECCOMP_PROGRAM", p.to_str().unwrap()));
    }
    let mut app = Starting::spawn_wrapped(
        &[
            "/usr/bin/python3",
            "-c",
            SECCOMP_EXEC,
            list.to_str().unwrap(),
        ],
        name,
        None,
        &["--config", &config, "--state-dir", "state", "serve"],
        &envs,
    )
    .wait_listening(Duration::from_secs(30));
    assert_eq!(
        std::fs::read_to_string(app.dir.join("state/last-good.toml")).unwrap(),
        probing_config()
    );

    let r = app.request("GET", "/", &[("Accept", "text/plain")]);
    for backend in ["database", "redis", "s3", "dynamodb"] {
        assert!(
            r.body
                .lines()
                .any(|l| l.starts_with(backend) && l.contains(" OK ")),
            "{backend} not OK under the filter:\n{}",
            r.body
        );
    }
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.get("/logs?lines=5").status, 200);
    assert_eq!(app.get("/metrics").status, 200);
    signal(app.child.id(), "HUP");
    app.wait_stderr(Duration::from_secs(20), |e| e.contains("config reloaded"));
    assert_eq!(app.get("/database").body, "OK");
    app.terminate();
    let status = app.wait(Duration::from_secs(20));
    // A forbidden call would have ended the process with SIGSYS, not exit code 0.
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", app.stderr());
    assert!(!app.stderr().contains(" ERROR "), "{}", app.stderr());
}

#[test]
fn the_debug_binary_serves_probes_and_reloads_under_the_units_syscall_filter() {
    serves_under_the_units_filter("seccomp-debug", None);
}

/// The shipped artifact: musl makes other system calls than glibc (and mimalloc than glibc's
/// malloc). Built by `make static`, which `make test` runs first; a missing one fails loudly.
#[test]
fn the_static_binary_serves_probes_and_reloads_under_the_units_syscall_filter() {
    let path = release_bin("x86_64-unknown-linux-musl", "static");
    serves_under_the_units_filter("seccomp-static", Some(&path));
}

#[test]
fn watchdog_pings_arrive_repeatedly_when_systemd_sets_watchdog_usec() {
    use std::os::unix::net::UnixDatagram;
    let dir = scratch_dir("watchdog");
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // 1 s: the binary should ping every 500 ms.
    let app = Starting::spawn(
        "watchdog-app",
        Some(&server_section()),
        &[],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    )
    .wait_listening(Duration::from_secs(20));
    let mut pings = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(15);
    while pings.len() < 6 && Instant::now() < deadline {
        let n = sock.recv(&mut buf).expect("a datagram within 5 s");
        if std::str::from_utf8(&buf[..n]).unwrap().trim() == "WATCHDOG=1" {
            pings.push(Instant::now());
        }
    }
    assert_eq!(
        pings.len(),
        6,
        "WATCHDOG=1 pings within 15 s: {}",
        pings.len()
    );
    // Paced at about half the interval: not a burst, and never the whole interval apart.
    for pair in pings[1..].windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(250) && gap < Duration::from_secs(1),
            "gap {gap:?}"
        );
    }
    assert_eq!(app.get("/health").body, "healthy");
    assert!(app.stderr().contains("systemd watchdog enabled"));
}
