//! Which instance or task answered: on ECS (`ECS_CONTAINER_METADATA_URI_V4` set) the task from
//! the task metadata endpoint (src/ecs.rs); elsewhere instance id, availability zone and
//! region from IMDSv2.
//!
//! Looked up once in the background after the listener is up, so start-up never waits for
//! metadata; every look-up is bounded. Off EC2 and ECS (or with
//! `AWS_EC2_METADATA_DISABLED=true`) it is simply absent and responses carry no identity headers.

use crate::ecs::EcsTask;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::{debug, info, warn};

/// What an operator behind a load balancer needs to tell instances apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The EC2 instance id; on ECS the task's id (the last part of its ARN).
    pub instance_id: String,
    pub availability_zone: String,
    pub region: String,
    /// Set on ECS: the task this container belongs to.
    pub task: Option<EcsTask>,
}

impl Identity {
    /// What names this server in JSON (`serviceId`): the task's ARN on ECS, else the instance id.
    pub fn service_id(&self) -> &str {
        self.task.as_ref().map_or(&self.instance_id, |t| &t.arn)
    }

    /// The headers every answer carries: `X-Instance-Id` on EC2, `X-Task-Arn` on ECS, and the
    /// zone on both.
    pub fn headers(&self) -> [(&'static str, &str); 2] {
        let first = match &self.task {
            Some(t) => ("x-task-arn", t.arn.as_str()),
            None => ("x-instance-id", self.instance_id.as_str()),
        };
        [first, ("x-availability-zone", &self.availability_zone)]
    }
}

/// The ECS look-up's budget: one small GET to a link-local agent.
const ECS_BUDGET: Duration = Duration::from_secs(2);

/// The task's identity when running on ECS; `None` elsewhere or when the agent did not answer.
pub async fn lookup_ecs() -> Option<Identity> {
    let base = crate::ecs::metadata_uri()?;
    match crate::ecs::task(&base, ECS_BUDGET).await {
        Ok(task) => Some(Identity {
            instance_id: task.id().to_string(),
            availability_zone: task.availability_zone.clone(),
            region: task.region().to_string(),
            task: Some(task),
        }),
        Err(e) => {
            warn!(error = %e, "ECS task metadata unavailable; pages carry no task identity");
            None
        }
    }
}

/// Filled once IMDS has answered; shared by every request.
pub type SharedIdentity = Arc<OnceLock<Identity>>;

/// The identity this process found, for code that has no [`SharedIdentity`] at hand.
static CURRENT: OnceLock<Identity> = OnceLock::new();

/// A name unique to this instance: its EC2 instance id once IMDS has answered, else the host
/// name (unique within a VPC), so instances never write each other's probe items.
pub fn instance_name() -> String {
    if let Some(id) = CURRENT.get() {
        return id.instance_id.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("pid-{}", std::process::id()))
}

/// The whole look-up's budget: three small GETs and a token PUT.
const BUDGET: Duration = Duration::from_secs(3);

/// True when the standard variable turns instance metadata off.
pub fn imds_disabled() -> bool {
    std::env::var("AWS_EC2_METADATA_DISABLED")
        .map(|v| v.eq_ignore_ascii_case("true"))
        .unwrap_or(false)
}

/// Looks the identity up (endpoint from `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else the link-local
/// address); `None` off EC2.
pub async fn lookup() -> Option<Identity> {
    if imds_disabled() {
        return None;
    }
    let client = aws_config::imds::Client::builder()
        .configure(
            &aws_config::provider_config::ProviderConfig::default()
                .with_http_client(crate::aws::https_client()),
        )
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(1))
        .max_attempts(2)
        .build();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            client
                .get(path)
                .await
                .map(|v| v.as_ref().trim().to_string())
        }
    };
    let all = async {
        let instance_id = get("/latest/meta-data/instance-id").await?;
        let availability_zone = get("/latest/meta-data/placement/availability-zone").await?;
        let region = get("/latest/meta-data/placement/region").await?;
        Ok::<_, aws_config::imds::client::error::ImdsError>(Identity {
            instance_id,
            availability_zone,
            region,
            task: None,
        })
    };
    match tokio::time::timeout(BUDGET, all).await {
        Ok(Ok(id)) => Some(id),
        Ok(Err(e)) => {
            debug!(error = %e, "no instance metadata: not on EC2, or IMDS is off");
            None
        }
        Err(_) => {
            debug!("instance metadata did not answer within {BUDGET:?}");
            None
        }
    }
}

/// Starts the background look-up that fills `slot`: the ECS task when the task metadata
/// endpoint is set (IMDS is not asked then: it would describe the host, not the task).
pub fn spawn_lookup(slot: SharedIdentity) {
    tokio::spawn(async move {
        if crate::ecs::metadata_uri().is_some() {
            if let Some(id) = lookup_ecs().await {
                let task = id.task.as_ref().expect("set by lookup_ecs");
                info!(
                    task_arn = %task.arn,
                    cluster = %task.cluster,
                    family = %task.family,
                    revision = %task.revision,
                    availability_zone = %task.availability_zone,
                    launch_type = %task.launch_type,
                    "task identity"
                );
                let _ = slot.set(id);
            }
            return;
        }
        if let Some(id) = lookup().await {
            info!(
                instance_id = %id.instance_id,
                availability_zone = %id.availability_zone,
                region = %id.region,
                "instance identity"
            );
            let _ = CURRENT.set(id.clone());
            let _ = slot.set(id);
        }
    });
}
