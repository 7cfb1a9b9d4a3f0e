"""Creates deploy/cloudformation.yaml as a stack on moto's CloudFormation and reports what it built.

Used by tests/deploy/cloudformation.rs (run with the moto venv's python, which has boto3):
    python cfn_stack.py ENDPOINT TEMPLATE STACK_NAME PARAMS_JSON
PARAMS_JSON holds the stack parameters; VpcId and both subnet lists default to moto's default VPC
and two of its subnets. A CertificateArn of "IMPORT" is replaced by the ARN of a self-signed
certificate imported into moto's ACM for this stack (moto's ELBv2 refuses an HTTPS listener whose
certificate ACM does not hold). Prints one JSON object (status, resources, launch template data
with its user-data decoded, the ASG, target group, load balancer and its attributes, listeners
and their rules, security groups, role policy, outputs and the public SSM AMI parameters), then
deletes the stack and the certificate, also when something failed.
"""
import datetime
import base64
import json
import sys
import time

import boto3

endpoint, template_path, name, params_json = sys.argv[1:5]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
ec2 = boto3.client("ec2", **kw)
cfn = boto3.client("cloudformation", **kw)

vpc = next(v for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault"))
subnets = [s["SubnetId"] for s in ec2.describe_subnets(
    Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]][:2]
params = {"VpcId": vpc["VpcId"], "InstanceSubnetIds": ",".join(subnets),
          "LoadBalancerSubnetIds": ",".join(subnets)}
params.update(json.loads(params_json))

acm = boto3.client("acm", **kw)
cert_arn = None
if params.get("CertificateArn") == "IMPORT":
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "suaicloudapp.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("suaicloudapp.test")]), False)
            .sign(key, hashes.SHA256()))
    cert_arn = acm.import_certificate(
        Certificate=cert.public_bytes(serialization.Encoding.PEM),
        PrivateKey=key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))["CertificateArn"]
    params["CertificateArn"] = cert_arn

with open(template_path) as f:
    body = f.read()
started = time.monotonic()
try:
    cfn.create_stack(StackName=name, TemplateBody=body, Capabilities=["CAPABILITY_IAM"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in params.items()])
    deadline = time.monotonic() + 60
    while True:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    out = {
        "certificate_arn": cert_arn,
        "stack_id": stack["StackId"],
        "status": stack["StackStatus"],
        "reason": stack.get("StackStatusReason"),
        "seconds": round(time.monotonic() - started, 2),
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
    }
    res = cfn.describe_stack_resources(StackName=name)["StackResources"]
    # moto 5.2.5 lists each resource that its Condition left out as an entry without type or ids.
    res = [r for r in res if "LogicalResourceId" in r]
    out["resources"] = sorted([r["ResourceType"], r["LogicalResourceId"]] for r in res)
    phys = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in res}

    lt = ec2.describe_launch_template_versions(
        LaunchTemplateId=phys["LaunchTemplate"])["LaunchTemplateVersions"][-1]
    data = lt["LaunchTemplateData"]
    out["launch_template_id"] = lt["LaunchTemplateId"]
    out["user_data"] = base64.b64decode(data.pop("UserData", "")).decode()
    out["launch_template"] = data

    asg = boto3.client("autoscaling", **kw).describe_auto_scaling_groups(
        AutoScalingGroupNames=[phys["AutoScalingGroup"]])["AutoScalingGroups"][0]
    out["asg"] = {k: asg.get(k) for k in [
        "LaunchTemplate", "HealthCheckType", "HealthCheckGracePeriod", "TargetGroupARNs",
        "MinSize", "MaxSize", "DesiredCapacity", "VPCZoneIdentifier"]}

    elb = boto3.client("elbv2", **kw)
    tg = elb.describe_target_groups(TargetGroupArns=[phys["TargetGroup"]])["TargetGroups"][0]
    out["target_group"] = {k: tg.get(k) for k in [
        "TargetGroupArn", "HealthCheckPath", "Port", "Protocol", "VpcId"]}
    lb = elb.describe_load_balancers(LoadBalancerArns=[phys["LoadBalancer"]])["LoadBalancers"][0]
    out["load_balancer"] = {k: lb.get(k) for k in ["Scheme", "DNSName", "Type", "LoadBalancerArn"]}
    out["load_balancer_attributes"] = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(
        LoadBalancerArn=phys["LoadBalancer"])["Attributes"]}
    # Every listener by port, with its certificates, TLS policy, default actions and rules.
    out["listeners"] = {}
    for listener in elb.describe_listeners(LoadBalancerArn=phys["LoadBalancer"])["Listeners"]:
        rules = elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
        out["listeners"][str(listener["Port"])] = {
            "Protocol": listener["Protocol"],
            "SslPolicy": listener.get("SslPolicy"),
            "Certificates": [c["CertificateArn"] for c in listener.get("Certificates", [])],
            "DefaultActions": listener["DefaultActions"],
            "Rules": [{"Priority": r["Priority"], "Conditions": r["Conditions"], "Actions": r["Actions"]}
                      for r in rules if not r.get("IsDefault")],
        }
    out["security_groups"] = {
        logical: ec2.describe_security_groups(GroupIds=[phys[logical]])["SecurityGroups"][0]["IpPermissions"]
        for logical in ["LoadBalancerSecurityGroup", "InstanceSecurityGroup"]}

    # moto hands back the inline policy as given (its AWS::NoValue entries as null): keep the text.
    policy = boto3.client("iam", **kw).get_role_policy(
        RoleName=phys["InstanceRole"], PolicyName="suaicloudapp")["PolicyDocument"]
    out["policy"] = policy if isinstance(policy, str) else json.dumps(policy)

    ssm = boto3.client("ssm", **kw)
    out["ami"] = {arch: ssm.get_parameter(
        Name=f"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}")["Parameter"]["Value"]
        for arch in ["x86_64", "arm64"]}
    print(json.dumps(out, default=str))
finally:
    cfn.delete_stack(StackName=name)
    if cert_arn:
        # The listener holds the certificate until the stack's deletion has removed it.
        for _ in range(50):
            try:
                acm.delete_certificate(CertificateArn=cert_arn)
                break
            except acm.exceptions.ResourceInUseException:
                time.sleep(0.1)
