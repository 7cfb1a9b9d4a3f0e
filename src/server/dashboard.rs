//! The operator's page at `/`: every configured backend in one table, as HTML for a browser
//! or as text for curl.
//!
//! SECURITY: every value from a backend or the config is HTML-escaped; the page loads nothing
//! from outside (it must work in a private subnet) and its CSP forbids it to.

use super::App;
use crate::outcome::Outcome;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use html_escape::encode_text as esc;
use std::fmt::Write;
use std::sync::OnceLock;
use std::time::UNIX_EPOCH;

/// The page's Content-Security-Policy: its one style element and its one script, named by
/// their SHA-256, and nothing else. No `'unsafe-inline'`: markup that slipped past the escaping
/// could neither run a script nor restyle the page, and nothing loads from elsewhere.
pub fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        format!(
            "default-src 'none'; style-src {}; script-src {}; base-uri 'none'; form-action 'none'",
            hash_source(STYLE_BODY),
            hash_source(SCRIPT_BODY)
        )
    })
}

/// A CSP hash source: `'sha256-<base64 of the element's text>'`.
fn hash_source(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    format!("'sha256-{}'", STANDARD.encode(digest.as_ref()))
}

/// The dashboard as HTML. `refresh` adds a meta refresh (seconds).
pub fn html(app: &App, outcomes: &[Outcome], refresh: Option<u32>) -> String {
    let mut h = String::with_capacity(4096);
    let failing = outcomes.iter().filter(|o| !o.is_ok()).count();
    let title = if failing == 0 {
        "all OK".to_string()
    } else {
        format!("{failing} failing")
    };
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>suaicloudapp: {title}</title>"
    );
    if let Some(secs) = refresh {
        let _ = write!(h, "<meta http-equiv=\"refresh\" content=\"{secs}\">");
    }
    let _ = write!(h, "<style>{STYLE_BODY}</style>");
    h.push_str("</head><body><main>");
    let _ = write!(
        h,
        "<h1>suaicloudapp <span class=\"summary\" id=\"summary\">{title}</span></h1>"
    );
    h.push_str(&identity_block(app));
    h.push_str("<div class=\"scroll\"><table id=\"checks\"><thead><tr><th>Backend</th><th>Status</th><th>Latency</th><th>Stage</th><th>Cause or detail</th><th>Checked</th></tr></thead><tbody>");
    for o in outcomes {
        h.push_str(&row(o));
    }
    for name in app.registry.known() {
        if !outcomes.iter().any(|o| o.name == *name) {
            let _ = write!(
                h,
                "<tr class=\"off\" data-backend=\"{name}\"><td>{name}</td><td class=\"status\">not configured</td><td></td><td></td><td>add a [{name}] section</td><td></td></tr>"
            );
        }
    }
    h.push_str("</tbody></table></div>");
    h.push_str("<nav><a href=\"/health\">/health</a>");
    for o in outcomes {
        let _ = write!(h, " <a href=\"/{0}\">/{0}</a>", o.name);
    }
    h.push_str(" <a href=\"/logs\">/logs</a> <a href=\"/metrics\">/metrics</a> <a href=\"/?format=json\">JSON</a> <a href=\"/?refresh=5\">auto-refresh</a></nav>");
    let _ = write!(h, "<script>{SCRIPT_BODY}</script>");
    h.push_str("</main></body></html>");
    h
}

fn identity_block(app: &App) -> String {
    let id = app.shared.identity.get();
    let field = |v: Option<&String>| v.map_or("-".to_string(), |s| esc(s).into_owned());
    let who = match id.and_then(|i| i.task.as_ref()) {
        Some(t) => format!(
            "<dt>Task</dt><dd id=\"task-arn\">{}</dd><dt>Cluster</dt><dd id=\"cluster\">{}</dd>\
             <dt>Family</dt><dd id=\"family\">{}:{}</dd><dt>Launch type</dt><dd id=\"launch-type\">{}</dd>",
            esc(&t.arn),
            esc(&t.cluster),
            esc(&t.family),
            esc(&t.revision),
            esc(&t.launch_type),
        ),
        None => format!(
            "<dt>Instance</dt><dd id=\"instance-id\">{}</dd>",
            field(id.map(|i| &i.instance_id))
        ),
    };
    format!(
        "<dl id=\"identity\">{who}<dt>Zone</dt><dd>{}</dd><dt>Region</dt><dd>{}</dd>\
         <dt>Version</dt><dd>{}</dd><dt>Config</dt><dd>{}</dd><dt>ETag</dt><dd>{}</dd></dl>",
        field(id.map(|i| &i.availability_zone)),
        esc(&region(
            app.region.as_deref(),
            id.map(|i| i.region.as_str()),
            |k| { std::env::var(k).ok() }
        )),
        env!("CARGO_PKG_VERSION"),
        super::config_source::html(app),
        field(app.etag.as_ref()),
    )
}

/// The region the AWS probes use and where it comes from, in the order the SDK's settings win:
/// the config's `[aws] region`, then the environment, then instance metadata. A config that
/// names another region than the instance's says so: that is where its calls go.
fn region(
    configured: Option<&str>,
    instance: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> String {
    if let Some(r) = configured {
        return match instance {
            Some(i) if i != r => format!("{r} ([aws] region; this instance is in {i})"),
            _ => format!("{r} ([aws] region)"),
        };
    }
    let from_env = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .find_map(|k| {
            env(k)
                .filter(|v| !v.is_empty())
                .map(|v| format!("{v} ({k})"))
        });
    from_env
        .or_else(|| instance.map(|i| format!("{i} (instance metadata)")))
        .unwrap_or_else(|| "-".into())
}

fn row(o: &Outcome) -> String {
    let epoch_ms = o
        .checked_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let checked = humantime::format_rfc3339_seconds(o.checked_at);
    let (class, status, stage, cause) = match &o.result {
        Ok(_) => ("ok", "OK", "", esc(&o.detail()).into_owned()),
        Err(f) => ("fail", "FAIL", f.stage.as_str(), esc(&f.cause).into_owned()),
    };
    format!(
        "<tr class=\"{class}\" data-backend=\"{name}\"><td><a href=\"/{name}\">{name}</a><div class=\"target\">{target}</div></td>\
         <td class=\"status\">{status}</td><td class=\"latency\">{ms} ms</td><td class=\"stage\">{stage}</td>\
         <td class=\"cause\">{cause}</td><td><time datetime=\"{checked}\" data-epoch-ms=\"{epoch_ms}\">{checked}</time></td></tr>",
        name = o.name,
        target = esc(&o.target),
        ms = o.duration.as_millis(),
    )
}

/// The same table for a terminal: a line per backend ([`crate::report::line`], as
/// `suaicloudapp check` prints).
pub fn text(app: &App, outcomes: &[Outcome]) -> String {
    let mut t = format!("suaicloudapp {}", env!("CARGO_PKG_VERSION"));
    if let Some(id) = app.shared.identity.get() {
        match &id.task {
            Some(task) => {
                let _ = write!(
                    t,
                    " on task {} ({}:{}, {}, {})",
                    task.arn, task.family, task.revision, task.launch_type, id.availability_zone
                );
            }
            None => {
                let _ = write!(t, " on {} ({})", id.instance_id, id.availability_zone);
            }
        }
    }
    t.push('\n');
    if let Some(config) = super::config_source::text(app) {
        t.push_str(&config);
        t.push('\n');
    }
    for o in outcomes {
        t.push_str(&crate::report::line(o));
        t.push('\n');
    }
    for name in app.registry.known() {
        if !outcomes.iter().any(|o| o.name == *name) {
            let _ = writeln!(t, "{name:<10} -     not configured");
        }
    }
    t
}

/// The text of the page's one `<style>` element ([`csp`] allows exactly this text).
const STYLE_BODY: &str = "\
body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2329}\
main{max-width:1100px;margin:auto;padding:12px}h1{font-size:1.3em}\
.summary{font-size:.7em;padding:2px 8px;border-radius:9px;background:#dfe3e8}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0 0 12px}dt{color:#5b6670}dd{margin:0;word-break:break-all}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff}\
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e3e6ea;vertical-align:top}\
tr.ok .status{color:#116b2e;font-weight:600}tr.fail .status{color:#b3261e;font-weight:600}\
tr.fail{background:#fff3f2}tr.off{color:#8a949c}.target{color:#5b6670;font-size:.85em}\
.cause{max-width:38em;word-break:break-word}nav{margin-top:12px}nav a{margin-right:10px}\
@media (max-width:600px){thead{display:none}table,tbody,tr,td{display:block;width:auto}\
tr{border-bottom:1px solid #d5d9de;padding:6px 0}td{border:0;padding:2px 8px}\
td.status,td.latency,td.stage{display:inline-block}td:empty{display:none}}";

/// Turns check times into "N s ago" in the viewer's browser; the page works without it. The
/// text of the page's one `<script>` element ([`csp`] allows exactly this text).
const SCRIPT_BODY: &str = "\
for(const t of document.querySelectorAll('time[data-epoch-ms]')){\
const s=Math.max(0,Math.round((Date.now()-Number(t.dataset.epochMs))/1000));\
t.textContent=s+' s ago';t.title=t.getAttribute('datetime');}\
document.body.dataset.rendered='yes';";

#[cfg(test)]
mod tests {
    use super::region;

    #[test]
    fn the_region_row_names_the_region_the_probes_use_and_where_it_comes_from() {
        let no_env = |_: &str| None;
        let env = |k: &str| (k == "AWS_DEFAULT_REGION").then(|| "eu-north-1".to_string());
        assert_eq!(
            region(Some("us-east-1"), None, no_env),
            "us-east-1 ([aws] region)"
        );
        assert_eq!(
            region(Some("us-east-1"), Some("us-east-1"), env),
            "us-east-1 ([aws] region)"
        );
        assert_eq!(
            region(Some("us-east-1"), Some("eu-west-1"), no_env),
            "us-east-1 ([aws] region; this instance is in eu-west-1)"
        );
        assert_eq!(
            region(None, Some("eu-west-1"), env),
            "eu-north-1 (AWS_DEFAULT_REGION)"
        );
        assert_eq!(
            region(None, Some("eu-west-1"), no_env),
            "eu-west-1 (instance metadata)"
        );
        assert_eq!(region(None, None, no_env), "-");
    }
}
