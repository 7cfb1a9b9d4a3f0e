#!/usr/bin/env bash
# Release artifacts (make dist): the static binaries for x86_64 and aarch64 (Graviton) and a
# SHA256SUMS over them, in dist/:
#   suaicloudapp-<version>-x86_64-unknown-linux-musl
#   suaicloudapp-<version>-aarch64-unknown-linux-musl
#   SHA256SUMS                       (`cd dist && sha256sum -c SHA256SUMS` checks them)
# and, when `make image` wrote them first, this version's OCI images
# (suaicloudapp-<version>-<arch>.oci.tar) are listed in SHA256SUMS too, so the release's signed
# SHA256SUMS (scripts/sign-release.sh) vouches for them as well.
# <version> is the [package] version in Cargo.toml. Each binary is built by
# scripts/build-static.sh TARGET, which installs what a fresh Debian machine lacks (musl-tools,
# gcc-aarch64-linux-gnu, qemu-user-static, the rustup targets) and checks the result is static
# and runs. Older suaicloudapp-* binaries in the output directory are removed, so SHA256SUMS
# and the directory list the same files; anything else there (an OCI image) is left alone.
#
# Usage: scripts/dist.sh [--no-build] [--out DIR]
#   --no-build   package the binaries already in target/ (tests/release/release.rs uses this)
#   --out DIR    write there instead of dist/
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
LIB_TAG=dist
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"

TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
BIN=suaicloudapp
build=1
out="$REPO/dist"
while [[ $# -gt 0 ]]; do
    case $1 in
        --no-build) build=0 ;;
        --out) out=${2:?--out needs a directory}; shift ;;
        *) die "unknown argument $1 (usage: scripts/dist.sh [--no-build] [--out DIR])" ;;
    esac
    shift
done

cd "$REPO"
version=$(cargo_package_version)
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "no [package] version in Cargo.toml (read '$version')"

if ((build)); then
    for target in "${TARGETS[@]}"; do
        "$REPO/scripts/build-static.sh" "$target"
    done
fi

mkdir -p "$out"
rm -f -- "$out"/"$BIN"-*-unknown-linux-musl "$out/SHA256SUMS"
names=()
for target in "${TARGETS[@]}"; do
    src="${CARGO_TARGET_DIR:-$REPO/target}/$target/release/$BIN"
    [[ -x $src ]] || die "$src is missing: run scripts/build-static.sh $target (or make dist)"
    name="$BIN-$version-$target"
    # A copy, not a link: dist/ outlives the next build of target/.
    install -m 0755 "$src" "$out/$name"
    names+=("$name")
done
shopt -s nullglob
for image in "$out/$BIN-$version-"*.oci.tar; do
    names+=("${image##*/}")
done
shopt -u nullglob
(cd "$out" && sha256sum -- "${names[@]}" >SHA256SUMS.tmp && mv -f SHA256SUMS.tmp SHA256SUMS)
(cd "$out" && sha256sum --quiet -c SHA256SUMS) || die "SHA256SUMS does not verify in $out"

say "wrote ${out#"$REPO"/}/:"
(cd "$out" && for name in "${names[@]}"; do
    printf '  %s  %s bytes\n' "$name" "$(stat -c %s "$name")"
done) >&2
sed 's/^/  /' "$out/SHA256SUMS" >&2
