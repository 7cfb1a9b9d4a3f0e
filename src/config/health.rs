//! `[health]`: the readiness group, the backends `/ready` requires. Checked at load against
//! the configured sections, so a typo is a config error and not an instance that is never
//! ready (or always ready). The registry knows which backends exist, so it runs the check
//! (`probes::prepare`) with the list.

use super::Config;
use serde::{Deserialize, Serialize};

/// `[health]`: what `/ready` checks.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Backend pages (`database`, `redis`, `http/<name>`...) that must pass for `/ready` to
    /// answer 200. Empty: `/ready` answers like `/health`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ready: Vec<String>,
}

impl HealthConfig {
    /// Every name must be a configured backend, once. `sections` are the backends with one
    /// page each, and whether `config` has their section; `http/<name>` is an `[[http]]` entry.
    pub fn validate(&self, config: &Config, sections: &[(&str, bool)]) -> Result<(), String> {
        for (i, name) in self.ready.iter().enumerate() {
            if self.ready[..i].contains(name) {
                return Err(format!("[health] ready lists {name:?} twice"));
            }
            let configured = match name.strip_prefix("http/") {
                Some(h) => config.http.iter().any(|c| c.name.to_string() == h),
                None => match sections.iter().find(|(s, _)| *s == name.as_str()) {
                    Some((_, configured)) => *configured,
                    None => {
                        let known: Vec<&str> = sections.iter().map(|(s, _)| *s).collect();
                        return Err(format!(
                            "[health] ready: {name:?} is not a backend; use the names of configured sections ({}, or http/<name> for an [[http]] entry)",
                            known.join(", ")
                        ));
                    }
                },
            };
            if !configured {
                return Err(match name.strip_prefix("http/") {
                    Some(h) => format!(
                        "[health] ready names {name:?} but no [[http]] entry has name = {h:?}"
                    ),
                    None => format!(
                        "[health] ready names {name:?} but there is no [{name}] section: add it or remove {name:?} from ready"
                    ),
                });
            }
        }
        Ok(())
    }
}
