//! The `suaicloudapp` binary: parse the command line, hand over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    suaicloudapp::run(suaicloudapp::cli::Cli::parse())
}
