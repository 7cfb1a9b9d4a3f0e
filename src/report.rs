//! Outcomes as plain text, one line per backend: what `suaicloudapp check` prints and what the
//! dashboard's text page lists. It lives beside the outcome rather than in the server, so the
//! command line prints without going through the HTTP layer. It formats data only: no I/O.

use crate::outcome::Outcome;

/// One backend on one line: name, `OK` or `FAIL`, latency, then the cause or the details.
pub fn line(o: &Outcome) -> String {
    let ms = o.duration.as_millis();
    match &o.result {
        Ok(_) => {
            let detail = o.detail();
            let sep = if detail.is_empty() { "" } else { "  " };
            format!("{:<10} OK    {ms} ms{sep}{detail}", o.name)
        }
        Err(f) => format!("{:<10} FAIL  {ms} ms  {}: {}", o.name, f.stage, f.cause),
    }
}

/// A backend asked for by name whose section is absent.
pub fn not_configured(name: &str) -> String {
    format!("{name:<10} FAIL  not configured: add a [{name}] section to the config")
}
