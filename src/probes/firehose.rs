//! `/firehose`: DescribeDeliveryStream (least privilege: `firehose:DescribeDeliveryStream`).
//! `ACTIVE` is OK; otherwise the status and the failure description AWS gives.

use super::aws_shell::{AwsCall, AwsProbe};
use super::unit::{Build, Unit};
use crate::aws::errors::{self, Built};
use crate::config::{aws_name, Millis};
use crate::outcome::{Details, Failure, Stage};
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use aws_sdk_firehose::Client;
use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use std::fmt;

/// `[firehose]`: a delivery stream (DescribeDeliveryStream).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FirehoseConfig {
    pub delivery_stream: DeliveryStreamName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

/// `[firehose] delivery_stream`: a delivery stream name, 1-64 letters, digits, `_`, `.` or `-`,
/// as DescribeDeliveryStream takes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct DeliveryStreamName(String);

impl TryFrom<String> for DeliveryStreamName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        aws_name(&s, 64, "delivery stream").map(|()| DeliveryStreamName(s))
    }
}

impl fmt::Display for DeliveryStreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Unit for FirehoseConfig {
    type Probe = AwsProbe<FirehoseConfig>;

    fn target(&self) -> String {
        format!("firehose delivery stream {}", self.delivery_stream)
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn build(&self, build: &Build<'_>) -> Self::Probe {
        AwsProbe::new(self.clone(), build)
    }
}

impl AwsCall for FirehoseConfig {
    type Client = Client;
    const SERVICE: &'static str = "Firehose";

    fn client(&self, sdk: &SdkConfig, timeouts: TimeoutConfig) -> Client {
        let conf = aws_sdk_firehose::config::Builder::from(sdk).timeout_config(timeouts);
        Client::from_conf(conf.build())
    }

    fn call<'a>(&'a self, b: &'a Built<Client>) -> BoxFuture<'a, Result<Details, Failure>> {
        async move {
            let s = &self.delivery_stream;
            let out = b
                .client
                .describe_delivery_stream()
                .delivery_stream_name(s.to_string())
                .send()
                .await
                .map_err(|e| {
                    let arn = format!("arn:aws:firehose:{}:*:deliverystream/{s}", b.region);
                    errors::failure_or_missing(
                        &e,
                        &["ResourceNotFoundException"],
                        || format!("delivery stream {s} does not exist in region {}: check [firehose] delivery_stream and [aws] region", b.region),
                        &format!("firehose:DescribeDeliveryStream on {arn}"),
                        &b.endpoint,
                    )
                })?;
            let d = out.delivery_stream_description();
            let status = d
                .map(|d| d.delivery_stream_status().as_str().to_string())
                .unwrap_or_default();
            if status == "ACTIVE" {
                return Ok(vec![("status", status)]);
            }
            let why = d
                .and_then(|d| d.failure_description())
                .map(|f| format!(": {} {}", f.r#type().as_str(), f.details()))
                .unwrap_or_default();
            Err(Failure::new(
                Stage::Query,
                format!("delivery stream {s} is {status}, not ACTIVE{why}"),
            ))
        }
        .boxed()
    }
}
