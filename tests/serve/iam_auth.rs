//! RDS IAM authentication: the token equals, byte for byte, what botocore's
//! `generate_db_auth_token` makes for the same credentials, region, host, port, user and clock
//! (with and without a session token, with a user name that needs escaping).

use harness::moto::venv_python;
use std::process::Command;
use std::time::{Duration, SystemTime};
use suaicloudapp::aws::auth_token::{rds_token, DbLogin};

/// botocore's token for the same inputs, its clock pinned to `epoch` seconds.
fn botocore_token(
    login: &DbLogin,
    key: &str,
    secret: &str,
    session: Option<&str>,
    epoch: u64,
) -> String {
    let script = r#"
import datetime, sys
from unittest import mock
import botocore.session, botocore.auth
host, port, user, region, key, secret, session, epoch = sys.argv[1:9]
fixed = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).replace(tzinfo=None)
class Fixed(datetime.datetime):
    @classmethod
    def utcnow(cls): return fixed
    @classmethod
    def now(cls, tz=None): return fixed.replace(tzinfo=tz) if tz else fixed
s = botocore.session.get_session()
s.set_credentials(key, secret, session or None)
c = s.create_client("rds", region_name=region)
with mock.patch.object(botocore.auth.datetime, "datetime", Fixed):
    print(c.generate_db_auth_token(host, int(port), user))
"#;
    let out = Command::new(venv_python())
        .args([
            "-c",
            script,
            &login.host,
            &login.port.to_string(),
            &login.user,
            &login.region,
        ])
        .args([key, secret, session.unwrap_or(""), &epoch.to_string()])
        .output()
        .expect("the moto venv's python (botocore)");
    assert!(
        out.status.success(),
        "botocore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_rds_token_is_botocores_byte_for_byte() {
    let (key, secret) = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    let epoch = 1_796_000_523;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch);
    for (host, port, user, region, session) in [
        (
            "suai-db.cluster-abcdefghijkl.us-east-1.rds.amazonaws.com",
            3306,
            "iam_app",
            "us-east-1",
            None,
        ),
        (
            "db.example.com",
            5432,
            "iam_user+1@x",
            "eu-central-1",
            Some("FQoGZXIvYXdzEXAMPLE/token+=="),
        ),
    ] {
        let login = DbLogin {
            host: host.into(),
            port,
            user: user.into(),
            region: region.into(),
        };
        let creds = aws_credential_types::Credentials::new(
            key,
            secret,
            session.map(str::to_string),
            None,
            "test",
        );
        let ours = rds_token(&login, &creds, at).unwrap();
        let theirs = botocore_token(&login, key, secret, session, epoch);
        assert_eq!(ours, theirs, "{host}:{port} {user}");
    }
}
