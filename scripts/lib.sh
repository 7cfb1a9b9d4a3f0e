# shellcheck shell=bash
# Shell helpers shared by the build scripts (build-static.sh, dist.sh). Source it; it defines
# functions only and changes no shell option.
#
#   LIB_TAG=name; . scripts/lib.sh
#   say MESSAGE...                 "name: MESSAGE" on stderr
#   die MESSAGE...                 say "ERROR: ..." and exit 1
#   apt_install PKG...             install Debian/Ubuntu packages (root or sudo; waits for the
#                                  dpkg lock; updates the index once if the install fails)
#   ensure_rust_target TRIPLE      rustup target add when the target is missing
#   cargo_package_version          the [package] version in Cargo.toml (cwd: the repository)

say() { printf '%s: %s\n' "${LIB_TAG:-script}" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

apt_install() {
    [[ $# -gt 0 ]] || return 0
    command -v apt-get >/dev/null 2>&1 ||
        die "missing $* and no apt-get: install them with your package manager"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "missing $*: run as root or install sudo"
        sudo=(sudo)
    fi
    say "installing $* (apt)"
    # Another apt run (test-env.sh, a colleague) may hold the dpkg lock: wait for it, bounded.
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq)
    # An install from a stale or never-fetched package index fails: update once, then retry.
    if ! "${apt[@]}" install -y --no-install-recommends "$@" >/dev/null; then
        "${apt[@]}" update
        "${apt[@]}" install -y --no-install-recommends "$@" >/dev/null
    fi
}

ensure_rust_target() {
    local target=$1
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"
    if command -v rustup >/dev/null 2>&1; then
        if ! rustup target list --installed | grep -qx "$target"; then
            say "adding rustup target $target"
            rustup target add "$target"
        fi
    else
        rustc --print target-libdir --target "$target" >/dev/null 2>&1 ||
            die "no rustup and the $target standard library is missing"
    fi
}

cargo_package_version() {
    awk '
        /^\[/ { in_pkg = ($0 == "[package]") }
        in_pkg && /^version[[:space:]]*=/ { gsub(/^[^"]*"|".*$/, ""); print; exit }
    ' Cargo.toml
}
