//! `suaicloudapp check`: probes once in parallel, a line per backend, exit 0/1/2.

use harness::*;

fn check(config: &str, args: &[&str]) -> (i32, String) {
    let dir = scratch_dir("check");
    std::fs::write(dir.join("c.toml"), config).unwrap();
    let out = app_command()
        .current_dir(&dir)
        .args(["--config", "c.toml", "check"])
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn config(redis_port: &str) -> String {
    format!(
        "[database]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"probe\"\npassword = \"{}\"\ndbname = \"suai\"\n[redis]\nhost = \"127.0.0.1\"\nport = {redis_port}\ntimeout_ms = 1000\n",
        env_var("SUAI_TEST_MYSQL_PORT"),
        env_var("SUAI_TEST_MYSQL_PASSWORD"),
    )
}

#[test]
fn all_pass_exits_zero_with_a_line_each() {
    let (code, out) = check(&config(&env_var("SUAI_TEST_REDIS_PORT")), &[]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("database") && l.contains(" OK ")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("redis") && l.contains(" OK ")),
        "{out}"
    );
    assert!(!out.contains(&env_var("SUAI_TEST_MYSQL_PASSWORD")));
    // What each backend reported: the server's version as its handshake gave it, the mode.
    let db = lines.iter().find(|l| l.starts_with("database")).unwrap();
    let version = db
        .split_once("  server_version=")
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no server_version: {db}"));
    assert!(version.starts_with(|c: char| c.is_ascii_digit()), "{db}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("redis") && l.ends_with(" ms  mode=standalone")),
        "{out}"
    );
}

#[test]
fn one_failure_exits_one_and_names_the_cause() {
    let (code, out) = check(&config(&closed_port().to_string()), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("redis")
            && l.contains("FAIL")
            && l.contains("connection refused")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("database") && l.contains(" OK ")),
        "{out}"
    );
}

#[test]
fn selected_backends_only_and_unknown_or_unconfigured_names() {
    let (code, out) = check(&config(&closed_port().to_string()), &["database"]);
    assert_eq!(code, 0, "only the database was asked for: {out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let (code, out) = check(&config("6379"), &["s3"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not configured"), "{out}");
    let (code, out) = check(&config("6379"), &["mongodb"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("unknown backend") && out.contains("database, redis, s3, dynamodb"),
        "{out}"
    );
}

/// The names `check` accepts and the secret variables come from the registry, so the help
/// lists every backend this build has (the test is built with the same features) and every
/// variable, not a hand-kept subset.
#[test]
fn help_names_every_backend_and_secret_variable_of_this_build() {
    let mut backends = vec!["database", "redis", "s3", "dynamodb"];
    for (on, name) in [
        (cfg!(feature = "postgres"), "postgres"),
        (cfg!(feature = "kinesis"), "kinesis"),
        (cfg!(feature = "firehose"), "firehose"),
        (cfg!(feature = "sns"), "sns"),
        (cfg!(feature = "lambda"), "lambda"),
        (cfg!(feature = "http"), "http/<name>"),
        (cfg!(feature = "tcp"), "tcp/<name>"),
    ] {
        if on {
            backends.push(name);
        }
    }
    let mut secrets = vec![
        "SUAICLOUDAPP_DATABASE_PASSWORD",
        "SUAICLOUDAPP_REDIS_PASSWORD",
        "SUAICLOUDAPP_LOGS_TOKEN",
    ];
    if cfg!(feature = "postgres") {
        secrets.push("SUAICLOUDAPP_POSTGRES_PASSWORD");
    }
    let help = |args: &[&str]| {
        let out = app_command().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        // clap wraps long lines; the names are single words, the list is read unwrapped.
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let check = help(&["check", "--help"]);
    assert!(
        check.contains(&format!("Backends to probe ({});", backends.join(", "))),
        "{check}"
    );
    let top = help(&["--help"]);
    for page in &backends {
        assert!(
            top.contains(&format!("/{page}")),
            "--help names /{page}: {top}"
        );
    }
    for var in &secrets {
        assert!(check.contains(var), "check --help names {var}: {check}");
        assert!(top.contains(var), "--help names {var}: {top}");
    }
}
