//! What an AWS SDK error means for an operator, and the one way an AWS probe builds its client.
//!
//! Every AWS probe (and the `s3://` config source) turns an `SdkError` into a staged
//! [`Failure`] here: the SDK's typed variants and AWS's error codes first, the error chain's
//! text last (see [`crate::tls::Cause`]). [`LazyClient`] builds a probe's service client once,
//! on its first check, from the shared SDK config of [`crate::aws`].

use super::{timeouts, AwsContext};
use crate::outcome::{Failure, Stage};
use crate::tls::{chain_text, Cause};
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ConnectorError, ProvideErrorMetadata, SdkError};
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The region an SDK config resolved to, for messages and ARNs.
fn region_of(sdk: &SdkConfig) -> String {
    sdk.region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "(no region)".into())
}

/// Where a client sends its requests and how long a call may take, for messages.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The `endpoint_url` override, or "the S3 endpoint of eu-west-1".
    pub label: String,
    /// True when the address came from `[aws] endpoint_url` or `AWS_ENDPOINT_URL`.
    pub overridden: bool,
    /// How long a call may take, named in timeout messages.
    pub budget: Duration,
}

impl Endpoint {
    /// Describes the endpoint `service` (as in "S3", "DynamoDB") resolves to under `sdk`.
    pub fn new(sdk: &SdkConfig, service: &str, budget: Duration) -> Endpoint {
        match sdk.endpoint_url() {
            Some(url) => Endpoint {
                label: url.to_string(),
                overridden: true,
                budget,
            },
            None => Endpoint {
                label: format!("the {service} endpoint of {}", region_of(sdk)),
                overridden: false,
                budget,
            },
        }
    }

    /// What to check when the endpoint cannot be reached.
    fn route_hint(&self) -> &'static str {
        if self.overridden {
            "check [aws] endpoint_url (or AWS_ENDPOINT_URL)"
        } else {
            "check the VPC endpoint or NAT route and security groups"
        }
    }
}

/// The error code AWS answered with: from the SDK's parsed metadata or, when the body is the
/// XML shape the SDK did not expect (moto's DynamoDB denial), from its `<Code>` element.
pub fn error_code<E>(err: &SdkError<E, HttpResponse>) -> Option<String>
where
    E: ProvideErrorMetadata,
{
    err.code()
        .map(str::to_string)
        .or_else(|| xml_element(err, "Code"))
}

fn error_message<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata,
{
    err.message()
        .map(str::to_string)
        .or_else(|| xml_element(err, "Message"))
        .map(|m| short(&m))
        .unwrap_or_default()
}

/// The text of the first `<name>` element of an error body, if the body is XML.
fn xml_element<E>(err: &SdkError<E, HttpResponse>, name: &str) -> Option<String> {
    let body = err.raw_response()?.body().bytes()?;
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{name}>"))?;
    let value = text[start..start + len].trim();
    (!value.is_empty() && value.len() <= 200).then(|| value.to_string())
}

/// Turns any SDK error into a staged failure. `needs` names the IAM permission and resource,
/// as in "s3:ListBucket on arn:aws:s3:::bucket", for the access-denied message.
pub fn failure<E>(err: &SdkError<E, HttpResponse>, needs: &str, endpoint: &Endpoint) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = error_code(err);
    let msg = error_message(err);
    let tail = if msg.is_empty() {
        String::new()
    } else {
        format!("; {msg}")
    };
    if let Some(c) = code.as_deref().filter(|c| is_clock_skew(c, &msg)) {
        return Failure::new(
            Stage::Auth,
            format!("AWS refused the request time ({c}): the instance clock is off; check chrony/NTP{tail}"),
        );
    }
    if let Some(c) = code.as_deref().filter(|c| is_bad_credentials(c)) {
        return Failure::new(
            Stage::Auth,
            format!("the AWS credentials were rejected ({c}): check the instance profile or AWS_ACCESS_KEY_ID{tail}"),
        );
    }
    if code.as_deref().map_or(status == Some(403), is_denied) {
        let c = code.unwrap_or_else(|| "HTTP 403".into());
        return Failure::new(
            Stage::Auth,
            format!("access denied ({c}): the instance role needs {needs}{tail}"),
        );
    }
    match (err, status) {
        (SdkError::TimeoutError(_), _) => Failure::new(
            Stage::Timeout,
            format!(
                "no answer from {} within {} ms: {}",
                endpoint.label,
                endpoint.budget.as_millis(),
                endpoint.route_hint()
            ),
        ),
        (SdkError::ResponseError(_), Some(status)) => Failure::new(
            Stage::Request,
            format!(
                "could not read the answer of {} (HTTP {status}): {}",
                endpoint.label,
                short(&chain_text(err))
            ),
        ),
        (SdkError::ServiceError(_), _) | (_, Some(_)) => {
            let c = code.unwrap_or_else(|| format!("HTTP {}", status.unwrap_or(0)));
            Failure::new(
                Stage::Request,
                format!("{} answered {c}{tail}", endpoint.label),
            )
        }
        _ => transport_failure(Some(err), &chain_text(err), endpoint),
    }
}

/// As [`failure`], but an error whose code is one of `missing_codes` (the resource does not
/// exist) becomes a `query` failure with `missing`'s words: what to check in the config.
pub fn failure_or_missing<E>(
    err: &SdkError<E, HttpResponse>,
    missing_codes: &[&str],
    missing: impl FnOnce() -> String,
    needs: &str,
    endpoint: &Endpoint,
) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error_code(err) {
        Some(c) if missing_codes.contains(&c.as_str()) => Failure::new(Stage::Query, missing()),
        _ => failure(err, needs, endpoint),
    }
}

/// Access denied as S3, DynamoDB and moto spell it (moto's DynamoDB denial is a 403 with an XML body).
pub fn is_denied(code: &str) -> bool {
    matches!(code, "AccessDenied" | "AccessDeniedException" | "Forbidden")
}

/// A signature refused because of the clock, not the keys (S3 sends a 403 for it).
fn is_clock_skew(code: &str, msg: &str) -> bool {
    matches!(code, "RequestTimeTooSkewed" | "RequestExpired")
        || (code == "InvalidSignatureException" && msg.contains("Signature expired"))
}

/// Codes that mean the keys themselves are wrong, expired or unknown (not a missing permission).
fn is_bad_credentials(code: &str) -> bool {
    matches!(
        code,
        "InvalidAccessKeyId"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "InvalidSignatureException"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "InvalidToken"
    )
}

/// Classifies a failure that happened before an AWS answer arrived: `err` when there is one
/// (typed checks), else only `chain`, the error chain's text.
fn transport_failure(
    err: Option<&(dyn Error + 'static)>,
    chain: &str,
    endpoint: &Endpoint,
) -> Failure {
    let cause = Cause::new(err, chain);
    let ep = &endpoint.label;
    let tls = cause.untrusted_certificate() || cause.mentions(&["tls"]);
    let timed_out = cause.timed_out()
        || cause.any(|e| {
            e.downcast_ref::<ConnectorError>()
                .is_some_and(ConnectorError::is_timeout)
        });
    let (stage, what) = if cause.mentions(&["credential"]) {
        (Stage::Auth, "no AWS credentials could be loaded: attach an instance profile (IAM role) or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_string())
    } else if cause.unresolved() {
        let check = if endpoint.overridden {
            "check [aws] endpoint_url (or AWS_ENDPOINT_URL) and the VPC's DNS settings"
        } else {
            "check [aws] region and the VPC's DNS settings"
        };
        (
            Stage::Dns,
            format!("cannot resolve the host of {ep}: {check}"),
        )
    } else if cause.refused() {
        (
            Stage::Connect,
            format!("connection to {ep} refused: {}", endpoint.route_hint()),
        )
    } else if tls && rustls_native_certs::load_native_certs().certs.is_empty() {
        (
            Stage::Tls,
            format!("cannot verify {ep}: this system has no CA bundle: install ca-certificates or set SSL_CERT_FILE to a PEM bundle"),
        )
    } else if tls {
        (
            Stage::Tls,
            format!(
                "TLS to {ep} failed: check the system CA bundle and any TLS-intercepting proxy"
            ),
        )
    } else if timed_out {
        (
            Stage::Timeout,
            format!(
                "no answer from {ep} within {} ms: {}",
                endpoint.budget.as_millis(),
                endpoint.route_hint()
            ),
        )
    } else if cause.mentions(&["region"]) {
        (
            Stage::Request,
            "no AWS region: set [aws] region or AWS_REGION".to_string(),
        )
    } else {
        (Stage::Request, format!("the request to {ep} failed"))
    };
    Failure::new(stage, format!("{what} ({})", short(chain)))
}

/// Keeps an upstream message to one short line.
fn short(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 300 {
        one_line.chars().take(300).collect::<String>() + "..."
    } else {
        one_line
    }
}

/// A service client built once, on a probe's first check, from the shared SDK config with the
/// probe's own timeouts.
pub struct LazyClient<C> {
    aws: Arc<AwsContext>,
    service: &'static str,
    budget: Duration,
    cell: OnceCell<Built<C>>,
}

/// A built client and where it goes, for messages.
pub struct Built<C> {
    /// The service client, with the probe's timeouts.
    pub client: C,
    /// The region the shared config resolved to, for messages and ARNs.
    pub region: String,
    /// Where the client's requests go, for messages.
    pub endpoint: Endpoint,
}

impl<C> LazyClient<C> {
    /// Nothing is built until [`LazyClient::get`].
    pub fn new(aws: Arc<AwsContext>, service: &'static str, budget: Duration) -> Self {
        LazyClient {
            aws,
            service,
            budget,
            cell: OnceCell::new(),
        }
    }

    /// The client; `build` gets the shared config and this probe's timeouts.
    pub async fn get(&self, build: impl FnOnce(&SdkConfig, TimeoutConfig) -> C) -> &Built<C> {
        self.cell
            .get_or_init(|| async {
                let sdk = self.aws.sdk().await;
                Built {
                    client: build(sdk, timeouts(self.budget)),
                    region: region_of(sdk),
                    endpoint: Endpoint::new(sdk, self.service, self.budget),
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(budget_ms: u64) -> Endpoint {
        Endpoint {
            label: "http://127.0.0.1:9".into(),
            overridden: true,
            budget: Duration::from_millis(budget_ms),
        }
    }

    #[test]
    fn transport_errors_are_staged_and_name_the_endpoint() {
        let f = transport_failure(
            None,
            "dispatch failure: io error: tcp connect error: Connection refused (os error 111)",
            &local(500),
        );
        assert_eq!(f.stage, Stage::Connect);
        assert!(
            f.cause
                .starts_with("connection to http://127.0.0.1:9 refused: check [aws] endpoint_url"),
            "{}",
            f.cause
        );
        let f = transport_failure(
            None,
            "dns error: failed to lookup address information",
            &local(500),
        );
        assert_eq!(f.stage, Stage::Dns);
        let f = transport_failure(None, "io error: operation timed out", &local(500));
        assert_eq!(f.stage, Stage::Timeout);
        assert!(f.cause.contains("within 500 ms"), "{}", f.cause);
    }

    #[test]
    fn the_connectors_own_timeout_is_read_before_the_text() {
        let err = ConnectorError::timeout("dispatch failure".into());
        let f = transport_failure(Some(&err), "dispatch failure", &local(500));
        assert_eq!(f.stage, Stage::Timeout, "{}", f.cause);
    }

    #[test]
    fn clock_skew_is_not_mistaken_for_bad_keys() {
        assert!(is_clock_skew("RequestTimeTooSkewed", ""));
        assert!(is_clock_skew(
            "InvalidSignatureException",
            "Signature expired: 20250101T000000Z is now earlier than ..."
        ));
        assert!(!is_clock_skew(
            "InvalidSignatureException",
            "The request signature we calculated does not match"
        ));
        assert!(is_bad_credentials("InvalidSignatureException"));
    }
}
