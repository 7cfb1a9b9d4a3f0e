//! `/kinesis`: DescribeStreamSummary (least privilege: `kinesis:DescribeStreamSummary`).
//! `ACTIVE` with at least one open shard is OK; `mode = "write"` adds a small PutRecord.

use super::aws_shell::{AwsCall, AwsProbe};
use super::unit::{Build, Unit};
use crate::aws::errors::{self, Built};
use crate::config::{aws_name, Millis, Mode};
use crate::outcome::{Details, Failure, Stage};
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::Client;
use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use std::fmt;

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
    type Probe = AwsProbe<KinesisConfig>;

    fn target(&self) -> String {
        format!("kinesis stream {}", self.stream)
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn build(&self, build: &Build<'_>) -> Self::Probe {
        AwsProbe::new(self.clone(), build)
    }
}

impl AwsCall for KinesisConfig {
    type Client = Client;
    const SERVICE: &'static str = "Kinesis";

    fn client(&self, sdk: &SdkConfig, timeouts: TimeoutConfig) -> Client {
        let conf = aws_sdk_kinesis::config::Builder::from(sdk).timeout_config(timeouts);
        Client::from_conf(conf.build())
    }

    fn call<'a>(&'a self, b: &'a Built<Client>) -> BoxFuture<'a, Result<Details, Failure>> {
        async move {
            let s = &self.stream;
            let arn = format!("arn:aws:kinesis:{}:*:stream/{s}", b.region);
            let out = b
                .client
                .describe_stream_summary()
                .stream_name(s.to_string())
                .send()
                .await
                .map_err(|e| {
                    errors::failure_or_missing(
                        &e,
                        &["ResourceNotFoundException"],
                        || format!("stream {s} does not exist in region {}: check [kinesis] stream and [aws] region", b.region),
                        &format!("kinesis:DescribeStreamSummary on {arn}"),
                        &b.endpoint,
                    )
                })?;
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
                b.client
                    .put_record()
                    .stream_name(s.to_string())
                    .partition_key("suaicloudapp-probe")
                    .data(Blob::new(b"suaicloudapp probe".to_vec()))
                    .send()
                    .await
                    .map_err(|e| {
                        errors::failure(&e, &format!("kinesis:PutRecord on {arn}"), &b.endpoint)
                    })?;
            }
            Ok(vec![("open_shards", open.to_string())])
        }
        .boxed()
    }
}
