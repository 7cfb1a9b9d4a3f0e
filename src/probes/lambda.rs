//! `/lambda`: GetFunctionConfiguration (least privilege: `lambda:GetFunctionConfiguration`).
//! OK when `State` is `Active` and `LastUpdateStatus` is `Successful`; otherwise both, with reasons.

use super::aws_shell::{AwsCall, AwsProbe};
use super::unit::{Build, Unit};
use crate::aws::errors::{self, Built};
use crate::config::Millis;
use crate::outcome::{Details, Failure, Stage};
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use aws_sdk_lambda::Client;
use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use std::fmt;

/// `[lambda]`: a function (GetFunctionConfiguration).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaConfig {
    pub function: FunctionName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

/// `[lambda] function`: a name, `NAME:QUALIFIER`, `ACCOUNT:function:NAME` or a function ARN, as
/// GetFunctionConfiguration takes it (at most 170 characters of letters, digits and `-_.:$`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct FunctionName(String);

impl TryFrom<String> for FunctionName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let chars_ok = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:$".contains(c));
        let arn_ok = match s.strip_prefix("arn:") {
            // arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
            Some(_) => {
                let parts: Vec<&str> = s.split(':').collect();
                (7..=8).contains(&parts.len())
                    && parts[2] == "lambda"
                    && parts[5] == "function"
                    && parts.iter().all(|p| !p.is_empty())
            }
            None => true,
        };
        if !s.is_empty() && s.len() <= 170 && chars_ok && arn_ok {
            Ok(FunctionName(s))
        } else {
            Err(format!(
                "{s:?} is not a Lambda function name or ARN (NAME, NAME:ALIAS or arn:aws:lambda:REGION:ACCOUNT:function:NAME)"
            ))
        }
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Unit for LambdaConfig {
    type Probe = AwsProbe<LambdaConfig>;

    fn target(&self) -> String {
        format!("lambda function {}", self.function)
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn build(&self, build: &Build<'_>) -> Self::Probe {
        AwsProbe::new(self.clone(), build)
    }
}

/// Never invokes the function: its configuration says whether it can run.
impl AwsCall for LambdaConfig {
    type Client = Client;
    const SERVICE: &'static str = "Lambda";

    fn client(&self, sdk: &SdkConfig, timeouts: TimeoutConfig) -> Client {
        let conf = aws_sdk_lambda::config::Builder::from(sdk).timeout_config(timeouts);
        Client::from_conf(conf.build())
    }

    fn call<'a>(&'a self, b: &'a Built<Client>) -> BoxFuture<'a, Result<Details, Failure>> {
        async move {
            let f = &self.function;
            let out = b
                .client
                .get_function_configuration()
                .function_name(f.to_string())
                .send()
                .await
                .map_err(|e| {
                    let arn = format!("arn:aws:lambda:{}:*:function:{f}", b.region);
                    errors::failure_or_missing(
                        &e,
                        &["ResourceNotFoundException"],
                        || format!("function {f} does not exist in region {}: check [lambda] function and [aws] region", b.region),
                        &format!("lambda:GetFunctionConfiguration on {arn}"),
                        &b.endpoint,
                    )
                })?;
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
        .boxed()
    }
}
