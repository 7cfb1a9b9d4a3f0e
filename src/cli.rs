//! Command-line definitions (clap derive). No logic: `lib::run` acts on what is parsed here.

use clap::{Parser, Subcommand};

/// suaicloudapp: health and diagnostic pages for an AWS web tier, served from inside it.
///
/// With no command it serves: GET /health answers `healthy` (for the load balancer), and
/// /database, /redis, /s3 and /dynamodb each probe one backend from this instance and answer
/// `OK` or `ERROR: <stage>: <cause>`. /logs shows the tail of the log file.
#[derive(Debug, Parser)]
#[command(name = "suaicloudapp", version, propagate_version = true)]
#[command(
    after_help = "Examples:\n  suaicloudapp                              serve with ./config.toml\n  suaicloudapp --config /etc/suai/config.toml serve\n  suaicloudapp --config s3://my-bucket/suai/config.toml   fetch the config at boot (IMDSv2 role)\n  suaicloudapp config validate              check a config, exit 2 if it is bad\n  suaicloudapp config show                  the effective config, secrets as ***\n  suaicloudapp check database redis         probe once, exit 1 if any fails\n  suaicloudapp healthcheck                  exit 0 if http://127.0.0.1:8080/health answers 200\n\nSecrets may come from SUAICLOUDAPP_DATABASE_PASSWORD, SUAICLOUDAPP_REDIS_PASSWORD and\nSUAICLOUDAPP_LOGS_TOKEN instead of the file; AWS credentials from the standard AWS chain.\nSignals: SIGTERM/SIGINT drain and exit 0; SIGHUP re-reads the config (a bad one is rejected)."
)]
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

    /// Where the fetched copy of an s3:// config and its ETag are kept
    /// [default: $STATE_DIRECTORY (systemd), else the working directory].
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
    Check {
        /// Backends to probe (database, redis, s3, dynamodb); all configured ones if omitted.
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
