//! IAM authentication tokens: the password RDS (MySQL, PostgreSQL) takes from a role instead of
//! a stored secret. A token is a SigV4-presigned `GET /?Action=connect&DBUser=<user>` to
//! `<host>:<port>` for the service `rds-db`, valid 15 minutes, without its `https://`; it is made
//! here with the SDK's own signer (`aws-sigv4`) and laid out as botocore's
//! `generate_db_auth_token` lays it out (its parameters in the same order, byte for byte, which
//! tests/serve/iam_auth.rs checks against botocore itself).

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

/// How long a token is valid: RDS's fixed 15 minutes.
pub const LIFETIME: Duration = Duration::from_secs(900);

/// Where the token logs in: the endpoint as the client dials it, and the database user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbLogin {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub region: String,
}

/// The RDS token for `login`, signed with `credentials` at `at`. `Err` names what the signer
/// refused (never a key).
pub fn rds_token(
    login: &DbLogin,
    credentials: &Credentials,
    at: SystemTime,
) -> Result<String, String> {
    let identity: Identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&login.region)
        .name("rds-db")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| format!("cannot sign the IAM token: {e}"))?
        .into();
    let endpoint = format!("{}:{}", login.host, login.port);
    let query = format!("Action=connect&DBUser={}", fmt_string(&login.user));
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
    host: String,
    port: u16,
    user: String,
    current: Mutex<Option<(String, SystemTime)>>,
}

impl TokenSource {
    pub fn new(aws: Arc<AwsContext>, host: &str, port: u16, user: &str) -> TokenSource {
        TokenSource {
            aws,
            host: host.to_string(),
            port,
            user: user.to_string(),
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
        let login = DbLogin {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            region,
        };
        let now = SystemTime::now();
        let token =
            rds_token(&login, &credentials, now).map_err(|e| Failure::new(Stage::Auth, e))?;
        *current = Some((token.clone(), now));
        Ok(token)
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
        let login = DbLogin {
            host: "db.example.com".into(),
            port: 3306,
            user: "iam_user".into(),
            region: "eu-central-1".into(),
        };
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let t = rds_token(&login, &creds, at).unwrap();
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
            rds_token(&login, &creds, at + Duration::from_secs(1)).unwrap(),
            t
        );
    }
}
