#!/usr/bin/env python3
"""bench/RESULTS.md from the numbers one bench/run.sh run observed.

bench/run.sh measures and writes what it saw, one record a line, to a raw file:

    KIND<TAB>key=value<TAB>key=value...

  meta   one line of facts about the machine, the run and its settings (see run.sh)
  run    one wrk run: round, target, attempt, kept, requests, rps, p50_us ... max_us,
         err_status, errs, cpu (server CPU % over the run's measured duration), cpu_req (its
         CPU per request, microseconds), sbusy, lbusy, others, load, quiet, dropped
  boot   one boot: config (file|s3), ms
  cg     one callgrind count: target, requests, instructions

This file does the statistics (medians over the rounds, ratios, per-round ratios, the
targets' verdicts) and writes the report. Every figure in it is one of those records or is
computed from them; the goals are printed as goals.

Usage: report.py RAW WRK_LOG NGINX_CONF OUT
"""
import sys
from collections import OrderedDict


def read_raw(path):
    meta, runs, boots, cgs = {}, [], {"file": [], "s3": []}, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            kind, *fields = line.split("\t")
            rec = dict(x.split("=", 1) for x in fields)
            if kind == "meta":
                meta.update(rec)
            elif kind == "run":
                runs.append(rec)
            elif kind == "boot":
                boots[rec["config"]].append(rec["ms"])
            elif kind == "cg":
                cgs.append(rec)
            else:
                sys.exit(f"{path}: unknown record kind {kind!r}")
    return meta, runs, boots, cgs


def median(values):
    """As run.sh always printed it: the middle value as observed, or the mean of the two
    middle ones to 3 decimals; "nan" when there is none."""
    v = sorted(values, key=float)
    if not v:
        return "nan"
    if len(v) % 2:
        return v[len(v) // 2]
    return "%.3f" % ((float(v[len(v) // 2 - 1]) + float(v[len(v) // 2])) / 2)


def div(a, b):
    return "nan" if float(b) == 0 else "%.2f" % (float(a) / float(b))


def verdict(value, op, limit):
    ok = float(value) >= float(limit) if op == "ge" else float(value) <= float(limit)
    return "**met**" if ok else "**MISSED**"


def ms(us):
    return "%.3f" % (float(us) / 1000)


def mb(b):
    return "%.2f" % (int(b) / 1000000)


def mib(b):
    return "%.2f" % (int(b) / 1048576)


def render(meta, runs, boots, cgs, wrk_log, nginx_conf):
    m = meta
    rounds, diag = int(m["rounds"]), m["diag"] == "1"
    targets = ["nginx /health", "app /health", "app /redis", "app /database"]
    if diag:
        targets += ["app /health, no access log", "nginx /health, access log"]
    # The run that counts for a round and target is its last attempt (kept, or kept for lack
    # of retries); the raw table lists every attempt.
    last = OrderedDict()
    for r in runs:
        last[(r["round"], r["target"])] = r
    per = {t: [r for (_, tt), r in last.items() if tt == t] for t in targets}
    rps = {t: [r["rps"] for r in per[t]] for t in targets}
    med = {
        t: {
            "rps": "%.0f" % float(median(rps[t])),
            "p50": median([ms(r["p50_us"]) for r in per[t]]),
            "p99": median([ms(r["p99_us"]) for r in per[t]]),
            "cpu": median([r["cpu_req"] for r in per[t]]),
        }
        for t in targets
    }
    R = lambda t: med[t]["rps"]  # noqa: E731
    r_health = div(R("app /health"), R("nginx /health"))
    r_redis = div(R("app /redis"), R("app /health"))
    r_db = div(R("app /database"), R("app /health"))
    r_redis_ng = div(R("app /redis"), R("nginx /health"))
    r_db_ng = div(R("app /database"), R("nginx /health"))
    per_round = ""
    for i in range(rounds):
        ng, ah, ar, ad = (rps[t][i] for t in targets[:4])
        per_round += f"| {i + 1} | {div(ah, ng)} | {div(ar, ah)} | {div(ad, ah)} |\n"
    order_text = "nginx /health, app /health, app /redis, app /database"
    diag_row = ""
    if diag:
        order_text = """nginx /health, app /health, app /health without access log (diagnostic: a
  second instance, same config plus `[logs] level = "warn"`), nginx with an access log
  (diagnostic: `/health-logged`, the same answer with `access_log ... buffer=64k flush=100ms`),
  app /redis, app /database"""
        t = "app /health, no access log"
        d = med[t]
        diag_row = (
            f'| *diagnostic:* app /health with `[logs] level = "warn"` (no access line) | {d["rps"]} | {d["p50"]} | {d["p99"]}'
            f' | {div(d["rps"], R("nginx /health"))} | {div(d["rps"], R("app /health"))} | {d["cpu"]} |'
        )
        t = "nginx /health, access log"
        d = med[t]
        diag_row += (
            f'\n| *diagnostic:* nginx /health with a buffered `access_log` (the app\'s logging, in nginx) | {d["rps"]} | {d["p50"]} | {d["p99"]}'
            f' | {div(d["rps"], R("nginx /health"))} | {div(d["rps"], R("app /health"))} | {d["cpu"]} |'
        )
    raw_rows = "\n".join(
        f'| {r["round"]} | {r["target"]} | {r["kept"]} | {r["requests"]} | {r["rps"]} | {ms(r["p50_us"])}'
        f' | {ms(r["p90_us"])} | {ms(r["p99_us"])} | {ms(r["max_us"])} | {r["err_status"]} | {r["errs"]}'
        f' | {r["cpu"]} | {r["cpu_req"]} | {r["sbusy"]} | {r["lbusy"]} | {r["others"]} | {r["load"]}'
        f' | {r["quiet"]} | {r["dropped"]} |'
        for r in runs
    )
    if len(boots["file"]) != int(m["boots"]) or len(boots["s3"]) != int(m["boots"]):
        sys.exit(f"expected {m['boots']} boots per config, got {len(boots['file'])} and {len(boots['s3'])}")
    bf, bs = sorted(boots["file"], key=float), sorted(boots["s3"], key=float)
    bf_med, bs_med = median(bf), median(bs)
    bf_text, bs_text = "".join(x + " " for x in bf), "".join(x + " " for x in bs)
    idle_bytes = int(m["app_idle_rss"]) * 1024
    size, nginx_size = int(m["size"]), int(m["nginx_size"])
    sc, lc = m["server_cpu"], m["load_cpu"]
    cpu = lambda t: med[t]["cpu"]  # noqa: E731
    row = lambda t, label, vs_ng, vs_app: (  # noqa: E731
        f"| {label} | {R(t)} | {med[t]['p50']} | {med[t]['p99']} | {vs_ng} | {vs_app} | {cpu(t)} |"
    )
    out = f"""# Benchmarks: suaicloudapp side by side with nginx

Written by `bench/run.sh` (`make bench`); do not edit by hand. Issue 7.

## Machine and run

| | |
|---|---|
| Date | {m["date_utc"]} |
| Machine | {m["ncpu"]} CPUs, {m["cpu_model"]}, {m["mem_total"]} RAM |
| Kernel | {m["kernel"]} |
| Load average (1/5/15 min) | start: {m["load_start"]}; end: {m["load_end"]} |
| Commit | `{m["commit"]}`{m["dirty"]} |
| Binary under test | `{m["bin"]}`, built {m["mtime"]}, {m["filetype"]} |
| Binary sha256 | `{m["sha"]}` |
| Tools | {m["wrk_ver"]}; nginx {m["nginx_ver"]}; {m["py_ver"]} |
| Whole run | {m["elapsed"]} s (install and backends included) |

Other work on the machine (builds, a VM) may share these CPUs: each run waits for the machine
to be quiet first, and a run disturbed anyway is repeated (raw table: "others", "kept").
Disturbed runs kept for lack of retries: {m["disturbed_kept"]}.

## Commands

- Servers pinned to CPU {sc}, the load generator to CPU {lc}:
  - `taskset -c {sc} nginx -p DIR -c DIR/nginx.conf` (config below: one worker,
    `access_log off`, `location = /health {{ return 200 "healthy"; }}`,
    `keepalive_requests 100000000` so neither server closes the keep-alive connections)
  - `taskset -c {sc} suaicloudapp --config config.toml serve` (the seed schema pointed at the
    test backends: MariaDB 127.0.0.1:{m["mysql_port"]}, Redis 127.0.0.1:{m["redis_port"]}, moto
    {m["moto_url"]}; `[probes] cache_ms = 1000`; default log level `info`, so one access line
    per request goes to the log file and to stderr, both files on local disk)
- Load, per target and round: `taskset -c {lc} wrk -t1 -c{m["conns"]} -d{m["duration"]}s --latency -s bench/wrk-report.lua URL`,
  after an unmeasured {m["warmup"]} s warm-up with the same connections; {rounds} rounds, each
  {order_text} in that order. Every page is checked to answer 200 before its run.
- Boot: `bench/boot_time.py` spawns the binary (pinned to CPU {sc}; the poller on CPU
  {lc}) and times exec to the first `200` on `/health` (poll: connect, `GET /health`,
  0.2 ms between refused connects), then SIGTERM; 1 warm-up run discarded, {m["boots"]} measured.
  File config: `--config config.toml`. S3: `--config s3://{m["bucket"]}/<key>` (same config, uploaded) with
  `AWS_ENDPOINT_URL={m["moto_url"]}`, dummy keys, `AWS_EC2_METADATA_DISABLED=true`.
- Memory: `VmRSS` from `/proc/PID/status` 1 s after the first 200 (idle), `VmHWM` after all
  rounds (loaded). nginx: master + worker summed.
- Size: `stat -c %s` of the binary.

## Throughput and latency (median of {rounds} rounds)

| Target | req/s | p50 ms | p99 ms | vs nginx /health | vs app /health | server CPU µs/req |
|---|---:|---:|---:|---:|---:|---:|
| nginx /health | {R("nginx /health")} | {med["nginx /health"]["p50"]} | {med["nginx /health"]["p99"]} | 1.00 | | {cpu("nginx /health")} |
{row("app /health", "app /health", r_health, "1.00")}
{row("app /redis", "app /redis (cached)", r_redis_ng, r_redis)}
{row("app /database", "app /database (cached)", r_db_ng, r_db)}
{diag_row}

Ratios per round (req/s):

| Round | app /health / nginx | app /redis / app /health | app /database / app /health |
|---:|---:|---:|---:|
{per_round}
Raw numbers per run (latencies in ms; "non-2xx" and "socket errors" from wrk; "server CPU" is
the server's user + system time over the run (its length as wrk measured it), 100 = one full
core, and "µs/req" the same per request (the cost of one answer, least sensitive to other
load); "CPU{sc} busy" and "CPU{lc} busy" are the whole cores as /proc/stat saw them (any
process, interrupts included): a server
below 100 % while its core is not busy either means the load generator was the limit;
"others" is CPU{sc} busy minus the server, i.e. what other work took from the server's core
(over {m["disturbed"]}: the run is repeated, at most {m["retries"]} times, "kept" = no); "load" is the 1-minute
load average when the run started; "quiet wait" is how long the run waited for the machine to
be at most {m["quiet_busy"]} % busy, "+" when it gave up after {m["quiet_max"]} s; "log lines dropped" is
what the app's log writer could not keep up with during the run and its warm-up, from the
"N log lines dropped" notes it writes to its own log):

| Round | Target | kept | requests | req/s | p50 | p90 | p99 | max | non-2xx | socket errors | server CPU % | server CPU µs/req | CPU{sc} busy % | CPU{lc} busy % | others % | load | quiet wait s | log lines dropped |
|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{raw_rows}

## Boot time (exec to the first 200 on /health, {m["boots"]} runs)

| Config | median ms | min ms | max ms |
|---|---:|---:|---:|
| file | {bf_med} | {bf[0]} | {bf[-1]} |
| s3:// on moto | {bs_med} | {bs[0]} | {bs[-1]} |

Raw, sorted (ms): file: {bf_text}

s3: {bs_text}

## Memory

| Process | idle RSS (VmRSS) | loaded (VmHWM) |
|---|---:|---:|
| suaicloudapp | {m["app_idle_rss"]} kB ({mib(idle_bytes)} MiB) | {m["app_loaded_hwm"]} kB ({mib(int(m["app_loaded_hwm"]) * 1024)} MiB) |
| nginx (master + worker) | {m["nginx_idle_rss"]} kB | {m["nginx_loaded_hwm"]} kB |

suaicloudapp idle: {m["app_idle_anon"]} kB anonymous (heap, stacks) + {m["app_idle_file"]} kB file-backed (the
pages of the binary it has touched); VmHWM at that point {m["app_idle_hwm"]} kB. After the load: VmRSS
{m["app_loaded_rss"]} kB, of which {m["app_loaded_anon"]} kB anonymous; {m["app_threads"]} threads.

## Size

| Binary | bytes | MB | MiB |
|---|---:|---:|---:|
| suaicloudapp ({m["filetype"]}) | {size} | {mb(size)} | {mib(size)} |
| nginx (`{m["nginx_path"]}`, dynamically linked: shared libraries not counted) | {nginx_size} | {mb(nginx_size)} | {mib(nginx_size)} |

## Targets (issue 7; goals, not test asserts)

MB in the goals is read as MiB (2^20 bytes: what `ps`, `top` and `ls -h` show); the
decimal value (10^6 bytes) is in brackets.

| Target | Goal | Measured | Result |
|---|---|---|---|
| /health req/s vs nginx | >= {m["t_health_vs_nginx"]}x | {r_health}x | {verdict(r_health, "ge", m["t_health_vs_nginx"])} |
| /redis (cached) req/s vs /health | >= {m["t_probe_vs_health"]}x | {r_redis}x | {verdict(r_redis, "ge", m["t_probe_vs_health"])} |
| /database (cached) req/s vs /health | >= {m["t_probe_vs_health"]}x | {r_db}x | {verdict(r_db, "ge", m["t_probe_vs_health"])} |
| boot to the first 200, file config (median) | <= {m["t_boot_ms"]} ms | {bf_med} ms | {verdict(bf_med, "le", m["t_boot_ms"])} |
| idle RSS | <= {m["t_idle_rss_mb"]} MB | {mib(idle_bytes)} MiB ({mb(idle_bytes)} MB) | {verdict(mib(idle_bytes), "le", m["t_idle_rss_mb"])} |
| release binary size | <= {m["t_size_mb"]} MB | {mib(size)} MiB ({mb(size)} MB) | {verdict(mib(size), "le", m["t_size_mb"])} |

Boot with the `s3://` config (no target; GetObject from moto included): median {bs_med} ms.
"""
    if cgs:
        ng = next(c for c in cgs if c["target"] == "nginx /health")
        ng_per = int(ng["instructions"]) // int(ng["requests"])
        cg_rows = "\n".join(
            f'| {c["target"]} | {c["requests"]} | {c["instructions"]} | {int(c["instructions"]) // int(c["requests"])}'
            f' | {div(ng_per, int(c["instructions"]) // int(c["requests"]))} |'
            for c in cgs
        )
        out += f"""
## Instructions per request (callgrind)

Each server alone under `valgrind --tool=callgrind` (pinned to CPU {sc}; the app with
`--trace-children=yes` to follow its start-up re-exec), loaded by `wrk -t1 -c8 -d{m["cg_seconds"]}s` after
1 s unmeasured; instructions of all the server's threads between the two, divided by the
requests wrk counted. User-space work only (the kernel's share of each request, the same
syscalls for both, is not counted), and not slowed or sped up by anything else on the
machine: the steadiest ratio here. "vs nginx" is nginx's instructions per request over the
target's, as req/s ratios read (higher is better, 1.00 = as cheap as nginx).

| Target | requests | instructions | per request | vs nginx |
|---|---:|---:|---:|---:|
{cg_rows}
"""
    out += f"""
## nginx config used

```nginx
{nginx_conf.rstrip(chr(10))}
```

## Raw wrk output

<details><summary>all runs</summary>

{wrk_log}</details>
"""
    return out


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    raw, wrk, conf, dst = sys.argv[1:]
    meta, runs, boots, cgs = read_raw(raw)
    with open(wrk, encoding="utf-8") as f:
        wrk_log = f.read()
    with open(conf, encoding="utf-8") as f:
        nginx_conf = f.read()
    text = render(meta, runs, boots, cgs, wrk_log, nginx_conf)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text)
    # One line for run.sh's log: the targets' figures as the report states them.
    goals = {l.split(" | ")[0].lstrip("| "): l.split(" | ")[2] for l in text.splitlines()
             if l.startswith("| ") and l.endswith((" **met** |", " **MISSED** |"))}
    print("; ".join(f"{k} {v}" for k, v in goals.items()))


if __name__ == "__main__":
    main()
