//! RDS IAM authentication: the token equals, byte for byte, what botocore's
//! `generate_db_auth_token` makes for the same credentials, region, host, port, user and clock
//! (with and without a session token, with a user name that needs escaping); and `[database]
//! auth = "iam"` logging in to MariaDB through PAM in cleartext over verified TLS, the stand-in
//! for RDS (scripts/rds_iam_verify.py checks the token with botocore).

use harness::moto::venv_python;
use harness::*;
use std::process::Command;
use std::time::{Duration, SystemTime};
use suaicloudapp::aws::auth_token::{token, Login};

/// The reference tokens, made by botocore with its clock pinned to `epoch` seconds: RDS's with
/// `generate_db_auth_token`; ElastiCache's as AWS's published example makes it (`SigV4QueryAuth`
/// on `GET /?Action=connect&User=<id>` to the cache name, service `elasticache`, 900 s).
fn botocore_token(
    login: &Login,
    region: &str,
    creds: (&str, &str, Option<&str>),
    epoch: u64,
) -> String {
    let script = r#"
import datetime, json, sys
from unittest import mock
import botocore.session, botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
login, region, key, secret, session, epoch = json.loads(sys.argv[1]), *sys.argv[2:7]
fixed = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).replace(tzinfo=None)
class Fixed(datetime.datetime):
    @classmethod
    def utcnow(cls): return fixed
    @classmethod
    def now(cls, tz=None): return fixed.replace(tzinfo=tz) if tz else fixed
with mock.patch.object(botocore.auth.datetime, "datetime", Fixed):
    if "Rds" in login:
        s = botocore.session.get_session()
        s.set_credentials(key, secret, session or None)
        c = s.create_client("rds", region_name=region)
        l = login["Rds"]
        print(c.generate_db_auth_token(l["host"], l["port"], l["user"]))
    else:
        l = login["ElastiCache"]
        params = {"Action": "connect", "User": l["user"]}
        if l["serverless"]:
            params["ResourceType"] = "ServerlessCache"
        req = AWSRequest(method="GET", url=f"https://{l['cache']}/", params=params)
        botocore.auth.SigV4QueryAuth(Credentials(key, secret, session or None), "elasticache", region, expires=900).add_auth(req)
        print(req.url.removeprefix("https://"))
"#;
    let login_json = match login {
        Login::Rds { host, port, user } => {
            serde_json::json!({"Rds": {"host": host, "port": port, "user": user}})
        }
        Login::ElastiCache {
            cache,
            user,
            serverless,
        } => {
            serde_json::json!({"ElastiCache": {"cache": cache, "user": user, "serverless": serverless}})
        }
    };
    let (key, secret, session) = creds;
    let out = Command::new(venv_python())
        .args([
            "-c",
            script,
            &login_json.to_string(),
            region,
            key,
            secret,
            session.unwrap_or(""),
            &epoch.to_string(),
        ])
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
fn the_rds_and_elasticache_tokens_are_botocores_byte_for_byte() {
    let (key, secret) = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    let epoch = 1_796_000_523;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch);
    let session = Some("FQoGZXIvYXdzEXAMPLE/token+==");
    let cases = [
        (
            Login::Rds {
                host: "suai-db.cluster-abcdefghijkl.us-east-1.rds.amazonaws.com".into(),
                port: 3306,
                user: "iam_app".into(),
            },
            "us-east-1",
            None,
        ),
        (
            Login::Rds {
                host: "db.example.com".into(),
                port: 5432,
                user: "iam_user+1@x".into(),
            },
            "eu-central-1",
            session,
        ),
        (
            Login::ElastiCache {
                cache: "suai-redis".into(),
                user: "iam-user-01".into(),
                serverless: false,
            },
            "us-east-1",
            None,
        ),
        (
            Login::ElastiCache {
                cache: "suai-serverless".into(),
                user: "iam user+2".into(),
                serverless: true,
            },
            "ap-southeast-2",
            session,
        ),
    ];
    for (login, region, session) in cases {
        let creds = aws_credential_types::Credentials::new(
            key,
            secret,
            session.map(str::to_string),
            None,
            "test",
        );
        let ours = token(&login, region, &creds, at).unwrap();
        let theirs = botocore_token(&login, region, (key, secret, session), epoch);
        assert_eq!(ours, theirs, "{login:?}");
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
    expect_token_at(user, port, region, 0);
}

/// As [`expect_token`], with the PAM step's clock `offset_s` seconds ahead.
fn expect_token_at(user: &str, port: u16, region: &str, offset_s: u64) {
    let file =
        std::path::Path::new(&env_var("SUAI_TEST_RDS_IAM_EXPECT")).join(format!("{user}.json"));
    let want = serde_json::json!({
        "endpoint": format!("127.0.0.1:{port}"),
        "region": region,
        "access_key": "testing",
        "secret_key": "testing",
        "clock_offset_s": offset_s,
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

    // Expired: the server's clock 16 minutes ahead of the token's. A new session is refused (the
    // pooled one stays open, as on RDS: killed here so the check must log in again).
    expect_token_at(&user, db.port, "us-east-1", 16 * 60);
    for id in db
        .sql(&format!(
            "SELECT id FROM information_schema.processlist WHERE user = '{user}'"
        ))
        .split_whitespace()
    {
        db.sql(&format!("KILL {id}"));
    }
    assert_fails(&a.get("/database"), "auth", &["IAM authentication refused"]);
    let log = std::fs::read_to_string(env_var("SUAI_TEST_RDS_IAM_LOG")).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("{user}: expired at"))),
        "the PAM step saw it expired: {log}"
    );
    expect_token(&user, db.port, "us-east-1");

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

/// `config validate` refuses `config` (exit 2), its message holding each of `words`.
fn assert_refused_at_load(config: &str, words: &[&str]) {
    let file = scratch_dir("iam-config").join("c.toml");
    std::fs::write(&file, config).unwrap();
    let out = app_command()
        .arg("--config")
        .arg(&file)
        .args(["config", "validate"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{config}\n{said}");
    for w in words {
        assert!(said.contains(w), "want {w:?}: {said}");
    }
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
        assert_refused_at_load(&config, &["auth = \"iam\"", want]);
    }
}

/// The ElastiCache stand-in (tests/harness/elasticache_iam.py) in front of the test Redis, for
/// this cache name and region.
struct ElastiCacheStandIn {
    port: u16,
    child: std::process::Child,
}

impl ElastiCacheStandIn {
    fn start(cache: &str, region: &str) -> ElastiCacheStandIn {
        let port = closed_port();
        let want = serde_json::json!({
            "cache": cache, "region": region, "access_key": "testing", "secret_key": "testing",
        });
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/harness/elasticache_iam.py");
        let child = Command::new(venv_python())
            .arg(script)
            .arg(port.to_string())
            .args([env_var("SUAI_TEST_TLS_CERT"), env_var("SUAI_TEST_TLS_KEY")])
            .args([
                env_var("SUAI_TEST_REDIS_PORT"),
                env_var("SUAI_TEST_REDIS_USER"),
                env_var("SUAI_TEST_REDIS_PASSWORD"),
            ])
            .arg(want.to_string())
            .spawn()
            .expect("the moto venv's python");
        await_listening(port, Duration::from_secs(15), "the ElastiCache stand-in");
        ElastiCacheStandIn { port, child }
    }
}

impl Drop for ElastiCacheStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_iam_config(port: u16, region: &str) -> String {
    format!(
        "{}[aws]\nregion = \"{region}\"\n[probes]\ncache_ms = 0\n[redis]\nhost = \"127.0.0.1\"\nport = {port}\nmode = \"standalone\"\ntls = true\nca_file = \"{}\"\nauth = \"iam\"\nusername = \"iam-user-01\"\ncache_name = \"suai-redis\"\ntimeout_ms = 5000\n",
        server_section(),
        env_var("SUAI_TEST_TLS_CA"),
    )
}

#[test]
fn redis_iam_auth_passes_the_elasticache_stand_in_and_a_wrong_region_is_refused_as_auth() {
    let stand_in = ElastiCacheStandIn::start("suai-redis", "us-east-1");
    let a = App::start("iam-redis", &redis_iam_config(stand_in.port, "us-east-1"));
    let r = a.get("/redis");
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    let seen = a.get("/").body + &a.get("/logs").body + &a.log_file() + &a.stderr();
    assert!(!seen.contains("X-Amz-Signature"), "a token was shown");

    let b = App::start(
        "iam-redis-region",
        &redis_iam_config(stand_in.port, "eu-west-1"),
    );
    assert_fails(
        &b.get("/redis"),
        "auth",
        &[
            "refused the IAM token for user id 'iam-user-01'",
            "elasticache:Connect",
        ],
    );

    // The shape is checked at load: TLS, a user id, a cache name, no password.
    let base = redis_iam_config(stand_in.port, "us-east-1");
    for (config, want) in [
        (
            base.replace("tls = true\n", "").replace(
                &format!("ca_file = \"{}\"\n", env_var("SUAI_TEST_TLS_CA")),
                "",
            ),
            "set tls = true",
        ),
        (
            base.replace("cache_name = \"suai-redis\"\n", ""),
            "needs cache_name",
        ),
        (
            base.replace("username = \"iam-user-01\"\n", "password = \"x\"\n"),
            "set username, remove password",
        ),
    ] {
        assert_refused_at_load(&config, &[want]);
    }
}

#[test]
fn postgres_iam_auth_logs_in_through_pam_over_verified_tls_and_a_wrong_region_is_refused() {
    let user = env_var("SUAI_TEST_PG_IAM_USER");
    let port: u16 = env_var("SUAI_TEST_PG_PORT").parse().unwrap();
    expect_token(&user, port, "us-east-1");
    let config = |region: &str| {
        format!(
            "{}[aws]\nregion = \"{region}\"\n[probes]\ncache_ms = 0\n[postgres]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\ndbname = \"postgres\"\nauth = \"iam\"\nsslmode = \"verify-full\"\nca_file = \"{}\"\ntimeout_ms = 5000\n",
            server_section(),
            env_var("SUAI_TEST_TLS_CA"),
        )
    };
    let a = App::start("iam-pg", &config("us-east-1"));
    let r = a.get("/postgres");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "OK"),
        "log: {}",
        std::fs::read_to_string(env_var("SUAI_TEST_RDS_IAM_LOG")).unwrap_or_default()
    );
    assert!(a
        .get("/postgres?format=json")
        .body
        .contains("\"tls\":\"verified\""));
    let seen = a.get("/").body + &a.get("/logs").body + &a.log_file() + &a.stderr();
    assert!(!seen.contains("X-Amz-Signature"), "a token was shown");

    let b = App::start("iam-pg-region", &config("eu-west-1"));
    assert_fails(
        &b.get("/postgres"),
        "auth",
        &["IAM authentication refused", "rds-db:connect", &user],
    );

    // The shape is checked at load.
    for (text, want) in [
        (
            config("us-east-1")
                .replace("sslmode = \"verify-full\"\n", "sslmode = \"require\"\n")
                .replace(
                    &format!("ca_file = \"{}\"\n", env_var("SUAI_TEST_TLS_CA")),
                    "",
                ),
            "sslmode = \"verify-full\"",
        ),
        (
            config("us-east-1").replace("auth = \"iam\"\n", "auth = \"iam\"\npassword = \"x\"\n"),
            "remove password",
        ),
    ] {
        assert_refused_at_load(&text, &[want]);
    }
}
