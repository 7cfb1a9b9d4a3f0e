//! deploy/cloudformation.yaml: `cfn-lint` and checkov (the pinned venv) find nothing but the
//! findings the template justifies (and each does find a planted one); the template's defaults
//! are private (internal, HTTPS, no default range) and its AllowedPattern refuse shell
//! metacharacters and wildcards (evaluated here: moto does not enforce them). The stack is
//! created on moto's CloudFormation (the shared moto server) with its resources asserted: the ASG
//! on the launch template with ELB health checks, the launch template's IMDSv2-only metadata and
//! encrypted root volume, the AL2023 AMI from the public SSM parameter, the HTTPS listener with
//! its certificate and TLS policy and the 301 redirect, the Cognito or OIDC sign-in with /health
//! and /ready left open, the plain HTTP opt-in, the least-privilege role. The launch template's
//! user-data, as moto rendered it, is run by the user-data harness: it installs the binary the
//! stack names and signals SUCCESS once `/health` answered; a wrong digest, a rejected config or
//! a silent /health signal FAILURE with the reason (recorded by a `cfn-signal` stand-in, or an
//! `aws` one for the CLI's signal-resource: the AWS side is not reachable here). A ConfigKey
//! holding shell code stays data in the rendered user-data.

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

/// checkov (the pinned venv, scripts/checkov.lock) on a directory of templates, offline: its JSON
/// report, and (check id, file name) of each failure.
fn checkov(dir: &Path) -> (Value, Vec<(String, String)>) {
    let report = checkov_report("cloudformation", dir);
    let failed = report["results"]["failed_checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["check_id"].as_str().unwrap().to_string(),
                        c["file_path"]
                            .as_str()
                            .unwrap()
                            .trim_start_matches('/')
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (report, failed)
}

#[test]
fn checkov_finds_only_justified_findings_and_catches_planted_ones() {
    let started = Instant::now();
    let (report, failed) = checkov(&repo("deploy"));
    assert_eq!(
        failed,
        [] as [(String, String); 0],
        "checkov on deploy/: {report:#}"
    );
    assert!(
        report["summary"]["passed"].as_u64().unwrap() >= 15,
        "{:#}",
        report["summary"]
    );
    // Every skip carries its reason in the template.
    let skipped = report["results"]["skipped_checks"].as_array().unwrap();
    for s in skipped {
        let why = s["check_result"]["suppress_comment"].as_str().unwrap_or("");
        assert!(why.len() > 40, "a skip without its reason: {s:#}");
    }
    let skipped_ids: Vec<&str> = skipped
        .iter()
        .map(|s| s["check_id"].as_str().unwrap())
        .collect();
    assert_eq!(skipped_ids, ["CKV_AWS_91"], "the access-log skip only");

    // The control: the template with one safeguard undone each, in one directory, one run.
    let original = std::fs::read_to_string(repo(TEMPLATE)).unwrap();
    let planted = scratch_dir("checkov-planted");
    let plants = [
        // The range open to the world again by default.
        (
            "open-range.yaml",
            "    ConstraintDescription: an IPv4 CIDR block such as 10.0.0.0/16\n",
            "    ConstraintDescription: an IPv4 CIDR block such as 10.0.0.0/16\n    Default: 0.0.0.0/0\n",
            "CKV_AWS_260",
        ),
        // TLS 1.0 and 1.1 allowed again.
        (
            "old-tls.yaml",
            "SslPolicy: ELBSecurityPolicy-TLS13-1-2-2021-06",
            "SslPolicy: ELBSecurityPolicy-2016-08",
            "CKV_AWS_103",
        ),
        // Invalid header fields passed to the instances again.
        (
            "headers.yaml",
            "routing.http.drop_invalid_header_fields.enabled\n          Value: \"true\"",
            "routing.http.drop_invalid_header_fields.enabled\n          Value: \"false\"",
            "CKV_AWS_131",
        ),
        // The skip is what silences the access-log finding: without it, checkov reports it.
        (
            "no-skip.yaml",
            "          - id: CKV_AWS_91\n",
            "          - id: CKV_AWS_0\n",
            "CKV_AWS_91",
        ),
    ];
    for (file, from, to, _) in &plants {
        assert_eq!(original.matches(from).count(), 1, "{file}: {from}");
        std::fs::write(planted.join(file), original.replacen(from, to, 1)).unwrap();
    }
    let (_, failed) = checkov(&planted);
    let mut want: Vec<(String, String)> = plants
        .iter()
        .map(|(file, _, _, id)| (id.to_string(), file.to_string()))
        .collect();
    want.sort();
    let mut got = failed;
    got.sort();
    assert_eq!(got, want, "each planted finding, and only it");
    eprintln!("checkov, twice: {:?}", started.elapsed());
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

/// The template as CloudFormation reads it (tests/harness/cfn_template.py), and for each
/// (parameter, value) whether the parameter's AllowedPattern accepts the value.
fn read_template(checks: &[(&str, &str)]) -> (Value, Vec<bool>) {
    let out = Command::new(venv_bin("python"))
        .arg(repo("tests/harness/cfn_template.py"))
        .arg(repo(TEMPLATE))
        .arg(serde_json::to_string(checks).unwrap())
        .output()
        .expect("run cfn_template.py with the venv's python");
    assert!(
        out.status.success(),
        "cfn_template.py: {}",
        text(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let matches = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[2].as_bool().unwrap())
        .collect();
    (v["template"].clone(), matches)
}

/// Parameters every stack here needs: the allowed range has no default, and HTTPS needs a
/// certificate (cfn_stack.py imports one into moto's ACM for "IMPORT").
fn params(extra: Value) -> Value {
    let mut p = serde_json::json!({
        "AllowedCidr": "10.0.0.0/16",
        "CertificateArn": "IMPORT",
    });
    p.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    p
}

fn resource_types(report: &Value) -> Vec<String> {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r[0].as_str().unwrap(), r[1].as_str().unwrap()))
        .collect()
}

/// The HEALTH_WAIT_SECS default of user-data.sh, in seconds.
fn user_data_health_wait() -> u64 {
    let script = std::fs::read_to_string(repo("user-data.sh")).unwrap();
    script
        .lines()
        .find_map(|l| l.strip_prefix("HEALTH_WAIT_SECS=\"${HEALTH_WAIT_SECS:-"))
        .and_then(|l| l.strip_suffix("}\""))
        .expect("HEALTH_WAIT_SECS default in user-data.sh")
        .parse()
        .unwrap()
}

/// What every stack has, whatever the parameters; `cidr` is the stack's AllowedCidr,
/// `listeners` are the listener resources the
/// parameters select, `rule` whether the sign-in's HealthRule is there.
fn assert_fleet_shape(report: &Value, cidr: &str, listeners: &[&str], rule: bool) {
    let mut want = vec![
        "AWS::AutoScaling::AutoScalingGroup AutoScalingGroup".to_string(),
        "AWS::EC2::LaunchTemplate LaunchTemplate".into(),
        "AWS::EC2::SecurityGroup InstanceSecurityGroup".into(),
        "AWS::EC2::SecurityGroup LoadBalancerSecurityGroup".into(),
        "AWS::ElasticLoadBalancingV2::LoadBalancer LoadBalancer".into(),
        "AWS::ElasticLoadBalancingV2::TargetGroup TargetGroup".into(),
        "AWS::IAM::InstanceProfile InstanceProfile".into(),
        "AWS::IAM::Role InstanceRole".into(),
    ];
    want.extend(
        listeners
            .iter()
            .map(|l| format!("AWS::ElasticLoadBalancingV2::Listener {l}")),
    );
    if rule {
        want.push("AWS::ElasticLoadBalancingV2::ListenerRule HealthRule".into());
    }
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
    // The root volume is encrypted gp3, whatever the account's EBS default.
    assert_eq!(
        lt["BlockDeviceMappings"],
        serde_json::json!([{"DeviceName": "/dev/xvda", "Ebs": {
            "Encrypted": true, "DeleteOnTermination": true, "VolumeSize": 8, "VolumeType": "gp3"}}]),
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

    // The balancer's security group: 443 and 80 from AllowedCidr (`cidr`) only.
    let sg = &report["security_groups"]["LoadBalancerSecurityGroup"];
    let mut open: Vec<(u64, &str)> = sg
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["IpRanges"].as_array().unwrap().iter().map(move |r| {
                (
                    p["FromPort"].as_u64().unwrap(),
                    r["CidrIp"].as_str().unwrap(),
                )
            })
        })
        .collect();
    open.sort();
    assert_eq!(open, [(80, cidr), (443, cidr)], "{sg:#}");

    // The instances may signal this stack, and nothing else of CloudFormation.
    let policy = report["policy"].as_str().unwrap();
    let stack_id = report["stack_id"].as_str().unwrap();
    assert!(
        policy.contains(&format!(
            "'Action': 'cloudformation:SignalResource', 'Resource': '{stack_id}'"
        )),
        "SignalResource on {stack_id} only: {policy}"
    );
    assert_eq!(
        policy.matches("'Action': 'cloudformation:").count(),
        1,
        "{policy}"
    );
}

/// The HTTPS listener on 443 with the imported certificate and the TLS 1.2/1.3 policy, and the
/// 301 redirect to it on 80; returns the 443 listener.
fn assert_https(report: &Value) -> &Value {
    let l = &report["listeners"];
    let https = &l["443"];
    assert_eq!(https["Protocol"], "HTTPS", "{l:#}");
    assert_eq!(https["SslPolicy"], "ELBSecurityPolicy-TLS13-1-2-2021-06");
    assert_eq!(
        https["Certificates"],
        serde_json::json!([report["certificate_arn"]])
    );
    assert_eq!(l["80"]["Protocol"], "HTTP");
    assert_eq!(
        l["80"]["DefaultActions"],
        serde_json::json!([{"Type": "redirect", "RedirectConfig": {
            "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]),
        "{l:#}"
    );
    assert_eq!(l.as_object().unwrap().len(), 2, "{l:#}");
    assert_eq!(
        report["outputs"]["URL"],
        format!(
            "https://{}/",
            report["load_balancer"]["DNSName"].as_str().unwrap()
        )
    );
    https
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

/// The settings a rendered prefix sets, as bash sees them once it has run.
fn prefix_settings(prefix: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{prefix}\nfor v in BUCKET CONFIG_KEY BINARY_KEY SHA256 REGION APP_PORT CFN_STACK \
             CFN_RESOURCE; do printf '%s=%s\\n' \"$v\" \"${{!v}}\"; done"
        ))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// One call a recorder stand-in (cfn-signal, or the AWS CLI's cloudformation commands) received:
/// its arguments, what `/health` answered at that moment, and whether AWS_ENDPOINT_URL was set.
#[derive(Debug)]
struct Signal {
    program: String,
    args: Vec<String>,
    health: String,
    endpoint: String,
}

impl Signal {
    fn arg(&self, flag: &str) -> Option<&str> {
        let i = self.args.iter().position(|a| a == flag)?;
        self.args.get(i + 1).map(String::as_str)
    }
}

/// Installs the recorders in `vm`: `cfn-signal` on PATH (when `with_cfn_signal`), an `aws`
/// that records `cloudformation` calls and runs the real CLI for everything else, and a
/// `journalctl` reading the fake service manager's console (the journal of this scratch
/// root). Returns the settings that point user-data at them.
fn recorders(vm: &Instance, health: &str, with_cfn_signal: bool) -> Vec<(&'static str, String)> {
    let record = vm.scratch.join("signals");
    let body = |program: &str| {
        format!(
            "{{ echo 'call {program}'; for a in \"$@\"; do printf 'arg %s\\n' \"$a\"; done\n\
             printf 'health %s\\n' \"$(curl -s --max-time 2 '{health}' || echo none)\"\n\
             printf 'endpoint %s\\n' \"${{AWS_ENDPOINT_URL:-unset}}\"; echo end; }} >>'{}'\n",
            record.display()
        )
    };
    if with_cfn_signal {
        write_exec(
            &vm.bin_dir.join("cfn-signal"),
            &format!("#!/bin/bash\n{}", body("cfn-signal")),
        );
    }
    let aws = vm.scratch.join("aws-recorder");
    write_exec(
        &aws,
        &format!(
            "#!/bin/bash\nfor a in \"$@\"; do\n  if [[ $a == cloudformation ]]; then\n{}  exit 0\n  fi\ndone\nexec {AWS_CLI} \"$@\"\n",
            body("aws")
        ),
    );
    let journalctl = vm.scratch.join("journalctl");
    write_exec(
        &journalctl,
        &format!(
            "#!/bin/sh\ntail -n 5 '{}'\n",
            vm.root.join("var/log/suaicloudapp.console").display()
        ),
    );
    vec![
        ("AWS", aws.display().to_string()),
        ("JOURNALCTL", journalctl.display().to_string()),
    ]
}

fn signals(vm: &Instance) -> Vec<Signal> {
    let log = std::fs::read_to_string(vm.scratch.join("signals")).unwrap_or_default();
    let mut out = Vec::new();
    let mut cur: Option<Signal> = None;
    for line in log.lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        match (k, cur.as_mut()) {
            ("call", _) => {
                cur = Some(Signal {
                    program: v.into(),
                    args: vec![],
                    health: String::new(),
                    endpoint: String::new(),
                })
            }
            ("arg", Some(s)) => s.args.push(v.into()),
            ("health", Some(s)) => s.health = v.into(),
            ("endpoint", Some(s)) => s.endpoint = v.into(),
            ("end", Some(_)) => out.push(cur.take().unwrap()),
            _ => panic!("signals record: {line}"),
        }
    }
    out
}

/// The one cfn-signal call, for this stack's group and instance, never through the S3 endpoint.
fn one_cfn_signal(vm: &Instance, report: &Value, out: &str) -> Signal {
    let mut calls = signals(vm);
    assert_eq!(calls.len(), 1, "one signal: {calls:?}\n{out}");
    let s = calls.pop().unwrap();
    assert_eq!(s.program, "cfn-signal", "{s:?}");
    let stack = report["stack_id"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap();
    assert_eq!(s.arg("--stack"), Some(stack), "{s:?}");
    assert_eq!(s.arg("--resource"), Some("AutoScalingGroup"), "{s:?}");
    assert_eq!(s.arg("--region"), Some("us-east-1"), "{s:?}");
    assert_eq!(s.arg("--id"), Some("i-0123456789abcdef0"), "{s:?}");
    assert_eq!(s.endpoint, "unset", "{s:?}");
    s
}

fn health(addr: SocketAddr) -> Resp {
    send_raw(
        addr,
        b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
}

#[test]
fn x86_64_stack_on_moto_is_private_and_https_and_its_user_data_signals_success_after_health() {
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

    // Scheme and PlainHttp are left at their defaults: private and HTTPS.
    let report = create_stack(params(serde_json::json!({
        "Architecture": "x86_64",
        "ConfigBucket": bucket,
        "ConfigKey": config_key,
        "BinaryKey": binary_key,
        "BinarySha256": digest,
        "ProbeS3Bucket": bucket,
        "AppPort": port,
    })));
    eprintln!(
        "x86_64 stack CREATE_COMPLETE on moto in {} s: {}",
        report["seconds"],
        resource_types(&report).join(", ")
    );
    assert_fleet_shape(
        &report,
        "10.0.0.0/16",
        &["HttpsListener", "RedirectListener"],
        false,
    );
    assert_eq!(report["load_balancer"]["Scheme"], "internal");
    let https = assert_https(&report);
    // No sign-in: the listener forwards, and no rule is needed.
    let tg_arn = &report["target_group"]["TargetGroupArn"];
    assert_eq!(
        https["DefaultActions"],
        serde_json::json!([{"Type": "forward", "TargetGroupArn": tg_arn}])
    );
    assert_eq!(https["Rules"], serde_json::json!([]));
    assert_eq!(report["target_group"]["Port"], port);
    let lt = &report["launch_template"];
    assert_eq!(lt["InstanceType"], "t3.micro");
    assert_eq!(lt["ImageId"], report["ami"]["x86_64"], "AL2023 x86_64 AMI");
    assert_eq!(report["target_group"]["HealthCheckPath"], "/health");

    // Least privilege: the two objects, the probed bucket, the stack's signal, nothing else.
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
        "secretsmanager:",
        "ssm:",
        "kms:",
        "rds-db:",
        "elasticache:",
        "s3:*",
        "'*'",
        "\"*\"",
    ] {
        assert!(!policy.contains(absent), "{absent} granted: {policy}");
    }

    // The user-data: settings from the parameters, then user-data.sh exactly.
    let (prefix, user_data) = split_user_data(&report);
    let stack = report["stack_id"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap();
    assert_eq!(
        prefix_settings(&prefix),
        format!(
            "BUCKET={bucket}\nCONFIG_KEY={config_key}\nBINARY_KEY={binary_key}\nSHA256={digest}\n\
             REGION=us-east-1\nAPP_PORT={port}\nCFN_STACK={stack}\nCFN_RESOURCE=AutoScalingGroup\n"
        ),
        "{prefix}"
    );
    assert!(prefix.starts_with("#!/bin/bash\n"), "{prefix}");

    // Run it as an instance of this stack would, cfn-signal recording what it would send.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let script = vm.scratch.join("stack-user-data");
    std::fs::write(&script, &user_data).unwrap();
    let settings = recorders(&vm, &format!("http://{addr}/health"), true);
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ok, out) = vm.run_script(&script, &settings);
    assert!(ok, "the stack's user-data failed:\n{out}");
    assert!(
        out.contains(&format!(
            "verified s3://{bucket}/{binary_key}: sha256 {digest}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("http://127.0.0.1:{port}/health answered: healthy")),
        "{out}"
    );
    let signal = one_cfn_signal(&vm, &report, &out);
    assert_eq!(signal.arg("--exit-code"), Some("0"), "SUCCESS: {signal:?}");
    assert_eq!(
        signal.health, "healthy",
        "the signal went out while /health answered: {signal:?}"
    );
    assert!(
        signal
            .arg("--reason")
            .is_some_and(|r| r.starts_with("suaicloudapp serving (suaicloudapp ")),
        "{signal:?}"
    );
    // The default port needs no capability: no drop-in.
    assert!(vm
        .installed("etc/systemd/system/suaicloudapp.service.d/low-port.conf")
        .is_none());

    let r = health(addr);
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));
    let r = send_raw(
        addr,
        b"GET /s3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.body.as_str()), (200, "OK"), "{r:?}");
    eprintln!(
        "x86_64 stack, user-data run, signal, /health: {:?}",
        started.elapsed()
    );
}

const DB_SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/suai/db-AbCdEf";
const REDIS_SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/suai/redis-GhIjKl";
const PG_PARAMETER: &str = "arn:aws:ssm:us-east-1:123456789012:parameter/prod/suai/pg-password";
const RDS_IAM_USER: &str =
    "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKL01234/iam_app";
const CACHE_ARN: &str = "arn:aws:elasticache:us-east-1:123456789012:replicationgroup:suai-redis";
const CACHE_USER_ARN: &str = "arn:aws:elasticache:us-east-1:123456789012:user:iam-user-01";
const SECRETS_KEY: &str =
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

#[test]
fn arm64_internet_facing_stack_with_cognito_sign_in_leaves_health_and_ready_open() {
    let started = Instant::now();
    let pool = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbC123xyz";
    let report = create_stack(params(serde_json::json!({
        "Architecture": "arm64",
        "ConfigBucket": "fleet-config",
        "BinarySha256": "AB".repeat(32),
        "Scheme": "internet-facing",
        "AllowedCidr": "203.0.113.0/24",
        "HealthCheckPath": "/ready",
        "ProbeDynamoDbTable": "sessions",
        "CognitoUserPoolArn": pool,
        "CognitoUserPoolClientId": "4l1ceclient0id",
        "CognitoUserPoolDomain": "suai-login",
        "SecretArns": format!("{DB_SECRET},{REDIS_SECRET}"),
        "SecretParameterArns": PG_PARAMETER,
        "SecretsKmsKeyArn": SECRETS_KEY,
        "RdsIamDbUserArns": RDS_IAM_USER,
        "ElastiCacheIamArns": format!("{CACHE_ARN},{CACHE_USER_ARN}"),
    })));
    assert_eq!(report["load_balancer"]["Scheme"], "internet-facing");
    let lt = &report["launch_template"];
    assert_eq!(lt["InstanceType"], "t4g.micro");
    assert_eq!(lt["ImageId"], report["ami"]["arm64"], "AL2023 arm64 AMI");
    assert_ne!(report["ami"]["arm64"], report["ami"]["x86_64"]);
    assert_eq!(report["target_group"]["HealthCheckPath"], "/ready");
    assert_eq!(report["target_group"]["Port"], 8080);

    // Every path authenticates first; /health and /ready forward without (priority 1).
    let l = &report["listeners"];
    let tg_arn = &report["target_group"]["TargetGroupArn"];
    let https = &l["443"];
    assert_eq!(https["Protocol"], "HTTPS");
    assert_eq!(
        https["DefaultActions"],
        serde_json::json!([
            {"Type": "authenticate-cognito", "Order": 1, "AuthenticateCognitoConfig": {
                "UserPoolArn": pool, "UserPoolClientId": "4l1ceclient0id",
                "UserPoolDomain": "suai-login"}},
            {"Type": "forward", "TargetGroupArn": tg_arn},
        ]),
        "{l:#}"
    );
    assert_eq!(
        https["Rules"],
        serde_json::json!([{"Priority": "1", "Conditions": [{"Field": "path-pattern",
            "PathPatternConfig": {"Values": ["/health", "/ready"]}}],
            "Actions": [{"Type": "forward", "TargetGroupArn": tg_arn}]}]),
        "{l:#}"
    );
    // The balancer's ARN is an output: config.toml's [auth] alb_arn checks the token's signer.
    assert_eq!(
        report["outputs"]["LoadBalancerArn"],
        report["load_balancer"]["LoadBalancerArn"]
    );

    let policy = report["policy"].as_str().unwrap();
    for want in [
        "arn:aws:s3:::fleet-config/suaicloudapp/config.toml",
        "arn:aws:s3:::fleet-config/suaicloudapp/suaicloudapp-aarch64-unknown-linux-musl",
        "dynamodb:GetItem",
        "arn:aws:dynamodb:us-east-1:123456789012:table/sessions",
        // The referenced secrets, each by its ARN; the key only through the two services.
        "secretsmanager:GetSecretValue",
        DB_SECRET,
        REDIS_SECRET,
        "ssm:GetParameter",
        PG_PARAMETER,
        "kms:Decrypt",
        SECRETS_KEY,
        "secretsmanager.us-east-1.amazonaws.com",
        "ssm.us-east-1.amazonaws.com",
        "rds-db:connect",
        RDS_IAM_USER,
        "elasticache:Connect",
        CACHE_ARN,
        CACHE_USER_ARN,
    ] {
        assert!(policy.contains(want), "{want} missing: {policy}");
    }
    assert!(!policy.contains("s3:ListBucket"), "no [s3] probe: {policy}");
    let (prefix, _) = split_user_data(&report);
    let settings = prefix_settings(&prefix);
    assert!(
        settings.contains("\nBINARY_KEY=suaicloudapp/suaicloudapp-aarch64-unknown-linux-musl\n")
            && settings.contains(&format!("\nSHA256={}\n", "AB".repeat(32)))
            && settings.contains("\nAPP_PORT=8080\n"),
        "{settings}"
    );
    assert_fleet_shape(
        &report,
        "203.0.113.0/24",
        &["HttpsListener", "RedirectListener"],
        true,
    );
    eprintln!("arm64 Cognito stack: {:?}", started.elapsed());
}

#[test]
fn oidc_sign_in_and_the_plain_http_opt_in_on_moto() {
    let started = Instant::now();
    let report = create_stack(params(serde_json::json!({
        "ConfigBucket": "fleet-config",
        "BinarySha256": "cd".repeat(32),
        "OidcIssuer": "https://login.example.com",
        "OidcAuthorizationEndpoint": "https://login.example.com/oauth2/authorize",
        "OidcTokenEndpoint": "https://login.example.com/oauth2/token",
        "OidcUserInfoEndpoint": "https://login.example.com/oauth2/userinfo",
        "OidcClientId": "suaicloudapp-web",
        "OidcClientSecret": "planted-oidc-secret-7Qx",
    })));
    assert_fleet_shape(
        &report,
        "10.0.0.0/16",
        &["HttpsListener", "RedirectListener"],
        true,
    );
    assert_eq!(report["load_balancer"]["Scheme"], "internal");
    let https = assert_https(&report);
    let actions = &https["DefaultActions"];
    assert_eq!(actions[0]["Type"], "authenticate-oidc", "{actions:#}");
    assert_eq!(actions[0]["Order"], 1);
    let oidc = &actions[0]["AuthenticateOidcConfig"];
    assert_eq!(oidc["Issuer"], "https://login.example.com");
    assert_eq!(oidc["ClientId"], "suaicloudapp-web");
    assert_eq!(actions[1]["Type"], "forward", "{actions:#}");
    assert_eq!(
        https["Rules"][0]["Conditions"][0]["PathPatternConfig"]["Values"],
        serde_json::json!(["/health", "/ready"])
    );
    // The secret never lands in the user-data.
    assert!(!report["user_data"]
        .as_str()
        .unwrap()
        .contains("planted-oidc-secret-7Qx"));

    // PlainHttp=true: one HTTP:80 listener forwarding, no certificate, an http:// URL.
    let report = create_stack(serde_json::json!({
        "AllowedCidr": "10.0.0.0/16",
        "PlainHttp": "true",
        "ConfigBucket": "fleet-config",
        "BinarySha256": "cd".repeat(32),
    }));
    assert_fleet_shape(&report, "10.0.0.0/16", &["PlainHttpListener"], false);
    assert_eq!(report["load_balancer"]["Scheme"], "internal");
    let l = &report["listeners"];
    assert_eq!(l.as_object().unwrap().len(), 1, "{l:#}");
    assert_eq!(l["80"]["Protocol"], "HTTP");
    assert_eq!(
        l["80"]["DefaultActions"],
        serde_json::json!([{"Type": "forward",
            "TargetGroupArn": report["target_group"]["TargetGroupArn"]}])
    );
    assert_eq!(
        report["outputs"]["URL"],
        format!(
            "http://{}/",
            report["load_balancer"]["DNSName"].as_str().unwrap()
        )
    );
    eprintln!("OIDC and plain HTTP stacks: {:?}", started.elapsed());
}

/// The defaults and constraints an operator relies on, read from the template as CloudFormation
/// reads it; and what moto does not model (it ignores Rules, UpdatePolicy, CreationPolicy, the
/// load balancer's attributes and AllowedPattern).
#[test]
fn template_defaults_are_private_patterns_refuse_injection_and_updates_wait_for_signals() {
    let started = Instant::now();
    const INJECTION: &str = "'; touch /tmp/pwned; : '";
    let checks: Vec<(&str, &str)> = vec![
        ("ConfigKey", "suaicloudapp/config.toml"),
        ("ConfigKey", "team-a/prod/config=v2+eu@1.toml"),
        ("ConfigKey", INJECTION),
        ("ConfigKey", "a$(id)"),
        ("ConfigKey", "a`id`"),
        ("ConfigKey", "a b"),
        ("ConfigKey", "a;b"),
        ("ConfigKey", "a\"b"),
        ("ConfigKey", "suaicloudapp/*"),
        ("ConfigKey", "suaicloudapp/config.toml\ntouch x"),
        ("BinaryKey", ""),
        ("BinaryKey", "suaicloudapp/*"),
        ("ConfigBucket", "fleet-config"),
        ("ConfigBucket", "*"),
        ("ProbeS3Bucket", "*"),
        ("ProbeDynamoDbTable", "sessions"),
        ("ProbeDynamoDbTable", "*"),
        ("ProbeDynamoDbTable", "sess*"),
        ("ProbeKinesisStream", "*"),
        ("ProbeFirehoseStream", "*"),
        ("ProbeLambdaFunction", "*"),
        ("ProbeLambdaFunction", "fn?"),
        (
            "ProbeSnsTopicArn",
            "arn:aws:sns:us-east-1:123456789012:alerts",
        ),
        ("ProbeSnsTopicArn", "arn:aws:sns:us-east-1:123456789012:*"),
        ("ProbeSnsTopicArn", "*"),
        (
            "CertificateArn",
            "arn:aws:acm:us-east-1:123456789012:certificate/*",
        ),
        ("AllowedCidr", "10.0.0.0/16"),
        ("AllowedCidr", "10.0.0.0/16'; x"),
        (
            "SecretArns",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/suai/db-AbCdEf",
        ),
        (
            "SecretArns",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:*",
        ),
        ("SecretArns", "*"),
        (
            "SecretParameterArns",
            "arn:aws:ssm:us-east-1:123456789012:parameter/suai/redis-password",
        ),
        (
            "SecretParameterArns",
            "arn:aws:ssm:us-east-1:123456789012:parameter/*",
        ),
        ("SecretsKmsKeyArn", "*"),
        (
            "RdsIamDbUserArns",
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKL01234/iam_app",
        ),
        (
            "RdsIamDbUserArns",
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:*/*",
        ),
        (
            "ElastiCacheIamArns",
            "arn:aws:elasticache:us-east-1:123456789012:user:iam-user-01",
        ),
        (
            "ElastiCacheIamArns",
            "arn:aws:elasticache:us-east-1:123456789012:user:*",
        ),
    ];
    let (t, matches) = read_template(&checks);
    let verdicts: Vec<String> = checks
        .iter()
        .zip(&matches)
        .map(|((p, v), m)| format!("{p}={v:?}: {}", if *m { "accepted" } else { "refused" }))
        .collect();
    let accepted = [0, 1, 10, 12, 15, 22, 26, 28, 31, 34, 36];
    for (i, verdict) in verdicts.iter().enumerate() {
        assert_eq!(
            matches[i],
            accepted.contains(&i),
            "{verdict}\n{}",
            verdicts.join("\n")
        );
    }

    // Every String parameter has AllowedPattern or AllowedValues, and a description of the
    // constraint when it is a pattern; the client secret is never echoed.
    let params = t["Parameters"].as_object().unwrap();
    for (name, p) in params {
        if p["Type"] == "String" {
            assert!(
                p.get("AllowedPattern").is_some() || p.get("AllowedValues").is_some(),
                "{name} accepts anything: {p:#}"
            );
            if p.get("AllowedPattern").is_some() {
                assert!(p.get("ConstraintDescription").is_some(), "{name}: {p:#}");
            }
        }
    }
    assert_eq!(params["Scheme"]["Default"], "internal");
    assert!(
        params["AllowedCidr"].get("Default").is_none(),
        "no default range"
    );
    assert_eq!(params["PlainHttp"]["Default"], "false");
    assert_eq!(params["OidcClientSecret"]["NoEcho"], true);

    // The rules that keep the opt-ins apart (moto does not evaluate Rules; CloudFormation does).
    let rules = t["Rules"].as_object().unwrap();
    for rule in [
        "CertificateUnlessPlainHttp",
        "PlainHttpStaysPrivate",
        "OneSignIn",
        "CognitoComplete",
        "OidcComplete",
    ] {
        assert!(rules.contains_key(rule), "Rules: {rule} missing");
    }

    // The balancer drops invalid header fields; access logs follow AccessLogBucket.
    let lb = &t["Resources"]["LoadBalancer"]["Properties"]["LoadBalancerAttributes"];
    assert!(
        lb.as_array().unwrap().contains(&serde_json::json!(
            {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"})),
        "{lb:#}"
    );
    assert!(lb.to_string().contains("access_logs.s3.enabled"), "{lb:#}");

    // Creation waits for a signal from each instance; a rolling update replaces one at a time,
    // waits for its signal, and the wait outlasts the unit's start plus user-data's /health wait.
    let asg = &t["Resources"]["AutoScalingGroup"];
    let signal = &asg["CreationPolicy"]["ResourceSignal"];
    assert_eq!(
        signal["Count"],
        serde_json::json!({"Ref": "DesiredCapacity"})
    );
    let rolling = &asg["UpdatePolicy"]["AutoScalingRollingUpdate"];
    assert_eq!(rolling["WaitOnResourceSignals"], true, "{rolling:#}");
    assert_eq!(rolling["MaxBatchSize"], 1, "{rolling:#}");
    let minutes = |iso: &Value| -> u64 {
        let s = iso.as_str().unwrap();
        s.strip_prefix("PT")
            .and_then(|m| m.strip_suffix('M'))
            .unwrap_or_else(|| panic!("{s}: PT<minutes>M expected"))
            .parse()
            .unwrap()
    };
    let needed = unit_start_timeout() + user_data_health_wait();
    for wait in [&rolling["PauseTime"], &signal["Timeout"]] {
        assert!(
            minutes(wait) * 60 > needed,
            "{wait} must outlast the unit's start and the /health wait ({needed} s)"
        );
    }
    let suspended = rolling["SuspendProcesses"].to_string();
    for p in ["HealthCheck", "ReplaceUnhealthy", "AZRebalance"] {
        assert!(suspended.contains(p), "{p} not suspended: {suspended}");
    }
    eprintln!(
        "template read, {} patterns: {:?}",
        checks.len(),
        started.elapsed()
    );
}

#[test]
fn config_key_injection_stays_data_in_the_rendered_user_data() {
    let started = Instant::now();
    // moto does not enforce AllowedPattern (the test above shows CloudFormation's pattern
    // refuses this key): so the stack is created with it, and its user-data rendered by Fn::Sub
    // holds the injection exactly as CloudFormation would paste it.
    let scratch = scratch_dir("cfn-inject");
    let marker = scratch.join("pwned");
    let injection = format!("'; touch {}; : '", marker.display());
    let report = create_stack(params(serde_json::json!({
        "ConfigBucket": "fleet-config",
        "ConfigKey": injection,
        "BinarySha256": "ef".repeat(32),
    })));
    let (prefix, _) = split_user_data(&report);
    assert!(prefix.contains(&injection), "rendered as given: {prefix}");
    let settings = prefix_settings(&prefix);
    assert!(
        !marker.exists(),
        "the ConfigKey ran as shell code:\n{prefix}"
    );
    assert!(
        settings.contains(&format!("\nCONFIG_KEY={injection}\n")),
        "CONFIG_KEY holds the value as data: {settings}"
    );
    eprintln!("injection: {:?}", started.elapsed());
}

#[test]
fn stack_user_data_signals_failure_with_the_reason() {
    let started = Instant::now();
    let bucket = env_var("SUAI_TEST_BUCKET");
    let digest = sha256_of(BIN.as_path());

    // 1. A digest that is not the binary's: refused, nothing installed, FAILURE and why.
    let mut vm = Instance::new("cfn-bad-digest");
    let port = closed_port();
    let config = vm.scratch.join("config.toml");
    std::fs::write(
        &config,
        format!("[server]\nhost = \"127.0.0.1\"\nport = {port}\n"),
    )
    .unwrap();
    let config_key = vm.upload(&config, "config.toml");
    let binary_key = vm.upload(BIN.as_path(), "suaicloudapp-x86_64");
    let wrong = "0".repeat(64);
    let report = create_stack(params(serde_json::json!({
        "Architecture": "x86_64",
        "ConfigBucket": bucket,
        "ConfigKey": config_key,
        "BinaryKey": binary_key,
        "BinarySha256": wrong,
        "AppPort": port,
    })));
    let (_, user_data) = split_user_data(&report);
    let script = vm.scratch.join("stack-user-data");
    std::fs::write(&script, &user_data).unwrap();
    let health_url = format!("http://127.0.0.1:{port}/health");
    let settings = recorders(&vm, &health_url, true);
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ok, out) = vm.run_script(&script, &settings);
    assert!(!ok, "a wrong digest must fail:\n{out}");
    let s = one_cfn_signal(&vm, &report, &out);
    assert_eq!(s.arg("--exit-code"), Some("1"), "FAILURE: {s:?}");
    let reason = s.arg("--reason").unwrap();
    assert!(
        reason.starts_with(&format!(
            "refusing s3://{bucket}/{binary_key}: its SHA-256 is {digest}, expected {wrong}"
        )),
        "{reason}"
    );
    assert!(vm.installed("usr/local/bin/suaicloudapp").is_none());
    drop(vm);

    // 2. A config the binary rejects, on a machine without cfn-signal: the AWS CLI signals
    // FAILURE (it has no reason field); the console and the journal carry the binary's error.
    let mut vm = Instance::new("cfn-bad-config");
    let port = closed_port();
    let config = vm.scratch.join("config.toml");
    std::fs::write(
        &config,
        format!("[server]\nhost = \"127.0.0.1\"\nport = {port}\nprot = 1\n"),
    )
    .unwrap();
    let config_key = vm.upload(&config, "config.toml");
    let binary_key = vm.upload(BIN.as_path(), "suaicloudapp-x86_64");
    let report = create_stack(params(serde_json::json!({
        "Architecture": "x86_64",
        "ConfigBucket": bucket,
        "ConfigKey": config_key,
        "BinaryKey": binary_key,
        "BinarySha256": digest,
        "AppPort": port,
    })));
    let (_, user_data) = split_user_data(&report);
    let script = vm.scratch.join("stack-user-data");
    std::fs::write(&script, &user_data).unwrap();
    let settings = recorders(&vm, &format!("http://127.0.0.1:{port}/health"), false);
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ok, out) = vm.run_script(&script, &settings);
    assert!(!ok, "a rejected config must fail:\n{out}");
    let calls = signals(&vm);
    assert_eq!(calls.len(), 1, "{calls:?}\n{out}");
    let s = &calls[0];
    let stack = report["stack_id"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap();
    assert_eq!(s.program, "aws");
    assert_eq!(
        s.args,
        [
            "--region",
            "us-east-1",
            "--only-show-errors",
            "cloudformation",
            "signal-resource",
            "--stack-name",
            stack,
            "--logical-resource-id",
            "AutoScalingGroup",
            "--unique-id",
            "i-0123456789abcdef0",
            "--status",
            "FAILURE"
        ],
        "{s:?}"
    );
    assert_eq!(s.endpoint, "unset", "not through the S3 endpoint: {s:?}");
    assert_eq!(s.health, "none", "{s:?}");
    let why = "suaicloudapp did not start: ";
    assert!(
        out.contains(why) && out.contains("unknown field `prot`"),
        "the reason on the console:\n{out}"
    );
    assert!(
        vm.journal().contains("unknown field `prot`"),
        "and in the journal: {}",
        vm.journal()
    );
    drop(vm);

    // 3. The service starts but /health does not answer where the stack says (AppPort is not
    // the config's port): FAILURE, not SUCCESS, once the wait is over.
    let mut vm = Instance::new("cfn-no-health");
    let port = closed_port();
    let config = vm.scratch.join("config.toml");
    std::fs::write(
        &config,
        format!("[server]\nhost = \"127.0.0.1\"\nport = {port}\n"),
    )
    .unwrap();
    let config_key = vm.upload(&config, "config.toml");
    let binary_key = vm.upload(BIN.as_path(), "suaicloudapp-x86_64");
    let wrong_port = closed_port();
    let report = create_stack(params(serde_json::json!({
        "Architecture": "x86_64",
        "ConfigBucket": bucket,
        "ConfigKey": config_key,
        "BinaryKey": binary_key,
        "BinarySha256": digest,
        "AppPort": wrong_port,
    })));
    let (_, user_data) = split_user_data(&report);
    let script = vm.scratch.join("stack-user-data");
    std::fs::write(&script, &user_data).unwrap();
    let mut settings = recorders(&vm, &format!("http://127.0.0.1:{port}/health"), true);
    settings.push(("HEALTH_WAIT_SECS", "3".into()));
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ok, out) = vm.run_script(&script, &settings);
    assert!(!ok, "no /health on AppPort must fail:\n{out}");
    let s = one_cfn_signal(&vm, &report, &out);
    assert_eq!(s.arg("--exit-code"), Some("1"), "FAILURE: {s:?}");
    let reason = s.arg("--reason").unwrap();
    assert!(
        reason.starts_with(&format!(
            "suaicloudapp is running but http://127.0.0.1:{wrong_port}/health did not answer \"healthy\" within 3 s"
        )) && reason.contains("is APP_PORT the config's [server] port?"),
        "{reason}"
    );
    // The service itself was up (on its own port) when that FAILURE went out.
    assert_eq!(s.health, "healthy", "{s:?}");
    eprintln!("three failing user-data runs: {:?}", started.elapsed());
}
