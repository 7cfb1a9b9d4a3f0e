//! Hardening: real faults injected into real backends (killed, paused, hung, black-holed)
//! while the faulted page is hammered and /health is measured. Each fault is one row of the
//! "faults" table in docs/HARDENING.md (scripts/hardening-report.sh).

use harness::hardening::*;
use harness::load::BlackHole;
use harness::moto::{venv_python, OwnMoto};
use harness::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn faults_on_redis() {
    let _serial = serial();
    let mut redis = OwnRedis::start(&[]);
    run_faults(
        "redis",
        "/redis",
        "/database",
        &format!("{}{}", redis_section(redis.port), shared_mysql()),
        &mut redis,
        &[
            Fault {
                kind: "killed, restarted",
                stage: "connect",
                inject: |r| r.down(),
                heal: |r| r.up(),
            },
            Fault {
                kind: "paused (CLIENT PAUSE 4000 ALL)",
                stage: "timeout",
                inject: |r| {
                    r.cli(&["CLIENT", "PAUSE", "4000", "ALL"]);
                },
                heal: |_| {},
            },
            Fault {
                kind: "paused (SIGSTOP/SIGCONT)",
                stage: "timeout",
                inject: |r| signal(r.pid(), "STOP"),
                heal: |r| signal(r.pid(), "CONT"),
            },
        ],
    );
}

#[test]
fn faults_on_mariadb() {
    let _serial = serial();
    let mut db = OwnMariaDb::install();
    db.start();
    run_faults(
        "database",
        "/database",
        "/redis",
        &format!(
            "{}{}",
            mysql_section(db.port, "root", "", "mysql"),
            shared_redis()
        ),
        &mut db,
        &[
            Fault {
                kind: "killed, restarted",
                stage: "connect",
                inject: |d| d.stop(),
                heal: |d| d.start(),
            },
            Fault {
                kind: "paused (SIGSTOP/SIGCONT)",
                stage: "timeout",
                inject: |d| signal(d.pid(), "STOP"),
                heal: |d| signal(d.pid(), "CONT"),
            },
        ],
    );
}

/// Creates the bucket and table the S3 and DynamoDB probes ask for (moto keeps no state
/// across restarts); retried until moto answers, 30 s at most.
fn provision(moto: &OwnMoto) {
    let script = format!(
        "import boto3\nkw=dict(endpoint_url='{}',region_name='us-east-1',aws_access_key_id='testing',aws_secret_access_key='testing')\n\
         boto3.client('s3',**kw).create_bucket(Bucket='hard-bucket')\n\
         boto3.client('dynamodb',**kw).create_table(TableName='hard-table',KeySchema=[{{'AttributeName':'id','KeyType':'HASH'}}],AttributeDefinitions=[{{'AttributeName':'id','AttributeType':'S'}}],BillingMode='PAY_PER_REQUEST')\n",
        moto.url()
    );
    let created = eventually(Duration::from_secs(30), || {
        Command::new(venv_python())
            .args(["-c", &script])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(created, "own moto: bucket and table not created");
}

#[test]
fn faults_on_s3_and_dynamodb() {
    let _serial = serial();
    let mut moto = OwnMoto::start();
    provision(&moto);
    let config = format!(
        "[aws]\nendpoint_url = \"{}\"\n[s3]\nbucket = \"hard-bucket\"\n[dynamodb]\ntable = \"hard-table\"\n{}",
        moto.url(),
        shared_redis()
    );
    for backend in ["s3", "dynamodb"] {
        run_faults(
            backend,
            &format!("/{backend}"),
            "/redis",
            &config,
            &mut moto,
            &[
                Fault {
                    kind: "killed, restarted",
                    stage: "connect",
                    inject: |m| m.stop(),
                    heal: |m| {
                        m.restart();
                        provision(m);
                    },
                },
                Fault {
                    kind: "paused (SIGSTOP/SIGCONT)",
                    stage: "timeout",
                    inject: |m| signal(m.pid(), "STOP"),
                    heal: |m| signal(m.pid(), "CONT"),
                },
            ],
        );
    }
}

#[test]
fn hung_and_black_holed_backends() {
    let _serial = serial();
    for backend in ["database", "redis", "s3", "dynamodb"] {
        for (kind, stage) in [
            ("hung (accepts, never replies)", "timeout"),
            ("black-holed (connect never completes)", "timeout"),
        ] {
            let hung = HungServer::start();
            let hole = BlackHole::start();
            let port = if kind.starts_with("hung") {
                hung.port
            } else {
                hole.port
            };
            let section = match backend {
                "database" => format!("{}{}", mysql_section(port, "u", "p", "d"), shared_redis()),
                "redis" => format!("{}{}", redis_section(port), shared_mysql()),
                "s3" => format!("[aws]\nendpoint_url = \"http://127.0.0.1:{port}\"\n[s3]\nbucket = \"b\"\n{}", shared_redis()),
                _ => format!("[aws]\nendpoint_url = \"http://127.0.0.1:{port}\"\n[dynamodb]\ntable = \"t\"\n{}", shared_redis()),
            };
            let other = if backend == "redis" {
                "/database"
            } else {
                "/redis"
            };
            let a = App::start(
                &format!("hung-{backend}"),
                &format!("{}{}{section}", server_section(), probes_section()),
            );
            let baseline = health_for(&a, Duration::from_millis(500));
            // The fault is there from the start: hammer, measure, check the budget holds.
            let r = under_fault(&a, &format!("/{backend}"), other);
            let body = a.get(&format!("/{backend}")).body;
            assert!(
                body.starts_with(&format!("ERROR: {stage}:")),
                "{backend}/{kind}: {body}"
            );
            judge(backend, kind, &baseline, &r, stage);
        }
    }
}
