#!/usr/bin/env bash
# Builds the static (musl) release binary that the AMI and user-data ship:
#   target/x86_64-unknown-linux-musl/release/suaicloudapp
#
# Idempotent: on a fresh Debian machine it first installs what is missing
#   - musl-tools (x86_64-linux-musl-gcc: ring and mimalloc compile C for the musl target)
#   - file (to check the result)
#   - packer (Debian's 1.6.6: tests/packer.rs validates packer/suaicloudapp.pkr.hcl offline)
#   - the rustup target x86_64-unknown-linux-musl
# and skips each step when it is already there. Then it builds with the normal target/ dir (warm
# cache: about 40 s incremental, about 7 min clean on 2 cores), checks that the result is
# statically linked (`file` and `ldd`) and prints its size.
#
# Usage: scripts/build-static.sh          (make static runs it; make test depends on it)
set -euo pipefail

TARGET=x86_64-unknown-linux-musl
BIN=suaicloudapp
REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin:$HOME/.cargo/bin"
export PATH

say() { printf 'build-static: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# --- system packages (Debian/Ubuntu) ---------------------------------------------------------
missing=()
command -v x86_64-linux-musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
command -v file >/dev/null 2>&1 || missing+=(file)
command -v packer >/dev/null 2>&1 || missing+=(packer)
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 \
        || die "missing ${missing[*]} and no apt-get: install them with your package manager"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}: run as root or install sudo"
        sudo=(sudo)
    fi
    say "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt run (test-env.sh, a colleague) may hold the dpkg lock: wait for it, bounded.
    apt=("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 -qq)
    # An install from a stale or never-fetched package index fails: update once, then retry.
    if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null; then
        "${apt[@]}" update
        "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi
command -v x86_64-linux-musl-gcc >/dev/null 2>&1 || die "x86_64-linux-musl-gcc still missing after installing musl-tools"

# --- Rust target -----------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx "$TARGET"; then
        say "adding rustup target $TARGET"
        rustup target add "$TARGET"
    fi
else
    rustc --print target-libdir --target "$TARGET" >/dev/null 2>&1 \
        || die "no rustup and the $TARGET standard library is missing"
fi

# --- build -----------------------------------------------------------------------------------
cd "$REPO"
say "cargo build --release --target $TARGET --bin $BIN"
started=$(date +%s)
# The C parts (ring, mimalloc) need the musl cross compiler; cc-rs finds it by this name
# for the target, but say it explicitly so a differently configured environment cannot pick gcc.
CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-x86_64-linux-musl-gcc} \
    cargo build --release --target "$TARGET" --bin "$BIN"
elapsed=$(( $(date +%s) - started ))

out="$REPO/target/$TARGET/release/$BIN"
[ -x "$out" ] || die "build finished but $out is missing"

# --- checks ----------------------------------------------------------------------------------
kind=$(file -b "$out")
case "$kind" in
    *static-pie\ linked* | *statically\ linked*) ;;
    *) die "$out is not statically linked: file says: $kind" ;;
esac
# ldd exits non-zero on a static binary (glibc: "not a dynamic executable"; musl's ldd prints
# nothing useful); either way it must not list shared libraries.
ldd_out=$(ldd "$out" 2>&1 || true)
case "$ldd_out" in
    *"not a dynamic executable"* | *"statically linked"*) ;;
    *) die "$out has dynamic dependencies: ldd says: $ldd_out" ;;
esac

bytes=$(stat -c %s "$out")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1000000 }')
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
say "built in ${elapsed}s: ${out#"$REPO"/}"
say "file: $kind"
say "ldd: $ldd_out"
printf '%s: %s bytes (%s MB, %s MiB)\n' "${out#"$REPO"/}" "$bytes" "$mb" "$mib"
