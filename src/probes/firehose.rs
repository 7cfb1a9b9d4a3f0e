//! `/firehose`: DescribeDeliveryStream (least privilege: `firehose:DescribeDeliveryStream`).
//! `ACTIVE` is OK; otherwise the status and the failure description AWS gives.

use super::Probe;
use super::unit::{Build, Unit};
use crate::aws::AwsContext;
use crate::aws::errors::{self, LazyClient};
use crate::config::{aws_name, Millis};
use crate::outcome::{Details, Failure, Stage};
use aws_sdk_firehose::Client;
use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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
    type Probe = FirehoseProbe;

    fn target(&self) -> String {
        format!("firehose delivery stream {}", self.delivery_stream)
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn build(&self, build: &Build<'_>) -> FirehoseProbe {
        FirehoseProbe::new(self, build.budget, build.aws())
    }
}

/// Probes one delivery stream.
pub struct FirehoseProbe {
    stream: String,
    client: LazyClient<Client>,
}

impl FirehoseProbe {
    /// The client is built on the first check.
    pub fn new(cfg: &FirehoseConfig, budget: Duration, aws: Arc<AwsContext>) -> FirehoseProbe {
        FirehoseProbe {
            stream: cfg.delivery_stream.to_string(),
            client: LazyClient::new(aws, "Firehose", budget),
        }
    }

    async fn run(&self) -> Result<Details, Failure> {
        let b = self
            .client
            .get(|sdk, t| {
                Client::from_conf(
                    aws_sdk_firehose::config::Builder::from(sdk)
                        .timeout_config(t)
                        .build(),
                )
            })
            .await;
        let s = &self.stream;
        let out = match b.client.describe_delivery_stream().delivery_stream_name(s).send().await {
            Ok(out) => out,
            Err(e) if errors::error_code(&e).as_deref() == Some("ResourceNotFoundException") => {
                return Err(Failure::new(
                    Stage::Query,
                    format!("delivery stream {s} does not exist in region {}: check [firehose] delivery_stream and [aws] region", b.region),
                ))
            }
            Err(e) => {
                let arn = format!("arn:aws:firehose:{}:*:deliverystream/{s}", b.region);
                return Err(errors::failure(&e, &format!("firehose:DescribeDeliveryStream on {arn}"), &b.endpoint));
            }
        };
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
}

impl Probe for FirehoseProbe {
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        self.run().boxed()
    }
}
