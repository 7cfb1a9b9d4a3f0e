#!/usr/bin/env bash
# Signs a release's SHA256SUMS with the project's SSH signing key (ssh-keygen -Y sign, ed25519,
# namespace suaicloudapp-release), writing SHA256SUMS.sig beside it. The release workflow's
# publish job runs it with the key from the GitHub environment `release`; nothing else holds it.
# A signed SHA256SUMS vouches for every file it lists, so the set is checked first: a file that
# does not match its line is refused, not signed.
#
# Usage: scripts/sign-release.sh [--key FILE] DIR
#   DIR         holds SHA256SUMS and the files it lists (dist/)
#   --key FILE  the private key; without it, the key's text is read from $RELEASE_SIGNING_KEY
#               (written to a 0600 temporary file that is removed on exit)
# Check the result with scripts/verify-release.sh DIR (README: "Verifying a release").
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
LIB_TAG=sign-release
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"

NAMESPACE=suaicloudapp-release
key=
dir=
while [[ $# -gt 0 ]]; do
    case $1 in
        --key) key=${2:?--key needs a file}; shift ;;
        -*) die "unknown option $1 (usage: scripts/sign-release.sh [--key FILE] DIR)" ;;
        *) [[ -z $dir ]] || die "one directory only"; dir=$1 ;;
    esac
    shift
done
[[ -n $dir ]] || die "usage: scripts/sign-release.sh [--key FILE] DIR"
[[ -f $dir/SHA256SUMS ]] || die "$dir/SHA256SUMS is missing (make dist writes it)"
have ssh-keygen || die "ssh-keygen (OpenSSH 8.1 or later) is needed to sign"

if [[ -z $key ]]; then
    [[ -n ${RELEASE_SIGNING_KEY:-} ]] || die "no key: pass --key FILE or set RELEASE_SIGNING_KEY"
    key=$(umask 077 && mktemp)
    trap 'rm -f -- "$key"' EXIT
    printf '%s\n' "$RELEASE_SIGNING_KEY" >"$key"
fi

(cd "$dir" && sha256sum --quiet --strict -c SHA256SUMS) ||
    die "$dir/SHA256SUMS does not match its files: refusing to sign"
rm -f -- "$dir/SHA256SUMS.sig"
ssh-keygen -q -Y sign -f "$key" -n "$NAMESPACE" "$dir/SHA256SUMS" ||
    die "ssh-keygen could not sign $dir/SHA256SUMS with that key"
say "signed $dir/SHA256SUMS ($(wc -l <"$dir/SHA256SUMS") files) -> $dir/SHA256SUMS.sig"
