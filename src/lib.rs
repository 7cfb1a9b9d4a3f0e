//! suaicloudapp: the library behind the binary. `main.rs` only parses the CLI and calls [`run`].
//!
//! Flow: config source -> [`probes::Config`] -> [`probes::Registry`] -> [`server`]. This file
//! holds the module list and [`run`]; the lifecycle is [`app`]'s.
#![forbid(unsafe_code)]

pub mod app;
pub mod aws;
pub mod check;
pub mod cli;
pub mod config;
pub mod ecs;
pub mod fetch;
pub mod healthcheck;
pub mod identity;
pub mod load;
pub mod logs;
pub mod metrics;
pub mod outcome;
pub mod probes;
pub mod report;
pub mod secret;
pub mod secret_fetch;
pub mod secret_ref;
pub mod server;
pub mod tls;
pub mod watchdog;

use cli::Cli;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Exit code for a bad config or bad usage: nothing was served.
pub const EXIT_CONFIG: u8 = 2;

/// Runs the parsed command and maps the result to the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    app::no_huge_pages();
    let runtime = match app::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        // Logging starts before the config: an S3 fetch may retry, and each cause is logged.
        let logs = Arc::new(logs::init());
        let code = app::run_command(cli, &logs).await;
        logs.flush();
        code
    });
    // Dropping the runtime would wait for every blocking task without limit; one stuck in a
    // hung DNS lookup or a log write nobody drains must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}
