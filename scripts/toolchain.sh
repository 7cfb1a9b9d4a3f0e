#!/usr/bin/env bash
# Installs the Rust toolchain rust-toolchain.toml pins (channel, rustfmt, clippy, both musl
# targets) when it is missing, and fails when the rustc on PATH is another version. `make test`
# and `make check` run it first, so a fresh machine builds with exactly that toolchain.
set -euo pipefail
LIB_TAG=toolchain
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
ensure_toolchain
