//! Which ECS task answers: the task metadata endpoint v4 (`ECS_CONTAINER_METADATA_URI_V4`).
//!
//! On ECS (Fargate or EC2) the container's view of EC2 instance metadata is the host's, or
//! none at all: the task, not the instance, is what an operator behind the ALB must tell
//! apart. The agent injects the endpoint's URL into every container; `${URI}/task` answers
//! the task's ARN, cluster, family, revision, zone and launch type. Reads only: credentials
//! come from the SDK's own container-credentials provider (see `src/aws/mod.rs`).

use crate::fetch::Fetcher;
use serde::Deserialize;
use std::time::Duration;

/// The variable the ECS agent sets in every container (platform 1.4+ on Fargate).
pub const METADATA_ENV: &str = "ECS_CONTAINER_METADATA_URI_V4";

/// The task metadata answer is a few kB; a cap guards against a wrong URL.
const MAX_BODY: usize = 256 * 1024;

/// What identifies a task, as shown on the dashboard and in the `X-Task-Arn` header.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EcsTask {
    #[serde(rename = "TaskARN")]
    pub arn: String,
    /// The cluster's ARN (or its name, on older agents).
    #[serde(rename = "Cluster", default)]
    pub cluster: String,
    #[serde(rename = "Family", default)]
    pub family: String,
    #[serde(rename = "Revision", default)]
    pub revision: String,
    #[serde(rename = "AvailabilityZone", default)]
    pub availability_zone: String,
    /// `FARGATE` or `EC2`.
    #[serde(rename = "LaunchType", default)]
    pub launch_type: String,
}

impl EcsTask {
    /// The task's id: the last part of its ARN (what the ECS console lists).
    pub fn id(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or(&self.arn)
    }

    /// The region, from the ARN (`arn:aws:ecs:REGION:ACCOUNT:task/...`).
    pub fn region(&self) -> &str {
        self.arn.split(':').nth(3).unwrap_or("")
    }
}

/// Why the task metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error("the task metadata at {url} is not the JSON expected: {cause}")]
    Parse { url: String, cause: String },
}

/// The endpoint's base URL when running on ECS.
pub fn metadata_uri() -> Option<String> {
    std::env::var(METADATA_ENV)
        .ok()
        .map(|v| v.trim().trim_end_matches('/').to_string())
        .filter(|v| !v.is_empty())
}

/// GETs `${base}/task` within `timeout`.
pub async fn task(base: &str, timeout: Duration) -> Result<EcsTask, EcsError> {
    let url = format!("{base}/task");
    let body = Fetcher::new().get(&url, timeout, MAX_BODY).await?;
    serde_json::from_slice(&body).map_err(|e| EcsError::Parse {
        url,
        cause: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields_of_a_fargate_task() {
        let doc = r#"{"Cluster":"arn:aws:ecs:eu-west-1:123456789012:cluster/web",
            "TaskARN":"arn:aws:ecs:eu-west-1:123456789012:task/web/0a1b2c3d4e5f",
            "Family":"flask-ecs-firehose","Revision":"7","DesiredStatus":"RUNNING",
            "AvailabilityZone":"eu-west-1b","LaunchType":"FARGATE","Containers":[]}"#;
        let t: EcsTask = serde_json::from_str(doc).unwrap();
        assert_eq!(t.id(), "0a1b2c3d4e5f");
        assert_eq!(t.region(), "eu-west-1");
        assert_eq!(t.family, "flask-ecs-firehose");
        assert_eq!(t.revision, "7");
        assert_eq!(t.launch_type, "FARGATE");
        assert_eq!(t.availability_zone, "eu-west-1b");
    }
}
