//! The classic Prometheus text format (0.0.4), derived from the OpenMetrics text that
//! prometheus-client writes (the crate encodes OpenMetrics only). The two share their sample
//! lines; they differ in the metadata: a classic counter's HELP and TYPE carry the `_total`
//! of its samples, an info metric is a gauge named `<name>_info`, and there is no `# UNIT`
//! and no `# EOF`. promtool and the text-format scrapers reject OpenMetrics' `info` type, and
//! flag counters whose metadata names no samples.
//!
//! Only metadata lines are rewritten; sample lines pass through unchanged.

/// Rewrites OpenMetrics text as classic text format 0.0.4.
pub fn from_openmetrics(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    // HELP comes before TYPE, and only TYPE says whether the name changes.
    let mut help: Option<(&str, &str)> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, help.take(), None);
            help = rest.split_once(' ').or(Some((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                other => ("", other),
            };
            let renamed = format!("{name}{suffix}");
            flush_help(&mut out, help.take(), Some((name, &renamed)));
            out.push_str(&format!("# TYPE {renamed} {kind}\n"));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            flush_help(&mut out, help.take(), None);
            out.push_str(line);
            out.push('\n');
        }
    }
    flush_help(&mut out, help, None);
    out
}

/// Writes a pending HELP line, under the TYPE's new name when it belongs to that family.
fn flush_help(out: &mut String, help: Option<(&str, &str)>, rename: Option<(&str, &str)>) {
    let Some((name, text)) = help else { return };
    let name = match rename {
        Some((from, to)) if from == name => to,
        _ => name,
    };
    out.push_str(&format!("# HELP {name} {text}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_info_get_classic_metadata_and_samples_pass_through() {
        let om = "# HELP c Checks.\n# TYPE c counter\nc_total{a=\"1\"} 2\n\
                  # HELP d Duration.\n# TYPE d_seconds histogram\n# UNIT d_seconds seconds\n\
                  d_seconds_sum 0.5\n# HELP b Build.\n# TYPE b info\nb_info{version=\"1\"} 1\n# EOF\n";
        let classic = from_openmetrics(om);
        assert_eq!(
            classic,
            "# HELP c_total Checks.\n# TYPE c_total counter\nc_total{a=\"1\"} 2\n\
             # HELP d Duration.\n# TYPE d_seconds histogram\nd_seconds_sum 0.5\n\
             # HELP b_info Build.\n# TYPE b_info gauge\nb_info{version=\"1\"} 1\n"
        );
    }
}
