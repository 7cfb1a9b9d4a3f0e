//! Which instance answered: instance id, availability zone and region from IMDSv2.
//!
//! Looked up once in the background after the listener is up, so start-up never waits for
//! metadata; every look-up is bounded. Off EC2 (or with `AWS_EC2_METADATA_DISABLED=true`) it
//! is simply absent and responses carry no identity headers.

use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::{debug, info};

/// What an operator behind a load balancer needs to tell instances apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance_id: String,
    pub availability_zone: String,
    pub region: String,
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

/// Starts the background look-up that fills `slot`.
pub fn spawn_lookup(slot: SharedIdentity) {
    tokio::spawn(async move {
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
