#!/usr/bin/env python3
"""The project's IMDSv2 test server (scripts/imds_server.py, same arguments), plus the dated API
paths a real metadata service also answers, for cloud-init's EC2 datasource.

cloud-init asks for /2021-03-23/meta-data/instance-id (falling back to /2009-04-04/...), reads
/<version>/user-data and /<version>/meta-data/, and /<version>/dynamic/instance-identity
without a trailing slash; real IMDS serves every dated version with the same content as
/latest/. scripts/imds_server.py serves /latest/ only, so this wrapper maps those paths onto
/latest/ before the server's own handler runs. Everything else (tokens, TTL header, 401/403/404,
--deny-credentials, logging) is the project's server, unchanged, in this process.
"""

import importlib.util
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "..", "imds_server.py")

spec = importlib.util.spec_from_file_location("imds_server", SERVER)
imds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(imds)

DATED = re.compile(r"^/\d{4}-\d{2}-\d{2}(?=/|$)")
# Directory paths that real IMDS also answers without the trailing slash.
DIRECTORIES = ("/latest/dynamic/instance-identity", "/latest/meta-data", "/latest/meta-data/placement")


def normalize(path):
    base, sep, query = path.partition("?")
    base = DATED.sub("/latest", base, count=1)
    if base in DIRECTORIES:
        base += "/"
    return base + sep + query


_get = imds.Handler.do_GET


def do_get(self):
    self.path = normalize(self.path)
    _get(self)


imds.Handler.do_GET = do_get
imds.Handler.do_HEAD = do_get

if __name__ == "__main__":
    sys.exit(imds.main())
