//! Where the running config came from, for the dashboard (HTML, text) and its JSON: a file,
//! S3's object, or the last known good copy served because S3's could not be used at boot.
//!
//! The copy's age is computed when the page is rendered, so it grows while S3 stays out.
//! Only our own words and the object's name and ETag appear here, never text from the config.

use super::App;
use html_escape::encode_text as esc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// `config_source` in the dashboard's JSON: `kind` is `file`, `s3` or `cached_copy`; a cached
/// copy adds `fetched_at`, `age_seconds`, `reason` and the background `fetch_attempts`.
pub fn json(app: &App) -> serde_json::Value {
    let mut v = serde_json::json!({
        "kind": kind(app),
        "origin": app.origin,
        "etag": app.etag,
    });
    if let Some(f) = &app.fallback {
        v["fetched_at"] = humantime::format_rfc3339_seconds(f.fetched_at)
            .to_string()
            .into();
        v["age_seconds"] = age_seconds(f.fetched_at).into();
        v["reason"] = f.reason.into();
        v["fetch_attempts"] = f.attempts.load(Ordering::Relaxed).into();
    }
    v
}

/// The dashboard's "Config" value, HTML-escaped.
pub fn html(app: &App) -> String {
    match describe_copy(app) {
        Some(words) => format!(
            "<span id=\"config-source\" data-kind=\"cached_copy\"><strong>{}</strong></span>",
            esc(&words)
        ),
        None => format!(
            "<span id=\"config-source\" data-kind=\"{}\">{}</span>",
            kind(app),
            esc(&app.origin)
        ),
    }
}

/// A line for the text dashboard, only while a cached copy is served (the text page otherwise
/// shows no config line).
pub fn text(app: &App) -> Option<String> {
    describe_copy(app).map(|words| format!("config: {words}"))
}

fn kind(app: &App) -> &'static str {
    if app.fallback.is_some() {
        "cached_copy"
    } else if app.origin.starts_with("s3://") {
        "s3"
    } else {
        "file"
    }
}

/// "cached copy of s3://b/k (ETag e), fetched N s ago: why; fetching S3's in the background
/// (M attempts so far)".
fn describe_copy(app: &App) -> Option<String> {
    let f = app.fallback.as_ref()?;
    let etag = app
        .etag
        .as_deref()
        .map_or(String::new(), |e| format!(" (ETag {e})"));
    Some(format!(
        "cached copy of {}{etag}, fetched {} s ago: {}; fetching S3's in the background ({} attempts so far)",
        app.origin,
        age_seconds(f.fetched_at),
        f.reason,
        f.attempts.load(Ordering::Relaxed),
    ))
}

fn age_seconds(fetched_at: SystemTime) -> u64 {
    SystemTime::now()
        .duration_since(fetched_at)
        .map_or(0, |d| d.as_secs())
}
