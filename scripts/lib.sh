# shellcheck shell=bash
# Shell helpers shared by the project's scripts (build-static.sh, dist.sh, sync-embedded.sh,
# test-env.sh, vm-rehearsal.sh, hardening-report.sh, run-local.sh, bench/run.sh). Source it;
# it defines functions only and changes no shell option. A script may redefine `say` (and
# `die`) after sourcing, for its own format: the helpers below call whichever is defined.
#
#   LIB_TAG=name; . scripts/lib.sh
#   say MESSAGE...                 "[name] MESSAGE" on stderr (log: the same)
#   die MESSAGE...                 say "ERROR: ..." and exit 1
#   have COMMAND                   is COMMAND on PATH?
#   as_root COMMAND...             run as root (directly, or through sudo)
#   apt_install PKG...             install Debian/Ubuntu packages (root or sudo; waits for the
#                                  dpkg lock; updates the index once if the install fails;
#                                  apt's output goes to $APT_LOG, default /dev/null)
#   pid_matches PID [EXPECT]       PID runs and its command line contains EXPECT
#   stop_pid PID [EXPECT] [SECS]   SIGTERM, wait up to SECS (default 10), then SIGKILL; only
#                                  when PID still runs EXPECT; reaps it when it is our child
#   port_open PORT [HOST]          something accepts TCP connections on HOST (127.0.0.1):PORT
#   free_port                      a loopback TCP port nothing listens on (bound, then released)
#   ensure_toolchain               install rust-toolchain.toml's toolchain, components and
#                                  targets when missing (rustup); fail if rustc is another one
#   ensure_rust_target TRIPLE      rustup target add when the target is missing
#   cargo_package_version          the [package] version in Cargo.toml (cwd: the repository)

say() { printf '[%s] %s\n' "${LIB_TAG:-script}" "$*" >&2; }
log() { say "$@"; }
die() {
    say "ERROR: $*"
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif have sudo; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

apt_install() {
    [[ $# -gt 0 ]] || return 0
    have apt-get || die "missing $* and no apt-get: install them with your package manager"
    say "apt-get install $*"
    # Another apt run (test-env.sh, bench/run.sh, a colleague) may hold the dpkg lock: wait for
    # it, bounded, instead of failing.
    local apt=(as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq)
    local out=${APT_LOG:-/dev/null}
    # An install from a stale or never-fetched package index fails: update once, then retry.
    if ! "${apt[@]}" install -y --no-install-recommends "$@" >>"$out" 2>&1; then
        say "apt-get update"
        "${apt[@]}" update >>"$out" 2>&1 || die "apt-get update failed${APT_LOG:+ (see $APT_LOG)}"
        "${apt[@]}" install -y --no-install-recommends "$@" >>"$out" 2>&1 ||
            die "apt-get install $* failed${APT_LOG:+ (see $APT_LOG)}"
    fi
}

pid_matches() {
    local pid=$1 expect=${2:-}
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    [[ -z $expect ]] && return 0
    [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") == *"$expect"* ]]
}

stop_pid() {
    local pid=$1 expect=${2:-} secs=${3:-10} i
    pid_matches "$pid" "$expect" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        pid_matches "$pid" "$expect" || break
        sleep 0.1
    done
    if pid_matches "$pid" "$expect"; then
        say "pid $pid did not stop in ${secs} s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    wait "$pid" 2>/dev/null || true
}

port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ensure_toolchain() {
    local root want got
    root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
    want=$(sed -n 's/^channel = "\(.*\)"/\1/p' "$root/rust-toolchain.toml")
    [[ -n $want ]] || die "no channel in $root/rust-toolchain.toml"
    if have rustup; then
        # No arguments: rustup reads rust-toolchain.toml (channel, components, targets).
        (cd "$root" && rustup toolchain install >/dev/null 2>&1) ||
            (cd "$root" && rustup toolchain install) || die "rustup cannot install toolchain $want"
    fi
    got=$(cd "$root" && rustc --version | cut -d' ' -f2)
    [[ $got == "$want" ]] || die "rustc is $got, rust-toolchain.toml pins $want"
    say "rust toolchain $want"
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
