//! `[health]`: the readiness group, the backends `/ready` requires. Checked at load against
//! the configured pages, so a typo is a config error and not an instance that is never ready
//! (or always ready). The registry knows which backends exist and what is configured, so it
//! runs the check (`probes::prepare`) with that list; no backend is named here.

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

/// One backend as the readiness check sees it: its name, whether its section is an array of
/// entries (`[[http]]`, pages `http/<name>`), and the pages the config has.
pub struct Pages {
    pub backend: &'static str,
    pub per_entry: bool,
    pub configured: Vec<String>,
}

impl HealthConfig {
    /// Every name must be a configured page, once.
    pub fn validate(&self, backends: &[Pages]) -> Result<(), String> {
        for (i, name) in self.ready.iter().enumerate() {
            if self.ready[..i].contains(name) {
                return Err(format!("[health] ready lists {name:?} twice"));
            }
            let (base, entry) = match name.split_once('/') {
                Some((b, e)) => (b, Some(e)),
                None => (name.as_str(), None),
            };
            let Some(b) = backends
                .iter()
                .find(|b| b.backend == base && b.per_entry == entry.is_some())
            else {
                return Err(not_a_backend(name, backends));
            };
            if !b.configured.contains(name) {
                return Err(match entry {
                    Some(e) => format!(
                        "[health] ready names {name:?} but no [[{base}]] entry has name = {e:?}"
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

fn not_a_backend(name: &str, backends: &[Pages]) -> String {
    let singles: Vec<&str> = backends
        .iter()
        .filter(|b| !b.per_entry)
        .map(|b| b.backend)
        .collect();
    let arrays: Vec<String> = backends
        .iter()
        .filter(|b| b.per_entry)
        .map(|b| format!("{0}/<name> for an [[{0}]] entry", b.backend))
        .collect();
    let mut names = singles.join(", ");
    if !arrays.is_empty() {
        names.push_str(&format!(", or {}", arrays.join(", ")));
    }
    format!(
        "[health] ready: {name:?} is not a backend; use the names of configured sections ({names})"
    )
}
