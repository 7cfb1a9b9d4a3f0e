#!/usr/bin/env python3
"""A small, faithful EC2 instance metadata server (IMDSv2 only, HttpTokens=required) for tests.

Protocol, as on a real instance:
  PUT /latest/api/token with header X-aws-ec2-metadata-token-ttl-seconds: 1..21600
      -> 200, the token as text, and the same header echoing the TTL (the Rust SDK requires it);
         a missing or out-of-range TTL -> 400; X-Forwarded-For present -> 403.
  GET without a valid (known, unexpired) X-aws-ec2-metadata-token header -> 401.
  GET carrying X-Forwarded-For -> 403.
  Unknown path -> 404; other methods -> 405.

Served:
  /latest/meta-data/instance-id, ami-id, instance-type, local-ipv4, hostname
  /latest/meta-data/placement/region, placement/availability-zone
  /latest/meta-data/iam/info
  /latest/meta-data/iam/security-credentials/        (the role name)
  /latest/meta-data/iam/security-credentials/ROLE    (JSON credentials, expiring in one hour)
  /latest/dynamic/instance-identity/document         (JSON)
  /latest/user-data                                  (with --user-data FILE; else 404)
With --deny-credentials the iam/ paths answer 404, as on an instance without a profile.

Each request is logged to stderr as one line (method, path, status); the secret key and tokens
never are. --port 0 picks a free port; the bound port is printed to stdout and, with
--ready-file, written there (atomically) once the server is listening, so callers poll for it.
The secret key may also come from the environment (IMDS_SECRET_ACCESS_KEY) to keep it out of
process listings.
"""

import argparse
import datetime
import http.server
import json
import os
import secrets
import sys
import threading
import time

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TTL = 21600


def iso(ts):
    """ISO 8601 in UTC with a Z suffix, as IMDS writes it."""
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


class Metadata:
    """What the instance looks like, and the tokens handed out so far."""

    def __init__(self, args):
        self.args = args
        self.tokens = {}
        self.lock = threading.Lock()
        self.started = time.time()

    def issue_token(self, ttl):
        token = secrets.token_urlsafe(42)
        with self.lock:
            now = time.monotonic()
            self.tokens = {t: exp for t, exp in self.tokens.items() if exp > now}
            self.tokens[token] = now + ttl
        return token

    def token_valid(self, token):
        if not token:
            return False
        with self.lock:
            expiry = self.tokens.get(token)
        return expiry is not None and expiry > time.monotonic()

    def credentials(self):
        a = self.args
        now = time.time()
        return {
            "Code": "Success",
            "LastUpdated": iso(now),
            "Type": "AWS-HMAC",
            "AccessKeyId": a.access_key,
            "SecretAccessKey": a.secret_key,
            "Token": a.session_token,
            "Expiration": iso(now + 3600),
        }

    def identity_document(self):
        a = self.args
        return {
            "accountId": a.account_id,
            "architecture": "x86_64",
            "availabilityZone": a.az,
            "billingProducts": None,
            "devpayProductCodes": None,
            "marketplaceProductCodes": None,
            "imageId": a.image_id,
            "instanceId": a.instance_id,
            "instanceType": a.instance_type,
            "kernelId": None,
            "pendingTime": iso(self.started),
            "privateIp": "10.0.0.10",
            "ramdiskId": None,
            "region": a.region,
            "version": "2017-09-30",
        }

    def lookup(self, path):
        """(content type, body) for a GET path, or None for 404."""
        a = self.args
        text = "text/plain"
        fixed = {
            "/latest/meta-data/instance-id": a.instance_id,
            "/latest/meta-data/ami-id": a.image_id,
            "/latest/meta-data/instance-type": a.instance_type,
            "/latest/meta-data/local-ipv4": "10.0.0.10",
            "/latest/meta-data/hostname": "ip-10-0-0-10.ec2.internal",
            "/latest/meta-data/placement/region": a.region,
            "/latest/meta-data/placement/availability-zone": a.az,
            "/latest/meta-data/placement/": "availability-zone\nregion",
            "/latest/meta-data/": "ami-id\nhostname\n"
            + ("iam/\n" if not a.deny_credentials else "")
            + "instance-id\ninstance-type\nlocal-ipv4\nplacement/",
            "/latest/dynamic/instance-identity/": "document",
        }
        if path in fixed:
            return text, fixed[path]
        if path == "/latest/dynamic/instance-identity/document":
            return text, json.dumps(self.identity_document(), indent=2)
        if path == "/latest/user-data":
            if not a.user_data:
                return None
            with open(a.user_data, "rb") as f:
                return "application/octet-stream", f.read()
        if a.deny_credentials:
            return None
        creds = "/latest/meta-data/iam/security-credentials/"
        if path == "/latest/meta-data/iam/":
            return text, "info\nsecurity-credentials/"
        if path == "/latest/meta-data/iam/info":
            info = {
                "Code": "Success",
                "LastUpdated": iso(time.time()),
                "InstanceProfileArn": f"arn:aws:iam::{a.account_id}:instance-profile/{a.role}",
                "InstanceProfileId": "AIPAIMDSTESTPROFILE01",
            }
            return text, json.dumps(info, indent=2)
        if path in (creds, creds.rstrip("/")):
            return text, a.role
        if path in (creds + a.role, creds + a.role + "/"):
            return text, json.dumps(self.credentials(), indent=2)
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs expect
    md: Metadata = None  # set by main()

    def version_string(self):
        return "EC2ws"
    def send(self, status, body=b"", content_type="text/plain", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drain(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 0:
            self.rfile.read(n)

    def do_PUT(self):
        self.drain()
        if self.path != "/latest/api/token":
            self.send(405, "Method Not Allowed", headers=[("Allow", "GET")])
            return
        if self.headers.get("X-Forwarded-For") is not None:
            self.send(403, "Forbidden")
            return
        raw = self.headers.get(TTL_HEADER)
        try:
            ttl = int(raw.strip()) if raw is not None else None
        except ValueError:
            ttl = None
        if ttl is None or not 1 <= ttl <= MAX_TTL:
            self.send(400, "Bad Request")
            return
        token = self.md.issue_token(ttl)
        self.send(200, token, headers=[(TTL_HEADER, str(ttl))])

    def do_GET(self):
        if self.headers.get("X-Forwarded-For") is not None:
            self.send(403, "Forbidden")
            return
        if not self.md.token_valid(self.headers.get(TOKEN_HEADER)):
            self.send(401, "Unauthorized")
            return
        found = self.md.lookup(self.path.split("?", 1)[0])
        if found is None:
            self.send(404, "Not Found")
            return
        content_type, body = found
        self.send(200, body, content_type)

    do_HEAD = do_GET

    def not_allowed(self):
        self.drain()
        self.send(405, "Method Not Allowed", headers=[("Allow", "GET, PUT")])

    do_POST = do_DELETE = do_PATCH = do_OPTIONS = not_allowed

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        # Only the request line and status: never headers (tokens) nor bodies (secret key).
        sys.stderr.write(f"imds: {self.address_string()} {format % args}\n")
        sys.stderr.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: pick a free port and print it")
    p.add_argument("--instance-id", default="i-0123456789abcdef0")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--az", default=None, help="default: REGION + 'a'")
    p.add_argument("--account-id", default="123456789012")
    p.add_argument("--image-id", default="ami-0abcdef1234567890")
    p.add_argument("--instance-type", default="t3.micro")
    p.add_argument("--role", default="suaicloudapp-instance-role")
    p.add_argument("--access-key", default="ASIAIMDSTEST00000001")
    p.add_argument(
        "--secret-key",
        default=os.environ.get("IMDS_SECRET_ACCESS_KEY") or secrets.token_urlsafe(30),
        help="default: $IMDS_SECRET_ACCESS_KEY, else random",
    )
    p.add_argument("--session-token", default=None, help="default: random")
    p.add_argument("--deny-credentials", action="store_true")
    p.add_argument("--user-data", default=None, metavar="FILE")
    p.add_argument("--ready-file", default=None, metavar="PATH")
    args = p.parse_args()
    if args.az is None:
        args.az = args.region + "a"
    if args.session_token is None:
        args.session_token = "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(96)

    Handler.md = Metadata(args)
    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    print(port, flush=True)
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.ready_file)
    sys.stderr.write(f"imds: listening on {args.host}:{port} instance {args.instance_id}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
