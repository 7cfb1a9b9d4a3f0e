"""Compares this interpreter's installed packages with a pip lock file (scripts/requirements.lock).

Usage: python check_lock.py LOCK   (run with the venv's python; scripts/test-env.sh does)

Prints one line per difference (a pinned package missing or at another version, a package the
lock does not name) and exits 1 when there is any, 0 when the venv holds exactly the lock. The
venv's own installers (pip, setuptools, wheel) are not counted unless the lock pins them.
"""
import importlib.metadata
import re
import sys

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
OWN = {"pip", "setuptools", "wheel"}


def norm(name):
    """PEP 503 normalised name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(path):
    with open(path, encoding="utf-8") as f:
        return {norm(m[1]): m[2] for m in map(PIN.match, f) if m}


def installed():
    return {norm(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}


def main():
    want, have = pinned(sys.argv[1]), installed()
    if not want:
        sys.exit(f"{sys.argv[1]}: no name==version pins found")
    problems = []
    for name, version in sorted(want.items()):
        got = have.get(name)
        if got != version:
            problems.append(f"{name}: locked {version}, installed {got or 'nothing'}")
    for name in sorted(set(have) - set(want) - OWN):
        problems.append(f"{name}: installed {have[name]}, not in the lock")
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
