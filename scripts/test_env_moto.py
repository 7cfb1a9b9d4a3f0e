#!/usr/bin/env python3
"""The boto3 side of scripts/test-env.sh's moto set-up: creates (or checks) the buckets,
tables, IAM users and the other resources the tests expect on the two moto servers.
Run by test-env.sh with the moto venv's python, dummy keys and a clean AWS configuration;
the first argument is the mode, see the end of the file."""
import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

mode, url = sys.argv[1], sys.argv[2]
REGION = "us-east-1"
BUCKET, TABLE, WRONG = "suai-test-bucket", "suai-test-table", "suai-wrong-key"
CFG = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10)


def client(service, key="testing", secret="testing"):
    return boto3.client(service, endpoint_url=url, region_name=REGION,
                        aws_access_key_id=key, aws_secret_access_key=secret, config=CFG)


def ignore(codes, fn, **kw):
    try:
        return fn(**kw)
    except ClientError as e:
        if e.response["Error"]["Code"] not in codes:
            raise


def provision_data():
    s3 = client("s3")
    ignore({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}, s3.create_bucket, Bucket=BUCKET)
    ddb = client("dynamodb")
    ignore({"ResourceInUseException"}, ddb.create_table, TableName=TABLE,
           AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
           KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
           BillingMode="PAY_PER_REQUEST")
    ignore({"ResourceInUseException"}, ddb.create_table, TableName=WRONG,
           AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "N"},
                                 {"AttributeName": "sk", "AttributeType": "S"}],
           KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
           BillingMode="PAY_PER_REQUEST")
    # Neighbouring architectures (issue 10): a stream, a delivery stream, a topic, a function.
    kin = client("kinesis")
    ignore({"ResourceInUseException"}, kin.create_stream, StreamName="suai-test-stream", ShardCount=1)
    fh = client("firehose")
    # moto echoes only what it is given, and the Rust SDK requires buffering, compression and
    # encryption in the answer: give them explicitly (AWS fills in the same defaults).
    ignore({"ResourceNotFoundException"}, fh.delete_delivery_stream, DeliveryStreamName="suai-test-firehose")
    fh.create_delivery_stream(DeliveryStreamName="suai-test-firehose", ExtendedS3DestinationConfiguration={
        "RoleARN": "arn:aws:iam::123456789012:role/suai-firehose",
        "BucketARN": f"arn:aws:s3:::{BUCKET}",
        "BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 300},
        "CompressionFormat": "UNCOMPRESSED",
        "EncryptionConfiguration": {"NoEncryptionConfig": "NoEncryption"},
        "CloudWatchLoggingOptions": {"Enabled": False}})
    client("sns").create_topic(Name="suai-test-topic")
    iam = client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "lambda.amazonaws.com"}}]}
    ignore({"EntityAlreadyExists"}, iam.create_role, RoleName="suai-lambda",
           AssumeRolePolicyDocument=json.dumps(trust))
    role = iam.get_role(RoleName="suai-lambda")["Role"]["Arn"]
    import io, zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return 'ok'\n")
    ignore({"ResourceConflictException"}, client("lambda").create_function, FunctionName="suai-test-fn",
           Runtime="python3.12", Role=role, Handler="index.handler", Code={"ZipFile": buf.getvalue()})
    s3.head_bucket(Bucket=BUCKET)
    for t in (TABLE, WRONG):
        ddb.get_waiter("table_exists").wait(TableName=t, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    return ddb.describe_table(TableName=TABLE)["Table"]["TableArn"]


def new_user(iam, name):
    ignore({"EntityAlreadyExists"}, iam.create_user, UserName=name)
    for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=name, AccessKeyId=k["AccessKeyId"])
    k = iam.create_access_key(UserName=name)["AccessKey"]
    return k["AccessKeyId"], k["SecretAccessKey"]


def status_of(fn, **kw):
    try:
        fn(**kw)
        return 200
    except ClientError as e:
        return e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)


if mode == "provision":
    provision_data()
elif mode == "provision-auth":
    table_arn = provision_data()
    iam = client("iam")
    denied = new_user(iam, "denied")
    reader = new_user(iam, "reader")
    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    table_actions = ["dynamodb:GetItem", "dynamodb:DescribeTable"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            # What real AWS needs (HeadBucket and ListObjects are authorised as s3:ListBucket).
            {"Sid": "ListBucket", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": [bucket_arn]},
            {"Sid": "ReadTable", "Effect": "Allow", "Action": table_actions,
             "Resource": [table_arn]},
            # moto 5 quirks: it authorises HEAD bucket as "s3:HeadBucket", and it
            # evaluates every DynamoDB call against Resource "*" (not the table ARN).
            {"Sid": "MotoHeadBucket", "Effect": "Allow", "Action": ["s3:HeadBucket"],
             "Resource": [bucket_arn]},
            {"Sid": "MotoTableResourceIsStar", "Effect": "Allow", "Action": table_actions,
             "Resource": "*"},
        ],
    }
    iam.put_user_policy(UserName="reader", PolicyName="suai-reader",
                        PolicyDocument=json.dumps(policy))
    print(f"SUAI_TEST_DENIED_KEY_ID={denied[0]}")
    print(f"SUAI_TEST_DENIED_SECRET={denied[1]}")
    print(f"SUAI_TEST_READER_KEY_ID={reader[0]}")
    print(f"SUAI_TEST_READER_SECRET={reader[1]}")
elif mode == "verify-auth":
    dk, ds, rk, rs = sys.argv[3:7]
    problems = []
    checks = [
        ("denied head_bucket", client("s3", dk, ds).head_bucket, {"Bucket": BUCKET}, 403),
        ("denied describe_table", client("dynamodb", dk, ds).describe_table, {"TableName": TABLE}, 403),
        ("reader head_bucket", client("s3", rk, rs).head_bucket, {"Bucket": BUCKET}, 200),
        ("reader list_objects_v2", client("s3", rk, rs).list_objects_v2, {"Bucket": BUCKET, "MaxKeys": 1}, 200),
        ("reader describe_table", client("dynamodb", rk, rs).describe_table, {"TableName": TABLE}, 200),
        ("reader get_item", client("dynamodb", rk, rs).get_item,
         {"TableName": TABLE, "Key": {"id": {"S": "nope"}}}, 200),
        ("reader put_object", client("s3", rk, rs).put_object, {"Bucket": BUCKET, "Key": "x", "Body": b"x"}, 403),
        ("reader put_item", client("dynamodb", rk, rs).put_item,
         {"TableName": TABLE, "Item": {"id": {"S": "x"}}}, 403),
        ("testing/testing head_bucket", client("s3").head_bucket, {"Bucket": BUCKET}, 403),
    ]
    for name, fn, kw, want in checks:
        got = status_of(fn, **kw)
        if got != want:
            problems.append(f"{name}: HTTP {got}, expected {want}")
    if problems:
        sys.exit("moto IAM check failed: " + "; ".join(problems))
elif mode == "check":
    # quick: bucket and both tables present
    client("s3").head_bucket(Bucket=BUCKET)
    ddb = client("dynamodb")
    ddb.describe_table(TableName=TABLE)
    ddb.describe_table(TableName=WRONG)
else:
    sys.exit(f"unknown mode {mode}")
