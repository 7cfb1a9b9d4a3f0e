//! `/dynamodb`: a data-plane GetItem on a sentinel key, which also proves the key schema the
//! app relies on (partition key `[dynamodb] partition_key`, type S, no sort key).
//!
//! On failure a DescribeTable (cached) explains why: missing table, status not ACTIVE, or a
//! key schema other than the expected one. `mode = "write"` adds put, consistent get, delete
//! of this instance's own item (`suaicloudapp-probe-<instance id>`), so instances checking at
//! once never read back each other's writes.

use super::aws_shell::{AwsCall, AwsProbe};
use super::unit::{Build, Unit};
use crate::aws::errors::{self, Built};
use crate::config::{Millis, Mode, Name};
use crate::outcome::{Details, Failure, Stage};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `[dynamodb]`: the table and the key the seed app reads by.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoConfig {
    pub table: Name,
    #[serde(default = "default_partition_key")]
    pub partition_key: Name,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}

fn default_partition_key() -> Name {
    Name("id".into())
}


impl Unit for DynamoConfig {
    type Probe = AwsProbe<DynamoProbe>;
    const DATASTORE: bool = true;

    fn target(&self) -> String {
        format!("dynamodb table {}", self.table)
    }
    fn timeout(&self) -> Option<Millis> {
        self.timeout_ms
    }
    fn build(&self, build: &Build<'_>) -> Self::Probe {
        AwsProbe::new(DynamoProbe::new(self), build)
    }
}

/// The key the probe reads (write mode writes this plus `-<instance id>`): never a real item's.
pub const SENTINEL_KEY: &str = "suaicloudapp-probe";

/// The item write mode puts, reads back and deletes: one per instance.
fn write_key() -> String {
    format!("{SENTINEL_KEY}-{}", crate::identity::instance_name())
}

/// How long a DescribeTable explanation is reused.
const DESCRIBE_TTL: Duration = Duration::from_secs(30);

/// Probes one table: its names, and the last explanation of a failure.
pub struct DynamoProbe {
    table: String,
    key: String,
    mode: Mode,
    /// The last DescribeTable explanation, with when and for which error code it was made.
    described: Mutex<Option<(Instant, String, Failure)>>,
}

impl DynamoProbe {
    /// Remembers the table.
    pub fn new(cfg: &DynamoConfig) -> DynamoProbe {
        DynamoProbe {
            table: cfg.table.to_string(),
            key: cfg.partition_key.to_string(),
            mode: cfg.mode,
            described: Mutex::new(None),
        }
    }

    async fn run(&self, built: &Built<Client>) -> Result<Details, Failure> {
        let read = built
            .client
            .get_item()
            .table_name(&self.table)
            .key(&self.key, AttributeValue::S(SENTINEL_KEY.into()))
            .projection_expression("#k")
            .expression_attribute_names("#k", &self.key)
            .send()
            .await;
        if let Err(err) = read {
            return Err(self.explain(built, &err, "GetItem").await);
        }
        let mut details = vec![
            ("table", self.table.clone()),
            ("mode", format!("{:?}", self.mode).to_lowercase()),
        ];
        if self.mode == Mode::Write {
            let item = write_key();
            self.write_cycle(built, &item).await?;
            details.push(("item", item));
        }
        Ok(details)
    }

    /// Put, consistent read-back, delete: proves writes land and are readable.
    async fn write_cycle(&self, built: &Built<Client>, item: &str) -> Result<(), Failure> {
        let client = &built.client;
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
            .to_string();
        let key = AttributeValue::S(item.into());
        if let Err(e) = client
            .put_item()
            .table_name(&self.table)
            .item(&self.key, key.clone())
            .item("checked_at", AttributeValue::N(stamp.clone()))
            .send()
            .await
        {
            return Err(self.explain(built, &e, "PutItem").await);
        }
        let got = match client
            .get_item()
            .table_name(&self.table)
            .key(&self.key, key.clone())
            .consistent_read(true)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => return Err(self.explain(built, &e, "GetItem").await),
        };
        let read_back = got
            .item()
            .and_then(|i| i.get("checked_at"))
            .and_then(|v| v.as_n().ok());
        if read_back != Some(&stamp) {
            return Err(Failure::new(
                Stage::Query,
                format!(
                    "wrote item {item} to {} but a consistent read returned {read_back:?}",
                    self.table
                ),
            ));
        }
        if let Err(e) = client
            .delete_item()
            .table_name(&self.table)
            .key(&self.key, key)
            .send()
            .await
        {
            return Err(self.explain(built, &e, "DeleteItem").await);
        }
        Ok(())
    }

    async fn explain<E>(
        &self,
        built: &Built<Client>,
        err: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
        action: &str,
    ) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let needs = format!("dynamodb:{action} on {}", self.arn(&built.region));
        let original = || errors::failure(err, &needs, &built.endpoint);
        match errors::error_code(err).as_deref() {
            Some(code @ ("ResourceNotFoundException" | "ValidationException")) => {
                self.describe(built, code).await.unwrap_or_else(original)
            }
            _ => original(),
        }
    }

    /// The table's ARN pattern for IAM messages (the account is not known here).
    fn arn(&self, region: &str) -> String {
        format!("arn:aws:dynamodb:{region}:*:table/{}", self.table)
    }

    /// Explains a failed call (answered with `code`) from DescribeTable, reusing the answer a
    /// while for the same code; `None` when the table looks as expected or DescribeTable
    /// itself fails (the original error then stands).
    async fn describe(&self, built: &Built<Client>, code: &str) -> Option<Failure> {
        if let Some((at, seen, f)) = self
            .described
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            if at.elapsed() < DESCRIBE_TTL && seen == code {
                return Some(f.clone());
            }
        }
        let (t, region) = (&self.table, &built.region);
        let failure = match built.client.describe_table().table_name(t).send().await {
            Ok(out) => self.judge(out.table()?)?,
            Err(e) if errors::error_code(&e).as_deref() == Some("ResourceNotFoundException") => {
                Failure::new(
                    Stage::Query,
                    format!(
                        "table {t} does not exist in region {region}: check [dynamodb] table and [aws] region"
                    ),
                )
            }
            Err(_) => return None,
        };
        *self.described.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), code.to_string(), failure.clone()));
        Some(failure)
    }

    /// Compares a table description with what the app expects; `None` when it matches.
    fn judge(&self, desc: &aws_sdk_dynamodb::types::TableDescription) -> Option<Failure> {
        let t = &self.table;
        let status = desc
            .table_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        if status != "ACTIVE" && !status.is_empty() {
            return Some(Failure::new(
                Stage::Query,
                format!("table {t} is {status}, not ACTIVE"),
            ));
        }
        let types: Vec<(String, String)> = desc
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_string(),
                    a.attribute_type().as_str().to_string(),
                )
            })
            .collect();
        let schema: Vec<String> = desc
            .key_schema()
            .iter()
            .map(|k| {
                let name = k.attribute_name();
                let ty = types
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or("?", |(_, t)| t.as_str());
                format!("{name} {ty} {}", k.key_type().as_str())
            })
            .collect();
        if schema == [format!("{} S HASH", self.key)] {
            return None;
        }
        Some(Failure::new(
            Stage::Query,
            format!(
                "key schema mismatch: table {t} has key ({}); the app expects partition key `{}` of type S and no sort key",
                schema.join(", "),
                self.key
            ),
        ))
    }
}

impl AwsCall for DynamoProbe {
    type Client = Client;
    const SERVICE: &'static str = "DynamoDB";

    fn client(&self, sdk: &SdkConfig, timeouts: TimeoutConfig) -> Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(sdk).timeout_config(timeouts);
        Client::from_conf(conf.build())
    }

    fn call<'a>(&'a self, built: &'a Built<Client>) -> BoxFuture<'a, Result<Details, Failure>> {
        self.run(built).boxed()
    }
}
