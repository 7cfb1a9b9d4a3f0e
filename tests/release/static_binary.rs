//! The static (musl) release binary that the AMI and user-data ship: it is static, and it starts,
//! serves and fails clearly inside an EMPTY root (`chroot` holding only the binary, its config and
//! /etc/hosts): no libc, no CA bundle, no /proc, nothing else.
//!
//! Built by `make static` (scripts/build-static.sh); `make test` runs that first. The binary is
//! never built here (a release musl build takes minutes): a missing one fails loudly.

use harness::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TARGET: &str = "x86_64-unknown-linux-musl";

/// Probe budget in the chrooted configs: every failing page must answer within this + 0.5 s.
const BUDGET_MS: u64 = 2000;

/// The static binary, or a failure that says how to build it.
fn static_bin() -> PathBuf {
    let path = release_bin(TARGET, "static");
    warn_if_stale(&path);
    path
}

/// A binary older than the sources tests old code: say so (not fatal, `make test` rebuilds it).
fn warn_if_stale(bin: &Path) {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newer = Vec::new();
    let mut stack = vec![root.join("src")];
    for f in ["Cargo.toml", "Cargo.lock"] {
        stack.push(root.join(f));
    }
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                stack.push(e.path());
            }
        } else if let Ok(m) = std::fs::metadata(&p).and_then(|m| m.modified()) {
            if m > built {
                newer.push(p.strip_prefix(root).unwrap_or(&p).display().to_string());
            }
        }
    }
    if !newer.is_empty() {
        eprintln!(
            "WARNING: {} is older than {}: run `make static` to test the current code",
            bin.display(),
            newer.join(", ")
        );
    }
}

/// chroot(8): usually /usr/sbin/chroot, which a non-login PATH may lack.
fn chroot_cmd() -> PathBuf {
    ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("chroot(8) not found (Debian: coreutils)")
}

/// An empty root: the binary as /suaicloudapp, /config.toml and /etc/hosts, nothing else.
struct Root {
    dir: PathBuf,
}

impl Root {
    fn new(name: &str, config: &str) -> Root {
        let dir = scratch_dir(name);
        let bin = dir.join("suaicloudapp");
        // A hard link, not a copy: a copy holds a write descriptor, and a process another
        // test forks in that moment inherits it, so exec fails with ETXTBSY ("Text file
        // busy"). Copy only when the link cannot be made (another file system).
        let src = static_bin();
        if std::fs::hard_link(&src, &bin).is_err() {
            std::fs::copy(&src, &bin).unwrap();
        }
        std::fs::create_dir(dir.join("etc")).unwrap();
        // musl resolves names only through /etc/hosts (and nothing here asks DNS for anything).
        std::fs::write(
            dir.join("etc/hosts"),
            "127.0.0.1 localhost\n::1 localhost\n",
        )
        .unwrap();
        std::fs::write(dir.join("config.toml"), config).unwrap();
        Root { dir }
    }

    /// Every path in the root, relative, sorted (to show it is really empty).
    fn listing(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                let path = e.path();
                out.push(path.strip_prefix(&self.dir).unwrap().display().to_string());
                if path.is_dir() {
                    stack.push(path);
                }
            }
        }
        out.sort();
        out
    }

    /// `chroot ROOT /suaicloudapp --config /config.toml`, with a clean environment (AWS keys
    /// are dummies, instance metadata off: nothing leaves loopback).
    fn command(&self) -> Command {
        let mut cmd = sandboxed(Command::new(chroot_cmd()));
        cmd.arg(&self.dir)
            .args(["/suaicloudapp", "--config", "/config.toml"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts the server and waits for its `listening on ADDR` line (port 0 in the config).
    fn start(&self) -> App {
        let started = Instant::now();
        // chroot(8) execs the binary: the child's pid is the server's (signals reach it).
        let child = self.command().spawn().expect("spawn chroot");
        let app = Starting::watch(child, self.dir.clone()).wait_listening(Duration::from_secs(20));
        eprintln!(
            "chrooted server listening on {} after {:?}",
            app.addr,
            started.elapsed()
        );
        app
    }
}

/// Reads the ELF program headers: true when there is a PT_INTERP (a dynamic loader is needed).
fn has_interpreter(elf: &[u8]) -> bool {
    assert!(elf.len() > 64 && &elf[..4] == b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF");
    assert_eq!(elf[5], 1, "not little-endian");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

#[test]
fn release_binary_is_static() {
    let bin = static_bin();
    let elf = std::fs::read(&bin).unwrap();
    assert!(
        !has_interpreter(&elf),
        "{} has a PT_INTERP header: it needs a dynamic loader (not a static build)",
        bin.display()
    );
    let ldd = Command::new("ldd").arg(&bin).output().expect("run ldd");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&ldd.stdout),
        String::from_utf8_lossy(&ldd.stderr)
    );
    assert!(
        said.contains("not a dynamic executable") || said.contains("statically linked"),
        "ldd lists dependencies: {said}"
    );
    let bytes = elf.len();
    eprintln!(
        "{}: static ({}), {bytes} bytes ({:.1} MB, {:.1} MiB)",
        bin.display(),
        said.trim(),
        bytes as f64 / 1e6,
        bytes as f64 / 1048576.0
    );
}

#[test]
fn serves_inside_an_empty_root() {
    let root = Root::new("static-empty-root", &server_section());
    let mut app = root.start();
    let r = app.get("/health");
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));
    // The log file lands in the root (chroot's working directory is its /).
    assert!(
        eventually(Duration::from_secs(5), || app
            .log_file()
            .contains("path=/health status=200")),
        "output.log inside the root: {:?}; stderr: {}",
        app.log_file(),
        app.stderr()
    );
    app.terminate();
    let status = app.wait(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "SIGTERM: {}", app.stderr());
    assert!(app.stderr().contains("SIGTERM"), "{}", app.stderr());
    // Nothing but what we put there, and the log.
    assert_eq!(
        root.listing(),
        [
            "config.toml",
            "etc",
            "etc/hosts",
            "output.log",
            "suaicloudapp"
        ]
    );
}

/// One failure page: 503 within the budget (+0.5 s), one `ERROR: <stage>: ...` line.
fn failure_line(app: &App, page: &str, stage: &str) -> String {
    let r = app.get(page);
    let limit = Duration::from_millis(BUDGET_MS + 500);
    assert!(
        r.elapsed < limit,
        "{page} took {:?} (limit {limit:?}): {}",
        r.elapsed,
        r.body
    );
    assert_eq!(r.status, 503, "{page}: {}", r.body);
    let line = r.body.trim_end().to_string();
    assert!(!line.contains('\n'), "{page}: more than one line: {line}");
    assert!(
        line.starts_with(&format!("ERROR: {stage}: ")),
        "{page}: expected stage {stage}: {line}"
    );
    assert_eq!(r.header("x-probe-stage"), Some(stage), "{page}");
    eprintln!("{page} ({:?}): {line}", r.elapsed);
    line
}

/// After the failures the process is alive and /health still answers.
fn still_up(app: &mut App) {
    assert!(
        app.child.try_wait().unwrap().is_none(),
        "the server died: {}",
        app.stderr()
    );
    let r = app.get("/health");
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));
    assert!(
        !app.stderr().contains("panicked"),
        "a panic was logged: {}",
        app.stderr()
    );
}

#[test]
fn tls_without_a_ca_bundle_fails_clearly() {
    let tls_port = env_var("SUAI_TEST_REDIS_TLS_PORT");
    let mysql_tls_port = env_var("SUAI_TEST_MYSQL_TLS_PORT");
    let closed = closed_port();
    let config = format!(
        "{server}\
         [probes]\ntimeout_ms = {BUDGET_MS}\ncache_ms = 0\n\
         [redis]\nhost = \"127.0.0.1\"\nport = {tls_port}\ntls = true\n\
         [aws]\nregion = \"us-east-1\"\nendpoint_url = \"https://127.0.0.1:{closed}\"\n\
         [s3]\nbucket = \"x\"\n\
         [database]\nhost = \"127.0.0.1\"\nport = {mysql_tls_port}\nuser = \"probe\"\n\
         dbname = \"suai\"\ntls = \"verify-identity\"\n",
        server = server_section()
    );
    let root = Root::new("static-no-ca", &config);
    let mut app = root.start();

    // Redis trusts the system bundle when [redis] ca_file is unset: there is none here.
    let redis = failure_line(&app, "/redis", "tls");
    assert!(
        redis.contains("no CA bundle") && redis.contains("ca_file"),
        "/redis must name the missing CA bundle: {redis}"
    );
    // Nothing listens on the S3 endpoint: refused before any TLS, said as such, at once.
    let s3 = failure_line(&app, "/s3", "connect");
    assert!(
        s3.contains(&format!("https://127.0.0.1:{closed}")) && s3.contains("refused"),
        "{s3}"
    );
    // MySQL's rustls client carries its own (Mozilla) roots: our test CA is not among them.
    let db = failure_line(&app, "/database", "tls");
    assert!(db.contains("ca_file"), "{db}");
    // cache_ms = 0: a second round makes fresh attempts, still quick, still one line.
    failure_line(&app, "/redis", "tls");
    failure_line(&app, "/s3", "connect");
    still_up(&mut app);
}

#[test]
fn aws_tls_without_a_ca_bundle_fails_clearly() {
    // The AWS endpoint is a real TLS server (the test Redis TLS port answers any handshake with
    // a certificate from the test CA): the SDK gets as far as verifying it, with no roots at all.
    let tls_port = env_var("SUAI_TEST_REDIS_TLS_PORT");
    let config = format!(
        "{server}\
         [probes]\ntimeout_ms = {BUDGET_MS}\ncache_ms = 0\n\
         [aws]\nregion = \"us-east-1\"\nendpoint_url = \"https://127.0.0.1:{tls_port}\"\n\
         [s3]\nbucket = \"x\"\n\
         [dynamodb]\ntable = \"t\"\n",
        server = server_section()
    );
    let root = Root::new("static-no-ca-aws", &config);
    let mut app = root.start();
    for page in ["/s3", "/dynamodb"] {
        let line = failure_line(&app, page, "tls");
        assert!(
            line.contains("CA bundle"),
            "{page} must point at the CA bundle: {line}"
        );
    }
    still_up(&mut app);
}

#[test]
fn tls_works_inside_the_root_with_the_ca_shipped_in_it() {
    // The positive control: the same empty root plus the CA as a file; [redis] ca_file and
    // [database] ca_file point at it, and both verified TLS connections succeed.
    let ca = std::fs::read(env_var("SUAI_TEST_TLS_CA")).unwrap();
    let config = format!(
        "{server}\
         [probes]\ntimeout_ms = {BUDGET_MS}\n\
         [redis]\nhost = \"127.0.0.1\"\nport = {redis}\ntls = true\nca_file = \"/ca.pem\"\n\
         [database]\nhost = \"127.0.0.1\"\nport = {db}\nuser = \"{user}\"\npassword = \"{pw}\"\n\
         dbname = \"{name}\"\ntls = \"verify-identity\"\nca_file = \"/ca.pem\"\n",
        server = server_section(),
        redis = env_var("SUAI_TEST_REDIS_TLS_PORT"),
        db = env_var("SUAI_TEST_MYSQL_TLS_PORT"),
        user = env_var("SUAI_TEST_MYSQL_USER"),
        pw = env_var("SUAI_TEST_MYSQL_PASSWORD"),
        name = env_var("SUAI_TEST_MYSQL_DB"),
    );
    let root = Root::new("static-with-ca", &config);
    std::fs::write(root.dir.join("ca.pem"), ca).unwrap();
    let app = root.start();
    for page in ["/redis", "/database"] {
        let r = app.get(page);
        assert_eq!((r.status, r.body.as_str()), (200, "OK"), "{page}");
    }
}

#[test]
fn redis_tls_with_a_system_bundle_that_lacks_the_ca_says_not_trusted() {
    // The contrast to the empty root: with a system CA bundle present (the host's, which does
    // not hold the test CA) the cause is the server's certificate, not a missing bundle.
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    assert!(
        bundle.is_file(),
        "{} missing: install Debian's ca-certificates",
        bundle.display()
    );
    let config = format!(
        "{server}\
         [probes]\ntimeout_ms = {BUDGET_MS}\n\
         [redis]\nhost = \"127.0.0.1\"\nport = {port}\ntls = true\n",
        server = server_section(),
        port = env_var("SUAI_TEST_REDIS_TLS_PORT"),
    );
    let root = Root::new("static-system-bundle", &config);
    std::fs::create_dir_all(root.dir.join("etc/ssl/certs")).unwrap();
    std::fs::copy(bundle, root.dir.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    let mut app = root.start();
    let line = failure_line(&app, "/redis", "tls");
    assert!(
        line.contains("not trusted") && line.contains("ca_file") && !line.contains("no CA bundle"),
        "{line}"
    );
    still_up(&mut app);
}

#[test]
fn bad_config_exits_2_inside_the_root() {
    let root = Root::new(
        "static-bad-config",
        "[server]\nhost = \"127.0.0.1\"\nhots = 1\n",
    );
    let mut child = root.command().spawn().expect("spawn chroot");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit on a bad config");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/config.toml:3:1:") && stderr.contains("hots"),
        "the message names file:line:column and the key: {stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}
