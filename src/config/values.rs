//! The value types of the config: each one refuses a bad value while the file is parsed, so
//! the error carries the key's line and column (serde's `try_from`), and code that holds one
//! never re-checks it.

use crate::secret_ref::{Fill, SecretRef, Sourced};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A name that is safe in a URL path segment and a metrics label.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct PageName(pub(crate) String);

impl TryFrom<String> for PageName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(PageName(s))
        } else {
            Err(format!(
                "name {s:?} must be 1-64 letters, digits, '-' or '_'"
            ))
        }
    }
}

impl fmt::Display for PageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host name or address; never empty, never containing spaces.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct Host(pub(crate) String);

impl TryFrom<String> for Host {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.trim().is_empty() {
            Err("host must not be empty".into())
        } else if s.chars().any(char::is_whitespace) {
            Err(format!("host {s:?} must not contain spaces"))
        } else {
            Ok(Host(s))
        }
    }
}

impl Host {
    /// The host as written in the config.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A non-empty identifier: bucket, table, user, database name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct Name(pub(crate) String);

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.trim().is_empty() {
            Err("value must not be empty".into())
        } else {
            Ok(Name(s))
        }
    }
}

impl Name {
    /// The name as written in the config.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a database probe logs in: with its password, or with an IAM token made from the
/// instance role (RDS IAM database authentication).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DbAuth {
    #[default]
    Password,
    Iam,
}

/// A TCP port a client connects to: 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64")]
pub struct Port(pub(crate) u16);

impl TryFrom<i64> for Port {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u16::try_from(n) {
            Ok(p) if p != 0 => Ok(Port(p)),
            _ => Err(format!("port must be between 1 and 65535, got {n}")),
        }
    }
}

impl Port {
    /// The port number.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// A duration in milliseconds: at least 1 ms, at most one day (a typo guard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64")]
pub struct Millis(pub(crate) u64);

impl TryFrom<i64> for Millis {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        if (1..=86_400_000).contains(&n) {
            Ok(Millis(n as u64))
        } else {
            Err(format!(
                "milliseconds must be between 1 and 86400000, got {n}"
            ))
        }
    }
}

impl Millis {
    /// As a `Duration`.
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

/// A positive count (connections, lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64")]
pub struct Count(pub(crate) usize);

impl TryFrom<i64> for Count {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match usize::try_from(n) {
            Ok(c) if c > 0 => Ok(Count(c)),
            _ => Err(format!("must be a positive number, got {n}")),
        }
    }
}

impl Count {
    /// The count.
    pub fn get(self) -> usize {
        self.0
    }
}

/// The name rule Kinesis and Firehose share: `[a-zA-Z0-9_.-]{1,max}`.
pub fn aws_name(s: &str, max: usize, what: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a {what} name: 1-{max} letters, digits, '_', '.' or '-' (a name, not an ARN)"
        ))
    }
}

/// Read-only checks, or also a small write (`mode = "write"`), for the probes that offer one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Read,
    Write,
}

impl Sourced<Name> {
    /// The name a probe is built with. A reference is filled before the build (the probe
    /// wrapper of [`crate::probes`]), so an unfilled one never reaches a client: it would log
    /// in as no one.
    pub fn filled(&self) -> &str {
        self.value().map_or("", Name::as_str)
    }
}

/// A user name from a secret is checked as the file's would be.
impl Fill for Sourced<Name> {
    fn reference(&self) -> Option<&SecretRef> {
        Sourced::reference(self)
    }
    fn fill(&mut self, value: String) -> Result<(), String> {
        *self = Sourced::Value(Name::try_from(value)?);
        Ok(())
    }
}

#[cfg(test)]
mod sourced_tests {
    use super::*;
    use crate::secret_ref::Source;

    #[test]
    fn a_filled_user_name_is_checked_as_the_file_would_be() {
        let mut user: Sourced<Name> = Sourced::Ref(SecretRef {
            source: Source::Ssm { name: "/u".into() },
            key: None,
        });
        assert!(user.fill(String::new()).is_err());
        user.fill("app".into()).unwrap();
        assert_eq!(user.filled(), "app");
    }
}
