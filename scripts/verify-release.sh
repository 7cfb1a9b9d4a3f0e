#!/usr/bin/env bash
# Verifies a downloaded release: SHA256SUMS.sig is a signature over SHA256SUMS by a key in the
# allowed signers file (docs/release-signing/allowed_signers: the project's release key, for the
# namespace suaicloudapp-release only), then every file SHA256SUMS lists and DIR holds matches
# its digest. Files the directory lacks are skipped (download only the binary you need), but at
# least one must be there. Exit 0 only when both checks pass.
#
# Usage: scripts/verify-release.sh [--allowed-signers FILE] DIR
# The same by hand, without this repository (README: "Verifying a release"):
#   ssh-keygen -Y verify -f allowed_signers -I release@suaicloudapp -n suaicloudapp-release \
#     -s SHA256SUMS.sig <SHA256SUMS && sha256sum --ignore-missing -c SHA256SUMS
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
LIB_TAG=verify-release
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"

NAMESPACE=suaicloudapp-release
IDENTITY=release@suaicloudapp
signers="$REPO/docs/release-signing/allowed_signers"
dir=
while [[ $# -gt 0 ]]; do
    case $1 in
        --allowed-signers) signers=${2:?--allowed-signers needs a file}; shift ;;
        -*) die "unknown option $1 (usage: scripts/verify-release.sh [--allowed-signers FILE] DIR)" ;;
        *) [[ -z $dir ]] || die "one directory only"; dir=$1 ;;
    esac
    shift
done
[[ -n $dir ]] || die "usage: scripts/verify-release.sh [--allowed-signers FILE] DIR"
for f in SHA256SUMS SHA256SUMS.sig; do
    [[ -f $dir/$f ]] || die "$dir/$f is missing (download it from the release page)"
done
have ssh-keygen || die "ssh-keygen (OpenSSH 8.1 or later) is needed to verify"

ssh-keygen -Y verify -f "$signers" -I "$IDENTITY" -n "$NAMESPACE" -s "$dir/SHA256SUMS.sig" \
    <"$dir/SHA256SUMS" >&2 ||
    die "SHA256SUMS.sig is not a good signature of SHA256SUMS by $IDENTITY: do not run these files"
listed=0
while read -r _ name; do
    [[ -f $dir/$name ]] && listed=$((listed + 1))
done <"$dir/SHA256SUMS"
((listed > 0)) || die "$dir holds none of the files SHA256SUMS lists"
(cd "$dir" && sha256sum --strict --ignore-missing -c SHA256SUMS) >&2 ||
    die "a file does not match the signed SHA256SUMS (above): do not run it"
say "OK: signature by $IDENTITY and $listed file(s) match"
