//! Why a config was refused, in one line an operator can act on: the file, the line and
//! column of the bad key, and for a misspelt key or value the closest valid one.

/// Why a configuration was refused. Each message is one line naming where to look.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read the config: {cause}")]
    Read { origin: String, cause: String },
    #[error("{origin}:{line}:{column}: {message}")]
    Parse {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// Turns a toml/serde error into one line with line, column and a "did you mean" hint.
pub(super) fn parse_error(e: toml::de::Error, text: &str, origin: &str) -> ConfigError {
    let (line, column) = e
        .span()
        .map(|s| line_column(text, s.start))
        .unwrap_or((1, 1));
    let mut message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(hint) = did_you_mean(&message) {
        message.push_str(&format!(" (did you mean `{hint}`?)"));
    }
    ConfigError::Parse {
        origin: origin.to_string(),
        line,
        column,
        message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the closest expected name.
fn did_you_mean(message: &str) -> Option<String> {
    if !message.starts_with("unknown field") && !message.starts_with("unknown variant") {
        return None;
    }
    let mut quoted = message.split('`').skip(1).step_by(2);
    let unknown = quoted.next()?;
    quoted
        .map(|c| (strsim::damerau_levenshtein(unknown, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c.to_string())
}
