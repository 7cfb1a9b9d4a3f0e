//! The `suaicloudapp` binary: parse the command line, hand over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

/// musl's allocator serialises threads; the static build uses mimalloc instead.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    suaicloudapp::run(suaicloudapp::cli::Cli::parse())
}
