//! The last known good config: an s3:// config that cannot be read at boot is replaced by the
//! copy an earlier boot fetched, the dashboard and its JSON say so, and S3's object is swapped
//! in once it is readable and good. A malformed object never replaces the copy.
//!
//! Uses a moto server of its own, stopped and restarted, never the shared one.

use harness::moto::OwnMoto;
use harness::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const BUCKET: &str = "last-good";
const KEY: &str = "app/config.toml";

/// Starts the binary on `s3://last-good/app/config.toml` at the S3 endpoint `s3_url`, with
/// `state` as its state directory, a 1 s boot deadline and background fetches at most 1 s apart.
fn boot(name: &str, s3_url: &str, state: &Path) -> Starting {
    Starting::spawn(
        name,
        None,
        &[
            "--config",
            &format!("s3://{BUCKET}/{KEY}"),
            "--state-dir",
            state.to_str().unwrap(),
            "--config-deadline-secs",
            "1",
            "--config-retry-max-secs",
            "1",
        ],
        &[("AWS_ENDPOINT_URL", s3_url)],
    )
}

/// The dashboard JSON's `config_source` object.
fn config_source(app: &App) -> serde_json::Value {
    let r = app.get("/?format=json");
    let doc: serde_json::Value = serde_json::from_str(&r.body).expect("dashboard JSON");
    doc["config_source"].clone()
}

/// The kept copy's text, after checking it is private (it may hold passwords).
fn kept_copy(state: &Path) -> String {
    let path = state.join("last-good.toml");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    std::fs::read_to_string(path).unwrap()
}

/// A valid config serving on a free port; `marker` makes each version's text (so ETag) differ.
fn good_config(marker: u32) -> String {
    format!("{}[logs]\nmax_lines = {marker}\n", server_section())
}

#[test]
fn a_boot_without_s3_serves_the_last_good_copy_until_s3_has_a_good_object() {
    let mut moto = OwnMoto::start();
    let state = scratch_dir("last-good-state");
    let first = good_config(1001);
    let first_etag = moto.put(BUCKET, KEY, &first);

    // 1. A boot with S3 up: served from S3, kept in the state directory.
    let app = boot("last-good-1", &moto.url(), &state).wait_listening(Duration::from_secs(20));
    let src = config_source(&app);
    assert_eq!(src["kind"], "s3", "{src}");
    assert_eq!(src["etag"], first_etag.as_str(), "{src}");
    assert_eq!(kept_copy(&state), first);
    drop(app);
    let copied_at = Instant::now();

    // 2. A boot with S3 down: the copy, saying so, with its ETag and age.
    moto.stop();
    let app = boot("last-good-2", &moto.url(), &state).wait_listening(Duration::from_secs(20));
    assert!(
        app.stderr()
            .contains("serving the last known good config; fetching S3's in the background"),
        "{}",
        app.stderr()
    );
    let src = config_source(&app);
    assert_eq!(src["kind"], "cached_copy", "{src}");
    assert_eq!(src["origin"], format!("s3://{BUCKET}/{KEY}"), "{src}");
    assert_eq!(src["etag"], first_etag.as_str(), "{src}");
    let age = src["age_seconds"].as_u64().expect("age_seconds");
    assert!(age <= copied_at.elapsed().as_secs() + 1, "{src}");
    assert_eq!(
        src["reason"], "S3 could not be read within the start deadline",
        "{src}"
    );
    let html = app.request("GET", "/", &[("Accept", "text/html")]).body;
    assert!(
        html.contains(&format!(
            "cached copy of s3://{BUCKET}/{KEY} (ETag {first_etag}), fetched {age} s ago"
        )) || html.contains(&format!("(ETag {first_etag}), fetched {} s ago", age + 1)),
        "{html}"
    );
    let text = app.request("GET", "/", &[("Accept", "text/plain")]).body;
    assert!(text.contains("config: cached copy of s3://"), "{text}");

    // 3. S3 back with a malformed object: the background fetch and a SIGHUP both reject it;
    //    the copy stays, in memory and on disk.
    moto.restart();
    moto.put(BUCKET, KEY, "[server\nport = = 1\n");
    let rejected = format!("still serving the last known good config: s3://{BUCKET}/{KEY}:1:");
    app.wait_stderr(Duration::from_secs(20), |e| e.contains(&rejected));
    signal(app.child.id(), "HUP");
    app.wait_stderr(Duration::from_secs(20), |e| {
        e.contains("config reload rejected, keeping the running config")
    });
    assert_eq!(config_source(&app)["kind"], "cached_copy");
    assert_eq!(kept_copy(&state), first);

    // 4. A good object: swapped in, like a SIGHUP reload, and kept as the new copy.
    let second = good_config(1002);
    let second_etag = moto.put(BUCKET, KEY, &second);
    assert!(
        eventually(Duration::from_secs(20), || {
            let src = config_source(&app);
            src["kind"] == "s3" && src["etag"] == second_etag.as_str()
        }),
        "S3's object was never swapped in: {}\n{}",
        config_source(&app),
        app.stderr()
    );
    // The log reaches stderr through its writer thread, a moment after the swap.
    app.wait_stderr(Duration::from_secs(5), |e| {
        e.contains("S3 is readable again")
    });
    assert_eq!(kept_copy(&state), second);
    drop(app);

    // 5. A boot while S3 holds a malformed object: the good copy, not a crash loop.
    moto.put(BUCKET, KEY, "not = [toml\n");
    let app = boot("last-good-3", &moto.url(), &state).wait_listening(Duration::from_secs(20));
    let src = config_source(&app);
    assert_eq!(src["kind"], "cached_copy", "{src}");
    assert_eq!(src["etag"], second_etag.as_str(), "{src}");
    assert_eq!(src["reason"], "the S3 object was rejected (see the log)");
    assert_eq!(kept_copy(&state), second);
}

#[test]
fn without_a_copy_a_boot_without_s3_still_fails() {
    // Nothing listens there: S3 is down, and no earlier boot left a copy.
    let moto_url = format!("http://127.0.0.1:{}", closed_port());
    let state = scratch_dir("last-good-none");
    let starting = boot("last-good-none", &moto_url, &state);
    // The exit path's message (the fallback would have logged "serving the last known ...").
    starting.wait_stderr(Duration::from_secs(20), |e| {
        e.contains("error: s3://last-good/app/config.toml: cannot read the config: gave up after")
    });
    assert!(!state.join("last-good.toml").exists());
}

/// Runs one command of the binary in `dir` against `s3://last-good/app/config.toml` at
/// `s3_url`, with the default state directory unless `args` names one.
fn command_in(dir: &Path, s3_url: &str, args: &[&str]) -> std::process::Output {
    app_command()
        .current_dir(dir)
        .args(["--config", &format!("s3://{BUCKET}/{KEY}")])
        .args(args)
        .env("AWS_ENDPOINT_URL", s3_url)
        .output()
        .expect("run the binary")
}

/// A config whose one backend is moto's S3 at `s3_url`, so `check` has something to probe.
fn s3_config(s3_url: &str) -> String {
    format!(
        "{}[aws]\nendpoint_url = \"{s3_url}\"\n[s3]\nbucket = \"{BUCKET}\"\n",
        server_section()
    )
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_users_own_config_toml_survives_every_command_against_s3_byte_for_byte() {
    let moto = OwnMoto::start();
    moto.put(BUCKET, KEY, &s3_config(&moto.url()));
    let dir = scratch_dir("last-good-users-dir");
    let own = "# my own config, by hand\n[server]\nport = 1\n";
    std::fs::write(dir.join("config.toml"), own).unwrap();
    let commands: [&[&str]; 3] = [&["config", "validate"], &["config", "show"], &["check"]];
    for args in commands {
        // With the default state directory, and with one that is the working directory.
        for extra in [&[][..], &["--state-dir", "."][..]] {
            let all: Vec<&str> = extra.iter().chain(args).copied().collect();
            let out = command_in(&dir, &moto.url(), &all);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{all:?}: {stderr}");
            assert_eq!(
                std::fs::read_to_string(dir.join("config.toml")).unwrap(),
                own,
                "{all:?}"
            );
            assert_eq!(file_names(&dir), ["config.toml"], "{all:?} wrote beside it");
        }
    }
    // `config show` says where the config came from, and keeps no copy to name.
    let out = command_in(&dir, &moto.url(), &["config", "show"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.starts_with(&format!("# effective config from s3://{BUCKET}/{KEY}\n")),
        "{shown}"
    );
    assert!(!shown.contains("copy"), "{shown}");
}

#[test]
fn with_s3_down_check_and_config_exit_2_with_s3s_cause_while_serve_boots_on_the_copy() {
    let mut moto = OwnMoto::start();
    let state = scratch_dir("last-good-no-fallback");
    let good = s3_config(&moto.url());
    moto.put(BUCKET, KEY, &good);
    // A good boot keeps the copy; only `serve` does.
    drop(boot("last-good-keeps", &moto.url(), &state).wait_listening(Duration::from_secs(20)));
    assert_eq!(kept_copy(&state), good);
    moto.stop();

    let state_arg = state.to_str().unwrap();
    let commands: [&[&str]; 3] = [&["config", "validate"], &["config", "show"], &["check"]];
    for args in commands {
        let mut all = vec!["--state-dir", state_arg, "--config-deadline-secs", "1"];
        all.extend_from_slice(args);
        let out = command_in(&state, &moto.url(), &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "error: s3://{BUCKET}/{KEY}: cannot read the config: gave up after"
            )),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("last known good"),
            "{args:?} fell back: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed a config: {:?}",
            out.stdout
        );
    }
    assert_eq!(
        kept_copy(&state),
        good,
        "a command other than serve touched the copy"
    );

    // `serve` still boots on the copy.
    let app = boot("last-good-serves", &moto.url(), &state).wait_listening(Duration::from_secs(20));
    assert_eq!(config_source(&app)["kind"], "cached_copy");
}

#[test]
fn a_state_directory_file_it_did_not_write_is_neither_replaced_nor_served() {
    let mut moto = OwnMoto::start();
    let state = scratch_dir("last-good-not-ours");
    let theirs = format!("# put here by hand\n{}", good_config(7));
    std::fs::write(state.join("last-good.toml"), &theirs).unwrap();
    let good = good_config(8);
    moto.put(BUCKET, KEY, &good);
    let app =
        boot("last-good-not-ours-1", &moto.url(), &state).wait_listening(Duration::from_secs(20));
    app.wait_stderr(Duration::from_secs(5), |e| {
        e.contains("cannot keep a copy of the fetched config")
            && e.contains("was not written by suaicloudapp")
    });
    drop(app);
    assert_eq!(
        std::fs::read_to_string(state.join("last-good.toml")).unwrap(),
        theirs
    );
    // With S3 down, that file is not served either: the boot fails with S3's cause.
    moto.stop();
    boot("last-good-not-ours-2", &moto.url(), &state).wait_stderr(Duration::from_secs(20), |e| {
        e.contains("cannot read the last known good config")
            && e.contains(
                "error: s3://last-good/app/config.toml: cannot read the config: gave up after",
            )
    });
}
