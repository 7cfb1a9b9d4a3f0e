//! `/redis` against real Redis servers: standalone, ACL users, TLS, a 3-primary cluster, and
//! private instances this test stops, starts and floods.

use harness::*;
use std::time::Duration;

fn redis_config(port: &str, extra: &str) -> String {
    format!(
        "{}[redis]\nhost = \"127.0.0.1\"\nport = {port}\n{extra}\n",
        server_section()
    )
}

fn probe(name: &str, config: &str) -> (Resp, App) {
    let a = App::start(name, config);
    (a.get("/redis"), a)
}

fn assert_ok(r: &Resp) {
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
}

#[test]
fn standalone_ok_in_auto_and_standalone_modes() {
    let port = env_var("SUAI_TEST_REDIS_PORT");
    for mode in ["auto", "standalone"] {
        let (r, _a) = probe(
            "redis-ok",
            &redis_config(&port, &format!("mode = \"{mode}\"")),
        );
        assert_ok(&r);
        assert!(r.header("x-probe-duration-ms").is_some());
    }
}

#[test]
fn acl_user_with_password_ok_and_secret_never_shown() {
    let port = env_var("SUAI_TEST_REDIS_PORT");
    let pw = env_var("SUAI_TEST_REDIS_PASSWORD");
    let extra = format!("username = \"probe\"\npassword = \"{pw}\"");
    let (r, a) = probe("redis-acl", &redis_config(&port, &extra));
    assert_ok(&r);
    let shown = app_command()
        .args(["config", "show"])
        .current_dir(&a.dir)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("password = \"***\""), "{shown}");
    assert!(!shown.contains(&pw) && !a.log_file().contains(&pw) && !a.stderr().contains(&pw));
}

#[test]
fn noauth_wrongpass_and_noperm_are_named() {
    let auth_port = env_var("SUAI_TEST_REDIS_AUTH_PORT");
    let (r, _a) = probe("redis-noauth", &redis_config(&auth_port, ""));
    assert_fails(&r, "auth", &["NOAUTH", "[redis] password"]);

    let secret = "not-the-Pass-31";
    let (r, a) = probe(
        "redis-wrongpass",
        &redis_config(&auth_port, &format!("password = \"{secret}\"")),
    );
    assert_fails(&r, "auth", &["WRONGPASS"]);
    assert!(
        !r.body.contains(secret) && !a.log_file().contains(secret) && !a.stderr().contains(secret)
    );

    let right = env_var("SUAI_TEST_REDIS_DEFAULT_PASSWORD");
    let (r, _a) = probe(
        "redis-rightpass",
        &redis_config(&auth_port, &format!("password = \"{right}\"")),
    );
    assert_ok(&r);

    let port = env_var("SUAI_TEST_REDIS_PORT");
    let extra = "username = \"limited\"\npassword = \"limited-pw\"\nmode = \"standalone\"";
    let (r, _a) = probe("redis-noperm", &redis_config(&port, extra));
    assert_fails(&r, "auth", &["NOPERM", "'limited'"]);
}

#[test]
fn tls_with_the_right_ca_untrusted_with_another_and_plain_against_tls() {
    let port = env_var("SUAI_TEST_REDIS_TLS_PORT");
    let ca = env_var("SUAI_TEST_TLS_CA");
    let (r, _a) = probe(
        "redis-tls",
        &redis_config(&port, &format!("tls = true\nca_file = \"{ca}\"")),
    );
    assert_ok(&r);
    let other = env_var("SUAI_TEST_TLS_OTHER_CA");
    let (r, _a) = probe(
        "redis-tls-untrusted",
        &redis_config(&port, &format!("tls = true\nca_file = \"{other}\"")),
    );
    assert_fails(&r, "tls", &["not trusted", "ca_file"]);
    let (r, _a) = probe("redis-tls-plain", &redis_config(&port, "timeout_ms = 1500"));
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body.contains("tls = true") || r.body.starts_with("ERROR: timeout:"),
        "{}",
        r.body
    );
    assert!(r.elapsed < Duration::from_millis(2000));
}

#[test]
fn cluster_ok_in_auto_and_cluster_modes() {
    let ports = env_var("SUAI_TEST_REDIS_CLUSTER_PORTS");
    let first = ports.split(',').next().unwrap();
    for mode in ["auto", "cluster"] {
        let (r, _a) = probe(
            "redis-cluster",
            &redis_config(first, &format!("mode = \"{mode}\"")),
        );
        assert_ok(&r);
    }
}

#[test]
fn closed_port_and_hung_server_answer_within_budget() {
    let port = closed_port().to_string();
    let (r, _a) = probe("redis-closed", &redis_config(&port, "timeout_ms = 1000"));
    assert_fails(&r, "connect", &["connection refused", &port]);
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);

    let hung = HungServer::start();
    let (r, _a) = probe(
        "redis-hung",
        &redis_config(&hung.port.to_string(), "timeout_ms = 1000"),
    );
    assert_fails(&r, "timeout", &["within 1000 ms"]);
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
}

#[test]
fn unresolvable_host_is_a_dns_failure() {
    let config = format!(
        "{}[redis]\nhost = \"{}\"\n",
        server_section(),
        unresolvable_host()
    );
    let (r, _a) = probe("redis-dns", &config);
    assert_fails(&r, "dns", &["cannot resolve"]);
}

#[test]
fn a_flood_of_200_concurrent_requests_costs_a_handful_of_pings() {
    let redis = OwnRedis::start(&[]);
    let a = App::start("redis-flood", &redis_config(&redis.port.to_string(), ""));
    redis.cli(&["CONFIG", "RESETSTAT"]);
    let addr = a.addr;
    let threads: Vec<_> = (0..200)
        .map(|_| {
            std::thread::spawn(move || {
                send_raw(
                    addr,
                    b"GET /redis HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                )
            })
        })
        .collect();
    let mut ok = 0;
    for t in threads {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        ok += 1;
    }
    let pings = redis.calls("ping");
    eprintln!("200 requests -> {pings} PINGs");
    assert_eq!(ok, 200);
    assert!(
        (1..=5).contains(&pings),
        "200 requests caused {pings} PINGs"
    );
}

#[test]
fn recovers_after_redis_is_stopped_and_started_again() {
    let mut redis = OwnRedis::start(&[]);
    let a = App::start(
        "redis-restart",
        &redis_config(&redis.port.to_string(), "[probes]\ncache_ms = 0"),
    );
    assert_eq!(a.get("/redis").body, "OK");
    redis.down();
    let r = a.get("/redis");
    assert_eq!(r.status, 503, "{}", r.body);
    redis.up();
    assert!(
        eventually(Duration::from_secs(10), || a.get("/redis").body == "OK"),
        "not OK after restart: {}",
        a.get("/redis").body
    );
}

#[test]
fn cluster_state_fail_is_a_failure_even_though_ping_answers() {
    // One cluster node serving only half the slots: PING answers, CLUSTER INFO says fail.
    let node = OwnRedis::start(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ]);
    assert_eq!(
        node.cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "8000"]).trim(),
        "OK"
    );
    assert!(eventually(Duration::from_secs(10), || node
        .cli(&["CLUSTER", "INFO"])
        .contains("cluster_state:fail")));
    assert_eq!(node.cli(&["PING"]).trim(), "PONG");
    let (r, _a) = probe(
        "redis-cluster-fail",
        &redis_config(&node.port.to_string(), "mode = \"cluster\""),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("cluster_state:fail"), "{}", r.body);
}
