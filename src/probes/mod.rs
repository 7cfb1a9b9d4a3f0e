//! Probes: one per configured backend, built once at start, each owning its client.
//!
//! A probe knows exactly one backend and returns data ([`Outcome`]); it never formats HTTP.
//! Adding a backend costs one file here, one config section and one `register` line in
//! [`Registry::build`].

pub mod dynamodb;
#[cfg(feature = "firehose")]
pub mod firehose;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "kinesis")]
pub mod kinesis;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod redis;
pub mod runner;
pub mod s3;
#[cfg(feature = "sns")]
pub mod sns;

use crate::aws::AwsContext;
use crate::config::{Config, Millis};
use crate::metrics::Metrics;
use futures_util::future::BoxFuture;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use runner::ProbeRunner;

/// Small facts a probe may report on success (server version, cluster state...).
pub type Details = Vec<(&'static str, String)>;

/// One backend check. Implementations build their client in `new` and reuse it.
pub trait Probe: Send + Sync + 'static {
    /// Where the probe goes, for messages: `host:port`, a bucket, a table.
    fn target(&self) -> String;
    /// The budget the whole check runs under; clients set their own timeouts from it too.
    fn budget(&self) -> Duration;
    /// Runs one check. The runner bounds it with the probe's timeout.
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>>;
}

/// The step at which a check failed, so an operator knows where to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Dns,
    Connect,
    Tls,
    Auth,
    Query,
    Request,
    Timeout,
    Internal,
}

impl Stage {
    /// The lower-case word shown in `ERROR: <stage>: <cause>` and `X-Probe-Stage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dns => "dns",
            Stage::Connect => "connect",
            Stage::Tls => "tls",
            Stage::Auth => "auth",
            Stage::Query => "query",
            Stage::Request => "request",
            Stage::Timeout => "timeout",
            Stage::Internal => "internal",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a check failed: the stage plus one line in our own words (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    pub cause: String,
}

impl Failure {
    /// A failure at `stage`; newlines in `cause` are folded so the answer stays one line.
    pub fn new(stage: Stage, cause: impl Into<String>) -> Failure {
        let cause: String = cause.into();
        Failure {
            stage,
            cause: cause.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }
}

/// The result of one probe run, as pages and the CLI see it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    /// Where the probe went (`host:port`, `s3://bucket`...), for dashboards.
    pub target: String,
    pub result: Result<Details, Failure>,
    pub duration: Duration,
    pub checked_at: SystemTime,
}

impl Outcome {
    /// True when the backend answered as expected.
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    /// A passing check's details as `key=value` pairs, space-separated (empty on failure): what
    /// an operator compares against what they expected to reach (`server_version=8.0.35`,
    /// `mode=cluster`).
    pub fn detail(&self) -> String {
        let Ok(details) = &self.result else {
            return String::new();
        };
        let pairs: Vec<String> = details.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(" ")
    }
}

/// When a connect-stage failure is really a name that does not resolve, says so.
pub(crate) async fn dns_failure(host: &str, port: u16) -> Option<Failure> {
    let resolved = tokio::net::lookup_host((host, port)).await;
    match resolved.map(|mut addrs| addrs.next().is_some()) {
        Ok(true) => None,
        _ => Some(Failure::new(
            Stage::Dns,
            format!("cannot resolve {host}: check the endpoint name and the VPC's DNS settings"),
        )),
    }
}

/// What the registry knows about a page name.
pub enum Lookup<'a> {
    Configured(&'a ProbeRunner),
    NotConfigured,
    Unknown,
}

/// Every probe this binary knows, and a runner for each one that is configured.
pub struct Registry {
    cache: Duration,
    metrics: Arc<Metrics>,
    known: Vec<String>,
    runners: Vec<ProbeRunner>,
}

impl Registry {
    /// Builds one probe per configured section. Clients are created here, once.
    pub fn build(config: &Config, metrics: Arc<Metrics>) -> Registry {
        let default = config.probes.timeout_ms;
        let budget = |own: Option<Millis>| own.unwrap_or(default).duration();
        let aws = Arc::new(AwsContext::new(config.aws.clone()));
        let mut r = Registry {
            cache: Duration::from_millis(config.probes.cache_ms),
            metrics,
            known: Vec::new(),
            runners: Vec::new(),
        };
        r.register(
            "database",
            config
                .database
                .as_ref()
                .map(|c| mysql::MysqlProbe::new(c, budget(c.timeout_ms))),
        );
        r.register(
            "redis",
            config
                .redis
                .as_ref()
                .map(|c| redis::RedisProbe::new(c, budget(c.timeout_ms))),
        );
        r.register(
            "s3",
            config
                .s3
                .as_ref()
                .map(|c| s3::S3Probe::new(c, budget(c.timeout_ms), aws.clone())),
        );
        r.register(
            "dynamodb",
            config
                .dynamodb
                .as_ref()
                .map(|c| dynamodb::DynamoProbe::new(c, budget(c.timeout_ms), aws.clone())),
        );
        #[cfg(feature = "postgres")]
        r.register(
            "postgres",
            config
                .postgres
                .as_ref()
                .map(|c| postgres::PostgresProbe::new(c, budget(c.timeout_ms))),
        );
        #[cfg(feature = "kinesis")]
        r.register(
            "kinesis",
            config
                .kinesis
                .as_ref()
                .map(|c| kinesis::KinesisProbe::new(c, budget(c.timeout_ms), aws.clone())),
        );
        #[cfg(feature = "firehose")]
        r.register(
            "firehose",
            config
                .firehose
                .as_ref()
                .map(|c| firehose::FirehoseProbe::new(c, budget(c.timeout_ms), aws.clone())),
        );
        #[cfg(feature = "sns")]
        r.register(
            "sns",
            config
                .sns
                .as_ref()
                .map(|c| sns::SnsProbe::new(c, budget(c.timeout_ms), aws.clone())),
        );
        #[cfg(feature = "lambda")]
        r.register(
            "lambda",
            config
                .lambda
                .as_ref()
                .map(|c| lambda::LambdaProbe::new(c, budget(c.timeout_ms), aws.clone())),
        );
        #[cfg(feature = "http")]
        for c in &config.http {
            r.register(
                format!("http/{}", c.name),
                Some(http::HttpProbe::new(c, budget(c.timeout_ms))),
            );
        }
        r
    }

    /// Records a backend name and, when its section is present, its runner.
    fn register<P: Probe>(&mut self, name: impl Into<String>, probe: Option<P>) {
        let name = name.into();
        self.known.push(name.clone());
        if let Some(p) = probe {
            let metrics = self.metrics.clone();
            self.runners
                .push(ProbeRunner::new(name, Arc::new(p), self.cache, metrics));
        }
    }

    /// Finds the runner behind a page name.
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        match self.runners.iter().find(|r| r.name() == name) {
            Some(r) => Lookup::Configured(r),
            None if self.known.iter().any(|k| k == name) => Lookup::NotConfigured,
            None => Lookup::Unknown,
        }
    }

    /// Every backend name this binary can probe, configured or not.
    pub fn known(&self) -> &[String] {
        &self.known
    }

    /// The configured runners, in registry order.
    pub fn runners(&self) -> &[ProbeRunner] {
        &self.runners
    }
}
