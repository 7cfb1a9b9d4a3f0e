//! On ECS: the task's identity from the task metadata endpoint v4 and credentials from the
//! container credentials endpoint, both through small local stand-ins (a Python HTTP server on
//! loopback, as the IMDS tests use), and an S3 call to the shared moto with those credentials.

use harness::{env_var, scratch_dir, server_section, App, HungServer, PythonServer};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TASK_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task/web/0a1b2c3d4e5f67890";
const CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/web";
/// The container credentials' secret: must never show up in a page or the log.
const SECRET: &str = "ecs-container-secret-do-not-log";
const AUTH_TOKEN: &str = "container-auth-token-xyz";

/// `/v4/meta/task` answers a Fargate task's metadata; `/creds` answers container credentials
/// (only with the right Authorization header). Every request's path and whether it carried
/// that header are appended to the log file given as the second argument; the token, cluster,
/// task ARN and secret follow.
const STAND_IN: &str = r#"
import http.server, json, sys
port, log = int(sys.argv[1]), sys.argv[2]
AUTH_TOKEN, CLUSTER, TASK_ARN, SECRET = sys.argv[3:7]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        authed = self.headers.get("Authorization") == AUTH_TOKEN
        with open(log, "a") as f:
            f.write("%s authed=%s\n" % (self.path, authed))
        if self.path == "/v4/meta/task":
            body = {"Cluster": CLUSTER, "TaskARN": TASK_ARN,
                    "Family": "flask-ecs-firehose", "Revision": "7", "DesiredStatus": "RUNNING",
                    "KnownStatus": "RUNNING", "AvailabilityZone": "us-east-1b",
                    "LaunchType": "FARGATE", "Containers": []}
        elif self.path == "/creds" and authed:
            body = {"AccessKeyId": "ASIAECSTEST000000001", "SecretAccessKey": SECRET,
                    "Token": "ecs-session-token", "Expiration": "2099-01-01T00:00:00Z",
                    "RoleArn": "arn:aws:iam::123456789012:role/suaicloudapp-task"}
        else:
            self.send_response(404); self.end_headers(); return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

struct StandIn {
    server: PythonServer,
    log: PathBuf,
}

impl StandIn {
    fn start() -> StandIn {
        let log = scratch_dir("ecs-stand-in").join("requests.log");
        let args = [
            &log.display().to_string(),
            AUTH_TOKEN,
            CLUSTER,
            TASK_ARN,
            SECRET,
        ];
        let server = PythonServer::start(STAND_IN, &args.map(str::to_string));
        StandIn { server, log }
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.server.port)
    }
}

/// The app as the ECS agent starts it: metadata and credentials URIs set, no keys in the
/// environment (empty values count as unset in the SDK's chain), instance metadata off.
fn start_on_ecs(name: &str, config: &str, metadata: &str, creds: &str) -> App {
    App::start_with(
        name,
        config,
        &[
            ("ECS_CONTAINER_METADATA_URI_V4", metadata),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", creds),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", AUTH_TOKEN),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
        ],
    )
}

fn wait_for_identity(app: &App) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.get("/health").header("x-task-arn").is_none() {
        assert!(
            Instant::now() < deadline,
            "no X-Task-Arn within 5 s: {}",
            app.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn task_identity_is_shown_where_the_instance_is_on_ec2() {
    let stand_in = StandIn::start();
    let app = start_on_ecs(
        "ecs-identity",
        &server_section(),
        &stand_in.url("/v4/meta"),
        &stand_in.url("/creds"),
    );
    wait_for_identity(&app);
    let health = app.get("/health");
    assert_eq!(health.header("x-task-arn"), Some(TASK_ARN));
    assert_eq!(health.header("x-availability-zone"), Some("us-east-1b"));
    assert_eq!(
        health.header("x-instance-id"),
        None,
        "a task is not an instance"
    );

    let text = app.get("/").body;
    assert!(
        text.contains(&format!(
            "on task {TASK_ARN} (flask-ecs-firehose:7, FARGATE, us-east-1b)"
        )),
        "{text}"
    );
    let html = app.request("GET", "/", &[("accept", "text/html")]).body;
    assert!(
        html.contains(&format!("<dd id=\"task-arn\">{TASK_ARN}</dd>")),
        "{html}"
    );
    assert!(html.contains(&format!("<dd id=\"cluster\">{CLUSTER}</dd>")));
    assert!(html.contains("<dd id=\"launch-type\">FARGATE</dd>"));
    let json = app.get("/health?format=json").body;
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["serviceId"], TASK_ARN, "{json}");
    app.wait_stderr(Duration::from_secs(5), |e| {
        e.contains("task identity") && e.contains(TASK_ARN)
    });
}

#[test]
fn credentials_come_from_the_container_endpoint() {
    let stand_in = StandIn::start();
    let config = format!(
        "{}[aws]\nendpoint_url = \"{}\"\nregion = \"us-east-1\"\n[s3]\nbucket = \"{}\"\n",
        server_section(),
        env_var("SUAI_TEST_MOTO_URL"),
        env_var("SUAI_TEST_BUCKET"),
    );
    let app = start_on_ecs(
        "ecs-creds",
        &config,
        &stand_in.url("/v4/meta"),
        &stand_in.url("/creds"),
    );
    let s3 = app.get("/s3");
    assert_eq!(s3.status, 200, "{}", s3.body);
    assert_eq!(s3.body, "OK");
    let requests = stand_in.requests();
    assert!(
        requests.contains("/creds authed=True"),
        "the container credentials endpoint was not asked (with its token): {requests}"
    );
    let dashboard = app.get("/?format=json").body;
    assert!(!dashboard.contains(SECRET));
    assert!(!app.stderr().contains(SECRET));
    assert!(!app.log_file().contains(SECRET));
}

#[test]
fn a_hung_metadata_endpoint_delays_nothing() {
    let hung = HungServer::start();
    let metadata = format!("http://127.0.0.1:{}/v4/meta", hung.port);
    let app = start_on_ecs("ecs-hung", &server_section(), &metadata, "");
    let health = app.get("/health");
    assert_eq!(health.status, 200);
    assert!(
        health.elapsed < Duration::from_secs(1),
        "{:?}",
        health.elapsed
    );
    // Bounded: the look-up gives up (2 s budget) and says so; pages carry no task headers.
    app.wait_stderr(Duration::from_secs(6), |e| {
        e.contains("ECS task metadata unavailable")
    });
    assert_eq!(app.get("/health").header("x-task-arn"), None);
    assert!(hung.accepted() >= 1);
}
