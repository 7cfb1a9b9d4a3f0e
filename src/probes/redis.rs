//! `/redis`: PING on a standalone Redis, or PING plus `CLUSTER INFO` on a cluster
//! (ElastiCache cluster mode). `mode = "auto"` asks the server (`cluster_enabled:1`).
//!
//! The connection is made on the first check and kept: a ConnectionManager reconnects by
//! itself; a cluster connection that errors or outlives the budget is dropped and rebuilt on
//! the next check.

use super::Probe;
use super::unit::{Build, Unit};
use crate::aws::auth_token::{Login, TokenSource};
use crate::config::{ensure, DbAuth, Host, Millis, Port};
use crate::outcome::{Details, Failure, Stage};
use crate::secret::Secret;
use crate::secret_ref::{Fill, Sourced};
use crate::tls::{self, Cause};
use futures_util::future::{BoxFuture, FutureExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisConnectionInfo,
    RedisError, TlsCertificates,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::Mutex;

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
    /// An ACL user, or a secret reference (`{ secretsmanager = "...", key = "username" }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Sourced<String>>,
    /// A value, a secret reference, or from `SUAICLOUDAPP_REDIS_PASSWORD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Sourced<Secret<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
    /// `"iam"`: ElastiCache IAM authentication, `username` (the user id) with a token from the
    /// instance role instead of a password.
    #[serde(default)]
    pub auth: DbAuth,
    /// With `auth = "iam"`: the replication group id (or serverless cache name) the token is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_name: Option<String>,
    /// With `auth = "iam"`: the cache is ElastiCache Serverless.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub serverless: bool,
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

impl Unit for RedisConfig {
    type Probe = RedisProbe;
    const DATASTORE: bool = true;
    const SECRET_ENV: Option<&'static str> = Some("SUAICLOUDAPP_REDIS_PASSWORD");

    fn target(&self) -> String {
        format!("{}:{}", self.host, self.port.get())
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn validate(&self) -> Result<(), String> {
        ensure(self.ca_file.is_none() || self.tls, || {
            "[redis] ca_file is set but tls = false: set tls = true or remove ca_file".into()
        })?;
        if self.auth != DbAuth::Iam {
            return ensure(self.cache_name.is_none() && !self.serverless, || {
                "[redis] cache_name and serverless are for auth = \"iam\"".into()
            });
        }
        ensure(self.tls, || {
            "[redis] auth = \"iam\" sends the token as the AUTH password: set tls = true".into()
        })?;
        ensure(self.username.is_some() && self.password.is_none(), || {
            "[redis] auth = \"iam\" logs in as username (the ElastiCache user id) with a token: set username, remove password".into()
        })?;
        let name_ok = self.cache_name.as_deref().is_some_and(|n| {
            !n.is_empty()
                && n.len() <= 40
                && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
        ensure(name_ok, || {
            "[redis] auth = \"iam\" needs cache_name: the replication group id or serverless cache name (1-40 lowercase letters, digits, -)".into()
        })
    }
    fn set_secret(&mut self, value: Secret<String>) {
        self.password = Some(Sourced::Value(value));
    }
    fn secret_fields(&mut self) -> Vec<&mut dyn Fill> {
        let mut fields: Vec<&mut dyn Fill> = Vec::new();
        if let Some(u) = &mut self.username {
            fields.push(u);
        }
        if let Some(p) = &mut self.password {
            fields.push(p);
        }
        fields
    }
    fn build(&self, build: &Build<'_>) -> RedisProbe {
        let mut probe = RedisProbe::new(self, build.budget);
        if self.auth == DbAuth::Iam {
            let login = Login::ElastiCache {
                cache: self.cache_name.clone().unwrap_or_default(),
                user: probe.username.clone().unwrap_or_default(),
                serverless: self.serverless,
            };
            probe.iam = Some(TokenSource::new(build.aws(), login));
        }
        probe
    }
}

/// Probes one Redis endpoint.
pub struct RedisProbe {
    host: String,
    port: u16,
    mode: RedisMode,
    tls: bool,
    username: Option<String>,
    password: Option<Secret<String>>,
    /// The CA bundle's bytes, or why it could not be read (reported on every check).
    root_cert: Result<Option<Vec<u8>>, String>,
    budget: Duration,
    conn: Mutex<Option<Conn>>,
    /// `auth = "iam"`: the token source, and the token the connection logged in with.
    iam: Option<TokenSource>,
    iam_token: std::sync::Mutex<Option<String>>,
}

enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisProbe {
    /// Reads the CA file now; connects on the first check.
    pub fn new(cfg: &RedisConfig, budget: Duration) -> RedisProbe {
        let root_cert = match &cfg.ca_file {
            None => Ok(None),
            Some(path) => std::fs::read(path)
                .map(Some)
                .map_err(|e| format!("cannot read [redis] ca_file {}: {e}", path.display())),
        };
        RedisProbe {
            host: cfg.host.to_string(),
            port: cfg.port.get(),
            mode: cfg.mode,
            tls: cfg.tls,
            username: cfg.username.as_ref().and_then(|u| u.value().cloned()),
            password: cfg.password.as_ref().and_then(|p| p.value().cloned()),
            root_cert,
            budget,
            conn: Mutex::new(None),
            iam: None,
            iam_token: std::sync::Mutex::new(None),
        }
    }

    /// The AUTH password: the IAM token when `auth = "iam"`, else the configured one.
    fn secret(&self) -> Option<String> {
        if self.iam.is_some() {
            return self.iam_token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        }
        self.password.as_ref().map(|p| p.expose().clone())
    }

    fn info(&self) -> Result<ConnectionInfo, RedisError> {
        let addr = if self.tls {
            ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(self.host.clone(), self.port)
        };
        let mut settings = RedisConnectionInfo::default();
        if let Some(u) = &self.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = self.secret() {
            settings = settings.set_password(p);
        }
        Ok(addr.into_connection_info()?.set_redis_settings(settings))
    }

    fn certs(&self) -> Option<TlsCertificates> {
        match &self.root_cert {
            Ok(Some(pem)) => Some(TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            }),
            _ => None,
        }
    }

    async fn single(&self) -> Result<ConnectionManager, RedisError> {
        let client = match self.certs() {
            Some(certs) => Client::build_with_tls(self.info()?, certs)?,
            None => Client::open(self.info()?)?,
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.budget))
            .set_response_timeout(Some(self.budget))
            .set_number_of_retries(1);
        ConnectionManager::new_with_config(client, config).await
    }

    async fn cluster(&self) -> Result<ClusterConnection, RedisError> {
        let mut builder = ClusterClientBuilder::new(vec![self.info()?])
            .connection_timeout(self.budget)
            .response_timeout(self.budget)
            .retries(1);
        if let Some(u) = &self.username {
            builder = builder.username(u);
        }
        if let Some(p) = self.secret() {
            builder = builder.password(p);
        }
        if self.tls {
            builder = builder.tls(redis::cluster::TlsMode::Secure);
        }
        if let Some(certs) = self.certs() {
            builder = builder.certs(certs);
        }
        builder.build()?.get_async_connection().await
    }

    async fn connect(&self) -> Result<Conn, RedisError> {
        match self.mode {
            RedisMode::Standalone => Ok(Conn::Single(self.single().await?)),
            RedisMode::Cluster => Ok(Conn::Cluster(self.cluster().await?)),
            RedisMode::Auto => {
                let mut single = self.single().await?;
                let info: String = redis::cmd("INFO")
                    .arg("cluster")
                    .query_async(&mut single)
                    .await?;
                if info.contains("cluster_enabled:1") {
                    Ok(Conn::Cluster(self.cluster().await?))
                } else {
                    Ok(Conn::Single(single))
                }
            }
        }
    }

    async fn run(&self) -> Result<Details, Failure> {
        if let Err(e) = &self.root_cert {
            return Err(Failure::new(Stage::Tls, e.clone()));
        }
        let mut guard = self.conn.lock().await;
        if let Some(iam) = &self.iam {
            // A renewed token (every 10 minutes) makes a new connection: ElastiCache ends an
            // IAM connection after 12 hours, so none of ours lives that long.
            let token = iam.token().await?;
            let mut current = self.iam_token.lock().unwrap_or_else(|p| p.into_inner());
            if current.as_deref() != Some(token.as_str()) {
                *current = Some(token);
                *guard = None;
            }
        }
        // The connection is out of the slot while it is checked and goes back only when the
        // check passed: if the runner's timeout drops this future mid-check, or the check
        // fails, a cluster connection is rebuilt from the configuration endpoint next time
        // (its topology may have moved, or a node it waits on may be paused).
        let conn = match guard.take() {
            Some(conn) => conn,
            None => self
                .connect()
                .await
                .map_err(|e| self.explain(&e, Stage::Connect))?,
        };
        match conn {
            Conn::Single(m) => {
                // The manager reconnects by itself: it stays in the slot whatever happens (a
                // clone shares its one connection).
                let mut probe = m.clone();
                *guard = Some(Conn::Single(m));
                ping(&mut probe)
                    .await
                    .map_err(|e| self.explain(&e, Stage::Query))?;
            }
            Conn::Cluster(mut c) => {
                let result = cluster_check(&mut c).await;
                if result.is_ok() {
                    *guard = Some(Conn::Cluster(c));
                }
                return result.map_err(|e| match e {
                    ClusterFault::Redis(e) => self.explain(&e, Stage::Query),
                    ClusterFault::State(state) => Failure::new(
                        Stage::Query,
                        format!("cluster at {}:{} answers PING but reports {state}: slots are not all served", self.host, self.port),
                    ),
                });
            }
        }
        Ok(vec![("mode", "standalone".into())])
    }

    /// A refused IAM token: the role's permission or the user's authentication mode.
    fn iam_refused(&self, at: &str, user: &str) -> Failure {
        Failure::new(Stage::Auth, format!("WRONGPASS: {at} refused the IAM token for user id '{user}': the instance role needs elasticache:Connect on the replication group (or serverless cache) and on the user, and the user must have authentication mode iam"))
    }

    /// Names the Redis error an operator can act on.
    fn explain(&self, e: &RedisError, stage: Stage) -> Failure {
        let at = format!("{}:{}", self.host, self.port);
        let user = self.username.as_deref().unwrap_or("default");
        match e.code() {
            Some("NOAUTH") => {
                return Failure::new(Stage::Auth, format!("NOAUTH: {at} requires a password: set [redis] password (or SUAICLOUDAPP_REDIS_PASSWORD)"))
            }
            Some("WRONGPASS") if self.iam.is_some() => return self.iam_refused(&at, user),
            Some("WRONGPASS") => {
                return Failure::new(Stage::Auth, format!("WRONGPASS: {at} rejected user '{user}' with this password: check [redis] username and password"))
            }
            Some("NOPERM") => {
                return Failure::new(Stage::Auth, format!("NOPERM: ACL user '{user}' may not run the probe's commands on {at}: allow +ping +info (+cluster|info in cluster mode)"))
            }
            _ => {}
        }
        if e.kind() == ErrorKind::AuthenticationFailed && self.iam.is_some() {
            return self.iam_refused(&at, user);
        }
        if e.kind() == ErrorKind::AuthenticationFailed {
            // redis-rs reports a rejected AUTH (the server's WRONGPASS) with this kind.
            return Failure::new(Stage::Auth, format!("WRONGPASS: {at} rejected user '{user}' with this password: check [redis] username and password"));
        }
        if e.is_connection_refusal() {
            return Failure::new(Stage::Connect, format!("connection refused by {at}: nothing listens there (wrong port, or Redis is down)"));
        }
        if e.is_timeout() {
            return Failure::new(Stage::Timeout, format!("no answer from {at} within {} ms: check the security group, or the server is paused", self.budget.as_millis()));
        }
        let text = e.to_string();
        let cause = Cause::new(Some(e), &text);
        // With no [redis] ca_file the client trusts the system's CA bundle. A static binary on an
        // image without one (or with an unreadable one) fails here: say so, not "wrong CA".
        let certish = cause.untrusted_certificate();
        if self.tls && matches!(self.root_cert, Ok(None)) && (certish || e.kind() == ErrorKind::Io)
        {
            if let Some(why) = system_roots_problem() {
                return Failure::new(Stage::Tls, format!("cannot verify the certificate of {at}: {why}: install ca-certificates (or set SSL_CERT_FILE to a PEM bundle), or set [redis] ca_file"));
            }
        }
        if certish {
            return Failure::new(Stage::Tls, format!("certificate of {at} not trusted: set [redis] ca_file to the CA that signed it ({text})"));
        }
        if cause.mentions(&["invalidcontenttype", "corrupt message"])
            || cause.mentions(&["tls"]) && self.tls
        {
            return Failure::new(
                Stage::Tls,
                format!("TLS handshake with {at} failed: is in-transit encryption on? ({text})"),
            );
        }
        if e.is_io_error() || e.kind() == ErrorKind::Io {
            let hint = if self.tls {
                ""
            } else {
                " (if the server requires TLS, set [redis] tls = true)"
            };
            return Failure::new(Stage::Connect, format!("cannot talk to {at}: {text}{hint}"));
        }
        Failure::new(stage, format!("{at}: {text}"))
    }
}

/// Why the system CA bundle cannot verify anything, if it cannot: none found (no
/// ca-certificates package, an empty chroot or container) or one that does not parse.
fn system_roots_problem() -> Option<String> {
    let found = rustls_native_certs::load_native_certs();
    if let Some(err) = found.errors.first() {
        return Some(format!("the system CA bundle cannot be read ({err})"));
    }
    if !found.certs.is_empty() {
        return None;
    }
    // rustls-native-certs reads only these when either is set, else the usual bundle paths.
    let set: Vec<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
        .collect();
    Some(if set.is_empty() {
        "this system has no CA bundle (no certificates in /etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt or the other usual places)".to_string()
    } else {
        format!("no CA certificates in {}", set.join(", "))
    })
}

async fn ping(m: &mut ConnectionManager) -> Result<(), RedisError> {
    let _: String = redis::cmd("PING").query_async(m).await?;
    Ok(())
}

enum ClusterFault {
    Redis(RedisError),
    State(String),
}

async fn cluster_check(c: &mut ClusterConnection) -> Result<Details, ClusterFault> {
    let _: String = redis::cmd("PING")
        .query_async(c)
        .await
        .map_err(ClusterFault::Redis)?;
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(c)
        .await
        .map_err(ClusterFault::Redis)?;
    let state = info
        .lines()
        .find(|l| l.starts_with("cluster_state:"))
        .unwrap_or("cluster_state:unknown")
        .trim()
        .to_string();
    if state != "cluster_state:ok" {
        return Err(ClusterFault::State(state));
    }
    Ok(vec![("mode", "cluster".into())])
}

impl Probe for RedisProbe {
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        async move { tls::unless_unresolved(&self.host, self.port, self.run().await).await }.boxed()
    }
}
