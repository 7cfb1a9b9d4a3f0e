//! The typed configuration's shared part: the core sections (`[server]`, `[logs]`, `[probes]`,
//! `[aws]`, `[health]`, `[auth]`), the value types every section uses, and the errors, with
//! line, column and "did you mean". Each backend's section is its own type in its probe file,
//! and the whole `Config` is put together from the registry (`crate::probes::Config`).
//!
//! Every key added beyond the seed schema has a default, so the seed file keeps working
//! unchanged. This module never starts anything and reads no file or bucket: where the text
//! comes from is [`crate::load`]'s.

pub mod auth;
mod error;
pub mod health;
mod values;

use crate::secret::Secret;
use crate::secret_ref::Sourced;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use auth::AuthConfig;
pub use error::ConfigError;
pub use health::HealthConfig;
pub use values::{aws_name, Count, DbAuth, Host, Millis, Mode, Name, PageName, Port};

/// `[server]`: where to listen and how to protect the listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub host: Host,
    /// 0 asks the OS for a free port (tests use it; the bound address is logged).
    pub port: u16,
    /// A request head must arrive in full this long after the accept, or after its first byte
    /// on a kept-alive connection; else the connection is closed (slowloris guard).
    pub header_timeout_ms: Millis,
    /// An idle keep-alive connection is closed after this long without a new request. Longer
    /// than the load balancer's idle timeout (ALB: 60 s), so the balancer always closes first
    /// and never sends a request into a closing socket (a 502 for the user).
    pub keepalive_timeout_ms: Millis,
    /// At this many open connections the longest-idle one is closed to make room; when all
    /// are busy a new one gets `/health` answered and anything else 503.
    pub max_connections: Count,
    /// How long in-flight requests may run after SIGTERM before the process exits anyway.
    pub shutdown_grace_ms: Millis,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: Host("0.0.0.0".into()),
            port: 8080,
            header_timeout_ms: Millis(5_000),
            keepalive_timeout_ms: Millis(75_000),
            max_connections: Count(1024),
            shutdown_grace_ms: Millis(10_000),
        }
    }
}

/// `[logs]`: the log file and the `/logs` page.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Relative paths are taken from the working directory, as the seed app did.
    pub file: PathBuf,
    /// `false` turns `/logs` off (404); the file is still written.
    pub enabled: bool,
    /// When set, `/logs` requires `Authorization: Bearer <token>`: a value, or a secret
    /// reference fetched when `/logs` is asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Sourced<Secret<String>>>,
    /// Upper bound for `/logs?lines=N`.
    pub max_lines: Count,
    /// A `tracing` filter such as `info` or `suaicloudapp=debug`; `RUST_LOG` wins when set.
    pub level: String,
    /// The file is rotated before a line would take it past this; 0: never (an external
    /// logrotate does it, with SIGUSR1).
    pub max_bytes: u64,
    /// Rotated files kept (`file.1` is the newest); the oldest is overwritten.
    pub keep: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            file: PathBuf::from("output.log"),
            enabled: true,
            token: None,
            max_lines: Count(5_000),
            level: "info".into(),
            max_bytes: 64 * 1024 * 1024,
            keep: 3,
        }
    }
}

/// The smallest `[logs] max_bytes`: one writer batch (64 KiB) fits, so a busy server rotates at
/// most once per batch.
pub const MIN_LOG_BYTES: u64 = 64 * 1024;

/// The most rotated files `[logs] keep` may ask for; `/logs` opens each one.
pub const MAX_LOG_KEEP: usize = 100;

/// `[probes]`: budget and cache shared by every probe unless a section overrides the timeout.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbesConfig {
    /// The whole probe (DNS, connect, TLS, auth, query) must finish within this.
    pub timeout_ms: Millis,
    /// A result is reused this long, so a flood of requests costs one backend call per window.
    pub cache_ms: u64,
}

impl Default for ProbesConfig {
    fn default() -> Self {
        ProbesConfig {
            timeout_ms: Millis(3_000),
            cache_ms: 1_000,
        }
    }
}

/// `[secrets]`: how long a value fetched for a secret reference (`{ secretsmanager = ... }`,
/// `{ ssm = ... }`) is reused.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// The Secrets Manager agent's default (5 minutes): at most one fetch per secret per
    /// window, plus one when the backend refuses the value (a rotation).
    pub cache_ms: Millis,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig {
            cache_ms: Millis(300_000),
        }
    }
}

/// `[aws]`: shared by every AWS probe. Unset keys fall back to the SDK's standard chain
/// (`AWS_REGION`, `AWS_ENDPOINT_URL`, instance metadata).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// For emulators such as moto; S3 then uses path-style addressing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
}

/// Parses TOML text into `T`; a refusal names `origin`, the line and the column.
pub fn parse_toml<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| error::parse_error(e, text, origin))
}

/// The core sections' rules across keys, which serde cannot check alone.
pub fn core_rules(logs: &LogsConfig, auth: Option<&AuthConfig>) -> Result<(), String> {
    if let Some(auth) = auth {
        auth.validate()?;
    }
    ensure(!logs.level.trim().is_empty(), || {
        "[logs] level must not be empty".into()
    })?;
    ensure(
        logs.max_bytes == 0 || logs.max_bytes >= MIN_LOG_BYTES,
        || {
            format!(
                "[logs] max_bytes must be 0 (no rotation) or at least {MIN_LOG_BYTES}, got {}",
                logs.max_bytes
            )
        },
    )?;
    ensure(logs.keep <= MAX_LOG_KEEP, || {
        format!(
            "[logs] keep must be at most {MAX_LOG_KEEP}, got {}",
            logs.keep
        )
    })
}

/// The shortest `[logs] token`: 32 characters, 128 bits as hex (`openssl rand -hex 16`); a
/// shorter one can be guessed by anyone who can reach the port and retry.
pub const MIN_LOGS_TOKEN: usize = 32;

/// Checks the token once the environment had its say (`named` is where it came from); the
/// message gives the length, never the token.
pub fn logs_token_rule(logs: &LogsConfig, named: &str) -> Result<(), String> {
    // A reference is checked when it is fetched (`logs_token_length`).
    let Some(Sourced::Value(token)) = &logs.token else {
        return Ok(());
    };
    logs_token_length(token, named)
}

/// The length rule of [`logs_token_rule`], for a token however it came.
pub fn logs_token_length(token: &Secret<String>, named: &str) -> Result<(), String> {
    let len = token.expose().chars().count();
    ensure(len >= MIN_LOGS_TOKEN, || {
        format!(
            "{named} is {len} characters; it must be at least {MIN_LOGS_TOKEN} (make one with `openssl rand -hex 32`)"
        )
    })
}

/// The warning for a `/logs` anyone who reaches the port can read (enabled, no token, no
/// `[auth]`): said once at start and by `config show`.
pub fn logs_open_note(logs: &LogsConfig, auth: bool) -> Option<&'static str> {
    (logs.enabled && logs.token.is_none() && !auth).then_some(
        "/logs is unauthenticated: anyone who reaches the port reads the log; set [logs] token (32+ characters), SUAICLOUDAPP_LOGS_TOKEN, [auth] or [logs] enabled = false",
    )
}

/// `Err(message())` unless `ok`: each rule reads as the condition a good config meets.
pub fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(message())
    }
}
