#!/usr/bin/env python3
"""The release path's least-privilege rules, checked on GitHub Actions workflow files.

actionlint checks that a workflow is valid and checkov's github_actions checks catch the
well-known mistakes; neither says "the job that runs the build holds no write token". These
rules do, for every workflow given:

  top-permissions   the workflow's top-level `permissions` is `{}` (each job asks for its own)
  job-permissions   every job sets `permissions`
  write-runs-build  a job with any `write` permission runs no build or package tool
                    (make, cargo, rustup, pip, npm, apt, the test-env script): those run
                    hundreds of third-party build scripts
  write-needs-env   a job with a `write` permission or a secret runs in an `environment`
                    (where the secret lives and a reviewer can be required)
  pinned-action     every `uses:` names a full 40-hex commit, not a tag or branch
  checkout-creds    every actions/checkout step sets `persist-credentials: false`
  no-pr-target      no `pull_request_target` trigger (it runs with the base's secrets)
  run-injection     no `${{ github.event.* }}` or `${{ github.head_ref }}` inside a `run:`
                    script (an attacker-chosen string would become shell code)

Usage: workflow_rules.py FILE...   (needs PyYAML: the test venv's python has it)
Prints one `FILE: rule: what` line per finding; exit 1 when there is any, 0 otherwise.
"""

import re
import sys

import yaml

BUILD = re.compile(r"(^|[\s;&|(])(make|cargo|rustup|pip3?|npm|npx|apt(-get)?|scripts/test-env\.sh)(\s|$)",
                   re.M)
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
INJECTION = re.compile(r"\$\{\{\s*github\.(event\.|head_ref)")


def writes(permissions):
    if isinstance(permissions, str):
        return permissions == "write-all"
    return isinstance(permissions, dict) and "write" in permissions.values()


def check(path):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    found = []

    def say(rule, what):
        found.append(f"{path}: {rule}: {what}")

    # YAML 1.1 reads the key `on` as true.
    triggers = doc.get("on", doc.get(True, {}))
    if isinstance(triggers, (str, list)):
        triggers = {t: None for t in ([triggers] if isinstance(triggers, str) else triggers)}
    if "pull_request_target" in (triggers or {}):
        say("no-pr-target", "the workflow runs on pull_request_target")
    if doc.get("permissions", None) != {}:
        say("top-permissions", f"top-level permissions is {doc.get('permissions')!r}, not {{}}")

    for name, job in (doc.get("jobs") or {}).items():
        if "permissions" not in job:
            say("job-permissions", f"job {name} sets no permissions")
        # A job without its own permissions gets the workflow's.
        granted = job.get("permissions", doc.get("permissions"))
        steps = job.get("steps") or []
        scripts = [s.get("run", "") for s in steps]
        uses_secret = any("secrets." in yaml.safe_dump(s) for s in steps)
        if writes(granted):
            for script in scripts:
                m = BUILD.search(script)
                if m:
                    say("write-runs-build", f"job {name} can write and runs `{m.group(2)}`")
        if (writes(granted) or uses_secret) and "environment" not in job:
            say("write-needs-env", f"job {name} can write or reads a secret outside an environment")
        for step in steps:
            uses = step.get("uses")
            if uses and not uses.startswith("./"):
                if not PINNED.match(uses):
                    say("pinned-action", f"job {name}: {uses} is not pinned to a commit")
                if uses.startswith("actions/checkout@"):
                    if (step.get("with") or {}).get("persist-credentials") is not False:
                        say("checkout-creds", f"job {name}: checkout keeps the token in .git/config")
            if INJECTION.search(step.get("run", "")):
                say("run-injection", f"job {name}: an event field is expanded inside run:")
    return found


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    found = [line for path in sys.argv[1:] for line in check(path)]
    for line in found:
        print(line)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
