//! The probe of a section whose user or password is a secret reference: it fetches the values
//! ([`SecretStore`]), builds the backend's own probe with them, and builds it again when a
//! value changes (a rotation), so the backend's probe never knows where its password came from.
//!
//! When the backend refuses the credentials (stage `auth`: MySQL 1045, PostgreSQL 28P01, Redis
//! WRONGPASS or NOAUTH), the references are fetched again at once (at most once per cache
//! window, the store's rule) and, when that brought a new version, the check is retried once
//! with it: a rotation costs one check, not a cache window of failures. A passing check shows
//! the versions and their age (`secret_version`, `secret_age_s`), never a value.

use super::unit::{AnyUnit, Build};
use super::Probe;
use crate::aws::AwsContext;
use crate::outcome::{Details, Failure, Stage};
use crate::secret_fetch::{Fetched, SecretStore};
use crate::secret_ref::SecretRef;
use futures_util::future::{BoxFuture, FutureExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// A probe built from fetched values, and the versions it was built with.
struct Built {
    versions: Vec<String>,
    probe: Arc<dyn Probe>,
}

pub struct Rotating {
    /// The section as configured, references in place.
    unit: Box<dyn AnyUnit>,
    /// Its references, in the order of its secret fields.
    refs: Vec<SecretRef>,
    budget: Duration,
    aws: Arc<AwsContext>,
    store: Arc<SecretStore>,
    built: Mutex<Option<Built>>,
}

/// The references a section holds, in field order; empty when it holds values only.
pub(super) fn references(unit: &dyn AnyUnit) -> Vec<SecretRef> {
    let mut copy = unit.boxed();
    copy.secret_fields()
        .into_iter()
        .filter_map(|f| f.reference().cloned())
        .collect()
}

impl Rotating {
    pub(super) fn new(
        unit: Box<dyn AnyUnit>,
        refs: Vec<SecretRef>,
        budget: Duration,
        aws: Arc<AwsContext>,
        store: Arc<SecretStore>,
    ) -> Rotating {
        Rotating {
            unit,
            refs,
            budget,
            aws,
            store,
            built: Mutex::new(None),
        }
    }

    async fn fetch(&self) -> Result<Vec<Fetched>, Failure> {
        let mut all = Vec::with_capacity(self.refs.len());
        for r in &self.refs {
            all.push(self.store.get(r).await?);
        }
        Ok(all)
    }

    /// Every reference fetched again after a refusal; `None` when none could be (each was
    /// already re-fetched within the cache window).
    async fn refetch(&self) -> Result<Option<Vec<Fetched>>, Failure> {
        let mut any = false;
        let mut all = Vec::with_capacity(self.refs.len());
        for r in &self.refs {
            match self.store.refetch(r).await? {
                Some(f) => {
                    any = true;
                    all.push(f);
                }
                None => all.push(self.store.get(r).await?),
            }
        }
        Ok(any.then_some(all))
    }

    /// The backend's probe for these values: the one built last when the versions match.
    fn probe_for(
        &self,
        slot: &mut Option<Built>,
        fetched: &[Fetched],
    ) -> Result<Arc<dyn Probe>, Failure> {
        let versions: Vec<String> = fetched.iter().map(|f| f.version.clone()).collect();
        if let Some(b) = slot.as_ref().filter(|b| b.versions == versions) {
            return Ok(b.probe.clone());
        }
        let mut unit = self.unit.boxed();
        let fields = unit.secret_fields();
        let mut values = fetched.iter().zip(&self.refs);
        for field in fields.into_iter().filter(|f| f.reference().is_some()) {
            let (f, r) = values.next().expect("one fetched value per reference");
            field
                .fill(f.value.expose().clone())
                .map_err(|why| Failure::new(Stage::Secret, format!("{r}: {why}")))?;
        }
        let probe = unit.build(&Build {
            budget: self.budget,
            aws: &self.aws,
        });
        *slot = Some(Built {
            versions,
            probe: probe.clone(),
        });
        Ok(probe)
    }

    async fn run(&self) -> Result<Details, Failure> {
        let mut slot = self.built.lock().await;
        let mut fetched = self.fetch().await?;
        let mut result = self.probe_for(&mut slot, &fetched)?.check().await;
        if matches!(&result, Err(f) if f.stage == Stage::Auth) {
            if let Some(fresh) = self.refetch().await? {
                let changed = fresh
                    .iter()
                    .zip(&fetched)
                    .any(|(a, b)| a.version != b.version);
                fetched = fresh;
                if changed {
                    result = self.probe_for(&mut slot, &fetched)?.check().await;
                }
            }
        }
        let (versions, age) = self.shown(&fetched);
        match result {
            Ok(mut details) => {
                details.push(("secret_version", versions));
                details.push(("secret_age_s", age.to_string()));
                Ok(details)
            }
            Err(f) if f.stage == Stage::Auth => Err(Failure::new(
                Stage::Auth,
                format!(
                    "{} (with secret version {versions}, fetched {age} s ago)",
                    f.cause
                ),
            )),
            Err(f) => Err(f),
        }
    }

    /// The distinct versions in use (`,`-joined) and the oldest fetch's age in seconds.
    fn shown(&self, fetched: &[Fetched]) -> (String, u64) {
        let mut versions: Vec<&str> = Vec::new();
        for f in fetched {
            if !versions.contains(&f.version.as_str()) {
                versions.push(&f.version);
            }
        }
        let age = fetched
            .iter()
            .map(|f| f.fetched.elapsed().as_secs())
            .max()
            .unwrap_or(0);
        (versions.join(","), age)
    }
}

impl Probe for Rotating {
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        self.run().boxed()
    }
}
