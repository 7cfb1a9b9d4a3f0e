"""The import layers of src/, read off the code: which top-level module names which.

Usage: python3 scripts/layers.py [SRC]   (default: the repository's src/)

Reads every `crate::NAME` path outside comments and `#[cfg(test)] mod tests`, groups the files
by top-level module (src/probes/*.rs is `probes`), prints each module's imports, then the
layers: a module's layer is one more than the highest layer it imports. Exits 1, naming the
loop, when modules import each other in a circle (then no layering exists). The README's
"Layout, in layers" is this output; tests/release/release.rs runs it.
"""
import os
import re
import sys


def imports(src):
    deps = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)
            mod = rel.split(os.sep)[0].removesuffix(".rs")
            if mod in ("lib", "main"):
                continue
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                text = fh.read()
            text = "\n".join(l for l in text.split("\n") if not l.lstrip().startswith("//"))
            text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
            names = deps.setdefault(mod, set())
            for group in re.findall(r"crate::\{([^}]*)\}", text):
                names.update(p.strip().split("::")[0] for p in group.split(",") if p.strip())
            names.update(re.findall(r"crate::([a-z_]+)", text))
    return {m: {d for d in ds if d != m and d.islower() and d != "self"} for m, ds in deps.items()}


def layers(deps):
    depth = {}

    def walk(m, path):
        if m in path:
            loop = path[path.index(m):] + [m]
            sys.exit("import circle: " + " -> ".join(loop))
        if m not in depth:
            depth[m] = 1 + max([walk(d, path + [m]) for d in deps.get(m, ())] or [0])
        return depth[m]

    for m in sorted(set(deps) | {d for ds in deps.values() for d in ds}):
        walk(m, [])
    return depth


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
    deps = imports(src)
    for m in sorted(deps):
        print(f"{m} -> {' '.join(sorted(deps[m])) or '(nothing)'}")
    depth = layers(deps)
    for level in sorted(set(depth.values())):
        print(f"layer {level}: {', '.join(sorted(m for m in depth if depth[m] == level))}")


if __name__ == "__main__":
    main()
