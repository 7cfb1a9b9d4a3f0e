//! The Graviton build (aarch64-unknown-linux-musl) is tested, not only built: on this x86_64
//! machine it runs under `qemu-aarch64-static` (user-mode emulation), prints its version, serves
//! `/health`, and its MySQL, Redis and S3 probes answer `OK` against the test backends.
//!
//! Built by `make static-aarch64` (scripts/build-static.sh aarch64-unknown-linux-musl), which
//! `make test` runs first and which installs qemu-user-static. The binary is never built here
//! (a release cross build takes many minutes): a missing one fails loudly.

use harness::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const TARGET: &str = "aarch64-unknown-linux-musl";
const QEMU: &str = "qemu-aarch64-static";
/// ELF e_machine of AArch64.
const EM_AARCH64: u16 = 183;

fn aarch64_bin() -> PathBuf {
    release_bin(TARGET, "static-aarch64")
}

/// (e_machine, has a PT_INTERP program header) of a 64-bit little-endian ELF file.
fn elf_machine_and_interp(elf: &[u8]) -> (u16, bool) {
    assert!(elf.len() > 64 && &elf[..4] == b"\x7fELF", "not an ELF file");
    assert_eq!((elf[4], elf[5]), (2, 1), "not a 64-bit little-endian ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36) as usize, u16_at(0x38) as usize);
    let interp = (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    });
    (u16_at(0x12), interp)
}

#[test]
fn aarch64_binary_is_static_and_prints_its_version_under_qemu() {
    let bin = aarch64_bin();
    let elf = std::fs::read(&bin).unwrap();
    let (machine, interp) = elf_machine_and_interp(&elf);
    assert_eq!(
        machine,
        EM_AARCH64,
        "{} is not an AArch64 ELF",
        bin.display()
    );
    assert!(
        !interp,
        "{} needs a dynamic loader (PT_INTERP)",
        bin.display()
    );

    let started = Instant::now();
    let out = sandboxed(Command::new(QEMU))
        .arg(&bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("{QEMU}: {e}: run `make static-aarch64` (installs qemu-user-static)")
        });
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "--version under qemu: {out:?}");
    assert_eq!(
        said.trim(),
        format!("suaicloudapp {}", env!("CARGO_PKG_VERSION")),
        "--version"
    );
    eprintln!(
        "{}: {} bytes; `{QEMU} ... --version` took {took:?}",
        bin.display(),
        elf.len()
    );
}

#[test]
fn aarch64_binary_serves_and_probes_the_test_backends_under_qemu() {
    let bin = aarch64_bin();
    let config = format!(
        "{server}\
         [probes]\ntimeout_ms = 10000\n\
         [database]\nhost = \"127.0.0.1\"\nport = {db_port}\nuser = \"{db_user}\"\n\
         password = \"{db_pw}\"\ndbname = \"{db}\"\n\
         [redis]\nhost = \"127.0.0.1\"\nport = {redis_port}\n\
         [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{moto}\"\n\
         [s3]\nbucket = \"{bucket}\"\n",
        server = server_section(),
        db_port = env_var("SUAI_TEST_MYSQL_PORT"),
        db_user = env_var("SUAI_TEST_MYSQL_USER"),
        db_pw = env_var("SUAI_TEST_MYSQL_PASSWORD"),
        db = env_var("SUAI_TEST_MYSQL_DB"),
        redis_port = env_var("SUAI_TEST_REDIS_PORT"),
        moto = env_var("SUAI_TEST_MOTO_URL"),
        bucket = env_var("SUAI_TEST_BUCKET"),
    );
    let bin = bin.to_str().unwrap().to_string();
    let started = Instant::now();
    let mut app = Starting::spawn_program(&[QEMU, &bin], "aarch64-qemu", Some(&config), &[], &[])
        .wait_listening(Duration::from_secs(60));
    let listening = started.elapsed();

    let mut timings = vec![format!("start to listening {listening:?}")];
    for (page, want) in [
        ("/health", "healthy"),
        ("/database", "OK"),
        ("/redis", "OK"),
        ("/s3", "OK"),
    ] {
        let r = app.get(page);
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, want),
            "{page} from the aarch64 binary: {r:?}\nstderr: {}",
            app.stderr()
        );
        timings.push(format!("{page} {:?}", r.elapsed));
    }
    // Cached or not, a second /health is the steady state under emulation.
    let r = app.get("/health");
    assert_eq!(r.status, 200);
    timings.push(format!("/health again {:?}", r.elapsed));

    app.terminate();
    let status = app.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "SIGTERM: {}", app.stderr());
    eprintln!("aarch64 under qemu: {}", timings.join(", "));
}
