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
    after_help = "Examples:\n  suaicloudapp                              serve with ./config.toml\n  suaicloudapp --config /etc/suai/config.toml serve\n  suaicloudapp config validate              check a config, exit 2 if it is bad\n  suaicloudapp config show                  the effective config, secrets as ***\n  suaicloudapp check database redis         probe once, exit 1 if any fails\n\nSecrets may come from SUAICLOUDAPP_DATABASE_PASSWORD, SUAICLOUDAPP_REDIS_PASSWORD and\nSUAICLOUDAPP_LOGS_TOKEN instead of the file; AWS credentials from the standard AWS chain."
)]
pub struct Cli {
    /// Config location: a file path (s3://bucket/key on EC2 in a later release).
    #[arg(
        short,
        long,
        global = true,
        env = "SUAICLOUDAPP_CONFIG",
        default_value = "config.toml",
        value_name = "PATH"
    )]
    pub config: String,

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
