//! The slice of regex's API that mysql_common uses (`regex::bytes`), on regex-lite.
//!
//! Why: mysql_common is the only user of `regex` in suaicloudapp, for seven fixed ASCII patterns,
//! and the full engine (Unicode tables, DFAs, literal searchers) costs far more binary than those
//! patterns need. regex-lite has the same syntax and semantics for them and is linked anyway.
//!
//! Two documented differences from `regex::bytes`, both on input no MySQL server sends:
//! - a haystack that is not valid UTF-8 never matches (regex-lite searches `&str`); with regex's
//!   default Unicode mode a match could not contain an invalid byte either;
//! - `\d` means the ASCII digits only, as in regex-lite. regex's Unicode `\d` would also match
//!   other scripts' digits, which mysql_common then feeds to an ASCII integer parser and unwraps.

/// Patterns over text are regex-lite's own; only the bytes API needs a translation.
pub use regex_lite::{Error, Regex, RegexBuilder};

/// `regex::bytes` for haystacks that are UTF-8 text in bytes.
pub mod bytes {
    use core::ops::{Index, Range};

    pub use regex_lite::Error;

    /// A compiled pattern that searches byte slices.
    #[derive(Clone, Debug)]
    pub struct Regex(regex_lite::Regex);

    /// The capture groups of one match, with spans into the searched bytes.
    #[derive(Debug)]
    pub struct Captures<'h>(regex_lite::Captures<'h>);

    /// One match (or one group of a match) in the searched bytes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Match<'h>(regex_lite::Match<'h>);

    fn text(haystack: &[u8]) -> Option<&str> {
        core::str::from_utf8(haystack).ok()
    }

    impl Regex {
        pub fn new(pattern: &str) -> Result<Regex, Error> {
            regex_lite::Regex::new(pattern).map(Regex)
        }

        pub fn as_str(&self) -> &str {
            self.0.as_str()
        }

        pub fn is_match(&self, haystack: &[u8]) -> bool {
            text(haystack).is_some_and(|h| self.0.is_match(h))
        }

        pub fn find<'h>(&self, haystack: &'h [u8]) -> Option<Match<'h>> {
            self.0.find(text(haystack)?).map(Match)
        }

        pub fn captures<'h>(&self, haystack: &'h [u8]) -> Option<Captures<'h>> {
            self.0.captures(text(haystack)?).map(Captures)
        }

        pub fn captures_len(&self) -> usize {
            self.0.captures_len()
        }
    }

    impl<'h> Captures<'h> {
        pub fn get(&self, i: usize) -> Option<Match<'h>> {
            self.0.get(i).map(Match)
        }

        pub fn name(&self, name: &str) -> Option<Match<'h>> {
            self.0.name(name).map(Match)
        }

        pub fn len(&self) -> usize {
            self.0.len()
        }

        pub fn is_empty(&self) -> bool {
            self.0.len() == 0
        }
    }

    /// `&caps[i]`, panicking on a group that did not take part, as regex's does.
    impl Index<usize> for Captures<'_> {
        type Output = [u8];

        fn index(&self, i: usize) -> &[u8] {
            self.0[i].as_bytes()
        }
    }

    impl<'h> Match<'h> {
        pub fn start(&self) -> usize {
            self.0.start()
        }

        pub fn end(&self) -> usize {
            self.0.end()
        }

        pub fn range(&self) -> Range<usize> {
            self.0.range()
        }

        pub fn len(&self) -> usize {
            self.0.len()
        }

        pub fn is_empty(&self) -> bool {
            self.0.is_empty()
        }

        pub fn as_bytes(&self) -> &'h [u8] {
            self.0.as_str().as_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bytes::Regex;

    /// mysql_common's own patterns (packets/mod.rs, value/convert/mod.rs, crypto/der.rs).
    const VERSION: &str = r"^(\d{1,2})\.(\d{1,2})\.(\d{1,3})(.*)";
    const MARIADB_VERSION: &str = r"^(?:5.5.5-)?(\d{1,2})\.(\d{1,2})\.(\d{1,3})-MariaDB";
    const TIME_HH_MM_SS_MS: &str = r"^\d{2}:[0-5]\d:[0-5]\d\.\d{1,6}$";
    const TIME_HHH_MM_SS: &str = r"^[0-8]\d\d:[0-5]\d:[0-5]\d$";
    const PKCS8: &str = "-----BEGIN PUBLIC KEY-----([^-]*)-----END PUBLIC KEY-----";

    fn groups(pattern: &str, haystack: &[u8]) -> Option<Vec<Vec<u8>>> {
        let re = Regex::new(pattern).unwrap();
        let caps = re.captures(haystack)?;
        Some((1..caps.len()).map(|i| caps[i].to_vec()).collect())
    }

    #[test]
    fn server_versions_split_as_mysql_common_expects() {
        let mysql = groups(VERSION, b"8.0.36-0ubuntu0.22.04.1").unwrap();
        assert_eq!(mysql, [&b"8"[..], b"0", b"36", b"-0ubuntu0.22.04.1"]);
        let maria = groups(MARIADB_VERSION, b"5.5.5-10.11.6-MariaDB-0+deb12u1").unwrap();
        assert_eq!(maria, [&b"10"[..], b"11", b"6"]);
        assert!(groups(MARIADB_VERSION, b"8.0.36").is_none());
        assert!(groups(VERSION, b"v8.0").is_none());
    }

    #[test]
    fn time_strings_match_whole_and_only_whole() {
        let ms = Regex::new(TIME_HH_MM_SS_MS).unwrap();
        assert!(ms.is_match(b"12:34:56.789"));
        assert!(!ms.is_match(b"12:34:56.1234567"));
        assert!(!ms.is_match(b"12:64:56.7"));
        let hhh = Regex::new(TIME_HHH_MM_SS).unwrap();
        assert!(hhh.is_match(b"838:59:59"));
        assert!(!hhh.is_match(b"938:59:59"));
        assert!(!hhh.is_match(b"838:59:59 "));
    }

    #[test]
    fn pem_body_is_captured_across_lines() {
        let pem = b"-----BEGIN PUBLIC KEY-----\nMIIB\nIjAN\n-----END PUBLIC KEY-----\n";
        let body = groups(PKCS8, pem).unwrap();
        assert_eq!(body, [&b"\nMIIB\nIjAN\n"[..]]);
        let re = Regex::new(PKCS8).unwrap();
        let m = re.find(pem).unwrap();
        assert_eq!((m.start(), m.end()), (0, pem.len() - 1));
        assert_eq!(m.as_bytes(), &pem[..pem.len() - 1]);
    }

    #[test]
    fn the_documented_differences_hold() {
        let version = Regex::new(VERSION).unwrap();
        assert!(!version.is_match(b"8.0.36-\xff"), "not UTF-8: no match");
        assert!(version.captures(b"\xff8.0.36").is_none());
        // Arabic-Indic digits: regex's Unicode \d would match them.
        assert!(!version.is_match("٨.٠.٣٦".as_bytes()));
    }

    #[test]
    fn bad_patterns_are_errors() {
        // Built at run time: clippy checks literal patterns given to `Regex::new`.
        let unclosed = String::from(r"(\d");
        assert!(Regex::new(&unclosed).is_err());
    }
}
