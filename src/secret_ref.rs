//! A secret as the config names it: the value itself (a plain string, as always), or a
//! reference to where it lives, AWS Secrets Manager or SSM Parameter Store:
//!
//! ```toml
//! password = { secretsmanager = "prod/suai/db", key = "password" }
//! user = { secretsmanager = "prod/suai/db", key = "username" }
//! password = { ssm = "/prod/suai/redis-password" }
//! ```
//!
//! Schema only: the shape is checked while the file is parsed (exactly one source; `key` and
//! `version_stage` only with Secrets Manager), so `config validate` needs no AWS call, and
//! `config show` prints the reference, never a value. Fetching is [`crate::secret_fetch`]'s.

use crate::secret::Secret;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Where a referenced secret lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A Secrets Manager secret (name or ARN) at a version stage.
    SecretsManager { id: String, version_stage: String },
    /// A Parameter Store parameter (String or SecureString, decrypted).
    Ssm { name: String },
}

/// A reference: the source and, for a JSON secret, the key whose value is meant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    pub source: Source,
    /// One key of a JSON secret (RDS-managed secrets hold `username` and `password`).
    pub key: Option<String>,
}

/// Secrets Manager's stage of the version in use; rotation moves it last.
pub const DEFAULT_STAGE: &str = "AWSCURRENT";

/// The table as written; [`SecretRef`] is what it means once checked.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secretsmanager: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ssm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version_stage: Option<String>,
}

impl TryFrom<Table> for SecretRef {
    type Error = String;
    fn try_from(t: Table) -> Result<SecretRef, String> {
        let named = |s: Option<String>, what: &str| match s {
            Some(s) if s.trim().is_empty() || s.chars().any(char::is_whitespace) => {
                Err(format!("{what} {s:?} must be a name or ARN without spaces"))
            }
            other => Ok(other),
        };
        let source = match (named(t.secretsmanager, "secretsmanager")?, named(t.ssm, "ssm")?) {
            (Some(id), None) => Source::SecretsManager {
                id,
                version_stage: t.version_stage.unwrap_or_else(|| DEFAULT_STAGE.into()),
            },
            (None, Some(name)) => {
                if t.key.is_some() || t.version_stage.is_some() {
                    return Err("`key` and `version_stage` go with `secretsmanager`, not `ssm` (a parameter holds one value)".into());
                }
                Source::Ssm { name }
            }
            (Some(_), Some(_)) => {
                return Err("a secret reference names one source: `secretsmanager` or `ssm`, not both".into())
            }
            (None, None) => {
                return Err("a secret reference needs `secretsmanager = \"<name or ARN>\"` or `ssm = \"<parameter name>\"`".into())
            }
        };
        if t.key.as_deref().is_some_and(str::is_empty) {
            return Err("`key` must name a key of the JSON secret".into());
        }
        Ok(SecretRef { source, key: t.key })
    }
}

impl From<&SecretRef> for Table {
    fn from(r: &SecretRef) -> Table {
        let (secretsmanager, ssm, version_stage) = match &r.source {
            Source::SecretsManager { id, version_stage } => (
                Some(id.clone()),
                None,
                (version_stage != DEFAULT_STAGE).then(|| version_stage.clone()),
            ),
            Source::Ssm { name } => (None, Some(name.clone()), None),
        };
        Table {
            secretsmanager,
            ssm,
            key: r.key.clone(),
            version_stage,
        }
    }
}

impl fmt::Display for SecretRef {
    /// How messages name it: `Secrets Manager secret prod/suai/db (key password)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::SecretsManager { id, version_stage } => {
                write!(f, "Secrets Manager secret {id}")?;
                if version_stage != DEFAULT_STAGE {
                    write!(f, " at {version_stage}")?;
                }
            }
            Source::Ssm { name } => write!(f, "SSM parameter {name}")?,
        }
        match &self.key {
            Some(k) => write!(f, " (key {k})"),
            None => Ok(()),
        }
    }
}

/// A config field that holds a value or a reference to one: a password
/// (`Sourced<Secret<String>>`) or a user name (`Sourced<Name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sourced<T> {
    Value(T),
    Ref(SecretRef),
}

impl<T: Default> Default for Sourced<T> {
    fn default() -> Self {
        Sourced::Value(T::default())
    }
}

impl<T> Sourced<T> {
    /// The value, once it is one (a reference is filled in before its probe is built).
    pub fn value(&self) -> Option<&T> {
        match self {
            Sourced::Value(v) => Some(v),
            Sourced::Ref(_) => None,
        }
    }

    /// The reference, when the field is one.
    pub fn reference(&self) -> Option<&SecretRef> {
        match self {
            Sourced::Ref(r) => Some(r),
            Sourced::Value(_) => None,
        }
    }
}

impl Sourced<Secret<String>> {
    /// The password a probe is built with (an unfilled reference: none; see above).
    pub fn filled(&self) -> &str {
        self.value().map_or("", |p| p.expose().as_str())
    }
}

/// A field a fetched secret can fill: the probe wrapper of [`crate::probes`] resolves each
/// reference and writes the value here, checked as the file's value would be.
pub trait Fill {
    /// The reference, if the field holds one.
    fn reference(&self) -> Option<&SecretRef>;
    /// Replaces the reference with the fetched value; `Err` says why the value does not fit
    /// (without quoting it).
    fn fill(&mut self, value: String) -> Result<(), String>;
}

impl Fill for Sourced<Secret<String>> {
    fn reference(&self) -> Option<&SecretRef> {
        Sourced::reference(self)
    }
    fn fill(&mut self, value: String) -> Result<(), String> {
        *self = Sourced::Value(Secret::new(value));
        Ok(())
    }
}

/// A plain value that is not a secret (a Redis ACL user name).
impl Fill for Sourced<String> {
    fn reference(&self) -> Option<&SecretRef> {
        Sourced::reference(self)
    }
    fn fill(&mut self, value: String) -> Result<(), String> {
        *self = Sourced::Value(value);
        Ok(())
    }
}

impl<T: Serialize> Serialize for Sourced<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Sourced::Value(v) => v.serialize(s),
            Sourced::Ref(r) => Table::from(r).serialize(s),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Sourced<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A table is a reference; anything else is the field's own value, read by its type
        // (whose errors never quote a secret: see `Secret`).
        match toml::Value::deserialize(d)? {
            toml::Value::Table(t) => {
                let table = Table::deserialize(toml::Value::Table(t)).map_err(D::Error::custom)?;
                SecretRef::try_from(table)
                    .map(Sourced::Ref)
                    .map_err(D::Error::custom)
            }
            other => T::deserialize(other)
                .map(Sourced::Value)
                .map_err(|e| D::Error::custom(e.message())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize, Debug)]
    struct S {
        #[serde(default)]
        password: Sourced<Secret<String>>,
    }

    fn parse(text: &str) -> Result<S, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_string_is_a_value_and_a_table_a_reference() {
        let s = parse("password = \"hunter2-plain\"").unwrap();
        assert_eq!(s.password.value().unwrap().expose(), "hunter2-plain");
        let s = parse("password = { secretsmanager = \"prod/db\", key = \"password\" }").unwrap();
        let r = s.password.reference().unwrap();
        assert_eq!(
            r.source,
            Source::SecretsManager {
                id: "prod/db".into(),
                version_stage: "AWSCURRENT".into()
            }
        );
        assert_eq!(
            r.to_string(),
            "Secrets Manager secret prod/db (key password)"
        );
        let s = parse("password = { ssm = \"/suai/redis\" }").unwrap();
        assert_eq!(
            s.password.reference().unwrap().to_string(),
            "SSM parameter /suai/redis"
        );
    }

    #[test]
    fn config_show_prints_the_reference_and_never_a_value() {
        let s = parse("password = { secretsmanager = \"prod/db\", key = \"password\", version_stage = \"AWSPENDING\" }").unwrap();
        let shown = toml::to_string(&s).unwrap();
        assert!(shown.contains("secretsmanager = \"prod/db\""), "{shown}");
        assert!(shown.contains("version_stage = \"AWSPENDING\""), "{shown}");
        let shown = toml::to_string(&parse("password = \"hunter2-plain\"").unwrap()).unwrap();
        assert_eq!(shown.trim(), "password = \"***\"");
    }

    #[test]
    fn a_bad_shape_is_refused_with_its_line_and_what_to_write() {
        for (text, want) in [
            ("password = { }", "needs `secretsmanager"),
            (
                "password = { secretsmanager = \"a\", ssm = \"b\" }",
                "not both",
            ),
            (
                "password = { ssm = \"b\", key = \"password\" }",
                "go with `secretsmanager`",
            ),
            (
                "password = { secretsmanager = \"a\", keys = \"password\" }",
                "unknown field `keys`",
            ),
            ("password = { secretsmanager = \"\" }", "without spaces"),
            (
                "password = { secretsmanager = \"a\", key = \"\" }",
                "must name a key",
            ),
        ] {
            let e = parse(&format!("\n{text}\n")).unwrap_err();
            assert!(e.contains(want) && e.contains("line 2"), "{text}: {e}");
        }
        // A wrong type in the value form is still the field's own error (whose message never
        // quotes the value; the config loader also drops toml's source snippet).
        let e = parse("password = 123456789").unwrap_err();
        assert!(e.contains("invalid type: expected a string"), "{e}");
    }
}
