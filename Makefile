# The two commands a new user needs (see README.md):
#   make run    test backends up, then the server on a local config that points at them
#   make test   test backends up, then format check, clippy, and the whole test suite
.PHONY: run test env env-down lint build release

env:
	scripts/test-env.sh up

build:
	cargo build

run: env build
	scripts/run-local.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

test: env lint
	cargo test --all-targets

env-down:
	scripts/test-env.sh down

release:
	cargo build --release
