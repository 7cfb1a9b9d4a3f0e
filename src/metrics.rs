//! Prometheus metrics: probe results and durations per backend, requests by page and status,
//! build info. One registry per process, kept across config reloads.
//!
//! Page labels are the fixed page names (never raw paths), so a scanner cannot blow up the
//! number of series. Two formats: OpenMetrics for scrapers that ask for it, the classic text
//! format 0.0.4 otherwise (classic.rs).

mod classic;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Backend {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeRun {
    backend: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    page: String,
    status: u16,
}

type Histograms = Family<Backend, Histogram, fn() -> Histogram>;

/// Every metric this process exports.
pub struct Metrics {
    registry: Registry,
    probe_up: Family<Backend, Gauge>,
    probe_runs: Family<ProbeRun, Counter>,
    probe_duration: Histograms,
    probe_last_check: Family<Backend, Gauge<f64, AtomicU64>>,
    requests: Family<Request, Counter>,
    /// The `health`/`200` series itself, looked up once: the load balancer's request is the
    /// one that comes every few seconds from every node, and the lookup (a label string
    /// allocated, hashed and found under a lock) costs more than counting it.
    health_ok: Counter,
}

/// 1 ms to about 16 s: probe budgets are seconds, cached pages microseconds.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric, with build info.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let probe_up = Family::<Backend, Gauge>::default();
        let probe_runs = Family::<ProbeRun, Counter>::default();
        let probe_duration: Histograms = Family::new_with_constructor(duration_histogram);
        let requests = Family::<Request, Counter>::default();
        let probe_last_check = Family::<Backend, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "suaicloudapp_probe_up",
            "1 when the last check of the backend passed, 0 when it failed",
            probe_up.clone(),
        );
        registry.register(
            "suaicloudapp_probe_checks",
            "Backend checks actually run (cache hits excluded), by result",
            probe_runs.clone(),
        );
        registry.register_with_unit(
            "suaicloudapp_probe_duration",
            "Duration of backend checks",
            Unit::Seconds,
            probe_duration.clone(),
        );
        registry.register(
            "suaicloudapp_probe_last_check_timestamp_seconds",
            "When the last check of the backend started, in seconds since the Unix epoch",
            probe_last_check.clone(),
        );
        registry.register(
            "suaicloudapp_http_requests",
            "HTTP responses by page and status code",
            requests.clone(),
        );
        registry.register(
            "suaicloudapp_build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let health_ok = requests
            .get_or_create(&Request {
                page: "health".into(),
                status: 200,
            })
            .clone();
        Metrics {
            registry,
            probe_up,
            probe_runs,
            probe_duration,
            probe_last_check,
            requests,
            health_ok,
        }
    }

    /// Records one real check of `backend`, started at `at`.
    pub fn observe_probe(&self, backend: &str, ok: bool, duration: Duration, at: SystemTime) {
        let label = Backend {
            backend: backend.to_string(),
        };
        self.probe_up.get_or_create(&label).set(i64::from(ok));
        let at = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.probe_last_check
            .get_or_create(&label)
            .set(at.as_secs_f64());
        self.probe_duration
            .get_or_create(&label)
            .observe(duration.as_secs_f64());
        self.probe_runs
            .get_or_create(&ProbeRun {
                backend: backend.to_string(),
                result: if ok { "pass" } else { "fail" },
            })
            .inc();
    }

    /// Records one response.
    pub fn observe_request(&self, page: &str, status: u16) {
        if status == 200 && page == "health" {
            self.health_ok.inc();
            return;
        }
        self.requests
            .get_or_create(&Request {
                page: page.to_string(),
                status,
            })
            .inc();
    }

    /// The OpenMetrics text format (`application/openmetrics-text; version=1.0.0`).
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            out = format!("# encoding failed: {e}\n");
        }
        out
    }

    /// The classic text format (`text/plain; version=0.0.4`).
    pub fn render_classic(&self) -> String {
        classic::from_openmetrics(&self.render_openmetrics())
    }
}
