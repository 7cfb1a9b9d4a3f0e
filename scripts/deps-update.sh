#!/usr/bin/env bash
# Moves the test environment's Python pins on purpose (`make deps-update`).
#
# Usage: scripts/deps-update.sh [--no-test] [--no-commit] [PACKAGE...]
#
#   Re-resolves scripts/requirements.lock from scripts/requirements.in, and scripts/checkov.lock
#   from scripts/checkov.in, with pip-compile
#   (exact versions and hashes of every package, transitive ones included): every package to
#   its newest allowed version, or only the PACKAGEs named. Prints what moved, runs `make test`
#   with the new lock (test-env.sh rebuilds its venv when the lock's digest changes), and when
#   that passes commits the lock alone, its message listing each move. A red suite leaves the
#   new lock uncommitted for a look (`git checkout scripts/requirements.lock` undoes it).
#
# pip-compile itself runs in a venv of its own, installed from scripts/deps-tools.lock with
# hashes. The Rust toolchain is pinned in rust-toolchain.toml and moved by editing it (README,
# "Moving the pins"); Debian packages are the distribution's.
set -euo pipefail
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
LIB_TAG=deps-update
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

TEST=1 COMMIT=1 PACKAGES=()
for arg in "$@"; do
    case $arg in
    --no-test) TEST=0 ;;
    --no-commit) COMMIT=0 ;;
    -h | --help)
        sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*) die "unknown option $arg" ;;
    *) PACKAGES+=("$arg") ;;
    esac
done

TOOLS_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/suaicloudapp/deps-tools-venv"
TOOLS_STAMP="$TOOLS_VENV/.suai-lock-sha256"

tools_venv() {
    local digest
    digest=$(sha256sum "$SCRIPT_DIR/deps-tools.lock" | cut -d' ' -f1)
    if [[ -x $TOOLS_VENV/bin/pip-compile && -f $TOOLS_STAMP && $(<"$TOOLS_STAMP") == "$digest" ]]; then
        return 0
    fi
    say "creating $TOOLS_VENV from scripts/deps-tools.lock"
    rm -rf "$TOOLS_VENV"
    /usr/bin/python3 -m venv "$TOOLS_VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
    "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
        --only-binary=:all: -r "$SCRIPT_DIR/deps-tools.lock" || die "pip install of pip-tools failed"
    printf '%s\n' "$digest" >"$TOOLS_STAMP"
}

pins() { sed -n 's/^\([A-Za-z0-9][A-Za-z0-9._-]*\)==\([^ ;\\]*\).*/\1 \2/p' "$1" | sort; }

tools_venv
before=$(mktemp)
trap 'rm -f "$before"' EXIT
upgrade=(--upgrade)
if ((${#PACKAGES[@]})); then
    upgrade=()
    for p in "${PACKAGES[@]}"; do upgrade+=(--upgrade-package "$p"); done
fi
# Each .in has its lock and its venv: requirements (moto, cfn-lint, ...) and checkov, whose
# exact pins (boto3==...) would otherwise hold the others back (scripts/test-env.sh).
moves=
for name in requirements checkov; do
    pins "$SCRIPT_DIR/$name.lock" >"$before"
    say "pip-compile ${upgrade[*]} $name.in"
    (cd "$SCRIPT_DIR" && "$TOOLS_VENV/bin/pip-compile" --quiet --generate-hashes --allow-unsafe \
        --strip-extras --no-header --no-emit-find-links --no-emit-index-url "${upgrade[@]}" \
        --output-file "$name.lock" "$name.in") ||
        die "pip-compile of $name.in failed; $name.lock is unchanged"
    moved=$(join -a1 -a2 -e '-' -o 0,1.2,2.2 "$before" <(pins "$SCRIPT_DIR/$name.lock") |
        awk -v lock="$name.lock" '$2 != $3 { print lock ": " $1 " " $2 " -> " $3 }')
    moves+=${moved:+$moved$'\n'}
done
moves=${moves%$'\n'}
if [[ -z $moves ]]; then
    say "no pin moved"
    exit 0
fi
say "pins that moved:"
printf '  %s\n' "${moves//$'\n'/$'\n'  }" >&2
if ((TEST)); then
    say "make test with the new lock"
    (cd "$REPO" && make test) || die "make test failed with the new lock; it is left uncommitted"
fi
if ((COMMIT)); then
    git -C "$REPO" commit --quiet -m "pins: move the test venv's Python packages" -m "$moves" -- \
        scripts/requirements.lock scripts/requirements.in scripts/checkov.lock scripts/checkov.in
    say "committed the new lock"
fi
