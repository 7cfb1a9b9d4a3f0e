//! Boot rehearsal: `scripts/vm-rehearsal.sh` boots a real Debian 12 VM under QEMU (software
//! emulation) three times, whose cloud-init (EC2 datasource, IMDSv2 at 169.254.169.254) runs the
//! shipped user-data.sh: a good boot, a boot whose config.toml appears in S3 only ~20 s after the
//! service first looked for it, and a boot whose metadata server refuses credentials.
//!
//! The script only boots and records: per scenario an `observations.json` (ids, timestamps,
//! how the wait for the end state ended, exit codes, every page it fetched from the guest) next
//! to the raw files (serial console with arrival times, the metadata server's log, user-data.sh
//! and its diff). Every expectation is here, so it is read, changed and replayed in one place;
//! all checks run and every failure is reported together, so one slow run shows everything.
//!
//! `SUAI_VM_OBSERVATIONS=DIR` (a run's output directory, e.g. `target/vm-rehearsal`) boots
//! nothing and judges the observations already in DIR: seconds instead of a quarter of an hour,
//! for changing a check or seeing that a doctored observation fails it.
//!
//! A machine that cannot boot the VM fails this test with the reason; it never skips. A cold
//! run builds the guest image (debootstrap, a few minutes, cached under
//! ~/.cache/suaicloudapp/vm); later runs reuse it.

use regex_lite::Regex;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Cold image build plus three boots, each bounded by the script itself; this is a backstop.
const LIMIT: Duration = Duration::from_secs(45 * 60);
/// Every scenario must have been observed: a run that silently skipped one cannot pass.
const SCENARIOS: [&str; 3] = ["good", "late-config", "denied-credentials"];
/// cloud-init's last console line (the script waits for it too).
const FINAL_RE: &str = r"Cloud-init v\. [^ ]+ finished at";
/// A settings line of user-data.sh, `NAME="${NAME:-default}"`: the only kind of line the
/// rehearsal may change (the script's `set_setting` writes them).
const SETTING_RE: &str = r#"^([A-Z0-9_]+)="\$\{([A-Z0-9_]+):-([^"]*)\}"$"#;
/// The pages a healthy instance serves, and their bodies.
const PAGES: [(&str, &str); 5] = [
    ("/health", "healthy"),
    ("/database", "OK"),
    ("/redis", "OK"),
    ("/s3", "OK"),
    ("/dynamodb", "OK"),
];

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The newest modification time among the sources the binary is built from.
fn newest_source() -> SystemTime {
    fn walk(dir: &Path, newest: &mut SystemTime) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Some(t) = modified(&path) {
                *newest = (*newest).max(t);
            }
        }
    }
    let repo = Path::new(REPO);
    let mut newest = SystemTime::UNIX_EPOCH;
    walk(&repo.join("src"), &mut newest);
    for f in ["Cargo.toml", "Cargo.lock"] {
        if let Some(t) = modified(&repo.join(f)) {
            newest = newest.max(t);
        }
    }
    newest
}

/// The binary to deploy: `SUAI_VM_BINARY` when set; else the static release build (`make
/// static`) when it is newer than every source file; else the binary cargo just built for these
/// tests (glibc; the guest is Debian 12 like the host; the script deploys a stripped copy), so
/// a stale build is never the one rehearsed.
fn binary() -> (PathBuf, &'static str) {
    if let Some(p) = std::env::var_os("SUAI_VM_BINARY") {
        return (PathBuf::from(p), "SUAI_VM_BINARY");
    }
    let static_bin = Path::new(REPO).join("target/x86_64-unknown-linux-musl/release/suaicloudapp");
    match modified(&static_bin) {
        Some(t) if t >= newest_source() => (static_bin, "static release build"),
        Some(_) => (
            harness::BIN.clone(),
            "the test build: the static build is older than the sources",
        ),
        None => (
            harness::BIN.clone(),
            "the test build: no static build (make static)",
        ),
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// At most `n` characters: details quote console lines and bodies, which can be long.
fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// A timeline mark for a message: `+12.3 s`, or `missing`.
fn secs(t: Option<f64>) -> String {
    t.map_or_else(|| "missing".into(), |t| format!("+{t:.1} s"))
}

/// The patterns are the script's own EREs, fixed in this file: a bad one is a bug here.
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern:?}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// what the script wrote

/// `run.json`: one per run, whatever happened.
#[derive(Debug, Deserialize)]
struct Run {
    run_id: String,
    exit_status: i32,
    /// The fatal error that stopped the run (no boot possible, a broken host tool, ...).
    error: Option<String>,
    #[serde(default)]
    deployed: Option<String>,
    #[serde(default)]
    seconds: f64,
}

/// `SCENARIO/observations.json`. Every fact is optional: a boot cut short still has some, and
/// a missing one fails the checks that need it instead of the whole parse.
#[derive(Debug, Deserialize)]
struct Observations {
    run_id: String,
    scenario: String,
    facts: Facts,
    #[serde(default)]
    fetches: Vec<Fetch>,
    /// The raw files beside it, by role (`console`, `imds_log`, ...), relative to its directory.
    #[serde(default)]
    files: BTreeMap<String, String>,
}

/// The script's facts: times are the host's clock in microseconds since the epoch.
#[derive(Debug, Default, Deserialize)]
struct Facts {
    instance_id: Option<String>,
    availability_zone: Option<String>,
    role: Option<String>,
    bucket: Option<String>,
    config_key: Option<String>,
    host_in_guest: Option<String>,
    boot_timeout_s: Option<u64>,
    late_upload_after_s: Option<u64>,
    /// `aws s3api head-object` on the config key before a late-config boot.
    config_head_object_exit: Option<i32>,
    config_head_object_output: Option<String>,
    /// The settings user-data.sh's copy had changed, space-separated.
    user_data_settings: Option<String>,
    user_data_diff_exit: Option<i32>,
    /// `bash -n` of the copy served as user-data.
    user_data_syntax_exit: Option<i32>,
    user_data_syntax_output: Option<String>,
    t_vm_usec: Option<u64>,
    first_health_200_usec: Option<u64>,
    upload_usec: Option<u64>,
    /// How the wait for the end state ended: end-state, deadline, qemu-exited, no-kernel or
    /// user-data-error.
    poll_end: Option<String>,
    poll_end_usec: Option<u64>,
    /// Set once every page was fetched: the boot ran to its end.
    observed_usec: Option<u64>,
}

/// One GET from the host to the guest's forwarded port, as curl saw it.
#[derive(Debug, Deserialize)]
struct Fetch {
    seq: u32,
    /// `first-health` (the boot's first 200), `page` (a page's tries), `identity` (waiting for
    /// X-Instance-Id), `final-health` (after the checks).
    purpose: String,
    path: String,
    curl_exit: i32,
    /// curl's `%{http_code}`, `000` when curl failed.
    status: String,
    headers: String,
    body: String,
}

impl Fetch {
    /// The last value of a header, by case-insensitive name.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .next_back()
    }

    /// The body as the shell's `$(cat body)` has it: trailing newlines dropped.
    fn text(&self) -> &str {
        self.body.trim_end_matches('\n')
    }

    fn describe(&self) -> String {
        format!(
            "HTTP {} (curl exit {}): {}",
            self.status,
            self.curl_exit,
            clip(self.text(), 300)
        )
    }
}

/// One scenario's observations with the raw files they name, read once.
struct Boot {
    name: String,
    dir: PathBuf,
    obs: Observations,
    console: String,
    /// console.stamped: each console line with its arrival time on the host.
    stamped: Vec<(u64, String)>,
    imds: String,
}

impl Boot {
    fn load(dir: &Path, name: &str) -> Result<Boot, String> {
        let path = dir.join("observations.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("no {} ({e}): the script did not boot it", path.display()))?;
        let obs: Observations = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not observations: {e}", path.display()))?;
        let mut boot = Boot {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            obs,
            console: String::new(),
            stamped: Vec::new(),
            imds: String::new(),
        };
        boot.console = boot.file("console");
        boot.imds = boot.file("imds_log");
        boot.stamped = boot
            .file("console_stamped")
            .lines()
            .filter_map(|l| {
                let (t, line) = l.split_once(' ').unwrap_or((l, ""));
                Some((t.parse().ok()?, line.to_string()))
            })
            .collect();
        Ok(boot)
    }

    fn path(&self, role: &str) -> PathBuf {
        self.dir
            .join(self.obs.files.get(role).map(String::as_str).unwrap_or(role))
    }

    /// A raw file by role; empty when the script recorded none (the checks on it then fail).
    fn file(&self, role: &str) -> String {
        std::fs::read(self.path(role))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn console_lines<'a>(&'a self, pattern: &str) -> impl Iterator<Item = &'a str> + 'a {
        let re = re(pattern);
        self.console.lines().filter(move |l| re.is_match(l))
    }
    fn console_has(&self, pattern: &str) -> bool {
        self.console_lines(pattern).next().is_some()
    }
    fn console_count(&self, pattern: &str) -> usize {
        self.console_lines(pattern).count()
    }
    fn console_first(&self, pattern: &str) -> Option<String> {
        self.console_lines(pattern).next().map(str::to_string)
    }
    /// When the first console line matching `pattern` arrived.
    fn console_at(&self, pattern: &str) -> Option<u64> {
        let re = re(pattern);
        self.stamped
            .iter()
            .find(|(_, l)| re.is_match(l))
            .map(|(t, _)| *t)
    }
    fn imds_count(&self, pattern: &str) -> usize {
        let re = re(pattern);
        self.imds.lines().filter(|l| re.is_match(l)).count()
    }
    fn imds_has(&self, pattern: &str) -> bool {
        self.imds_count(pattern) > 0
    }

    /// Seconds since qemu started.
    fn secs(&self, at: u64) -> f64 {
        let t0 = self.obs.facts.t_vm_usec.unwrap_or(at);
        (at as f64 - t0 as f64) / 1e6
    }

    fn fetches<'a>(&'a self, purpose: &'a str) -> impl Iterator<Item = &'a Fetch> + 'a {
        self.obs
            .fetches
            .iter()
            .filter(move |f| f.purpose == purpose)
    }

    fn bucket(&self) -> &str {
        self.obs.facts.bucket.as_deref().unwrap_or("?")
    }
    fn timeout(&self) -> u64 {
        self.obs.facts.boot_timeout_s.unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// the verdicts

/// Every check made, passed or not: printed as it is made, failures reported together.
#[derive(Default)]
struct Verdicts {
    checks: Vec<(String, String, bool, String)>,
}

impl Verdicts {
    fn check(&mut self, scenario: &str, name: &str, ok: bool, detail: impl Into<String>) {
        // One line per check, however many lines the observation quoted.
        let detail = detail.into().trim().replace('\n', " | ");
        eprintln!(
            "  {}  {scenario}: {name}: {detail}",
            if ok { "ok  " } else { "FAIL" }
        );
        self.checks
            .push((scenario.to_string(), name.to_string(), ok, detail));
    }

    fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.2)
            .map(|(s, n, _, d)| format!("{s}: {n}: {d}"))
            .collect()
    }
}

/// Judges a run's output directory: `run_id` is the run this test started (None: replay
/// whatever run is there).
fn judge(out: &Path, run_id: Option<&str>, script_ran: Option<ExitStatus>, v: &mut Verdicts) {
    let run_path = out.join("run.json");
    let text = std::fs::read_to_string(&run_path).unwrap_or_else(|e| {
        panic!(
            "the VM rehearsal wrote no {} ({e}); this machine could not run it (see {})",
            run_path.display(),
            out.join("rehearsal.log").display()
        )
    });
    let run: Run = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a run record: {e}\n{text}", run_path.display()));
    if let Some(want) = run_id {
        assert_eq!(
            run.run_id,
            want,
            "{} is another run's; this one wrote none",
            run_path.display()
        );
    }
    if let Some(e) = &run.error {
        panic!(
            "the VM rehearsal could not run: {e}\n{}",
            tail(
                &std::fs::read_to_string(out.join("rehearsal.log")).unwrap_or_default(),
                30
            )
        );
    }
    let exit = match script_ran {
        Some(status) => status.code().unwrap_or(-1),
        None => run.exit_status,
    };
    v.check(
        "run",
        "vm-rehearsal.sh exited 0",
        exit == 0 && run.exit_status == 0,
        format!(
            "exit {exit} (run.json: {}), {:.0} s, deployed {}",
            run.exit_status,
            run.seconds,
            run.deployed.as_deref().unwrap_or("?")
        ),
    );

    for name in SCENARIOS {
        let boot = match Boot::load(&out.join(name), name) {
            Ok(b) => b,
            Err(e) => {
                v.check(name, "observed", false, e);
                continue;
            }
        };
        let same_run = boot.obs.run_id == run.run_id && boot.obs.scenario == name;
        v.check(
            name,
            "observed",
            same_run && boot.obs.facts.observed_usec.is_some(),
            if !same_run {
                format!(
                    "observations of run {} scenario {}, not of run {}",
                    boot.obs.run_id, boot.obs.scenario, run.run_id
                )
            } else if boot.obs.facts.observed_usec.is_none() {
                "the boot was cut short: no observed_usec".to_string()
            } else {
                format!(
                    "{} fetches, console {}",
                    boot.obs.fetches.len(),
                    boot.path("console").display()
                )
            },
        );
        judge_boot(&boot, v);
    }
}

/// One boot's checks, in the order the script used to make them; a check whose observation is
/// missing fails rather than being skipped, so a script that stopped recording cannot pass.
fn judge_boot(b: &Boot, v: &mut Verdicts) {
    let s = b.name.as_str();
    let f = &b.obs.facts;

    if s == "late-config" {
        // A 404, not just any failure: a CLI usage error once passed for "absent".
        let key = format!(
            "s3://{}/{}",
            b.bucket(),
            f.config_key.as_deref().unwrap_or("?")
        );
        let said = f.config_head_object_output.as_deref().unwrap_or("").trim();
        let not_found = re(r"\(404\)|Not Found").is_match(said);
        v.check(
            s,
            "config absent at boot",
            f.config_head_object_exit.is_some_and(|e| e != 0) && not_found,
            match f.config_head_object_exit {
                Some(0) => format!("{key} exists"),
                Some(code) => format!("{key}: HeadObject exit {code}: {}", clip(said, 200)),
                None => "HeadObject not observed".into(),
            },
        );
    }

    let (ok, detail) = user_data_settings_only(b);
    v.check(
        s,
        "user-data is user-data.sh with settings lines only",
        ok,
        detail,
    );

    poll_checks(b, v);
    timeline(b, v);

    let line = b.console_first(FINAL_RE);
    let ds = line
        .as_deref()
        .and_then(|l| re(r".*Datasource ([A-Za-z0-9]*)").captures(l))
        .map(|c| c[1].to_string())
        .unwrap_or_default();
    v.check(
        s,
        "cloud-init used the EC2 datasource",
        ds.starts_with("DataSourceEc2"),
        if ds.starts_with("DataSourceEc2") {
            format!(
                "{ds} (DMI ec2 UUID, IMDSv2 at {})",
                f.host_in_guest.as_deref().unwrap_or("?")
            )
        } else {
            line.unwrap_or_else(|| "no cloud-init final message on the console".into())
        },
    );
    v.check(
        s,
        "cloud-init fetched user-data over IMDSv2",
        b.imds_has(r#""GET /[0-9-]+/user-data HTTP/1\.1" 200"#),
        "PUT /latest/api/token, then GET /<version>/user-data 200",
    );

    if s == "denied-credentials" {
        denied_checks(b, v);
        return;
    }

    // user-data.sh ran to its end: is-active returned 0 right after the Type=notify start.
    v.check(
        s,
        "user-data.sh ran to its end",
        b.console_has("user-data: suaicloudapp is running"),
        "console: user-data: suaicloudapp is running",
    );
    v.check(
        s,
        "unit reached READY (Type=notify)",
        b.console_has(r"Started suaicloudapp\.service"),
        "console: Started suaicloudapp.service",
    );
    let started = b.console_count(r"systemd\[1\]: Starting suaicloudapp\.service");
    let restarts = b.console_count(
        r"suaicloudapp\.service: (Scheduled restart job|Main process exited|Failed with result)",
    );
    v.check(
        s,
        "unit started once, never restarted",
        started == 1 && restarts == 0,
        format!("{started} starts, {restarts} exits/restarts"),
    );
    v.check(
        s,
        "the service fetched its config from S3",
        b.console_has(&format!(
            "config fetched.*s3://{}/",
            regex_lite::escape(b.bucket())
        )),
        format!("journal: config fetched (s3://{}/...)", b.bucket()),
    );
    match f.first_health_200_usec {
        Some(at) => v.check(
            s,
            "GET /health during the boot",
            true,
            format!("first 200 at +{:.1} s", b.secs(at)),
        ),
        None => v.check(
            s,
            "GET /health during the boot",
            false,
            "never answered 200",
        ),
    }

    for (path, want) in PAGES {
        let tries: Vec<&Fetch> = b.fetches("page").filter(|t| t.path == path).collect();
        let good = tries
            .iter()
            .position(|t| t.status == "200" && t.text() == want);
        v.check(
            s,
            &format!("GET {path}"),
            good.is_some(),
            match (good, tries.last()) {
                (Some(i), _) => format!("200 {} (try {})", tries[i].text(), i + 1),
                (None, Some(last)) => format!(
                    "{} after {} tries, want 200 {want}",
                    last.describe(),
                    tries.len()
                ),
                (None, None) => "never fetched".into(),
            },
        );
    }

    // The identity look-up runs in the background after start: the script polled for it.
    let identity = b.fetches("identity").last();
    let want = f.instance_id.as_deref().unwrap_or("?");
    let got = identity
        .and_then(|r| r.header("X-Instance-Id"))
        .unwrap_or("");
    v.check(
        s,
        "X-Instance-Id is the metadata server's instance id",
        got == want,
        if got == want {
            got.to_string()
        } else {
            format!(
                "got '{got}', want {want} ({} polls of /health)",
                b.fetches("identity").count()
            )
        },
    );
    let want = f.availability_zone.as_deref().unwrap_or("?");
    let got = identity
        .and_then(|r| r.header("X-Availability-Zone"))
        .unwrap_or("");
    v.check(
        s,
        "X-Availability-Zone from IMDS",
        got == want,
        if got == want {
            got.to_string()
        } else {
            format!("got '{got}', want {want}")
        },
    );

    // Credentials from IMDSv2 (the CLI's and the binary's own fetches), region from IMDS.
    let role = f.role.as_deref().unwrap_or("?");
    let creds = b.imds_count(&format!(
        r#""GET /latest/meta-data/iam/security-credentials/{} HTTP/1\.1" 200"#,
        regex_lite::escape(role)
    ));
    v.check(
        s,
        "role credentials served by IMDSv2",
        creds >= 2,
        format!(
            "{creds} GETs of iam/security-credentials/{role} (want at least 2: CLI and binary)"
        ),
    );
    v.check(
        s,
        "region from IMDS",
        b.imds_has(r#""GET /latest/meta-data/placement/region HTTP/1\.1" 200"#),
        "GET /latest/meta-data/placement/region 200",
    );
    v.check(
        s,
        "IMDSv2 only",
        !b.imds_has(r#"" 401 "#),
        "no metadata request without a token (no 401 in the server's log)",
    );

    if s == "late-config" {
        late_checks(b, v);
    }

    match b.fetches("final-health").last() {
        Some(r) => v.check(
            s,
            "still serving at the end",
            r.status == "200",
            format!("/health HTTP {}", r.status),
        ),
        None => v.check(s, "still serving at the end", false, "/health not fetched"),
    }
    v.check(
        s,
        "no failed unit",
        b.console_first(r"\[FAILED\]|Failed to start|Failed with result")
            .is_none(),
        "console and journal: no [FAILED], no 'Failed to start'",
    );
}

/// Every line that differs between the shipped script and the one served is a settings line
/// for one of the names the script set; apart from those the two are the same, and ours parses.
fn user_data_settings_only(b: &Boot) -> (bool, String) {
    let f = &b.obs.facts;
    let diff = b.file("user_data_diff");
    let shown = diff.replace('\n', " ");
    let names: BTreeSet<&str> = f
        .user_data_settings
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let setting = re(SETTING_RE);
    if diff.trim().is_empty() || f.user_data_diff_exit != Some(1) {
        let exit = f.user_data_diff_exit;
        return (
            false,
            format!("no difference recorded (diff exit {exit:?})"),
        );
    }
    for line in diff.lines() {
        let body = line.get(1..).unwrap_or("");
        let named = setting
            .captures(body)
            .filter(|c| c[1] == c[2] && names.contains(&c[1]));
        if named.is_none() {
            return (
                false,
                format!("not a settings line we set: {line:?}; {shown}"),
            );
        }
    }
    let others = |text: &str| text.lines().filter(|l| !setting.is_match(l)).count();
    let (shipped, ours) = (
        others(&b.file("user_data_shipped")),
        others(&b.file("user_data")),
    );
    if shipped != ours {
        return (
            false,
            format!("{shipped} other lines shipped, {ours} served; {shown}"),
        );
    }
    if f.user_data_syntax_exit != Some(0) {
        return (
            false,
            format!(
                "bash -n exit {:?}: {}",
                f.user_data_syntax_exit,
                f.user_data_syntax_output.as_deref().unwrap_or("")
            ),
        );
    }
    (true, shown)
}

/// How the script's wait for the boot's end state ended.
fn poll_checks(b: &Boot, v: &mut Verdicts) {
    let s = b.name.as_str();
    let f = &b.obs.facts;
    let end = f.poll_end.as_deref();
    let at = f.poll_end_usec.map(|t| b.secs(t)).unwrap_or(0.0);
    v.check(
        s,
        "boot finished in time",
        end.is_some_and(|e| e != "deadline"),
        match end {
            Some("deadline") => format!(
                "no end state within {} s (console: {})",
                b.timeout(),
                b.path("console").display()
            ),
            Some(e) => format!("the wait ended ({e}) at +{at:.1} s"),
            None => "the wait for the end state never ended".into(),
        },
    );
    v.check(
        s,
        "qemu kept running",
        end != Some("qemu-exited"),
        if end == Some("qemu-exited") {
            format!(
                "qemu exited: {} {}",
                tail(&b.file("qemu_log"), 3).replace('\n', " "),
                tail(&b.console, 3).replace('\n', " ")
            )
        } else {
            "until the end of the wait".into()
        },
    );
    v.check(
        s,
        "the VM boots",
        end != Some("no-kernel"),
        if end == Some("no-kernel") {
            format!(
                "no kernel output on the serial console within 120 s: this machine cannot boot \
                 the guest under qemu-system-x86_64 (see {})",
                b.path("qemu_log").display()
            )
        } else {
            match b.console_at("Linux version") {
                Some(t) => format!("kernel up at +{:.1} s", b.secs(t)),
                None => "no kernel line yet when the wait ended".into(),
            }
        },
    );
    if s != "denied-credentials" {
        v.check(
            s,
            "user-data.sh succeeded",
            end != Some("user-data-error"),
            b.console_first("user-data: ERROR")
                .unwrap_or_else(|| "no user-data: ERROR on the console".into()),
        );
    }
}

/// The boot's timeline, from the console's arrival times and the host's own clock: printed,
/// and for the good boot held to its order.
fn timeline(b: &Boot, v: &mut Verdicts) {
    let f = &b.obs.facts;
    let marks: Vec<(&str, Option<u64>)> = vec![
        ("VM start (qemu-system-x86_64, TCG)", f.t_vm_usec),
        (
            "kernel up (Linux version ...)",
            b.console_at("Linux version"),
        ),
        (
            "systemd up (PID 1)",
            b.console_at(r"systemd\[1\]: systemd [0-9]+|Welcome to Debian"),
        ),
        (
            "cloud-init init-local (EC2 datasource, IMDSv2)",
            b.console_at("running 'init-local'"),
        ),
        (
            "cloud-init user-data start (user-data.sh)",
            b.console_at("user-data: bucket "),
        ),
        (
            "binary and unit installed",
            b.console_at(r"user-data: installed .*suaicloudapp\.service"),
        ),
        (
            "service: first failed config fetch",
            b.console_at("cannot fetch the config"),
        ),
        ("config.toml uploaded (host)", f.upload_usec),
        (
            "service: config fetched from S3",
            b.console_at("config fetched"),
        ),
        (
            "service READY (Type=notify: Started suaicloudapp.service)",
            b.console_at(r"Started suaicloudapp\.service"),
        ),
        (
            "first /health 200 (host, through hostfwd)",
            f.first_health_200_usec,
        ),
        (
            "user-data.sh done",
            b.console_at("user-data: (suaicloudapp is running|ERROR)"),
        ),
        ("cloud-init finished", b.console_at(FINAL_RE)),
    ];
    let mut seen: Vec<(f64, u64, &str)> = marks
        .iter()
        .filter_map(|(e, t)| t.map(|t| (b.secs(t), t, *e)))
        .collect();
    seen.sort_by(|a, b| a.0.total_cmp(&b.0));
    eprintln!(
        "timeline ({} boot; seconds since qemu started, host clock UTC):",
        b.name
    );
    for (secs, usec, event) in &seen {
        let day = usec / 100_000 % 864_000;
        eprintln!(
            "  {secs:7.1} s  {:02}:{:02}:{:02}.{}  {event}",
            day / 36_000,
            day / 600 % 60,
            day / 10 % 60,
            day % 10
        );
    }
    if b.name != "good" {
        return;
    }
    let at = |prefix: &str| {
        marks
            .iter()
            .find(|(e, _)| e.starts_with(prefix))
            .and_then(|(_, t)| *t)
            .map(|t| b.secs(t))
    };
    let order = [
        "VM start",
        "kernel up",
        "cloud-init user-data start",
        "service READY",
    ]
    .map(|e| (e, at(e)));
    let missing: Vec<&str> = order
        .iter()
        .filter(|(_, t)| t.is_none())
        .map(|(e, _)| *e)
        .collect();
    let times: Vec<f64> = order.iter().filter_map(|(_, t)| *t).collect();
    let shown = order
        .iter()
        .map(|(e, t)| format!("{e} {}", secs(*t)))
        .collect::<Vec<_>>()
        .join(", ");
    v.check(
        &b.name,
        "timeline complete and in order",
        missing.is_empty() && times.windows(2).all(|w| w[0] <= w[1]),
        if missing.is_empty() {
            shown
        } else {
            format!("no {missing:?} in the timeline: {shown}")
        },
    );
    let (health, ready) = (at("first /health 200"), at("service READY"));
    v.check(
        &b.name,
        "first /health 200 not before READY",
        matches!((health, ready), (Some(h), Some(r)) if h >= r - 1.0),
        format!(
            "first /health 200 at {}, READY at {}",
            secs(health),
            secs(ready)
        ),
    );
}

/// late-config: the service kept retrying the absent object, backing off, and became READY
/// only once it was there, in one process.
fn late_checks(b: &Boot, v: &mut Verdicts) {
    let s = b.name.as_str();
    let f = &b.obs.facts;
    let after = f.late_upload_after_s.unwrap_or(0);
    let failed: Vec<&(u64, String)> = b
        .stamped
        .iter()
        .filter(|(_, l)| l.contains("cannot fetch the config"))
        .collect();
    let Some(upload_at) = f.upload_usec else {
        v.check(
            s,
            &format!("config uploaded ~{after} s after the first failure"),
            false,
            "never uploaded (the service logged no failed fetch)",
        );
        return;
    };
    v.check(
        s,
        &format!("config uploaded ~{after} s after the first failure"),
        true,
        match failed.first() {
            Some((t, _)) => format!(
                "{:.1} s after the first failed fetch",
                (upload_at as f64 - *t as f64) / 1e6
            ),
            None => format!("at +{:.1} s", b.secs(upload_at)),
        },
    );

    let before = failed.iter().filter(|(t, _)| *t < upload_at).count();
    let why = re(r"(?i)cannot fetch the config.*(no such key|not uploaded yet)");
    let quoted = re("cannot fetch the config.*");
    let first_quote = failed
        .iter()
        .find_map(|(_, l)| quoted.find(l).map(|m| m.as_str().to_string()))
        .unwrap_or_default();
    v.check(
        s,
        "service retried while the object was absent, logging why",
        before >= 3 && failed.iter().any(|(_, l)| why.is_match(l)),
        if before >= 3 {
            format!("{before} failed fetches before the upload: {first_quote}")
        } else {
            let lines: Vec<&str> = failed.iter().map(|(_, l)| l.as_str()).collect();
            format!(
                "{} failed fetches ({before} before the upload): {}",
                failed.len(),
                clip(&lines.join(" | "), 400)
            )
        },
    );

    let wait = re(r"retry_in_ms=([0-9]+)");
    let waits: Vec<u64> = failed
        .iter()
        .flat_map(|(_, l)| wait.captures_iter(l).map(|c| c[1].parse().unwrap_or(0)))
        .collect();
    let (first, longest) = (waits.first().copied(), waits.iter().max().copied());
    v.check(
        s,
        "retries back off",
        matches!((first, longest), (Some(a), Some(m)) if a <= 1000 && m >= 2 * a && m >= 2000),
        format!(
            "first wait {} ms, longest {} ms (want the first <= 1000, the longest >= 2000 and \
             at least twice the first)",
            first.map_or("-".into(), |n| n.to_string()),
            longest.map_or("-".into(), |n| n.to_string())
        ),
    );

    let ready_at = b.console_at(r"Started suaicloudapp\.service");
    v.check(
        s,
        "READY only after the upload",
        ready_at.is_some_and(|r| r > upload_at),
        match ready_at {
            Some(r) => format!(
                "READY {:.1} s after the upload",
                (r as f64 - upload_at as f64) / 1e6
            ),
            None => "never READY".into(),
        },
    );

    let pid = re(r"suaicloudapp\[[0-9]+\]");
    let pids: BTreeSet<&str> = b
        .console
        .lines()
        .flat_map(|l| pid.find_iter(l).map(|m| m.as_str()))
        .collect();
    v.check(
        s,
        "one process throughout (no restart by hand or by systemd)",
        pids.len() == 1,
        format!("journal lines from: {pids:?}"),
    );
}

/// denied-credentials: the cause shows on the console and in the journal, the boot finishes,
/// and no service was started.
fn denied_checks(b: &Boot, v: &mut Verdicts) {
    let s = b.name.as_str();
    // The CLI's own words, and user-data.sh's, on the console (cloud-final's output goes to
    // journal+console) and in the journal (forwarded to the console as "cloud-init[PID]: ...").
    let cause = b.console_first("Unable to locate credentials");
    v.check(
        s,
        "cause on the console: no credentials",
        cause.is_some(),
        cause.unwrap_or_else(|| "no 'Unable to locate credentials' on the console".into()),
    );
    let stop = b.console_first("user-data: ERROR: cannot download s3://");
    v.check(
        s,
        "user-data.sh stopped with a clear error",
        stop.is_some(),
        match &stop {
            Some(l) => l
                .split_once("user-data: ")
                .map_or(l.as_str(), |x| x.1)
                .to_string(),
            None => "no 'user-data: ERROR: cannot download' on the console".into(),
        },
    );
    // cloud-final's output is a journal stream (StandardOutput=journal+console): the console
    // copy in journald's "ident[pid]: message" form is the journal's own.
    v.check(
        s,
        "cause in the journal",
        b.console_has(r"cloud-init\[[0-9]+\]: .*Unable to locate credentials"),
        "journald's copy: cloud-init[PID]: fatal error: Unable to locate credentials",
    );
    v.check(
        s,
        "metadata server refused credentials",
        b.imds_has(r#""GET /latest/meta-data/iam/security-credentials/ HTTP/1\.1" 404"#),
        "GET iam/security-credentials/ answered 404",
    );
    let done = b.console_at(FINAL_RE);
    v.check(
        s,
        "nothing hangs: cloud-init finished",
        done.is_some(),
        match done {
            Some(t) => format!("at +{:.1} s", b.secs(t)),
            None => format!("no final message within {} s", b.timeout()),
        },
    );
    v.check(
        s,
        "no service was started",
        !b.console_has(r"Started suaicloudapp\.service"),
        "no Started suaicloudapp.service",
    );
    match b.fetches("final-health").last() {
        Some(r) => v.check(
            s,
            "nothing answers on the port",
            r.status != "200",
            format!("/health: HTTP {} (fetch {})", r.status, r.seq),
        ),
        None => v.check(
            s,
            "nothing answers on the port",
            false,
            "/health not fetched",
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// the run

/// Runs the script and waits for it, bounded by [`LIMIT`]; its output is printed at the end.
fn rehearse(out_dir: &Path, run_id: &str) -> ExitStatus {
    let (bin, which) = binary();
    assert!(
        bin.is_file(),
        "no binary to deploy at {} ({which}): run `make static` or set SUAI_VM_BINARY",
        bin.display()
    );
    eprintln!(
        "vm rehearsal: deploying {} ({which}); progress in {}",
        bin.display(),
        out_dir.join("rehearsal.log").display()
    );
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(Path::new(REPO).join("scripts/vm-rehearsal.sh"))
        .arg("--binary")
        .arg(&bin)
        .env("SUAI_VM_OUT", out_dir)
        .env("SUAI_VM_RUN_ID", run_id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/vm-rehearsal.sh");
    // Drain both pipes in the background so the script never blocks on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            // SIGTERM: the script's trap stops qemu and the metadata server.
            harness::signal(child.id(), "TERM");
            let grace = Instant::now();
            while child.try_wait().unwrap().is_none() && grace.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "scripts/vm-rehearsal.sh ran over {LIMIT:?}: {}",
                tail(
                    &std::fs::read_to_string(out_dir.join("rehearsal.log")).unwrap_or_default(),
                    40
                )
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    eprintln!(
        "{stdout}\n{}\n(vm rehearsal took {:.0} s, {status})",
        tail(&stderr, 20),
        started.elapsed().as_secs_f64()
    );
    status
}

#[test]
fn vm_boot_rehearsal_good_late_config_and_denied_credentials() {
    let mut v = Verdicts::default();
    let out_dir = match std::env::var_os("SUAI_VM_OBSERVATIONS") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            eprintln!(
                "vm rehearsal: judging the observations in {} (SUAI_VM_OBSERVATIONS; nothing booted)",
                dir.display()
            );
            judge(&dir, None, None, &mut v);
            dir
        }
        None => {
            let out_dir = Path::new(REPO).join("target/vm-rehearsal");
            // Another clone's suite may be rehearsing on this machine too: the script takes
            // turns (a lock) and stamps its records with this id, so only this run's are read.
            let run_id = format!(
                "test-{}-{}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
            );
            let status = rehearse(&out_dir, &run_id);
            judge(&out_dir, Some(&run_id), Some(status), &mut v);
            out_dir
        }
    };
    let failed = v.failures();
    eprintln!(
        "vm rehearsal: {} checks, {} failed",
        v.checks.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} VM rehearsal checks failed (observations and consoles under {}):\n{}",
        failed.len(),
        v.checks.len(),
        out_dir.display(),
        failed.join("\n")
    );
}
