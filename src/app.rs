//! The process lifecycle: the runtime, the command dispatch, loading the config, and serving
//! (bind, notify systemd, SIGHUP reload, re-fetch after a boot on the last known good copy,
//! SIGTERM drain). What each page answers is the server's; what a probe checks is the probes'.

use crate::cli::{Cli, Command, ConfigAction};
use crate::config::ConfigError;
use crate::load::{last_good, refetch, ConfigSource, Copies, FetchOptions, Loaded, Loader};
use crate::probes::Config;
use crate::{check, healthcheck, identity, logs, probes, server, watchdog, EXIT_CONFIG};
use anyhow::Context;
use arc_swap::ArcSwap;
use sd_notify::NotifyState;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{error, info, warn};

/// The async runtime sized to the CPUs this process may use. On one (a 1-vCPU instance, a
/// pinned or cgroup-limited service) the single-threaded scheduler: a second worker would only
/// add cross-thread hand-offs and work-stealing checks to every request. Blocking work
/// (`spawn_blocking`) has its own threads either way.
///
/// Both thread counts are capped, so the process's tasks and memory do not grow with the
/// instance size: the unit's `TasksMax=` and `MemoryMax=` are sized from these caps. Eight
/// workers are far more than a load balancer's health checks and an operator's pages need
/// (bench/RESULTS.md has what one CPU serves); blocking threads only run DNS look-ups, log
/// tails and file reads.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    const MAX_WORKERS: usize = 8;
    const MAX_BLOCKING: usize = 64;
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(cpus.min(MAX_WORKERS));
        b
    };
    builder
        .max_blocking_threads(MAX_BLOCKING)
        .enable_all()
        .build()
}

/// Opts this process out of transparent huge pages. Where the kernel's THP mode is `always`
/// (common), the allocator's first small allocations in each 2 MiB-aligned region are backed
/// by a whole 2 MiB page, so most of an idle process's memory would be huge pages holding a
/// few kB each. A health tool must stay small beside the service it guards; it gains nothing
/// from huge pages.
///
/// The flag only governs pages touched after it is set, and the allocator has already touched
/// its first region before `main`. So the process sets the flag and replaces
/// itself with a fresh image of the same binary: `execve` keeps the PID (systemd's main PID,
/// the notify socket), arguments, environment and open descriptors, and the flag survives it
/// while the huge pages do not. Best effort throughout: no `/proc` (an empty chroot), a kernel
/// or sandbox that refuses the flag, or a failed exec only costs memory, never the start.
pub(crate) fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::prctl;
        use std::os::unix::process::CommandExt;
        if prctl::get_thp_disable().unwrap_or(true) || prctl::set_thp_disable(true).is_err() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut fresh = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            fresh.arg0(arg0);
        }
        // Returns only when the exec failed; carry on in this image.
        let _ = fresh.args(args).exec();
    }
}

/// What a command does once its config is loaded. `healthcheck` is not here: it reads no
/// config, so [`run_command`] answers it before any loading.
enum WithConfig {
    Serve,
    Check(Vec<String>),
    Config(ConfigAction),
}

/// Runs one command once the runtime and logging are up: the one that needs no config first,
/// then the config is loaded for the rest. Only `serve` keeps the last known good copy of an
/// s3:// config and falls back on it; `check` and `config` report S3's answer.
pub(crate) async fn run_command(cli: Cli, logs: &Arc<logs::LogHandle>) -> ExitCode {
    let opts = fetch_options(&cli);
    let command = match cli.command.unwrap_or(Command::Serve) {
        // Before the config: a container's health command must not depend on it.
        Command::Healthcheck { url, timeout_ms } => {
            return healthcheck::run(&url, Duration::from_millis(timeout_ms)).await;
        }
        Command::Serve => WithConfig::Serve,
        Command::Check { backends } => WithConfig::Check(backends),
        Command::Config { action } => WithConfig::Config(action),
    };
    let source = match ConfigSource::parse(&cli.config) {
        Ok(s) => s,
        Err(e) => return config_failure(&e),
    };
    let serving = matches!(command, WithConfig::Serve);
    let loader = Loader {
        source,
        opts: FetchOptions {
            state_dir: opts.state_dir.filter(|_| serving),
            ..opts
        },
        copies: if serving {
            Copies::Keep
        } else {
            Copies::Ignore
        },
        complete,
    };
    let loaded = if serving {
        loader.boot().await
    } else {
        loader.load().await
    };
    let (config, loaded) = match loaded {
        Ok(pair) => pair,
        Err(e) => return config_failure(&e),
    };
    let result = match command {
        WithConfig::Serve => serve(config, loaded, loader, logs.clone()).await,
        WithConfig::Check(backends) => check::run(config, &backends).await,
        WithConfig::Config(action) => {
            match action {
                ConfigAction::Validate => println!("{}: ok", loaded.origin),
                ConfigAction::Show => print!(
                    "{}{}{}",
                    describe(&loaded),
                    config.to_display_toml(),
                    probes::not_configured_notes(&config)
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|e| {
        error!("{e:#}");
        ExitCode::FAILURE
    })
}

/// What the registry adds to every parsed config: secrets from the environment, `[health]`
/// names checked against the configured sections.
fn complete(config: &mut Config, origin: &str) -> Result<(), ConfigError> {
    probes::prepare(config, origin, |k| std::env::var(k).ok())
}

/// How an s3:// config is fetched, from the command line and the environment.
fn fetch_options(cli: &Cli) -> FetchOptions {
    FetchOptions {
        region: cli.region.clone(),
        deadline: Duration::from_secs(cli.config_deadline_secs),
        state_dir: cli.state_dir.clone().or_else(last_good::default_dir),
        retry_max: Duration::from_secs(cli.config_retry_max_secs),
    }
}

/// The header `config show` prints: where the config came from.
fn describe(loaded: &Loaded) -> String {
    let mut out = format!("# effective config from {}\n", loaded.origin);
    if let Some(etag) = &loaded.etag {
        out.push_str(&format!("# etag {etag}\n"));
    }
    out
}

/// A config that cannot be used: its one-line reason on stderr, exit 2.
fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// The signals the server reacts to, registered before READY so none is missed.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers; before this, a signal would take the default action.
    fn register() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Says once, at start, what the config leaves open: `/logs` without a token or sign-in, and a
/// sign-in that admits every user the identity provider knows.
fn warn_if_open(config: &Config) {
    if let Some(note) = crate::config::logs_open_note(&config.logs, config.auth.is_some()) {
        warn!("{note}");
    }
    if config.auth.as_ref().is_some_and(|a| a.admits_any_user()) {
        warn!("[auth] admits every user the identity provider signs in: set allowed_clients, email_domains, groups or claims");
    }
}

/// Serves until SIGTERM or SIGINT: log file, signals, listener, READY to systemd, then the
/// background tasks (re-fetch while on the last known good copy, SIGHUP reload) beside the
/// server, all stopped once it has drained.
async fn serve(
    config: Config,
    loaded: Loaded,
    loader: Loader,
    logs: Arc<logs::LogHandle>,
) -> anyhow::Result<ExitCode> {
    logs.attach(&config.logs)?;
    info!(
        source = %loaded.origin,
        etag = loaded.etag.as_deref().unwrap_or("-"),
        "config loaded"
    );
    let Signals { term, int, hup } =
        Signals::register().context("cannot install signal handlers")?;
    let usr1 = signal(SignalKind::user_defined1()).context("cannot install signal handlers")?;
    let reopener = tokio::spawn(logs::reopen_on_sigusr1(usr1, logs.clone()));
    let addr = (config.server.host.as_str(), config.server.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {}:{} (port in use, or a privileged port without CAP_NET_BIND_SERVICE?)",
            addr.0, addr.1
        )
    })?;
    let shared = server::Shared::default();
    let state = Arc::new(ArcSwap::from_pointee(server::App::new(
        &config,
        &loaded,
        shared.clone(),
    )));
    let addr = listener.local_addr()?;
    info!(version = env!("CARGO_PKG_VERSION"), "listening on {addr}");
    warn_if_open(&config);
    let watchdog = watchdog::spawn();
    notify(NotifyState::Ready);
    identity::spawn_lookup(shared.identity.clone());
    let refetcher = loaded.fallback.as_ref().map(|fallback| {
        let (state, logs, running) = (state.clone(), logs.clone(), config.clone());
        let serving = state.clone();
        tokio::spawn(refetch::until_fetched(
            loader.clone(),
            fallback.attempts.clone(),
            move || serving.load().fallback.is_some(),
            move |config, loaded| swap_in(&config, &loaded, &state, &logs, &running),
        ))
    });
    let reloader = tokio::spawn(reload_on_hup(hup, loader, state.clone(), logs, config));
    server::serve(listener, state, shutdown_signal(term, int)).await;
    reloader.abort();
    reopener.abort();
    for task in [refetcher, watchdog].into_iter().flatten() {
        task.abort();
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Tells systemd (Type=notify) where the service stands; a no-op outside systemd.
fn notify(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        warn!(error = %e, "cannot notify systemd");
    }
}

/// Re-reads the config on each SIGHUP and swaps it in whole; a bad one is logged and ignored.
async fn reload_on_hup(
    mut hup: Signal,
    loader: Loader,
    state: Arc<ArcSwap<server::App>>,
    logs: Arc<logs::LogHandle>,
    running: Config,
) {
    while hup.recv().await.is_some() {
        info!(source = %loader.source, "SIGHUP: reloading the config");
        notify(NotifyState::Reloading);
        match loader.load().await {
            Ok((config, loaded)) => swap_in(&config, &loaded, &state, &logs, &running),
            Err(e) => error!("config reload rejected, keeping the running config: {e}"),
        }
        notify(NotifyState::Ready);
    }
}

/// Swaps a freshly loaded config in whole: what a SIGHUP reload does, and what the background
/// re-fetch does once S3 is back after a boot on the last known good copy.
fn swap_in(
    config: &Config,
    loaded: &Loaded,
    state: &ArcSwap<server::App>,
    logs: &logs::LogHandle,
    running: &Config,
) {
    if !config.same_listener_and_log_file(running) {
        warn!("[server] and [logs] file changes take effect at the next restart");
    }
    if let Err(e) = logs.attach(&config.logs) {
        warn!("{e}");
    }
    let shared = state.load().shared.clone();
    state.store(Arc::new(server::App::new(config, loaded, shared)));
    info!(
        source = %loaded.origin,
        etag = loaded.etag.as_deref().unwrap_or("-"),
        "config reloaded"
    );
}

/// Resolves on SIGTERM (systemd, ASG scale-in) or SIGINT (Ctrl-C).
async fn shutdown_signal(mut term: Signal, mut int: Signal) {
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
    notify(NotifyState::Stopping);
}
