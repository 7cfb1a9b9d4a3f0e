//! Where a config comes from: a local path today, `s3://bucket/key` at boot on EC2.
//!
//! This is the one seam between "which bytes" and "what they mean": it returns text plus a
//! description of its origin, and never parses.

use super::ConfigError;
use std::fmt;
use std::path::PathBuf;

/// A config location as given on the command line or in `SUAICLOUDAPP_CONFIG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file on the local disk.
    File(PathBuf),
    /// An object in S3, fetched with the instance's credentials.
    S3 { bucket: String, key: String },
}

/// The text of a config and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub text: String,
    /// Shown in `config show`, logs and error messages.
    pub origin: String,
    /// The object's ETag when it came from S3.
    pub etag: Option<String>,
}

impl ConfigSource {
    /// Parses `s3://bucket/key` or a path.
    pub fn parse(s: &str) -> Result<ConfigSource, ConfigError> {
        let Some(rest) = s.strip_prefix("s3://") else {
            return Ok(ConfigSource::File(PathBuf::from(s)));
        };
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(ConfigSource::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            }),
            _ => Err(ConfigError::Invalid {
                origin: s.to_string(),
                message: "an S3 config source must look like s3://bucket/path/config.toml".into(),
            }),
        }
    }

    /// Reads the text. Bounded: a local read, or (for S3) a fetch with its own deadline.
    pub async fn fetch(&self) -> Result<Loaded, ConfigError> {
        match self {
            ConfigSource::File(path) => {
                let origin = path.display().to_string();
                let text =
                    tokio::fs::read_to_string(path)
                        .await
                        .map_err(|e| ConfigError::Read {
                            origin: origin.clone(),
                            cause: io_cause(&e),
                        })?;
                Ok(Loaded {
                    text,
                    origin,
                    etag: None,
                })
            }
            ConfigSource::S3 { .. } => Err(ConfigError::Read {
                origin: self.to_string(),
                cause: "fetching the config from S3 is not supported by this build yet".into(),
            }),
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// An io error in our words: the OS text without the "(os error N)" noise.
fn io_cause(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            "no such file (pass --config PATH or run from the directory holding config.toml)".into()
        }
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
