#!/usr/bin/env python3
"""Boot time of suaicloudapp: from exec to the first `200` on /health. Used by bench/run.sh.

    boot_time.py --port P --runs N [--warmup W] [--server-cpu C] [--poll-cpu C]
                 [--timeout S] [--log FILE] -- BIN ARGS...

Each run: start the timer, spawn BIN (pinned to --server-cpu), poll 127.0.0.1:P with
`GET /health` (connect refused -> retry after 0.2 ms) until a 200 arrives, stop the timer,
then SIGTERM the process and wait for it (bounded; SIGKILL after 5 s). The poller itself runs
on --poll-cpu so it does not compete with the server for its core.

Prints one line per measured run, `BOOT_MS <ms>`, and exits non-zero if any run fails.
Everything is bounded: --timeout seconds per run, N + W runs.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def first_200(port, deadline, proc):
    """Polls until /health answers 200; returns the perf_counter_ns at that moment."""
    while True:
        now = time.perf_counter_ns()
        if now > deadline:
            raise TimeoutError("no 200 on /health in time")
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
                s.sendall(REQUEST)
                head = b""
                while b"\r\n" not in head:
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    head += chunk
                if head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"):
                    return time.perf_counter_ns()
        except (ConnectionRefusedError, ConnectionResetError, socket.timeout):
            pass
        time.sleep(0.0002)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--server-cpu", type=int, default=None)
    ap.add_argument("--poll-cpu", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--log", default=os.devnull)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command after --")
    poll_cpus = {a.poll_cpu} if a.poll_cpu is not None else os.sched_getaffinity(0)
    server_cpus = {a.server_cpu} if a.server_cpu is not None else poll_cpus
    os.sched_setaffinity(0, poll_cpus)
    for i in range(a.warmup + a.runs):
        with open(a.log, "ab") as log:
            # The child inherits the affinity in force when it is spawned: switch to the server
            # core for the spawn only (microseconds), then back, so no fork-based preexec is
            # needed (that would slow the spawn we are timing).
            started = time.perf_counter_ns()
            os.sched_setaffinity(0, server_cpus)
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            finally:
                os.sched_setaffinity(0, poll_cpus)
            try:
                ready = first_200(a.port, started + int(a.timeout * 1e9), proc)
            except Exception as e:  # noqa: BLE001 - reported, then fail the whole measurement
                stop(proc)
                print(f"boot run {i + 1} failed: {e} (log: {a.log})", file=sys.stderr)
                return 1
            finally:
                stop(proc)
        if i >= a.warmup:
            print(f"BOOT_MS {(ready - started) / 1e6:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
