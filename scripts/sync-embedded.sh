#!/usr/bin/env bash
# Copies the files that are shipped embedded in others (make embed):
#   systemd/suaicloudapp.service -> the <<'UNIT' heredoc of user-data.sh
#   user-data.sh                 -> the UserData block of deploy/cloudformation.yaml (between its
#                                   "# BEGIN user-data.sh" and "# END user-data.sh" lines)
# in that order, so an edited unit reaches the stack's user-data too. Idempotent; tests/deploy/deploy.rs
# and tests/deploy/cloudformation.rs fail when a copy is stale.
#
# Usage: scripts/sync-embedded.sh
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
LIB_TAG=sync-embedded
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
cd "$REPO"

# replace FILE AWK_PROGRAM SOURCE: rewrites FILE through the program, atomically, keeping its mode.
replace() {
    local file=$1 program=$2 src=$3 tmp
    tmp=$(mktemp "$file.XXXXXX")
    if ! awk -v src="$src" "$program" "$file" >"$tmp"; then
        rm -f "$tmp"
        die "could not rewrite $file"
    fi
    chmod --reference="$file" "$tmp"
    mv -f "$tmp" "$file"
}

grep -qx "UNIT" user-data.sh || die "user-data.sh has no UNIT heredoc"
# shellcheck disable=SC2016 # awk programs: awk, not the shell, expands their $0 and $1
replace user-data.sh '
    /<<'\''UNIT'\''$/ { print; while ((getline line < src) > 0) print line; skip = 1; next }
    skip && $0 == "UNIT" { skip = 0 }
    !skip { print }
' systemd/suaicloudapp.service

grep -q '^ *# BEGIN user-data.sh' deploy/cloudformation.yaml || die "no BEGIN user-data.sh line in deploy/cloudformation.yaml"
grep -q '^ *# END user-data.sh' deploy/cloudformation.yaml || die "no END user-data.sh line in deploy/cloudformation.yaml"
# A YAML literal block ("- |") indented two columns deeper than the marker: every line of the
# script verbatim (the block's indentation is stripped again when the template is read).
# shellcheck disable=SC2016
replace deploy/cloudformation.yaml '
    /^ *# BEGIN user-data.sh/ {
        print
        indent = $0; sub(/#.*/, "", indent)
        print indent "- |"
        while ((getline line < src) > 0) print (line == "" ? "" : indent "  " line)
        skip = 1; next
    }
    /^ *# END user-data.sh/ { skip = 0 }
    !skip { print }
' user-data.sh
say "user-data.sh's unit and deploy/cloudformation.yaml's user-data are up to date"
