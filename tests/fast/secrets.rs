//! Secrets in the config never reach a page: every surface the server answers is searched for
//! passwords and tokens planted in the TOML, and `config show`'s rendering masks them.

use crate::support::{tail_turn, Fixture, StandIn};
use suaicloudapp::outcome::Stage;
use suaicloudapp::probes::Config;

const DB_PASSWORD: &str = "db-pw-Planted-7731";
const REDIS_PASSWORD: &str = "redis-pw-Planted-4410";
const LOGS_TOKEN: &str = "logs-tok-Planted-9902-0123456789abcdef";
const URL_PASSWORD: &str = "url-pw-Planted-5519";
const URL_QUERY: &str = "query-key-Planted-2208";

/// A config with a secret in every kind of place one can be written; `logs` goes into its
/// `[logs]` section.
fn planted(logs: &str) -> String {
    format!(
        "[database]\nhost = \"db.internal\"\nuser = \"app\"\npassword = \"{DB_PASSWORD}\"\ndbname = \"app\"\n\
         [redis]\nhost = \"cache.internal\"\npassword = \"{REDIS_PASSWORD}\"\n\
         [[http]]\nname = \"api\"\nurl = \"https://probe:{URL_PASSWORD}@api.internal/health?key={URL_QUERY}\"\n\
         [health]\nready = [\"database\", \"redis\", \"http/api\"]\n\
         [logs]\ntoken = \"{LOGS_TOKEN}\"\n{logs}"
    )
}

fn assert_clean(surface: &str, text: &str) {
    for secret in [
        DB_PASSWORD,
        REDIS_PASSWORD,
        LOGS_TOKEN,
        URL_PASSWORD,
        URL_QUERY,
    ] {
        assert!(!text.contains(secret), "{surface} shows {secret}: {text}");
    }
}

#[tokio::test]
async fn no_page_shows_a_planted_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("output.log");
    std::fs::write(&file, "a log line\n").unwrap();
    let toml = planted(&format!("file = {:?}\n", file.display().to_string()));
    let s = Fixture::new(&toml)
        .probe("database", StandIn::pass())
        .probe(
            "redis",
            StandIn::fail(Stage::Auth, "WRONGPASS invalid username-password pair"),
        )
        .probe("http/api", StandIn::pass())
        .start()
        .await;
    let mut surfaces = 0;
    for path in [
        "/",
        "/?format=json",
        "/health",
        "/health?format=json",
        "/ready",
        "/ready?format=json",
        "/database",
        "/database?format=json",
        "/redis",
        "/redis?format=json",
        "/http/api",
        "/http/api?format=json",
        "/metrics",
        "/nope",
        "/logs",
    ] {
        for accept in ["", "text/html", "application/openmetrics-text"] {
            let r = s.get_as(path, accept).await;
            assert_clean(&format!("{path} ({accept})"), &r.body);
            for (name, value) in &r.headers {
                assert_clean(
                    &format!("{path} header {name}"),
                    value.to_str().unwrap_or(""),
                );
            }
            surfaces += 1;
        }
    }
    let _turn = tail_turn().await;
    let bearer = format!("Bearer {LOGS_TOKEN}");
    let logs = s
        .request("GET", "/logs", &[("authorization", &bearer)])
        .await;
    assert_eq!(logs.status, 200, "{}", logs.body);
    assert_clean("/logs with the token", &logs.body);
    assert_eq!(surfaces, 45);
}

#[test]
fn the_displayed_config_masks_every_secret() {
    let c = Config::parse(&planted(""), "fast.toml").unwrap();
    let shown = c.to_display_toml();
    assert_clean("config show", &shown);
    assert!(shown.contains("password = \"***\""), "{shown}");
    assert!(shown.contains("token = \"***\""), "{shown}");
    assert_clean("Debug", &format!("{c:?}"));
}
