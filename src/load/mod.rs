//! Where a config comes from: a path or an `s3://` object ([`source`]), the last known good
//! copy of an `s3://` config that only `serve` keeps and reads ([`last_good`], in a state
//! directory that is never the working one), and the background re-fetch after a boot on
//! that copy ([`refetch`]).
//!
//! This module turns bytes into a checked [`Config`]; what the config means is
//! [`crate::config`]'s, and what the registry adds to it (secrets from the environment,
//! `[health]` names) comes in as the [`Loader`]'s `complete` function, so nothing here
//! imports the probes.

pub mod last_good;
pub mod refetch;
pub mod source;

use crate::config::ConfigError;
use crate::probes::Config;
pub use source::{ConfigSource, FetchOptions, Loaded};

/// Completes a parsed config with what only the registry knows; `origin` names the source in
/// its errors.
pub type Complete = fn(&mut Config, &str) -> Result<(), ConfigError>;

/// What `serve` does with an `s3://` config besides reading it. The other commands read S3's
/// answer and nothing else: they neither write a copy nor fall back on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copies {
    /// Keep every good fetched config as the last known good copy; serve that copy at boot
    /// when S3 cannot be used.
    Keep,
    /// Never touch the state directory.
    Ignore,
}

/// One config source with the way it is fetched and completed: what boot, a SIGHUP reload
/// and the background re-fetch all load through.
#[derive(Clone)]
pub struct Loader {
    pub source: ConfigSource,
    pub opts: FetchOptions,
    pub copies: Copies,
    pub complete: Complete,
}

impl Loader {
    /// Fetches, parses, validates and completes the config. Only a config that passed all of
    /// that becomes the last known good copy, and only when copies are kept.
    pub async fn load(&self) -> Result<(Config, Loaded), ConfigError> {
        let mut loaded = self.source.fetch(&self.opts).await?;
        let mut config = Config::parse(&loaded.text, &loaded.origin)?;
        (self.complete)(&mut config, &loaded.origin)?;
        if self.copies == Copies::Keep {
            loaded.copy = last_good::keep(&self.source, &self.opts, &loaded);
        }
        Ok((config, loaded))
    }

    /// After `failed` ended a boot's load: the last known good copy, completed like a fetched
    /// config, when copies are kept and one exists that still passes. `None` (the caller exits
    /// with `failed`) otherwise; a copy that no longer passes is logged.
    pub fn fallback(&self, failed: &ConfigError) -> Option<(Config, Loaded)> {
        if self.copies != Copies::Keep {
            return None;
        }
        let (mut config, loaded) = last_good::fallback(&self.source, &self.opts, failed)?;
        match (self.complete)(&mut config, &loaded.origin) {
            Ok(()) => Some((config, loaded)),
            Err(e) => {
                tracing::error!("the last known good config is not valid either: {e}");
                None
            }
        }
    }

    /// Loads at boot: S3's config, else (serving only) the last known good copy, saying why.
    pub async fn boot(&self) -> Result<(Config, Loaded), ConfigError> {
        let e = match self.load().await {
            Ok(pair) => return Ok(pair),
            Err(e) => e,
        };
        // Serving the previous good config beats serving nothing: an instance that cannot
        // start would be replaced by one that cannot either, for as long as S3 is out.
        let Some(pair) = self.fallback(&e) else {
            return Err(e);
        };
        tracing::error!("{e}");
        tracing::warn!(
            source = %self.source,
            copy = %pair.1.copy.as_deref().map_or("-".into(), |p| p.display().to_string()),
            etag = pair.1.etag.as_deref().unwrap_or("-"),
            "serving the last known good config; fetching S3's in the background"
        );
        Ok(pair)
    }
}
