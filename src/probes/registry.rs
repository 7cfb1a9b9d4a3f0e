//! The registry: what the program knows of each backend ([`Backend`], one per line of
//! `backends!`), and the runners built for a config ([`Registry`]). Generic over the backends:
//! it reads each one through its [`Unit`](super::Unit) and never names one.

use super::rotating::{self, Rotating};
use super::runner::ProbeRunner;
use super::unit::{AnyUnit, Build, Slot, Unit};
use super::{Config, Probe, BACKENDS};
use crate::aws::{AwsContext, AwsSettings};
use crate::config::ConfigError;
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::secret_fetch::SecretStore;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

type Units = for<'a> fn(&'a Config) -> Vec<&'a dyn AnyUnit>;
type UnitsMut = for<'a> fn(&'a mut Config) -> Vec<&'a mut dyn AnyUnit>;

/// One backend: its name, its kind of section, its secret, and its field in [`Config`].
pub struct Backend {
    /// The config section and the page: `[sns]` is `/sns`; an entry of an array section
    /// (`[[http]]`) is `/http/<entry name>`.
    pub name: &'static str,
    /// Whether the section is an array of entries, each its own page.
    pub per_entry: bool,
    /// A database or cache: health+json's `componentType` is `datastore`, not `component`.
    pub datastore: bool,
    /// The environment variable that may carry this backend's secret instead of the file.
    pub secret_env: Option<&'static str>,
    units: Units,
    units_mut: UnitsMut,
}

impl Backend {
    /// The entry for a field of type `S` (`Option<Section>` or `Vec<Section>`).
    pub(super) const fn of<S: Slot>(
        name: &'static str,
        units: Units,
        units_mut: UnitsMut,
    ) -> Backend {
        Backend {
            name,
            per_entry: S::PER_ENTRY,
            datastore: <S::Unit as Unit>::DATASTORE,
            secret_env: <S::Unit as Unit>::SECRET_ENV,
            units,
            units_mut,
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
        !(self.units)(config).is_empty()
    }

    /// The page of each configured section: `database`, or `http/<name>` for each entry.
    pub fn pages(&self, config: &Config) -> Vec<String> {
        (self.units)(config)
            .iter()
            .map(|u| match u.entry_name() {
                Some(entry) => format!("{}/{entry}", self.name),
                None => self.name.to_string(),
            })
            .collect()
    }

    /// Each section's own rules, and for an array section, entry names used once.
    pub(super) fn validate(&self, config: &Config) -> Result<(), String> {
        let mut seen = HashSet::new();
        for unit in (self.units)(config) {
            unit.validate()?;
            if let Some(entry) = unit.entry_name() {
                if !seen.insert(entry.clone()) {
                    return Err(format!(
                        "[[{0}]] name {entry:?} is used twice: pages are /{0}/<name>",
                        self.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Gives every configured section of this backend the secret from its variable.
    pub(super) fn set_secret(&self, config: &mut Config, value: Secret<String>) {
        for unit in (self.units_mut)(config) {
            unit.set_secret(value.clone());
        }
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

/// Every variable that may carry a secret instead of the file: each backend's, then `/logs`'s
/// token.
pub fn secret_vars() -> impl Iterator<Item = &'static str> {
    BACKENDS
        .iter()
        .filter_map(|b| b.secret_env)
        .chain(std::iter::once(super::schema::LOGS_TOKEN_ENV))
}

/// Completes a parsed config: secrets from the environment (`env`, the process environment
/// outside tests), then `[health] ready` checked against the configured pages. Every loader
/// calls it before using a config.
pub fn prepare(
    config: &mut Config,
    origin: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let from_env = env(super::schema::LOGS_TOKEN_ENV).is_some_and(|v| !v.is_empty());
    config.apply_env(env);
    let invalid = |message| ConfigError::Invalid {
        origin: origin.to_string(),
        message,
    };
    let named = if from_env {
        super::schema::LOGS_TOKEN_ENV
    } else {
        "[logs] token"
    };
    crate::config::logs_token_rule(&config.logs, named).map_err(invalid)?;
    let pages: Vec<crate::config::health::Pages> = BACKENDS
        .iter()
        .map(|b| crate::config::health::Pages {
            backend: b.name,
            per_entry: b.per_entry,
            configured: b.pages(config),
        })
        .collect();
    config.health.validate(&pages).map_err(invalid)
}

/// The lines `config show` adds after the TOML: whether `/logs` is open to anyone, then one
/// per absent one-page backend.
pub fn not_configured_notes(config: &Config) -> String {
    let open = crate::config::logs_open_note(&config.logs, config.auth.is_some())
        .map(|note| format!("\n# {note}\n"))
        .unwrap_or_default();
    open + &one_page_notes(config)
}

fn one_page_notes(config: &Config) -> String {
    BACKENDS
        .iter()
        .filter(|b| !b.per_entry && !b.configured(config))
        .map(|b| format!("\n# [{0}] not configured: /{0} answers 404\n", b.name))
        .collect()
}

/// What the registry knows about a page name.
pub enum Lookup<'a> {
    Configured(&'a ProbeRunner),
    NotConfigured,
    Unknown,
}

/// A probe built by the caller ([`Registry::from_probes`]) with what the registry would have
/// read from its section.
pub struct Given {
    /// The page: `database`, `http/<entry>`.
    pub page: String,
    /// Where it goes, as pages and messages name it.
    pub target: String,
    /// The whole check's budget.
    pub budget: Duration,
    pub probe: Arc<dyn Probe>,
}

/// Every probe this binary knows, and a runner for each one that is configured.
pub struct Registry {
    known: Vec<String>,
    runners: Vec<ProbeRunner>,
    /// The secret references' clients and cache, shared by the probes and `/logs`'s token.
    secrets: Arc<SecretStore>,
}

/// The store for `config`'s references: nothing is built or fetched until one is asked for.
fn secret_store(config: &Config, aws: Arc<AwsContext>) -> Arc<SecretStore> {
    Arc::new(SecretStore::new(
        aws,
        config.secrets.cache_ms.duration(),
        config.probes.timeout_ms.duration(),
    ))
}

fn aws_context(config: &Config) -> Arc<AwsContext> {
    Arc::new(AwsContext::new(AwsSettings {
        region: config.aws.region.clone(),
        endpoint_url: config.aws.endpoint_url.clone(),
    }))
}

impl Registry {
    /// Builds one probe per configured section, with its target and budget. Clients are
    /// created here, once.
    pub fn build(config: &Config, metrics: Arc<Metrics>) -> Registry {
        let aws = aws_context(config);
        let store = secret_store(config, aws.clone());
        let cache = Duration::from_millis(config.probes.cache_ms);
        let mut r = Registry {
            known: Vec::new(),
            runners: Vec::new(),
            secrets: store.clone(),
        };
        for backend in BACKENDS {
            if !backend.per_entry {
                r.known.push(backend.name.to_string());
            }
            let units = (backend.units)(config);
            for (unit, page) in units.iter().zip(backend.pages(config)) {
                if backend.per_entry {
                    r.known.push(page.clone());
                }
                let budget = unit
                    .timeout()
                    .unwrap_or(config.probes.timeout_ms)
                    .duration();
                let refs = rotating::references(*unit);
                let probe: Arc<dyn Probe> = if refs.is_empty() {
                    unit.build(&Build { budget, aws: &aws })
                } else {
                    Arc::new(Rotating::new(
                        unit.boxed(),
                        refs,
                        budget,
                        aws.clone(),
                        store.clone(),
                    ))
                };
                let target = unit.target();
                r.runners.push(ProbeRunner::new(
                    page,
                    target,
                    budget,
                    probe,
                    cache,
                    metrics.clone(),
                ));
            }
        }
        r
    }

    /// Runners for probes the caller built, not the config's sections: the seam the fast test
    /// tier (`tests/fast/`) serves pages through, with stand-ins and no backend. In the given
    /// order, with the config's cache window; no client is created and no section read. Every
    /// one-page backend stays known, as [`Registry::build`] has it, so a page given no probe
    /// answers "not configured"; other names (`http/<entry>`) become known by being given.
    /// `metrics` must be the ones the server exports, or `/metrics` will not see these checks.
    pub fn from_probes(config: &Config, probes: Vec<Given>, metrics: Arc<Metrics>) -> Registry {
        let cache = Duration::from_millis(config.probes.cache_ms);
        let mut known: Vec<String> = BACKENDS
            .iter()
            .filter(|b| !b.per_entry)
            .map(|b| b.name.to_string())
            .collect();
        let mut runners = Vec::with_capacity(probes.len());
        for g in probes {
            if !known.contains(&g.page) {
                known.push(g.page.clone());
            }
            runners.push(ProbeRunner::new(
                g.page,
                g.target,
                g.budget,
                g.probe,
                cache,
                metrics.clone(),
            ));
        }
        Registry {
            known,
            runners,
            secrets: secret_store(config, aws_context(config)),
        }
    }

    /// The store the probes fetch referenced secrets through (`/logs` reads its token there).
    pub fn secrets(&self) -> &Arc<SecretStore> {
        &self.secrets
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
