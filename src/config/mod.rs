//! The typed configuration: the seed schema of `config.toml` plus optional extensions.
//!
//! Owns parsing, defaults, validation and environment overrides. Every key added beyond the
//! seed schema has a default, so the seed file keeps working unchanged. Bad input becomes a
//! [`ConfigError`] naming the file, line and column. This module never starts anything and
//! reads no file or bucket: where the text comes from is [`crate::load`]'s.

pub mod auth;
mod error;
pub mod health;
mod values;

use crate::secret::{Secret, SecretUrl};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

pub use auth::AuthConfig;
pub use error::ConfigError;
pub use health::HealthConfig;
pub use values::{
    Count, DeliveryStreamName, FunctionName, Host, Millis, Name, PageName, Port, StreamName,
    TopicArn,
};

/// The whole configuration. Backend sections are optional: an absent one means "not configured".
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub logs: LogsConfig,
    #[serde(default)]
    pub probes: ProbesConfig,
    #[serde(default)]
    pub aws: AwsConfig,
    /// `[health]`: the readiness group behind `/ready`.
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Config>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamodb: Option<DynamoConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinesis: Option<KinesisConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firehose: Option<FirehoseConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns: Option<SnsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<LambdaConfig>,
    /// `[[http]]`: any number of HTTP(S) endpoints, each its own page `/http/<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpCheck>,
    /// `[auth]`: ALB sign-in for the detailed pages; absent means they are open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
}

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
    /// When set, `/logs` requires `Authorization: Bearer <token>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret<String>>,
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

/// `[s3]`: the bucket HeadBucket is sent to.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

/// `[database]`: the MySQL / RDS endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub host: Host,
    #[serde(default = "default_mysql_port")]
    pub port: Port,
    pub user: Name,
    /// May instead come from [`DatabaseConfig::PASSWORD_ENV`].
    #[serde(default)]
    pub password: Secret<String>,
    pub dbname: Name,
    #[serde(default)]
    pub tls: MysqlTls,
    /// PEM bundle of trusted CAs (for RDS, the global bundle); system roots when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

fn default_mysql_port() -> Port {
    Port(3306)
}

/// How the MySQL probe uses TLS, named as the `mysql` client's `--ssl-mode` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MysqlTls {
    Disabled,
    /// TLS when the server offers it, unverified; plain otherwise (the mysql client's default).
    #[default]
    Preferred,
    /// TLS or fail, certificate not verified.
    Required,
    /// TLS with the certificate chain verified, host name not checked.
    VerifyCa,
    /// TLS with chain and host name verified.
    VerifyIdentity,
}

impl MysqlTls {
    /// The config spelling, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            MysqlTls::Disabled => "disabled",
            MysqlTls::Preferred => "preferred",
            MysqlTls::Required => "required",
            MysqlTls::VerifyCa => "verify-ca",
            MysqlTls::VerifyIdentity => "verify-identity",
        }
    }
}

/// `[redis]`: a standalone Redis or an ElastiCache (cluster mode) endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub host: Host,
    #[serde(default = "default_redis_port")]
    pub port: Port,
    #[serde(default)]
    pub mode: RedisMode,
    /// In-transit encryption; the certificate is verified against `ca_file` or system roots.
    #[serde(default)]
    pub tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// May instead come from [`RedisConfig::PASSWORD_ENV`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

fn default_redis_port() -> Port {
    Port(6379)
}

/// Whether the Redis endpoint is a cluster; `auto` asks the server (`cluster_enabled:1`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedisMode {
    #[default]
    Auto,
    Standalone,
    Cluster,
}

/// `[dynamodb]`: the table and the key the seed app reads by.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoConfig {
    pub table: Name,
    #[serde(default = "default_partition_key")]
    pub partition_key: Name,
    #[serde(default)]
    pub mode: DynamoMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

fn default_partition_key() -> Name {
    Name("id".into())
}

/// `read` proves reachability and key schema; `write` also puts, reads back and deletes an item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DynamoMode {
    #[default]
    Read,
    Write,
}

/// `[postgres]`: an RDS / Aurora PostgreSQL endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    pub host: Host,
    #[serde(default = "default_pg_port")]
    pub port: Port,
    pub user: Name,
    /// May instead come from [`PostgresConfig::PASSWORD_ENV`].
    #[serde(default)]
    pub password: Secret<String>,
    pub dbname: Name,
    #[serde(default)]
    pub sslmode: PgSslMode,
    /// PEM CA bundle (RDS: the global bundle) for `verify-ca` / `verify-full`; else system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

fn default_pg_port() -> Port {
    Port(5432)
}

/// libpq's `sslmode`, with libpq's meanings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgSslMode {
    Disable,
    /// TLS when the server offers it, unverified (libpq's default).
    #[default]
    Prefer,
    /// TLS or fail, unverified.
    Require,
    /// TLS, chain verified, host name not checked.
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyFull,
}

impl PgSslMode {
    /// The config spelling, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PgSslMode::Disable => "disable",
            PgSslMode::Prefer => "prefer",
            PgSslMode::Require => "require",
            PgSslMode::VerifyCa => "verify-ca",
            PgSslMode::VerifyFull => "verify-full",
        }
    }
}

/// Read-only checks, or also a small write (`mode = "write"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeMode {
    #[default]
    Read,
    Write,
}

/// `[kinesis]`: a data stream (DescribeStreamSummary; `write` adds a PutRecord).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisConfig {
    pub stream: StreamName,
    #[serde(default)]
    pub mode: ProbeMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

/// `[firehose]`: a delivery stream (DescribeDeliveryStream).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FirehoseConfig {
    pub delivery_stream: DeliveryStreamName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

/// `[sns]`: a topic (GetTopicAttributes), addressed by ARN so its region is known.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnsConfig {
    pub topic_arn: TopicArn,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

/// `[lambda]`: a function (GetFunctionConfiguration).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaConfig {
    pub function: FunctionName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

/// One `[[http]]` entry: an API Gateway stage, a function URL, an internal service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// The page is `/http/<name>`: letters, digits, `-` and `_`.
    pub name: PageName,
    /// Its userinfo and query values are secrets: shown as `***` everywhere.
    pub url: SecretUrl,
    #[serde(default)]
    pub method: HttpMethod,
    /// The exact status expected; any 2xx when unset. Redirects are never followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<u16>,
    /// A substring the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// PEM CA bundle for https URLs signed by a private CA; else system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

/// The methods an HTTP check may use: neither changes anything on the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
}

/// An environment variable that may carry a secret instead of the file, and the key it fills.
/// The environment wins over the file, so a baked config can carry a placeholder. Each section
/// with a secret declares its own; the registry lists them for `--help` and applies them.
#[derive(Clone, Copy)]
pub struct SecretEnv {
    /// The variable's name, as `--help` shows it.
    pub var: &'static str,
    apply: fn(&mut Config, Secret<String>),
}

impl SecretEnv {
    /// `apply` puts the variable's value into its key (when the section is present).
    pub const fn new(var: &'static str, apply: fn(&mut Config, Secret<String>)) -> SecretEnv {
        SecretEnv { var, apply }
    }
}

impl fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.var)
    }
}

impl LogsConfig {
    /// `/logs`'s bearer token.
    pub const TOKEN_ENV: SecretEnv = SecretEnv::new("SUAICLOUDAPP_LOGS_TOKEN", |c, token| {
        c.logs.token = Some(token);
    });
}

impl DatabaseConfig {
    /// The MySQL password.
    pub const PASSWORD_ENV: SecretEnv =
        SecretEnv::new("SUAICLOUDAPP_DATABASE_PASSWORD", |c, pw| {
            if let Some(s) = c.database.as_mut() {
                s.password = pw;
            }
        });
}

impl RedisConfig {
    /// The Redis AUTH password.
    pub const PASSWORD_ENV: SecretEnv = SecretEnv::new("SUAICLOUDAPP_REDIS_PASSWORD", |c, pw| {
        if let Some(s) = c.redis.as_mut() {
            s.password = Some(pw);
        }
    });
}

impl PostgresConfig {
    /// The PostgreSQL password.
    pub const PASSWORD_ENV: SecretEnv =
        SecretEnv::new("SUAICLOUDAPP_POSTGRES_PASSWORD", |c, pw| {
            if let Some(s) = c.postgres.as_mut() {
                s.password = pw;
            }
        });
}

impl Config {
    /// Parses TOML text; `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| error::parse_error(e, text, origin))?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Fills secrets from the environment where set (and not empty): `envs` are the variables
    /// the registry knows, [`LogsConfig::TOKEN_ENV`] and each backend's.
    pub fn apply_env<'a>(
        &mut self,
        envs: impl IntoIterator<Item = &'a SecretEnv>,
        get: impl Fn(&str) -> Option<String>,
    ) {
        for env in envs {
            if let Some(value) = get(env.var).filter(|v| !v.is_empty()) {
                (env.apply)(self, Secret::new(value));
            }
        }
    }

    /// Rules that span keys, which serde cannot check alone.
    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        self.rules().map_err(|message| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        })
    }

    /// Each rule in turn; the first one broken is the message.
    fn rules(&self) -> Result<(), String> {
        if let Some(db) = &self.database {
            ensure(db.ca_file.is_none() || db.tls != MysqlTls::Disabled, || {
                "[database] ca_file is set but tls = \"disabled\": use tls = \"verify-identity\" or remove ca_file".into()
            })?;
        }
        if let Some(r) = &self.redis {
            ensure(r.ca_file.is_none() || r.tls, || {
                "[redis] ca_file is set but tls = false: set tls = true or remove ca_file".into()
            })?;
        }
        if let Some(pg) = &self.postgres {
            let verifies = matches!(pg.sslmode, PgSslMode::VerifyCa | PgSslMode::VerifyFull);
            ensure(pg.ca_file.is_none() || verifies, || {
                "[postgres] ca_file is only used with sslmode = \"verify-ca\" or \"verify-full\""
                    .into()
            })?;
        }
        for (i, h) in self.http.iter().enumerate() {
            let url = h.url.expose();
            let absolute = (url.starts_with("http://") || url.starts_with("https://"))
                && url.parse::<hyper::Uri>().is_ok();
            ensure(absolute, || {
                format!(
                    "[[http]] entry {} ({}): url \"{}\" must be an absolute http:// or https:// URL",
                    i + 1,
                    h.name,
                    h.url.redacted()
                )
            })?;
            ensure(!self.http[..i].iter().any(|o| o.name == h.name), || {
                format!(
                    "[[http]] name {:?} is used twice: pages are /http/<name>",
                    h.name.to_string()
                )
            })?;
            ensure(
                h.expect_status.is_none_or(|s| (100..=599).contains(&s)),
                || format!("[[http]] {}: expect_status must be 100-599", h.name),
            )?;
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        let logs = &self.logs;
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

    /// True when a reload would not need a restart: the listener and log file are unchanged.
    pub fn same_listener_and_log_file(&self, other: &Config) -> bool {
        toml::to_string(&self.server).ok() == toml::to_string(&other.server).ok()
            && self.logs.file == other.logs.file
    }

    /// The effective config as TOML, defaults filled in and every secret shown as `***`.
    pub fn to_display_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# {e}\n"))
    }
}

/// `Err(message())` unless `ok`: each rule reads as the condition a good config meets.
fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(message())
    }
}

#[cfg(test)]
mod tests;
