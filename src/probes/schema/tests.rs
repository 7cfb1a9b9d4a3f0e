//! Unit tests for parsing: every class of bad input asserts its message.

use super::super::mysql::MysqlTls;
use super::super::Config;
use crate::config::Millis;
use std::path::PathBuf;

const SEED: &str = include_str!("../../../config.toml");

fn err(text: &str) -> String {
    Config::parse(text, "c.toml").unwrap_err().to_string()
}

#[test]
fn seed_config_parses_with_defaults_filled() {
    let c = Config::parse(SEED, "config.toml").unwrap();
    assert_eq!(c.server.port, 8080);
    assert_eq!(c.probes.timeout_ms, Millis(3000));
    assert_eq!(c.logs.file, PathBuf::from("output.log"));
    let db = c.database.expect("seed has [database]");
    assert_eq!(db.port.get(), 3306);
    assert_eq!(db.tls, MysqlTls::Preferred);
    assert_eq!(c.dynamodb.unwrap().partition_key.as_str(), "id");
    assert!(c.redis.is_some() && c.s3.is_some());
}

#[test]
fn empty_file_is_a_valid_config_with_nothing_configured() {
    let c = Config::parse("", "c.toml").unwrap();
    assert!(c.database.is_none() && c.redis.is_none() && c.s3.is_none());
}

#[test]
fn malformed_toml_names_line_and_column() {
    let e = err("[server]\nhost = \"0.0.0.0\"\nport = = 8080\n");
    assert!(e.starts_with("c.toml:3:8: "), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn wrong_type_names_line_and_column() {
    let e = err("[server]\nport = \"eighty\"\n");
    assert!(e.starts_with("c.toml:2:8: "), "{e}");
    assert!(e.contains("invalid type: string \"eighty\""), "{e}");
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let e = err("[database]\nhots = \"db\"\nuser = \"u\"\ndbname = \"d\"\n");
    assert!(e.starts_with("c.toml:2:1: unknown field `hots`"), "{e}");
    assert!(e.ends_with("(did you mean `host`?)"), "{e}");
}

#[test]
fn unknown_section_suggests_the_nearest() {
    let e = err("[databse]\nhost = \"db\"\n");
    assert!(e.contains("unknown field `databse`"), "{e}");
    assert!(e.contains("did you mean `database`?"), "{e}");
}

#[test]
fn far_off_key_gets_no_hint() {
    let e = err("[server]\ncolour = 1\n");
    assert!(e.contains("unknown field `colour`"), "{e}");
    assert!(!e.contains("did you mean"), "{e}");
}

#[test]
fn port_out_of_range_is_refused() {
    let e = err("[redis]\nhost = \"r\"\nport = 70000\n");
    assert!(e.starts_with("c.toml:3:8: "), "{e}");
    assert!(
        e.contains("port must be between 1 and 65535, got 70000"),
        "{e}"
    );
    assert!(err("[redis]\nhost = \"r\"\nport = 0\n").contains("got 0"));
    assert!(err("[server]\nport = 65536\n").starts_with("c.toml:2:8: "));
}

#[test]
fn empty_host_is_refused() {
    let e = err("[database]\nhost = \"\"\nuser = \"u\"\ndbname = \"d\"\n");
    assert!(e.starts_with("c.toml:2:8: host must not be empty"), "{e}");
    assert!(err("[server]\nhost = \" \"\n").contains("host must not be empty"));
}

#[test]
fn missing_required_key_is_named() {
    let e = err("[s3]\n");
    assert!(e.contains("missing field `bucket`"), "{e}");
}

#[test]
fn bad_enum_value_lists_choices() {
    let e = err("[redis]\nhost = \"r\"\nmode = \"clustr\"\n");
    assert!(e.starts_with("c.toml:3:8: unknown variant `clustr`"), "{e}");
    assert!(e.contains("did you mean `cluster`?"), "{e}");
}

#[test]
fn zero_timeout_is_refused() {
    let e = err("[probes]\ntimeout_ms = 0\n");
    assert!(
        e.contains("milliseconds must be between 1 and 86400000, got 0"),
        "{e}"
    );
}

#[test]
fn cross_key_rule_is_checked() {
    let e = err("[redis]\nhost = \"r\"\nca_file = \"/x.pem\"\n");
    assert_eq!(
        e,
        "c.toml: [redis] ca_file is set but tls = false: set tls = true or remove ca_file"
    );
}

#[test]
fn env_supplies_secrets_and_show_masks_them() {
    let mut c = Config::parse(SEED, "config.toml").unwrap();
    c.apply_env(|k| match k {
        "SUAICLOUDAPP_DATABASE_PASSWORD" => Some("from-env-db-pw".into()),
        "SUAICLOUDAPP_REDIS_PASSWORD" => Some("from-env-redis-pw".into()),
        _ => None,
    });
    assert_eq!(
        c.database.as_ref().unwrap().password.filled(),
        "from-env-db-pw"
    );
    let shown = c.to_display_toml();
    assert!(!shown.contains("from-env"), "{shown}");
    assert!(shown.contains("password = \"***\""), "{shown}");
    // the shown config is itself a valid config
    Config::parse(&shown, "shown").unwrap();
}

#[test]
fn seed_password_never_shown() {
    let c = Config::parse(SEED, "config.toml").unwrap();
    let pw = c.database.as_ref().unwrap().password.filled().to_string();
    assert!(!pw.is_empty());
    assert!(!c.to_display_toml().contains(&pw));
    assert!(!format!("{c:?}").contains(&pw));
}

#[test]
fn sns_topic_must_be_an_arn_at_load() {
    let e = err("[sns]\ntopic_arn = \"alerts\"\n");
    assert!(
        e.starts_with("c.toml:2:13: \"alerts\" is not an SNS topic ARN"),
        "{e}"
    );
    assert!(err("[sns]\ntopic_arn = \"arn:aws:sqs:us-east-1:1:q\"\n").contains("not an SNS"));
    assert!(err("[sns]\ntopic_arn = \"arn:aws:sns::1:t\"\n").contains("not an SNS"));
    let c = Config::parse(
        "[sns]\ntopic_arn = \"arn:aws:sns:eu-west-1:123456789012:t\"\n",
        "c",
    )
    .unwrap();
    assert_eq!(
        c.sns.unwrap().topic_arn.to_string(),
        "arn:aws:sns:eu-west-1:123456789012:t"
    );
}

#[test]
fn lambda_function_takes_a_name_alias_or_arn() {
    for ok in [
        "app-api",
        "app-api:live",
        "app.api:$LATEST",
        "123456789012:function:app-api",
        "arn:aws:lambda:us-east-1:123456789012:function:app-api",
        "arn:aws:lambda:us-east-1:123456789012:function:app-api:7",
    ] {
        let text = format!("[lambda]\nfunction = \"{ok}\"\n");
        assert!(Config::parse(&text, "c").is_ok(), "{ok}");
    }
    for bad in [
        "",
        "app api",
        "arn:aws:sns:us-east-1:123456789012:function:f",
        "arn:aws:lambda:us-east-1:123456789012:f",
    ] {
        let e = err(&format!("[lambda]\nfunction = \"{bad}\"\n"));
        assert!(e.starts_with("c.toml:2:12: "), "{bad}: {e}");
        assert!(e.contains("is not a Lambda function name or ARN"), "{e}");
    }
    assert!(
        err(&format!("[lambda]\nfunction = \"{}\"\n", "f".repeat(171))).contains("not a Lambda")
    );
}

#[test]
fn stream_names_are_names_within_their_limits() {
    assert!(Config::parse("[kinesis]\nstream = \"scraped_pages.v2-a\"\n", "c").is_ok());
    let e = err("[kinesis]\nstream = \"a/b\"\n");
    assert!(
        e.starts_with("c.toml:2:10: \"a/b\" is not a stream name: 1-128"),
        "{e}"
    );
    assert!(err(&format!("[kinesis]\nstream = \"{}\"\n", "s".repeat(129))).contains("1-128"));
    let long = "d".repeat(65);
    let e = err(&format!("[firehose]\ndelivery_stream = \"{long}\"\n"));
    assert!(e.contains("is not a delivery stream name: 1-64"), "{e}");
    assert!(Config::parse(
        &format!("[firehose]\ndelivery_stream = \"{}\"\n", &long[1..]),
        "c"
    )
    .is_ok());
}
