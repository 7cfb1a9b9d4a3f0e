//! packer/suaicloudapp.pkr.hcl is valid, checked offline with the packer Debian ships (1.6.6;
//! scripts/build-static.sh installs it) in a network namespace of its own, so nothing can leave
//! the machine even if a check wanted to.
//!
//! Packer 1.6.6's built-in amazon-ebs builder predates two settings the template needs:
//! `imds_support` (AMI registration; amazon plugin 1.0.x / Packer 1.7+) and the
//! `metadata_options` block. It rejects both as unknown. So, with 1.6.6:
//!   1. the real template passes `packer validate -syntax-only`;
//!   2. a full `packer validate` of the real template fails with exactly those two complaints
//!      and nothing else;
//!   3. a copy with exactly those lines removed (their values pinned by this test) passes a full
//!      `packer validate`: variables, source AMI filter, builder settings and provisioner
//!      sources (the binary and the unit must exist) are all checked by packer itself.
//!
//! With a newer packer (the amazon plugin installed by `packer init packer/`) the directory gets a
//! full `packer validate` instead.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn packer_bin() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("packer"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "packer is not installed: run `make static` (scripts/build-static.sh installs \
                 Debian's packer), or `apt-get install packer`"
            )
        })
}

/// Runs packer with the checkpoint (update check) off, inside an empty network namespace when
/// the machine allows one (as root it does), so validation is provably offline.
fn packer(args: &[&str]) -> Output {
    let bin = packer_bin();
    let isolated = Command::new("unshare")
        .args(["--net", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = if isolated {
        let mut c = Command::new("unshare");
        c.arg("--net").arg(&bin);
        c
    } else {
        eprintln!("no network namespace available: relying on CHECKPOINT_DISABLE=1 alone");
        Command::new(&bin)
    };
    cmd.args(args)
        .current_dir(repo())
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .expect("run packer")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn version() -> String {
    let o = packer(&["version"]);
    assert!(o.status.success(), "packer version: {}", text(&o));
    text(&o).trim().to_string()
}

/// The file provisioners upload these: packer checks that they exist.
fn sources_exist() {
    let bin = repo().join("target/x86_64-unknown-linux-musl/release/suaicloudapp");
    assert!(
        bin.is_file(),
        "{} is missing: run `make static` first (`make test` does)",
        bin.display()
    );
    let unit = repo().join("systemd/suaicloudapp.service");
    assert!(unit.is_file(), "{} is missing", unit.display());
}

const TEMPLATE: &str = "packer/suaicloudapp.pkr.hcl";

/// The settings Packer 1.6.6 does not know, exactly as the template must carry them.
const IMDS_LINE: &str = "  imds_support = \"v2.0\"\n";
const METADATA_BLOCK: &str = "  metadata_options {
    http_endpoint               = \"enabled\"
    http_tokens                 = \"required\"
    http_put_response_hop_limit = 1
  }
";

#[test]
fn template_validates_offline() {
    sources_exist();
    let version = version();
    eprintln!("{version}");
    if !version.contains("v1.6.") {
        // A modern packer: both files together, plugin from `packer init packer/`.
        let o = packer(&["validate", "packer/"]);
        assert!(
            o.status.success(),
            "packer validate packer/ ({version}; run `packer init packer/` once): {}",
            text(&o)
        );
        return;
    }

    // 1. The real file's syntax.
    let o = packer(&["validate", "-syntax-only", TEMPLATE]);
    assert!(o.status.success(), "syntax: {}", text(&o));

    // 2. Full validation of the real file: only the two settings 1.6.6 cannot know.
    let o = packer(&["validate", TEMPLATE]);
    let out = text(&o);
    assert!(!o.status.success(), "1.6.6 accepted the template?\n{out}");
    assert!(
        out.contains("An argument named \"imds_support\" is not expected here")
            && out.contains("Blocks of type \"metadata_options\" are not expected here"),
        "{out}"
    );
    assert_eq!(
        out.matches("Error: ").count(),
        2,
        "any error beyond the two 1.7+ settings is a real one:\n{out}"
    );

    // 3. Everything else, fully: the template minus exactly those settings.
    let original = std::fs::read_to_string(repo().join(TEMPLATE)).unwrap();
    assert_eq!(
        original.matches(IMDS_LINE).count(),
        1,
        "imds_support = \"v2.0\" once"
    );
    assert_eq!(
        original.matches(METADATA_BLOCK).count(),
        1,
        "metadata_options: endpoint enabled, tokens required, hop limit 1"
    );
    let legacy = original.replace(IMDS_LINE, "").replace(METADATA_BLOCK, "");
    // The copy sits in a scratch tree shaped like the repo (packer/, systemd/, target/...), run
    // from the real repo root: the template's relative defaults must resolve from its own
    // directory (path.root), not from the working directory.
    let tree = common::scratch_dir("packer-1.6.6");
    let bin_rel = "target/x86_64-unknown-linux-musl/release/suaicloudapp";
    let unit_rel = "systemd/suaicloudapp.service";
    for rel in [bin_rel, unit_rel] {
        let to = tree.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(repo().join(rel), &to).unwrap();
    }
    std::fs::create_dir_all(tree.join("packer")).unwrap();
    let copy = tree.join("packer/suaicloudapp.pkr.hcl");
    std::fs::write(&copy, legacy).unwrap();
    let o = packer(&["validate", copy.to_str().unwrap()]);
    assert!(o.status.success(), "full validation: {}", text(&o));

    // And a missing binary is caught by that validation (the check is real).
    std::fs::remove_file(tree.join(bin_rel)).unwrap();
    let o = packer(&["validate", copy.to_str().unwrap()]);
    assert!(
        !o.status.success() && text(&o).contains("Bad source"),
        "a missing binary must fail validation: {}",
        text(&o)
    );
}

#[test]
fn plugins_file_is_separate_because_1_6_6_rejects_it() {
    let plugins = std::fs::read_to_string(repo().join("packer/plugins.pkr.hcl")).unwrap();
    assert!(
        plugins.contains("required_plugins") && plugins.contains("github.com/hashicorp/amazon"),
        "{plugins}"
    );
    let template = std::fs::read_to_string(repo().join(TEMPLATE)).unwrap();
    assert!(
        !template.contains("required_plugins"),
        "the template must stay loadable by 1.6.6"
    );
    if version().contains("v1.6.") {
        let o = packer(&["validate", "-syntax-only", "packer/plugins.pkr.hcl"]);
        assert!(!o.status.success());
        assert!(
            text(&o).contains("Blocks of type \"required_plugins\" are not expected here"),
            "{}",
            text(&o)
        );
    }
}
