//! Command-line definitions (clap derive). No logic: `app` acts on what is parsed here. The
//! backend names and secret variables in the help come from the registry
//! ([`crate::probes::BACKENDS`]), so the help names exactly what this build has.

use crate::probes::{self, BACKENDS};
use clap::{Parser, Subcommand};

/// suaicloudapp: health and diagnostic pages for an AWS web tier, served from inside it.
#[derive(Debug, Parser)]
#[command(name = "suaicloudapp", version, propagate_version = true)]
#[command(long_about = long_about(), after_help = after_help())]
pub struct Cli {
    /// Config location: a file path, or s3://BUCKET/KEY (fetched with the instance's role).
    #[arg(
        short,
        long,
        global = true,
        env = "SUAICLOUDAPP_CONFIG",
        default_value = "config.toml",
        value_name = "PATH|s3://BUCKET/KEY"
    )]
    pub config: String,

    /// Region for fetching an s3:// config [default: AWS_REGION, then instance metadata].
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,

    /// How long to keep retrying an s3:// config fetch at boot (capped exponential backoff).
    #[arg(
        long,
        global = true,
        env = "SUAICLOUDAPP_CONFIG_DEADLINE_SECS",
        default_value_t = 120,
        value_name = "SECS"
    )]
    pub config_deadline_secs: u64,

    /// Where `serve` keeps the last known good copy of an s3:// config (last-good.toml and
    /// last-good.meta) [default: $STATE_DIRECTORY (systemd), else /var/lib/suaicloudapp when
    /// writable, else $XDG_STATE_HOME/suaicloudapp or ~/.local/state/suaicloudapp].
    #[arg(
        long,
        global = true,
        env = "SUAICLOUDAPP_STATE_DIR",
        value_name = "DIR"
    )]
    pub state_dir: Option<std::path::PathBuf>,

    /// While the last known good copy of an s3:// config is served (S3 unreadable at boot),
    /// the longest wait between two background fetches (backoff from 1 s, doubling).
    #[arg(
        long,
        global = true,
        env = "SUAICLOUDAPP_CONFIG_RETRY_MAX_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..),
        value_name = "SECS"
    )]
    pub config_retry_max_secs: u64,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do; `serve` when omitted.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the pages (the default).
    Serve,
    /// Probe backends once, in parallel; print a line each; exit 0 if all pass, 1 otherwise.
    #[command(after_help = secrets_help())]
    Check {
        #[arg(help = backends_help())]
        backends: Vec<String>,
    },
    /// GET the running server's /health once: exit 0 on 200 within the timeout, 1 otherwise.
    /// For Docker's HEALTHCHECK and ECS's healthCheck.command (a scratch image has no curl);
    /// reads no config.
    Healthcheck {
        /// The URL to check (plain http).
        #[arg(long, default_value = crate::healthcheck::DEFAULT_URL)]
        url: String,
        /// The whole check's budget: connect, send, status line.
        #[arg(long, default_value_t = 2000, value_name = "MS")]
        timeout_ms: u64,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// `config` sub-commands.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Parse and validate; exit 0 if good, 2 with the file, line and column if not.
    Validate,
    /// Print the effective config with defaults filled in; secrets print as ***.
    Show,
}

/// The top-level description: what serving answers, with this build's backend pages.
fn long_about() -> String {
    let pages: Vec<String> = BACKENDS
        .iter()
        .map(|b| format!("/{}", b.page_pattern()))
        .collect();
    format!(
        "suaicloudapp: health and diagnostic pages for an AWS web tier, served from inside it.\n\n\
         With no command it serves: GET /health answers `healthy` (for the load balancer), and \
         {} each probe one backend from this instance and answer `OK` or \
         `ERROR: <stage>: <cause>`. /logs shows the tail of the log file.",
        listing(&pages)
    )
}

/// Examples, the secret variables and the signals, after the options.
fn after_help() -> String {
    format!(
        "Examples:\n  suaicloudapp                              serve with ./config.toml\n  suaicloudapp --config /etc/suai/config.toml serve\n  suaicloudapp --config s3://my-bucket/suai/config.toml   fetch the config at boot (IMDSv2 role)\n  suaicloudapp config validate              check a config, exit 2 if it is bad\n  suaicloudapp config show                  the effective config, secrets as ***\n  suaicloudapp check database redis         probe once, exit 1 if any fails\n  suaicloudapp healthcheck                  exit 0 if http://127.0.0.1:8080/health answers 200\n\n{}\nSignals: SIGTERM/SIGINT drain and exit 0; SIGHUP re-reads the config (a bad one is rejected).",
        secrets_help()
    )
}

/// The variables that may carry secrets instead of the file, as the registry lists them.
fn secrets_help() -> String {
    let vars: Vec<&str> = probes::secret_vars().collect();
    format!(
        "Secrets may come from {} instead of the file; AWS credentials from the standard AWS chain.",
        listing(&vars)
    )
}

/// `check`'s argument: the names this build knows.
fn backends_help() -> String {
    let names: Vec<String> = BACKENDS.iter().map(|b| b.page_pattern()).collect();
    format!(
        "Backends to probe ({}); all configured ones if omitted.",
        names.join(", ")
    )
}

/// `a`, `a and b`, `a, b and c`.
fn listing<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", rest.join(", "), last.as_ref())
        }
    }
}
