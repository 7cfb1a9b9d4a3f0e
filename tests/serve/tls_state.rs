//! What TLS a passing MySQL or PostgreSQL connection had (`tls=verified`, `tls=unverified`,
//! `tls=off`), as the dashboard (text and HTML), the JSON and `check` show it, against the
//! shared MariaDB (plain 13306, TLS-only 13307) and the shared PostgreSQL (TLS offered).

use harness::*;

fn mysql(port: &str, extra: &str) -> String {
    format!(
        "[database]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"probe\"\npassword = \"{}\"\ndbname = \"suai\"\ntimeout_ms = 2000\n{extra}\n",
        env_var("SUAI_TEST_MYSQL_PASSWORD")
    )
}

fn pg(extra: &str) -> String {
    format!(
        "[postgres]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"probe\"\npassword = \"{}\"\ndbname = \"suai\"\ntimeout_ms = 2000\n{extra}\n",
        env_var("SUAI_TEST_PG_PORT"),
        env_var("SUAI_TEST_PG_PASSWORD")
    )
}

/// Starts the app on `section` and asserts `tls=<want>` on every surface for `backend`.
fn assert_tls(name: &str, backend: &str, section: &str, want: &str) {
    let a = App::start(name, &format!("{}{section}", server_section()));
    let page = a.get(&format!("/{backend}"));
    assert_eq!(page.body, "OK", "{name}: /{backend}");
    let json: serde_json::Value = serde_json::from_str(&a.get("/?format=json").body).unwrap();
    let check = &json["checks"][format!("{backend}:responseTime")][0];
    assert_eq!(check["details"]["tls"], want, "{name}: JSON {check}");
    let needle = format!("tls={want}");
    let text = a.get("/").body;
    let row = text.lines().find(|l| l.starts_with(backend)).unwrap_or("");
    assert!(row.contains(&needle), "{name}: text row {row:?}");
    let html = a.request("GET", "/", &[("Accept", "text/html")]).body;
    assert!(html.contains(&needle), "{name}: HTML");
    let out = app_command()
        .current_dir(&a.dir)
        .args(["check", backend])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{name}: check: {stdout}");
    assert!(stdout.contains(&needle), "{name}: check: {stdout}");
}

#[test]
fn mysql_rows_say_whether_tls_was_off_unverified_or_verified() {
    let plain = env_var("SUAI_TEST_MYSQL_PORT");
    let tls = env_var("SUAI_TEST_MYSQL_TLS_PORT");
    let ca = env_var("SUAI_TEST_TLS_CA");
    // `preferred` (the default) against a server without TLS: plain.
    assert_tls("tls-my-off", "database", &mysql(&plain, ""), "off");
    // `preferred` against a TLS server: encrypted, certificate not checked.
    assert_tls("tls-my-pref", "database", &mysql(&tls, ""), "unverified");
    assert_tls(
        "tls-my-req",
        "database",
        &mysql(&tls, "tls = \"required\""),
        "unverified",
    );
    for mode in ["verify-ca", "verify-identity"] {
        assert_tls(
            "tls-my-verify",
            "database",
            &mysql(&tls, &format!("tls = \"{mode}\"\nca_file = \"{ca}\"")),
            "verified",
        );
    }
}

#[test]
fn postgres_rows_say_whether_tls_was_off_unverified_or_verified() {
    let ca = env_var("SUAI_TEST_TLS_CA");
    assert_tls(
        "tls-pg-off",
        "postgres",
        &pg("sslmode = \"disable\""),
        "off",
    );
    // `prefer` (the default) against a server offering TLS: encrypted, not verified.
    assert_tls("tls-pg-pref", "postgres", &pg(""), "unverified");
    assert_tls(
        "tls-pg-verify",
        "postgres",
        &pg(&format!("sslmode = \"verify-full\"\nca_file = \"{ca}\"")),
        "verified",
    );
}
