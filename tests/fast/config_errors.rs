//! Config errors through the library, as `config validate` and every load reports them: the
//! file, line and column, one line, a "did you mean" when a key is close; and `[health]` and
//! `[auth]` checked at load, not at the first request.

use suaicloudapp::probes;
use suaicloudapp::probes::Config;

fn parse_err(text: &str) -> String {
    Config::parse(text, "fast.toml").unwrap_err().to_string()
}

fn prepare_err(text: &str) -> String {
    let mut c = Config::parse(text, "fast.toml").unwrap();
    probes::prepare(&mut c, "fast.toml", |_| None)
        .unwrap_err()
        .to_string()
}

#[test]
fn malformed_toml_names_file_line_and_column_on_one_line() {
    for (text, at) in [
        ("[server]\nport = = 1\n", "fast.toml:2:8: "),
        ("[server]\nhost = \"a\"\n\n[logs\n", "fast.toml:4:6: "),
        ("[server]\nport = \"x\"\n", "fast.toml:2:8: invalid type"),
    ] {
        let e = parse_err(text);
        assert!(e.starts_with(at), "{text:?}: {e}");
        assert!(!e.contains('\n'), "one line: {e:?}");
    }
}

#[test]
fn an_unknown_key_or_section_says_what_was_meant() {
    let e = parse_err("[server]\nprot = 1\n");
    assert!(e.starts_with("fast.toml:2:1: unknown field `prot`"), "{e}");
    assert!(e.ends_with("(did you mean `port`?)"), "{e}");
    let e = parse_err("[redis]\nhots = \"r\"\n");
    assert!(e.contains("did you mean `host`?"), "{e}");
    let e = parse_err("[databse]\nhost = \"db\"\n");
    assert!(e.contains("did you mean `database`?"), "{e}");
    assert!(!parse_err("[server]\ncolour = 1\n").contains("did you mean"));
}

#[test]
fn bad_values_are_refused_where_they_are_written() {
    for (text, want) in [
        (
            "[redis]\nhost = \"r\"\nport = 99999\n",
            "fast.toml:3:8: port must be between 1 and 65535, got 99999",
        ),
        (
            "[database]\nhost = \"\"\nuser = \"u\"\ndbname = \"d\"\n",
            "fast.toml:2:8: host must not be empty",
        ),
        (
            "[probes]\ntimeout_ms = 0\n",
            "milliseconds must be between 1 and 86400000, got 0",
        ),
        ("[s3]\n", "missing field `bucket`"),
    ] {
        let e = parse_err(text);
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn ready_must_name_configured_backends() {
    let e = prepare_err("[health]\nready = [\"redis\"]\n");
    assert!(
        e.contains("[health] ready names \"redis\" but there is no [redis] section"),
        "{e}"
    );
    let e = prepare_err("[redis]\nhost = \"r\"\n[health]\nready = [\"rdis\"]\n");
    assert!(e.contains("\"rdis\" is not a backend"), "{e}");
    assert!(e.starts_with("fast.toml"), "{e}");
}

#[test]
fn a_bad_auth_section_is_refused_at_load() {
    let e = parse_err("[auth]\nalb_arn = \"arn:aws:s3:::bucket\"\n");
    assert!(
        e.contains("[auth] alb_arn \"arn:aws:s3:::bucket\" is not an ALB ARN"),
        "{e}"
    );
    let e = parse_err(
        "[auth]\nalb_arn = \"arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/w/1\"\nkey_url = \"ftp://keys/\"\n",
    );
    assert!(e.contains("[auth] key_url \"ftp://keys/\""), "{e}");
}

#[test]
fn a_logs_token_under_32_characters_is_refused_without_showing_it() {
    let e = prepare_err("[logs]\ntoken = \"only-twenty-characte\"\n");
    assert!(
        e.contains("[logs] token is 20 characters; it must be at least 32"),
        "{e}"
    );
    assert!(!e.contains("only-twenty"), "{e}");
    let mut c = Config::parse(
        &format!("[logs]\ntoken = \"{}\"\n", "k".repeat(32)),
        "fast.toml",
    )
    .unwrap();
    assert!(probes::prepare(&mut c, "fast.toml", |_| None).is_ok());
}
