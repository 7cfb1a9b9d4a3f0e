//! `Secret<T>`: the only way this program holds a password, token or key; [`SecretUrl`]: a URL
//! whose userinfo (`user:pass@`) and query values (`?token=...`) are secrets.
//!
//! SECURITY: `Debug`, `Display` and `Serialize` all print `***` (a URL prints with its secret
//! parts as `***`), so a secret cannot reach a log line, an error message, a page or `config
//! show` by accident. Reading the value takes an explicit call to `expose`, which is easy to
//! grep for. A secret field holding the wrong type (`password = 12345`) is refused without the
//! value in the message: serde's own text quotes it.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A value that must never be printed. Deserializes transparently from the inner type.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value read from the environment or a file.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The raw value, for handing to a client library; never format the result.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d)
            .map(Secret)
            .map_err(|e| D::Error::custom(without_value(&e.to_string())))
    }
}

/// serde's type errors quote the value they got ("invalid type: integer `12345`, expected a
/// string"); for a secret field keep only what was expected, which comes from the schema.
fn without_value(message: &str) -> String {
    match message.rsplit_once(", expected ") {
        Some((got, expected)) if got.starts_with("invalid type") => {
            format!("invalid type: expected {expected}")
        }
        Some((got, expected)) if got.starts_with("invalid value") => {
            format!("invalid value: expected {expected}")
        }
        _ => "invalid value (not shown: this field holds a secret)".to_string(),
    }
}

/// A URL that may carry credentials: `https://user:pass@host/path?token=abc`. It is shown
/// everywhere as `https://***@host/path?token=***` (every query value and the whole userinfo
/// hidden, keys and the rest kept so an operator still sees where it goes).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    full: Secret<String>,
    shown: String,
}

impl SecretUrl {
    /// Wraps a URL as written in the config.
    pub fn new(url: String) -> SecretUrl {
        SecretUrl {
            shown: redact_url(&url),
            full: Secret::new(url),
        }
    }

    /// The URL with its secrets, for the HTTP client only; never format the result.
    pub fn expose(&self) -> &str {
        self.full.expose()
    }

    /// The URL as it may be shown: userinfo and query values replaced by `***`.
    pub fn redacted(&self) -> &str {
        &self.shown
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.shown)
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Secret::<String>::deserialize(d).map(|s| SecretUrl::new(s.0))
    }
}

/// Hides the secret parts of any URL-like text, valid or not (messages about a bad URL use it
/// too): the userinfo before `@` in the authority, every query value, the fragment, and every
/// path segment that looks like a token (see [`token_like`]): Slack, Discord and Teams webhook
/// URLs carry their secret in the path.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    match authority.rsplit_once('@') {
        Some((_, host)) => {
            out.push_str("***@");
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((b, _)) => (b, Some("***")),
        None => (rest, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    let segments: Vec<&str> = path
        .split('/')
        .map(|seg| if token_like(seg) { "***" } else { seg })
        .collect();
    out.push_str(&segments.join("/"));
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) => format!("{key}=***"),
                None if pair.is_empty() => String::new(),
                None => "***".to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// A path segment that reads as a credential rather than a name: at least 16 characters of the
/// token alphabet (letters, digits, `-`, `_`) with both letters and digits in it, like Slack's
/// `XXXXXXXXXXXXXXXXXXXXXXXX` or a Discord webhook token. Words (`health-check-endpoint`),
/// short ids (`T00000000`) and version segments (`v1`) stay readable. A false positive only
/// hides a path segment from the page; a false negative would show a secret, hence the wide net.
fn token_like(segment: &str) -> bool {
    segment.len() >= 16
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && segment.bytes().any(|b| b.is_ascii_digit())
        && segment.bytes().any(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn urls_keep_their_shape_and_lose_their_secrets() {
        for (url, shown) in [
            ("https://host/path", "https://host/path"),
            (
                "https://user:pa55@host:8443/p?token=abc&x=1",
                "https://***@host:8443/p?token=***&x=***",
            ),
            ("http://h?abc123", "http://h?***"),
            ("https://h/p?a=1#frag", "https://h/p?a=***#***"),
            ("not a url?k=v", "not a url?k=***"),
            ("https://u@h", "https://***@h"),
            (
                "https://hooks.slack.com/services/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",
                "https://hooks.slack.com/services/T0A1B2C3D/B0A1B2C3D4E/***",
            ),
            (
                "https://discord.com/api/webhooks/1234567890123456789/Ab3_dEf-9hIjKlMnOpQrStUvWxYz0123456789",
                "https://discord.com/api/webhooks/1234567890123456789/***",
            ),
            (
                "https://h/api/v2/health-check-endpoint/status",
                "https://h/api/v2/health-check-endpoint/status",
            ),
        ] {
            let u = SecretUrl::new(url.to_string());
            assert_eq!(u.redacted(), shown);
            assert_eq!(format!("{u}"), shown);
            assert_eq!(format!("{u:?}"), shown);
            assert_eq!(u.expose(), url);
        }
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_refused_without_its_value() {
        #[derive(Deserialize, Debug)]
        struct T {
            #[allow(dead_code)]
            password: Secret<String>,
        }
        let e = toml::from_str::<T>("password = 12345").unwrap_err();
        assert_eq!(e.message().trim(), "invalid type: expected a string");
        let e = toml::from_str::<T>("password = 12.5e3").unwrap_err();
        assert!(!e.message().contains("12"), "{}", e.message());
    }
}
