//! Fetches the secrets a config references ([`crate::secret_ref`]) from Secrets Manager and
//! Parameter Store, and caches them so a check costs no AWS call.
//!
//! The cache is rotation-aware, the way the Secrets Manager agent is: a value is reused for the
//! TTL (`[secrets] cache_ms`, default 5 minutes, the agent's default); when a backend refuses it
//! the caller asks for [`SecretStore::refetch`], which goes to AWS at once, but at most once per
//! TTL per secret, so a rotation is picked up within one check and a wrong secret never floods
//! Secrets Manager (whose calls are billed). One fetch serves every field that names the same
//! secret (an RDS-managed secret's `username` and `password`). A fetch failure is its own stage,
//! `secret`, worded as the other AWS failures are ([`crate::aws::errors`]).

use crate::aws::errors::{self, Built, LazyClient};
use crate::aws::AwsContext;
use crate::outcome::{Failure, Stage};
use crate::secret::Secret;
use crate::secret_ref::{SecretRef, Source};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One referenced value as fetched: what to hand the client, and what pages may show of it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub value: Secret<String>,
    /// Secrets Manager's `VersionId`, or the parameter's version number.
    pub version: String,
    /// When it came from AWS (its age is shown).
    pub fetched: Instant,
}

/// A secret's whole text (the JSON, for a keyed reference) as it came from AWS.
#[derive(Clone)]
struct Entry {
    text: Secret<String>,
    version: String,
    fetched: Instant,
    /// The last fetch a refusal asked for: the next may come one TTL later.
    forced: Option<Instant>,
}

/// The clients (built on first use) and the cache, shared by every probe of one config.
pub struct SecretStore {
    ttl: Duration,
    secrets_manager: LazyClient<aws_sdk_secretsmanager::Client>,
    ssm: LazyClient<aws_sdk_ssm::Client>,
    cache: Mutex<HashMap<Source, Entry>>,
}

impl SecretStore {
    /// Nothing is built or fetched until a probe asks; `budget` bounds each AWS call.
    pub fn new(aws: Arc<AwsContext>, ttl: Duration, budget: Duration) -> SecretStore {
        SecretStore {
            ttl,
            secrets_manager: LazyClient::new(aws.clone(), "Secrets Manager", budget),
            ssm: LazyClient::new(aws, "SSM", budget),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The value `r` names: cached while younger than the TTL, else fetched.
    pub async fn get(&self, r: &SecretRef) -> Result<Fetched, Failure> {
        let cached = self.cached(&r.source);
        let entry = match cached {
            Some(e) if e.fetched.elapsed() < self.ttl => e,
            stale => self.fetch(r, stale.and_then(|e| e.forced)).await?,
        };
        pick(r, &entry)
    }

    /// After the backend refused `r`'s value: fetched again now, unless a refusal already
    /// fetched this secret within the TTL (`None`: keep what is cached).
    pub async fn refetch(&self, r: &SecretRef) -> Result<Option<Fetched>, Failure> {
        let cached = self.cached(&r.source);
        if cached
            .as_ref()
            .and_then(|e| e.forced)
            .is_some_and(|at| at.elapsed() < self.ttl)
        {
            return Ok(None);
        }
        let entry = self.fetch(r, Some(Instant::now())).await?;
        pick(r, &entry).map(Some)
    }

    fn cached(&self, source: &Source) -> Option<Entry> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(source).cloned()
    }

    async fn fetch(&self, r: &SecretRef, forced: Option<Instant>) -> Result<Entry, Failure> {
        let (text, version) = match &r.source {
            Source::SecretsManager { id, version_stage } => {
                let b = self
                    .secrets_manager
                    .get(|sdk, t| {
                        let conf =
                            aws_sdk_secretsmanager::config::Builder::from(sdk).timeout_config(t);
                        aws_sdk_secretsmanager::Client::from_conf(conf.build())
                    })
                    .await;
                secrets_manager(b, id, version_stage).await
            }
            Source::Ssm { name } => {
                let b = self
                    .ssm
                    .get(|sdk, t| {
                        let conf = aws_sdk_ssm::config::Builder::from(sdk).timeout_config(t);
                        aws_sdk_ssm::Client::from_conf(conf.build())
                    })
                    .await;
                parameter(b, name).await
            }
        }
        .map_err(|f| Failure::new(Stage::Secret, format!("{r}: {}", f.cause)))?;
        let entry = Entry {
            text,
            version,
            fetched: Instant::now(),
            forced,
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(r.source.clone(), entry.clone());
        Ok(entry)
    }
}

/// The resource an IAM policy names for a secret: its ARN as given, or the pattern of a name
/// (Secrets Manager appends `-` and six characters).
fn secret_arn(id: &str, region: &str) -> String {
    if id.starts_with("arn:") {
        id.to_string()
    } else {
        format!("arn:aws:secretsmanager:{region}:*:secret:{id}-*")
    }
}

async fn secrets_manager(
    b: &Built<aws_sdk_secretsmanager::Client>,
    id: &str,
    stage: &str,
) -> Result<(Secret<String>, String), Failure> {
    let out = b
        .client
        .get_secret_value()
        .secret_id(id)
        .version_stage(stage)
        .send()
        .await
        .map_err(|e| {
            let code = errors::error_code(&e).unwrap_or_default();
            if code == "DecryptionFailure" {
                return Failure::new(Stage::Secret, "Secrets Manager cannot decrypt it (DecryptionFailure): the instance role needs kms:Decrypt on the secret's customer managed KMS key");
            }
            errors::failure_or_missing(
                &e,
                &["ResourceNotFoundException"],
                || format!("not found in {} (or no version at {stage}): check the name or ARN and [aws] region", b.region),
                &format!("secretsmanager:GetSecretValue on {}", secret_arn(id, &b.region)),
                &b.endpoint,
            )
        })?;
    let version = out.version_id().unwrap_or("unknown").to_string();
    match out.secret_string() {
        Some(s) => Ok((Secret::new(s.to_string()), version)),
        None => Err(Failure::new(
            Stage::Secret,
            "holds a binary value (SecretBinary): store the password as a string",
        )),
    }
}

async fn parameter(
    b: &Built<aws_sdk_ssm::Client>,
    name: &str,
) -> Result<(Secret<String>, String), Failure> {
    let out = b
        .client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            let code = errors::error_code(&e).unwrap_or_default();
            let message = aws_sdk_ssm::error::ProvideErrorMetadata::message(&e).unwrap_or_default().to_ascii_lowercase();
            if code.starts_with("InvalidKeyId") || (errors::is_denied(&code) && message.contains("kms")) {
                return Failure::new(Stage::Secret, format!("the SecureString cannot be decrypted ({code}): the instance role needs kms:Decrypt on the parameter's KMS key"));
            }
            let path = name.trim_start_matches('/');
            errors::failure_or_missing(
                &e,
                &["ParameterNotFound"],
                || format!("not found in {}: check the parameter name and [aws] region", b.region),
                &format!("ssm:GetParameter on arn:aws:ssm:{}:*:parameter/{path}", b.region),
                &b.endpoint,
            )
        })?;
    let p = out
        .parameter()
        .ok_or_else(|| Failure::new(Stage::Secret, "SSM answered without the parameter"))?;
    Ok((
        Secret::new(p.value().unwrap_or_default().to_string()),
        p.version().to_string(),
    ))
}

/// The value `r` means in the fetched text: all of it, or one key of its JSON. The messages
/// name keys, never values.
fn pick(r: &SecretRef, entry: &Entry) -> Result<Fetched, Failure> {
    let value = match &r.key {
        None => entry.text.clone(),
        Some(key) => {
            let json: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(entry.text.expose()).map_err(|_| {
                    Failure::new(
                        Stage::Secret,
                        format!("{r}: the secret is not a JSON object, but `key = {key:?}` asks for one of its keys: remove `key` or store JSON"),
                    )
                })?;
            match json.get(key) {
                Some(serde_json::Value::String(s)) => Secret::new(s.clone()),
                Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                    Secret::new(v.to_string())
                }
                Some(_) => {
                    return Err(Failure::new(
                        Stage::Secret,
                        format!("{r}: key {key:?} holds an object or array, not a string"),
                    ))
                }
                None => {
                    let keys: Vec<&str> = json.keys().map(String::as_str).collect();
                    return Err(Failure::new(
                        Stage::Secret,
                        format!(
                            "{r}: the secret has no key {key:?} (its keys: {})",
                            keys.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    Ok(Fetched {
        value,
        version: entry.version.clone(),
        fetched: entry.fetched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> Entry {
        Entry {
            text: Secret::new(text.into()),
            version: "v1".into(),
            fetched: Instant::now(),
            forced: None,
        }
    }

    fn keyed(key: Option<&str>) -> SecretRef {
        SecretRef {
            source: Source::SecretsManager {
                id: "prod/db".into(),
                version_stage: "AWSCURRENT".into(),
            },
            key: key.map(str::to_string),
        }
    }

    #[test]
    fn a_key_picks_one_value_of_the_json_and_errors_never_show_values() {
        let e = entry(r#"{"username":"app","password":"s3cr3t-value","port":3306}"#);
        assert_eq!(
            pick(&keyed(Some("password")), &e).unwrap().value.expose(),
            "s3cr3t-value"
        );
        assert_eq!(
            pick(&keyed(Some("port")), &e).unwrap().value.expose(),
            "3306"
        );
        let missing = pick(&keyed(Some("pass")), &e).unwrap_err();
        assert_eq!(missing.stage, Stage::Secret);
        assert!(
            missing.cause.contains("its keys: username, password, port"),
            "{}",
            missing.cause
        );
        assert!(!missing.cause.contains("s3cr3t"), "{}", missing.cause);
        let plain = pick(&keyed(Some("password")), &entry("s3cr3t-value")).unwrap_err();
        assert!(plain.cause.contains("not a JSON object") && !plain.cause.contains("s3cr3t"));
        assert_eq!(
            pick(&keyed(None), &entry("s3cr3t-value"))
                .unwrap()
                .value
                .expose(),
            "s3cr3t-value"
        );
    }

    #[test]
    fn a_name_becomes_the_arn_pattern_iam_needs() {
        assert_eq!(
            secret_arn("prod/db", "eu-west-1"),
            "arn:aws:secretsmanager:eu-west-1:*:secret:prod/db-*"
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf";
        assert_eq!(secret_arn(arn, "eu-west-1"), arn);
    }
}
