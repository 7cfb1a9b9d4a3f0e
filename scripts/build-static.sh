#!/usr/bin/env bash
# Builds the static (musl) release binary that the AMI, user-data and `make dist` ship:
#   target/<TARGET>/release/suaicloudapp
# TARGET is x86_64-unknown-linux-musl (default) or aarch64-unknown-linux-musl (Graviton).
#
# Idempotent: on a fresh Debian machine it first installs what is missing
#   - musl-tools (x86_64-linux-musl-gcc: ring and mimalloc compile C for the musl target)
#   - for aarch64: gcc-aarch64-linux-gnu (the C cross compiler for ring and mimalloc, and the
#     linker driver) and qemu-user-static (runs the result here: the check below, tests/release/aarch64.rs)
#   - file (to check the result)
#   - packer (Debian's 1.6.6: tests/release/packer.rs validates packer/suaicloudapp.pkr.hcl offline)
#   - the rustup target
# and skips each step when it is already there. Then it builds with the normal target/ dir (warm
# cache: about 40 s incremental, about 7 min clean on 2 cores; aarch64 clean: longer), checks
# that the result is statically linked and runs (`--version`, under qemu for aarch64) and
# prints its size.
#
# Usage: scripts/build-static.sh [TARGET]   (make static, make static-aarch64, make dist)
set -euo pipefail

TARGET=${1:-x86_64-unknown-linux-musl}
BIN=suaicloudapp
REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin:$HOME/.cargo/bin"
export PATH
LIB_TAG=build-static
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"

# Per target: the C compiler cc-rs uses for ring and mimalloc, the linker driver, and how to run
# the result on this (x86_64) machine. Rust's musl targets ship their own crt objects and libc
# (self-contained linking), so the glibc cross gcc only drives the link and compiles ring's and
# mimalloc's C. That C includes <stdint.h>, which a hosted gcc takes from the target's libc
# headers: the cross gcc alone (as a machine may ship it) fails with "bits/libc-header-start.h:
# No such file", so the headers package comes too.
case $TARGET in
    x86_64-unknown-linux-musl)
        cc=x86_64-linux-musl-gcc
        linker=""
        runner=()
        headers=""
        packages=(musl-tools)
        ;;
    aarch64-unknown-linux-musl)
        cc=aarch64-linux-gnu-gcc
        linker=aarch64-linux-gnu-gcc
        runner=(qemu-aarch64-static)
        headers=/usr/aarch64-linux-gnu/include/stdint.h
        packages=(gcc-aarch64-linux-gnu qemu-user-static libc6-dev-arm64-cross)
        ;;
    *) die "unsupported target $TARGET (x86_64-unknown-linux-musl or aarch64-unknown-linux-musl)" ;;
esac

# --- system packages (Debian/Ubuntu) ---------------------------------------------------------
missing=()
command -v "$cc" >/dev/null 2>&1 || missing+=("${packages[0]}")
if [[ ${#runner[@]} -gt 0 ]]; then
    command -v "${runner[0]}" >/dev/null 2>&1 || missing+=("${packages[1]}")
fi
if [[ -n $headers ]]; then
    [[ -f $headers ]] || missing+=("${packages[2]}")
fi
command -v file >/dev/null 2>&1 || missing+=(file)
command -v packer >/dev/null 2>&1 || missing+=(packer)
apt_install "${missing[@]}"
command -v "$cc" >/dev/null 2>&1 || die "$cc still missing after installing ${packages[0]}"

# --- Rust target -----------------------------------------------------------------------------
ensure_rust_target "$TARGET"

# --- build -----------------------------------------------------------------------------------
cd "$REPO"
say "cargo build --release --target $TARGET --bin $BIN"
started=$(date +%s)
# The C parts (ring, mimalloc) need the cross compiler; cc-rs would guess a name for the
# target, so say it explicitly (a differently configured environment cannot pick the host gcc).
target_env=${TARGET//-/_}
export "CC_$target_env=$cc"
if [[ -n $linker ]]; then
    export "AR_$target_env=${cc%-gcc}-ar"
    export "CARGO_TARGET_${target_env^^}_LINKER=$linker"
fi
cargo build --release --target "$TARGET" --bin "$BIN"
elapsed=$(( $(date +%s) - started ))

out="${CARGO_TARGET_DIR:-$REPO/target}/$TARGET/release/$BIN"
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

# It starts on this machine (aarch64: under qemu-user): a link that went wrong shows here.
version=$("${runner[@]}" "$out" --version) || die "$out --version failed"

bytes=$(stat -c %s "$out")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1000000 }')
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
say "built in ${elapsed}s: ${out#"$REPO"/}"
say "file: $kind"
say "ldd: $ldd_out"
say "runs: $version"
printf '%s: %s bytes (%s MB, %s MiB)\n' "${out#"$REPO"/}" "$bytes" "$mb" "$mib"
