//! Release artifacts and the release workflow:
//! - scripts/dist.sh (`make dist`) packages both static binaries under versioned names with a
//!   SHA256SUMS (listing this version's OCI images too) that `sha256sum -c` accepts (and that
//!   catches a changed byte); run here with
//!   `--no-build` on the binaries `make test` built first (`static`, `static-aarch64`);
//! - .github/workflows/release.yml passes actionlint (with shellcheck on its `run:` scripts), and
//!   actionlint does reject a planted mistake; its steps are the make targets a person runs;
//! - the pins: the test venv holds exactly scripts/requirements.lock (and a drift is named), every
//!   lock line carries a hash, and the toolchain that built these tests is rust-toolchain.toml's.

use harness::userdata::{repo, text};
use harness::*;
use std::process::Command;
use std::time::Instant;

const WORKFLOW: &str = ".github/workflows/release.yml";

/// ELF e_machine of a file (62: x86-64, 183: AArch64).
fn elf_machine(bytes: &[u8]) -> u16 {
    assert!(
        bytes.len() > 64 && &bytes[..4] == b"\x7fELF",
        "not an ELF file"
    );
    u16::from_le_bytes([bytes[0x12], bytes[0x13]])
}

#[test]
fn dist_packages_both_binaries_with_a_checking_sha256sums() {
    let started = Instant::now();
    let version = env!("CARGO_PKG_VERSION");
    let out = scratch_dir("dist");
    // A binary of an older release in the directory is removed (SHA256SUMS lists what is there).
    let stale = out.join("suaicloudapp-0.0.1-x86_64-unknown-linux-musl");
    std::fs::write(&stale, "old").unwrap();
    // This version's OCI image (`make image` runs first in the release workflow) is listed too,
    // so the signed SHA256SUMS covers it; an older version's image is not.
    let image = format!("suaicloudapp-{version}-x86_64.oci.tar");
    std::fs::write(out.join(&image), "image").unwrap();
    std::fs::write(out.join("suaicloudapp-0.0.1-x86_64.oci.tar"), "old image").unwrap();
    let run = Command::new(repo("scripts/dist.sh"))
        .args(["--no-build", "--out"])
        .arg(&out)
        .output()
        .expect("run scripts/dist.sh");
    assert!(
        run.status.success(),
        "scripts/dist.sh --no-build (run `make static static-aarch64` first; `make test` does): {}",
        text(&run.stderr)
    );
    assert!(
        !stale.exists(),
        "an older release's binary was left in dist/"
    );

    let names = [
        (
            format!("suaicloudapp-{version}-x86_64-unknown-linux-musl"),
            62,
        ),
        (
            format!("suaicloudapp-{version}-aarch64-unknown-linux-musl"),
            183,
        ),
    ];
    let mut listing: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    listing.sort();
    let mut want: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
    want.push("SHA256SUMS".into());
    want.push(image.clone());
    want.push("suaicloudapp-0.0.1-x86_64.oci.tar".into());
    want.sort();
    assert_eq!(listing, want);

    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let lines: Vec<&str> = sums.lines().collect();
    assert_eq!(lines.len(), 3, "{sums}");
    assert!(
        lines[2].ends_with(&format!("  {image}")),
        "the image is listed last: {sums}"
    );
    for ((name, machine), line) in names.iter().zip(&lines) {
        let (digest, file) = line.split_once("  ").expect("`<digest>  <name>` lines");
        assert_eq!(file, name, "relative names: {sums}");
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{line}"
        );
        let bytes = std::fs::read(out.join(name)).unwrap();
        assert_eq!(elf_machine(&bytes), *machine, "{name}");
        eprintln!("{name}: {} bytes", bytes.len());
    }
    let check = |what: &str| {
        Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&out)
            .output()
            .unwrap_or_else(|e| panic!("sha256sum ({what}): {e}"))
    };
    let ok = check("as written");
    assert!(ok.status.success(), "{}", text(&ok.stdout));

    // The control: one changed byte and `sha256sum -c` says which file failed.
    let victim = out.join(&names[1].0);
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let bad = check("after a change");
    assert!(
        !bad.status.success() && text(&bad.stdout).contains(&format!("{}: FAILED", names[1].0)),
        "{}",
        text(&bad.stdout)
    );
    eprintln!("dist packaging and checks: {:?}", started.elapsed());
}

fn actionlint(file: &std::path::Path) -> (bool, String) {
    let moto = std::path::PathBuf::from(env_var("SUAI_TEST_MOTO_SERVER"));
    let bin = moto.parent().unwrap().join("actionlint");
    assert!(
        bin.is_file(),
        "{} missing: run scripts/test-env.sh up (installs actionlint into the moto venv)",
        bin.display()
    );
    let shellcheck = ["/usr/bin/shellcheck", "/bin/shellcheck"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("shellcheck (Debian) for actionlint's run: checks");
    let out = Command::new(bin)
        .args(["-no-color", "-shellcheck", shellcheck])
        .arg(file)
        .output()
        .expect("run actionlint");
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

#[test]
fn release_workflow_passes_actionlint_and_runs_the_make_targets() {
    let started = Instant::now();
    let (ok, said) = actionlint(&repo(WORKFLOW));
    assert!(
        ok && said.trim().is_empty(),
        "actionlint {WORKFLOW}:\n{said}"
    );

    let workflow = std::fs::read_to_string(repo(WORKFLOW)).unwrap();
    for want in [
        "tags: [\"v*\"]",
        "run: make dist\n",
        "run: make test\n",
        "make image",
        "dist/SHA256SUMS",
        "dist/*.oci.tar",
        "gh release create",
    ] {
        assert!(workflow.contains(want), "{WORKFLOW} lacks {want:?}");
    }
    assert!(
        !workflow.contains("cargo build") && !workflow.contains("build-static.sh"),
        "the workflow builds through the make targets only"
    );

    // The control: an expression naming a context that does not exist is caught.
    let broken = scratch_dir("actionlint").join("release.yml");
    std::fs::write(
        &broken,
        workflow.replace("${{ github.token }}", "${{ github.tokn }}"),
    )
    .unwrap();
    let (ok, said) = actionlint(&broken);
    assert!(
        !ok && said.contains("tokn"),
        "actionlint missed it:\n{said}"
    );
    eprintln!("actionlint, twice: {:?}", started.elapsed());
}

#[test]
fn the_test_venv_holds_exactly_the_lock_and_a_drift_is_named() {
    let lock = repo("scripts/requirements.lock");
    let check = |lock: &std::path::Path| {
        Command::new(harness::moto::venv_python())
            .arg(repo("scripts/check_lock.py"))
            .arg(lock)
            .output()
            .expect("run scripts/check_lock.py with the venv's python")
    };
    let out = check(&lock);
    assert!(
        out.status.success(),
        "the venv differs from the lock (scripts/test-env.sh up rebuilds it): {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The same check against a lock whose moto pin moved names that package and fails.
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(
        text.contains("\nmoto==5.2.5 \\\n"),
        "moto is pinned at 5.2.5"
    );
    let moved = scratch_dir("lock-drift").join("requirements.lock");
    std::fs::write(&moved, text.replace("\nmoto==5.2.5 ", "\nmoto==5.2.6 ")).unwrap();
    let out = check(&moved);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "moto: locked 5.2.6, installed 5.2.5\n"
    );
}

#[test]
fn every_locked_package_has_a_hash_and_the_toolchain_is_the_pinned_one() {
    for lock in ["scripts/requirements.lock", "scripts/deps-tools.lock"] {
        let text = std::fs::read_to_string(repo(lock)).unwrap();
        let pins = text.lines().filter(|l| l.contains("==")).count();
        // A pin's hash lines follow it: "name==version \" then "    --hash=sha256:...".
        let mut lines = text.lines().peekable();
        let mut hashed = 0;
        while let Some(line) = lines.next() {
            if line.contains("==") {
                assert!(line.ends_with(" \\"), "{lock}: {line} has no hash");
                if lines
                    .peek()
                    .is_some_and(|n| n.trim_start().starts_with("--hash=sha256:"))
                {
                    hashed += 1;
                }
            }
        }
        assert!(pins > 0, "{lock} pins nothing");
        assert_eq!(hashed, pins, "{lock}: every pin has its hashes");
    }
    let toolchain = std::fs::read_to_string(repo("rust-toolchain.toml")).unwrap();
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("a channel in rust-toolchain.toml");
    let rustc = Command::new("rustc")
        .arg("--version")
        .current_dir(repo("."))
        .output()
        .expect("rustc --version");
    let version = String::from_utf8_lossy(&rustc.stdout);
    assert!(
        version.starts_with(&format!("rustc {channel} ")),
        "{version}"
    );
    for needed in [
        "rustfmt",
        "clippy",
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-musl",
    ] {
        assert!(toolchain.contains(&format!("\"{needed}\"")), "{needed}");
    }
}

/// The README's "Layout, in layers" is what the code's imports say: `scripts/layers.py` finds
/// no import circle in src/, and each layer it computes is listed, in order, in the README.
#[test]
fn the_import_layers_have_no_circle_and_match_the_readme() {
    let out = Command::new("python3")
        .arg(repo("scripts/layers.py"))
        .output()
        .expect("run scripts/layers.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let section = &readme[readme
        .find("- Layout, in layers")
        .expect("the layout section")..];
    let section = &section[..section.find("\n\n").unwrap_or(section.len())];
    let mut at = 0;
    for line in stdout.lines().filter_map(|l| l.strip_prefix("layer ")) {
        let (n, modules) = line.split_once(": ").unwrap();
        let item = format!("  {n}. ");
        let start = section[at..]
            .find(&item)
            .map(|i| at + i)
            .unwrap_or_else(|| panic!("README lists no layer {n}: {section}"));
        let end = section[start + item.len()..]
            .find("\n  ")
            .and_then(|_| {
                let next = format!("  {}. ", n.parse::<usize>().unwrap() + 1);
                section[start..].find(&next).map(|i| start + i)
            })
            .unwrap_or(section.len());
        let listed = &section[start..end];
        for m in modules.split(", ") {
            assert!(
                listed.contains(&format!("`src/{m}.rs`")) || listed.contains(&format!("`src/{m}/")),
                "README's layer {n} does not list {m}: {listed}"
            );
        }
        at = start;
    }
}
