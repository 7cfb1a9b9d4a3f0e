//! SDK plumbing only: one shared AWS SDK configuration (region, endpoint override,
//! credentials chain), the HTTPS client every AWS call uses, and explicit timeouts.
//!
//! Loaded lazily on the first AWS probe, so start-up never waits for instance metadata, and
//! shared by every AWS client. What an SDK error means for an operator (and the lazy client
//! every AWS probe builds) is [`errors`]. This module imports only [`crate::outcome`] and
//! [`crate::tls`]: it knows nothing of the config file or of probes; the caller hands it the
//! `[aws]` settings as plain values.

pub mod auth_token;
pub mod errors;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::SharedHttpClient;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The settings the shared SDK config is built from: the config file's `[aws]` section, as
/// plain values, so this module does not depend on the config schema.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// The region; unset means the SDK's chain (`AWS_REGION`, instance metadata).
    pub region: Option<String>,
    /// An endpoint override (emulators such as moto); unset means `AWS_ENDPOINT_URL` or AWS.
    pub endpoint_url: Option<String>,
}

/// The `[aws]` settings plus the SDK config built from them on first use.
pub struct AwsContext {
    settings: AwsSettings,
    sdk: OnceCell<SdkConfig>,
}

impl AwsContext {
    /// Remembers the settings; nothing is loaded until [`AwsContext::sdk`] is awaited.
    pub fn new(settings: AwsSettings) -> AwsContext {
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
                    .http_client(https_client())
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

/// The HTTPS client of every AWS call (probes, the `s3://` config, instance metadata): rustls
/// with ring, the TLS stack of the other probes, instead of the SDK's default aws-lc one. One
/// instance, so its connection pool is shared.
pub fn https_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https()
        })
        .clone()
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
