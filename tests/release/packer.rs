//! packer/suaicloudapp.pkr.hcl is valid for both architectures (`-var arch=x86_64|arm64`), checked offline with the packer Debian ships (1.6.6;
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

/// A scratch tree shaped like the repository for the template's relative defaults: Cargo.toml
/// (the version), systemd/ (the unit) and dist/ as `make dist` leaves it, packaged by
/// `scripts/dist.sh --no-build` from the static builds `make test` makes first.
fn release_tree() -> PathBuf {
    let tree = harness::scratch_dir("packer-tree");
    for rel in ["Cargo.toml", "systemd/suaicloudapp.service"] {
        let to = tree.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(repo().join(rel), &to).unwrap();
    }
    let o = Command::new(repo().join("scripts/dist.sh"))
        .args(["--no-build", "--out"])
        .arg(tree.join("dist"))
        .output()
        .expect("run scripts/dist.sh");
    assert!(
        o.status.success(),
        "scripts/dist.sh --no-build: run `make static static-aarch64` first (`make test` does): {}",
        text(&o)
    );
    std::fs::create_dir_all(tree.join("packer")).unwrap();
    tree
}

/// Both architectures the template takes.
const ARCHES: [&str; 2] = ["x86_64", "arm64"];

const TEMPLATE: &str = "packer/suaicloudapp.pkr.hcl";

/// A builder's address (TEST-NET-3) for the required `ssh_source_cidrs`.
const SSH_FROM: &str = "ssh_source_cidrs=[\"203.0.113.7/32\"]";

/// The settings Packer 1.6.6 does not know, exactly as the template must carry them.
const IMDS_LINE: &str = "  imds_support = \"v2.0\"\n";
const METADATA_BLOCK: &str = "  metadata_options {
    http_endpoint               = \"enabled\"
    http_tokens                 = \"required\"
    http_put_response_hop_limit = 1
  }
";

#[test]
fn template_validates_offline_for_both_arches() {
    let version = version();
    eprintln!("{version}");
    let tree = release_tree();
    if !version.contains("v1.6.") {
        // A modern packer: both files together, plugin from `packer init packer/`; the template
        // and plugins file copied into the release tree, so the defaults find dist/.
        for f in ["suaicloudapp.pkr.hcl", "plugins.pkr.hcl"] {
            std::fs::copy(repo().join("packer").join(f), tree.join("packer").join(f)).unwrap();
        }
        for arch in ARCHES {
            let dir = tree.join("packer");
            let o = packer(&[
                "validate",
                "-var",
                &format!("arch={arch}"),
                "-var",
                SSH_FROM,
                dir.to_str().unwrap(),
            ]);
            assert!(
                o.status.success(),
                "packer validate -var arch={arch} ({version}; run `packer init packer/` once): {}",
                text(&o)
            );
        }
        return;
    }

    // 1. The real file's syntax.
    let o = packer(&["validate", "-syntax-only", TEMPLATE]);
    assert!(o.status.success(), "syntax: {}", text(&o));

    // 2. Full validation of the real file: only the two settings 1.6.6 cannot know.
    let o = packer(&["validate", "-var", SSH_FROM, TEMPLATE]);
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
    // The copy sits in the release tree (packer/, systemd/, dist/, Cargo.toml), run from the
    // real repo root: the template's relative defaults must resolve from its own directory
    // (path.root), not from the working directory.
    let copy = tree.join("packer/suaicloudapp.pkr.hcl");
    std::fs::write(&copy, legacy).unwrap();
    let copy = copy.to_str().unwrap();
    for arch in ARCHES {
        let o = packer(&[
            "validate",
            "-var",
            &format!("arch={arch}"),
            "-var",
            SSH_FROM,
            copy,
        ]);
        assert!(
            o.status.success(),
            "full validation, arch {arch}: {}",
            text(&o)
        );
    }

    // An architecture the template does not know fails validation.
    let o = packer(&["validate", "-var", "arch=mips", "-var", SSH_FROM, copy]);
    assert!(!o.status.success(), "arch=mips accepted: {}", text(&o));

    // A missing binary (here the arm64 one) is caught by that validation (the check is real),
    // and so is a missing SHA256SUMS.
    let version = env!("CARGO_PKG_VERSION");
    let arm = tree.join(format!(
        "dist/suaicloudapp-{version}-aarch64-unknown-linux-musl"
    ));
    std::fs::remove_file(&arm).unwrap();
    let o = packer(&["validate", "-var", "arch=arm64", "-var", SSH_FROM, copy]);
    assert!(
        !o.status.success() && text(&o).contains("Bad source"),
        "a missing binary must fail validation: {}",
        text(&o)
    );
    let o = packer(&["validate", "-var", "arch=x86_64", "-var", SSH_FROM, copy]);
    assert!(
        o.status.success(),
        "x86_64 does not need the arm64 file: {}",
        text(&o)
    );
    std::fs::remove_file(tree.join("dist/SHA256SUMS")).unwrap();
    let o = packer(&["validate", "-var", "arch=x86_64", "-var", SSH_FROM, copy]);
    assert!(
        !o.status.success() && text(&o).contains("Bad source"),
        "a missing SHA256SUMS must fail validation: {}",
        text(&o)
    );
}

/// The build instance checks the binary against SHA256SUMS before it runs or installs it.
#[test]
fn provisioner_verifies_the_binary_before_running_it() {
    let template = std::fs::read_to_string(repo().join(TEMPLATE)).unwrap();
    let at = |needle: &str| {
        template
            .find(needle)
            .unwrap_or_else(|| panic!("{TEMPLATE} lacks {needle:?}"))
    };
    let check = at("\"sha256sum -c suaicloudapp.sha256\"");
    assert!(at("SHA256SUMS > suaicloudapp.sha256") < check);
    assert!(check < at("--version\""), "verified before it runs");
    assert!(
        check < at("sudo install -o root -g root -m 0755"),
        "verified before install"
    );
    for arch in [
        "t3.micro",
        "t4g.micro",
        "aarch64-unknown-linux-musl",
        "al2023-ami-2023.*-${local.arch.ami}",
    ] {
        at(arch);
    }
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

/// The build instance's SSH is reachable from the builder only: the temporary security group's
/// sources are a required variable (packer's own default is 0.0.0.0/0), and a value that opens
/// it to everyone, an empty list or a non-CIDR is refused by validation, before any AWS call.
#[test]
fn build_instance_ssh_is_open_to_the_builder_only() {
    let template = std::fs::read_to_string(repo().join(TEMPLATE)).unwrap();
    assert!(
        template.contains("temporary_security_group_source_cidrs = var.ssh_source_cidrs"),
        "the builder's sources reach the security group"
    );
    let o = packer(&["validate", TEMPLATE]);
    assert!(
        !o.status.success() && text(&o).contains("Unset variable \"ssh_source_cidrs\""),
        "no default: {}",
        text(&o)
    );
    for bad in [
        "[\"0.0.0.0/0\"]",
        "[\"10.0.0.0/16\",\"::/0\"]",
        "[]",
        "[\"my-laptop\"]",
    ] {
        let o = packer(&[
            "validate",
            "-var",
            &format!("ssh_source_cidrs={bad}"),
            TEMPLATE,
        ]);
        assert!(
            !o.status.success() && text(&o).contains("naming the builder's"),
            "ssh_source_cidrs={bad} accepted: {}",
            text(&o)
        );
    }
    // A builder's /32 and a VPC range pass the variable's check: what fails is only what
    // template_validates_offline_for_both_arches expects of this packer version.
    let o = packer(&[
        "validate",
        "-var",
        "ssh_source_cidrs=[\"203.0.113.7/32\",\"2001:db8::/64\"]",
        TEMPLATE,
    ]);
    assert!(!text(&o).contains("naming the builder's"), "{}", text(&o));
}
