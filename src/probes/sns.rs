//! `/sns`: GetTopicAttributes (least privilege: `sns:GetTopicAttributes`) on the topic ARN.
//! The ARN names the topic's region and account, so the client goes to that region and every
//! message says which region and account it looked in.

use super::Probe;
use crate::aws::errors::{self, LazyClient};
use crate::aws::AwsContext;
use crate::config::{SnsConfig, TopicArn};
use crate::outcome::{Details, Failure, Stage};
use aws_config::Region;
use aws_sdk_sns::Client;
use futures_util::future::{BoxFuture, FutureExt};
use std::sync::Arc;
use std::time::Duration;

/// Probes one topic.
pub struct SnsProbe {
    /// Checked at load: `arn:aws:sns:REGION:ACCOUNT:NAME`.
    arn: TopicArn,
    budget: Duration,
    client: LazyClient<Client>,
}

impl SnsProbe {
    /// The client is built on the first check, in the topic's region.
    pub fn new(cfg: &SnsConfig, budget: Duration, aws: Arc<AwsContext>) -> SnsProbe {
        SnsProbe {
            arn: cfg.topic_arn.clone(),
            budget,
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
    fn target(&self) -> String {
        self.arn.to_string()
    }
    fn budget(&self) -> Duration {
        self.budget
    }
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        self.run().boxed()
    }
}
