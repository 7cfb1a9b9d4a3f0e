//! suaicloudapp: the library behind the binary. `main.rs` only parses the CLI and calls [`run`].
//!
//! Flow: config source -> [`config::Config`] -> [`probes::Registry`] -> [`server`].
#![forbid(unsafe_code)]

pub mod aws;
pub mod cli;
pub mod config;
pub mod logs;
pub mod probes;
pub mod secret;
pub mod server;

use anyhow::Context;
use cli::{Cli, Command, ConfigAction};
use config::{Config, ConfigError, ConfigSource};
use std::process::ExitCode;
use std::sync::Arc;
use tracing::info;

/// Exit code for a bad config or bad usage: nothing was served.
pub const EXIT_CONFIG: u8 = 2;

/// Runs the parsed command and maps the result to the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let source = match ConfigSource::parse(&cli.config) {
            Ok(s) => s,
            Err(e) => return config_failure(&e),
        };
        let config = match load(&source).await {
            Ok(c) => c,
            Err(e) => return config_failure(&e),
        };
        let result = match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Check { backends } => check(config, &backends).await,
            Command::Config { action } => {
                match action {
                    ConfigAction::Validate => println!("{source}: ok"),
                    ConfigAction::Show => {
                        print!(
                            "# effective config from {source}\n{}",
                            config.to_display_toml()
                        )
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        };
        result.unwrap_or_else(|e| {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        })
    })
}

fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// Fetches, parses and validates the config, then lets the environment supply secrets.
pub async fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
    let loaded = source.fetch().await?;
    let mut config = Config::parse(&loaded.text, &loaded.origin)?;
    config.apply_env(|k| std::env::var(k).ok());
    Ok(config)
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let _guard = logs::init(&config.logs)?;
    let addr = (config.server.host.as_str(), config.server.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {}:{} (port in use, or a privileged port without CAP_NET_BIND_SERVICE?)",
            addr.0, addr.1
        )
    })?;
    let registry = probes::Registry::build(&config);
    let app = Arc::new(server::App {
        registry,
        logs: config.logs.clone(),
    });
    let addr = listener.local_addr()?;
    info!(version = env!("CARGO_PKG_VERSION"), "listening on {addr}");
    server::serve(listener, app, &config.server, shutdown_signal()).await;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM (systemd, ASG scale-in) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
}

async fn check(config: Config, wanted: &[String]) -> anyhow::Result<ExitCode> {
    let registry = probes::Registry::build(&config);
    for name in wanted {
        if !registry.known().contains(&name.as_str()) {
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
            println!("{name:<10} FAIL  not configured: add a [{name}] section to the config");
            failed = true;
        }
    }
    let outcomes = futures_util::future::join_all(runners.iter().map(|r| r.run())).await;
    for o in &outcomes {
        let ms = o.duration.as_millis();
        match &o.result {
            Ok(_) => println!("{:<10} OK    {ms} ms", o.name),
            Err(f) => {
                failed = true;
                println!("{:<10} FAIL  {ms} ms  {}: {}", o.name, f.stage, f.cause)
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
