#!/usr/bin/python3
"""The PAM step of the tests' RDS IAM stand-in (pam_exec with expose_authtok runs it, as
whatever user the database runs as): hands PAM_USER and the token on stdin to the verifier
service (scripts/rds_iam_verify.py --serve) at the Unix socket argv[1], and exits 0 only when it
answers ok. Python's standard library only: it runs with the system's python3.
"""
import json
import os
import socket
import sys


def main():
    token = sys.stdin.buffer.read().split(b"\0")[0].decode("utf-8", "replace").strip()
    ask = json.dumps({"user": os.environ.get("PAM_USER", ""), "token": token}) + "\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(sys.argv[1])
            s.sendall(ask.encode())
            answer = s.makefile().readline().strip()
    except OSError:
        return 1
    return 0 if answer == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
