//! Probes: one file per backend, holding its config section type (which implements
//! [`Unit`]: its validation, its secret, its target), its probe and its client; and the one
//! list of backends below. A line there declares the module, the `Config` field and the
//! registry entry; the CLI help, `config show`, `[health] ready`, the secret variables,
//! `componentType`, the JSON and `/metrics` all follow from it (`registry.rs`).
//!
//! A probe knows exactly one backend and returns data ([`Outcome`](crate::outcome::Outcome));
//! it never formats HTTP. Its budget and target are the registry's, read from its section.

pub mod aws_shell;
mod registry;
mod rotating;
pub mod runner;
mod schema;
pub mod unit;

use crate::outcome::{Details, Failure};
use futures_util::future::BoxFuture;

pub use registry::{
    backend, not_configured_notes, prepare, secret_vars, Backend, Given, Lookup, Registry,
};
pub use runner::ProbeRunner;
pub use schema::LOGS_TOKEN_ENV;
pub use unit::{Build, Unit};

/// One backend check. Implementations build their client in [`Unit::build`] and reuse it.
pub trait Probe: Send + Sync + 'static {
    /// Runs one check. The runner bounds it with the section's budget.
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>>;
}

schema::backends! {
    database: one mysql::DatabaseConfig,
    redis: one redis::RedisConfig,
    s3: one s3::S3Config,
    dynamodb: one dynamodb::DynamoConfig,
    #[cfg(feature = "postgres")]
    postgres: one postgres::PostgresConfig,
    #[cfg(feature = "kinesis")]
    kinesis: one kinesis::KinesisConfig,
    #[cfg(feature = "firehose")]
    firehose: one firehose::FirehoseConfig,
    #[cfg(feature = "sns")]
    sns: one sns::SnsConfig,
    #[cfg(feature = "lambda")]
    lambda: one lambda::LambdaConfig,
    #[cfg(feature = "http")]
    http: each http::HttpCheck,
    #[cfg(feature = "tcp")]
    tcp: each tcp::TcpCheck,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::sync::Arc;

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
        prepare(&mut c, "c", |k| {
            Some(format!("{k}-value-padded-to-32-characters"))
        })
        .unwrap();
        // 31 characters: a logs token that short is refused, naming the variable.
        let short = prepare(&mut c.clone(), "c", |k| {
            (k == crate::probes::schema::LOGS_TOKEN_ENV).then(|| "x".repeat(31))
        });
        let err = short.unwrap_err().to_string();
        assert!(
            err.contains("SUAICLOUDAPP_LOGS_TOKEN is 31 characters"),
            "{err}"
        );
        assert!(!err.contains("xxxx"), "{err}");
        assert_eq!(
            c.database.unwrap().password.filled(),
            "SUAICLOUDAPP_DATABASE_PASSWORD-value-padded-to-32-characters"
        );
        assert_eq!(
            c.redis.unwrap().password.as_ref().unwrap().filled(),
            "SUAICLOUDAPP_REDIS_PASSWORD-value-padded-to-32-characters"
        );
        assert_eq!(
            c.logs.token.as_ref().unwrap().filled(),
            "SUAICLOUDAPP_LOGS_TOKEN-value-padded-to-32-characters"
        );
        #[cfg(feature = "postgres")]
        assert_eq!(
            c.postgres.unwrap().password.filled(),
            "SUAICLOUDAPP_POSTGRES_PASSWORD-value-padded-to-32-characters"
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
