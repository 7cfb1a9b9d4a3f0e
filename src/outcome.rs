//! What one probe run found: [`Stage`], [`Failure`], [`Outcome`] and the [`Details`] of a pass.
//!
//! A leaf: it imports nothing from this crate, so probes, the AWS error reading, the config
//! source and the pages can all name these types without depending on one another. It holds
//! data only; no client, no formatting for HTTP.

use std::fmt;
use std::time::{Duration, SystemTime};

/// Small facts a probe may report on success (server version, cluster state...).
pub type Details = Vec<(&'static str, String)>;

/// The step at which a check failed, so an operator knows where to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Dns,
    Connect,
    Tls,
    Auth,
    /// A referenced secret could not be fetched (Secrets Manager, Parameter Store).
    Secret,
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
            Stage::Secret => "secret",
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
