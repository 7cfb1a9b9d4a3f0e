//! `/sns`: GetTopicAttributes (least privilege: `sns:GetTopicAttributes`) on the topic ARN.
//! The ARN names the topic's region and account, so the client goes to that region and every
//! message says which region and account it looked in.

use super::Probe;
use super::unit::{Build, Unit};
use crate::aws::AwsContext;
use crate::aws::errors::{self, LazyClient};
use crate::config::{Millis};
use crate::outcome::{Details, Failure, Stage};
use aws_config::Region;
use aws_sdk_sns::Client;
use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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
    type Probe = SnsProbe;

    fn target(&self) -> String {
        self.topic_arn.to_string()
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn build(&self, build: &Build<'_>) -> SnsProbe {
        SnsProbe::new(self, build.budget, build.aws())
    }
}

/// Probes one topic.
pub struct SnsProbe {
    /// Checked at load: `arn:aws:sns:REGION:ACCOUNT:NAME`.
    arn: TopicArn,
    client: LazyClient<Client>,
}

impl SnsProbe {
    /// The client is built on the first check, in the topic's region.
    pub fn new(cfg: &SnsConfig, budget: Duration, aws: Arc<AwsContext>) -> SnsProbe {
        SnsProbe {
            arn: cfg.topic_arn.clone(),
            client: LazyClient::new(aws, "SNS", budget),
        }
    }

    async fn run(&self) -> Result<Details, Failure> {
        let region = self.arn.region().to_string();
        let b = self
            .client
            .get(|sdk, t| {
                let conf = aws_sdk_sns::config::Builder::from(sdk)
                    .timeout_config(t)
                    .region(Region::new(region.clone()));
                Client::from_conf(conf.build())
            })
            .await;
        let whose = format!("(region {region}, account {})", self.arn.account());
        match b
            .client
            .get_topic_attributes()
            .topic_arn(self.arn.to_string())
            .send()
            .await
        {
            Ok(out) => {
                let subs = out
                    .attributes()
                    .and_then(|a| a.get("SubscriptionsConfirmed"))
                    .cloned()
                    .unwrap_or_default();
                Ok(vec![("subscriptions_confirmed", subs)])
            }
            Err(e)
                if matches!(
                    errors::error_code(&e).as_deref(),
                    Some("NotFound" | "NotFoundException")
                ) =>
            {
                Err(Failure::new(
                    Stage::Query,
                    format!(
                        "topic {} does not exist {whose}: check [sns] topic_arn",
                        self.arn
                    ),
                ))
            }
            Err(e) => {
                let f = errors::failure(
                    &e,
                    &format!("sns:GetTopicAttributes on {}", self.arn),
                    &b.endpoint,
                );
                Err(Failure::new(f.stage, format!("{} {whose}", f.cause)))
            }
        }
    }
}

impl Probe for SnsProbe {
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        self.run().boxed()
    }
}
