//! The user-data harness shared by tests/deploy/install_verify.rs and tests/deploy/cloudformation.rs: one
//! throwaway "instance" (a scratch root, S3 keys under a unique prefix on moto A, an IMDSv2 test
//! server for the role's credentials, scripts/fake-systemctl as the service manager and a logger
//! stand-in for the journal) that runs user-data.sh as cloud-init would. tests/deploy/deploy.rs keeps
//! its own copy of the first pieces (it predates this module).

use super::imds::{Imds, ImdsOptions};
use super::{env_var, scratch_dir};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

pub use super::REPO;
/// Debian's AWS CLI v2 (scripts/test-env.sh installs it); a plain `aws` may be a v1 shim.
pub const AWS_CLI: &str = "/usr/bin/aws";

/// A path in the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(REPO).join(path)
}

/// Bytes a command printed, as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The SHA-256 of a file in hex, as user-data.sh's SHA256 settings take it (coreutils).
pub fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The AWS CLI against moto A with its static test keys (the uploader's side).
pub fn moto_cli(args: &[&str]) -> Output {
    Command::new(AWS_CLI)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", scratch_dir("aws-home"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["--region", "us-east-1", "--only-show-errors"])
        .args(["--endpoint-url", &env_var("SUAI_TEST_MOTO_URL")])
        .args(args)
        .output()
        .expect("/usr/bin/aws (Debian's awscli): run scripts/test-env.sh up")
}

/// Writes an executable file (a script stand-in).
pub fn write_exec(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// One throwaway instance: a root, S3 keys under a unique prefix, an IMDS, a logger stand-in.
pub struct Instance {
    pub scratch: PathBuf,
    pub root: PathBuf,
    pub prefix: String,
    pub keys: Vec<String>,
    pub imds: Imds,
    /// What user-data.sh sent to the journal (the LOGGER stand-in appends its arguments here).
    pub journal: PathBuf,
    /// Directory put first on PATH (for a `uname` stand-in).
    pub bin_dir: PathBuf,
}

impl Instance {
    pub fn new(name: &str) -> Instance {
        let scratch = scratch_dir(name);
        let root = scratch.join("root");
        let bin_dir = scratch.join("bin");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&bin_dir).unwrap();
        let journal = scratch.join("journal.txt");
        write_exec(
            &scratch.join("logger"),
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >>'{}'\n",
                journal.display()
            ),
        );
        let prefix = format!(
            "verify-tests/{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let imds = Imds::start(ImdsOptions::default());
        Instance {
            scratch,
            root,
            prefix,
            keys: Vec::new(),
            imds,
            journal,
            bin_dir,
        }
    }

    pub fn upload(&mut self, file: &Path, name: &str) -> String {
        let key = format!("{}/{name}", self.prefix);
        let out = moto_cli(&[
            "s3",
            "cp",
            file.to_str().unwrap(),
            &format!("s3://{}/{key}", env_var("SUAI_TEST_BUCKET")),
        ]);
        assert!(out.status.success(), "upload: {}", text(&out.stderr));
        self.keys.push(key.clone());
        key
    }

    /// Runs user-data.sh as cloud-init would, with these settings: (exit ok, stdout+stderr).
    pub fn user_data(&self, settings: &[(&str, &str)]) -> (bool, String) {
        self.run_script(&repo("user-data.sh"), settings)
    }

    /// Runs `script` (user-data.sh, or user-data rendered from it) the same way.
    pub fn run_script(&self, script: &Path, settings: &[(&str, &str)]) -> (bool, String) {
        let path = format!(
            "{}:{}",
            self.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("bash");
        cmd.arg(script)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.scratch)
            .env("BUCKET", env_var("SUAI_TEST_BUCKET"))
            .env("ROOT", &self.root)
            .env("SYSTEMCTL", repo("scripts/fake-systemctl"))
            .env("AWS", AWS_CLI)
            .env("LOGGER", self.scratch.join("logger"))
            .env("IMDS", &self.imds.url)
            .env(
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                self.imds.sdk_endpoint(),
            )
            .env("AWS_ENDPOINT_URL", env_var("SUAI_TEST_MOTO_URL"));
        for (k, v) in settings {
            cmd.env(k, v);
        }
        let started = std::time::Instant::now();
        let out = cmd.output().expect("bash user-data.sh");
        eprintln!(
            "{} ran in {:?} (exit {:?})",
            script.display(),
            started.elapsed(),
            out.status.code()
        );
        (
            out.status.success(),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        )
    }

    pub fn journal(&self) -> String {
        std::fs::read_to_string(&self.journal).unwrap_or_default()
    }

    pub fn installed(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.join(rel)).ok()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new(repo("scripts/fake-systemctl"))
            .args(["stop", "suaicloudapp"])
            .env("ROOT", &self.root)
            .output();
        let bucket = env_var("SUAI_TEST_BUCKET");
        for key in &self.keys {
            let _ = moto_cli(&["s3", "rm", &format!("s3://{bucket}/{key}")]);
        }
    }
}
