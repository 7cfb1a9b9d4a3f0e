"""Reads deploy/cloudformation.yaml as CloudFormation does (cfn-lint's decoder: short tags such as
!Ref become their long form) and prints it as JSON, for tests/deploy/cloudformation.rs to assert
on what moto does not model (UpdatePolicy, CreationPolicy, Rules, load balancer attributes,
parameter constraints).

    python cfn_template.py TEMPLATE [CHECKS_JSON]

CHECKS_JSON, a list of [parameter, value] pairs, adds "matches": for each pair, whether the value
passes the parameter's AllowedPattern as CloudFormation applies it (the whole value must match).
moto does not enforce AllowedPattern, so this is where a refused value is shown to be refused.
"""
import json
import re
import sys

from cfnlint.decode import decode_str

template_path = sys.argv[1]
checks = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
with open(template_path) as f:
    template, problems = decode_str(f.read())
if problems:
    sys.exit(f"{template_path}: {problems}")
params = template["Parameters"]
out = {"template": template, "matches": []}
for name, value in checks:
    pattern = params[name]["AllowedPattern"]
    out["matches"].append([name, value, re.fullmatch(pattern, value) is not None])
print(json.dumps(out, default=str))
