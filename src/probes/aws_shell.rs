//! One shell for every AWS probe: the service client built once (on the first check) from the
//! shared SDK config with the section's budget as its timeouts, and the error classification of
//! [`crate::aws::errors`]. An AWS backend's section type implements [`AwsCall`] and says only
//! its service, how its client is configured, its one call and how to read the answer.

use super::unit::Build;
use super::Probe;
use crate::aws::errors::{Built, LazyClient};
use crate::outcome::{Details, Failure};
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use futures_util::future::{BoxFuture, FutureExt};

/// What an AWS probe asks of its service.
pub trait AwsCall: Send + Sync + 'static {
    /// The service client.
    type Client: Send + Sync + 'static;
    /// The service as messages name it ("the Kinesis endpoint of eu-west-1").
    const SERVICE: &'static str;
    /// The client from the shared SDK config and the probe's timeouts (a service may add its
    /// own settings: S3's path-style addressing, SNS's topic region).
    fn client(&self, sdk: &SdkConfig, timeouts: TimeoutConfig) -> Self::Client;
    /// The check: one call (or a short, fixed sequence) and what its answer means.
    fn call<'a>(
        &'a self,
        built: &'a Built<Self::Client>,
    ) -> BoxFuture<'a, Result<Details, Failure>>;
}

/// The probe of an AWS backend: its call and its lazily built client.
pub struct AwsProbe<C: AwsCall> {
    call: C,
    client: LazyClient<C::Client>,
}

impl<C: AwsCall> AwsProbe<C> {
    /// Nothing is built or sent until the first check.
    pub fn new(call: C, build: &Build<'_>) -> AwsProbe<C> {
        AwsProbe {
            client: LazyClient::new(build.aws(), C::SERVICE, build.budget),
            call,
        }
    }
}

impl<C: AwsCall> Probe for AwsProbe<C> {
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        async move {
            let built = self.client.get(|sdk, t| self.call.client(sdk, t)).await;
            self.call.call(built).await
        }
        .boxed()
    }
}
