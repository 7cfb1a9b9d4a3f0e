//! Private MariaDB and Redis servers a test may stop, start, pause and flood without
//! disturbing the shared test environment.

use super::{await_listening, closed_port, env_var, eventually, scratch_dir};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A private MariaDB that this test may stop and start.
pub struct OwnMariaDb {
    pub dir: std::path::PathBuf,
    pub port: u16,
    pub child: Option<Child>,
}

impl OwnMariaDb {
    pub fn install() -> OwnMariaDb {
        let dir = scratch_dir("own-mariadb");
        let ok = Command::new(env_var("SUAI_TEST_MARIADB_INSTALL_DB"))
            .args([
                "--no-defaults",
                &format!("--datadir={}", dir.join("data").display()),
            ])
            .args([
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "mariadb-install-db failed");
        OwnMariaDb {
            dir,
            port: closed_port(),
            child: None,
        }
    }

    pub fn start(&mut self) {
        self.start_with(&["--skip-grant-tables"]);
    }

    /// Starts it with these options besides the data directory, socket and port (`start`
    /// passes `--skip-grant-tables`; without it the grant tables, users and plugins apply).
    pub fn start_with(&mut self, options: &[&str]) {
        let child = Command::new(env_var("SUAI_TEST_MARIADBD"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!("--socket={}", self.dir.join("sock").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-name-resolve",
            ])
            .args(options)
            .arg("--skip-log-bin")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        await_listening(self.port, Duration::from_secs(30), "own mariadbd");
    }

    /// The mysql client over this server's socket, as root; returns stdout.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-N", "-B", "-uroot"])
            .arg(format!("--socket={}", self.dir.join("sock").display()))
            .args(["-e", sql])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server's process id (to pause it with SIGSTOP); panics when it is stopped.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("mariadbd is running").id()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnMariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private redis-server this test owns.
pub struct OwnRedis {
    pub port: u16,
    args: Vec<String>,
    pub child: Option<Child>,
}

impl OwnRedis {
    pub fn start(extra: &[&str]) -> OwnRedis {
        let port = closed_port();
        let dir = scratch_dir("own-redis");
        let mut args: Vec<String> = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend([
            "--port".into(),
            port.to_string(),
            "--dir".into(),
            dir.display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut r = OwnRedis {
            port,
            args,
            child: None,
        };
        r.up();
        r
    }

    pub fn up(&mut self) {
        let child = Command::new(env_var("SUAI_TEST_REDIS_SERVER"))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        assert!(
            eventually(Duration::from_secs(10), || self.cli(&["PING"]).trim()
                == "PONG"),
            "own redis did not come up"
        );
    }

    /// The server's process id (to pause it with SIGSTOP); panics when it is stopped.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server is running").id()
    }

    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env_var("SUAI_TEST_REDIS_CLI"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// How many times the server ran `cmd` since the last CONFIG RESETSTAT.
    pub fn calls(&self, cmd: &str) -> u64 {
        let stats = self.cli(&["INFO", "commandstats"]);
        stats
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.down();
    }
}
