//! What one backend is to the rest of the program: its config section type implements
//! [`Unit`], and the registry line in `probes/mod.rs` names that type. Everything the program
//! does with a backend besides checking it (its `Config` field, `config show`, the CLI help,
//! `[health] ready`, secrets from the environment, `componentType`, the runner's target and
//! budget) goes through this trait, so a new backend never edits a shared file but the
//! registry's one line.

use super::Probe;
use crate::aws::AwsContext;
use crate::config::Millis;
use crate::secret::Secret;
use crate::secret_ref::Fill;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// A backend's config section (`[database]`, one `[[http]]` entry): its schema is the type's
/// serde shape, and this trait says the rest.
pub trait Unit: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The probe [`Unit::build`] makes.
    type Probe: Probe;
    /// A database or cache: health+json's `componentType` is `datastore`, not `component`.
    const DATASTORE: bool = false;
    /// The environment variable that may carry this section's secret instead of the file (it
    /// wins over the file, so a baked config can carry a placeholder); see [`Unit::set_secret`].
    const SECRET_ENV: Option<&'static str> = None;

    /// Where the probe goes, for pages and messages: `host:port`, a bucket, a table.
    fn target(&self) -> String;
    /// The section's own budget (`timeout_ms`); `[probes] timeout_ms` when `None`.
    fn timeout(&self) -> Option<Millis>;
    /// For an entry of an array section, its name: the page is `/<backend>/<name>`.
    fn entry_name(&self) -> Option<String> {
        None
    }
    /// Rules across the section's keys that serde cannot check alone; the message names the
    /// section and what to change.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
    /// Takes the value of [`Unit::SECRET_ENV`].
    fn set_secret(&mut self, _value: Secret<String>) {}
    /// The fields that may hold a secret reference instead of a value (user, password): the
    /// registry builds the probe through [`super::rotating`] when one does.
    fn secret_fields(&mut self) -> Vec<&mut dyn Fill> {
        Vec::new()
    }
    /// Builds the probe and its client, once per config; `build.budget` is the whole check's.
    fn build(&self, build: &Build<'_>) -> Self::Probe;
}

/// What a unit's probe is built with besides its section.
pub struct Build<'a> {
    /// The whole check's budget; clients set their own timeouts from it.
    pub budget: Duration,
    pub(super) aws: &'a Arc<AwsContext>,
}

impl Build<'_> {
    /// The AWS context every AWS probe shares (one SDK config, one HTTPS client).
    pub fn aws(&self) -> Arc<AwsContext> {
        self.aws.clone()
    }
}

/// [`Unit`] as a trait object, for the registry's loops over every configured section.
pub(super) trait AnyUnit: Send + Sync {
    fn target(&self) -> String;
    fn timeout(&self) -> Option<Millis>;
    fn entry_name(&self) -> Option<String>;
    fn validate(&self) -> Result<(), String>;
    fn set_secret(&mut self, value: Secret<String>);
    fn secret_fields(&mut self) -> Vec<&mut dyn Fill>;
    fn boxed(&self) -> Box<dyn AnyUnit>;
    fn build(&self, build: &Build<'_>) -> Arc<dyn Probe>;
}

impl<U: Unit> AnyUnit for U {
    fn target(&self) -> String {
        Unit::target(self)
    }
    fn timeout(&self) -> Option<Millis> {
        Unit::timeout(self)
    }
    fn entry_name(&self) -> Option<String> {
        Unit::entry_name(self)
    }
    fn validate(&self) -> Result<(), String> {
        Unit::validate(self)
    }
    fn set_secret(&mut self, value: Secret<String>) {
        Unit::set_secret(self, value);
    }
    fn secret_fields(&mut self) -> Vec<&mut dyn Fill> {
        Unit::secret_fields(self)
    }
    fn boxed(&self) -> Box<dyn AnyUnit> {
        Box::new(self.clone())
    }
    fn build(&self, build: &Build<'_>) -> Arc<dyn Probe> {
        Arc::new(Unit::build(self, build))
    }
}

/// How a backend's field holds its sections: `Option<U>` (one page, `[name]`) or `Vec<U>`
/// (`[[name]]`, a page per entry).
pub trait Slot: Default {
    type Unit: Unit;
    /// Whether the section is an array of entries, each its own page.
    const PER_ENTRY: bool;
    /// No section, or no entry.
    fn is_vacant(&self) -> bool;
}

impl<U: Unit> Slot for Option<U> {
    type Unit = U;
    const PER_ENTRY: bool = false;
    fn is_vacant(&self) -> bool {
        self.is_none()
    }
}

impl<U: Unit> Slot for Vec<U> {
    type Unit = U;
    const PER_ENTRY: bool = true;
    fn is_vacant(&self) -> bool {
        self.is_empty()
    }
}

/// serde's `skip_serializing_if` for a backend field: `config show` omits absent sections.
pub fn vacant<S: Slot>(slot: &S) -> bool {
    slot.is_vacant()
}
