//! `[auth]`: sign-in through the ALB (Cognito or any OIDC provider the listener authenticates
//! with). Only the schema and its checks; verification lives in `src/server/auth.rs`.

use super::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[auth]`: when present, `/logs`, the dashboard, JSON answers and (optionally) `/metrics`
/// require the `x-amzn-oidc-data` token the ALB signs after a user signed in.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The ARN of the load balancer whose tokens are trusted (the token's `signer`).
    pub alb_arn: String,
    /// Where the ALB's public keys are, the key id appended: by default
    /// `https://public-keys.auth.elb.<region of alb_arn>.amazonaws.com/`. Override for GovCloud
    /// (`https://s3-us-gov-west-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-west-1/`) or tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_url: Option<String>,
    /// `/metrics` also requires sign-in (off by default: scrapers do not sign in).
    #[serde(default)]
    pub protect_metrics: bool,
    /// The budget for fetching one public key.
    #[serde(default = "default_key_timeout")]
    pub key_timeout_ms: Millis,
    /// The token's `client` (the ALB listener rule's OIDC client id or Cognito app client).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_clients: Vec<String>,
    /// The `email` claim's domain (`example.com` admits `ops@example.com`, not
    /// `ops@example.com.evil`); an `email_verified` of `false` is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_domains: Vec<String>,
    /// At least one of these in the `cognito:groups` claim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Any other claim and the values it may have (a string claim equal to one, or a list
    /// claim holding one), e.g. `claims = { "custom:team" = ["sre"] }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Vec<String>>,
}

fn default_key_timeout() -> Millis {
    Millis(2_000)
}

/// The authorization keys: signing in proves who someone is, not that they may read the
/// logs. A Cognito pool with self sign-up or a Google login without a domain limit lets anyone
/// sign in, and one ALB may sign tokens for other applications. A key left empty allows
/// everyone on that count; every key set must hold.
impl AuthConfig {
    /// Whether no authorization key is set: every signed-in user gets in.
    pub fn admits_any_user(&self) -> bool {
        self.allowed_clients.is_empty()
            && self.email_domains.is_empty()
            && self.groups.is_empty()
            && self.claims.is_empty()
    }

    fn validate_allow(&self) -> Result<(), String> {
        let lists = [
            ("allowed_clients", &self.allowed_clients),
            ("email_domains", &self.email_domains),
            ("groups", &self.groups),
        ];
        for (key, values) in lists {
            if values.iter().any(|v| v.trim().is_empty()) {
                return Err(format!("[auth] {key} must not hold an empty string"));
            }
        }
        if let Some(d) = self.email_domains.iter().find(|d| d.contains('@')) {
            return Err(format!(
                "[auth] email_domains holds {d:?}: give the domain alone (example.com)"
            ));
        }
        for (claim, values) in &self.claims {
            if claim.is_empty() || values.is_empty() || values.iter().any(String::is_empty) {
                return Err(format!(
                    "[auth] claims.{claim:?} needs a claim name and at least one non-empty value"
                ));
            }
        }
        Ok(())
    }

    /// The region in `alb_arn` (`arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/...`).
    pub fn region(&self) -> Option<&str> {
        let parts: Vec<&str> = self.alb_arn.split(':').collect();
        (parts.len() >= 6 && parts[0] == "arn" && parts[2] == "elasticloadbalancing")
            .then(|| parts[3])
            .filter(|r| !r.is_empty())
    }

    /// The URL a key id is appended to.
    pub fn key_base(&self) -> String {
        match &self.key_url {
            Some(url) => url.clone(),
            None => format!(
                "https://public-keys.auth.elb.{}.amazonaws.com/",
                self.region().unwrap_or("us-east-1")
            ),
        }
    }

    /// Checks the ARN's shape and the key URL's scheme; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.region().is_none() || !self.alb_arn.contains(":loadbalancer/app/") {
            return Err(format!(
                "[auth] alb_arn {:?} is not an ALB ARN: expected arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/app/NAME/ID",
                self.alb_arn
            ));
        }
        if let Some(url) = &self.key_url {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && url.ends_with('/')
                && url.parse::<hyper::Uri>().is_ok();
            if !ok {
                return Err(format!(
                    "[auth] key_url {url:?} must be an http(s):// URL ending in / (the key id is appended)"
                ));
            }
        }
        self.validate_allow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(arn: &str, key_url: Option<&str>) -> AuthConfig {
        AuthConfig {
            alb_arn: arn.into(),
            key_url: key_url.map(Into::into),
            protect_metrics: false,
            key_timeout_ms: default_key_timeout(),
            allowed_clients: vec![],
            email_domains: vec![],
            groups: vec![],
            claims: BTreeMap::new(),
        }
    }

    #[test]
    fn key_url_defaults_to_the_albs_region() {
        let a = auth(
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188",
            None,
        );
        assert!(a.validate().is_ok());
        assert_eq!(
            a.key_base(),
            "https://public-keys.auth.elb.eu-west-1.amazonaws.com/"
        );
        assert!(auth("arn:aws:s3:::bucket", None).validate().is_err());
        let bad_url = auth(&a.alb_arn, Some("ftp://x/"));
        assert!(bad_url.validate().is_err());
    }

    #[test]
    fn authorization_keys_are_checked() {
        let arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
        let mut a = auth(arn, None);
        a.email_domains = vec!["ops@example.com".into()];
        assert!(a.validate().unwrap_err().contains("domain alone"));
        a.email_domains = vec!["example.com".into()];
        a.claims.insert("custom:team".into(), vec![]);
        assert!(a.validate().unwrap_err().contains("custom:team"));
        a.claims.insert("custom:team".into(), vec!["sre".into()]);
        assert!(a.validate().is_ok());
        assert!(!a.admits_any_user());
    }
}
