//! deploy/cloudformation.yaml: `cfn-lint` finds no error (and does find a planted one), and the
//! stack is created on moto's CloudFormation (the shared moto server) for both architectures with
//! its resources asserted: the ASG on the launch template with ELB health checks and a grace
//! period longer than the unit's start timeout, the launch template's IMDSv2-only metadata
//! options, the AL2023 AMI from the public SSM parameter, the target group's health check path,
//! the listener, the least-privilege role. Finally the launch template's user-data, as moto
//! stored it, is run by the user-data harness: it installs the binary the stack names, verified
//! by the stack's digest, and the service answers `/health`.

use harness::userdata::*;
use harness::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const TEMPLATE: &str = "deploy/cloudformation.yaml";

/// A program installed in the test environment's Python venv (next to moto_server).
fn venv_bin(name: &str) -> PathBuf {
    let moto = PathBuf::from(env_var("SUAI_TEST_MOTO_SERVER"));
    let bin = moto.parent().unwrap().join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/test-env.sh up",
        bin.display()
    );
    bin
}

fn cfn_lint(template: &Path) -> (bool, String) {
    let out = Command::new(venv_bin("cfn-lint"))
        .arg("--")
        .arg(template)
        .output()
        .expect("run cfn-lint");
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

#[test]
fn cfn_lint_passes_and_catches_a_planted_error() {
    let started = Instant::now();
    let (ok, said) = cfn_lint(&repo(TEMPLATE));
    assert!(ok && said.trim().is_empty(), "cfn-lint {TEMPLATE}:\n{said}");
    // The control: the same template with an invalid health check type is rejected.
    let original = std::fs::read_to_string(repo(TEMPLATE)).unwrap();
    assert_eq!(original.matches("HealthCheckType: ELB\n").count(), 1);
    let broken = scratch_dir("cfn-lint").join("broken.yaml");
    std::fs::write(
        &broken,
        original.replace("HealthCheckType: ELB\n", "HealthCheckType: ALB\n"),
    )
    .unwrap();
    let (ok, said) = cfn_lint(&broken);
    assert!(!ok && said.contains("ALB"), "cfn-lint missed it:\n{said}");
    eprintln!("cfn-lint, twice: {:?}", started.elapsed());
}

/// `TimeoutStartSec=` of the unit user-data.sh installs, in seconds.
fn unit_start_timeout() -> u64 {
    let unit = std::fs::read_to_string(repo("systemd/suaicloudapp.service")).unwrap();
    let value = unit
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("TimeoutStartSec="))
        .expect("TimeoutStartSec= in the unit");
    value
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("TimeoutStartSec={value}: not plain seconds"))
}

/// Creates the stack on moto with these parameters, returns what cfn_stack.py reported.
fn create_stack(params: Value) -> Value {
    let name = format!(
        "suai-fleet-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let out = Command::new(venv_bin("python"))
        .arg(repo("tests/harness/cfn_stack.py"))
        .arg(env_var("SUAI_TEST_MOTO_URL"))
        .arg(repo(TEMPLATE))
        .arg(&name)
        .arg(params.to_string())
        .output()
        .expect("run cfn_stack.py with the venv's python");
    assert!(
        out.status.success(),
        "create_stack {name}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("cfn_stack.py prints JSON");
    assert_eq!(report["status"], "CREATE_COMPLETE", "{report:#}");
    report
}

fn resource_types(report: &Value) -> Vec<String> {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r[0].as_str().unwrap(), r[1].as_str().unwrap()))
        .collect()
}

/// What every stack has, whatever the parameters.
fn assert_fleet_shape(report: &Value) {
    let mut want = vec![
        "AWS::AutoScaling::AutoScalingGroup AutoScalingGroup",
        "AWS::EC2::LaunchTemplate LaunchTemplate",
        "AWS::EC2::SecurityGroup InstanceSecurityGroup",
        "AWS::EC2::SecurityGroup LoadBalancerSecurityGroup",
        "AWS::ElasticLoadBalancingV2::Listener Listener",
        "AWS::ElasticLoadBalancingV2::LoadBalancer LoadBalancer",
        "AWS::ElasticLoadBalancingV2::TargetGroup TargetGroup",
        "AWS::IAM::InstanceProfile InstanceProfile",
        "AWS::IAM::Role InstanceRole",
    ];
    want.sort();
    assert_eq!(resource_types(report), want);

    let lt = &report["launch_template"];
    let md = &lt["MetadataOptions"];
    assert_eq!(md["HttpTokens"], "required", "IMDSv2 only: {lt:#}");
    assert_eq!(md["HttpPutResponseHopLimit"], 1, "{lt:#}");
    assert_eq!(md["HttpEndpoint"], "enabled", "{lt:#}");
    assert!(
        lt["IamInstanceProfile"]["Arn"]
            .as_str()
            .is_some_and(|a| a.contains(":instance-profile/")),
        "{lt:#}"
    );

    let asg = &report["asg"];
    assert_eq!(
        asg["LaunchTemplate"]["LaunchTemplateId"], report["launch_template_id"],
        "the ASG launches from the stack's template: {asg:#}"
    );
    assert_eq!(asg["HealthCheckType"], "ELB");
    let grace = asg["HealthCheckGracePeriod"].as_u64().unwrap();
    let start_timeout = unit_start_timeout();
    assert!(
        grace > start_timeout,
        "grace period {grace} s must exceed the unit's TimeoutStartSec={start_timeout}"
    );
    let tg_arn = &report["target_group"]["TargetGroupArn"];
    assert_eq!(asg["TargetGroupARNs"][0], *tg_arn);
    assert_eq!(report["target_group"]["Port"], 8080);
    assert_eq!(report["listener"]["TargetGroupArn"], *tg_arn);
    assert_eq!(report["listener"]["Port"], 80);
    assert_eq!(
        report["outputs"]["URL"],
        format!(
            "http://{}/",
            report["load_balancer"]["DNSName"].as_str().unwrap()
        )
    );
}

/// The user-data the stack renders: its settings lines, then user-data.sh unchanged.
fn split_user_data(report: &Value) -> (String, String) {
    let user_data = report["user_data"].as_str().unwrap();
    let script = std::fs::read_to_string(repo("user-data.sh")).unwrap();
    let prefix = user_data.strip_suffix(script.as_str()).unwrap_or_else(|| {
        panic!(
            "the launch template's user-data does not end with user-data.sh: run `make embed` \
             (scripts/sync-embedded.sh)\n{user_data}"
        )
    });
    (prefix.to_string(), user_data.to_string())
}

#[test]
fn x86_64_stack_on_moto_and_its_user_data_installs_the_verified_binary() {
    let started = Instant::now();
    let bucket = env_var("SUAI_TEST_BUCKET");
    let mut vm = Instance::new("cfn-x86");
    let port = closed_port();
    let config = vm.scratch.join("config.toml");
    std::fs::write(
        &config,
        format!("[server]\nhost = \"127.0.0.1\"\nport = {port}\n[s3]\nbucket = \"{bucket}\"\n[aws]\nendpoint_url = \"{}\"\n", env_var("SUAI_TEST_MOTO_URL")),
    )
    .unwrap();
    let config_key = vm.upload(&config, "config.toml");
    let binary_key = vm.upload(BIN.as_path(), "suaicloudapp-x86_64");
    let digest = sha256_of(BIN.as_path());

    let report = create_stack(serde_json::json!({
        "Architecture": "x86_64",
        "ConfigBucket": bucket,
        "ConfigKey": config_key,
        "BinaryKey": binary_key,
        "BinarySha256": digest,
        "ProbeS3Bucket": bucket,
    }));
    eprintln!(
        "x86_64 stack CREATE_COMPLETE on moto in {} s: {}",
        report["seconds"],
        resource_types(&report).join(", ")
    );
    assert_fleet_shape(&report);
    let lt = &report["launch_template"];
    assert_eq!(lt["InstanceType"], "t3.micro");
    assert_eq!(lt["ImageId"], report["ami"]["x86_64"], "AL2023 x86_64 AMI");
    assert_eq!(report["target_group"]["HealthCheckPath"], "/health");
    assert_eq!(report["load_balancer"]["Scheme"], "internet-facing");

    // Least privilege: the two objects, the probed bucket, nothing else.
    let policy = report["policy"].as_str().unwrap();
    for arn in [
        format!("arn:aws:s3:::{bucket}/{config_key}"),
        format!("arn:aws:s3:::{bucket}/{binary_key}"),
        format!("arn:aws:s3:::{bucket}"),
    ] {
        assert!(policy.contains(&arn), "{arn} missing: {policy}");
    }
    for absent in [
        "dynamodb:",
        "kinesis:",
        "firehose:",
        "sns:",
        "lambda:",
        "s3:*",
        "\"*\"",
    ] {
        assert!(!policy.contains(absent), "{absent} granted: {policy}");
    }

    // The user-data: settings from the parameters, then user-data.sh exactly.
    let (prefix, user_data) = split_user_data(&report);
    for line in [
        format!("export BUCKET='{bucket}'"),
        format!("export CONFIG_KEY='{config_key}'"),
        format!("export BINARY_KEY='{binary_key}'"),
        format!("export SHA256='{digest}'"),
        "export REGION='us-east-1'".to_string(),
    ] {
        assert!(
            prefix.lines().any(|l| l == line),
            "{line} missing:\n{prefix}"
        );
    }
    assert!(prefix.starts_with("#!/bin/bash\n"), "{prefix}");

    // Run it as an instance of this stack would.
    let script = vm.scratch.join("stack-user-data");
    std::fs::write(&script, &user_data).unwrap();
    let (ok, out) = vm.run_script(&script, &[]);
    assert!(ok, "the stack's user-data failed:\n{out}");
    assert!(
        out.contains(&format!(
            "verified s3://{bucket}/{binary_key}: sha256 {digest}"
        )),
        "{out}"
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let r = send_raw(
        addr,
        b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));
    let r = send_raw(
        addr,
        b"GET /s3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.body.as_str()), (200, "OK"), "{r:?}");
    eprintln!(
        "x86_64 stack, user-data run, /health: {:?}",
        started.elapsed()
    );
}

#[test]
fn arm64_internal_stack_on_moto_with_ready_checks_and_a_table() {
    let started = Instant::now();
    let report = create_stack(serde_json::json!({
        "Architecture": "arm64",
        "ConfigBucket": "fleet-config",
        "BinarySha256": "AB".repeat(32),
        "Scheme": "internal",
        "HealthCheckPath": "/ready",
        "ProbeDynamoDbTable": "sessions",
    }));
    assert_fleet_shape(&report);
    let lt = &report["launch_template"];
    assert_eq!(lt["InstanceType"], "t4g.micro");
    assert_eq!(lt["ImageId"], report["ami"]["arm64"], "AL2023 arm64 AMI");
    assert_ne!(report["ami"]["arm64"], report["ami"]["x86_64"]);
    assert_eq!(report["target_group"]["HealthCheckPath"], "/ready");
    assert_eq!(report["load_balancer"]["Scheme"], "internal");

    let policy = report["policy"].as_str().unwrap();
    for want in [
        "arn:aws:s3:::fleet-config/suaicloudapp/config.toml",
        "arn:aws:s3:::fleet-config/suaicloudapp/suaicloudapp-aarch64-unknown-linux-musl",
        "dynamodb:GetItem",
        "arn:aws:dynamodb:us-east-1:123456789012:table/sessions",
    ] {
        assert!(policy.contains(want), "{want} missing: {policy}");
    }
    assert!(!policy.contains("s3:ListBucket"), "no [s3] probe: {policy}");
    let (prefix, _) = split_user_data(&report);
    assert!(
        prefix
            .contains("export BINARY_KEY='suaicloudapp/suaicloudapp-aarch64-unknown-linux-musl'\n")
            && prefix.contains(&format!("export SHA256='{}'\n", "AB".repeat(32))),
        "{prefix}"
    );
    eprintln!("arm64 stack: {:?}", started.elapsed());
}
