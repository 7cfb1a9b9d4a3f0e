//! `/lambda`: GetFunctionConfiguration (least privilege: `lambda:GetFunctionConfiguration`).
//! OK when `State` is `Active` and `LastUpdateStatus` is `Successful`; otherwise both, with reasons.

use super::Probe;
use crate::aws::errors::{self, LazyClient};
use crate::aws::AwsContext;
use crate::config::LambdaConfig;
use crate::outcome::{Details, Failure, Stage};
use aws_sdk_lambda::Client;
use futures_util::future::{BoxFuture, FutureExt};
use std::sync::Arc;
use std::time::Duration;

/// Probes one function; never invokes it.
pub struct LambdaProbe {
    function: String,
    budget: Duration,
    client: LazyClient<Client>,
}

impl LambdaProbe {
    /// The client is built on the first check.
    pub fn new(cfg: &LambdaConfig, budget: Duration, aws: Arc<AwsContext>) -> LambdaProbe {
        LambdaProbe {
            function: cfg.function.to_string(),
            budget,
            client: LazyClient::new(aws, "Lambda", budget),
        }
    }

    async fn run(&self) -> Result<Details, Failure> {
        let b = self
            .client
            .get(|sdk, t| {
                Client::from_conf(
                    aws_sdk_lambda::config::Builder::from(sdk)
                        .timeout_config(t)
                        .build(),
                )
            })
            .await;
        let f = &self.function;
        let out = match b.client.get_function_configuration().function_name(f).send().await {
            Ok(out) => out,
            Err(e) if errors::error_code(&e).as_deref() == Some("ResourceNotFoundException") => {
                return Err(Failure::new(
                    Stage::Query,
                    format!("function {f} does not exist in region {}: check [lambda] function and [aws] region", b.region),
                ))
            }
            Err(e) => {
                let arn = format!("arn:aws:lambda:{}:*:function:{f}", b.region);
                return Err(errors::failure(&e, &format!("lambda:GetFunctionConfiguration on {arn}"), &b.endpoint));
            }
        };
        let state = out
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "unknown".into());
        let update = out
            .last_update_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "unknown".into());
        if state == "Active" && update == "Successful" {
            return Ok(vec![("state", state), ("last_update_status", update)]);
        }
        let reasons: Vec<&str> = [out.state_reason(), out.last_update_status_reason()]
            .into_iter()
            .flatten()
            .collect();
        let why = if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join("; "))
        };
        Err(Failure::new(
            Stage::Query,
            format!("function {f}: State {state}, LastUpdateStatus {update}; want Active and Successful{why}"),
        ))
    }
}

impl Probe for LambdaProbe {
    fn target(&self) -> String {
        format!("lambda function {}", self.function)
    }
    fn budget(&self) -> Duration {
        self.budget
    }
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        self.run().boxed()
    }
}
