//! RDS IAM authentication: the token equals, byte for byte, what botocore's
//! `generate_db_auth_token` makes for the same credentials, region, host, port, user and clock
//! (with and without a session token, with a user name that needs escaping); and `[database]
//! auth = "iam"` logging in to MariaDB through PAM in cleartext over verified TLS, the stand-in
//! for RDS (scripts/rds_iam_verify.py checks the token with botocore).

use harness::moto::venv_python;
use harness::*;
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

/// A private MariaDB that accepts `user` only through PAM, as RDS's IAM plugin does: TLS
/// required, the password sent in cleartext (`mysql_clear_password`), and the PAM step
/// (pam_exec, scripts/rds_iam_verify.py) checking the token with botocore.
fn iam_mariadb(user: &str) -> harness::servers::OwnMariaDb {
    let mut db = harness::servers::OwnMariaDb::install();
    let tls = |k: &str| env_var(k);
    let (ca, cert, key) = (
        tls("SUAI_TEST_TLS_CA"),
        tls("SUAI_TEST_TLS_CERT"),
        tls("SUAI_TEST_TLS_KEY"),
    );
    let options = [
        "--plugin-load-add=auth_pam_v1".to_string(),
        "--pam-use-cleartext-plugin".to_string(),
        format!("--ssl-ca={ca}"),
        format!("--ssl-cert={cert}"),
        format!("--ssl-key={key}"),
    ];
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    db.start_with(&options);
    let service = env_var("SUAI_TEST_RDS_IAM_PAM_SERVICE");
    let out = db.sql(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED VIA pam USING '{service}' REQUIRE SSL; GRANT USAGE ON *.* TO '{user}'@'%'; SELECT plugin FROM mysql.user WHERE user = '{user}';"
    ));
    assert!(
        out.contains("pam"),
        "the user authenticates through PAM: {out:?}"
    );
    db
}

/// What the PAM step accepts for `user`: this endpoint, region and the sandbox's keys.
fn expect_token(user: &str, port: u16, region: &str) {
    let file =
        std::path::Path::new(&env_var("SUAI_TEST_RDS_IAM_EXPECT")).join(format!("{user}.json"));
    let want = serde_json::json!({
        "endpoint": format!("127.0.0.1:{port}"),
        "region": region,
        "access_key": "testing",
        "secret_key": "testing",
    });
    std::fs::write(file, want.to_string()).unwrap();
}

fn iam_config(port: u16, user: &str, region: &str, extra: &str) -> String {
    format!(
        "{}[aws]\nregion = \"{region}\"\n[probes]\ncache_ms = 0\n[database]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\ndbname = \"information_schema\"\nauth = \"iam\"\ntls = \"verify-identity\"\nca_file = \"{}\"\ntimeout_ms = 5000\n{extra}",
        server_section(),
        env_var("SUAI_TEST_TLS_CA"),
    )
}

#[test]
fn database_iam_auth_logs_in_over_verified_tls_and_a_wrong_region_is_refused_as_auth() {
    let user = format!("iam{}", std::process::id());
    let db = iam_mariadb(&user);
    expect_token(&user, db.port, "us-east-1");
    let a = App::start("iam-mysql", &iam_config(db.port, &user, "us-east-1", ""));
    let r = a.get("/database");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "OK"),
        "log: {}",
        std::fs::read_to_string(env_var("SUAI_TEST_RDS_IAM_LOG")).unwrap_or_default()
    );
    let json = a.get("/database?format=json").body;
    assert!(json.contains("\"tls\":\"verified\""), "{json}");
    // The token reached the server as the password, over TLS, and no page or log shows it.
    let seen = a.get("/").body + &a.get("/logs").body + &a.log_file() + &a.stderr();
    assert!(!seen.contains("X-Amz-Signature"), "a token was shown");

    // Signed for another region: the PAM step refuses it, and the page names the permission.
    let b = App::start(
        "iam-mysql-region",
        &iam_config(db.port, &user, "eu-west-1", ""),
    );
    assert_fails(
        &b.get("/database"),
        "auth",
        &[
            "IAM authentication refused",
            "rds-db:connect on arn:aws:rds-db:eu-west-1:ACCOUNT:dbuser:RESOURCE_ID/",
            &user,
        ],
    );
}

#[test]
fn iam_auth_without_verified_tls_or_with_a_password_is_a_config_error() {
    let ca_line = format!("ca_file = \"{}\"\n", env_var("SUAI_TEST_TLS_CA"));
    let unverified = iam_config(3306, "u", "us-east-1", "")
        .replace("tls = \"verify-identity\"\n", "tls = \"required\"\n")
        .replace(&ca_line, "");
    let with_password = iam_config(3306, "u", "us-east-1", "password = \"x\"\n");
    for (config, want) in [
        (unverified, "sends the token in cleartext"),
        (with_password, "remove password"),
    ] {
        let dir = scratch_dir("iam-config");
        std::fs::write(dir.join("c.toml"), &config).unwrap();
        let out = app_command()
            .arg("--config")
            .arg(dir.join("c.toml"))
            .args(["config", "validate"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{config}\n{said}");
        assert!(
            said.contains("auth = \"iam\"") && said.contains(want),
            "{said}"
        );
    }
}
