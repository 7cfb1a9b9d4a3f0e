//! A faithful IMDSv2 server for tests: `scripts/imds_server.py` on a free loopback port,
//! killed on Drop. Point the AWS SDK (and the AWS CLI) at it with
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT` = [`Imds::sdk_endpoint`].

use super::{eventually, scratch_dir};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What the fake instance looks like.
#[derive(Clone, Debug)]
pub struct ImdsOptions {
    pub instance_id: String,
    pub region: String,
    pub az: String,
    pub role: String,
    pub access_key: String,
    /// Passed through the environment, never on the command line; never logged by the server.
    pub secret_key: String,
    /// The iam/ paths answer 404, as on an instance without an instance profile.
    pub deny_credentials: bool,
    /// Served at /latest/user-data when set.
    pub user_data: Option<PathBuf>,
}

impl Default for ImdsOptions {
    fn default() -> Self {
        ImdsOptions {
            instance_id: "i-0123456789abcdef0".into(),
            region: "us-east-1".into(),
            az: "us-east-1a".into(),
            role: "suaicloudapp-test-role".into(),
            access_key: "ASIAIMDSTEST00000001".into(),
            secret_key: "imds-test-secret-key-do-not-log".into(),
            deny_credentials: false,
            user_data: None,
        }
    }
}

/// The running metadata server.
pub struct Imds {
    pub port: u16,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    pub opts: ImdsOptions,
    log: PathBuf,
    child: Child,
}

impl Imds {
    /// Starts the server on a free port and waits (polling its ready file) until it listens.
    pub fn start(opts: ImdsOptions) -> Imds {
        let dir = scratch_dir("imds");
        let ready = dir.join("port");
        let log = dir.join("imds.log");
        let script = &format!("{}/scripts/imds_server.py", super::REPO);
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--instance-id", &opts.instance_id])
            .args(["--region", &opts.region])
            .args(["--az", &opts.az])
            .args(["--role", &opts.role])
            .args(["--access-key", &opts.access_key])
            .arg("--ready-file")
            .arg(&ready)
            .env("IMDS_SECRET_ACCESS_KEY", &opts.secret_key)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if opts.deny_credentials {
            cmd.arg("--deny-credentials");
        }
        if let Some(path) = &opts.user_data {
            cmd.arg("--user-data").arg(path);
        }
        let mut child = cmd
            .spawn()
            .expect("spawn python3 scripts/imds_server.py (is python3 installed?)");
        let mut port = None;
        let up = eventually(Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "imds_server.py exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            port = std::fs::read_to_string(&ready)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok());
            port.is_some()
        });
        if !up {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "imds_server.py did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let port = port.unwrap();
        Imds {
            port,
            url: format!("http://127.0.0.1:{port}"),
            opts,
            log,
            child,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The value for `AWS_EC2_METADATA_SERVICE_ENDPOINT`: with a trailing slash, which the
    /// Python AWS CLI needs (it appends `latest/api/token`); the Rust SDK accepts both.
    pub fn sdk_endpoint(&self) -> String {
        format!("{}/", self.url)
    }

    /// The server's request log so far (one line per request: method, path, status).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Imds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
