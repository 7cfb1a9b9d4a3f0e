"""A stand-in for ElastiCache's IAM front end (tests/serve/iam_auth.rs): TLS on 127.0.0.1:PORT;
the client's first command must be `AUTH <user id> <token>`, and the token must be the one AWS's
published algorithm makes (SigV4QueryAuth, service elasticache, `Action=connect&User=<id>` to the
cache name, 15 minutes) for the expected cache, region and keys at the token's own X-Amz-Date,
not expired: checked by recomputing it with botocore. Then it logs in to the real Redis with its
own ACL user and passes the bytes through both ways; otherwise it answers as ElastiCache does
(-WRONGPASS, or -NOAUTH without AUTH, then -NOAUTH to anything more).

Usage: python elasticache_iam.py PORT CERT KEY UPSTREAM_PORT UPSTREAM_USER UPSTREAM_PASSWORD EXPECT_JSON
EXPECT_JSON: {"cache": "...", "region": "...", "access_key": "...", "secret_key": "..."}
"""
import asyncio
import datetime
import json
import ssl
import sys
import urllib.parse
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

PORT, CERT, KEY, UP_PORT, UP_USER, UP_PASS, EXPECT = sys.argv[1:8]
WANT = json.loads(EXPECT)


def reference_token(user, at, serverless):
    class Fixed(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return at

        @classmethod
        def now(cls, tz=None):
            return at.replace(tzinfo=tz) if tz else at

    params = {"Action": "connect", "User": user}
    if serverless:
        params["ResourceType"] = "ServerlessCache"
    req = AWSRequest(method="GET", url=f"https://{WANT['cache']}/", params=params)
    with mock.patch.object(botocore.auth.datetime, "datetime", Fixed):
        botocore.auth.SigV4QueryAuth(
            Credentials(WANT["access_key"], WANT["secret_key"]), "elasticache", WANT["region"], expires=900
        ).add_auth(req)
    return req.url.removeprefix("https://")


def valid(user, token):
    cache, _, query = token.partition("/?")
    q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    if cache != WANT["cache"] or q.get("Action") != "connect" or q.get("User") != user:
        return False
    try:
        signed = datetime.datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        lifetime = datetime.timedelta(seconds=int(q["X-Amz-Expires"]))
    except (KeyError, ValueError):
        return False
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    if now > signed + lifetime or signed > now + datetime.timedelta(minutes=5):
        return False
    return reference_token(user, signed, q.get("ResourceType") == "ServerlessCache") == token


async def read_command(reader):
    """One RESP array of bulk strings, and its raw bytes."""
    raw = await reader.readline()
    if not raw.startswith(b"*"):
        return None, raw
    args = []
    for _ in range(int(raw[1:])):
        size_line = await reader.readline()
        raw += size_line
        data = await reader.readexactly(int(size_line[1:]) + 2)
        raw += data
        args.append(data[:-2].decode("utf-8", "replace"))
    return args, raw


def resp(*args):
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        b = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return out


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def refuse(reader, writer, first):
    """As Redis does: the refusal, then NOAUTH to every further command until the client goes."""
    writer.write(first)
    try:
        while True:
            await writer.drain()
            args, raw = await read_command(reader)
            if not raw:
                break
            writer.write(b"-NOAUTH Authentication required.\r\n")
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    writer.close()


async def serve(reader, writer):
    args, _ = await read_command(reader)
    if not args or args[0].upper() != "AUTH":
        return await refuse(reader, writer, b"-NOAUTH Authentication required.\r\n")
    if len(args) != 3 or not valid(args[1], args[2]):
        return await refuse(reader, writer, b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(UP_PORT))
    up_writer.write(resp("AUTH", UP_USER, UP_PASS))
    await up_writer.drain()
    answer = await up_reader.readline()
    writer.write(answer)
    await writer.drain()
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def main():
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERT, KEY)
    server = await asyncio.start_server(serve, "127.0.0.1", int(PORT), ssl=context)
    async with server:
        await server.serve_forever()


asyncio.run(main())
