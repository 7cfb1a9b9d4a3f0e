//! user-data.sh's verified install, with the user-data harness of tests/deploy/deploy.rs (the binary
//! in S3 on moto, instance-role credentials from the IMDSv2 test server, the service run by
//! scripts/fake-systemctl in a throwaway root):
//! - the digest for this machine's architecture (`SHA256_X86_64`) installs and starts it;
//! - a file whose digest differs is refused: the console (stdout) and the journal (a logger
//!   stand-in recording its arguments) say so, the installed binary, env file and unit stay
//!   byte for byte, the running service is not restarted, and the refused file never ran (it is
//!   a script that would leave a marker file);
//! - `uname -m` picks the key and digest: on aarch64 the aarch64 ones, not the x86_64 ones;
//! - no digest at all is refused before anything is downloaded.

use harness::userdata::*;
use harness::*;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A file that is not the release: a script that, if anything ran it, would leave `marker`.
fn planted(dir: &Path, marker: &Path) -> PathBuf {
    let path = dir.join("planted");
    write_exec(
        &path,
        &format!(
            "#!/bin/sh\ntouch '{}'\necho 'suaicloudapp 9.9.9'\n",
            marker.display()
        ),
    );
    path
}

fn refs<'a>(settings: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn health(addr: SocketAddr) -> Option<Resp> {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    Some(send_raw(
        addr,
        b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ))
}

#[test]
fn good_digest_installs_and_a_different_file_is_refused_leaving_the_install_alone() {
    let started = Instant::now();
    let mut vm = Instance::new("verify-install");
    let port = closed_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let config = vm.scratch.join("config.toml");
    std::fs::write(
        &config,
        format!("[server]\nhost = \"127.0.0.1\"\nport = {port}\n"),
    )
    .unwrap();
    let config_key = vm.upload(&config, "config.toml");
    let bin_key = vm.upload(BIN.as_path(), "suaicloudapp-x86_64-unknown-linux-musl");
    let good = sha256_of(BIN.as_path());
    let settings = |sum: &str| {
        vec![
            ("CONFIG_KEY", config_key.clone()),
            ("BINARY_KEY_X86_64", bin_key.clone()),
            ("SHA256_X86_64", sum.to_string()),
            // The other architecture's settings must not matter on this x86_64 machine.
            ("SHA256_AARCH64", "0".repeat(64)),
        ]
    };

    // 1. The right digest (in capitals, as some tools print it): installed, started, serving.
    let (ok, out) = vm.user_data(&refs(&settings(&good.to_uppercase())));
    assert!(ok, "a good digest must install: {out}");
    assert!(
        out.contains("verified s3://") && out.contains(&format!("sha256 {good}")),
        "{out}"
    );
    assert!(out.contains("x86_64 binary"), "{out}");
    assert_eq!(
        vm.installed("usr/local/bin/suaicloudapp").unwrap(),
        std::fs::read(&*BIN).unwrap()
    );
    let r = health(addr).expect("serving after the install");
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));
    assert_eq!(vm.journal(), "", "nothing for the journal on success");
    let pid_file = vm.root.join("run/suaicloudapp.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let unit = vm.installed("etc/systemd/system/suaicloudapp.service");
    let env = vm.installed("etc/suaicloudapp/env");

    // 2. Someone replaced the object: its digest differs from the expected one.
    let marker = vm.scratch.join("planted-ran");
    let bad = planted(&vm.scratch, &marker);
    let bad_sum = sha256_of(&bad);
    let out = moto_cli(&[
        "s3",
        "cp",
        bad.to_str().unwrap(),
        &format!("s3://{}/{bin_key}", env_var("SUAI_TEST_BUCKET")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (ok, out) = vm.user_data(&refs(&settings(&good)));
    assert!(!ok, "a wrong digest must fail user-data: {out}");
    let why = format!("its SHA-256 is {bad_sum}, expected {good}");
    assert!(
        out.contains("ERROR: refusing s3://") && out.contains(&why),
        "the console names both digests: {out}"
    );
    assert!(out.contains("was left as it was"), "{out}");
    let journal = vm.journal();
    assert!(
        journal.contains("-t suaicloudapp-user-data -p user.err")
            && journal.contains("ERROR: refusing s3://")
            && journal.contains(&why),
        "the journal gets the same line at priority err: {journal}"
    );
    assert!(!marker.exists(), "the refused file was executed");
    assert_eq!(
        vm.installed("usr/local/bin/suaicloudapp").unwrap(),
        std::fs::read(&*BIN).unwrap(),
        "the installed binary was replaced"
    );
    assert_eq!(
        vm.installed("etc/systemd/system/suaicloudapp.service"),
        unit
    );
    assert_eq!(vm.installed("etc/suaicloudapp/env"), env);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        pid,
        "the service was restarted"
    );
    let r = health(addr).expect("still serving after the refusal");
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));
    let leftovers: Vec<_> = std::fs::read_dir(vm.root.join("usr/local/bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["suaicloudapp"],
        "the refused download is removed"
    );
    eprintln!(
        "verified install, then refusal: {:?}\nrefusal output:\n{out}",
        started.elapsed()
    );
}

#[test]
fn uname_picks_the_aarch64_key_and_digest_and_no_digest_is_refused() {
    let mut vm = Instance::new("verify-arch");
    let marker = vm.scratch.join("planted-ran");
    let bad = planted(&vm.scratch, &marker);
    let arm_key = vm.upload(&bad, "suaicloudapp-aarch64-unknown-linux-musl");
    let x86_key = vm.upload(&bad, "suaicloudapp-x86_64-unknown-linux-musl");
    let bad_sum = sha256_of(&bad);
    let arm_sum = "a".repeat(64);
    write_exec(
        &vm.bin_dir.join("uname"),
        "#!/bin/sh\n[ \"$1\" = -m ] && { echo aarch64; exit 0; }\nexec /usr/bin/uname \"$@\"\n",
    );

    // On "aarch64" the x86_64 pair is ignored (its digest would even match the file).
    let (ok, out) = vm.user_data(&[
        ("BINARY_KEY_X86_64", &x86_key),
        ("SHA256_X86_64", &bad_sum),
        ("BINARY_KEY_AARCH64", &arm_key),
        ("SHA256_AARCH64", &arm_sum),
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("aarch64 binary {arm_key} (sha256 {arm_sum})")),
        "{out}"
    );
    assert!(
        out.contains("ERROR: refusing s3://")
            && out.contains(&arm_key)
            && out.contains(&format!("its SHA-256 is {bad_sum}, expected {arm_sum}")),
        "{out}"
    );
    assert!(out.contains("nothing was installed"), "{out}");
    assert!(vm.journal().contains(&arm_key), "{}", vm.journal());
    assert!(!marker.exists(), "the refused file was executed");
    assert!(vm.installed("usr/local/bin/suaicloudapp").is_none());

    // No digest for this architecture: refused before any download, with what to set.
    std::fs::remove_file(&vm.journal).ok();
    let (ok, out) = vm.user_data(&[("BINARY_KEY_AARCH64", &arm_key)]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("no expected SHA-256 for the aarch64 binary: set SHA256_AARCH64"),
        "{out}"
    );
    assert!(!out.contains("downloading"), "{out}");
    assert!(vm.journal().contains("SHA256_AARCH64"), "{}", vm.journal());

    // Not a digest at all.
    let (ok, out) = vm.user_data(&[("SHA256", "deadbeef")]);
    assert!(!ok && out.contains("is not 64 hex digits"), "{out}");
    assert!(vm.installed("usr/local/bin/suaicloudapp").is_none());
    assert!(!marker.exists());
}
