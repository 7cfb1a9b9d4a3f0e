//! The OCI image `make image` writes (dist/suaicloudapp-<version>-x86_64.oci.tar): unpacked
//! with tar, its layout and digests checked, its config read (entrypoint, numeric non-root user,
//! port 8080, no shell in any layer), then its root file system run as the image config says
//! (chroot, user, working directory, environment) against the shared MariaDB and Redis.
//!
//! The archive is never built here (it needs the static release build): a missing one fails
//! loudly, saying to run `make image` (`make test` does).

use harness::{env_var, scratch_dir, Starting};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn archive() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "dist/suaicloudapp-{}-x86_64.oci.tar",
        env!("CARGO_PKG_VERSION")
    ));
    assert!(
        path.is_file(),
        "{} is missing: run `make image` first; `make test` does",
        path.display()
    );
    path
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tar(args: &[&str]) -> String {
    let out = Command::new("tar").args(args).output().expect("tar");
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The unpacked layout: its config and the paths to its layer blobs.
struct Image {
    config: Value,
    layers: Vec<PathBuf>,
}

/// Reads a blob named by a descriptor and checks its digest and size.
fn blob(layout: &Path, desc: &Value) -> (PathBuf, Vec<u8>) {
    let digest = desc["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let path = layout.join("blobs/sha256").join(hex);
    let data = std::fs::read(&path).unwrap();
    assert_eq!(sha256_hex(&data), hex, "digest of {}", path.display());
    assert_eq!(desc["size"].as_u64(), Some(data.len() as u64));
    (path, data)
}

fn unpack_layout(dir: &Path) -> Image {
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    tar(&[
        "-xf",
        archive().to_str().unwrap(),
        "-C",
        layout.to_str().unwrap(),
    ]);
    let oci_layout: Value =
        serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["platform"]["architecture"], "amd64");
    let (_, manifest) = blob(&layout, &manifests[0]);
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    let (_, config) = blob(&layout, &manifest["config"]);
    let config: Value = serde_json::from_slice(&config).unwrap();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(
                l["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+gzip"
            );
            blob(&layout, l).0
        })
        .collect();
    Image { config, layers }
}

#[test]
fn config_is_scratch_non_root_with_the_binary_as_entrypoint() {
    let dir = scratch_dir("image-config");
    let image = unpack_layout(&dir);
    let c = &image.config["config"];
    assert_eq!(image.config["os"], "linux");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/suaicloudapp"]));
    let user = c["User"].as_str().unwrap();
    let (uid, gid) = user.split_once(':').expect("uid:gid");
    let (uid, gid): (u32, u32) = (uid.parse().unwrap(), gid.parse().unwrap());
    assert!(uid != 0 && gid != 0, "runs as root: {user}");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some(), "{c}");
    assert_eq!(image.layers.len(), 1);

    let mut files: Vec<String> = Vec::new();
    for layer in &image.layers {
        let listing = tar(&["-tzf", layer.to_str().unwrap()]);
        files.extend(listing.lines().map(|l| l.trim_end_matches('/').to_string()));
    }
    files.sort();
    eprintln!("image files: {files:?}");
    assert_eq!(
        files,
        [
            "etc",
            "etc/hosts",
            "etc/ssl",
            "etc/ssl/certs",
            "etc/ssl/certs/ca-certificates.crt",
            "suaicloudapp",
            "var",
            "var/lib",
            "var/lib/suaicloudapp",
        ]
    );
    assert!(
        !files
            .iter()
            .any(|f| f.ends_with("/sh") || f.starts_with("bin")),
        "a shell in the image: {files:?}"
    );
    eprintln!(
        "archive size: {} bytes",
        std::fs::metadata(archive()).unwrap().len()
    );
}

/// Starts the image's entrypoint the way a container runtime would: chroot into the root,
/// working directory, numeric user and environment from the image config, extra arguments
/// after the entrypoint. A Python launcher does the chroot/setuid/exec (no unsafe in tests).
const LAUNCH: &str = r#"
import json, os, sys
root, config = sys.argv[1], json.load(open(sys.argv[2]))["config"]
env = dict(e.split("=", 1) for e in config.get("Env", []))
env.update(json.loads(sys.argv[3]))
uid, gid = (int(x) for x in config["User"].split(":"))
os.chroot(root)
os.chdir(config["WorkingDir"])
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
argv = config["Entrypoint"] + sys.argv[4:]
os.execve(argv[0], argv, env)
"#;

fn runtime(root: &Path, config: &Path, extra_env: &Value, args: &[&str]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", LAUNCH])
        .arg(root)
        .arg(config)
        .arg(extra_env.to_string())
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn the_unpacked_image_serves_the_backends_as_its_user() {
    let dir = scratch_dir("image-run");
    let image = unpack_layout(&dir);
    let root = dir.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    for layer in &image.layers {
        // As root, tar keeps the layer's owners (the working directory belongs to the user).
        tar(&[
            "--same-owner",
            "-xzf",
            layer.to_str().unwrap(),
            "-C",
            root.to_str().unwrap(),
        ]);
    }
    let config_json = dir.join("config.json");
    std::fs::write(&config_json, image.config.to_string()).unwrap();
    let workdir = image.config["config"]["WorkingDir"].as_str().unwrap();
    let app_config = format!(
        "[server]\nhost = \"127.0.0.1\"\nport = 0\n\
         [database]\nhost = \"localhost\"\nport = {}\nuser = \"{}\"\npassword = \"{}\"\ndbname = \"{}\"\n\
         [redis]\nhost = \"localhost\"\nport = {}\n",
        env_var("SUAI_TEST_MYSQL_PORT"),
        env_var("SUAI_TEST_MYSQL_USER"),
        env_var("SUAI_TEST_MYSQL_PASSWORD"),
        env_var("SUAI_TEST_MYSQL_DB"),
        env_var("SUAI_TEST_REDIS_PORT"),
    );
    // The config is handed to the container as a mounted file would be: readable, not owned.
    std::fs::write(
        root.join(workdir.trim_start_matches('/'))
            .join("config.toml"),
        app_config,
    )
    .unwrap();
    let env = serde_json::json!({
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    });
    let child = runtime(&root, &config_json, &env, &["serve"])
        .spawn()
        .expect("spawn the image");
    let dir = root.join(workdir.trim_start_matches('/'));
    let app = Starting::watch(child, dir).wait_listening(Duration::from_secs(20));
    assert_eq!(app.get("/health").status, 200);
    for page in ["/database", "/redis"] {
        let r = app.get(page);
        assert_eq!((r.status, r.body.as_str()), (200, "OK"), "{page}");
    }
    // The log file lands in the working directory, written as the image's user.
    assert!(harness::eventually(Duration::from_secs(5), || app
        .log_file()
        .contains("/database")));
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(app.dir.join("output.log")).unwrap(),
    );
    assert_eq!(owner, 65532);

    // The health command works inside the image (no curl, no shell there).
    let status = runtime(
        &root,
        &config_json,
        &serde_json::json!({}),
        &[
            "healthcheck",
            "--url",
            &format!("http://{}/health", app.addr),
        ],
    )
    .status()
    .unwrap();
    assert!(status.success(), "healthcheck in the image: {status:?}");
}

#[test]
fn the_archive_is_reproducible() {
    let dir = scratch_dir("image-repro");
    // The script's behaviour, not the binary's size, is under test: a small stand-in file.
    let bin = dir.join("bin");
    std::fs::write(&bin, b"\x7fELF not really a binary").unwrap();
    let build = |out: &str, epoch: &str| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oci_image.py");
        let ok = Command::new("python3")
            .arg(script)
            .args(["--binary", bin.to_str().unwrap(), "--arch", "x86_64"])
            .args([
                "--version",
                "9.9.9",
                "--out",
                dir.join(out).to_str().unwrap(),
            ])
            .env("SOURCE_DATE_EPOCH", epoch)
            .status()
            .unwrap()
            .success();
        assert!(ok, "oci_image.py failed");
        std::fs::read(dir.join(out)).unwrap()
    };
    let a = build("a.tar", "1700000000");
    let b = build("b.tar", "1700000000");
    assert!(a == b, "two builds from the same inputs differ");
    let c = build("c.tar", "1700000001");
    assert!(a != c, "SOURCE_DATE_EPOCH is not used");
}
