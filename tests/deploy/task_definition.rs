//! examples/flask-ecs-firehose/task-definition.json: registered on the shared moto's ECS with
//! boto3 (the test environment's venv) and read back, so a typo in a key ECS knows fails here.
//! The task role is created on moto's IAM with the example's policy, under the ARN the task
//! definition names.

use harness::env_var;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// argv: moto URL, task definition file, policy file. Prints the described task definition.
const REGISTER: &str = r#"
import json, sys, boto3
url, td_path, policy_path = sys.argv[1:4]
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
td = json.load(open(td_path))
iam = boto3.client("iam", **kw)
role = td["taskRoleArn"].split("/")[-1]
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
         "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
try:
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
except iam.exceptions.EntityAlreadyExistsException:
    pass
iam.put_role_policy(RoleName=role, PolicyName="suaicloudapp-pages",
                    PolicyDocument=open(policy_path).read())
role_arn = iam.get_role(RoleName=role)["Role"]["Arn"]
ecs = boto3.client("ecs", **kw)
arn = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
got = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
print(json.dumps({"role_arn": role_arn, "task": got}, default=str))
"#;

fn venv_python() -> PathBuf {
    let moto = env_var("SUAI_TEST_MOTO_SERVER");
    let python = Path::new(&moto).with_file_name("python");
    assert!(
        python.is_file(),
        "{} missing: run scripts/test-env.sh up",
        python.display()
    );
    python
}

#[test]
fn the_example_task_definition_registers_and_reads_back() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flask-ecs-firehose");
    let out = Command::new(venv_python())
        .args(["-c", REGISTER, &env_var("SUAI_TEST_MOTO_URL")])
        .arg(dir.join("task-definition.json"))
        .arg(dir.join("iam-policy.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "register_task_definition failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let task = &doc["task"];
    assert_eq!(task["family"], "flask-ecs-firehose");
    assert_eq!(
        task["taskRoleArn"], doc["role_arn"],
        "the task role is the example's"
    );
    assert!(task["executionRoleArn"]
        .as_str()
        .unwrap()
        .contains(":role/"));
    assert_eq!(
        task["requiresCompatibilities"],
        serde_json::json!(["FARGATE"])
    );
    assert_eq!(task["networkMode"], "awsvpc");

    let containers = task["containerDefinitions"].as_array().unwrap();
    assert_eq!(containers.len(), 2, "the app and the sidecar");
    let sidecar = containers
        .iter()
        .find(|c| c["name"] == "suaicloudapp")
        .expect("the suaicloudapp sidecar");
    assert_eq!(
        sidecar["healthCheck"]["command"],
        serde_json::json!(["CMD", "/suaicloudapp", "healthcheck"])
    );
    assert_eq!(sidecar["portMappings"][0]["containerPort"], 8080);
    let config = sidecar["environment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SUAICLOUDAPP_CONFIG")
        .expect("SUAICLOUDAPP_CONFIG");
    assert!(config["value"].as_str().unwrap().starts_with("s3://"));
    assert_eq!(sidecar["logConfiguration"]["logDriver"], "awslogs");
    assert_eq!(
        sidecar["essential"], false,
        "a failing sidecar must not stop the app"
    );

    // The config object the sidecar fetches is one the task role may read.
    let policy = std::fs::read_to_string(dir.join("iam-policy.json")).unwrap();
    let key = config["value"]
        .as_str()
        .unwrap()
        .trim_start_matches("s3://");
    assert!(
        policy.contains(&format!("arn:aws:s3:::{key}")),
        "the policy lacks s3:GetObject on {key}"
    );
}
