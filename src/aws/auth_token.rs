//! IAM authentication tokens: the password RDS (MySQL, PostgreSQL) and ElastiCache (Redis OSS
//! 7+, Valkey 7.2+) take from a role instead of a stored secret. A token is a SigV4-presigned
//! `GET /?Action=connect&...` for the service (`rds-db`: `DBUser=<user>` to `<host>:<port>`;
//! `elasticache`: `User=<user id>` to the cache's name), valid 15 minutes, without its scheme.
//! It is made here with the SDK's own signer (`aws-sigv4`) and laid out as botocore lays a
//! presigned request out (`generate_db_auth_token`, `SigV4QueryAuth`: the same parameters in the
//! same order, byte for byte, which tests/serve/iam_auth.rs checks against botocore itself).

use super::AwsContext;
use crate::outcome::{Failure, Stage};
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_http::query::fmt_string;
use aws_smithy_runtime_api::client::identity::Identity;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// How long a token is valid: the services' fixed 15 minutes.
pub const LIFETIME: Duration = Duration::from_secs(900);

/// What a token logs in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// An RDS endpoint as the client dials it, and the database user.
    Rds {
        host: String,
        port: u16,
        user: String,
    },
    /// An ElastiCache replication group (or serverless cache) by name, and the user id.
    ElastiCache {
        cache: String,
        user: String,
        serverless: bool,
    },
}

impl Login {
    fn service(&self) -> &'static str {
        match self {
            Login::Rds { .. } => "rds-db",
            Login::ElastiCache { .. } => "elasticache",
        }
    }

    /// The host part of the signed URL, and its query before the signature.
    fn request(&self) -> (String, String) {
        match self {
            Login::Rds { host, port, user } => (
                format!("{host}:{port}"),
                format!("Action=connect&DBUser={}", fmt_string(user)),
            ),
            Login::ElastiCache {
                cache,
                user,
                serverless,
            } => {
                let kind = if *serverless {
                    "&ResourceType=ServerlessCache"
                } else {
                    ""
                };
                (
                    cache.clone(),
                    format!("Action=connect&User={}{kind}", fmt_string(user)),
                )
            }
        }
    }
}

/// The token for `login` in `region`, signed with `credentials` at `at`. `Err` names what the
/// signer refused (never a key).
pub fn token(
    login: &Login,
    region: &str,
    credentials: &Credentials,
    at: SystemTime,
) -> Result<String, String> {
    let identity: Identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(login.service())
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| format!("cannot sign the IAM token: {e}"))?
        .into();
    let (endpoint, query) = login.request();
    let url = format!("https://{endpoint}/?{query}");
    let request = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| format!("cannot sign the IAM token for {endpoint}: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("cannot sign the IAM token: {e}"))?
        .into_parts();
    // botocore's order: the signer's, but the session token before the signature.
    let mut signed: Vec<(&str, String)> = instructions
        .params()
        .iter()
        .map(|(k, v)| (*k, fmt_string(v)))
        .collect();
    signed.sort_by_key(|(k, _)| *k == "X-Amz-Signature");
    let tail: Vec<String> = signed.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!("{endpoint}/?{query}&{}", tail.join("&")))
}

/// A token is made again this long before it expires, so a check never sends one that dies
/// during the handshake.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The token a probe logs in with: made from the shared SDK config's credentials (the
/// instance role) and region on first use, and made again before it expires.
pub struct TokenSource {
    aws: Arc<AwsContext>,
    login: Login,
    current: Mutex<Option<(String, SystemTime)>>,
}

impl TokenSource {
    pub fn new(aws: Arc<AwsContext>, login: Login) -> TokenSource {
        TokenSource {
            aws,
            login,
            current: Mutex::new(None),
        }
    }

    /// The current token, a new one when it is older than its lifetime less the margin.
    pub async fn token(&self) -> Result<String, Failure> {
        let mut current = self.current.lock().await;
        if let Some((token, made)) = current.as_ref() {
            if made
                .elapsed()
                .is_ok_and(|age| age < LIFETIME - RENEW_BEFORE)
            {
                return Ok(token.clone());
            }
        }
        let sdk = self.aws.sdk().await;
        let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
            Failure::new(
                Stage::Auth,
                "no AWS region to sign the IAM token for: set [aws] region or AWS_REGION",
            )
        })?;
        let provider = sdk.credentials_provider().ok_or_else(|| {
            Failure::new(
                Stage::Auth,
                "no AWS credentials to sign the IAM token: attach an instance profile (IAM role)",
            )
        })?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            Failure::new(
                Stage::Auth,
                format!("no AWS credentials to sign the IAM token: attach an instance profile (IAM role) or set AWS_ACCESS_KEY_ID ({e})"),
            )
        })?;
        let now = SystemTime::now();
        let made = token(&self.login, &region, &credentials, now)
            .map_err(|e| Failure::new(Stage::Auth, e))?;
        *current = Some((made.clone(), now));
        Ok(made)
    }

    /// The region the token is signed for (known once one was made), for messages.
    pub async fn region(&self) -> String {
        self.aws
            .sdk()
            .await
            .region()
            .map_or_else(|| "REGION".to_string(), |r| r.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_a_presigned_connect_for_the_endpoint_and_user() {
        let login = Login::Rds {
            host: "db.example.com".into(),
            port: 3306,
            user: "iam_user".into(),
        };
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let t = token(&login, "eu-central-1", &creds, at).unwrap();
        assert!(t.starts_with("db.example.com:3306/?Action=connect&DBUser=iam_user&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F"), "{t}");
        assert!(
            t.contains("%2Feu-central-1%2Frds-db%2Faws4_request&")
                && t.contains("&X-Amz-Expires=900&"),
            "{t}"
        );
        assert!(!t.contains("wJalr"), "no secret key in the token");
        let sig = t.rsplit_once("&X-Amz-Signature=").unwrap().1;
        assert!(
            sig.len() == 64 && sig.bytes().all(|b| b.is_ascii_hexdigit()),
            "{t}"
        );
        // Another second, another signature.
        assert_ne!(
            token(&login, "eu-central-1", &creds, at + Duration::from_secs(1)).unwrap(),
            t
        );
    }
}
