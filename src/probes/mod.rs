//! Probes: one per configured backend, built once at start, each owning its client.
//!
//! A probe knows exactly one backend and returns data ([`Outcome`](crate::outcome::Outcome)); it never formats HTTP.
//! Adding a backend costs one file here, one config section and one `register` line in
//! [`Registry::build`].

pub mod aws_errors;
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
pub mod tls;

use crate::aws::AwsContext;
use crate::config::{Config, Millis};
use crate::metrics::Metrics;
use crate::outcome::{Details, Failure};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

pub use runner::ProbeRunner;

/// One backend check. Implementations build their client in `new` and reuse it.
pub trait Probe: Send + Sync + 'static {
    /// Where the probe goes, for messages: `host:port`, a bucket, a table.
    fn target(&self) -> String;
    /// The budget the whole check runs under; clients set their own timeouts from it too.
    fn budget(&self) -> Duration;
    /// Runs one check. The runner bounds it with the probe's timeout.
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>>;
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
