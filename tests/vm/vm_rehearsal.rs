//! Boot rehearsal: `scripts/vm-rehearsal.sh` boots a real Debian 12 VM under QEMU (software
//! emulation) three times, whose cloud-init (EC2 datasource, IMDSv2 at 169.254.169.254) runs the
//! shipped user-data.sh: a good boot, a boot whose config.toml appears in S3 only ~20 s after the
//! service first looked for it, and a boot whose metadata server refuses credentials. This test
//! runs it and asserts on its exit status and on every check in its `summary.json`.
//!
//! A machine that cannot boot the VM fails this test with the reason; it never skips. A cold
//! run builds the guest image (debootstrap, a few minutes, cached under
//! ~/.cache/suaicloudapp/vm); later runs reuse it.

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Cold image build plus three boots, each bounded by the script itself; this is a backstop.
const LIMIT: Duration = Duration::from_secs(45 * 60);

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The newest modification time among the sources the binary is built from.
fn newest_source() -> SystemTime {
    fn walk(dir: &Path, newest: &mut SystemTime) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Some(t) = modified(&path) {
                *newest = (*newest).max(t);
            }
        }
    }
    let repo = Path::new(REPO);
    let mut newest = SystemTime::UNIX_EPOCH;
    walk(&repo.join("src"), &mut newest);
    for f in ["Cargo.toml", "Cargo.lock"] {
        if let Some(t) = modified(&repo.join(f)) {
            newest = newest.max(t);
        }
    }
    newest
}

/// The binary to deploy: `SUAI_VM_BINARY` when set; else the static release build (`make
/// static`) when it is newer than every source file; else the binary cargo just built for these
/// tests (glibc; the guest is Debian 12 like the host; the script deploys a stripped copy), so
/// a stale build is never the one rehearsed.
fn binary() -> (PathBuf, &'static str) {
    if let Some(p) = std::env::var_os("SUAI_VM_BINARY") {
        return (PathBuf::from(p), "SUAI_VM_BINARY");
    }
    let static_bin = Path::new(REPO).join("target/x86_64-unknown-linux-musl/release/suaicloudapp");
    match modified(&static_bin) {
        Some(t) if t >= newest_source() => (static_bin, "static release build"),
        Some(_) => (
            harness::BIN.clone(),
            "the test build: the static build is older than the sources",
        ),
        None => (
            harness::BIN.clone(),
            "the test build: no static build (make static)",
        ),
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn vm_boot_rehearsal_good_late_config_and_denied_credentials() {
    let (bin, which) = binary();
    assert!(
        bin.is_file(),
        "no binary to deploy at {} ({which}): run `make static` or set SUAI_VM_BINARY",
        bin.display()
    );
    let out_dir = Path::new(REPO).join("target/vm-rehearsal");
    let summary_path = out_dir.join("summary.json");
    // Another clone's suite may be rehearsing on this machine too: the script takes turns (a
    // lock) and stamps its summary with this id, so only this run's summary is read.
    let run_id = format!(
        "test-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    eprintln!(
        "vm rehearsal: deploying {} ({which}); progress in {}",
        bin.display(),
        out_dir.join("rehearsal.log").display()
    );

    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(Path::new(REPO).join("scripts/vm-rehearsal.sh"))
        .arg("--binary")
        .arg(&bin)
        .env("SUAI_VM_OUT", &out_dir)
        .env("SUAI_VM_RUN_ID", &run_id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/vm-rehearsal.sh");
    // Drain both pipes in the background so the script never blocks on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            // SIGTERM: the script's trap stops qemu and the metadata server.
            harness::signal(child.id(), "TERM");
            let grace = Instant::now();
            while child.try_wait().unwrap().is_none() && grace.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "scripts/vm-rehearsal.sh ran over {LIMIT:?}: {}",
                tail(
                    &std::fs::read_to_string(out_dir.join("rehearsal.log")).unwrap_or_default(),
                    40
                )
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    eprintln!(
        "{stdout}\n{}\n(vm rehearsal took {:.0} s)",
        tail(&stderr, 20),
        started.elapsed().as_secs_f64()
    );

    let text = std::fs::read_to_string(&summary_path).unwrap_or_else(|_| {
        panic!(
            "the VM rehearsal wrote no {} (exit {status}); this machine could not run it:\n{}\n{}",
            summary_path.display(),
            tail(&stdout, 30),
            tail(&stderr, 30)
        )
    });
    let summary: Value = serde_json::from_str(&text).expect("summary.json is JSON");
    assert_eq!(
        summary["run_id"].as_str(),
        Some(run_id.as_str()),
        "{} is another run's (exit {status}); this one wrote none:\n{}\n{}",
        summary_path.display(),
        tail(&stdout, 30),
        tail(&stderr, 30)
    );
    if let Some(e) = summary["error"].as_str() {
        panic!("the VM rehearsal could not run: {e}\n{}", tail(&stdout, 30));
    }

    // Every check, by name, with the detail the script recorded.
    let mut failed = Vec::new();
    for (name, scenario) in summary["scenarios"].as_object().expect("scenarios") {
        for c in scenario["checks"].as_array().expect("checks") {
            if c["ok"] != Value::Bool(true) {
                failed.push(format!("{name}: {}: {}", c["name"], c["detail"]));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "VM rehearsal checks failed (consoles under {}):\n{}",
        out_dir.display(),
        failed.join("\n")
    );
    assert!(status.success(), "vm-rehearsal.sh exited {status}");
    assert_eq!(summary["ok"], Value::Bool(true), "{text}");

    // The checks that must be there, so a script that silently skipped one cannot pass.
    let has = |scenario: &str, name: &str| {
        let checks = summary["scenarios"][scenario]["checks"]
            .as_array()
            .unwrap_or_else(|| panic!("scenario {scenario} missing from the summary: {text}"));
        assert!(
            checks
                .iter()
                .any(|c| c["name"] == name && c["ok"] == Value::Bool(true)),
            "{scenario}: no passing check {name:?}"
        );
    };
    for scenario in ["good", "late-config"] {
        for name in [
            "user-data is user-data.sh with settings lines only",
            "cloud-init used the EC2 datasource",
            "cloud-init fetched user-data over IMDSv2",
            "user-data.sh ran to its end",
            "unit reached READY (Type=notify)",
            "unit started once, never restarted",
            "the service fetched its config from S3",
            "GET /health",
            "GET /database",
            "GET /redis",
            "GET /s3",
            "GET /dynamodb",
            "X-Instance-Id is the metadata server's instance id",
            "role credentials served by IMDSv2",
            "region from IMDS",
            "still serving at the end",
        ] {
            has(scenario, name);
        }
    }
    for name in [
        "config absent at boot",
        "service retried while the object was absent, logging why",
        "retries back off",
        "READY only after the upload",
        "one process throughout (no restart by hand or by systemd)",
    ] {
        has("late-config", name);
    }
    for name in [
        "cloud-init used the EC2 datasource",
        "cause on the console: no credentials",
        "user-data.sh stopped with a clear error",
        "cause in the journal",
        "metadata server refused credentials",
        "nothing hangs: cloud-init finished",
        "nothing answers on the port",
    ] {
        has("denied-credentials", name);
    }

    // The good boot's timeline is complete and in order.
    let timeline = summary["scenarios"]["good"]["timeline"]
        .as_array()
        .expect("timeline");
    let at = |prefix: &str| {
        timeline
            .iter()
            .find(|e| e["event"].as_str().is_some_and(|s| s.starts_with(prefix)))
            .and_then(|e| e["seconds"].as_f64())
            .unwrap_or_else(|| panic!("timeline has no {prefix:?}: {timeline:?}"))
    };
    let order = [
        at("VM start"),
        at("kernel up"),
        at("cloud-init user-data start"),
        at("service READY"),
    ];
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "timeline out of order: {order:?}"
    );
    let health = at("first /health 200");
    assert!(
        health >= order[3] - 1.0,
        "first /health 200 ({health}) before READY ({})",
        order[3]
    );
}
