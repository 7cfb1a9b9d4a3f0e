//! `/database`: `SELECT 1` over a small mysql_async pool built once.
//!
//! Knows MySQL/MariaDB error codes and TLS modes, and nothing about HTTP. The pool holds at
//! most two connections and drops idle ones after a minute, well below any server's
//! `wait_timeout`, so the probe never holds connections a busy RDS instance needs.
//!
//! A passing check says what the connection had: `tls=verified`, `tls=unverified` (the
//! `preferred` default encrypts but trusts any certificate) or `tls=off`. mysql_async keeps
//! its stream's `is_secure` private, so the server's own `Ssl_cipher` for the session says it.

use super::Probe;
use super::unit::{Build, Unit};
use crate::aws::auth_token::{Login, TokenSource};
use crate::config::{ensure, DbAuth, Host, Millis, Name, Port};
use crate::outcome::{Details, Failure, Stage};
use crate::secret::Secret;
use crate::secret_ref::{Fill, Sourced};
use crate::tls::{self, Cause};
use futures_util::future::{BoxFuture, FutureExt};
use mysql_async::prelude::Queryable;
use mysql_async::{
    DriverError, Error, IoError, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// `[database]`: the MySQL / RDS endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub host: Host,
    #[serde(default = "default_mysql_port")]
    pub port: Port,
    /// A name, or a secret reference (`{ secretsmanager = "...", key = "username" }`).
    pub user: Sourced<Name>,
    /// A value, a secret reference, or from `SUAICLOUDAPP_DATABASE_PASSWORD`.
    #[serde(default)]
    pub password: Sourced<Secret<String>>,
    pub dbname: Name,
    /// `"iam"`: log in with an RDS IAM token made from the instance role (no password).
    #[serde(default)]
    pub auth: DbAuth,
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

impl Unit for DatabaseConfig {
    type Probe = MysqlProbe;
    const DATASTORE: bool = true;
    const SECRET_ENV: Option<&'static str> = Some("SUAICLOUDAPP_DATABASE_PASSWORD");

    fn target(&self) -> String {
        format!("{}:{}", self.host, self.port.get())
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn validate(&self) -> Result<(), String> {
        ensure(self.ca_file.is_none() || self.tls != MysqlTls::Disabled, || {
            "[database] ca_file is set but tls = \"disabled\": use tls = \"verify-identity\" or remove ca_file".into()
        })?;
        if self.auth != DbAuth::Iam {
            return Ok(());
        }
        ensure(matches!(self.tls, MysqlTls::VerifyCa | MysqlTls::VerifyIdentity), || {
            "[database] auth = \"iam\" sends the token in cleartext: set tls = \"verify-identity\" (and ca_file to the RDS bundle)".into()
        })?;
        ensure(self.password == Sourced::default(), || {
            "[database] auth = \"iam\" logs in with a token: remove password".into()
        })
    }
    fn set_secret(&mut self, value: Secret<String>) {
        self.password = Sourced::Value(value);
    }
    fn secret_fields(&mut self) -> Vec<&mut dyn Fill> {
        vec![&mut self.user, &mut self.password]
    }
    fn build(&self, build: &Build<'_>) -> MysqlProbe {
        let mut probe = MysqlProbe::new(self);
        if self.auth == DbAuth::Iam {
            probe.iam = Some(Iam {
                source: TokenSource::new(
                    build.aws(),
                    Login::Rds {
                        host: self.host.to_string(),
                        port: self.port.get(),
                        user: self.user.filled().to_string(),
                    },
                ),
                pool_token: Mutex::new(None),
            });
        }
        probe
    }
}

/// Idle pooled connections are closed after this (RDS `wait_timeout` defaults to 8 hours).
const IDLE_TTL: Duration = Duration::from_secs(60);

/// Probes one MySQL endpoint.
pub struct MysqlProbe {
    host: String,
    port: u16,
    user: String,
    dbname: String,
    tls: MysqlTls,
    /// The pool in use; `preferred` swaps in a plain pool when the server offers no TLS.
    pool: Mutex<Pool>,
    plain: OptsBuilder,
    /// True once `preferred` fell back to the plain pool (the server offered no TLS).
    went_plain: AtomicBool,
    ssl: Option<SslOpts>,
    /// `auth = "iam"`: the token source, and the token the pool logs in with.
    iam: Option<Iam>,
}

struct Iam {
    source: TokenSource,
    pool_token: Mutex<Option<String>>,
}

impl MysqlProbe {
    /// Builds the pool (no connection is opened until the first check).
    pub fn new(cfg: &DatabaseConfig) -> MysqlProbe {
        let plain = OptsBuilder::default()
            .ip_or_hostname(cfg.host.as_str())
            .tcp_port(cfg.port.get())
            .user(Some(cfg.user.filled()))
            .pass(Some(cfg.password.filled()))
            .db_name(Some(cfg.dbname.as_str()))
            .prefer_socket(false)
            .stmt_cache_size(0)
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(PoolConstraints::new(0, 2).expect("0 <= 2"))
                    .with_inactive_connection_ttl(IDLE_TTL)
                    .with_ttl_check_interval(Duration::from_secs(30)),
            );
        let ssl = ssl_opts(cfg);
        let opts = match &ssl {
            Some(ssl) => plain.clone().ssl_opts(ssl.clone()),
            None => plain.clone(),
        };
        MysqlProbe {
            host: cfg.host.to_string(),
            port: cfg.port.get(),
            user: cfg.user.filled().to_string(),
            dbname: cfg.dbname.to_string(),
            tls: cfg.tls,
            pool: Mutex::new(Pool::new(opts)),
            plain,
            went_plain: AtomicBool::new(false),
            ssl,
            iam: None,
        }
    }

    /// With `auth = "iam"`: a pool that logs in with the current token (a new pool when the
    /// token was renewed; sessions opened with the old one stay valid, as on RDS).
    async fn use_token(&self) -> Result<(), Failure> {
        let Some(iam) = &self.iam else {
            return Ok(());
        };
        let token = iam.source.token().await?;
        let mut current = iam.pool_token.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_deref() != Some(token.as_str()) {
            let mut opts = self.plain.clone().pass(Some(token.clone())).enable_cleartext_plugin(true);
            if let Some(ssl) = &self.ssl {
                opts = opts.ssl_opts(ssl.clone());
            }
            let old = std::mem::replace(
                &mut *self.pool.lock().unwrap_or_else(|p| p.into_inner()),
                Pool::new(opts),
            );
            tokio::spawn(old.disconnect());
            *current = Some(token);
        }
        Ok(())
    }

    fn pool(&self) -> Pool {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn run(&self) -> Result<Details, Failure> {
        self.use_token().await?;
        let region = match &self.iam {
            Some(iam) => Some(iam.source.region().await),
            None => None,
        };
        match self.select_one(self.pool()).await {
            Err(Staged::Connect(Error::Driver(DriverError::NoClientSslFlagFromServer)))
                if self.tls == MysqlTls::Preferred =>
            {
                // `preferred` means TLS when offered: this server offers none, so go plain.
                let plain = Pool::new(self.plain.clone());
                self.went_plain.store(true, Ordering::Relaxed);
                let old = std::mem::replace(
                    &mut *self.pool.lock().unwrap_or_else(|p| p.into_inner()),
                    plain.clone(),
                );
                tokio::spawn(old.disconnect());
                self.select_one(plain).await
            }
            other => other,
        }
        .map(|(version, encrypted)| {
            let verifying = matches!(self.tls, MysqlTls::VerifyCa | MysqlTls::VerifyIdentity);
            vec![
                ("server_version", version),
                ("tls", tls_state(encrypted, verifying).to_string()),
            ]
        })
        .map_err(|staged| staged.explain(self, region.as_deref()))
    }

    /// Runs `SELECT 1` on a pooled connection, retrying once on a fresh one if the pooled
    /// connection turns out dead (the server restarted while it sat idle); then asks the server
    /// whether that session is encrypted.
    async fn select_one(&self, pool: Pool) -> Result<(String, bool), Staged> {
        for attempt in 0..2 {
            let mut conn = pool.get_conn().await.map_err(Staged::Connect)?;
            let version = conn.server_version();
            match conn.query_first::<i64, _>("SELECT 1").await {
                Ok(Some(1)) => {
                    let cipher = conn
                        .query_first::<(String, String), _>("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                        .await
                        .map_err(Staged::Query)?;
                    // No row (a server whose status variables are off): the driver's own rule
                    // decides, as it refuses a plain session whenever TLS options are set.
                    let encrypted = match cipher {
                        Some((_, c)) => !c.is_empty(),
                        None => {
                            self.tls != MysqlTls::Disabled
                                && !self.went_plain.load(Ordering::Relaxed)
                        }
                    };
                    return Ok((
                        format!("{}.{}.{}", version.0, version.1, version.2),
                        encrypted,
                    ));
                }
                Ok(other) => {
                    return Err(Staged::Unexpected(format!("SELECT 1 returned {other:?}")));
                }
                Err(Error::Io(_)) if attempt == 0 => {
                    let _ = conn.disconnect().await;
                }
                Err(e) => return Err(Staged::Query(e)),
            }
        }
        Err(Staged::Unexpected("the connection kept dropping".into()))
    }
}

/// A mysql_async error and the step it happened at.
#[derive(Debug)]
enum Staged {
    Connect(Error),
    Query(Error),
    Unexpected(String),
}

impl Staged {
    /// Puts the error in an operator's words, naming what to check.
    fn explain(self, p: &MysqlProbe, iam_region: Option<&str>) -> Failure {
        let at = format!("{}:{}", p.host, p.port);
        let (err, connecting) = match self {
            Staged::Connect(e) => (e, true),
            Staged::Query(e) => (e, false),
            Staged::Unexpected(msg) => return Failure::new(Stage::Query, msg),
        };
        match err {
            Error::Server(e) if e.code == 1045 && iam_region.is_some() => {
                iam_refused(p, iam_region.unwrap_or("REGION"))
            }
            Error::Server(e) => server_failure(e.code, &e.message, p),
            Error::Driver(DriverError::NoClientSslFlagFromServer) => Failure::new(
                Stage::Tls,
                format!(
                    "{at} does not offer TLS but [database] tls = \"{}\" requires it",
                    p.tls.as_str()
                ),
            ),
            Error::Io(IoError::Tls(e)) => tls_failure(&e, &at),
            Error::Io(IoError::Io(e)) => io_failure(&e, &at, connecting),
            Error::Driver(e) => Failure::new(
                if connecting {
                    Stage::Connect
                } else {
                    Stage::Query
                },
                format!("MySQL protocol error talking to {at}: {e}"),
            ),
            Error::Other(e) => Failure::new(Stage::Connect, format!("{at}: {e}")),
            Error::Url(e) => Failure::new(Stage::Internal, format!("bad connection settings: {e}")),
        }
    }
}

/// 1045 to an IAM token: the role's permission or the user's plugin.
fn iam_refused(p: &MysqlProbe, region: &str) -> Failure {
    let u = &p.user;
    Failure::new(
        Stage::Auth,
        format!("IAM authentication refused for user '{u}' at {}:{}: the instance role needs rds-db:connect on arn:aws:rds-db:{region}:ACCOUNT:dbuser:RESOURCE_ID/{u} (RESOURCE_ID: the instance's DbiResourceId, or the cluster's), and the user must be created WITH AWSAuthenticationPlugin AS 'RDS'", p.host, p.port),
    )
}

fn server_failure(code: u16, message: &str, p: &MysqlProbe) -> Failure {
    let (u, db) = (&p.user, &p.dbname);
    match code {
        // MariaDB also answers 1045 to a plain connection when it requires secure transport.
        1045 if p.tls == MysqlTls::Disabled => Failure::new(
            Stage::Auth,
            format!("access denied for user '{u}': wrong user or password, or the server requires TLS and [database] tls = \"disabled\""),
        ),
        1045 => Failure::new(
            Stage::Auth,
            format!("access denied for user '{u}' (wrong user or password, or the user may not connect from this host): check [database] user and password"),
        ),
        1044 => Failure::new(
            Stage::Auth,
            format!("user '{u}' has no access to database '{db}': GRANT it, or fix [database] dbname"),
        ),
        1049 => Failure::new(
            Stage::Auth,
            format!("unknown database '{db}': create it, or fix [database] dbname"),
        ),
        // 3159: MySQL's ER_SECURE_TRANSPORT_REQUIRED; MariaDB answers 1105/4151 with this text.
        _ if code == 3159 || message.contains("insecure transport") => Failure::new(
            Stage::Tls,
            "the server requires TLS (require_secure_transport): set [database] tls = \"verify-identity\" with ca_file, or at least \"required\"",
        ),
        1040 => Failure::new(Stage::Connect, "too many connections: the server is at max_connections"),
        _ => Failure::new(Stage::Query, format!("server error {code}: {message}")),
    }
}

fn tls_failure(e: &(dyn std::error::Error + 'static), at: &str) -> Failure {
    let text = e.to_string();
    let cause = if Cause::new(Some(e), &text).untrusted_certificate() {
        format!("certificate of {at} not trusted: point [database] ca_file at the CA bundle that signed it (RDS: the global bundle) ({text})")
    } else {
        format!("TLS handshake with {at} failed: {text}")
    };
    Failure::new(Stage::Tls, cause)
}

fn io_failure(e: &std::io::Error, at: &str, connecting: bool) -> Failure {
    use std::io::ErrorKind::*;
    if Cause::new(Some(e), &e.to_string()).untrusted_certificate() {
        return tls_failure(e, at);
    }
    match e.kind() {
        ConnectionRefused => Failure::new(
            Stage::Connect,
            format!("connection refused by {at}: nothing listens there (wrong port, or the database is down)"),
        ),
        TimedOut => Failure::new(
            Stage::Timeout,
            format!("connecting to {at} timed out: check the security group allows this instance on that port"),
        ),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => Failure::new(
            if connecting { Stage::Connect } else { Stage::Query },
            format!("{at} closed the connection ({e}): a TLS-only port, a proxy, or a restarting server"),
        ),
        _ => Failure::new(Stage::Connect, format!("cannot reach {at}: {e}")),
    }
}

/// `tls=` on a passing row: what the connection had, not what was asked for.
pub(crate) fn tls_state(encrypted: bool, verifying: bool) -> &'static str {
    match (encrypted, verifying) {
        (true, true) => "verified",
        (true, false) => "unverified",
        (false, _) => "off",
    }
}

fn ssl_opts(cfg: &DatabaseConfig) -> Option<SslOpts> {
    let roots = || {
        let base = SslOpts::default();
        match &cfg.ca_file {
            Some(path) => base.with_root_certs(vec![path.clone().into()]),
            None => base,
        }
    };
    match cfg.tls {
        MysqlTls::Disabled => None,
        MysqlTls::Preferred | MysqlTls::Required => Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        MysqlTls::VerifyCa => Some(roots().with_danger_skip_domain_validation(true)),
        MysqlTls::VerifyIdentity => Some(roots()),
    }
}

impl Probe for MysqlProbe {
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        async move { tls::unless_unresolved(&self.host, self.port, self.run().await).await }.boxed()
    }
}
