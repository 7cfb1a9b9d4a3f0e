//! Which bytes: a local path, or `s3://bucket/key` at boot on EC2.
//!
//! This is the one seam between "which bytes" and "what they mean": it returns text plus a
//! description of its origin, and never parses. At boot on EC2 the S3 object may not be
//! readable yet (the role's credentials, the object itself), so S3 fetches retry with capped,
//! jittered backoff until a deadline, logging each cause. Keeping a fetched copy, and serving
//! it when S3 cannot be read, is `last_good.rs`.

use super::last_good::Fallback;
use crate::aws;
use crate::config::ConfigError;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How an S3 source is fetched.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Region for the fetch; else `AWS_REGION`, else instance metadata.
    pub region: Option<String>,
    /// Retries stop after this long since the first attempt.
    pub deadline: Duration,
    /// Where the fetched copy and its ETag are kept; nothing is kept when `None`.
    pub state_dir: Option<PathBuf>,
    /// The longest wait between two background fetches while the last known good copy is
    /// served ([`super::refetch`]).
    pub retry_max: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            region: None,
            deadline: Duration::from_secs(120),
            state_dir: None,
            retry_max: Duration::from_secs(60),
        }
    }
}

/// The largest config object accepted: a config is a few KiB; anything bigger is a mistake.
const MAX_CONFIG_BYTES: i64 = 1024 * 1024;
/// Per-attempt budget for one GetObject (credentials, DNS, connect, body).
const ATTEMPT_BUDGET: Duration = Duration::from_secs(10);

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
    /// Where the fetched copy was saved, if it was.
    pub copy: Option<PathBuf>,
    /// Set when this is the last known good copy from the state directory, served because the
    /// S3 object could not be used at boot.
    pub fallback: Option<Fallback>,
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

    /// Reads the text. Bounded: a local read, or (for S3) retries until `opts.deadline`.
    pub async fn fetch(&self, opts: &FetchOptions) -> Result<Loaded, ConfigError> {
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
                    copy: None,
                    fallback: None,
                })
            }
            ConfigSource::S3 { bucket, key } => fetch_s3(bucket, key, opts).await,
        }
    }
}

/// One failed GetObject, in words, or the region S3 says the bucket lives in.
enum Attempt {
    WrongRegion(String),
    Failed(String),
    /// Not worth retrying: the object is there but is not a config.
    Fatal(String),
}

async fn fetch_s3(bucket: &str, key: &str, opts: &FetchOptions) -> Result<Loaded, ConfigError> {
    let origin = format!("s3://{bucket}/{key}");
    let started = Instant::now();
    let mut region = opts.region.clone();
    let mut redirected = false;
    let mut delay = Duration::from_millis(500);
    for attempt in 1.. {
        let cause = match get_object(bucket, key, region.clone()).await {
            Ok((text, etag)) => {
                info!(source = %origin, etag = etag.as_deref().unwrap_or("-"), attempt, "config fetched");
                // Kept as the last known good copy only once it parsed (`last_good::keep`).
                return Ok(Loaded {
                    text,
                    origin,
                    etag,
                    copy: None,
                    fallback: None,
                });
            }
            Err(Attempt::WrongRegion(r)) if !redirected => {
                warn!(source = %origin, "the bucket is in region {r}; retrying there");
                redirected = true;
                region = Some(r);
                continue;
            }
            Err(Attempt::WrongRegion(r)) => format!("the bucket is in region {r}"),
            Err(Attempt::Fatal(cause)) => {
                return Err(ConfigError::Invalid {
                    origin,
                    message: cause,
                })
            }
            Err(Attempt::Failed(cause)) => cause,
        };
        let elapsed = started.elapsed();
        if elapsed >= opts.deadline {
            return Err(ConfigError::Read {
                origin,
                cause: format!(
                    "gave up after {attempt} attempts in {} s: {cause}",
                    elapsed.as_secs()
                ),
            });
        }
        // Full jitter: instances booting together do not hit S3 in lockstep.
        let wait = delay
            .mul_f64(0.5 + fastrand::f64() / 2.0)
            .min(opts.deadline - elapsed);
        warn!(source = %origin, attempt, retry_in_ms = wait.as_millis() as u64, "cannot fetch the config: {cause}");
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
    unreachable!("the retry loop returns")
}

/// One GetObject with a fresh SDK config, so credentials that appear after boot are picked up.
async fn get_object(
    bucket: &str,
    key: &str,
    region: Option<String>,
) -> Result<(String, Option<String>), Attempt> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(aws::https_client())
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(aws::timeouts(ATTEMPT_BUDGET));
    // Without one, the loader's own default chain (environment, profile, instance metadata)
    // finds the region: it is the chain that uses the HTTP client above.
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    let sdk = loader.load().await;
    let Some(current) = sdk.region().map(|r| r.to_string()) else {
        return Err(Attempt::Failed(
            "no AWS region: pass --region or set AWS_REGION (instance metadata did not answer)"
                .into(),
        ));
    };
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    let client = aws_sdk_s3::Client::from_conf(conf);
    let out = match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(err) => {
            let elsewhere = err
                .raw_response()
                .and_then(|r| r.headers().get("x-amz-bucket-region"))
                .filter(|r| *r != current)
                .map(str::to_string);
            if let Some(r) = elsewhere {
                return Err(Attempt::WrongRegion(r));
            }
            let cause = match aws::errors::error_code(&err).as_deref() {
                Some("NoSuchKey") => {
                    format!("no such key {key} in bucket {bucket} (not uploaded yet?)")
                }
                Some("NoSuchBucket") => format!("no such bucket {bucket} in region {current}"),
                _ => {
                    let endpoint = aws::errors::Endpoint::new(&sdk, "S3", ATTEMPT_BUDGET);
                    let needs = format!("s3:GetObject on arn:aws:s3:::{bucket}/{key}");
                    let f = aws::errors::failure(&err, &needs, &endpoint);
                    format!("{}: {}", f.stage, f.cause)
                }
            };
            return Err(Attempt::Failed(cause));
        }
    };
    if out.content_length().unwrap_or(0) > MAX_CONFIG_BYTES {
        return Err(Attempt::Fatal(format!(
            "the object is {} bytes; a config is at most {MAX_CONFIG_BYTES}",
            out.content_length().unwrap_or(0)
        )));
    }
    let etag = out.e_tag().map(|e| e.trim_matches('"').to_string());
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| Attempt::Failed(format!("reading the object failed: {e}")))?
        .into_bytes();
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| Attempt::Fatal("the object is not UTF-8 text, so not a TOML config".into()))?;
    Ok((text, etag))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_parses_s3_urls() {
        assert_eq!(
            ConfigSource::parse("s3://b/k/c.toml").unwrap(),
            ConfigSource::S3 {
                bucket: "b".into(),
                key: "k/c.toml".into()
            }
        );
        assert!(ConfigSource::parse("s3://bucket-only").is_err());
        assert_eq!(
            ConfigSource::parse("./c.toml").unwrap(),
            ConfigSource::File("./c.toml".into())
        );
    }
}
