//! The full tier, hardening: faults, hostile input, load, secrets and shutdown against the real
//! binary, whose results feed docs/HARDENING.md (`scripts/hardening-report.sh`). Its own binary
//! because load figures are measured here: they share the machine with nothing but each other.

mod faults;
mod input;
mod load;
mod secrets;
mod shutdown;
