//! The release path is least privilege and verifiable:
//! - .github/workflows/release.yml keeps the write token out of the job that builds: the rules in
//!   scripts/workflow_rules.py pass, and each rule catches its planted mistake; checkov's
//!   github_actions checks pass and catch a planted `permissions: write-all`;
//! - SHA256SUMS is signed (scripts/sign-release.sh, an SSH signature) and a user's check
//!   (scripts/verify-release.sh, the README's commands) accepts it and rejects a changed binary,
//!   a rewritten SHA256SUMS, another key's signature; the committed public key is the one the
//!   README and the scripts name, and no private key is in the repository.

use harness::userdata::{repo, text};
use harness::*;
use std::path::Path;
use std::process::{Command, Output};

const WORKFLOW: &str = ".github/workflows/release.yml";

fn workflow_rules(file: &Path) -> Output {
    Command::new(harness::moto::venv_python())
        .arg(repo("scripts/workflow_rules.py"))
        .arg(file)
        .output()
        .expect("run scripts/workflow_rules.py with the venv's python (PyYAML)")
}

#[test]
fn the_release_workflow_keeps_write_out_of_the_build_and_each_rule_catches_its_plant() {
    let ok = workflow_rules(&repo(WORKFLOW));
    assert!(
        ok.status.success() && ok.stdout.is_empty(),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    let workflow = std::fs::read_to_string(repo(WORKFLOW)).unwrap();
    let publish = &workflow[workflow.find("\n  publish:\n").expect("a publish job")..];
    for want in [
        "needs: build",
        "environment: release",
        "actions/download-artifact@",
        "run: scripts/sign-release.sh dist",
        "run: scripts/verify-release.sh dist",
        "dist/SHA256SUMS.sig",
    ] {
        assert!(publish.contains(want), "the publish job lacks {want:?}");
    }

    let plants: &[(&str, &str, &str, &str)] = &[
        (
            "permissions: {}\n",
            "permissions: write-all\n",
            "top-permissions",
            "a write-all workflow",
        ),
        (
            "      contents: read\n",
            "      contents: write\n",
            "write-runs-build",
            "a build job that can write",
        ),
        (
            "    permissions:\n      contents: read\n",
            "",
            "job-permissions",
            "a job without permissions",
        ),
        (
            "run: scripts/verify-release.sh dist",
            "run: scripts/verify-release.sh dist && make dist",
            "write-runs-build",
            "make in the publish job",
        ),
        (
            "    environment: release\n",
            "",
            "write-needs-env",
            "publish outside its environment",
        ),
        (
            "@3d3c42e5aac5ba805825da76410c181273ba90b1",
            "@v7",
            "pinned-action",
            "checkout by tag",
        ),
        (
            "@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f",
            "@main",
            "pinned-action",
            "upload-artifact by branch",
        ),
        (
            "persist-credentials: false",
            "persist-credentials: true",
            "checkout-creds",
            "checkout keeping the token",
        ),
        (
            "on:\n  push:\n",
            "on:\n  pull_request_target:\n  push:\n",
            "no-pr-target",
            "a pull_request_target trigger",
        ),
        (
            "run: scripts/sign-release.sh dist",
            "run: scripts/sign-release.sh dist \"${{ github.event.head_commit.message }}\"",
            "run-injection",
            "an event field in run:",
        ),
    ];
    let dir = scratch_dir("workflow-rules");
    for (from, to, rule, what) in plants {
        assert!(
            workflow.contains(from),
            "plant {what}: {from:?} not in {WORKFLOW}"
        );
        let planted = dir.join(format!("{rule}.yml"));
        std::fs::write(&planted, workflow.replacen(from, to, 1)).unwrap();
        let out = workflow_rules(&planted);
        let said = text(&out.stdout);
        assert!(
            out.status.code() == Some(1) && said.contains(&format!(": {rule}: ")),
            "{what}: workflow_rules.py said {:?} (exit {:?}) {}",
            said,
            out.status.code(),
            text(&out.stderr)
        );
    }
}

/// checkov's github_actions framework on a directory: (passed, failed check ids).
fn checkov_actions(dir: &Path) -> (u64, Vec<String>) {
    let report = checkov_report("github_actions", dir);
    let failed = report["results"]["failed_checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["check_id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (report["summary"]["passed"].as_u64().unwrap_or(0), failed)
}

#[test]
fn checkov_passes_the_workflows_and_catches_write_all() {
    let (passed, failed) = checkov_actions(&repo(".github"));
    assert!(
        passed > 0 && failed.is_empty(),
        "checkov on .github/: {passed} passed, failed {failed:?}"
    );
    eprintln!("checkov github_actions on .github/: {passed} passed, 0 failed");

    let planted = scratch_dir("checkov-actions");
    std::fs::create_dir_all(planted.join(".github/workflows")).unwrap();
    let workflow = std::fs::read_to_string(repo(WORKFLOW)).unwrap();
    std::fs::write(
        planted.join(WORKFLOW),
        workflow.replacen("permissions: {}\n", "permissions: write-all\n", 1),
    )
    .unwrap();
    let (_, failed) = checkov_actions(&planted);
    assert_eq!(failed, ["CKV2_GHA_1"], "the planted write-all");
}

fn keygen(dir: &Path, name: &str) -> std::path::PathBuf {
    let key = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "release@suaicloudapp",
            "-f",
        ])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{}", text(&out.stderr));
    key
}

fn run(script: &str, args: &[&std::ffi::OsStr], key_text: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(repo(script));
    cmd.args(args).env_remove("RELEASE_SIGNING_KEY");
    if let Some(k) = key_text {
        cmd.env("RELEASE_SIGNING_KEY", k);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{script}: {e}"));
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

fn sums(dir: &Path) {
    let out = Command::new("sh")
        .args(["-c", "sha256sum suaicloudapp-* > SHA256SUMS"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn a_signed_sha256sums_verifies_and_every_tampering_is_refused() {
    let dir = scratch_dir("signing");
    let keys = dir.join("keys");
    let dist = dir.join("dist");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::create_dir_all(&dist).unwrap();
    let key = keygen(&keys, "release");
    let other = keygen(&keys, "other");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let public: Vec<&str> = public.split_whitespace().take(2).collect();
    let signers = keys.join("allowed_signers");
    std::fs::write(
        &signers,
        format!(
            "release@suaicloudapp namespaces=\"suaicloudapp-release\" {} {}\n",
            public[0], public[1]
        ),
    )
    .unwrap();
    for (name, body) in [
        ("suaicloudapp-9.9.9-x86_64-unknown-linux-musl", "x86 binary"),
        (
            "suaicloudapp-9.9.9-aarch64-unknown-linux-musl",
            "arm binary",
        ),
    ] {
        std::fs::write(dist.join(name), body).unwrap();
    }
    sums(&dist);
    let key_text = std::fs::read_to_string(&key).unwrap();
    let d = dist.as_os_str();
    let verify = |signers: &Path| {
        run(
            "scripts/verify-release.sh",
            &["--allowed-signers".as_ref(), signers.as_os_str(), d],
            None,
        )
    };

    // Signed with the key's text from the environment, as the publish job does.
    let (ok, said) = run("scripts/sign-release.sh", &[d], Some(&key_text));
    assert!(ok, "sign: {said}");
    assert!(
        !said.contains("PRIVATE KEY") && !said.contains(key_text.lines().nth(1).unwrap()),
        "{said}"
    );
    let (ok, said) = verify(&signers);
    assert!(ok && said.contains("2 file(s) match"), "verify: {said}");

    // The committed key did not make this signature: the real allowed_signers refuses it.
    let (ok, said) = verify(&repo("docs/release-signing/allowed_signers"));
    assert!(!ok && said.contains("not a good signature"), "{said}");

    // A changed binary: the signature holds, its line does not.
    let x86 = dist.join("suaicloudapp-9.9.9-x86_64-unknown-linux-musl");
    std::fs::write(&x86, "x86 binary, rewritten").unwrap();
    let (ok, said) = verify(&signers);
    assert!(
        !ok && said.contains("x86_64-unknown-linux-musl: FAILED"),
        "{said}"
    );

    // ...and SHA256SUMS rewritten to match it: the signature no longer holds.
    sums(&dist);
    let (ok, said) = verify(&signers);
    assert!(!ok && said.contains("not a good signature"), "{said}");

    // Re-signed by another key: not an allowed signer.
    let (ok, said) = run(
        "scripts/sign-release.sh",
        &["--key".as_ref(), other.as_os_str(), d],
        None,
    );
    assert!(ok, "{said}");
    let (ok, said) = verify(&signers);
    assert!(!ok && said.contains("not a good signature"), "{said}");

    // The signer refuses a SHA256SUMS its files do not match.
    std::fs::write(&x86, "changed after SHA256SUMS").unwrap();
    let (ok, said) = run(
        "scripts/sign-release.sh",
        &["--key".as_ref(), key.as_os_str(), d],
        None,
    );
    assert!(!ok && said.contains("refusing to sign"), "{said}");
    // And says what is missing when no key is given.
    let (ok, said) = run("scripts/sign-release.sh", &[d], None);
    assert!(!ok && said.contains("RELEASE_SIGNING_KEY"), "{said}");
}

#[test]
fn the_committed_key_is_the_one_the_readme_names_and_no_private_key_is_committed() {
    let signers = std::fs::read_to_string(repo("docs/release-signing/allowed_signers")).unwrap();
    let lines: Vec<&str> = signers
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one release key: {signers}");
    assert!(
        lines[0]
            .starts_with("release@suaicloudapp namespaces=\"suaicloudapp-release\" ssh-ed25519 "),
        "{signers}"
    );
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let section = &readme[readme
        .find("### Verifying a release")
        .expect("README: Verifying a release")..];
    for want in [
        "ssh-keygen -Y verify -f allowed_signers -I release@suaicloudapp -n suaicloudapp-release",
        "sha256sum --ignore-missing -c SHA256SUMS",
        lines[0],
    ] {
        assert!(
            section.contains(want),
            "README's verification lacks {want:?}"
        );
    }
    let files = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo("."))
        .output()
        .expect("git ls-files");
    let marker = ["-----BEGIN OPENSSH", " PRIVATE KEY-----"].concat();
    for name in text(&files.stdout).split('\0').filter(|n| !n.is_empty()) {
        let bytes = std::fs::read(repo(name)).unwrap_or_default();
        assert!(
            !text(&bytes).contains(&marker),
            "{name} holds a private key"
        );
    }
}
