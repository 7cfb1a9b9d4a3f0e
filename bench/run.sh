#!/usr/bin/env bash
# suaicloudapp side by side with nginx (issue 7): /health, cached probe pages, boot time,
# memory and binary size, in one run. Writes bench/RESULTS.md.
#
# Usage: bench/run.sh            (or: make bench)
#
# What it does:
#   1. installs what is missing (Debian: wrk, nginx, python3, curl) and brings the local test
#      backends up with scripts/test-env.sh (MariaDB 13306, Redis 16379, moto S3 15000);
#   2. copies the binary under test (default: the static size-tuned build,
#      target/x86_64-unknown-linux-musl/release/suaicloudapp) to a temp dir, so a rebuild
#      during the run cannot change it;
#   3. starts a private nginx (own prefix and config in the temp dir, free port,
#      worker_processes 1, access_log off, `return 200 "healthy"`) and suaicloudapp (file
#      config pointing at the test backends, free port), both pinned to CPU 0;
#   4. three interleaved rounds of nginx /health, app /health, (diagnostic: app /health with
#      no access log,) app /redis, app /database:
#      wrk pinned to CPU 1, -t1 -c64 -d10s --latency (64 keep-alive connections), after a
#      1 s warm-up each; req/s, p50, p99 from a wrk `done` hook (bench/wrk-report.lua);
#   5. boot time, exec to the first 200 on /health, median of 20 (plus one discarded warm-up),
#      with a file config and with `--config s3://...` on the moto emulator (bench/boot_time.py);
#   6. idle RSS (1 s after the first 200) and loaded RSS (VmHWM after every round), size;
#   6b. instructions per request under callgrind (nginx /health, app /health, and without the
#      access line): a ratio no other load on the machine can move;
#   7. writes every number it observed to a raw file (one record a line), and bench/report.py
#      turns it into bench/RESULTS.md: machine, date, commit, commands, raw numbers, medians,
#      ratios, each target met or missed.
#
# Environment (all optional):
#   BIN=PATH                binary under test (default: the static musl release build)
#   BENCH_WAIT_BIN=SECS     wait this long for the default binary to appear (default 0); if it is
#                           still missing, scripts/build-static.sh builds it (when present)
#   BENCH_DURATION=SECS     seconds per measured wrk run (default 10; the issue asks >= 10)
#   BENCH_WARMUP=SECS       seconds of unmeasured load before each run (default 1; 0: none)
#   BENCH_ROUNDS=N          interleaved rounds (default 3)
#   BENCH_CONNECTIONS=N     keep-alive connections (default 64)
#   BENCH_BOOTS=N           measured boots per config (default 20)
#   BENCH_SERVER_CPU=N      CPU the servers are pinned to (default 0)
#   BENCH_LOAD_CPU=N        CPU wrk and the boot poller are pinned to (default 1)
#   BENCH_OUT=PATH          report path (default bench/RESULTS.md)
#   BENCH_DIAG=0|1          also measure /health of a second instance with [logs] level = "warn"
#                           (no access line per request), and nginx with a buffered access log:
#                           shows what the access log costs each (default 1; no target uses them)
#   BENCH_CALLGRIND_SECONDS=N  seconds of load per target under callgrind (default 5; 0: skip)
#   BENCH_QUIET_BUSY=PCT    before each run, wait until the whole machine is at most this busy
#                           over 1 s (default 10) ...
#   BENCH_QUIET_MAX=SECS    ... but no longer than this (default 120), then measure anyway
#   BENCH_DISTURBED=PCT     a run where other processes took more than this share of the
#                           server's CPU is repeated (default 15) ...
#   BENCH_RETRIES=N         ... at most N times (default 2); every attempt is in the raw table
#
# All traffic goes to 127.0.0.1. Every load loop is bounded in count and time. Only processes
# this script started are stopped (by PID), on exit or on Ctrl-C.
set -euo pipefail

BENCH_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$BENCH_DIR/.." && pwd -P)
DEFAULT_BIN="$REPO/target/x86_64-unknown-linux-musl/release/suaicloudapp"

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
BOOTS=${BENCH_BOOTS:-20}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
WAIT_BIN=${BENCH_WAIT_BIN:-0}
DIAG=${BENCH_DIAG:-1}
CG_SECONDS=${BENCH_CALLGRIND_SECONDS:-5}
QUIET_BUSY=${BENCH_QUIET_BUSY:-10}
QUIET_MAX=${BENCH_QUIET_MAX:-120}
DISTURBED=${BENCH_DISTURBED:-15}
RETRIES=${BENCH_RETRIES:-2}
OUT=${BENCH_OUT:-$BENCH_DIR/RESULTS.md}

# Targets from issues 7 and 24 (goals for the benchmark, not test asserts; issue 24 moved the
# binary size to 12 with the real crates, no local stand-ins). Sizes: MiB.
T_HEALTH_VS_NGINX=0.9
T_PROBE_VS_HEALTH=0.5
T_BOOT_MS=15
T_IDLE_RSS_MB=12
T_SIZE_MB=12

PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PATH
HOST=127.0.0.1

# log, die, have, apt_install, stop_pid: scripts/lib.sh.
LIB_TAG=bench
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"

for v in DURATION WARMUP ROUNDS CONNS BOOTS SERVER_CPU LOAD_CPU WAIT_BIN DIAG QUIET_BUSY QUIET_MAX DISTURBED RETRIES; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
((DURATION >= 1 && DURATION <= 600)) || die "BENCH_DURATION must be 1..600 s"
((WARMUP <= 60)) || die "BENCH_WARMUP must be 0..60 s"
((ROUNDS >= 1 && ROUNDS <= 10)) || die "BENCH_ROUNDS must be 1..10"
((CONNS >= 1 && CONNS <= 1000)) || die "BENCH_CONNECTIONS must be 1..1000"
((BOOTS >= 1 && BOOTS <= 200)) || die "BENCH_BOOTS must be 1..200"
((WAIT_BIN <= 7200)) || die "BENCH_WAIT_BIN must be 0..7200 s"
((QUIET_MAX <= 1800)) || die "BENCH_QUIET_MAX must be 0..1800 s"
((RETRIES <= 5)) || die "BENCH_RETRIES must be 0..5"
((SERVER_CPU != LOAD_CPU)) || die "BENCH_SERVER_CPU and BENCH_LOAD_CPU must differ"
NCPU=$(nproc)
((SERVER_CPU < NCPU && LOAD_CPU < NCPU)) || die "this machine has $NCPU CPUs; pick CPUs below that"

# ----------------------------------------------------------------------------
# installation and backends

ensure_tools() {
    local pkgs=()
    have wrk || pkgs+=(wrk)
    have nginx || pkgs+=(nginx)
    [[ -x /usr/bin/python3 ]] || have python3 || pkgs+=(python3)
    have curl || pkgs+=(curl ca-certificates)
    have taskset || pkgs+=(util-linux)
    have file || pkgs+=(file)
    have valgrind || pkgs+=(valgrind)
    # Only the binaries are used: a private nginx is started below. Debian may start the
    # system nginx on port 80 after install unless policy-rc.d forbids it; that one is not ours.
    apt_install "${pkgs[@]}"
}

PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

# ----------------------------------------------------------------------------
# the binary under test

find_bin() {
    if [[ -n ${BIN:-} ]]; then
        [[ -x $BIN ]] || die "BIN=$BIN is not an executable file"
        printf '%s\n' "$BIN"
        return
    fi
    local waited=0
    while [[ ! -x $DEFAULT_BIN ]] && ((waited < WAIT_BIN)); do
        ((waited % 60 == 0)) && log "waiting for $DEFAULT_BIN (${waited}s of ${WAIT_BIN}s)"
        sleep 5
        waited=$((waited + 5))
    done
    if [[ ! -x $DEFAULT_BIN ]]; then
        [[ -x $REPO/scripts/build-static.sh ]] ||
            die "no $DEFAULT_BIN: build the static binary first, or pass BIN=path/to/suaicloudapp"
        log "building the static binary with scripts/build-static.sh (cargo waits for any other build)"
        "$REPO/scripts/build-static.sh" >&2 || die "scripts/build-static.sh failed"
        [[ -x $DEFAULT_BIN ]] || die "scripts/build-static.sh did not produce $DEFAULT_BIN"
    fi
    printf '%s\n' "$DEFAULT_BIN"
}

# ----------------------------------------------------------------------------
# processes we start: tracked by PID, stopped on exit

TMP=""
NGINX_PID=""
APP_PID=""
DIAG_PID=""
S3_KEY=""
MOTO_PY=""

cleanup() {
    local rc=$?
    stop_pid "$APP_PID"
    stop_pid "$DIAG_PID"
    stop_pid "$NGINX_PID"
    stop_pid "$CG_PID"
    if [[ -n $S3_KEY && -n $MOTO_PY ]]; then s3_object delete "$S3_KEY" || true; fi
    if [[ -n $TMP && -d $TMP ]]; then rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_200 URL SECONDS: poll until the URL answers 200 (bounded).
wait_200() {
    local url=$1 secs=$2 i
    for ((i = 0; i < secs * 20; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]] && return 0
        sleep 0.05
    done
    return 1
}

# kB of a /proc/PID/status field (VmRSS, VmHWM).
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# PID plus its direct children (nginx master + worker).
pid_tree() { printf '%s\n' "$1"; pgrep -P "$1" || true; }

# Sum of a /proc status field over PID and its children, kB.
tree_kb() {
    local total=0 p v
    for p in $(pid_tree "$1"); do
        v=$(proc_kb "$p" "$2" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    printf '%s\n' "$total"
}

# CPU ticks (user + system) used so far by PID and its children (threads included).
tree_ticks() {
    local total=0 p t
    for p in $(pid_tree "$1"); do
        t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || true)
        total=$((total + ${t:-0}))
    done
    printf '%s\n' "$total"
}

# "busy total" jiffies of CPU N from /proc/stat (busy: everything but idle and iowait).
core_ticks() {
    awk -v c="cpu$1" '$1 == c { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6 }' /proc/stat
}

# busy % of CPU N between two core_ticks snapshots.
core_busy() { # "B0 T0" "B1 T1"
    awk -v x="$1" -v y="$2" 'BEGIN { split(x, a, " "); split(y, b, " ");
        printf "%.0f", (b[2] > a[2]) ? 100 * (b[1] - a[1]) / (b[2] - a[2]) : 0 }'
}

# ----------------------------------------------------------------------------
# nginx and suaicloudapp

start_nginx() {
    local dir="$TMP/nginx" user_line=""
    mkdir -p "$dir/logs" "$dir/tmp"
    NGINX_PORT=$(free_port)
    [[ $(id -u) -eq 0 ]] && user_line="user root root;"
    cat >"$dir/nginx.conf" <<EOF
# Private instance for bench/run.sh: one worker, no access log, a fixed answer.
$user_line
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    default_type text/plain;
    # hyper has no per-connection request cap; lift nginx's (default 1000) so both serve the
    # same 64 keep-alive connections for the whole run.
    keepalive_requests 100000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen $HOST:$NGINX_PORT;
        location = /health { return 200 "healthy"; }
        # Diagnostic only: the same answer with an access line per request, buffered and
        # flushed at most 100 ms late like suaicloudapp's log writer.
        location = /health-logged {
            access_log $dir/logs/access.log combined buffer=64k flush=100ms;
            return 200 "healthy";
        }
    }
}
EOF
    nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" -t >/dev/null 2>"$dir/test.out" ||
        die "nginx -t failed: $(cat "$dir/test.out")"
    taskset -c "$SERVER_CPU" nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
        >"$dir/logs/stdout.log" 2>&1 &
    NGINX_PID=$!
    wait_200 "http://$HOST:$NGINX_PORT/health" 10 || die "nginx did not answer 200 on /health in 10 s"
}

write_app_config() { # FILE PORT LOGFILE [LEVEL]
    cat >"$1" <<EOF
# Generated by bench/run.sh: the seed schema pointed at the local test backends.
[server]
host = "$HOST"
port = $2

[logs]
file = "$3"
${4:+level = \"$4\"}

[probes]
cache_ms = 1000

[aws]
region = "$SUAI_TEST_AWS_REGION"
endpoint_url = "$SUAI_TEST_MOTO_URL"

[s3]
bucket = "$SUAI_TEST_BUCKET"

[database]
host = "$SUAI_TEST_MYSQL_HOST"
port = $SUAI_TEST_MYSQL_PORT
user = "$SUAI_TEST_MYSQL_USER"
dbname = "$SUAI_TEST_MYSQL_DB"

[redis]
host = "$SUAI_TEST_REDIS_HOST"
port = $SUAI_TEST_REDIS_PORT

[dynamodb]
table = "$SUAI_TEST_TABLE"
partition_key = "id"
EOF
}

# The app's environment: secrets and AWS settings only, no ~/.aws files, no IMDS look-up.
APP_ENV=()
set_app_env() {
    APP_ENV=(env -i "PATH=$PATH" "HOME=$TMP/home"
        "SUAICLOUDAPP_DATABASE_PASSWORD=$SUAI_TEST_MYSQL_PASSWORD"
        "AWS_ACCESS_KEY_ID=$SUAI_TEST_AWS_ACCESS_KEY_ID"
        "AWS_SECRET_ACCESS_KEY=$SUAI_TEST_AWS_SECRET_ACCESS_KEY"
        "AWS_REGION=$SUAI_TEST_AWS_REGION"
        "AWS_EC2_METADATA_DISABLED=true"
        "AWS_CONFIG_FILE=$TMP/home/no-aws-config"
        "AWS_SHARED_CREDENTIALS_FILE=$TMP/home/no-aws-credentials")
}

# start_app NAME [LEVEL]: an instance in $TMP/NAME on a free port, pinned like nginx; sets
# START_PID and START_PORT.
start_app() {
    local dir="$TMP/$1"
    mkdir -p "$dir"
    START_PORT=$(free_port)
    write_app_config "$dir/config.toml" "$START_PORT" "$dir/output.log" "${2:-}"
    (cd "$dir" && exec taskset -c "$SERVER_CPU" "${APP_ENV[@]}" "$BIN_COPY" --config "$dir/config.toml" serve \
        >"$dir/stderr.log" 2>&1) &
    START_PID=$!
    wait_200 "http://$HOST:$START_PORT/health" 10 ||
        die "suaicloudapp did not answer 200 on /health in 10 s: $(tail -n 5 "$dir/stderr.log")"
}

# ----------------------------------------------------------------------------
# instructions per request (callgrind): the same work counted in instructions, which another
# process on the machine cannot change (valgrind runs the program on a simulated CPU).

CG_PID=""
CG_RUNS=0

# cg_count TARGET URL -- COMMAND...: starts COMMAND under callgrind (following its re-exec),
# waits for URL to answer 200, loads it 1 s unmeasured, zeroes the counters, loads it
# CG_SECONDS with wrk (8 connections: valgrind serialises threads and is ~50x slower), dumps,
# and records requests and instructions (all threads, kernel time not counted).
cg_count() {
    local target=$1 url=$2 dir="$TMP/callgrind-$CG_RUNS"
    CG_RUNS=$((CG_RUNS + 1))
    shift 3
    mkdir -p "$dir"
    taskset -c "$SERVER_CPU" valgrind --tool=callgrind --trace-children=yes \
        --callgrind-out-file="$dir/cg.%p" "$@" >"$dir/valgrind.log" 2>&1 &
    CG_PID=$!
    wait_200 "$url" 120 || die "$target under callgrind did not answer 200 in 120 s: $(tail -n 5 "$dir/valgrind.log")"
    taskset -c "$LOAD_CPU" wrk -t1 -c8 -d1s "$url" >/dev/null
    callgrind_control -z "$CG_PID" >/dev/null 2>&1
    local out
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c8 -d"${CG_SECONDS}s" "$url")
    callgrind_control -d "$CG_PID" >/dev/null 2>&1
    stop_pid "$CG_PID"
    CG_PID=""
    local reqs ir
    reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
    # The dump after zeroing is <file>.1; its "totals:" line is the instructions since then.
    ir=$(cat "$dir"/cg.*.1 | awk '$1 == "totals:" { n += $2 } END { print n + 0 }')
    [[ ${reqs:-0} -gt 0 && $ir -gt 0 ]] ||
        die "$target under callgrind: no count ($(tail -n 3 "$dir/valgrind.log"))"
    emit cg "target=$target" "requests=$reqs" "instructions=$ir"
    log "callgrind $target: $reqs requests, $((ir / reqs)) instructions each"
}

# s3_object put KEY FILE | s3_object delete KEY: boto3 from the moto venv.
s3_object() {
    "$MOTO_PY" -c '
import sys, boto3
op, key, url, bucket = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
if op == "put":
    with open(sys.argv[5], "rb") as f:
        s3.put_object(Bucket=bucket, Key=key, Body=f.read())
else:
    s3.delete_object(Bucket=bucket, Key=key)
' "$1" "$2" "$SUAI_TEST_MOTO_URL" "$SUAI_TEST_BUCKET" "${3:-}"
}
# ----------------------------------------------------------------------------
# load runs

RAW=""          # what the run observed, one record a line: bench/report.py reads it
QUIET_WAITED=0
DISTURBED_KEPT=0
WRK_LOG=""

# emit KIND KEY=VALUE...: one record of the raw file (values hold no tab nor newline).
emit() {
    local IFS=$'\t'
    printf '%s\n' "$*" >>"$RAW"
}

# field NAME LINE: value of NAME=... in a WRK_RESULT line.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

ms() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; }

# Machine-wide busy % (all CPUs, 100 = every core busy) over one second. Niced work (a
# background `nice cargo build`) is not counted: it yields to the servers under test.
machine_busy() {
    local a b
    a=$(awk '$1 == "cpu" { b = $2 + $4 + $7 + $8 + $9; print b, b + $3 + $5 + $6 }' /proc/stat)
    sleep 1
    b=$(awk '$1 == "cpu" { b = $2 + $4 + $7 + $8 + $9; print b, b + $3 + $5 + $6 }' /proc/stat)
    core_busy "$a" "$b"
}

# wait_quiet: wait (at most QUIET_MAX s) until the machine is nearly idle before a run, so other
# work on a shared machine (builds, VMs) is not measured. Sets QUIET_WAITED (s, "+" if given up).
wait_quiet() {
    local waited=0 busy
    while :; do
        busy=$(machine_busy)
        ((busy <= QUIET_BUSY)) && break
        if ((waited >= QUIET_MAX)); then
            QUIET_WAITED="${waited}+"
            log "machine still ${busy}% busy after ${waited} s; measuring anyway"
            return
        fi
        ((waited % 30 == 0)) && log "machine ${busy}% busy (other work); waiting for it to settle"
        waited=$((waited + 1))
    done
    QUIET_WAITED=$waited
}

# run_wrk ROUND TARGET URL SERVER_PID: one measured run. A run during which something else took
# more than DISTURBED points of the server's core is discarded (kept in the raw table) and
# repeated, at most RETRIES times.
run_wrk() {
    local round=$1 target=$2 url=$3 pid=$4 out line t0 t1 cpu status errs load s0 s1 l0 l1
    local attempt sbusy others kept note cpu_req
    for ((attempt = 1; attempt <= RETRIES + 1; attempt++)); do
        status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true)
        [[ $status == 200 ]] || die "$target: $url answered $status before the run (a benchmark of errors is meaningless)"
        wait_quiet
        if ((WARMUP > 0)); then
            taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
        fi
        load=$(cut -d' ' -f1 /proc/loadavg)
        t0=$(tree_ticks "$pid")
        s0=$(core_ticks "$SERVER_CPU")
        l0=$(core_ticks "$LOAD_CPU")
        out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
            -s "$BENCH_DIR/wrk-report.lua" "$url" 2>&1) || die "wrk failed on $url: $out"
        t1=$(tree_ticks "$pid")
        s1=$(core_ticks "$SERVER_CPU")
        l1=$(core_ticks "$LOAD_CPU")
        line=$(grep '^WRK_RESULT ' <<<"$out") || die "no WRK_RESULT from wrk on $url: $out"
        # Log lines the app's writer dropped during the run and its warm-up: a fast run that
        # silently lost access lines would not be a fair comparison.
        dropped=-
        case $target in
        nginx*) ;;
        *"no access log") dropped=$(dropped_lines "$url" "$TMP/diag") ;;
        *) dropped=$(dropped_lines "$url" "$TMP/app") ;;
        esac
        # Over the run's length as wrk measured it, not the -d it was asked for.
        cpu=$(awk -v d="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v us="$(field duration_us "$line")" \
            'BEGIN { printf "%.0f", (us > 0) ? 100 * d / hz / (us / 1e6) : 0 }')
        sbusy=$(core_busy "$s0" "$s1")
        cpu_req=$(awk -v d="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v n="$(field requests "$line")" \
            'BEGIN { printf "%.2f", (n > 0) ? 1e6 * d / hz / n : 0 }')
        others=$((sbusy > cpu ? sbusy - cpu : 0))
        errs=$(($(field err_connect "$line") + $(field err_read "$line") + $(field err_write "$line") + $(field err_timeout "$line")))
        kept=yes note=""
        if ((others > DISTURBED)); then
            if ((attempt <= RETRIES)); then
                kept=no note=" (disturbed: other work took ${others}% of CPU$SERVER_CPU; repeated)"
            else
                note=" (disturbed: other work took ${others}% of CPU$SERVER_CPU; kept, out of retries)"
                DISTURBED_KEPT=$((DISTURBED_KEPT + 1))
            fi
        fi
        emit run "round=$round" "target=$target" "attempt=$attempt" "kept=$kept" \
            "requests=$(field requests "$line")" "rps=$(field rps "$line")" \
            "p50_us=$(field p50_us "$line")" "p90_us=$(field p90_us "$line")" \
            "p99_us=$(field p99_us "$line")" "max_us=$(field max_us "$line")" \
            "duration_us=$(field duration_us "$line")" "err_status=$(field err_status "$line")" \
            "errs=$errs" "cpu=$cpu" "cpu_req=$cpu_req" "sbusy=$sbusy" "lbusy=$(core_busy "$l0" "$l1")" \
            "others=$others" "load=$load" "quiet=$QUIET_WAITED" "dropped=$dropped"
        {
            printf '### round %s, %s, attempt %s%s: %s\n\n```\n' "$round" "$target" "$attempt" "$note" "$url"
            grep -v '^WRK_RESULT ' <<<"$out"
            printf '```\n\n'
        } >>"$WRK_LOG"
        log "round $round $target: $(field rps "$line") req/s, p50 $(ms "$(field p50_us "$line")") ms, p99 $(ms "$(field p99_us "$line")") ms, server CPU ${cpu}%, CPU$SERVER_CPU busy ${sbusy}%$note"
        # The app writes one access line per request to its log file and to stderr: keep the
        # disk bounded between runs (both files are opened in append mode: truncation is safe).
        if [[ $target != nginx* ]]; then
            : >"$TMP/app/output.log"
            : >"$TMP/app/stderr.log"
        fi
        [[ $kept == yes ]] && break
    done
}

# dropped_lines URL DIR: the log lines the instance serving URL (in DIR) dropped since its log
# file was last emptied. Its writer notes each loss in the log itself ("N log lines dropped");
# `/logs` first writes out whatever is pending, so the last batch's note is counted too.
dropped_lines() {
    local base=${1%/*}
    curl -fsS -o /dev/null --max-time 5 "$base/logs?lines=1" || die "GET $base/logs failed"
    { grep -o '[0-9]* log lines dropped' "$2/output.log" || true; } | awk '{ n += $1 } END { print n + 0 }'
}

# ----------------------------------------------------------------------------
# main

main() {
    local started_s=$SECONDS
    ensure_tools
    log "test backends: scripts/test-env.sh up"
    "$REPO/scripts/test-env.sh" up >/dev/null
    local envfile="$REPO/.test-env/env"
    [[ -f $envfile ]] || die "scripts/test-env.sh did not write $envfile"
    # shellcheck disable=SC1090
    . "$envfile"
    MOTO_PY="$(dirname -- "$SUAI_TEST_MOTO_SERVER")/python"
    [[ -x $MOTO_PY ]] || die "no python in the moto venv ($MOTO_PY)"

    local bin
    bin=$(find_bin)
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/suai-bench.XXXXXX")
    mkdir -p "$TMP/home"
    BIN_COPY="$TMP/suaicloudapp"
    cp -- "$bin" "$BIN_COPY"
    chmod 0755 "$BIN_COPY"
    set_app_env
    WRK_LOG="$TMP/wrk.md"
    : >"$WRK_LOG"
    RAW="$TMP/raw.tsv"
    : >"$RAW"

    local date_utc commit dirty cpu_model mem_total kernel load_start wrk_ver nginx_ver
    date_utc=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
    commit=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    dirty=""
    [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]] && dirty=" (working tree has uncommitted changes)"
    cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    kernel=$(uname -srm)
    load_start=$(cut -d' ' -f1-3 /proc/loadavg)
    wrk_ver=$(wrk -v 2>&1 | head -n 1 | sed 's/ \[.*//; s/ Copyright.*//') || true
    nginx_ver=$(nginx -v 2>&1 | sed 's/^nginx version: //')

    local size sha mtime filetype
    size=$(stat -c %s "$BIN_COPY")
    sha=$(sha256sum "$BIN_COPY" | cut -d' ' -f1)
    mtime=$(date -u -r "$bin" '+%Y-%m-%d %H:%M:%S UTC')
    filetype=$(file -b "$BIN_COPY" | sed 's/, BuildID\[[^]]*\]=[0-9a-f]*//') || filetype=unknown
    log "binary: $bin ($size bytes, $filetype)"

    # --- servers up, idle RSS
    log "starting nginx and suaicloudapp on CPU $SERVER_CPU"
    start_nginx
    start_app app
    APP_PID=$START_PID APP_PORT=$START_PORT
    sleep 1
    local app_idle_rss app_idle_hwm nginx_idle_rss app_idle_anon app_idle_file
    app_idle_rss=$(proc_kb "$APP_PID" VmRSS)
    app_idle_hwm=$(proc_kb "$APP_PID" VmHWM)
    app_idle_anon=$(proc_kb "$APP_PID" RssAnon)
    app_idle_file=$(proc_kb "$APP_PID" RssFile)
    nginx_idle_rss=$(tree_kb "$NGINX_PID" VmRSS)
    log "idle RSS: suaicloudapp ${app_idle_rss} kB (anonymous ${app_idle_anon} kB, file ${app_idle_file} kB), nginx (master + worker) ${nginx_idle_rss} kB"
    if ((DIAG)); then
        start_app diag warn
        DIAG_PID=$START_PID DIAG_PORT=$START_PORT
    fi

    # --- load rounds, interleaved
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        run_wrk "$r" "nginx /health" "http://$HOST:$NGINX_PORT/health" "$NGINX_PID"
        run_wrk "$r" "app /health" "http://$HOST:$APP_PORT/health" "$APP_PID"
        if ((DIAG)); then
            run_wrk "$r" "app /health, no access log" "http://$HOST:$DIAG_PORT/health" "$DIAG_PID"
            run_wrk "$r" "nginx /health, access log" "http://$HOST:$NGINX_PORT/health-logged" "$NGINX_PID"
        fi
        run_wrk "$r" "app /redis" "http://$HOST:$APP_PORT/redis" "$APP_PID"
        run_wrk "$r" "app /database" "http://$HOST:$APP_PORT/database" "$APP_PID"
    done
    local app_loaded_hwm app_loaded_rss nginx_loaded_hwm app_threads app_loaded_anon
    app_loaded_hwm=$(proc_kb "$APP_PID" VmHWM)
    app_loaded_anon=$(proc_kb "$APP_PID" RssAnon)
    app_loaded_rss=$(proc_kb "$APP_PID" VmRSS)
    app_threads=$(proc_kb "$APP_PID" Threads)
    nginx_loaded_hwm=$(tree_kb "$NGINX_PID" VmHWM)
    log "loaded: suaicloudapp VmHWM ${app_loaded_hwm} kB (VmRSS now ${app_loaded_rss} kB), nginx VmHWM ${nginx_loaded_hwm} kB"
    stop_pid "$APP_PID"
    APP_PID=""
    stop_pid "$DIAG_PID"
    DIAG_PID=""
DIAG_PID=""
    stop_pid "$NGINX_PID"
    NGINX_PID=""

    # --- boot time
    local boot_dir="$TMP/boot" boot_port boot_file=() boot_s3=()
    # The s3:// runs start in their own directory: the fetched copy (config.toml) lands there.
    mkdir -p "$boot_dir/s3"
    boot_port=$(free_port)
    write_app_config "$boot_dir/config.toml" "$boot_port" "$boot_dir/output.log"
    wait_quiet
    log "boot time, file config: $BOOTS runs (quiet wait ${QUIET_WAITED} s)"
    mapfile -t boot_file < <(cd "$boot_dir" && "$PY" "$BENCH_DIR/boot_time.py" --port "$boot_port" \
        --runs "$BOOTS" --warmup 1 --server-cpu "$SERVER_CPU" --poll-cpu "$LOAD_CPU" \
        --log "$boot_dir/boot-file.log" -- "${APP_ENV[@]}" "$BIN_COPY" --config "$boot_dir/config.toml" serve |
        sed -n 's/^BOOT_MS //p')
    ((${#boot_file[@]} == BOOTS)) || die "boot measurement (file config) failed; log: $(tail -n 5 "$boot_dir/boot-file.log")"
    S3_KEY="suaicloudapp-bench/config-$$.toml"
    s3_object put "$S3_KEY" "$boot_dir/config.toml" || die "cannot upload the config to moto"
    wait_quiet
    log "boot time, s3://$SUAI_TEST_BUCKET/$S3_KEY on moto: $BOOTS runs (quiet wait ${QUIET_WAITED} s)"
    mapfile -t boot_s3 < <(cd "$boot_dir/s3" && "$PY" "$BENCH_DIR/boot_time.py" --port "$boot_port" \
        --runs "$BOOTS" --warmup 1 --server-cpu "$SERVER_CPU" --poll-cpu "$LOAD_CPU" \
        --log "$boot_dir/boot-s3.log" -- "${APP_ENV[@]}" "AWS_ENDPOINT_URL=$SUAI_TEST_MOTO_URL" \
        "$BIN_COPY" --config "s3://$SUAI_TEST_BUCKET/$S3_KEY" serve |
        sed -n 's/^BOOT_MS //p')
    ((${#boot_s3[@]} == BOOTS)) || die "boot measurement (s3 config) failed; log: $(tail -n 5 "$boot_dir/boot-s3.log")"
    s3_object delete "$S3_KEY" || true
    S3_KEY=""

    # --- instructions per request
    if ((CG_SECONDS > 0)); then
        local cg_ng="$TMP/nginx-cg" cg_app="$TMP/app-cg" cg_port
        mkdir -p "$cg_ng/logs" "$cg_app"
        # The bench's nginx config in one process (callgrind follows one), on its own port.
        cg_port=$(free_port)
        sed -e "s|listen $HOST:$NGINX_PORT;|listen $HOST:$cg_port;|" -e "s|^pid .*|pid $cg_ng/nginx.pid;|" \
            -e 's|^worker_processes 1;|master_process off;\nworker_processes 1;|' \
            "$TMP/nginx/nginx.conf" >"$cg_ng/nginx.conf"
        cg_count "nginx /health" "http://$HOST:$cg_port/health" -- \
            nginx -p "$cg_ng" -e "$cg_ng/logs/error.log" -c "$cg_ng/nginx.conf"
        cg_port=$(free_port)
        write_app_config "$cg_app/info.toml" "$cg_port" "$cg_app/info.log"
        cg_count "app /health" "http://$HOST:$cg_port/health" -- \
            "${APP_ENV[@]}" "$BIN_COPY" --config "$cg_app/info.toml" serve
        if ((DIAG)); then
            cg_port=$(free_port)
            write_app_config "$cg_app/warn.toml" "$cg_port" "$cg_app/warn.log" warn
            cg_count "app /health, no access log" "http://$HOST:$cg_port/health" -- \
                "${APP_ENV[@]}" "$BIN_COPY" --config "$cg_app/warn.toml" serve
        fi
    fi

    # --- what was observed, then the report (statistics and formatting: bench/report.py)
    local b
    for b in "${boot_file[@]}"; do emit boot config=file "ms=$b"; done
    for b in "${boot_s3[@]}"; do emit boot config=s3 "ms=$b"; done
    local elapsed=$((SECONDS - started_s))
    emit meta "date_utc=$date_utc" "ncpu=$NCPU" "cpu_model=$cpu_model" "mem_total=$mem_total" \
        "kernel=$kernel" "load_start=$load_start" "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" \
        "commit=$commit" "dirty=$dirty" "bin=${bin#"$REPO"/}" "mtime=$mtime" "filetype=$filetype" \
        "sha=$sha" "wrk_ver=$wrk_ver" "nginx_ver=$nginx_ver" "py_ver=$($PY --version 2>&1)" \
        "elapsed=$elapsed" "disturbed_kept=$DISTURBED_KEPT" \
        "server_cpu=$SERVER_CPU" "load_cpu=$LOAD_CPU" "conns=$CONNS" "duration=$DURATION" \
        "warmup=$WARMUP" "rounds=$ROUNDS" "boots=$BOOTS" "diag=$DIAG" "cg_seconds=$CG_SECONDS" \
        "quiet_busy=$QUIET_BUSY" "quiet_max=$QUIET_MAX" "disturbed=$DISTURBED" "retries=$RETRIES" \
        "mysql_port=$SUAI_TEST_MYSQL_PORT" "redis_port=$SUAI_TEST_REDIS_PORT" \
        "moto_url=$SUAI_TEST_MOTO_URL" "bucket=$SUAI_TEST_BUCKET" \
        "app_idle_rss=$app_idle_rss" "app_idle_hwm=$app_idle_hwm" "app_idle_anon=$app_idle_anon" \
        "app_idle_file=$app_idle_file" "nginx_idle_rss=$nginx_idle_rss" \
        "app_loaded_hwm=$app_loaded_hwm" "app_loaded_rss=$app_loaded_rss" \
        "app_loaded_anon=$app_loaded_anon" "app_threads=$app_threads" \
        "nginx_loaded_hwm=$nginx_loaded_hwm" "size=$size" \
        "nginx_path=$(command -v nginx)" "nginx_size=$(stat -c %s "$(command -v nginx)")" \
        "t_health_vs_nginx=$T_HEALTH_VS_NGINX" "t_probe_vs_health=$T_PROBE_VS_HEALTH" \
        "t_boot_ms=$T_BOOT_MS" "t_idle_rss_mb=$T_IDLE_RSS_MB" "t_size_mb=$T_SIZE_MB"
    sed "s|$TMP|\$TMP|g" "$TMP/nginx/nginx.conf" >"$TMP/nginx.conf.shown"
    local tmp_out="$OUT.tmp.$$" summary
    summary=$("$PY" "$BENCH_DIR/report.py" "$RAW" "$WRK_LOG" "$TMP/nginx.conf.shown" "$tmp_out") ||
        { cp -f -- "$RAW" "$OUT.raw.tsv"; die "bench/report.py failed; the raw numbers are kept in $OUT.raw.tsv"; }
    mv -f "$tmp_out" "$OUT"
    log "wrote ${OUT#"$REPO"/} in ${elapsed} s"
    log "$summary"
}

main "$@"
