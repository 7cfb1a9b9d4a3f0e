//! The whole config: the core sections [`crate::config`] defines, then one field per backend,
//! generated from the registry's lines (the `backends!` invocation in `probes/mod.rs`). Parsing
//! (line and column from serde), the rules across keys, secrets from the environment and
//! `config show` live here, generic over the backends: none of them is named in this file.

use super::BACKENDS;
use crate::config::{self, ConfigError};
use crate::secret::Secret;

/// Declares the backends: for each line `name: one|each module::Section`, the probe module,
/// the `Config` field `name` (`Option<Section>` for `one`, `Vec<Section>` for `each`, an
/// array section `[[name]]`) and its [`Backend`](super::registry::Backend) entry, in the order
/// the lines are written (the order of pages, the dashboard, `check` and `config show`).
/// Attributes on a line (`#[cfg(feature = "...")]`) apply to all three.
macro_rules! backends {
    ($( $(#[$attr:meta])* $name:ident : $kind:ident $module:ident :: $section:ident ),* $(,)?) => {
        $( $(#[$attr])* pub mod $module; )*

        /// The whole configuration. Backend sections are optional: an absent one means "not
        /// configured"; every key beyond the seed schema has a default.
        #[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct Config {
            #[serde(default)]
            pub server: $crate::config::ServerConfig,
            #[serde(default)]
            pub logs: $crate::config::LogsConfig,
            #[serde(default)]
            pub probes: $crate::config::ProbesConfig,
            #[serde(default)]
            pub aws: $crate::config::AwsConfig,
            /// `[secrets]`: the cache of values fetched for secret references.
            #[serde(default)]
            pub secrets: $crate::config::SecretsConfig,
            /// `[health]`: the readiness group behind `/ready`.
            #[serde(default)]
            pub health: $crate::config::HealthConfig,
            $(
                $(#[$attr])*
                #[serde(default, skip_serializing_if = "unit::vacant")]
                pub $name: schema::backends!(@slot $kind $module::$section),
            )*
            /// `[auth]`: ALB sign-in for the detailed pages; absent means they are open.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub auth: Option<$crate::config::AuthConfig>,
        }

        /// Every backend this build can probe, in the registry's order. A feature left out
        /// of the build (`--no-default-features`) drops its line.
        pub const BACKENDS: &[registry::Backend] = &[
            $(
                $(#[$attr])*
                registry::Backend::of::<schema::backends!(@slot $kind $module::$section)>(
                    stringify!($name),
                    |c| c.$name.iter().map(|u| u as &dyn unit::AnyUnit).collect(),
                    |c| c.$name.iter_mut().map(|u| u as &mut dyn unit::AnyUnit).collect(),
                ),
            )*
        ];
    };
    (@slot one $($path:tt)*) => { Option<$($path)*> };
    (@slot each $($path:tt)*) => { Vec<$($path)*> };
}

pub(super) use backends;

/// The variable that may carry `/logs`'s bearer token instead of the file.
pub const LOGS_TOKEN_ENV: &str = "SUAICLOUDAPP_LOGS_TOKEN";

impl super::Config {
    /// Parses TOML text and checks it; `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = config::parse_toml(text, origin)?;
        config.rules().map_err(|message| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        })?;
        Ok(config)
    }

    /// Each rule in turn, backends first; the first one broken is the message.
    fn rules(&self) -> Result<(), String> {
        for backend in BACKENDS {
            backend.validate(self)?;
        }
        config::core_rules(&self.logs, self.auth.as_ref())
    }

    /// Fills secrets from the environment where set (and not empty): each backend's variable
    /// and [`LOGS_TOKEN_ENV`].
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        let value = |var: &str| get(var).filter(|v| !v.is_empty());
        for backend in BACKENDS {
            if let Some(v) = backend.secret_env.and_then(value) {
                backend.set_secret(self, Secret::new(v));
            }
        }
        if let Some(token) = value(LOGS_TOKEN_ENV) {
            self.logs.token = Some(crate::secret_ref::Sourced::Value(Secret::new(token)));
        }
    }

    /// True when a reload would not need a restart: the listener and log file are unchanged.
    pub fn same_listener_and_log_file(&self, other: &Self) -> bool {
        toml::to_string(&self.server).ok() == toml::to_string(&other.server).ok()
            && self.logs.file == other.logs.file
    }

    /// The effective config as TOML, defaults filled in and every secret shown as `***`.
    pub fn to_display_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# {e}\n"))
    }
}

#[cfg(test)]
mod tests;
