//! Hardening: secrets planted in every config field that holds one (right and wrong
//! passwords, AWS keys, URL credentials, a password mistyped as a number), then searched for
//! on every output surface. Rows of the "secrets" table in docs/HARDENING.md.

use harness::hardening::*;
use harness::load::record;
use harness::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn secrets_appear_on_no_surface() {
    let _serial = serial();
    let db_pw = env_var("SUAI_TEST_MYSQL_PASSWORD");
    let redis_pw = env_var("SUAI_TEST_REDIS_DEFAULT_PASSWORD");
    let aws_secret = "Aws-Secret-Key-For-Surface-Test-0042";
    let wrong_db_pw = "Wrong-Db-Pw-Surface-77";
    let wrong_redis_pw = "Wrong-Redis-Pw-Surface-88";
    let denied_secret = env_var("SUAI_TEST_DENIED_SECRET");
    let secrets = [
        db_pw.as_str(),
        redis_pw.as_str(),
        aws_secret,
        wrong_db_pw,
        wrong_redis_pw,
        denied_secret.as_str(),
    ];
    let mut hunt = SecretHunt::new(&secrets);
    let mysql = env_var("SUAI_TEST_MYSQL_PORT").parse().unwrap();
    let redis_port: u16 = env_var("SUAI_TEST_REDIS_AUTH_PORT").parse().unwrap();
    let moto = env_var("SUAI_TEST_MOTO_URL");
    let moto_auth = env_var("SUAI_TEST_MOTO_AUTH_URL");
    let variants = [
        (
            "success",
            db_pw.clone(),
            redis_pw.clone(),
            moto.clone(),
            "testing".to_string(),
            aws_secret.to_string(),
        ),
        (
            "failure",
            wrong_db_pw.to_string(),
            wrong_redis_pw.to_string(),
            moto_auth.clone(),
            env_var("SUAI_TEST_DENIED_KEY_ID"),
            denied_secret.clone(),
        ),
        // The same passwords, right and wrong, fetched from Secrets Manager and Parameter Store.
        (
            "referenced-success",
            db_pw.clone(),
            redis_pw.clone(),
            moto.clone(),
            "testing".to_string(),
            aws_secret.to_string(),
        ),
        (
            "referenced-failure",
            wrong_db_pw.to_string(),
            wrong_redis_pw.to_string(),
            moto.clone(),
            "testing".to_string(),
            aws_secret.to_string(),
        ),
    ];
    for (name, dbp, rp, endpoint, key_id, secret) in variants {
        let (db_password, redis_password) = if name.starts_with("referenced") {
            let (db_ref, redis_ref) = (
                format!("suai-hunt/{}/{name}/db", std::process::id()),
                format!("/suai-hunt/{}/{name}/redis", std::process::id()),
            );
            put_references(
                &endpoint,
                &db_ref,
                &json!({"username": "probe", "password": dbp}).to_string(),
                &redis_ref,
                &rp,
            );
            (
                format!("{{ secretsmanager = \"{db_ref}\", key = \"password\" }}"),
                format!("{{ ssm = \"{redis_ref}\" }}"),
            )
        } else {
            (format!("\"{dbp}\""), format!("\"{rp}\""))
        };
        let config = format!(
            "{}[logs]\ntoken = \"logs-token-1-0123456789abcdefghijkl\"\n[aws]\nendpoint_url = \"{endpoint}\"\n[s3]\nbucket = \"{}\"\n[dynamodb]\ntable = \"{}\"\n{}[redis]\nhost = \"127.0.0.1\"\nport = {redis_port}\npassword = {redis_password}\n",
            server_section(),
            env_var("SUAI_TEST_BUCKET"),
            env_var("SUAI_TEST_TABLE"),
            mysql_section(mysql, "probe", "PASSWORD", "suai").replace("\"PASSWORD\"", &db_password),
        );
        let envs = [
            ("AWS_ACCESS_KEY_ID", key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ];
        let a = App::start_with(&format!("secrets-{name}"), &config, &envs);
        for page in ["/database", "/redis", "/s3", "/dynamodb"] {
            // The referenced failure has wrong passwords only: its AWS pages pass.
            let want = match (name, page) {
                ("referenced-failure", "/s3" | "/dynamodb") => 200,
                (n, _) if n.ends_with("success") => 200,
                _ => 503,
            };
            let r = a.get(page);
            assert_eq!(r.status, want, "{name} {page}: {}", r.body);
            hunt.check(page, &r.body);
            hunt.check(
                &format!("{page} json"),
                &a.get(&format!("{page}?format=json")).body,
            );
        }
        hunt.check("/ text", &a.get("/").body);
        hunt.check(
            "/ html",
            &a.request("GET", "/", &[("Accept", "text/html")]).body,
        );
        hunt.check("/ json", &a.get("/?format=json").body);
        hunt.check("/metrics", &a.get("/metrics").body);
        hunt.check("/health", &a.get("/health").body);
        hunt.check(
            "/logs",
            &a.request(
                "GET",
                "/logs?lines=1000",
                &[(
                    "Authorization",
                    "Bearer logs-token-1-0123456789abcdefghijkl",
                )],
            )
            .body,
        );
        for args in [
            &["config", "show"][..],
            &["--help"][..],
            &["check"][..],
            &["config", "validate"][..],
        ] {
            let out = app_command()
                .args(args)
                .current_dir(&a.dir)
                .env("AWS_ACCESS_KEY_ID", &key_id)
                .env("AWS_SECRET_ACCESS_KEY", &secret)
                .output()
                .unwrap();
            hunt.check(
                &format!("{args:?} stdout"),
                &String::from_utf8_lossy(&out.stdout),
            );
            hunt.check(
                &format!("{args:?} stderr"),
                &String::from_utf8_lossy(&out.stderr),
            );
        }
        let mut a = a;
        a.terminate();
        a.wait(Duration::from_secs(10));
        hunt.check("output.log", &a.log_file());
        hunt.check("stderr", &a.stderr());
    }
    assert!(hunt.leaks.is_empty(), "secrets leaked: {:?}", hunt.leaks);
    record(
        "secrets",
        json!({
            "secrets planted": "DB password (right and wrong), Redis password (right and wrong), AWS secret keys (accepted and denied); the passwords again as values fetched from Secrets Manager and Parameter Store",
            "surfaces checked": hunt.surfaces,
            "where": "every probe page (text and JSON), / (text, HTML, JSON), /metrics, /health, /logs, output.log, stderr, config show, --help, check, config validate; under success and failure",
            "found": hunt.leaks.len(),
        }),
    );
}

/// Puts `db_json` in Secrets Manager as `db_ref` and `redis` in Parameter Store as `redis_ref`
/// (a SecureString) on the moto at `endpoint`.
fn put_references(endpoint: &str, db_ref: &str, db_json: &str, redis_ref: &str, redis: &str) {
    harness::moto::boto(
        endpoint,
        &format!(
            "sm.create_secret(Name={db_ref:?}, SecretString={db_json:?})\n\
             ssm.put_parameter(Name={redis_ref:?}, Value={redis:?}, Type='SecureString', Overwrite=True)"
        ),
    );
}

/// A small web server for the URL-secret hunt: `/ok` wants the Basic credentials of
/// `argv[2]`, `/fail` answers 500, `/moved` redirects to a URL carrying the token `argv[3]`.
fn secret_web_server(userinfo: &str, token: &str) -> PythonServer {
    let script = r#"
import base64, http.server, sys
want = "Basic " + base64.b64encode(sys.argv[2].encode()).decode()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/ok":
            code, extra = (200 if self.headers.get("Authorization") == want else 401), {}
        elif path == "/moved":
            code, extra = 302, {"Location": "/elsewhere?token=" + sys.argv[3]}
        else:
            code, extra = 500, {}
        self.send_response(code)
        for k, v in extra.items(): self.send_header(k, v)
        self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"hi")
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;
    PythonServer::start(script, &[userinfo.to_string(), token.to_string()])
}

#[test]
fn secrets_in_urls_and_mistyped_passwords_appear_on_no_surface() {
    let _serial = serial();
    let token = "Url-Query-Token-Surface-5150-abcdefgh";
    let user_pw = "Url-Userinfo-Pw-Surface-6160";
    let userinfo = format!("probe:{user_pw}");
    let number = "73915286";
    let secrets = [token, user_pw, number];
    let mut hunt = SecretHunt::new(&secrets);
    let web = secret_web_server(&userinfo, token);
    let refused = closed_port();
    let entries = [
        (
            "ok",
            format!("http://{userinfo}@127.0.0.1:{}/ok?token={token}", web.port),
            200,
        ),
        (
            "fail",
            format!(
                "http://{userinfo}@127.0.0.1:{}/fail?token={token}&x=1",
                web.port
            ),
            503,
        ),
        (
            "moved",
            format!("http://127.0.0.1:{}/moved?{token}", web.port),
            503,
        ),
        (
            "refused",
            format!("https://{userinfo}@127.0.0.1:{refused}/?token={token}"),
            503,
        ),
    ];
    let mut config = format!(
        "{}[logs]\ntoken = \"logs-token-2-0123456789abcdefghijkl\"\n",
        server_section()
    );
    for (name, url, _) in &entries {
        config.push_str(&format!(
            "[[http]]\nname = \"{name}\"\nurl = \"{url}\"\ntimeout_ms = 1000\n"
        ));
    }
    let mut a = App::start("secret-urls", &config);
    for (name, _, want) in &entries {
        let page = format!("/http/{name}");
        let r = a.get(&page);
        assert_eq!(r.status, *want, "{page}: {}", r.body);
        hunt.check(&page, &r.body);
        hunt.check(
            &format!("{page} json"),
            &a.get(&format!("{page}?format=json")).body,
        );
    }
    // What an operator sees instead: the shape of the URL with its secrets starred.
    let text = a.get("/").body;
    assert!(text.contains("FAIL"), "{text}");
    let json = a.get("/?format=json").body;
    assert!(
        json.contains(&format!("http://***@127.0.0.1:{}/ok?token=***", web.port)),
        "{json}"
    );
    hunt.check("/ text", &text);
    hunt.check("/ json", &json);
    hunt.check(
        "/ html",
        &a.request("GET", "/", &[("Accept", "text/html")]).body,
    );
    hunt.check("/metrics", &a.get("/metrics").body);
    hunt.check(
        "/logs",
        &a.request(
            "GET",
            "/logs?lines=1000",
            &[(
                "Authorization",
                "Bearer logs-token-2-0123456789abcdefghijkl",
            )],
        )
        .body,
    );
    for args in [
        &["config", "show"][..],
        &["check"][..],
        &["config", "validate"][..],
    ] {
        let out = app_command()
            .args(args)
            .current_dir(&a.dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if args[0] == "config" && args[1] == "show" {
            assert!(stdout.contains("?token=***"), "{stdout}");
        }
        hunt.check(&format!("{args:?} stdout"), &stdout);
        hunt.check(
            &format!("{args:?} stderr"),
            &String::from_utf8_lossy(&out.stderr),
        );
    }
    // A password written as a number, on SIGHUP: refused without the number.
    let good = std::fs::read_to_string(a.dir.join("config.toml")).unwrap();
    let mistyped = format!("{good}[redis]\nhost = \"127.0.0.1\"\npassword = {number}\n");
    let line = mistyped.lines().count();
    std::fs::write(a.dir.join("config.toml"), &mistyped).unwrap();
    signal(a.child.id(), "HUP");
    a.wait_stderr(Duration::from_secs(10), |s| {
        s.contains("config reload rejected")
    });
    let rejected = a.stderr();
    assert!(
        rejected.contains(&format!("config.toml:{line}:"))
            && rejected.contains("invalid type: expected a string"),
        "{rejected}"
    );
    a.terminate();
    a.wait(Duration::from_secs(10));
    hunt.check("output.log", &a.log_file());
    hunt.check("stderr", &a.stderr());
    // The same at boot, for every secret field: exit 2, line and column, no value.
    for (section, field) in [
        (
            "[database]\nhost = \"h\"\nuser = \"u\"\ndbname = \"d\"\n",
            "password",
        ),
        (
            "[postgres]\nhost = \"h\"\nuser = \"u\"\ndbname = \"d\"\n",
            "password",
        ),
        ("[redis]\nhost = \"h\"\n", "password"),
        ("[logs]\n", "token"),
        ("[[http]]\nname = \"n\"\n", "url"),
    ] {
        let config = format!("{}{section}{field} = {number}\n", server_section());
        let line = config.lines().count();
        let dir = scratch_dir("mistyped");
        std::fs::write(dir.join("config.toml"), &config).unwrap();
        for args in [&[][..], &["config", "validate"][..]] {
            let out = app_command().args(args).current_dir(&dir).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{field}: {stderr}");
            let want = format!(
                "config.toml:{line}:{}: invalid type: expected a string",
                field.len() + 4
            );
            assert!(stderr.contains(&want), "{field}: want {want:?} in {stderr}");
            hunt.check(&format!("boot with {field} = <number>"), &stderr);
            hunt.check(
                "output.log",
                &std::fs::read_to_string(dir.join("output.log")).unwrap_or_default(),
            );
        }
    }
    assert!(hunt.leaks.is_empty(), "secrets leaked: {:?}", hunt.leaks);
    record(
        "secrets",
        json!({
            "secrets planted": "[[http]] url query token and user:pass@ (page OK, 500, redirect carrying the token, refused); password, token and url written as a TOML integer (at boot, config validate and SIGHUP)",
            "surfaces checked": hunt.surfaces,
            "where": "every /http page (text and JSON), / (text, HTML, JSON), /metrics, /logs, output.log, stderr, config show, check, config validate, the exit-2 error at boot and the rejected reload",
            "found": hunt.leaks.len(),
        }),
    );
}
