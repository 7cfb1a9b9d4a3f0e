#!/usr/bin/env python3
"""A stand-in for RDS's own IAM check, for the tests: MariaDB's PAM plugin (cleartext, over TLS)
and PostgreSQL's `pam` method hand the presented password to pam_exec, which runs this with the
password on stdin and PAM_USER set. It accepts only a token botocore itself would make for that
user, the expected endpoint, region and keys, at the token's own X-Amz-Date, not expired.

Run as a service (`verify.py --serve SOCKET`, started by scripts/test-env.sh as root): the PAM
step may run as another user (PostgreSQL's backends run as `postgres`), so pam_exec runs
scripts/rds_iam_forward.py, which hands the token to this over a Unix socket and exits with its
answer. Run without arguments it checks one token from stdin itself.

Expectations: expect/<user>.json beside this file (scripts/test-env.sh installs it under the
test environment's directory), written by the test:
    {"endpoint": "127.0.0.1:PORT", "region": "us-east-1", "access_key": "...", "secret_key": "...",
     "clock_offset_s": 0}
(clock_offset_s: this check's clock runs that far ahead, as a server's would that sees the token
after its 15 minutes: the way a test shows an expired token refused.)
Exit 0 to let the login through, 1 otherwise (the reason goes to verify.log beside this file).
"""
import datetime
import json
import os
import sys
import urllib.parse
from unittest import mock

import botocore.auth
import botocore.session

HERE = os.path.dirname(os.path.abspath(__file__))


def refuse(why, user="?"):
    with open(os.path.join(HERE, "verify.log"), "a", encoding="utf-8") as log:
        log.write(f"{datetime.datetime.now().isoformat()} {user}: {why}\n")
    return 1


def botocore_token(want, user, at):
    class Fixed(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return at

        @classmethod
        def now(cls, tz=None):
            return at.replace(tzinfo=tz) if tz else at

    session = botocore.session.get_session()
    session.set_credentials(want["access_key"], want["secret_key"], want.get("session_token"))
    client = session.create_client("rds", region_name=want["region"])
    host, port = want["endpoint"].rsplit(":", 1)
    with mock.patch.object(botocore.auth.datetime, "datetime", Fixed):
        return client.generate_db_auth_token(host, int(port), user)


def check(user, token):
    try:
        with open(os.path.join(HERE, "expect", f"{user}.json"), encoding="utf-8") as f:
            want = json.load(f)
    except OSError:
        return refuse("no expectation for this user", user)
    endpoint, _, query = token.partition("/?")
    if endpoint != want["endpoint"]:
        return refuse(f"endpoint {endpoint!r}, want {want['endpoint']!r}", user)
    q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    if q.get("Action") != "connect" or q.get("DBUser") != user:
        return refuse("not a connect for this user", user)
    try:
        signed = datetime.datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        lifetime = datetime.timedelta(seconds=int(q["X-Amz-Expires"]))
    except (KeyError, ValueError):
        return refuse("no X-Amz-Date or X-Amz-Expires", user)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    now += datetime.timedelta(seconds=int(want.get("clock_offset_s", 0)))
    if now > signed + lifetime:
        return refuse(f"expired at {signed + lifetime}", user)
    if signed > now + datetime.timedelta(minutes=5):
        return refuse("signed in the future", user)
    if botocore_token(want, user, signed) != token:
        return refuse("signature, region or keys differ from botocore's token", user)
    return 0


async def serve(path):
    import asyncio

    async def one(reader, writer):
        try:
            ask = json.loads(await reader.readline())
            ok = check(str(ask.get("user", "")), str(ask.get("token", ""))) == 0
        except Exception as e:  # a malformed request is a refusal, never a crash
            ok = refuse(f"bad request: {e.__class__.__name__}") == 0
        writer.write(b"ok\n" if ok else b"no\n")
        await writer.drain()
        writer.close()

    if os.path.exists(path):
        os.unlink(path)
    server = await asyncio.start_unix_server(one, path)
    os.chmod(path, 0o666)
    async with server:
        await server.serve_forever()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        import asyncio

        asyncio.run(serve(sys.argv[2]))
        return 0
    token = sys.stdin.buffer.read().split(b"\0")[0].decode("utf-8", "replace").strip()
    return check(os.environ.get("PAM_USER", ""), token)


if __name__ == "__main__":
    sys.exit(main())
