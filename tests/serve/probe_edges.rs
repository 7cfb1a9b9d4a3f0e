//! Two probe edge cases: a Redis cluster connection that outlived its budget is rebuilt (a
//! private 3-node cluster, one node SIGSTOPped then resumed), and DynamoDB `mode = "write"`
//! instances each write their own item (two apps with different instance ids at once).

use harness::imds::{Imds, ImdsOptions};
use harness::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Three primaries of our own on free ports (the shared cluster is never paused). The node
/// timeout is long, so a paused node is not voted out while the test runs.
fn own_cluster() -> Vec<OwnRedis> {
    let nodes: Vec<OwnRedis> = (0..3)
        .map(|_| {
            let bus = closed_port().to_string();
            OwnRedis::start(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                &bus,
                "--cluster-node-timeout",
                "60000",
            ])
        })
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new(env_var("SUAI_TEST_REDIS_CLI"))
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cluster create: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        eventually(Duration::from_secs(20), || nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))),
        "own cluster not ok"
    );
    nodes
}

/// The ids of the clients connected to `n`, apart from the redis-cli asking.
fn client_ids(n: &OwnRedis) -> Vec<String> {
    n.cli(&["CLIENT", "LIST"])
        .lines()
        .filter(|l| !l.contains("cmd=client|list"))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_cluster_connection_that_timed_out_is_rebuilt_and_recovers() {
    let nodes = own_cluster();
    let config = format!(
        "{}[probes]\ncache_ms = 0\n[redis]\nhost = \"127.0.0.1\"\nport = {}\nmode = \"cluster\"\ntimeout_ms = 1000\n",
        server_section(),
        nodes[0].port
    );
    let a = App::start("edge-cluster", &config);
    assert_eq!(a.get("/redis").body, "OK");
    let before = client_ids(&nodes[0]);
    assert!(
        !before.is_empty(),
        "the probe holds a connection to the endpoint"
    );
    let paused = nodes[1].child.as_ref().unwrap().id();
    signal(paused, "STOP");
    let r = a.get("/redis");
    signal(paused, "CONT");
    assert_eq!(r.status, 503, "a paused node fails the page: {}", r.body);
    assert_eq!(r.header("x-probe-stage"), Some("timeout"), "{}", r.body);
    assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
    let resumed = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || a.get("/redis").body == "OK"),
        "not OK within 10 s of resuming: {}",
        a.get("/redis").body
    );
    eprintln!("OK again {:?} after SIGCONT", resumed.elapsed());
    // The connection that outlived its budget was dropped: the one now in use is new.
    assert!(
        eventually(Duration::from_secs(5), || client_ids(&nodes[0])
            .iter()
            .all(|id| !before.contains(id))),
        "the timed-out cluster connection was kept: before {before:?}, now {:?}",
        client_ids(&nodes[0])
    );
}

/// A DynamoDB write-mode app whose instance metadata names `instance`.
fn writer(name: &str, imds: &Imds) -> App {
    let config = format!(
        "{}[probes]\ncache_ms = 0\n[aws]\nendpoint_url = \"{}\"\n[dynamodb]\ntable = \"{}\"\nmode = \"write\"\ntimeout_ms = 3000\n",
        server_section(),
        env_var("SUAI_TEST_MOTO_URL"),
        env_var("SUAI_TEST_TABLE"),
    );
    let endpoint = imds.sdk_endpoint();
    let a = App::start_with(
        name,
        &config,
        &[
            ("AWS_EC2_METADATA_DISABLED", "false"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint.as_str()),
        ],
    );
    let want = imds.opts.instance_id.clone();
    assert!(
        eventually(Duration::from_secs(10), || a
            .get("/health")
            .header("x-instance-id")
            == Some(want.as_str())),
        "{name}: identity never arrived"
    );
    a
}

fn item_of(a: &App) -> String {
    let json: serde_json::Value = serde_json::from_str(&a.get("/?format=json").body).unwrap();
    json["checks"]["dynamodb:responseTime"][0]["details"]["item"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn dynamodb_writers_on_two_instances_never_fail_each_other() {
    let ids = ["i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2"];
    let imds: Vec<Imds> = ids
        .iter()
        .map(|id| {
            Imds::start(ImdsOptions {
                instance_id: id.to_string(),
                ..ImdsOptions::default()
            })
        })
        .collect();
    let apps: Vec<App> = imds
        .iter()
        .enumerate()
        .map(|(i, m)| writer(&format!("edge-ddb-{i}"), m))
        .collect();
    // Both hammer the table at once: every put, consistent get and delete interleaves.
    let failures: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = apps
            .iter()
            .map(|a| {
                s.spawn(move || {
                    (0..150)
                        .map(|_| a.get("/dynamodb"))
                        .filter(|r| r.status != 200)
                        .map(|r| r.body)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, f) in failures.iter().enumerate() {
        assert!(
            f.is_empty(),
            "app {i}: {} failures, first: {:?}",
            f.len(),
            f.first()
        );
    }
    let items: Vec<String> = apps.iter().map(item_of).collect();
    for (item, id) in items.iter().zip(ids) {
        assert_eq!(item, &format!("suaicloudapp-probe-{id}"));
    }
    assert_ne!(items[0], items[1]);
}
