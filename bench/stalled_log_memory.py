#!/usr/bin/env python3
"""Peak memory with a stalled stderr: the product's log writer against tracing-appender.

Issue 32 item 6 (bench/log-trial-results.md). Side by side in one run:

  (i)  the product binary, serving on 127.0.0.1 with a minimal config, stderr a pipe nobody
       reads (a hung journald); N keep-alive GETs with a path of L bytes, each of which logs
       an access line of about L bytes. VmHWM (peak RSS) from /proc/PID/status before and
       after.
  (ii) bench/log-trial's `stall` mode: N events with a field of L bytes through
       tracing-subscriber fmt into tracing-appender's non_blocking (lossy, 16,384 lines),
       whose worker writes to the same kind of never-read pipe. VmHWM before and after.

Prints both deltas and their ratio. Any process that dies, or a step that times out, fails
the run (exit 1) with what it saw. Python 3 standard library only.

  python3 bench/stalled_log_memory.py [--product BIN] [--trial BIN] [--lines N] [--bytes L]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    fail(f"no VmHWM in /proc/{pid}/status")


def alive(proc, what):
    code = proc.poll()
    if code is not None:
        fail(f"{what} (pid {proc.pid}) died with exit code {code}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def config_text(port, dead_port):
    """The shape of the repo's config.toml, every backend pointed at a closed loopback port."""
    return f"""[server]
host = "127.0.0.1"
port = {port}

[aws]
region = "us-east-1"

[s3]
bucket = "suai-app-bucket"

[database]
host = "127.0.0.1"
port = {dead_port}
user = "admin"
password = "change-me-please"
dbname = "suai"

[redis]
host = "127.0.0.1"
port = {dead_port}

[dynamodb]
table = "suai-table"
partition_key = "id"
"""


def read_response(sock, buf):
    """Reads one response with a Content-Length from `sock`; returns (status, leftover)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            fail("the product closed the connection mid-response")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    for h in lines[1:]:
        k, _, v = h.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    if length is None:
        fail(f"response without Content-Length: {head[:200]!r}")
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            fail("the product closed the connection mid-body")
        rest += chunk
    return status, rest[length:]


def health(port):
    """GET /health on a fresh connection: (status, seconds)."""
    t = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status, _ = read_response(s, b"")
    return status, time.monotonic() - t


def run_product(binary, lines, size):
    port, dead_port = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="stalled-log-product-")
    with open(os.path.join(work, "config.toml"), "w") as f:
        f.write(config_text(port, dead_port))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    # stderr: a pipe this script never reads (a hung journald). Startup lines fit in the
    # pipe's 64 KiB; the access lines fill it within a few requests.
    proc = subprocess.Popen(
        [binary, "--config", "config.toml"],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            alive(proc, "the product")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    fail(f"the product is not listening on 127.0.0.1:{port} after 30 s")
                time.sleep(0.1)
        status, _ = health(port)
        if status != 200:
            fail(f"/health answered {status} before the run")
        time.sleep(0.5)
        alive(proc, "the product")
        before = vm_hwm_kib(proc.pid)

        path = b"/" + b"a" * (size - 1)
        request = b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        statuses = {}
        t = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            leftover = b""
            for i in range(lines):
                s.sendall(request)
                st, leftover = read_response(s, leftover)
                statuses[st] = statuses.get(st, 0) + 1
                if i % 2000 == 0:
                    alive(proc, "the product")
        elapsed = time.monotonic() - t
        alive(proc, "the product")
        time.sleep(0.5)
        after = vm_hwm_kib(proc.pid)
        hstatus, hsecs = health(port)
        alive(proc, "the product")
        log_size = os.path.getsize(os.path.join(work, "output.log")) if os.path.exists(
            os.path.join(work, "output.log")) else 0
        print(f"product: {lines} GETs of a {size}-byte path in {elapsed:.1f} s, statuses {statuses}; "
              f"/health after: {hstatus} in {hsecs * 1000:.1f} ms; output.log {log_size} bytes")
        return before, after
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_trial(binary, lines, size):
    proc = subprocess.Popen(
        [binary, "stall", str(lines), str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # never read
    )
    try:
        ready = proc.stdout.readline()
        alive(proc, "the trial")
        if ready.strip() != b"ready":
            fail(f"the trial said {ready!r} instead of ready")
        time.sleep(0.5)
        before = vm_hwm_kib(proc.pid)
        t = time.monotonic()
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        done = proc.stdout.readline().split()
        elapsed = time.monotonic() - t
        alive(proc, "the trial")
        if not done or done[0] != b"done":
            fail(f"the trial said {done!r} instead of done")
        time.sleep(0.5)
        after = vm_hwm_kib(proc.pid)
        alive(proc, "the trial")
        print(f"trial: {done[1].decode()} events of a {size}-byte field in {elapsed:.1f} s, "
              f"{done[2].decode()} dropped by non_blocking")
        proc.stdin.close()
        return before, after
    finally:
        if proc.poll() is None:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--product", default=os.path.join(REPO, "target/debug/suaicloudapp"))
    p.add_argument("--trial", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "bench/log-trial/target")),
        "debug/log-trial"))
    p.add_argument("--lines", type=int, default=20_000)
    p.add_argument("--bytes", type=int, default=15_000)
    a = p.parse_args()
    for b in (a.product, a.trial):
        if not os.access(b, os.X_OK):
            fail(f"{b} is missing: build it first (see bench/log-trial-results.md)")

    pb, pa = run_product(a.product, a.lines, a.bytes)
    tb, ta = run_trial(a.trial, a.lines, a.bytes)
    pd, td = (pa - pb) / 1024, (ta - tb) / 1024
    print(f"product VmHWM: {pb / 1024:.1f} MiB before, {pa / 1024:.1f} MiB after: +{pd:.1f} MiB")
    print(f"tracing-appender VmHWM: {tb / 1024:.1f} MiB before, {ta / 1024:.1f} MiB after: +{td:.1f} MiB")
    if pd > 0:
        print(f"ratio (tracing-appender / product): {td / pd:.1f}x")
    else:
        print("ratio: the product's VmHWM did not grow")


if __name__ == "__main__":
    main()
