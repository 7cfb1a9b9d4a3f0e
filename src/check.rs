//! `suaicloudapp check`: probe backends once from the command line, for scripts and for an
//! operator on the instance. It builds the same registry the server does and prints through
//! [`crate::report`], never through the HTTP layer.

use crate::metrics::Metrics;
use crate::probes::Config;
use crate::{probes, report, EXIT_CONFIG};
use std::process::ExitCode;
use std::sync::Arc;

/// Probes the `wanted` backends (every configured one when empty) once, in parallel: a line
/// each on stdout; exit 0 when all pass, 1 when any fails or is not configured, 2 for a name
/// this build does not know.
pub async fn run(config: Config, wanted: &[String]) -> anyhow::Result<ExitCode> {
    let registry = probes::Registry::build(&config, Arc::new(Metrics::new()));
    for name in wanted {
        if !registry.known().contains(name) {
            eprintln!(
                "error: unknown backend {name:?}; known: {}",
                registry.known().join(", ")
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    }
    let runners: Vec<_> = registry
        .runners()
        .iter()
        .filter(|r| wanted.is_empty() || wanted.iter().any(|w| w == r.name()))
        .collect();
    let mut failed = false;
    for name in wanted {
        if !runners.iter().any(|r| r.name() == name) {
            println!("{}", report::not_configured(name));
            failed = true;
        }
    }
    let outcomes = futures_util::future::join_all(runners.iter().map(|r| r.run())).await;
    for o in &outcomes {
        failed |= !o.is_ok();
        println!("{}", report::line(o));
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
