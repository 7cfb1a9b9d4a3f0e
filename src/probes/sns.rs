//! `/sns`: GetTopicAttributes (least privilege: `sns:GetTopicAttributes`) on the topic ARN.
//! The ARN names the topic's region and account, so the client goes to that region and every
//! message says which region and account it looked in.

use super::aws_shell::{AwsCall, AwsProbe};
use super::unit::{Build, Unit};
use crate::aws::errors::{self, Built};
use crate::config::Millis;
use crate::outcome::{Details, Failure, Stage};
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_sdk_sns::Client;
use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use std::fmt;

/// `[sns]`: a topic (GetTopicAttributes), addressed by ARN so its region is known.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnsConfig {
    pub topic_arn: TopicArn,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

/// `[sns] topic_arn`: the ARN names the topic's region and account, which the probe goes to
/// and every message repeats, so anything else is refused here rather than by every check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct TopicArn(String);

impl TryFrom<String> for TopicArn {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["arn", partition, "sns", region, account, name]
                if [partition, region, account, name]
                    .iter()
                    .all(|p| !p.is_empty()) =>
            {
                Ok(TopicArn(s))
            }
            _ => Err(format!(
                "{s:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
            )),
        }
    }
}

impl TopicArn {
    /// The topic's region: the client must go there, whatever `[aws] region` says.
    pub fn region(&self) -> &str {
        self.part(3)
    }

    /// The account that owns the topic, for messages ("no access in account ...").
    pub fn account(&self) -> &str {
        self.part(4)
    }

    /// A field of the ARN, which `try_from` checked has all six.
    fn part(&self, i: usize) -> &str {
        self.0.split(':').nth(i).unwrap_or_default()
    }
}

impl fmt::Display for TopicArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Unit for SnsConfig {
    type Probe = AwsProbe<SnsConfig>;

    fn target(&self) -> String {
        self.topic_arn.to_string()
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn build(&self, build: &Build<'_>) -> Self::Probe {
        AwsProbe::new(self.clone(), build)
    }
}

impl AwsCall for SnsConfig {
    type Client = Client;
    const SERVICE: &'static str = "SNS";

    /// In the topic's region, whatever `[aws] region` says: that is where the topic is.
    fn client(&self, sdk: &SdkConfig, timeouts: TimeoutConfig) -> Client {
        let conf = aws_sdk_sns::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .region(Region::new(self.topic_arn.region().to_string()));
        Client::from_conf(conf.build())
    }

    fn call<'a>(&'a self, b: &'a Built<Client>) -> BoxFuture<'a, Result<Details, Failure>> {
        async move {
            let arn = &self.topic_arn;
            let whose = format!("(region {}, account {})", arn.region(), arn.account());
            let out = b
                .client
                .get_topic_attributes()
                .topic_arn(arn.to_string())
                .send()
                .await
                .map_err(|e| {
                    let code = errors::error_code(&e);
                    if matches!(code.as_deref(), Some("NotFound" | "NotFoundException")) {
                        let missing = format!("topic {arn} does not exist {whose}: check [sns] topic_arn");
                        return Failure::new(Stage::Query, missing);
                    }
                    let needs = format!("sns:GetTopicAttributes on {arn}");
                    let f = errors::failure(&e, &needs, &b.endpoint);
                    Failure::new(f.stage, format!("{} {whose}", f.cause))
                })?;
            let subs = out
                .attributes()
                .and_then(|a| a.get("SubscriptionsConfirmed"))
                .cloned()
                .unwrap_or_default();
            Ok(vec![("subscriptions_confirmed", subs)])
        }
        .boxed()
    }
}
