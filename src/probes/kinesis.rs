//! `/kinesis`: DescribeStreamSummary (least privilege: `kinesis:DescribeStreamSummary`).
//! `ACTIVE` with at least one open shard is OK; `mode = "write"` adds a small PutRecord.

use super::Probe;
use super::unit::{Build, Unit};
use crate::aws::AwsContext;
use crate::aws::errors::{self, LazyClient};
use crate::config::{aws_name, Millis, Mode};
use crate::outcome::{Details, Failure, Stage};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// `[kinesis]`: a data stream (DescribeStreamSummary; `write` adds a PutRecord).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisConfig {
    pub stream: StreamName,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

/// `[kinesis] stream`: a stream name (not an ARN), 1-128 letters, digits, `_`, `.` or `-`, as
/// DescribeStreamSummary's `StreamName` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct StreamName(String);

impl TryFrom<String> for StreamName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        aws_name(&s, 128, "stream").map(|()| StreamName(s))
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Unit for KinesisConfig {
    type Probe = KinesisProbe;

    fn target(&self) -> String {
        format!("kinesis stream {}", self.stream)
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn build(&self, build: &Build<'_>) -> KinesisProbe {
        KinesisProbe::new(self, build.budget, build.aws())
    }
}

/// Probes one data stream.
pub struct KinesisProbe {
    stream: String,
    mode: Mode,
    client: LazyClient<Client>,
}

impl KinesisProbe {
    /// The client is built on the first check.
    pub fn new(cfg: &KinesisConfig, budget: Duration, aws: Arc<AwsContext>) -> KinesisProbe {
        KinesisProbe {
            stream: cfg.stream.to_string(),
            mode: cfg.mode,
            client: LazyClient::new(aws, "Kinesis", budget),
        }
    }

    async fn run(&self) -> Result<Details, Failure> {
        let b = self
            .client
            .get(|sdk, t| {
                Client::from_conf(
                    aws_sdk_kinesis::config::Builder::from(sdk)
                        .timeout_config(t)
                        .build(),
                )
            })
            .await;
        let s = &self.stream;
        let arn = format!("arn:aws:kinesis:{}:*:stream/{s}", b.region);
        let out = match b.client.describe_stream_summary().stream_name(s).send().await {
            Ok(out) => out,
            Err(e) if errors::error_code(&e).as_deref() == Some("ResourceNotFoundException") => {
                return Err(Failure::new(
                    Stage::Query,
                    format!("stream {s} does not exist in region {}: check [kinesis] stream and [aws] region", b.region),
                ))
            }
            Err(e) => return Err(errors::failure(&e, &format!("kinesis:DescribeStreamSummary on {arn}"), &b.endpoint)),
        };
        let summary = out.stream_description_summary();
        let status = summary
            .map(|d| d.stream_status().as_str().to_string())
            .unwrap_or_default();
        let open = summary.map_or(0, |d| d.open_shard_count());
        if status != "ACTIVE" {
            return Err(Failure::new(
                Stage::Query,
                format!("stream {s} is {status}, not ACTIVE"),
            ));
        }
        if open < 1 {
            return Err(Failure::new(
                Stage::Query,
                format!("stream {s} is ACTIVE but has no open shard"),
            ));
        }
        if self.mode == Mode::Write {
            let put = b
                .client
                .put_record()
                .stream_name(s)
                .partition_key("suaicloudapp-probe")
                .data(Blob::new(b"suaicloudapp probe".to_vec()))
                .send()
                .await;
            if let Err(e) = put {
                return Err(errors::failure(
                    &e,
                    &format!("kinesis:PutRecord on {arn}"),
                    &b.endpoint,
                ));
            }
        }
        Ok(vec![("open_shards", open.to_string())])
    }
}

impl Probe for KinesisProbe {
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        self.run().boxed()
    }
}
