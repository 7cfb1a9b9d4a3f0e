//! `[health]`: the readiness group, the backends `/ready` requires. Checked at load against
//! the configured sections, so a typo is a config error and not an instance that is never
//! ready (or always ready).

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
    /// Every name must be a configured backend, once.
    pub(super) fn validate(&self, config: &Config) -> Result<(), String> {
        let sections = config.sections();
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

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(extra: &str) -> Result<Config, String> {
        let text = format!(
            "[database]\nhost = \"db\"\nuser = \"u\"\ndbname = \"d\"\n\n[[http]]\nname = \"api\"\nurl = \"http://127.0.0.1:1/\"\n\n{extra}"
        );
        Config::parse(&text, "t.toml").map_err(|e| e.to_string())
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
}
