//! The `suaicloudapp` binary: parse the command line, hand over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

/// musl's allocator serialises threads; the static build uses mimalloc instead.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// musl's memcpy is slow at short copies; the static build links crates/memcopy's instead
/// (nothing calls it by name: the linker takes its `memcpy` and `memmove` symbols).
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
extern crate memcopy as _;

fn main() -> std::process::ExitCode {
    suaicloudapp::run(suaicloudapp::cli::Cli::parse())
}
