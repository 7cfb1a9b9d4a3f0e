//! `/database` against real MariaDB servers from the project's test environment.

use harness::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn db_section(port: &str, user: &str, password: &str, db: &str, extra: &str) -> String {
    format!(
        "{}[database]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\npassword = \"{password}\"\ndbname = \"{db}\"\n{extra}\n",
        server_section()
    )
}

fn probe(name: &str, config: &str) -> (Resp, App) {
    let a = App::start(name, config);
    (a.get("/database"), a)
}

fn plain() -> String {
    env_var("SUAI_TEST_MYSQL_PORT")
}
fn tls_port() -> String {
    env_var("SUAI_TEST_MYSQL_TLS_PORT")
}
fn pw() -> String {
    env_var("SUAI_TEST_MYSQL_PASSWORD")
}

#[test]
fn ok_with_the_right_user_and_password() {
    let (r, a) = probe("db-ok", &db_section(&plain(), "probe", &pw(), "suai", ""));
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r
        .header("x-probe-duration-ms")
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert!(!a.log_file().contains(&pw()) && !a.stderr().contains(&pw()));
}

#[test]
fn password_from_the_environment() {
    let config = db_section(&plain(), "probe", "placeholder", "suai", "");
    let a = App::start_with(
        "db-envpw",
        &config,
        &[("SUAICLOUDAPP_DATABASE_PASSWORD", &pw())],
    );
    assert_eq!(a.get("/database").body, "OK");
}

#[test]
fn wrong_password_is_access_denied_and_never_echoed() {
    let secret = "Wrong-Pass-Zz9";
    let (r, a) = probe(
        "db-badpw",
        &db_section(&plain(), "probe", secret, "suai", ""),
    );
    assert_fails(&r, "auth", &["access denied for user 'probe'", "password"]);
    assert!(!r.body.contains(secret));
    a.get("/logs");
    assert!(!a.log_file().contains(secret) && !a.stderr().contains(secret));
}

#[test]
fn user_without_grant_on_the_database() {
    let (r, _a) = probe(
        "db-nogrant",
        &db_section(&plain(), "noaccess", "noaccess-pw", "suai", ""),
    );
    assert_fails(&r, "auth", &["'noaccess' has no access to database 'suai'"]);
}

#[test]
fn unknown_database() {
    // A user with global rights gets "unknown database" rather than "no access".
    let sock = env_var("SUAI_TEST_MYSQL_SOCKET");
    let sql = "CREATE USER IF NOT EXISTS 'wide'@'%' IDENTIFIED BY 'wide-pw'; GRANT ALL ON *.* TO 'wide'@'%';";
    let ok = Command::new("mariadb")
        .args(["--no-defaults", "-S", &sock, "-uroot", "-e", sql])
        .status()
        .expect("mariadb client (installed by scripts/test-env.sh)");
    assert!(ok.success());
    let (r, _a) = probe(
        "db-nodb",
        &db_section(&plain(), "wide", "wide-pw", "no_such_db", ""),
    );
    assert_fails(&r, "auth", &["unknown database 'no_such_db'"]);
}

#[test]
fn plain_connection_to_a_tls_only_server_names_tls() {
    let (r, _a) = probe(
        "db-needtls",
        &db_section(&tls_port(), "probe", &pw(), "suai", "tls = \"disabled\""),
    );
    assert_fails(&r, "auth", &["requires TLS", "tls = \"disabled\""]);
}

#[test]
fn required_tls_against_a_server_without_tls() {
    let (r, _a) = probe(
        "db-notls",
        &db_section(&plain(), "probe", &pw(), "suai", "tls = \"required\""),
    );
    assert_fails(&r, "tls", &["does not offer TLS", "tls = \"required\""]);
}

#[test]
fn preferred_tls_works_with_and_without_server_tls() {
    for port in [plain(), tls_port()] {
        let (r, _a) = probe(
            "db-preferred",
            &db_section(&port, "probe", &pw(), "suai", ""),
        );
        assert_eq!((r.status, r.body.as_str()), (200, "OK"), "port {port}");
    }
}

#[test]
fn verified_tls_with_the_right_ca_and_untrusted_with_another() {
    let ca = env_var("SUAI_TEST_TLS_CA");
    for mode in ["verify-ca", "verify-identity"] {
        let extra = format!("tls = \"{mode}\"\nca_file = \"{ca}\"");
        let (r, _a) = probe(
            "db-verify",
            &db_section(&tls_port(), "probe", &pw(), "suai", &extra),
        );
        assert_eq!((r.status, r.body.as_str()), (200, "OK"), "{mode}");
    }
    let other = env_var("SUAI_TEST_TLS_OTHER_CA");
    let extra = format!("tls = \"verify-identity\"\nca_file = \"{other}\"");
    let (r, _a) = probe(
        "db-untrusted",
        &db_section(&tls_port(), "probe", &pw(), "suai", &extra),
    );
    assert_fails(&r, "tls", &["not trusted", "ca_file"]);
}

#[test]
fn closed_port_is_refused_quickly() {
    let port = closed_port().to_string();
    let (r, _a) = probe(
        "db-closed",
        &db_section(&port, "probe", &pw(), "suai", "timeout_ms = 1000"),
    );
    assert_fails(&r, "connect", &["connection refused", &port]);
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
}

#[test]
fn hung_server_times_out_within_budget() {
    let hung = HungServer::start();
    let port = hung.port.to_string();
    let (r, _a) = probe(
        "db-hung",
        &db_section(&port, "probe", &pw(), "suai", "timeout_ms = 1000"),
    );
    assert_fails(&r, "timeout", &["within 1000 ms", &port]);
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
}

#[test]
fn unresolvable_host_is_a_dns_failure() {
    let host = unresolvable_host();
    let config = format!(
        "{}[database]\nhost = \"{host}\"\nuser = \"u\"\ndbname = \"d\"\n",
        server_section()
    );
    let (r, _a) = probe("db-dns", &config);
    assert_fails(&r, "dns", &["cannot resolve"]);
}

#[test]
fn recovers_after_the_server_is_stopped_and_started_again() {
    let mut db = OwnMariaDb::install();
    db.start();
    let config = db_section(
        &db.port.to_string(),
        "root",
        "",
        "mysql",
        "[probes]\ncache_ms = 0",
    );
    let a = App::start("db-restart", &config);
    assert_eq!(a.get("/database").body, "OK");
    db.stop();
    let down = a.get("/database");
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(
        down.body.starts_with("ERROR: connect:") || down.body.starts_with("ERROR: query:"),
        "{}",
        down.body
    );
    db.start();
    let started = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || a.get("/database").body == "OK"),
        "not OK again after restart: {}",
        a.get("/database").body
    );
    eprintln!("recovered {:?} after restart", started.elapsed());
}

/// mysql_common finds the server's version with `regex::bytes`: MariaDB's handshake says `5.5.5-10.x.y-MariaDB...`, so a wrong match would read
/// 5.5.5, and no match 0.0.0. The client must read what `SELECT VERSION()` says.
#[test]
fn server_version_is_read_from_the_handshake() {
    use mysql_async::prelude::Queryable;
    let url = format!("mysql://probe:{}@127.0.0.1:{}/suai", pw(), plain());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (parsed, reported) = rt.block_on(async {
        let opts = mysql_async::Opts::from_url(&url).unwrap();
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .expect("connect to MariaDB");
        let parsed = conn.server_version();
        let reported: String = conn.query_first("SELECT VERSION()").await.unwrap().unwrap();
        conn.disconnect().await.unwrap();
        (parsed, reported)
    });
    let numeric = format!("{}.{}.{}", parsed.0, parsed.1, parsed.2);
    assert!(
        reported.starts_with(&format!("{numeric}-")) || reported == numeric,
        "parsed {numeric} from the handshake, server says {reported}"
    );
}
