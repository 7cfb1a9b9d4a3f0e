//! `/postgres`: `SELECT 1` over a small tokio-postgres pool (deadpool, at most 2 connections,
//! idle ones closed after a minute) with rustls for TLS, built once.
//!
//! Knows libpq's sslmodes and PostgreSQL's SQLSTATEs; nothing about HTTP.
//!
//! A passing check says what the connection had: `tls=verified`, `tls=unverified` (the
//! `prefer` default encrypts but trusts any certificate) or `tls=off`. tokio-postgres does not
//! say whether `prefer` ended up encrypted, so the server's `pg_stat_ssl` row for the session
//! does, in the same round trip as `SELECT 1`.

use super::Probe;
use super::unit::{Build, Unit};
use crate::aws::auth_token::{Login, TokenSource};
use crate::config::{ensure, DbAuth, Host, Millis, Name, Port};
use crate::outcome::{Details, Failure, Stage};
use crate::secret::Secret;
use crate::secret_ref::{Fill, Sourced};
use crate::tls::{self, Cause, Verify};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

/// `[postgres]`: an RDS / Aurora PostgreSQL endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    pub host: Host,
    #[serde(default = "default_pg_port")]
    pub port: Port,
    /// A name, or a secret reference (`{ secretsmanager = "...", key = "username" }`).
    pub user: Sourced<Name>,
    /// A value, a secret reference, or from `SUAICLOUDAPP_POSTGRES_PASSWORD`.
    #[serde(default)]
    pub password: Sourced<Secret<String>>,
    pub dbname: Name,
    /// `"iam"`: log in with an RDS IAM token made from the instance role (no password).
    #[serde(default)]
    pub auth: DbAuth,
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

impl Unit for PostgresConfig {
    type Probe = PostgresProbe;
    const DATASTORE: bool = true;
    const SECRET_ENV: Option<&'static str> = Some("SUAICLOUDAPP_POSTGRES_PASSWORD");

    fn target(&self) -> String {
        format!("{}:{}", self.host, self.port.get())
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn validate(&self) -> Result<(), String> {
        let verifies = matches!(self.sslmode, PgSslMode::VerifyCa | PgSslMode::VerifyFull);
        ensure(self.ca_file.is_none() || verifies, || {
            "[postgres] ca_file is only used with sslmode = \"verify-ca\" or \"verify-full\""
                .into()
        })?;
        if self.auth != DbAuth::Iam {
            return Ok(());
        }
        ensure(verifies, || {
            "[postgres] auth = \"iam\" sends the token as the password: set sslmode = \"verify-full\" (and ca_file to the RDS bundle)".into()
        })?;
        ensure(self.password == Sourced::default(), || {
            "[postgres] auth = \"iam\" logs in with a token: remove password".into()
        })
    }
    fn set_secret(&mut self, value: Secret<String>) {
        self.password = Sourced::Value(value);
    }
    fn secret_fields(&mut self) -> Vec<&mut dyn Fill> {
        vec![&mut self.user, &mut self.password]
    }
    fn build(&self, build: &Build<'_>) -> PostgresProbe {
        let mut probe = PostgresProbe::new(self, build.budget);
        if self.auth == DbAuth::Iam {
            let login = Login::Rds {
                host: self.host.to_string(),
                port: self.port.get(),
                user: self.user.filled().to_string(),
            };
            probe.iam = Some(Iam {
                source: TokenSource::new(build.aws(), login),
                section: self.clone(),
                current: tokio::sync::Mutex::new(None),
            });
        }
        probe
    }
}

/// The check, and whether this session is encrypted (readable by any user for its own pid).
const QUERY: &str = "SELECT 1; SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

/// The `ssl` column of the second statement's row (`t`/`f`), if the server gave one.
fn session_ssl(messages: &[tokio_postgres::SimpleQueryMessage]) -> Option<bool> {
    let rows: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect();
    match rows.as_slice() {
        [one, ssl] if one.get(0) == Some("1") => ssl.get(0).map(|v| v == "t"),
        _ => None,
    }
}

/// Idle pooled connections are closed after this.
const IDLE_TTL: Duration = Duration::from_secs(60);

/// Probes one PostgreSQL endpoint.
pub struct PostgresProbe {
    host: String,
    port: u16,
    user: String,
    dbname: String,
    sslmode: PgSslMode,
    budget: Duration,
    /// The pool, or why it could not be built (a CA file that cannot be read).
    pool: Result<Pool, String>,
    /// `auth = "iam"`: checks go to a probe built with the current token as its password.
    iam: Option<Iam>,
}

struct Iam {
    source: TokenSource,
    section: PostgresConfig,
    /// The token and the probe (pool) that logs in with it; a renewed token builds a new one,
    /// and sessions opened with the old one stay valid, as on RDS.
    current: tokio::sync::Mutex<Option<(String, Arc<PostgresProbe>)>>,
}

impl Iam {
    async fn probe(&self, budget: Duration) -> Result<Arc<PostgresProbe>, Failure> {
        let token = self.source.token().await?;
        let mut current = self.current.lock().await;
        if let Some((_, p)) = current.as_ref().filter(|(t, _)| *t == token) {
            return Ok(p.clone());
        }
        let mut section = self.section.clone();
        section.password = Sourced::Value(Secret::new(token.clone()));
        let probe = Arc::new(PostgresProbe::new(&section, budget));
        *current = Some((token, probe.clone()));
        Ok(probe)
    }
}

impl PostgresProbe {
    /// Builds the pool; no connection is opened until the first check.
    pub fn new(cfg: &PostgresConfig, budget: Duration) -> PostgresProbe {
        let mut pg = tokio_postgres::Config::new();
        pg.host(cfg.host.as_str())
            .port(cfg.port.get())
            .user(cfg.user.filled())
            .password(cfg.password.filled())
            .dbname(cfg.dbname.as_str())
            .application_name("suaicloudapp")
            .connect_timeout(budget)
            .ssl_mode(match cfg.sslmode {
                PgSslMode::Disable => SslMode::Disable,
                PgSslMode::Prefer => SslMode::Prefer,
                _ => SslMode::Require,
            });
        let verify = match cfg.sslmode {
            PgSslMode::VerifyFull => Verify::Full,
            PgSslMode::VerifyCa => Verify::Chain,
            _ => Verify::Nothing,
        };
        let pool = tls::client_config(verify, cfg.ca_file.as_deref())
            .map_err(|e| e.to_string())
            .and_then(|tls| {
                let manager = Manager::from_config(
                    pg,
                    MakeRustlsConnect::new(tls),
                    ManagerConfig {
                        recycling_method: RecyclingMethod::Fast,
                    },
                );
                Pool::builder(manager)
                    .max_size(2)
                    .runtime(Runtime::Tokio1)
                    .wait_timeout(Some(budget))
                    .create_timeout(Some(budget))
                    .recycle_timeout(Some(budget))
                    .build()
                    .map_err(|e| e.to_string())
            });
        PostgresProbe {
            host: cfg.host.to_string(),
            port: cfg.port.get(),
            user: cfg.user.filled().to_string(),
            dbname: cfg.dbname.to_string(),
            sslmode: cfg.sslmode,
            budget,
            pool,
            iam: None,
        }
    }

    async fn run(&self) -> Result<Details, Failure> {
        if let Some(iam) = &self.iam {
            let probe = iam.probe(self.budget).await?;
            return probe.run_pool().await.map_err(|f| match f.stage {
                Stage::Auth => Failure::new(
                    Stage::Auth,
                    format!("IAM authentication refused for user '{}' at {}:{}: the instance role needs rds-db:connect on arn:aws:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/{} (RESOURCE_ID: the instance's DbiResourceId, or the cluster's), and the user must be GRANTed rds_iam ({})", self.user, self.host, self.port, self.user, f.cause),
                ),
                _ => f,
            });
        }
        self.run_pool().await
    }

    /// One check on this probe's own pool.
    async fn run_pool(&self) -> Result<Details, Failure> {
        let pool = self
            .pool
            .as_ref()
            .map_err(|e| Failure::new(Stage::Tls, e.clone()))?;
        // Close connections idle past the TTL: the probe never sits on a busy server's slots.
        pool.retain(|_, m| m.last_used() < IDLE_TTL);
        for attempt in 0..2 {
            let client = pool.get().await.map_err(|e| self.pool_failure(e))?;
            match client.simple_query(QUERY).await {
                Ok(messages) => {
                    let verifying =
                        matches!(self.sslmode, PgSslMode::VerifyCa | PgSslMode::VerifyFull);
                    let tls = match session_ssl(&messages) {
                        Some(encrypted) => super::mysql::tls_state(encrypted, verifying),
                        None => "unknown",
                    };
                    return Ok(vec![
                        ("database", self.dbname.clone()),
                        ("tls", tls.to_string()),
                    ]);
                }
                // A pooled connection the server closed while idle (a restart): retry fresh.
                Err(e) if e.is_closed() && attempt == 0 => {
                    let _ = deadpool_postgres::Object::take(client);
                }
                Err(e) => return Err(self.pg_failure(&e, false)),
            }
        }
        Err(Failure::new(Stage::Query, "the connection kept closing"))
    }

    fn pool_failure(&self, e: PoolError) -> Failure {
        let at = format!("{}:{}", self.host, self.port);
        match e {
            PoolError::Backend(e) => self.pg_failure(&e, true),
            PoolError::Timeout(_) => Failure::new(
                Stage::Timeout,
                format!("no connection to {at} within {} ms: check the security group, or the server is hung", self.budget.as_millis()),
            ),
            other => Failure::new(Stage::Internal, format!("connection pool for {at}: {other}")),
        }
    }

    /// Names the PostgreSQL error an operator can act on.
    fn pg_failure(&self, e: &tokio_postgres::Error, connecting: bool) -> Failure {
        let (at, u, db) = (
            format!("{}:{}", self.host, self.port),
            &self.user,
            &self.dbname,
        );
        if let Some(d) = e.as_db_error() {
            let code = d.code();
            return if *code == SqlState::INVALID_PASSWORD {
                Failure::new(Stage::Auth, format!("password authentication failed for user '{u}': check [postgres] user and password"))
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                Failure::new(
                    Stage::Auth,
                    format!("database '{db}' does not exist: create it, or fix [postgres] dbname"),
                )
            } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                && d.message().contains("no encryption")
            {
                Failure::new(Stage::Tls, format!("pg_hba.conf on {at} only accepts SSL connections for user '{u}': set [postgres] sslmode = \"require\" or stronger"))
            } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
                Failure::new(
                    Stage::Auth,
                    format!("{at} rejected user '{u}' (pg_hba.conf): {}", d.message()),
                )
            } else {
                Failure::new(
                    if connecting {
                        Stage::Auth
                    } else {
                        Stage::Query
                    },
                    format!("SQLSTATE {}: {}", code.code(), d.message()),
                )
            };
        }
        let text = tls::chain_text(e);
        let cause = Cause::new(Some(e), &text);
        if cause.untrusted_certificate() {
            Failure::new(Stage::Tls, format!("certificate of {at} not trusted: point [postgres] ca_file at the CA bundle that signed it (RDS: the global bundle) ({text})"))
        } else if cause.mentions(&["server does not support tls"]) {
            Failure::new(
                Stage::Tls,
                format!(
                    "{at} does not offer SSL but [postgres] sslmode = \"{}\" requires it",
                    self.sslmode.as_str()
                ),
            )
        } else if cause.refused() {
            Failure::new(Stage::Connect, format!("connection refused by {at}: nothing listens there (wrong port, or the database is down)"))
        } else if cause.timed_out() {
            Failure::new(Stage::Timeout, format!("connecting to {at} timed out: check the security group allows this instance on that port"))
        } else if cause.mentions(&["tls", "handshake"]) {
            Failure::new(Stage::Tls, format!("TLS with {at} failed: {text}"))
        } else {
            Failure::new(
                if connecting {
                    Stage::Connect
                } else {
                    Stage::Query
                },
                format!("{at}: {text}"),
            )
        }
    }
}

impl Probe for PostgresProbe {
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        async move { tls::unless_unresolved(&self.host, self.port, self.run().await).await }.boxed()
    }
}
