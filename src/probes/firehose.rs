//! `/firehose`: DescribeDeliveryStream (least privilege: `firehose:DescribeDeliveryStream`).
//! `ACTIVE` is OK; otherwise the status and the failure description AWS gives.

use super::Probe;
use crate::aws::errors::{self, LazyClient};
use crate::aws::AwsContext;
use crate::config::FirehoseConfig;
use crate::outcome::{Details, Failure, Stage};
use aws_sdk_firehose::Client;
use futures_util::future::{BoxFuture, FutureExt};
use std::sync::Arc;
use std::time::Duration;

/// Probes one delivery stream.
pub struct FirehoseProbe {
    stream: String,
    budget: Duration,
    client: LazyClient<Client>,
}

impl FirehoseProbe {
    /// The client is built on the first check.
    pub fn new(cfg: &FirehoseConfig, budget: Duration, aws: Arc<AwsContext>) -> FirehoseProbe {
        FirehoseProbe {
            stream: cfg.delivery_stream.to_string(),
            budget,
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
    fn target(&self) -> String {
        format!("firehose delivery stream {}", self.stream)
    }
    fn budget(&self) -> Duration {
        self.budget
    }
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        self.run().boxed()
    }
}
