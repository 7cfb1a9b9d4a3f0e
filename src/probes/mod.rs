//! Probes: one per configured backend, built once at start, each owning its client.
//!
//! A probe knows exactly one backend and returns data ([`Outcome`](crate::outcome::Outcome)); it never formats HTTP.
//! Adding a backend costs one file here, one config section and one entry in [`BACKENDS`]:
//! the registry, `config show`, `[health] ready`, the secrets taken from the environment and
//! the CLI help all read that table.

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

use crate::aws::{AwsContext, AwsSettings};
use crate::config::{
    Config, ConfigError, DatabaseConfig, LogsConfig, Millis, RedisConfig, SecretEnv,
};
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

/// Every backend this build can probe, in the order pages, the dashboard and `check` list
/// them. A feature left out of the build (`--no-default-features`) drops its line.
pub const BACKENDS: &[Backend] = &[
    Backend::one("database", |c| {
        plan(&c.database, |s, x| {
            mysql::MysqlProbe::new(s, x.budget(s.timeout_ms))
        })
    })
    .secrets(&[DatabaseConfig::PASSWORD_ENV])
    .datastore(),
    Backend::one("redis", |c| {
        plan(&c.redis, |s, x| {
            redis::RedisProbe::new(s, x.budget(s.timeout_ms))
        })
    })
    .secrets(&[RedisConfig::PASSWORD_ENV])
    .datastore(),
    Backend::one("s3", |c| {
        plan(&c.s3, |s, x| {
            s3::S3Probe::new(s, x.budget(s.timeout_ms), x.aws())
        })
    }),
    Backend::one("dynamodb", |c| {
        plan(&c.dynamodb, |s, x| {
            dynamodb::DynamoProbe::new(s, x.budget(s.timeout_ms), x.aws())
        })
    })
    .datastore(),
    #[cfg(feature = "postgres")]
    Backend::one("postgres", |c| {
        plan(&c.postgres, |s, x| {
            postgres::PostgresProbe::new(s, x.budget(s.timeout_ms))
        })
    })
    .secrets(&[crate::config::PostgresConfig::PASSWORD_ENV])
    .datastore(),
    #[cfg(feature = "kinesis")]
    Backend::one("kinesis", |c| {
        plan(&c.kinesis, |s, x| {
            kinesis::KinesisProbe::new(s, x.budget(s.timeout_ms), x.aws())
        })
    }),
    #[cfg(feature = "firehose")]
    Backend::one("firehose", |c| {
        plan(&c.firehose, |s, x| {
            firehose::FirehoseProbe::new(s, x.budget(s.timeout_ms), x.aws())
        })
    }),
    #[cfg(feature = "sns")]
    Backend::one("sns", |c| {
        plan(&c.sns, |s, x| {
            sns::SnsProbe::new(s, x.budget(s.timeout_ms), x.aws())
        })
    }),
    #[cfg(feature = "lambda")]
    Backend::one("lambda", |c| {
        plan(&c.lambda, |s, x| {
            lambda::LambdaProbe::new(s, x.budget(s.timeout_ms), x.aws())
        })
    }),
    #[cfg(feature = "http")]
    Backend::each("http", |c| {
        plan_each(
            &c.http,
            |h| h.name.to_string(),
            |h, x| http::HttpProbe::new(h, x.budget(h.timeout_ms)),
        )
    }),
];

/// One backend: its name, how its probes are built from the config, its secrets.
pub struct Backend {
    /// The config section and the page: `[sns]` is `/sns`; an entry of an array section
    /// (`[[http]]`) is `/http/<entry name>`.
    pub name: &'static str,
    /// Whether the section is an array of entries, each its own page.
    pub per_entry: bool,
    /// Environment variables that may carry this backend's secrets instead of the file.
    pub secrets: &'static [SecretEnv],
    /// A database or cache: health+json's `componentType` is `datastore`, not `component`.
    pub datastore: bool,
    /// The configured section (or entries), each with the way to build its probe; building
    /// waits, so `config show` and validation can ask what is configured without a client.
    plan: for<'a> fn(&'a Config) -> Vec<Planned<'a>>,
}

impl Backend {
    const fn one(name: &'static str, plan: for<'a> fn(&'a Config) -> Vec<Planned<'a>>) -> Self {
        Backend {
            name,
            per_entry: false,
            secrets: &[],
            datastore: false,
            plan,
        }
    }

    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    const fn each(name: &'static str, plan: for<'a> fn(&'a Config) -> Vec<Planned<'a>>) -> Self {
        Backend {
            per_entry: true,
            ..Backend::one(name, plan)
        }
    }

    const fn secrets(self, secrets: &'static [SecretEnv]) -> Self {
        Backend { secrets, ..self }
    }

    const fn datastore(self) -> Self {
        Backend {
            datastore: true,
            ..self
        }
    }

    /// How `--help` and error messages name its pages: `sns`, `http/<name>`.
    pub fn page_pattern(&self) -> String {
        if self.per_entry {
            format!("{}/<name>", self.name)
        } else {
            self.name.to_string()
        }
    }

    /// Whether `config` has this backend's section (or at least one entry).
    pub fn configured(&self, config: &Config) -> bool {
        !(self.plan)(config).is_empty()
    }
}

/// The backend a page belongs to: `sns` for `sns`, `http` for `http/api`.
pub fn backend(page: &str) -> Option<&'static Backend> {
    BACKENDS.iter().find(|b| match page.strip_prefix(b.name) {
        Some("") => !b.per_entry,
        Some(rest) => b.per_entry && rest.starts_with('/'),
        None => false,
    })
}

/// Every variable that may carry a secret instead of the file: each backend's, then the
/// config's own.
pub fn secret_envs() -> impl Iterator<Item = &'static SecretEnv> {
    BACKENDS
        .iter()
        .flat_map(|b| b.secrets)
        .chain(std::iter::once(&LogsConfig::TOKEN_ENV))
}

/// Completes a parsed config with what only the registry knows: secrets from the environment
/// (`env`, the process environment outside tests) for the backends this build has, and
/// `[health] ready` checked against their pages. Every loader calls it before using a config.
pub fn prepare(
    config: &mut Config,
    origin: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    config.apply_env(secret_envs(), env);
    let sections: Vec<(&str, bool)> = BACKENDS
        .iter()
        .filter(|b| !b.per_entry)
        .map(|b| (b.name, b.configured(config)))
        .collect();
    config
        .health
        .validate(config, &sections)
        .map_err(|message| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        })
}

/// The lines `config show` adds after the TOML, one per absent one-page backend.
pub fn not_configured_notes(config: &Config) -> String {
    BACKENDS
        .iter()
        .filter(|b| !b.per_entry && !b.configured(config))
        .map(|b| format!("\n# [{0}] not configured: /{0} answers 404\n", b.name))
        .collect()
}

/// What a backend's build gets besides its section: the default budget and the AWS context
/// every AWS probe shares.
struct BuildContext {
    default_timeout: Millis,
    aws: Arc<AwsContext>,
}

impl BuildContext {
    /// The section's own `timeout_ms`, else `[probes] timeout_ms`.
    fn budget(&self, own: Option<Millis>) -> Duration {
        own.unwrap_or(self.default_timeout).duration()
    }

    fn aws(&self) -> Arc<AwsContext> {
        self.aws.clone()
    }
}

/// Builds one probe from its section, which it borrows from the config.
type Build<'a> = Box<dyn FnOnce(&BuildContext) -> Arc<dyn Probe> + 'a>;

/// A configured section (or `[[http]]` entry) and the way to build its probe.
struct Planned<'a> {
    /// The entry's name for an array section; `None` for a one-page backend.
    entry: Option<String>,
    build: Build<'a>,
}

/// The plan for an optional section: nothing when absent.
fn plan<'a, S, P: Probe>(
    section: &'a Option<S>,
    make: fn(&S, &BuildContext) -> P,
) -> Vec<Planned<'a>> {
    section
        .iter()
        .map(|s| Planned {
            entry: None,
            build: Box::new(move |x| Arc::new(make(s, x))),
        })
        .collect()
}

/// The plan for an array section: one page per entry, named by `name`.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
fn plan_each<'a, S, P: Probe>(
    entries: &'a [S],
    name: fn(&S) -> String,
    make: fn(&S, &BuildContext) -> P,
) -> Vec<Planned<'a>> {
    entries
        .iter()
        .map(|s| Planned {
            entry: Some(name(s)),
            build: Box::new(move |x| Arc::new(make(s, x))),
        })
        .collect()
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
        let context = BuildContext {
            default_timeout: config.probes.timeout_ms,
            aws: Arc::new(AwsContext::new(AwsSettings {
                region: config.aws.region.clone(),
                endpoint_url: config.aws.endpoint_url.clone(),
            })),
        };
        let cache = Duration::from_millis(config.probes.cache_ms);
        let mut r = Registry {
            cache,
            metrics,
            known: Vec::new(),
            runners: Vec::new(),
        };
        for backend in BACKENDS {
            if !backend.per_entry {
                r.known.push(backend.name.to_string());
            }
            for planned in (backend.plan)(config) {
                let name = match planned.entry {
                    Some(entry) => format!("{}/{entry}", backend.name),
                    None => backend.name.to_string(),
                };
                if backend.per_entry {
                    r.known.push(name.clone());
                }
                let probe = (planned.build)(&context);
                r.runners
                    .push(ProbeRunner::new(name, probe, r.cache, r.metrics.clone()));
            }
        }
        r
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(extra: &str) -> Result<Config, String> {
        let text = format!(
            "[database]\nhost = \"db\"\nuser = \"u\"\ndbname = \"d\"\n\n[[http]]\nname = \"api\"\nurl = \"http://127.0.0.1:1/\"\n\n{extra}"
        );
        let mut config = Config::parse(&text, "t.toml").map_err(|e| e.to_string())?;
        prepare(&mut config, "t.toml", |_| None).map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn ready_accepts_configured_backends_only() {
        assert!(load("").unwrap().health.ready.is_empty());
        let c = load("[health]\nready = [\"database\", \"http/api\"]\n").unwrap();
        assert_eq!(c.health.ready, ["database", "http/api"]);
        let e = load("[health]\nready = [\"redis\"]\n").unwrap_err();
        assert!(e.contains("no [redis] section"), "{e}");
        let e = load("[health]\nready = [\"databse\"]\n").unwrap_err();
        assert!(e.contains("\"databse\" is not a backend"), "{e}");
        let e = load("[health]\nready = [\"http/web\"]\n").unwrap_err();
        assert!(e.contains("no [[http]] entry has name = \"web\""), "{e}");
        let e = load("[health]\nready = [\"database\", \"database\"]\n").unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn every_secret_variable_fills_its_key() {
        let mut c = Config::parse(
            "[database]\nhost = \"h\"\nuser = \"u\"\ndbname = \"d\"\n[redis]\nhost = \"r\"\n[postgres]\nhost = \"p\"\nuser = \"u\"\ndbname = \"d\"\n",
            "c",
        )
        .unwrap();
        prepare(&mut c, "c", |k| Some(format!("{k}-value"))).unwrap();
        let shown = |s: &crate::secret::Secret<String>| s.expose().clone();
        assert_eq!(
            shown(&c.database.unwrap().password),
            "SUAICLOUDAPP_DATABASE_PASSWORD-value"
        );
        assert_eq!(
            shown(c.redis.unwrap().password.as_ref().unwrap()),
            "SUAICLOUDAPP_REDIS_PASSWORD-value"
        );
        assert_eq!(
            shown(c.logs.token.as_ref().unwrap()),
            "SUAICLOUDAPP_LOGS_TOKEN-value"
        );
        #[cfg(feature = "postgres")]
        assert_eq!(
            shown(&c.postgres.unwrap().password),
            "SUAICLOUDAPP_POSTGRES_PASSWORD-value"
        );
    }

    #[test]
    fn the_registry_lists_what_is_configured_and_knows_the_rest() {
        let config = load("[s3]\nbucket = \"b\"\n").unwrap();
        let r = Registry::build(&config, Arc::new(Metrics::new()));
        let configured: Vec<&str> = r.runners().iter().map(ProbeRunner::name).collect();
        #[cfg(feature = "http")]
        assert_eq!(configured, ["database", "s3", "http/api"]);
        assert!(matches!(r.lookup("redis"), Lookup::NotConfigured));
        assert!(matches!(r.lookup("nope"), Lookup::Unknown));
        let singles = BACKENDS.iter().filter(|b| !b.per_entry).count();
        assert_eq!(r.known().len(), singles + config.http.len());
        let notes = not_configured_notes(&config);
        assert!(notes.contains("# [redis] not configured: /redis answers 404"));
        assert!(!notes.contains("[database]") && !notes.contains("[s3]"));
        assert!(!notes.contains("http"), "{notes}");
    }

    #[test]
    fn a_page_finds_its_backend() {
        assert_eq!(backend("database").map(|b| b.name), Some("database"));
        assert!(backend("database").unwrap().datastore);
        assert!(!backend("s3").unwrap().datastore);
        #[cfg(feature = "http")]
        assert_eq!(backend("http/api").map(|b| b.name), Some("http"));
        assert!(backend("http").is_none() && backend("databasex").is_none());
        assert!(backend("database/x").is_none());
    }
}
