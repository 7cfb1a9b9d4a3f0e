# The two commands a new user needs (see README.md):
#   make run    test backends up, then the server on a local config that points at them
#   make check  the pinned Rust toolchain, format check, clippy, then the unit tests and the
#               fast tier only (tests/fast/: the server in-process, stand-in probes): no
#               backend, no static build, loopback only; for every edit
#   make test   the pinned Rust toolchain, test backends up, then format check, clippy, the
#               static musl build, and the whole test suite (tests/release/static_binary.rs and
#               tests/release/packer.rs use that build)
#   make deps-update  move the Python pins on purpose: re-resolve scripts/requirements.lock,
#               run make test with it, commit the lock (scripts/deps-update.sh)
#   make static the static release binary target/x86_64-unknown-linux-musl/release/suaicloudapp
#               (installs musl-tools, packer and the rustup target when missing)
#   make static-aarch64  the same for Graviton: target/aarch64-unknown-linux-musl/release/...
#               (installs gcc-aarch64-linux-gnu and qemu-user-static; tests/release/aarch64.rs runs it)
#   make dist   release artifacts in dist/: both static binaries, named with the version, and
#               SHA256SUMS (scripts/dist.sh)
#   make image  dist/suaicloudapp-<version>-<arch>.oci.tar: an OCI image (FROM scratch) of each
#               static binary built, without a container daemon (scripts/oci_image.py)
#   make embed  refresh the embedded copies: the unit inside user-data.sh, user-data.sh inside
#               deploy/cloudformation.yaml (scripts/sync-embedded.sh; tests fail when stale)
#   make bench  side by side with nginx (wrk, boot time, RSS, size): writes bench/RESULTS.md
#   make vm-rehearsal  boot a real VM under QEMU whose cloud-init runs user-data.sh, and judge
#               it: tests/vm/vm_rehearsal.rs runs scripts/vm-rehearsal.sh (which only boots and
#               records observations) and makes every check (also part of `make test`)
.PHONY: run check test env env-down lint toolchain build release static static-aarch64 dist image embed bench vm-rehearsal deps-update

env:
	scripts/test-env.sh up

toolchain:
	scripts/toolchain.sh

deps-update:
	scripts/deps-update.sh

build:
	cargo build

run: env build
	scripts/run-local.sh

lint: toolchain
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

static:
	scripts/build-static.sh

static-aarch64:
	scripts/build-static.sh aarch64-unknown-linux-musl

dist:
	scripts/dist.sh

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

# One archive per architecture whose static release build exists (x86_64 always, via static).
image: static
	for arch in x86_64 aarch64; do \
		bin=target/$$arch-unknown-linux-musl/release/suaicloudapp; \
		[ -f $$bin ] || continue; \
		python3 scripts/oci_image.py --binary $$bin --arch $$arch --version $(VERSION) \
			--out dist/suaicloudapp-$(VERSION)-$$arch.oci.tar || exit 1; \
	done

embed:
	scripts/sync-embedded.sh

# Needs no running backend and no .test-env: the fast tier builds its servers from TOML strings.
check: lint
	cargo test --lib --test fast

# Prerequisites run in this order (toolchain, env, lint, static, static-aarch64, image), then
# the tests.
test: toolchain env lint static static-aarch64 image
	cargo test --all-targets

env-down:
	scripts/test-env.sh down

release:
	cargo build --release

bench: env static
	bench/run.sh

vm-rehearsal: env static
	cargo test --test vm -- --nocapture
