//! The full tier's harness: start the real binary on a free port, talk HTTP/1.1 to it (a real
//! client, [`http`]; raw bytes only where a test must send what no client would, [`raw`]), and
//! read the endpoints of the project's test environment (`scripts/test-env.sh up` writes them).

pub mod hardening;
pub mod http;
pub mod imds;
pub mod load;
pub mod moto;
pub mod raw;
pub use raw::send_raw;
pub mod servers;
pub mod userdata;
#[allow(unused_imports)]
pub use servers::{OwnMariaDb, OwnRedis};

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// The repository's root.
pub const REPO: &str = env!("SUAI_REPO");

/// The binary under test: cargo builds the package's binary beside the directory holding the
/// test binaries (`<target>/debug/deps/` holds `serve-<hash>`, `<target>/debug/` the binary).
pub static BIN: LazyLock<PathBuf> = LazyLock::new(|| {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("suaicloudapp"))
        .expect("the test binary lives in <target>/<profile>/deps");
    assert!(
        bin.is_file(),
        "{} missing: cargo test builds it",
        bin.display()
    );
    bin
});

/// The target directory's scratch area (`CARGO_TARGET_TMPDIR` of an integration test).
fn target_tmp() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("the test binary lives in <target>/<profile>/deps")
        .join("tmp")
}

/// Runs `cmd` with `input` on its stdin and its stdout and stderr captured; `what` names the
/// program in the failure when it cannot start.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8], what: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The static release binary for `target` (`x86_64-unknown-linux-musl`, ...), which `make
/// <make_target>` builds and `make test` runs first; a missing one fails and says so.
pub fn release_bin(target: &str, make_target: &str) -> PathBuf {
    let path = Path::new(REPO)
        .join("target")
        .join(target)
        .join("release/suaicloudapp");
    assert!(
        path.is_file(),
        "{} is missing: run `make {make_target}` first; `make test` does",
        path.display()
    );
    path
}

/// The binary under test with the tests' sandboxed environment (see [`sandboxed`]); add the
/// working directory, arguments and any variable a test needs (a later `env` wins).
pub fn app_command() -> Command {
    sandboxed(Command::new(&*BIN))
}

/// `cmd` with an emptied environment but for `PATH`, instance metadata off, dummy AWS keys
/// and a region: whatever the developer's shell holds, the program under test never leaves
/// loopback nor reads real credentials. For the binary run through a wrapper (a chroot,
/// qemu) as well as for [`app_command`].
pub fn sandboxed(mut cmd: Command) -> Command {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1");
    cmd
}

/// Endpoints of the running test environment. Panics (never skips) when it is not up.
pub fn test_env() -> HashMap<String, String> {
    let path = Path::new(REPO).join(".test-env/env");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "the test environment is not up ({} missing): run `scripts/test-env.sh up` (make test does)",
            path.display()
        )
    });
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// One value from the test environment.
pub fn env_var(key: &str) -> String {
    test_env().remove(key).unwrap_or_else(|| {
        panic!("{key} missing from .test-env/env: re-run scripts/test-env.sh up")
    })
}

/// A fresh directory under target/ for one test's config and log file.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = target_tmp().join(format!(
        "{name}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ rand_u64()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_u64() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() as u128
}

/// A config whose server listens on an ephemeral loopback port.
pub fn server_section() -> String {
    "[server]\nhost = \"127.0.0.1\"\nport = 0\n".to_string()
}

/// The running binary.
pub struct App {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub stderr: Arc<Mutex<String>>,
}

impl App {
    /// Writes `config` to a scratch dir and starts `suaicloudapp` there with AWS pointed at
    /// nothing real (instance metadata off, dummy keys): tests never leave loopback.
    pub fn start(name: &str, config: &str) -> App {
        Self::start_with(name, config, &[])
    }

    /// As [`App::start`], with extra environment variables.
    pub fn start_with(name: &str, config: &str, envs: &[(&str, &str)]) -> App {
        Starting::spawn(name, Some(config), &[], envs).wait_listening(Duration::from_secs(20))
    }
    /// GET a path.
    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[])
    }

    /// Any method, with extra headers.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        http::request(self.addr, method, path, headers)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        signal(self.child.id(), "TERM");
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "suaicloudapp did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log file the app writes (`output.log` in its working directory).
    pub fn log_file(&self) -> String {
        std::fs::read_to_string(self.dir.join("output.log")).unwrap_or_default()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr satisfies `pred`: the log reaches stderr through its own writer
    /// thread, a moment after the request that caused it.
    pub fn wait_stderr(&self, limit: Duration, pred: impl Fn(&str) -> bool) {
        wait_captured(&self.stderr, limit, pred);
    }
}

/// Polls captured stderr until `pred` holds, or fails the test showing what was captured.
fn wait_captured(stderr: &Mutex<String>, limit: Duration, pred: impl Fn(&str) -> bool) {
    let ok = eventually(limit, || pred(&stderr.lock().unwrap()));
    assert!(ok, "stderr never matched: {}", stderr.lock().unwrap());
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary, spawned but perhaps not yet listening (an s3:// config may still be retrying).
pub struct Starting {
    child: Option<Child>,
    dir: PathBuf,
    stderr: Arc<Mutex<String>>,
    addr: std::sync::mpsc::Receiver<SocketAddr>,
}

impl Starting {
    /// Spawns the binary in a scratch dir (with `config` as ./config.toml when given), with
    /// extra arguments and environment. Instance metadata is off and AWS keys are dummies
    /// unless `envs` says otherwise: tests never leave loopback.
    pub fn spawn(
        name: &str,
        config: Option<&str>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Starting {
        Self::spawn_wrapped(&[], name, config, args, envs)
    }

    /// As [`Starting::spawn`], run through `wrapper` (for example `taskset -c 0`), which must
    /// exec the binary with the arguments that follow.
    pub fn spawn_wrapped(
        wrapper: &[&str],
        name: &str,
        config: Option<&str>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Starting {
        let bin = BIN.to_str().expect("the binary's path is UTF-8");
        let program: Vec<&str> = wrapper.iter().copied().chain([bin]).collect();
        Self::spawn_program(&program, name, config, args, envs)
    }

    /// As [`Starting::spawn`], with another command line in place of the binary under test:
    /// `program[0]` with the rest as its first arguments (for example
    /// `qemu-aarch64-static path/to/aarch64/suaicloudapp`).
    pub fn spawn_program(
        program: &[&str],
        name: &str,
        config: Option<&str>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Starting {
        let dir = scratch_dir(name);
        if let Some(config) = config {
            std::fs::write(dir.join("config.toml"), config).unwrap();
        }
        let (first, rest) = program.split_first().expect("a program to run");
        let mut cmd = sandboxed(Command::new(first));
        cmd.args(rest);
        cmd.current_dir(&dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Starting::watch(cmd.spawn().expect("spawn suaicloudapp"), dir)
    }

    /// Watches a started server whose stderr is piped (a chroot, an unpacked image): its lines
    /// are kept, and its `listening on ADDR` line is what [`Starting::wait_listening`] waits for.
    pub fn watch(mut child: Child, dir: PathBuf) -> Starting {
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let parsed = addr.split_whitespace().next().map(str::parse::<SocketAddr>);
                    if let (Some(t), Some(Ok(a))) = (tx.take(), parsed) {
                        let _ = t.send(a);
                    }
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Starting {
            child: Some(child),
            dir,
            stderr,
            addr: rx,
        }
    }

    /// Waits until stderr satisfies `pred` (for example: a retry was logged).
    pub fn wait_stderr(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> &Self {
        wait_captured(&self.stderr, limit, pred);
        self
    }

    /// Waits for the `listening on ADDR` line.
    pub fn wait_listening(mut self, limit: Duration) -> App {
        let mut child = self.child.take().unwrap();
        match self.addr.recv_timeout(limit) {
            Ok(addr) => App {
                child,
                addr,
                dir: self.dir.clone(),
                stderr: self.stderr.clone(),
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "suaicloudapp did not start: {}",
                    self.stderr.lock().unwrap()
                );
            }
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends a signal by name with kill(1): no unsafe code in tests.
pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid} failed");
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub elapsed: Duration,
}

impl Resp {
    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A probe page's failure, as every probe must give it: 503, the stage both in
/// `X-Probe-Stage` and as the body's `ERROR: <stage>: ` prefix, the check's duration in
/// `X-Probe-Duration-Ms`, one line an operator can read, and each of `words` in it as written.
pub fn assert_fails(r: &Resp, stage: &str, words: &[&str]) {
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("x-probe-stage"), Some(stage), "{r:?}");
    assert!(r.header("x-probe-duration-ms").is_some(), "{r:?}");
    let prefix = format!("ERROR: {stage}: ");
    assert!(r.body.starts_with(&prefix), "want {prefix:?}: {:?}", r.body);
    assert!(r.body.ends_with('\n'), "{:?}", r.body);
    assert_eq!(r.body.lines().count(), 1, "one line: {:?}", r.body);
    for w in words {
        assert!(r.body.contains(w), "want {w:?} in {:?}", r.body);
    }
}

/// A TCP listener that accepts connections and never answers: a hung server.
pub struct HungServer {
    pub port: u16,
    keep: Arc<Mutex<Vec<TcpStream>>>,
}

impl HungServer {
    /// Binds 127.0.0.1 on a free port; accepted sockets are held open, silent.
    pub fn start() -> HungServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let keep = Arc::new(Mutex::new(Vec::new()));
        let k = keep.clone();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                k.lock().unwrap().push(s);
            }
        });
        HungServer { port, keep }
    }

    /// How many connections it has accepted (and is holding silent).
    pub fn accepted(&self) -> usize {
        self.keep.lock().unwrap().len()
    }
}

/// A Python script serving on a free loopback port (its first argument, before `args`),
/// started and awaited until it accepts connections; killed on Drop. For the small servers
/// the tests need and the test environment does not run (fixed HTTP answers, a TLS proxy).
pub struct PythonServer {
    pub port: u16,
    child: Child,
}

impl PythonServer {
    pub fn start(script: &str, args: &[String]) -> PythonServer {
        let port = closed_port();
        let child = Command::new("python3")
            .args(["-c", script, &port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python3");
        await_listening(port, Duration::from_secs(10), "the Python server");
        PythonServer { port, child }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port with nothing listening (bound then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A host name that fails to resolve without any DNS traffic leaving the machine: a label
/// over 63 bytes is refused by the resolver library before any query is sent.
pub fn unresolvable_host() -> String {
    format!("{}.invalid", "x".repeat(70))
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`, failing the test
/// after `limit` with `what` named.
pub fn await_listening(port: u16, limit: Duration, what: &str) {
    assert!(
        eventually(limit, || TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "{what} did not listen on {port} within {limit:?}"
    );
}

/// Polls `f` until it returns true or `limit` passes; returns whether it did.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// How many connections the server on `port` (127.0.0.1) holds with its request read:
/// established sockets on the server's side whose receive queue is empty, from
/// /proc/net/tcp. A request sent by a client may still sit in the kernel (in the accept
/// queue, or unread on an accepted socket); only once this count covers it is the request
/// in flight inside the server.
pub fn server_sockets_read(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 4 && f[1] == local && f[3] == "01").then(|| f[4].to_string())
        })
        .filter(|queues| queues.ends_with(":00000000"))
        .count()
}

/// checkov (the pinned venv, scripts/checkov.lock) with one `framework` on a directory, offline:
/// its JSON report. Panics, with checkov's output, when it printed none.
pub fn checkov_report(framework: &str, dir: &std::path::Path) -> serde_json::Value {
    let out = Command::new(env_var("SUAI_TEST_CHECKOV"))
        .args(["--framework", framework, "--output", "json", "-d"])
        .arg(dir)
        .env("BC_SKIP_MAPPING", "TRUE")
        .output()
        .expect("run checkov: scripts/test-env.sh up installs it");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov printed no JSON ({e}):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
