//! The fast tier: the HTTP layer served in-process, from a TOML string, with stand-in probes.
//!
//! No backend, no built binary, no file under `.test-env`, no traffic beyond loopback: each
//! test binds its own listener on 127.0.0.1:0 and hands it to `server::serve` with an `App`
//! whose registry holds stand-ins (`support::StandIn`). What it must not do: start the real
//! binary or a real server (that is the full tier, `tests/*.rs` with `tests/harness/`), or
//! read the process environment into a config. `make check` runs it; see README.md.

mod auth;
mod cache;
mod config_errors;
mod listener;
mod logs;
mod metrics;
mod negotiation;
mod render;
mod routing;
mod secrets;
mod support;
