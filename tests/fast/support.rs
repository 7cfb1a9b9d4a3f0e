//! What every fast test stands on: stand-in probes, the in-process server built from a TOML
//! string, and one HTTP client (hyper-util's, a dependency already) with a raw-bytes escape
//! hatch for requests no client would send.
//!
//! It must not read `.test-env`, the process environment or any file it did not write, and
//! it dials 127.0.0.1 only: the fast tier has to pass on a machine with no backend at all.
#![allow(dead_code)]

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use suaicloudapp::identity::Identity;
use suaicloudapp::load::Loaded;
use suaicloudapp::outcome::{Details, Failure, Stage};
use suaicloudapp::probes::{self, Config, Given, Probe, Registry};
use suaicloudapp::server::{self, App, Shared};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// The config's origin as pages and errors name it.
pub const ORIGIN: &str = "fast.toml";

/// The longest any single exchange may take before the test fails: a hung server must fail
/// the test, not hang the test binary.
const LIMIT: Duration = Duration::from_secs(10);

/// What a stand-in answers.
#[derive(Clone)]
enum Answer {
    Pass(Details),
    Fail(Stage, String),
    /// Never answers: the runner's timeout (the stand-in's budget) ends the check.
    Hang,
    /// Panics inside the check, as a bug in a real probe would.
    Panic,
}

/// A probe with a chosen answer, for a page that must be rendered without its backend.
pub struct StandIn {
    answer: Answer,
    target: String,
    budget: Duration,
    /// How long the check takes before answering: a backend's latency, so concurrent callers
    /// overlap one in-flight check.
    latency: Duration,
    calls: Calls,
}

/// How often a stand-in was checked, readable after the stand-in moved into the server.
#[derive(Clone, Default)]
pub struct Calls {
    count: Arc<AtomicUsize>,
    started: Arc<Notify>,
}

impl Calls {
    /// Checks started so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Returns once a check has started (at once if one started already and nobody waited):
    /// how a test knows a request is in flight inside the server without guessing a delay.
    pub async fn started(&self) {
        tokio::time::timeout(LIMIT, self.started.notified())
            .await
            .expect("no check started within 10 s");
    }
}

impl StandIn {
    fn new(answer: Answer) -> StandIn {
        StandIn {
            answer,
            target: "standin.test:1".into(),
            budget: Duration::from_millis(1000),
            latency: Duration::ZERO,
            calls: Calls::default(),
        }
    }

    /// Passes with no details.
    pub fn pass() -> StandIn {
        StandIn::new(Answer::Pass(Vec::new()))
    }

    /// Passes, reporting `details` as a real probe does (`server_version=...`).
    pub fn pass_with(details: &[(&'static str, &str)]) -> StandIn {
        let details = details.iter().map(|(k, v)| (*k, v.to_string())).collect();
        StandIn::new(Answer::Pass(details))
    }

    /// Fails at `stage` with `cause`.
    pub fn fail(stage: Stage, cause: &str) -> StandIn {
        StandIn::new(Answer::Fail(stage, cause.into()))
    }

    /// Never answers.
    pub fn hang() -> StandIn {
        StandIn::new(Answer::Hang)
    }

    /// Panics in its check.
    pub fn panicking() -> StandIn {
        StandIn::new(Answer::Panic)
    }

    /// Where the stand-in claims to go (shown in JSON and the dashboard, and in a timeout).
    pub fn target(mut self, target: &str) -> StandIn {
        self.target = target.into();
        self
    }

    /// The budget the runner holds the check to.
    pub fn budget_ms(mut self, ms: u64) -> StandIn {
        self.budget = Duration::from_millis(ms);
        self
    }

    /// How long each check takes before it answers.
    pub fn latency_ms(mut self, ms: u64) -> StandIn {
        self.latency = Duration::from_millis(ms);
        self
    }

    /// The call counter, to keep before the stand-in is handed to [`Fixture::probe`].
    pub fn calls(&self) -> Calls {
        self.calls.clone()
    }
}

impl Probe for StandIn {
    fn check(&self) -> BoxFuture<'_, Result<Details, Failure>> {
        self.calls.count.fetch_add(1, Ordering::SeqCst);
        self.calls.started.notify_one();
        async move {
            if !self.latency.is_zero() {
                tokio::time::sleep(self.latency).await;
            }
            match &self.answer {
                Answer::Pass(details) => Ok(details.clone()),
                Answer::Fail(stage, cause) => Err(Failure::new(*stage, cause.clone())),
                Answer::Hang => std::future::pending().await,
                Answer::Panic => panic!("the stand-in panics on purpose"),
            }
        }
        .boxed()
    }
}

/// A server about to be started: its config text, its stand-ins and what else it is told.
pub struct Fixture {
    toml: String,
    probes: Vec<Given>,
    identity: Option<Identity>,
    loaded: Loaded,
}

impl Fixture {
    /// A server for `toml`, parsed and completed as every loader does (`[health] ready` checked)
    /// but with no environment: a variable in the developer's shell changes nothing here.
    pub fn new(toml: &str) -> Fixture {
        Fixture {
            toml: toml.into(),
            probes: Vec::new(),
            identity: None,
            loaded: Loaded {
                text: toml.into(),
                origin: ORIGIN.into(),
                etag: None,
                copy: None,
                fallback: None,
            },
        }
    }

    /// Serves `name` (`database`, `http/api`...) with `probe`.
    pub fn probe(mut self, name: &str, probe: StandIn) -> Fixture {
        self.probes.push(Given {
            page: name.into(),
            target: probe.target.clone(),
            budget: probe.budget,
            probe: Arc::new(probe),
        });
        self
    }

    /// The instance the server says it is, as if IMDS had answered.
    pub fn identity(mut self, identity: Identity) -> Fixture {
        self.identity = Some(identity);
        self
    }

    /// Changes where the config is said to come from (origin, ETag, the last known good copy).
    pub fn loaded(mut self, edit: impl FnOnce(&mut Loaded)) -> Fixture {
        edit(&mut self.loaded);
        self
    }

    /// Binds 127.0.0.1:0, then serves there in a task of the test's runtime. The listener is
    /// bound before this returns, so a request sent right away waits in the kernel's accept
    /// queue instead of being refused.
    pub async fn start(self) -> Server {
        let mut config = Config::parse(&self.toml, ORIGIN).unwrap_or_else(|e| panic!("{e}"));
        probes::prepare(&mut config, ORIGIN, |_| None).unwrap_or_else(|e| panic!("{e}"));
        let shared = Shared::default();
        if let Some(id) = self.identity {
            shared.identity.set(id).expect("a fresh identity cell");
        }
        let registry = Registry::from_probes(&config, self.probes, shared.metrics.clone());
        let app = App::with_registry(&config, &self.loaded, registry, shared);
        let state = Arc::new(ArcSwap::from_pointee(app));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(server::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            state,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            serving: Some(serving),
        }
    }
}

/// The in-process server; aborted when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub state: Arc<ArcSwap<App>>,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<()>>,
}

impl Server {
    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[]).await
    }

    /// `GET path` with `Accept: accept`.
    pub async fn get_as(&self, path: &str, accept: &str) -> Resp {
        self.request("GET", path, &[("accept", accept)]).await
    }

    /// Any method, with extra headers, through the pooled client (keep-alive as a browser).
    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::new(Bytes::new())).expect("a valid request");
        let started = Instant::now();
        let resp = tokio::time::timeout(LIMIT, self.client.request(req))
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no answer within {LIMIT:?}"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = tokio::time::timeout(LIMIT, resp.into_body().collect())
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: body not sent within {LIMIT:?}"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
            .to_bytes();
        Resp {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).expect("a UTF-8 body"),
            elapsed: started.elapsed(),
        }
    }

    /// Writes `bytes` on a fresh connection and returns all the server sent until it closed.
    /// Write and read errors are not failures: a server refusing an oversized head answers and
    /// closes before reading the rest, and the unread rest turns that close into a reset.
    pub async fn raw(&self, bytes: &[u8]) -> String {
        let mut s = TcpStream::connect(self.addr).await.expect("connect");
        let _ = s.write_all(bytes).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut out))
            .await
            .expect("the server closes after answering");
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Stops accepting and waits until `serve` has drained and returned.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            tokio::time::timeout(LIMIT, serving)
                .await
                .expect("serve returned within 10 s of the shutdown signal")
                .expect("serve did not panic");
        }
    }

    /// The page the server is serving now (its registry, its metrics).
    pub fn app(&self) -> Arc<App> {
        self.state.load_full()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
    }
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    pub elapsed: Duration,
}

impl Resp {
    /// A header's value; `None` when absent (or not text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON; fails the test when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// The status code of a raw HTTP/1.1 answer.
pub fn status_of(raw: &str) -> u16 {
    raw.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"))
}

/// An EC2 instance, as IMDS would describe it.
pub fn instance(id: &str, zone: &str) -> Identity {
    Identity {
        instance_id: id.into(),
        availability_zone: zone.into(),
        region: zone[..zone.len() - 1].into(),
        task: None,
    }
}

/// A section for `name` that validation accepts; the stand-in serves the page, so nothing in
/// it is ever dialled. Only needed where `[health] ready` must name the backend.
pub fn section(name: &str) -> &'static str {
    match name {
        "database" => "[database]\nhost = \"db.internal\"\nuser = \"app\"\ndbname = \"app\"\n",
        "redis" => "[redis]\nhost = \"cache.internal\"\n",
        "s3" => "[s3]\nbucket = \"assets\"\n",
        other => panic!("no section written for {other}"),
    }
}

/// `/logs` answers hold one of two process-wide places until sent (`logs::MAX_TAILS`): tests
/// that read the log take turns, so another test's answer never turns theirs into a 503.
pub async fn tail_turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}
