//! Secret references: `user`/`password` from Secrets Manager and Parameter Store (moto), passed
//! to the real MariaDB, PostgreSQL and Redis; a rotation (the MariaDB user's password changed
//! and a new secret version put while the server runs) picked up within one check, with the
//! version shown; a refused secret fetched again at most once per cache window; a denied,
//! missing and malformed secret each with stage `secret` and its cause; and the values never on
//! a page, in the log, on stderr or in `config show`.

use harness::*;
use std::process::Command;

/// [`harness::moto::boto`] on the shared test moto.
fn boto(code: &str) -> String {
    harness::moto::boto(&env_var("SUAI_TEST_MOTO_URL"), code)
}

/// Creates (or overwrites with a new version) a Secrets Manager secret; returns its VersionId.
fn put_secret(name: &str, value: &str) -> String {
    boto(&format!(
        "n, v = {name:?}, {value:?}\n\
         try:\n    print(sm.create_secret(Name=n, SecretString=v)['VersionId'])\n\
         except sm.exceptions.ResourceExistsException:\n    print(sm.put_secret_value(SecretId=n, SecretString=v)['VersionId'])"
    ))
}

fn put_parameter(name: &str, value: &str) {
    boto(&format!(
        "ssm.put_parameter(Name={name:?}, Value={value:?}, Type='SecureString', Overwrite=True)"
    ));
}

fn json_secret(user: &str, password: &str) -> String {
    serde_json::json!({"username": user, "password": password, "engine": "mysql"}).to_string()
}

/// A name of this test run's own, so reruns against one moto never collide.
fn unique(what: &str) -> String {
    format!("suai-test/{}/{what}", std::process::id())
}

/// Runs SQL as root over the test server's socket; returns what it prints (no headers).
fn sql(statement: &str) -> String {
    let out = Command::new("mariadb")
        .args([
            "--no-defaults",
            "-N",
            "-S",
            &env_var("SUAI_TEST_MYSQL_SOCKET"),
            "-uroot",
            "-e",
            statement,
        ])
        .output()
        .expect("mariadb client (installed by scripts/test-env.sh)");
    assert!(
        out.status.success(),
        "{statement}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn aws_section() -> String {
    format!(
        "[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n",
        env_var("SUAI_TEST_MOTO_URL")
    )
}

/// The health+json `details` of a page that passed.
fn details(app: &App, path: &str) -> serde_json::Value {
    let r = app.request("GET", path, &[("Accept", "application/health+json")]);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    let doc: serde_json::Value = serde_json::from_str(&r.body).expect("health+json");
    let checks = doc["checks"].as_object().expect("checks").clone();
    let (_, list) = checks.into_iter().next().expect("one check");
    list[0]["details"].clone()
}

fn assert_nowhere(app: &App, pages: &[&str], values: &[&str]) {
    let mut seen = String::new();
    for p in pages {
        seen += &app.get(p).body;
        seen += &app
            .request("GET", p, &[("Accept", "application/health+json")])
            .body;
    }
    seen += &app.get("/metrics").body;
    seen += &app.get("/logs?lines=1000").body;
    seen += &app.log_file();
    seen += &app.stderr();
    for v in values {
        assert!(
            !seen.contains(v),
            "a fetched secret value reached a page, the log or stderr"
        );
    }
}

#[test]
fn every_credential_a_reference_passes_database_postgres_and_redis() {
    let db = unique("db");
    let pg = unique("pg");
    let redis_pw = format!("/{}", unique("redis-password"));
    let db_version = put_secret(
        &db,
        &json_secret("probe", &env_var("SUAI_TEST_MYSQL_PASSWORD")),
    );
    put_secret(
        &pg,
        &json_secret("probe", &env_var("SUAI_TEST_PG_PASSWORD")),
    );
    put_parameter(&redis_pw, &env_var("SUAI_TEST_REDIS_PASSWORD"));
    let config = format!(
        "{}{}[database]\nhost = \"127.0.0.1\"\nport = {}\ndbname = \"suai\"\n\
         user = {{ secretsmanager = \"{db}\", key = \"username\" }}\n\
         password = {{ secretsmanager = \"{db}\", key = \"password\" }}\n\
         [postgres]\nhost = \"127.0.0.1\"\nport = {}\ndbname = \"suai\"\n\
         user = {{ secretsmanager = \"{pg}\", key = \"username\" }}\n\
         password = {{ secretsmanager = \"{pg}\", key = \"password\" }}\n\
         [redis]\nhost = \"127.0.0.1\"\nport = {}\nmode = \"standalone\"\nusername = \"{}\"\n\
         password = {{ ssm = \"{redis_pw}\" }}\n",
        server_section(),
        aws_section(),
        env_var("SUAI_TEST_MYSQL_PORT"),
        env_var("SUAI_TEST_PG_PORT"),
        env_var("SUAI_TEST_REDIS_PORT"),
        env_var("SUAI_TEST_REDIS_USER"),
    );
    let a = App::start("secret-refs", &config);
    for page in ["/database", "/postgres", "/redis"] {
        let r = a.get(page);
        assert_eq!((r.status, r.body.as_str()), (200, "OK"), "{page}");
    }
    let d = details(&a, "/database");
    assert_eq!(d["secret_version"], db_version.as_str(), "{d}");
    assert!(
        d["secret_age_s"]
            .as_str()
            .is_some_and(|s| s.parse::<u64>().is_ok()),
        "{d}"
    );
    // Parameter Store's version is the parameter's number.
    assert_eq!(details(&a, "/redis")["secret_version"], "1");
    // `check` shows the version too.
    let out = app_command()
        .arg("--config")
        .arg(a.dir.join("config.toml"))
        .args(["check", "database"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains(&format!("secret_version={db_version}")),
        "{said}"
    );

    // `config show` prints the references and `config validate` accepts them: no AWS call.
    let file = a.dir.join("config.toml");
    for args in [&["config", "show"][..], &["config", "validate"][..]] {
        let out = app_command()
            .arg("--config")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args[1] == "show" {
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(
                shown.contains(&format!("secretsmanager = \"{db}\"")),
                "{shown}"
            );
            assert!(shown.contains(&format!("ssm = \"{redis_pw}\"")), "{shown}");
        }
    }
    assert_nowhere(
        &a,
        &["/", "/database", "/postgres", "/redis"],
        &[
            &env_var("SUAI_TEST_MYSQL_PASSWORD"),
            &env_var("SUAI_TEST_PG_PASSWORD"),
            &env_var("SUAI_TEST_REDIS_PASSWORD"),
        ],
    );
}

#[test]
fn a_rotation_is_picked_up_within_one_check_and_a_wrong_secret_is_fetched_once_per_window() {
    let user = format!("rot{}", std::process::id());
    let name = unique("rotation");
    let (first, second, wrong) = (
        "rotation-pass-One-1",
        "rotation-pass-Two-2",
        "rotation-pass-Three-3",
    );
    sql(&format!(
        "DROP USER IF EXISTS '{user}'@'%'; CREATE USER '{user}'@'%' IDENTIFIED BY '{first}'; GRANT USAGE ON *.* TO '{user}'@'%';"
    ));
    let v1 = put_secret(&name, &json_secret(&user, first));
    let config = format!(
        "{}{}[probes]\ncache_ms = 0\n[secrets]\ncache_ms = 15000\n\
         [database]\nhost = \"127.0.0.1\"\nport = {}\ndbname = \"information_schema\"\n\
         user = {{ secretsmanager = \"{name}\", key = \"username\" }}\n\
         password = {{ secretsmanager = \"{name}\", key = \"password\" }}\n",
        server_section(),
        aws_section(),
        env_var("SUAI_TEST_MYSQL_PORT"),
    );
    let a = App::start("secret-rotation", &config);
    let pid = a.child.id();
    assert_eq!(details(&a, "/database")["secret_version"], v1.as_str());

    // The rotation as Secrets Manager's rotation function does it: the database's password
    // changes and a new version becomes AWSCURRENT; the probe's pooled session is ended, as an
    // idle-timeout or failover would, so the next check must log in again.
    let kill = || {
        let ids = sql(&format!(
            "SELECT id FROM information_schema.processlist WHERE user = '{user}'"
        ));
        for id in ids.split_whitespace() {
            sql(&format!("KILL {id}"));
        }
    };
    sql(&format!(
        "ALTER USER '{user}'@'%' IDENTIFIED BY '{second}';"
    ));
    let v2 = put_secret(&name, &json_secret(&user, second));
    kill();
    let d = details(&a, "/database");
    assert_eq!(
        d["secret_version"],
        v2.as_str(),
        "one check after the rotation: {d}"
    );
    assert_ne!(v1, v2);
    assert_eq!(a.child.id(), pid, "no restart");

    // The database's password moves again, but the secret is not updated: every check fails,
    // naming the version it tried. The rotation's refusal already fetched within this window,
    // so these refusals fetch nothing: a version put now is not seen until the window ends.
    sql(&format!("ALTER USER '{user}'@'%' IDENTIFIED BY '{wrong}';"));
    kill();
    for _ in 0..5 {
        let r = a.get("/database");
        assert_fails(&r, "auth", &[&format!("secret version {v2}")]);
    }
    let v3 = put_secret(&name, &json_secret(&user, wrong));
    let r = a.get("/database");
    assert_fails(&r, "auth", &[&format!("secret version {v2}")]);
    // Once the window has passed, the next refusal fetches again and v3 passes.
    assert!(
        eventually(std::time::Duration::from_secs(40), || a
            .get("/database")
            .status
            == 200),
        "v3 was never picked up"
    );
    assert_eq!(details(&a, "/database")["secret_version"], v3.as_str());
    assert_nowhere(&a, &["/", "/database"], &[first, second, wrong]);
}

#[test]
fn a_denied_missing_and_malformed_secret_each_name_their_cause() {
    let text = unique("not-json");
    put_secret(&text, "just-a-password-Value-9");
    let keyless = unique("no-password-key");
    put_secret(&keyless, r#"{"username":"probe","pass":"x-Value-8"}"#);
    let section = |password: &str| {
        format!(
            "{}{}[database]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"probe\"\ndbname = \"suai\"\npassword = {password}\n",
            server_section(),
            aws_section(),
            env_var("SUAI_TEST_MYSQL_PORT"),
        )
    };
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("{{ secretsmanager = \"{}\" }}", unique("missing")),
            vec!["not found".into(), unique("missing")],
        ),
        (
            format!("{{ ssm = \"/{}\" }}", unique("missing-parameter")),
            vec!["SSM parameter".into(), "not found".into()],
        ),
        (
            format!("{{ secretsmanager = \"{text}\", key = \"password\" }}"),
            vec!["not a JSON object".into()],
        ),
        (
            format!("{{ secretsmanager = \"{keyless}\", key = \"password\" }}"),
            vec![
                "no key \"password\"".into(),
                "its keys: username, pass".into(),
            ],
        ),
    ];
    for (reference, words) in &cases {
        let a = App::start("secret-bad", &section(reference));
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        assert_fails(&a.get("/database"), "secret", &words);
        assert_nowhere(
            &a,
            &["/database"],
            &["just-a-password-Value-9", "x-Value-8"],
        );
    }

    // Denied: the IAM-enforcing moto and a user without a policy.
    let denied = section(&format!("{{ secretsmanager = \"{}\" }}", unique("db"))).replace(
        &env_var("SUAI_TEST_MOTO_URL"),
        &env_var("SUAI_TEST_MOTO_AUTH_URL"),
    );
    let a = App::start_with(
        "secret-denied",
        &denied,
        &[
            ("AWS_ACCESS_KEY_ID", &env_var("SUAI_TEST_DENIED_KEY_ID")),
            ("AWS_SECRET_ACCESS_KEY", &env_var("SUAI_TEST_DENIED_SECRET")),
        ],
    );
    assert_fails(
        &a.get("/database"),
        "secret",
        &[
            "access denied",
            "secretsmanager:GetSecretValue on arn:aws:secretsmanager:us-east-1:*:secret:",
        ],
    );
}

#[test]
fn a_logs_token_from_secrets_manager_is_checked_rotated_and_its_failures_named() {
    let name = unique("logs-token");
    let (t1, t2) = (
        "logs-token-one-0123456789abcdef0123456789",
        "logs-token-two-0123456789abcdef0123456789",
    );
    put_secret(&name, t1);
    let config = |reference: &str| {
        format!(
            "{}{}[logs]\ntoken = {reference}\n",
            server_section(),
            aws_section()
        )
    };
    let a = App::start(
        "logs-token-ref",
        &config(&format!("{{ secretsmanager = \"{name}\" }}")),
    );
    let logs = |bearer: &str| {
        a.request(
            "GET",
            "/logs",
            &[("Authorization", &format!("Bearer {bearer}"))],
        )
        .status
    };
    assert_eq!(logs(t1), 200);
    assert_eq!(a.get("/logs").status, 401);
    // Rotated: the new token is accepted on its first use (a mismatch fetches once more, once
    // per cache window: so a wrong guess before the rotation would have spent it), and the old
    // one no longer is.
    put_secret(&name, t2);
    assert_eq!(logs(t2), 200);
    assert_eq!(logs(t1), 401);
    assert_nowhere(&a, &["/", "/logs"], &[t1, t2]);

    let short = unique("short-logs-token");
    put_secret(&short, "only-20-characters-x");
    for (reference, words) in [
        (
            format!("{{ secretsmanager = \"{short}\" }}"),
            vec!["is 20 characters", "at least 32"],
        ),
        (
            format!("{{ ssm = \"/{}\" }}", unique("no-such-token")),
            vec!["SSM parameter", "not found"],
        ),
    ] {
        let a = App::start("logs-token-bad", &config(&reference));
        let r = a.request(
            "GET",
            "/logs",
            &[("Authorization", "Bearer whatever-it-is")],
        );
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(
            r.body.starts_with("ERROR: secret: [logs] token: "),
            "{}",
            r.body
        );
        for w in words {
            assert!(r.body.contains(w), "want {w:?}: {}", r.body);
        }
        assert!(!r.body.contains("only-20-characters-x"), "{}", r.body);
    }
}

#[test]
fn an_http_url_from_secrets_manager_is_probed_and_never_shown() {
    // Answers 200 only on the secret path, so a pass proves the fetched URL was the one used.
    let secret_path = "/services/T0A1B2C3D/B0A1B2C3D4E/AbCdEf0123456789GhIjKl";
    let script = format!(
        "import http.server, sys\n\
         class H(http.server.BaseHTTPRequestHandler):\n    def log_message(self, *a): pass\n    def do_GET(self):\n        ok = self.path == {secret_path:?}\n        self.send_response(200 if ok else 404); self.send_header('Content-Length', '0'); self.end_headers()\n\
         http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    );
    let web = PythonServer::start(&script, &[]);
    let url = format!("http://127.0.0.1:{}{secret_path}", web.port);
    let name = unique("webhook-url");
    put_secret(&name, &url);
    let not_url = unique("not-a-url");
    put_secret(&not_url, "hunter2-Password-77");
    let config = format!(
        "{}{}[[http]]\nname = \"hook\"\nurl = {{ secretsmanager = \"{name}\" }}\n\
         [[http]]\nname = \"bad\"\nurl = {{ secretsmanager = \"{not_url}\" }}\n",
        server_section(),
        aws_section()
    );
    let a = App::start("http-url-ref", &config);
    let r = a.get("/http/hook");
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    assert_fails(
        &a.get("/http/bad"),
        "secret",
        &["not an absolute http:// or https:// URL"],
    );
    assert_nowhere(
        &a,
        &["/", "/http/hook", "/http/bad"],
        &["AbCdEf0123456789GhIjKl", "hunter2-Password-77"],
    );
}
