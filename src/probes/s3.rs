//! `/s3`: HeadBucket on the configured bucket (least privilege: `s3:ListBucket`).
//!
//! Knows S3's answers to HeadBucket: 403 (IAM), 404 (no bucket), 301 (bucket in another
//! region, named by the `x-amz-bucket-region` header).

use super::aws_shell::{AwsCall, AwsProbe};
use super::unit::{Build, Unit};
use crate::aws::errors::{self, Built};
use crate::config::{Millis, Name};
use crate::outcome::{Details, Failure, Stage};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;

/// `[s3]`: the bucket HeadBucket is sent to.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

impl Unit for S3Config {
    type Probe = AwsProbe<S3Config>;

    fn target(&self) -> String {
        format!("s3://{}", self.bucket)
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn build(&self, build: &Build<'_>) -> Self::Probe {
        AwsProbe::new(self.clone(), build)
    }
}

impl AwsCall for S3Config {
    type Client = Client;
    const SERVICE: &'static str = "S3";

    /// Emulators (and VPC interface endpoints) want path-style addressing.
    fn client(&self, sdk: &SdkConfig, timeouts: TimeoutConfig) -> Client {
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .force_path_style(sdk.endpoint_url().is_some());
        Client::from_conf(conf.build())
    }

    fn call<'a>(&'a self, built: &'a Built<Client>) -> BoxFuture<'a, Result<Details, Failure>> {
        self.head_bucket(built).boxed()
    }
}

impl S3Config {
    /// The IAM permission HeadBucket needs, for messages.
    fn needs(&self) -> String {
        format!("s3:ListBucket on arn:aws:s3:::{}", self.bucket)
    }

    async fn head_bucket(&self, built: &Built<Client>) -> Result<Details, Failure> {
        match built.client.head_bucket().bucket(self.bucket.to_string()).send().await {
            Ok(out) => Ok(vec![
                ("bucket", self.bucket.to_string()),
                (
                    "region",
                    out.bucket_region().unwrap_or(&built.region).to_string(),
                ),
            ]),
            Err(err) => Err(self.explain(built, &err).await),
        }
    }

    async fn explain<E>(
        &self,
        built: &Built<Client>,
        err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Failure
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (b, region) = (&self.bucket, built.region.as_str());
        let Some(raw) = err.raw_response() else {
            return errors::failure(err, &self.needs(), &built.endpoint);
        };
        let other_region = raw
            .headers()
            .get("x-amz-bucket-region")
            .filter(|r| *r != region)
            .map(str::to_string);
        match (raw.status().as_u16(), other_region) {
            (301 | 400, Some(r)) => Failure::new(
                Stage::Request,
                format!("bucket {b} is in region {r}, not {region}: set [aws] region = \"{r}\""),
            ),
            (403, _) => self.forbidden(built).await,
            (404, _) => Failure::new(
                Stage::Request,
                format!("no such bucket {b} (as seen from region {region}): check [s3] bucket"),
            ),
            _ => errors::failure(err, &self.needs(), &built.endpoint),
        }
    }

    /// A 403 to HeadBucket has no body, so it cannot tell a missing permission from keys AWS
    /// does not accept. ListObjectsV2 (same permission, one key at most) answers with a code.
    async fn forbidden(&self, built: &Built<Client>) -> Failure {
        let b = &self.bucket;
        let probe = built
            .client
            .list_objects_v2()
            .bucket(b.as_str())
            .max_keys(1)
            .send()
            .await;
        let code = match &probe {
            Err(e) => errors::error_code(e),
            Ok(_) => None,
        };
        match (&probe, code.as_deref()) {
            // A code that is not a denial (bad keys, clock skew...) says more than "denied".
            (Err(e), Some(c)) if !errors::is_denied(c) => {
                errors::failure(e, &self.needs(), &built.endpoint)
            }
            _ => Failure::new(
                Stage::Auth,
                format!(
                    "access denied to bucket {b} ({}): the instance role needs {} and no bucket policy may deny it",
                    code.as_deref().unwrap_or("HTTP 403"),
                    self.needs()
                ),
            ),
        }
    }
}
