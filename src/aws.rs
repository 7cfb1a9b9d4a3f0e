//! One shared AWS SDK configuration: region, endpoint override, timeouts, credentials chain.
//!
//! Loaded lazily on the first AWS probe, so start-up never waits for instance metadata, and
//! shared by every AWS client. Also turns SDK errors into staged [`Failure`]s in our words.

use crate::config::AwsConfig;
use crate::probes::{Failure, Stage};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The `[aws]` section plus the SDK config built from it on first use.
pub struct AwsContext {
    settings: AwsConfig,
    sdk: OnceCell<SdkConfig>,
}

impl AwsContext {
    /// Remembers the settings; nothing is loaded until [`AwsContext::sdk`] is awaited.
    pub fn new(settings: AwsConfig) -> AwsContext {
        AwsContext {
            settings,
            sdk: OnceCell::new(),
        }
    }

    /// The shared SDK config. The file's `region` and `endpoint_url` win; unset ones come
    /// from the SDK's standard chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, instance metadata).
    pub async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    // One attempt: a probe reports what happened; retrying hides it and adds load.
                    .retry_config(RetryConfig::standard().with_max_attempts(1));
                if let Some(region) = &self.settings.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(url) = &self.settings.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                loader.load().await
            })
            .await
    }
}

/// Explicit timeouts for one client: the SDK has none by default.
pub fn timeouts(budget: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(budget)
        .read_timeout(budget)
        .operation_attempt_timeout(budget)
        .operation_timeout(budget)
        .build()
}

/// The region an SDK config resolved to, for messages and ARNs.
pub fn region_of(sdk: &SdkConfig) -> String {
    sdk.region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "(no region)".into())
}

/// Turns any SDK error into a staged failure. `needs` names the IAM permission and resource,
/// as in "s3:ListBucket on arn:aws:s3:::bucket", for the access-denied message.
pub fn failure<E, R>(err: &SdkError<E, R>, needs: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(_) => {
            let code = err.code().unwrap_or("");
            let msg = err.message().unwrap_or("");
            if is_denied(code) {
                Failure::new(
                    Stage::Auth,
                    format!(
                        "access denied ({code}): the instance role needs {needs}; {}",
                        short(msg)
                    ),
                )
            } else if is_bad_credentials(code) {
                Failure::new(
                    Stage::Auth,
                    format!("the AWS credentials were rejected ({code}): check the instance profile or AWS_ACCESS_KEY_ID; {}", short(msg)),
                )
            } else {
                Failure::new(Stage::Request, format!("{code}: {}", short(msg)))
            }
        }
        SdkError::TimeoutError(_) => Failure::new(
            Stage::Timeout,
            "no answer from the AWS endpoint in time: check the VPC endpoint or NAT route and security groups",
        ),
        _ => transport_failure(&DisplayErrorContext(err).to_string()),
    }
}

/// Access denied as S3, DynamoDB and moto spell it (moto's DynamoDB denial is a 403 with an XML body).
pub fn is_denied(code: &str) -> bool {
    matches!(code, "AccessDenied" | "AccessDeniedException" | "Forbidden")
}

fn is_bad_credentials(code: &str) -> bool {
    matches!(
        code,
        "InvalidAccessKeyId"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "InvalidToken"
    )
}

/// Classifies a failure that happened before an AWS answer arrived, from the error chain text.
fn transport_failure(chain: &str) -> Failure {
    let lower = chain.to_ascii_lowercase();
    let (stage, hint) = if lower.contains("credential") {
        (Stage::Auth, "no AWS credentials could be loaded: attach an instance profile (IAM role) or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        (Stage::Dns, "cannot resolve the AWS endpoint: check the region, the endpoint URL and the VPC's DNS settings")
    } else if lower.contains("certificate") || lower.contains("tls") {
        (Stage::Tls, "TLS to the AWS endpoint failed: check the system CA bundle and any TLS-intercepting proxy")
    } else if lower.contains("refused") {
        (
            Stage::Connect,
            "connection to the AWS endpoint refused: check the endpoint URL",
        )
    } else if lower.contains("timed out") || lower.contains("timeout") {
        (Stage::Timeout, "the AWS endpoint did not answer in time: check the VPC endpoint or NAT route and security groups")
    } else if lower.contains("region") {
        (
            Stage::Request,
            "no AWS region: set [aws] region or AWS_REGION",
        )
    } else {
        (Stage::Request, "the request to AWS failed")
    };
    Failure::new(stage, format!("{hint} ({})", short(chain)))
}

/// Keeps an upstream message to one short line.
fn short(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 300 {
        one_line.chars().take(300).collect::<String>() + "..."
    } else {
        one_line
    }
}
