#!/usr/bin/env python3
"""Writes an OCI image layout archive (`FROM scratch`) holding the static binary, without a
container daemon or tool: an OCI layout is plain files, JSON and sha256 digests.

The image holds exactly:
  /suaicloudapp                        the static binary (entrypoint)
  /etc/ssl/certs/ca-certificates.crt   the build machine's CA bundle (the AWS SDK's HTTPS)
  /etc/hosts                           localhost only (musl resolves localhost through it alone)
  /var/lib/suaicloudapp/               the working directory: log file and the last known good
                                       config copy (its default state directory), owned by the
                                       image's user
and runs as 65532:65532 (no /etc/passwd needed for a numeric user), exposing 8080/tcp.

Reproducible: every mtime is SOURCE_DATE_EPOCH (default: the last commit's time), entries are
sorted, owners numeric, gzip without a name or time; the same inputs give the same bytes.

Usage: scripts/oci_image.py --binary PATH --arch x86_64|aarch64 --version V --out FILE
                            [--ca-bundle /etc/ssl/certs/ca-certificates.crt]
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time

USER = "65532:65532"
UID = GID = 65532
WORKDIR = "/var/lib/suaicloudapp"
PORT = "8080/tcp"
CA_PATH = "etc/ssl/certs/ca-certificates.crt"
OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
HOSTS = b"127.0.0.1 localhost\n::1 localhost\n"


def source_date_epoch(repo):
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        return int(env)
    try:
        out = subprocess.run(["git", "-C", repo, "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def tar_bytes(entries, mtime):
    """A POSIX tar of (name, kind, mode, uid, gid, data) entries, in the order given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, mode, uid, gid, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.mode = mode
            info.uid, info.gid = uid, gid
            info.uname = info.gname = ""
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzip_bytes(data):
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return out.getvalue()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rfc3339(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--arch", required=True, choices=sorted(OCI_ARCH))
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ca-bundle", default="/etc/ssl/certs/ca-certificates.crt")
    args = ap.parse_args()

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    epoch = source_date_epoch(repo)
    with open(args.binary, "rb") as f:
        binary = f.read()
    try:
        with open(args.ca_bundle, "rb") as f:
            ca = f.read()
    except OSError as e:
        sys.exit(f"oci_image: cannot read the CA bundle {args.ca_bundle}: {e} "
                 "(install ca-certificates)")

    layer_tar = tar_bytes([
        ("etc", "dir", 0o755, 0, 0, None),
        ("etc/hosts", "file", 0o644, 0, 0, HOSTS),
        ("etc/ssl", "dir", 0o755, 0, 0, None),
        ("etc/ssl/certs", "dir", 0o755, 0, 0, None),
        (CA_PATH, "file", 0o644, 0, 0, ca),
        ("suaicloudapp", "file", 0o755, 0, 0, binary),
        ("var", "dir", 0o755, 0, 0, None),
        ("var/lib", "dir", 0o755, 0, 0, None),
        (WORKDIR.lstrip("/"), "dir", 0o700, UID, GID, None),
    ], epoch)
    layer = gzip_bytes(layer_tar)

    config = {
        "created": rfc3339(epoch),
        "architecture": OCI_ARCH[args.arch],
        "os": "linux",
        "config": {
            "User": USER,
            "Entrypoint": ["/suaicloudapp"],
            "Cmd": ["serve"],
            "ExposedPorts": {PORT: {}},
            "Env": ["SSL_CERT_FILE=/" + CA_PATH],
            "WorkingDir": WORKDIR,
            "StopSignal": "SIGTERM",
            "Labels": {
                "org.opencontainers.image.title": "suaicloudapp",
                "org.opencontainers.image.version": args.version,
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
        "history": [{"created": rfc3339(epoch),
                     "created_by": "scripts/oci_image.py (FROM scratch)"}],
    }
    config_blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config_blob), "size": len(config_blob)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer), "size": len(layer)}],
        "annotations": {"org.opencontainers.image.created": rfc3339(epoch)},
    }
    manifest_blob = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(manifest_blob),
            "size": len(manifest_blob),
            "platform": {"architecture": OCI_ARCH[args.arch], "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": args.version},
        }],
    }
    index_blob = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()

    blobs = sorted({sha256(b).split(":")[1]: b
                    for b in (layer, config_blob, manifest_blob)}.items())
    entries = [("blobs", "dir", 0o755, 0, 0, None),
               ("blobs/sha256", "dir", 0o755, 0, 0, None)]
    entries += [("blobs/sha256/" + h, "file", 0o644, 0, 0, b) for h, b in blobs]
    entries += [("index.json", "file", 0o644, 0, 0, index_blob),
                ("oci-layout", "file", 0o644, 0, 0, b'{"imageLayoutVersion":"1.0.0"}')]
    archive = tar_bytes(entries, epoch)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(archive)
    os.replace(tmp, args.out)
    print(f"oci_image: {args.out}: {len(archive)} bytes, layer {len(layer)} bytes gzip "
          f"({len(layer_tar)} uncompressed), manifest {sha256(manifest_blob)}")


if __name__ == "__main__":
    main()
