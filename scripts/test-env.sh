#!/usr/bin/env bash
# Starts the real backends the suaicloudapp integration tests talk to, all on
# 127.0.0.1, and writes $REPO/.test-env/env (KEY=value lines) for the tests.
#
# Usage: scripts/test-env.sh [up|down|status]      (default: up)
#
#   up      install what is missing (Debian: apt, PyPI for moto), start every
#           private instance that is not already healthy, provision it, write
#           .test-env/env and print the endpoints. Idempotent and quick when
#           everything already answers: healthy services are never restarted.
#   down    stop every private instance started by this script (by PID file).
#           Data directories, certificates and the env file are kept.
#   status  print each service and whether it answers (exit 1 if any does not).
#
# State: one directory per machine, ${SUAI_TEST_ENV_DIR:-~/.cache/suaicloudapp/test-env}
# (run/ = pid files + sockets, logs/ = logs), linked from $REPO/.test-env: every clone on the
# machine (a developer's, CI's fresh one) shares the same running backends on the fixed ports.
# Ports are fixed: MariaDB 13306 (plain) and 13307 (TLS only); Redis 16379
# (ACL users), 16381 (password), 16380 (TLS), cluster 17001-17003; moto 15000
# (auth off) and 15001 (IAM enforced); PostgreSQL 15432 (password and TLS).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
STATE="${SUAI_TEST_ENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/suaicloudapp/test-env}"
RUN="$STATE/run"
LOGS="$STATE/logs"
TLS_DIR="$STATE/tls"
RDS_IAM="$STATE/rds-iam"
RDS_IAM_PAM=/etc/pam.d/suai-rds-iam
RDS_IAM_LIB=/usr/local/lib/suaicloudapp-test
RDS_IAM_SOCK=/run/suaicloudapp-test/rds-iam.sock
ENV_FILE="$STATE/env"
MOTO_B_KEYS="$STATE/moto-b-keys"

PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

HOST=127.0.0.1
READY_TIMEOUT=${SUAI_TEST_ENV_READY_TIMEOUT:-30}

MYSQL_PORT=13306
MYSQL_TLS_PORT=13307
MYSQL_DB=suai
MYSQL_USER=probe
MYSQL_PASSWORD='probe-db-Secr3t'
MYSQL_NOACCESS_USER=noaccess
MYSQL_NOACCESS_PASSWORD='noaccess-pw'

REDIS_PORT=16379
REDIS_TLS_PORT=16380
REDIS_AUTH_PORT=16381
REDIS_CLUSTER_PORTS=(17001 17002 17003)
REDIS_USER=probe
REDIS_PASSWORD='probe-redis-Secr3t'
REDIS_LIMITED_USER=limited
REDIS_LIMITED_PASSWORD='limited-pw'
REDIS_DEFAULT_PASSWORD='redis-default-Secr3t'

MOTO_PORT=15000
MOTO_AUTH_PORT=15001
MOTO_URL="http://$HOST:$MOTO_PORT"
MOTO_AUTH_URL="http://$HOST:$MOTO_AUTH_PORT"
AWS_REGION_NAME=us-east-1
BUCKET=suai-test-bucket
TABLE=suai-test-table
WRONG_TABLE=suai-wrong-key
MOTO_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/suaicloudapp/moto-venv"
CHECKOV_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/suaicloudapp/checkov-venv"

# Set to 1 when the certificates are (re)generated: TLS servers must reload them.
CERTS_CHANGED=0

# ----------------------------------------------------------------------------
# helpers

# log, die, have, as_root, apt_install, pid_matches, stop_pid, port_open: scripts/lib.sh.
LIB_TAG=test-env
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

# Does the process in PID file $1 run and look like $2 (substring of its cmdline)?
pid_alive() { [[ -s $1 ]] && pid_matches "$(<"$1")" "$2"; }

# PID of the process listening on TCP port $1 on loopback, if ss can tell.
listener_pid() {
    local port=$1 out
    have ss || return 1
    out=$(ss -Hltnp "sport = :$port" 2>/dev/null) || return 1
    [[ $out =~ pid=([0-9]+) ]] || return 1
    printf '%s\n' "${BASH_REMATCH[1]}"
}

# Refuse to start on a port that something else already holds.
ensure_port_free() {
    local port=$1 name=$2
    if port_open "$port"; then
        log "port $port (wanted by $name) is held by another process:"
        if have ss; then ss -ltnp "sport = :$port" >&2 || true; fi
        die "port $port busy; stop that process or run '$0 down'"
    fi
}

# Record the real server PID: the listener if ss knows it, else $2.
record_pid() {
    local pidfile=$1 fallback=$2 port=$3 pid
    pid=$(listener_pid "$port") || pid=$fallback
    printf '%s\n' "$pid" >"$pidfile"
}

# Adopt a healthy server whose pid file went missing (e.g. the file was removed).
adopt_pid() {
    local pidfile=$1 expect=$2 port=$3 pid
    pid_alive "$pidfile" "$expect" && return 0
    pid=$(listener_pid "$port") || return 0
    printf '%s\n' "$pid" >"$pidfile"
}

LOG_MARK='=== test-env: starting'
# Mark where this start attempt begins in a log, so failures show only its lines.
mark_log() { printf '%s %s at %s\n' "$LOG_MARK" "$2" "$(date '+%F %T')" >>"$1"; }

log_tail() { # LOG: the last 40 lines since the latest start mark
    awk -v m="$LOG_MARK" 'index($0, m) == 1 { n = 0 } { buf[n++] = $0 }
        END { for (i = (n > 40 ? n - 40 : 0); i < n; i++) print buf[i] }' "$1" >&2 2>/dev/null || true
}

# Kill what we just started (the pid file holds our child), then fail.
start_failed() { # NAME LOG PIDFILE MESSAGE
    local pid
    log "$4; last lines of $2:"
    log_tail "$2"
    if [[ -s $3 ]]; then
        pid=$(<"$3")
        if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        rm -f "$3"
    fi
    die "$1 failed to start"
}

# wait_ready NAME LOG PIDFILE EXPECT CMD...: poll CMD (every 0.1 s, at most
# READY_TIMEOUT s) until it succeeds; fail early if the server process died.
wait_ready() {
    local name=$1 logf=$2 pidfile=$3 expect=$4
    shift 4
    local deadline=$((SECONDS + READY_TIMEOUT)) pid
    until "$@" >/dev/null 2>&1; do
        if [[ -s $pidfile ]]; then
            pid=$(<"$pidfile")
            if [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then
                start_failed "$name" "$logf" "$pidfile" "$name exited during start-up"
            fi
        fi
        if ((SECONDS >= deadline)); then
            start_failed "$name" "$logf" "$pidfile" "$name not ready after ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
}

# signal_pid PIDFILE EXPECT: send SIGTERM without waiting.
signal_pid() {
    if pid_alive "$1" "$2"; then kill -TERM "$(<"$1")" 2>/dev/null || true; fi
}

# stop_pidfile NAME PIDFILE EXPECT [quiet]: SIGTERM, wait (30 s at most), then SIGKILL.
stop_pidfile() {
    local name=$1 pidfile=$2 expect=$3
    if pid_alive "$pidfile" "$expect"; then
        [[ ${4:-} == quiet ]] || log "stopping $name (pid $(<"$pidfile"))"
        stop_pid "$(<"$pidfile")" "$expect" 30
    fi
    rm -f "$pidfile"
}

# write_if_changed FILE CONTENT: returns 0 if the file was created or changed.
write_if_changed() {
    local file=$1 content=$2
    if [[ -f $file ]] && [[ $(<"$file") == "$content" ]]; then
        return 1
    fi
    printf '%s\n' "$content" >"$file.tmp" || die "cannot write $file"
    mv -f "$file.tmp" "$file" || die "cannot write $file"
    return 0
}

# Short socket path: sun_path is limited to 107 bytes.
sock_path() {
    local name=$1 p="$RUN/$1.sock" alt
    if ((${#p} > 100)); then
        alt="${TMPDIR:-/tmp}/suai-test-env-$(id -u)-$(printf '%s' "$STATE" | cksum | cut -d' ' -f1)"
        mkdir -p "$alt"
        p="$alt/$name.sock"
    fi
    printf '%s\n' "$p"
}

# ----------------------------------------------------------------------------
# installation

ensure_packages() {
    local pkgs=()
    { have mariadbd && have mariadb-install-db; } || pkgs+=(mariadb-server)
    { have mariadb && have mariadb-admin; } || pkgs+=(mariadb-client)
    have redis-server || pkgs+=(redis-server)
    have redis-cli || pkgs+=(redis-tools)
    have openssl || pkgs+=(openssl)
    have curl || pkgs+=(curl ca-certificates)
    have python3 || pkgs+=(python3)
    # Deploy tests (tests/deploy/deploy.rs): Debian's AWS CLI v2 at /usr/bin/aws (a plain `aws` on PATH
    # may be a v1 shim), shellcheck for user-data.sh and the scripts, systemd-analyze for the unit.
    [[ -x /usr/bin/aws ]] || pkgs+=(awscli)
    have shellcheck || pkgs+=(shellcheck)
    have systemd-analyze || pkgs+=(systemd)
    # tests/serve/least_privilege.rs loads the unit's SystemCallFilter= with libseccomp's Python binding.
    /usr/bin/python3 -c 'import seccomp' 2>/dev/null || pkgs+=(python3-seccomp)
    # Dashboard tests (tests/serve/dashboard.rs): Debian's headless Chromium renders the page.
    have chromium || pkgs+=(chromium)
    # ALB sign-in tests (tests/serve/alb_auth.rs) sign ES256 tokens; the image test needs the CA bundle.
    python3 -c 'import cryptography' 2>/dev/null || pkgs+=(python3-cryptography)
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] || pkgs+=(ca-certificates)
    # Fleet tests (tests/serve/fleet.rs): promtool checks /metrics' classic text format, HAProxy
    # stands in for the load balancer in front of the binary.
    have promtool || pkgs+=(prometheus)
    have haproxy || pkgs+=(haproxy)
    apt_install "${pkgs[@]}"
}

python_for_venv() {
    if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else command -v python3; fi
}

# Each venv holds exactly its lock: every package pinned with its hashes, installed with
# --require-hashes from wheels only (nothing is built, so no unpinned build dependency is
# fetched). The stamp records the lock's digest: a lock that moved (a pin moved on purpose,
# `make deps-update`) rebuilds the venv, and running moto servers from the old one are
# restarted (VENV_CHANGED). checkov has a venv of its own because it pins boto3 exactly (3.3.30:
# boto3==1.35.49), which would hold moto's boto3 two years back.
LOCK="$SCRIPT_DIR/requirements.lock"
CHECKOV_LOCK="$SCRIPT_DIR/checkov.lock"
VENV_CHANGED=0
lock_digest() { sha256sum "$1" | cut -d' ' -f1; }

# ensure_venv VENV LOCK PROGRAM: (re)builds VENV from LOCK unless it already holds it; sets
# REBUILT=1 when it did.
REBUILT=0
ensure_venv() {
    local venv=$1 lock=$2 program=$3 py
    [[ -f $lock ]] || die "$lock missing"
    if [[ -x $venv/bin/$program && -f $venv/.suai-lock-sha256 &&
        $(<"$venv/.suai-lock-sha256") == "$(lock_digest "$lock")" ]] &&
        venv_matches_lock "$venv" "$lock" >/dev/null; then
        return 0
    fi
    py=$(python_for_venv)
    log "creating the venv $venv from ${lock#"$REPO"/} ($("$py" --version 2>&1))"
    rm -rf "$venv"
    mkdir -p "$(dirname -- "$venv")"
    if ! "$py" -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        apt_install python3-venv
        "$py" -m venv "$venv" || die "python3 -m venv still fails"
    fi
    log "pip install --require-hashes -r ${lock#"$REPO"/} (one-off)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
        --only-binary=:all: -r "$lock" || die "pip install of ${lock#"$REPO"/} failed"
    [[ -x $venv/bin/$program ]] || die "$program missing after pip install"
    venv_matches_lock "$venv" "$lock" || die "$venv does not hold what $lock pins"
    lock_digest "$lock" >"$venv/.suai-lock-sha256"
    REBUILT=1
}

ensure_moto() {
    REBUILT=0
    ensure_venv "$MOTO_VENV" "$LOCK" moto_server
    VENV_CHANGED=$REBUILT
    ensure_venv "$CHECKOV_VENV" "$CHECKOV_LOCK" checkov
}

# venv_matches_lock VENV LOCK: every package LOCK pins is installed in VENV at that version,
# and nothing else: prints each difference, fails if there is one.
venv_matches_lock() {
    [[ -x $1/bin/python ]] || {
        echo "no venv at $1"
        return 1
    }
    "$1/bin/python" "$SCRIPT_DIR/check_lock.py" "$2"
}

# ----------------------------------------------------------------------------
# TLS material

ensure_certs() {
    local f missing=0
    for f in ca.pem ca-key.pem server.pem server-key.pem other-ca.pem; do
        [[ -s $TLS_DIR/$f ]] || missing=1
    done
    ((missing)) || return 0
    log "generating test certificates in $TLS_DIR"
    mkdir -p "$TLS_DIR"
    local tmp
    tmp=$(mktemp -d)
    cat >"$tmp/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = suaicloudapp test CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
    sed 's/^CN = .*/CN = suaicloudapp OTHER untrusted CA/' "$tmp/ca.cnf" >"$tmp/other.cnf"
    cat >"$tmp/server.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
EOF
    cat >"$tmp/server.ext" <<'EOF'
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF
    (
        cd "$tmp"
        openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -config ca.cnf -extensions v3_ca -keyout ca-key.pem -out ca.pem 2>/dev/null
        openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -config other.cnf -extensions v3_ca -keyout other-ca-key.pem -out other-ca.pem 2>/dev/null
        openssl req -new -newkey rsa:2048 -nodes -sha256 \
            -config server.cnf -keyout server-key.pem -out server.csr 2>/dev/null
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem \
            -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
            -extfile server.ext -out server.pem 2>/dev/null
        openssl verify -CAfile ca.pem server.pem >/dev/null
    ) || { rm -rf "$tmp"; die "certificate generation failed"; }
    for f in ca.pem ca-key.pem server.pem server-key.pem other-ca.pem other-ca-key.pem; do
        mv -f "$tmp/$f" "$TLS_DIR/$f"
    done
    rm -rf "$tmp"
    # Keys: owner-only; the servers run as the user running this script.
    chmod 0644 "$TLS_DIR"/ca.pem "$TLS_DIR"/server.pem "$TLS_DIR"/other-ca.pem
    chmod 0600 "$TLS_DIR"/ca-key.pem "$TLS_DIR"/server-key.pem "$TLS_DIR"/other-ca-key.pem
    CERTS_CHANGED=1
}

# ----------------------------------------------------------------------------
# MariaDB

MARIADBD=""
mysql_admin_ping() { # SOCKET
    mariadb-admin --no-defaults --connect-timeout=2 --protocol=socket --socket="$1" -uroot ping
}

mysql_tcp_ping() { # PORT [TLS]
    local extra=()
    [[ ${2:-} == tls ]] && extra=(--ssl --ssl-ca="$TLS_DIR/ca.pem" --ssl-verify-server-cert)
    mariadb --no-defaults --connect-timeout=2 --protocol=tcp -h "$HOST" -P "$1" \
        -u "$MYSQL_USER" -p"$MYSQL_PASSWORD" "${extra[@]}" -N -e 'SELECT 1' "$MYSQL_DB"
}

mysql_provision() { # SOCKET
    local u
    {
        printf "DROP USER IF EXISTS ''@'localhost';\n"
        printf "DROP USER IF EXISTS ''@'%s';\n" "$(hostname 2>/dev/null || echo localhost)"
        printf "CREATE DATABASE IF NOT EXISTS \`%s\`;\n" "$MYSQL_DB"
        for u in '%' localhost 127.0.0.1; do
            printf "CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s';\n" "$MYSQL_USER" "$u" "$MYSQL_PASSWORD"
            printf "ALTER USER '%s'@'%s' IDENTIFIED BY '%s' ACCOUNT UNLOCK;\n" "$MYSQL_USER" "$u" "$MYSQL_PASSWORD"
            printf "GRANT ALL PRIVILEGES ON \`%s\`.* TO '%s'@'%s';\n" "$MYSQL_DB" "$MYSQL_USER" "$u"
        done
        printf "CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s';\n" "$MYSQL_NOACCESS_USER" "$MYSQL_NOACCESS_PASSWORD"
        printf "ALTER USER '%s'@'%%' IDENTIFIED BY '%s' ACCOUNT UNLOCK;\n" "$MYSQL_NOACCESS_USER" "$MYSQL_NOACCESS_PASSWORD"
        printf "REVOKE ALL PRIVILEGES, GRANT OPTION FROM '%s'@'%%';\n" "$MYSQL_NOACCESS_USER"
        printf 'FLUSH PRIVILEGES;\n'
    } | mariadb --no-defaults --connect-timeout=5 --protocol=socket --socket="$1" -uroot ||
        die "provisioning MariaDB at $1 failed"
}

# start_mariadb NAME PORT TLS(0|1)
start_mariadb() {
    local name=$1 port=$2 tls=$3
    local datadir="$STATE/$name" sock pidfile="$RUN/$name.pid" logf="$LOGS/$name.log"
    sock=$(sock_path "$name")
    local args=(--no-defaults --datadir="$datadir" --socket="$sock" --port="$port"
        --bind-address="$HOST" --user="$(id -un)" --skip-name-resolve
        --pid-file="$RUN/$name.mariadbd.pid" --log-error="$logf"
        --innodb-buffer-pool-size=64M --max-connections=300)
    if ((tls)); then
        args+=(--ssl-ca="$TLS_DIR/ca.pem" --ssl-cert="$TLS_DIR/server.pem"
            --ssl-key="$TLS_DIR/server-key.pem" --require-secure-transport=ON)
    fi
    local spec_changed=0
    write_if_changed "$RUN/$name.args" "$(printf '%s\n' "$MARIADBD" "${args[@]}")" && spec_changed=1

    if mysql_admin_ping "$sock" >/dev/null 2>&1; then
        adopt_pid "$pidfile" mariadbd "$port"
        if ((spec_changed == 0)) && ! ((tls && CERTS_CHANGED)); then
            mysql_provision "$sock"
            log "$name already running on $port"
            return 0
        fi
        log "$name: configuration or certificates changed; restarting"
        stop_pidfile "$name" "$pidfile" mariadbd
    else
        stop_pidfile "$name" "$pidfile" mariadbd # stale or hung instance of ours
    fi
    ensure_port_free "$port" "$name"

    if [[ ! -f $datadir/.suai-initialized ]]; then
        log "initialising $name datadir"
        rm -rf "$datadir"
        mkdir -p "$datadir"
        mariadb-install-db --no-defaults --datadir="$datadir" --user="$(id -un)" \
            --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
            >"$LOGS/$name-install.log" 2>&1 ||
            { tail -n 40 "$LOGS/$name-install.log" >&2; die "mariadb-install-db for $name failed"; }
        touch "$datadir/.suai-initialized"
    fi
    rm -f "$sock"
    log "starting $name on $HOST:$port"
    mark_log "$logf" "$name"
    setsid nohup "$MARIADBD" "${args[@]}" </dev/null >>"$logf" 2>&1 9>&- &
    printf '%s\n' "$!" >"$pidfile"
    disown "$!" 2>/dev/null || true
    wait_ready "$name" "$logf" "$pidfile" mariadbd mysql_admin_ping "$sock"
    record_pid "$pidfile" "$(<"$pidfile")" "$port"
    mysql_provision "$sock"
    if ((tls)); then
        wait_ready "$name (TLS login)" "$logf" "$pidfile" mariadbd mysql_tcp_ping "$port" tls
    else
        wait_ready "$name (TCP login)" "$logf" "$pidfile" mariadbd mysql_tcp_ping "$port"
    fi
}

# ----------------------------------------------------------------------------
# Redis

redis_ping() { # PORT [redis-cli args...]
    local port=$1
    shift
    local out
    out=$(timeout 3 redis-cli --no-auth-warning -h "$HOST" -p "$port" "$@" PING 2>/dev/null) || return 1
    [[ $out == PONG ]]
}

redis_common_conf() { # PORT DIR
    cat <<EOF
bind $HOST
protected-mode yes
daemonize yes
pidfile $RUN/redis-$1.pid
logfile $LOGS/redis-$1.log
dir $2
save ""
appendonly no
loglevel notice
EOF
}

# start_redis NAME PORT CONFIG-CONTENT PING-ARGS...
start_redis() {
    local name=$1 port=$2 conf_content=$3
    shift 3
    local dir="$STATE/$name" pidfile="$RUN/redis-$port.pid" logf="$LOGS/redis-$port.log"
    mkdir -p "$dir"
    local changed=0
    write_if_changed "$dir/redis.conf" "$conf_content" && changed=1
    if redis_ping "$port" "$@"; then
        adopt_pid "$pidfile" redis-server "$port"
        if ((changed == 0)) && ! [[ $name == redis-tls && $CERTS_CHANGED == 1 ]]; then
            log "$name already running on $port"
            return 0
        fi
        log "$name: configuration or certificates changed; restarting"
    fi
    stop_pidfile "$name" "$pidfile" redis-server
    ensure_port_free "$port" "$name"
    log "starting $name on $HOST:$port"
    mark_log "$logf" "$name"
    redis-server "$dir/redis.conf" </dev/null >>"$logf" 2>&1 9>&- || start_failed "$name" "$logf" "" "redis-server refused to start"
    wait_ready "$name" "$logf" "$pidfile" redis-server redis_ping "$port" "$@"
}

start_redis_standalone() {
    local conf
    conf="$(redis_common_conf "$REDIS_PORT" "$STATE/redis-$REDIS_PORT")
port $REDIS_PORT
user default on nopass ~* &* +@all
user $REDIS_USER on >$REDIS_PASSWORD ~* &* +@all
user $REDIS_LIMITED_USER on >$REDIS_LIMITED_PASSWORD ~* &* -@all +hello +auth"
    start_redis "redis-$REDIS_PORT" "$REDIS_PORT" "$conf"
}

start_redis_auth() {
    local conf
    conf="$(redis_common_conf "$REDIS_AUTH_PORT" "$STATE/redis-$REDIS_AUTH_PORT")
port $REDIS_AUTH_PORT
user default on >$REDIS_DEFAULT_PASSWORD ~* &* +@all"
    start_redis "redis-$REDIS_AUTH_PORT" "$REDIS_AUTH_PORT" "$conf" -a "$REDIS_DEFAULT_PASSWORD"
}

start_redis_tls() {
    local conf
    conf="$(redis_common_conf "$REDIS_TLS_PORT" "$STATE/redis-tls")
port 0
tls-port $REDIS_TLS_PORT
tls-cert-file $TLS_DIR/server.pem
tls-key-file $TLS_DIR/server-key.pem
tls-ca-cert-file $TLS_DIR/ca.pem
tls-auth-clients no"
    start_redis redis-tls "$REDIS_TLS_PORT" "$conf" --tls --cacert "$TLS_DIR/ca.pem"
}

cluster_node_ok() { # PORT
    local info
    info=$(timeout 3 redis-cli -h "$HOST" -p "$1" CLUSTER INFO 2>/dev/null) || return 1
    [[ $info == *cluster_state:ok* && $info == *cluster_slots_assigned:16384* &&
        $info == *"cluster_known_nodes:${#REDIS_CLUSTER_PORTS[@]}"* ]]
}

cluster_all_ok() {
    local p
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do cluster_node_ok "$p" || return 1; done
}

cluster_conf() { # PORT
    local dir="$STATE/cluster-$1"
    redis_common_conf "$1" "$dir"
    cat <<EOF
port $1
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 5000
EOF
}

start_redis_cluster() {
    local p changed=0 dir
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do
        dir="$STATE/cluster-$p"
        mkdir -p "$dir"
        write_if_changed "$dir/redis.conf" "$(cluster_conf "$p")" && changed=1
    done
    if ((changed == 0)) && cluster_all_ok; then
        for p in "${REDIS_CLUSTER_PORTS[@]}"; do adopt_pid "$RUN/redis-$p.pid" redis-server "$p"; done
        log "redis cluster already running on ${REDIS_CLUSTER_PORTS[*]}"
        return 0
    fi
    log "(re)creating redis cluster on ${REDIS_CLUSTER_PORTS[*]}"
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do
        if redis_ping "$p"; then adopt_pid "$RUN/redis-$p.pid" redis-server "$p"; fi
        signal_pid "$RUN/redis-$p.pid" redis-server # stop them in parallel
    done
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do
        stop_pidfile "cluster node $p" "$RUN/redis-$p.pid" redis-server
    done
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do
        dir="$STATE/cluster-$p"
        ensure_port_free "$p" "cluster node $p"
        rm -f "$dir/nodes.conf" "$dir/dump.rdb"
        mark_log "$LOGS/redis-$p.log" "cluster node $p"
        redis-server "$dir/redis.conf" </dev/null >>"$LOGS/redis-$p.log" 2>&1 9>&- ||
            start_failed "cluster node $p" "$LOGS/redis-$p.log" "" "redis-server refused to start"
    done
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do
        wait_ready "cluster node $p" "$LOGS/redis-$p.log" "$RUN/redis-$p.pid" redis-server redis_ping "$p"
    done
    local addrs=()
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do addrs+=("$HOST:$p"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
        >"$LOGS/redis-cluster-create.log" 2>&1 ||
        { tail -n 30 "$LOGS/redis-cluster-create.log" >&2; die "redis-cli --cluster create failed"; }
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do
        wait_ready "cluster node $p (cluster_state:ok)" "$LOGS/redis-$p.log" "$RUN/redis-$p.pid" redis-server cluster_node_ok "$p"
    done
}

# ----------------------------------------------------------------------------
# moto

moto_answers() { # URL
    curl -s -o /dev/null --max-time 2 "$1/"
}

# start_moto NAME PORT: sets MOTO_STARTED=1 if it (re)started the server,
# 0 if a healthy one was already running.
MOTO_STARTED=0
start_moto() {
    local name=$1 port=$2 pidfile="$RUN/$1.pid" logf="$LOGS/$1.log"
    MOTO_STARTED=0
    if moto_answers "http://$HOST:$port"; then
        adopt_pid "$pidfile" moto_server "$port"
        pid_alive "$pidfile" moto_server ||
            die "port $port answers HTTP but is not a moto_server started by this script"
        if ((VENV_CHANGED == 0)); then
            log "$name already running on $port"
            return 0
        fi
        log "$name runs from the previous venv; restarting it"
    fi
    stop_pidfile "$name" "$pidfile" moto_server
    ensure_port_free "$port" "$name"
    log "starting $name on $HOST:$port"
    mark_log "$logf" "$name"
    setsid nohup "$MOTO_VENV/bin/moto_server" -H "$HOST" -p "$port" </dev/null >>"$logf" 2>&1 9>&- &
    printf '%s\n' "$!" >"$pidfile"
    disown "$!" 2>/dev/null || true
    wait_ready "$name" "$logf" "$pidfile" moto_server moto_answers "http://$HOST:$port"
    record_pid "$pidfile" "$(<"$pidfile")" "$port"
    MOTO_STARTED=1
}

# The boto3 side of the moto set-up (scripts/test_env_moto.py), run with the venv's python.
moto_py() {
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION="$AWS_REGION_NAME" \
        AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        "$MOTO_VENV/bin/python" "$SCRIPT_DIR/test_env_moto.py" "$@"
}

# Provisioned state is tied to the server PID (moto keeps everything in memory).
setup_moto_a() {
    local pidfile="$RUN/moto-a.pid" marker="$RUN/moto-a.provisioned"
    local pid
    start_moto moto-a "$MOTO_PORT"
    pid=$(<"$pidfile")
    # The marker records the pid and the provisioning version: a new resource set re-provisions.
    if ((MOTO_STARTED == 0)) && [[ -f $marker && $(<"$marker") == "$pid v3" ]] &&
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 3 -I "$MOTO_URL/$BUCKET") == 200 ]]; then
        return 0
    fi
    log "provisioning moto-a (bucket, tables)"
    moto_py provision "$MOTO_URL" || die "moto-a provisioning failed (log: $LOGS/moto-a.log)"
    printf '%s\n' "$pid v3" >"$marker"
}

setup_moto_b() {
    local pidfile="$RUN/moto-b.pid"
    local pid
    start_moto moto-b "$MOTO_AUTH_PORT"
    pid=$(<"$pidfile")
    if ((MOTO_STARTED == 0)) && [[ -s $MOTO_B_KEYS ]] && grep -qx "MOTO_B_PID=$pid" "$MOTO_B_KEYS"; then
        return 0
    fi
    if ((MOTO_STARTED == 0)); then
        # Running, but not provisioned by us for this process: auth may already be
        # on, so start from a clean in-memory state.
        log "moto-b has no key file for pid $pid; restarting it"
        stop_pidfile moto-b "$pidfile" moto_server
        start_moto moto-b "$MOTO_AUTH_PORT"
        pid=$(<"$pidfile")
    fi
    log "provisioning moto-b (bucket, tables, IAM users denied/reader)"
    local keys
    keys=$(moto_py provision-auth "$MOTO_AUTH_URL") || die "moto-b provisioning failed (log: $LOGS/moto-b.log)"
    curl -sS --fail --max-time 5 -X POST -H 'Content-Type: text/plain' --data-binary 0 \
        "$MOTO_AUTH_URL/moto-api/reset-auth" >/dev/null || die "enabling IAM enforcement on moto-b failed"
    local dk ds rk rs
    dk=$(sed -n 's/^SUAI_TEST_DENIED_KEY_ID=//p' <<<"$keys")
    ds=$(sed -n 's/^SUAI_TEST_DENIED_SECRET=//p' <<<"$keys")
    rk=$(sed -n 's/^SUAI_TEST_READER_KEY_ID=//p' <<<"$keys")
    rs=$(sed -n 's/^SUAI_TEST_READER_SECRET=//p' <<<"$keys")
    [[ -n $dk && -n $ds && -n $rk && -n $rs ]] || die "moto-b did not return access keys"
    moto_py verify-auth "$MOTO_AUTH_URL" "$dk" "$ds" "$rk" "$rs" ||
        die "moto-b IAM enforcement does not behave as expected"
    printf '%s\nMOTO_B_PID=%s\n' "$keys" "$pid" >"$MOTO_B_KEYS.tmp"
    chmod 0600 "$MOTO_B_KEYS.tmp"
    mv -f "$MOTO_B_KEYS.tmp" "$MOTO_B_KEYS"
}

# ----------------------------------------------------------------------------
# env file + report

# env_line KEY VALUE: quote only when needed. Double quotes when they suffice:
# tests/harness/src/lib.rs strips double quotes (not single ones) from values.
env_line() {
    local v=$2
    if [[ $v =~ ^[A-Za-z0-9_./:,@%+=-]*$ ]]; then
        printf '%s=%s\n' "$1" "$v"
    elif [[ $v != *[\$\`\\\"!]* ]]; then
        printf '%s="%s"\n' "$1" "$v"
    else
        printf "%s='%s'\n" "$1" "${v//\'/\'\\\'\'}"
    fi
}

key_from_file() { sed -n "s/^$1=//p" "$MOTO_B_KEYS"; }

write_env() {
    local ports
    ports=$(
        IFS=,
        echo "${REDIS_CLUSTER_PORTS[*]}"
    )
    {
        env_line SUAI_TEST_MYSQL_HOST "$HOST"
        env_line SUAI_TEST_MYSQL_PORT "$MYSQL_PORT"
        env_line SUAI_TEST_MYSQL_TLS_PORT "$MYSQL_TLS_PORT"
        env_line SUAI_TEST_MYSQL_USER "$MYSQL_USER"
        env_line SUAI_TEST_MYSQL_PASSWORD "$MYSQL_PASSWORD"
        env_line SUAI_TEST_MYSQL_DB "$MYSQL_DB"
        env_line SUAI_TEST_MYSQL_SOCKET "$(sock_path mariadb)"
        env_line SUAI_TEST_MYSQL_TLS_SOCKET "$(sock_path mariadb-tls)"
        env_line SUAI_TEST_MYSQL_NOACCESS_USER "$MYSQL_NOACCESS_USER"
        env_line SUAI_TEST_MYSQL_NOACCESS_PASSWORD "$MYSQL_NOACCESS_PASSWORD"
        env_line SUAI_TEST_REDIS_HOST "$HOST"
        env_line SUAI_TEST_REDIS_PORT "$REDIS_PORT"
        env_line SUAI_TEST_REDIS_AUTH_PORT "$REDIS_AUTH_PORT"
        env_line SUAI_TEST_REDIS_TLS_PORT "$REDIS_TLS_PORT"
        env_line SUAI_TEST_REDIS_CLUSTER_PORTS "$ports"
        env_line SUAI_TEST_REDIS_USER "$REDIS_USER"
        env_line SUAI_TEST_REDIS_PASSWORD "$REDIS_PASSWORD"
        env_line SUAI_TEST_REDIS_LIMITED_USER "$REDIS_LIMITED_USER"
        env_line SUAI_TEST_REDIS_LIMITED_PASSWORD "$REDIS_LIMITED_PASSWORD"
        env_line SUAI_TEST_REDIS_DEFAULT_PASSWORD "$REDIS_DEFAULT_PASSWORD"
        env_line SUAI_TEST_TLS_DIR "$TLS_DIR"
        env_line SUAI_TEST_TLS_CA "$TLS_DIR/ca.pem"
        env_line SUAI_TEST_TLS_OTHER_CA "$TLS_DIR/other-ca.pem"
        env_line SUAI_TEST_TLS_CERT "$TLS_DIR/server.pem"
        env_line SUAI_TEST_TLS_KEY "$TLS_DIR/server-key.pem"
        env_line SUAI_TEST_MOTO_URL "$MOTO_URL"
        env_line SUAI_TEST_MOTO_AUTH_URL "$MOTO_AUTH_URL"
        env_line SUAI_TEST_AWS_REGION "$AWS_REGION_NAME"
        env_line SUAI_TEST_AWS_ACCESS_KEY_ID testing
        env_line SUAI_TEST_AWS_SECRET_ACCESS_KEY testing
        env_line SUAI_TEST_BUCKET "$BUCKET"
        env_line SUAI_TEST_TABLE "$TABLE"
        env_line SUAI_TEST_WRONG_TABLE "$WRONG_TABLE"
        env_line SUAI_TEST_DENIED_KEY_ID "$(key_from_file SUAI_TEST_DENIED_KEY_ID)"
        env_line SUAI_TEST_DENIED_SECRET "$(key_from_file SUAI_TEST_DENIED_SECRET)"
        env_line SUAI_TEST_READER_KEY_ID "$(key_from_file SUAI_TEST_READER_KEY_ID)"
        env_line SUAI_TEST_READER_SECRET "$(key_from_file SUAI_TEST_READER_SECRET)"
        env_line SUAI_TEST_MARIADBD "$MARIADBD"
        env_line SUAI_TEST_MARIADB_INSTALL_DB "$(command -v mariadb-install-db)"
        env_line SUAI_TEST_REDIS_SERVER "$(command -v redis-server)"
        env_line SUAI_TEST_REDIS_CLI "$(command -v redis-cli)"
        env_line SUAI_TEST_MOTO_SERVER "$MOTO_VENV/bin/moto_server"
        env_line SUAI_TEST_CHECKOV "$CHECKOV_VENV/bin/checkov"
        env_line SUAI_TEST_RDS_IAM_EXPECT "$RDS_IAM/expect"
        env_line SUAI_TEST_RDS_IAM_LOG "$RDS_IAM/verify.log"
        env_line SUAI_TEST_RDS_IAM_PAM_SERVICE "${RDS_IAM_PAM##*/}"
        env_line SUAI_TEST_PG_IAM_USER "$PG_IAM_USER"
        env_line SUAI_TEST_PG_PORT "$PG_PORT"
        env_line SUAI_TEST_PG_USER probe
        env_line SUAI_TEST_PG_PASSWORD "$PG_PASSWORD"
        env_line SUAI_TEST_PG_DB suai
        env_line SUAI_TEST_PG_SSLONLY_USER sslonly
        env_line SUAI_TEST_PG_SSLONLY_PASSWORD "$PG_SSLONLY_PASSWORD"
        env_line SUAI_TEST_PG_BIN "$(pg_bin)"
        env_line SUAI_TEST_STREAM suai-test-stream
        env_line SUAI_TEST_FIREHOSE suai-test-firehose
        env_line SUAI_TEST_TOPIC_ARN "arn:aws:sns:$AWS_REGION_NAME:123456789012:suai-test-topic"
        env_line SUAI_TEST_LAMBDA suai-test-fn
    } >"$ENV_FILE.tmp"
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

print_table() {
    local ports fmt='  %-14s %-28s %s\n'
    ports=$(
        IFS=,
        echo "${REDIS_CLUSTER_PORTS[*]}"
    )
    echo
    echo "suaicloudapp test backends (env file: $ENV_FILE)"
    # shellcheck disable=SC2059
    {
        printf "$fmt" SERVICE ENDPOINT "CREDENTIALS / NOTES"
        printf "$fmt" mariadb "$HOST:$MYSQL_PORT" "$MYSQL_USER / $MYSQL_PASSWORD, db $MYSQL_DB; $MYSQL_NOACCESS_USER / $MYSQL_NOACCESS_PASSWORD (no db grant)"
        printf "$fmt" "" "" "socket $(sock_path mariadb); root: empty password, local only"
        printf "$fmt" mariadb-tls "$HOST:$MYSQL_TLS_PORT" "same users; TLS required (insecure login -> 1045 Access denied)"
        printf "$fmt" redis "$HOST:$REDIS_PORT" "default nopass; $REDIS_USER / $REDIS_PASSWORD; $REDIS_LIMITED_USER / $REDIS_LIMITED_PASSWORD (PING -> NOPERM)"
        printf "$fmt" redis-auth "$HOST:$REDIS_AUTH_PORT" "default / $REDIS_DEFAULT_PASSWORD (no AUTH -> NOAUTH)"
        printf "$fmt" redis-tls "$HOST:$REDIS_TLS_PORT" "TLS only, no client cert, default nopass"
        printf "$fmt" redis-cluster "$HOST:$ports" "3 primaries, no auth"
        printf "$fmt" moto "$MOTO_URL" "auth off (testing/testing): $BUCKET, $TABLE, $WRONG_TABLE"
        printf "$fmt" moto-auth "$MOTO_AUTH_URL" "IAM enforced; users denied / reader (keys in env file)"
        printf "$fmt" tls "$TLS_DIR" "ca.pem server.pem server-key.pem other-ca.pem"
    }
}

# ----------------------------------------------------------------------------
# PostgreSQL: a private instance with password (SCRAM) auth and TLS, run as the postgres user
# (initdb refuses root). User probe may connect with or without TLS; user sslonly only with TLS.

PG_PORT=15432
# Outside /root (0700): the postgres user must reach its own files.
PG_DIR="${SUAI_TEST_PG_DIR:-/var/tmp/suaicloudapp-test-env/postgres}"
PG_PASSWORD='probe-pg-Secr3t'
PG_SSLONLY_PASSWORD='sslonly-pg-pw'
PG_IAM_USER=iampg

pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do [[ -x $d/pg_ctl ]] && { echo "$d"; return 0; }; done
    return 1
}

pg_ready() { "$(pg_bin)/pg_isready" -q -h "$HOST" -p "$PG_PORT"; }

# The postmaster's pid (first line of postmaster.pid), when it runs.
pg_pid() {
    local pid
    [[ -s $PG_DIR/postmaster.pid ]] || return 1
    pid=$(head -n 1 "$PG_DIR/postmaster.pid")
    pid_matches "$pid" postgres && printf '%s\n' "$pid"
}

# Copies the test certificates into the data directory when they differ (initdb, or
# ensure_certs made new ones); returns 0 when it copied.
pg_certs() {
    local dir=$PG_DIR
    if cmp -s "$TLS_DIR/server.pem" "$dir/server.crt" && cmp -s "$TLS_DIR/server-key.pem" "$dir/server.key"; then
        return 1
    fi
    install -o postgres -g postgres -m 0600 "$TLS_DIR/server.pem" "$dir/server.crt"
    install -o postgres -g postgres -m 0600 "$TLS_DIR/server-key.pem" "$dir/server.key"
}

stop_postgres() {
    local bin
    pg_pid >/dev/null || return 0
    bin=$(pg_bin) || return 0
    log "stopping postgres (pid $(pg_pid))"
    as_postgres "$bin/pg_ctl" -D "$PG_DIR" -m fast -w -t 30 stop >/dev/null ||
        log "postgres did not stop (pg_ctl stop -m fast)"
}

as_postgres() { runuser -u postgres -- "$@"; }

start_postgres() {
    local bin dir="$PG_DIR" logf="$PG_DIR.log"
    pg_bin >/dev/null || apt_install postgresql
    bin=$(pg_bin) || die "no PostgreSQL server binaries after installing postgresql"
    if pg_ready; then
        # New certificates (ensure_certs) reach a running server with a reload, as for the others.
        if [[ -f $dir/PG_VERSION ]] && pg_certs; then
            log "postgres: certificates changed, reloading"
            as_postgres "$bin/pg_ctl" -D "$dir" reload >/dev/null || die "postgres reload failed"
        fi
        log "postgres already running on $PG_PORT"
        return 0
    fi
    ensure_port_free "$PG_PORT" postgres
    if [[ ! -f $dir/PG_VERSION ]]; then
        log "initdb postgres in $dir"
        rm -rf "$dir"
        install -d -m 0755 "$(dirname "$dir")"
        install -d -o postgres -g postgres -m 0700 "$dir"
        local pw="$dir.pw"
        printf 'admin-pg-pw\n' >"$pw"
        chown postgres "$pw"
        as_postgres "$bin/initdb" -D "$dir" -A scram-sha-256 --pwfile="$pw" -U admin >/dev/null ||
            die "initdb failed"
        rm -f "$pw"
        cat >"$dir/pg_hba.conf" <<HBA
local   all  all                    trust
hostssl all  sslonly  127.0.0.1/32  scram-sha-256
host    all  probe    127.0.0.1/32  scram-sha-256
host    all  admin    127.0.0.1/32  scram-sha-256
HBA
        chown postgres:postgres "$dir/pg_hba.conf"
    fi
    pg_certs || true
    touch "$logf" && chown postgres "$logf"
    log "starting postgres on $HOST:$PG_PORT"
    as_postgres "$bin/pg_ctl" -D "$dir" -l "$logf" -w -t 30 \
        -o "-p $PG_PORT -k $dir -c listen_addresses=$HOST -c ssl=on" start >/dev/null 9>&- ||
        { tail -20 "$logf" >&2; die "postgres did not start"; }
    as_postgres "$bin/psql" -q -h "$dir" -p "$PG_PORT" -U admin -d postgres -v ON_ERROR_STOP=1 <<SQL >/dev/null ||
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'probe') THEN CREATE ROLE probe LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sslonly') THEN CREATE ROLE sslonly LOGIN; END IF;
END \$\$;
ALTER ROLE probe PASSWORD '$PG_PASSWORD';
ALTER ROLE sslonly PASSWORD '$PG_SSLONLY_PASSWORD';
SELECT 'CREATE DATABASE suai OWNER probe' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'suai')\\gexec
SQL
        die "postgres provisioning failed"
}

# ----------------------------------------------------------------------------
# commands

with_lock() {
    mkdir -p "$STATE" "$RUN" "$LOGS"
    link_state
    if have flock; then
        # fd 9 holds the lock; every server is started with 9>&- so it does not inherit it.
        exec 9>"$STATE/.lock"
        flock -w 120 9 || die "another test-env.sh is running (lock $STATE/.lock)"
    fi
}

# $REPO/.test-env -> $STATE, so tests and scripts find the env file from any clone.
link_state() {
    local link="$REPO/.test-env"
    if [ -L "$link" ] || [ ! -e "$link" ]; then
        ln -sfn "$STATE" "$link"
    elif [ "$(cd "$link" && pwd -P)" != "$(cd "$STATE" && pwd -P)" ]; then
        die "$link is a directory, not a link to $STATE: remove it and re-run"
    fi
}

# What this machine gives the tests: the distribution's packages are not pinned (each release
# of Debian or Ubuntu has its own), so their versions are printed for the record; the Python
# packages are the lock's (checked), the Rust toolchain is rust-toolchain.toml's.
DEB_PACKAGES=(mariadb-server redis-server postgresql haproxy prometheus chromium awscli
    shellcheck python3 qemu-system-x86 musl-tools gcc-aarch64-linux-gnu qemu-user-static)
print_versions() {
    local p v
    for p in "${DEB_PACKAGES[@]}"; do
        v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null) || v=
        log "deb $p ${v:-(not installed)}"
    done
    log "python $("$MOTO_VENV/bin/python" --version 2>&1 | cut -d' ' -f2), pip packages from $LOCK: moto $("$MOTO_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))')"
    if have rustc; then log "rust $(cd "$REPO" && rustc --version)"; fi
}

# RDS IAM authentication stands in as PAM: pam_exec runs scripts/rds_iam_forward.py (system
# python3, installed outside /root so PostgreSQL's `postgres` user can run it), which hands the
# token to the verifier service (scripts/rds_iam_verify.py --serve, run as root with the moto
# venv's botocore) over a Unix socket. MariaDB's auth_pam_v1 and PostgreSQL's `pam` method use
# the PAM service suai-rds-iam; the tests write each user's expectation into $RDS_IAM/expect.
ensure_rds_iam_pam() {
    mkdir -p "$RDS_IAM/expect" || die "cannot create $RDS_IAM"
    as_root install -d -m 0755 "$RDS_IAM_LIB" "$(dirname "$RDS_IAM_SOCK")" || die "cannot create $RDS_IAM_LIB"
    as_root install -m 0755 "$REPO/scripts/rds_iam_forward.py" "$RDS_IAM_LIB/rds_iam_forward.py" ||
        die "cannot install the PAM forwarder"
    local service
    service=$(printf '%s\n' \
        "# suaicloudapp's tests: RDS IAM authentication stand-in (scripts/test-env.sh writes this)" \
        "auth required pam_exec.so expose_authtok quiet /usr/bin/python3 $RDS_IAM_LIB/rds_iam_forward.py $RDS_IAM_SOCK" \
        "account required pam_permit.so")
    if [[ ! -f $RDS_IAM_PAM ]] || [[ $(<"$RDS_IAM_PAM") != "$service" ]]; then
        printf '%s\n' "$service" | as_root tee "$RDS_IAM_PAM" >/dev/null || die "cannot write $RDS_IAM_PAM"
        log "wrote $RDS_IAM_PAM"
    fi
    # The verifier: restarted when its script changed.
    local pidfile="$RUN/rds-iam.pid"
    if pid_alive "$pidfile" verify.py && cmp -s "$REPO/scripts/rds_iam_verify.py" "$RDS_IAM/verify.py" && [[ -S $RDS_IAM_SOCK ]]; then
        log "rds-iam verifier already running"
        return 0
    fi
    stop_pidfile rds-iam "$pidfile" verify.py
    install -m 0755 "$REPO/scripts/rds_iam_verify.py" "$RDS_IAM/verify.py" || die "cannot install $RDS_IAM/verify.py"
    rm -f "$RDS_IAM_SOCK"
    mark_log "$LOGS/rds-iam.log" start
    nohup "$MOTO_VENV/bin/python" "$RDS_IAM/verify.py" --serve "$RDS_IAM_SOCK" >>"$LOGS/rds-iam.log" 2>&1 9>&- &
    echo $! >"$pidfile"
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -S $RDS_IAM_SOCK ]] && { log "rds-iam verifier on $RDS_IAM_SOCK"; return 0; }
        sleep 0.1
    done
    start_failed rds-iam "$LOGS/rds-iam.log" "$pidfile" "the rds-iam verifier did not create $RDS_IAM_SOCK"
}

# PostgreSQL's IAM user: pam (suai-rds-iam) over TLS only; added to an existing cluster too.
ensure_pg_iam() {
    local bin dir="$PG_DIR" line="hostssl all $PG_IAM_USER 127.0.0.1/32 pam pamservice=${RDS_IAM_PAM##*/}"
    bin=$(pg_bin) || die "no PostgreSQL server binaries"
    if ! grep -qxF "$line" "$dir/pg_hba.conf"; then
        printf '%s\n' "$line" >>"$dir/pg_hba.conf" || die "cannot write $dir/pg_hba.conf"
        as_postgres "$bin/pg_ctl" -D "$dir" reload >/dev/null || die "postgres reload failed"
        log "postgres: $PG_IAM_USER logs in through PAM"
    fi
    as_postgres "$bin/psql" -q -h "$dir" -p "$PG_PORT" -U admin -d postgres -v ON_ERROR_STOP=1 \
        -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_IAM_USER') THEN CREATE ROLE $PG_IAM_USER LOGIN; END IF; END \$\$;" \
        >/dev/null || die "postgres: cannot create $PG_IAM_USER"
}

cmd_up() {
    with_lock
    ensure_packages
    ensure_moto
    print_versions
    MARIADBD=$(command -v mariadbd)
    ensure_certs
    ensure_rds_iam_pam
    start_mariadb mariadb "$MYSQL_PORT" 0
    start_mariadb mariadb-tls "$MYSQL_TLS_PORT" 1
    start_redis_standalone
    start_redis_auth
    start_redis_tls
    start_redis_cluster
    start_postgres
    ensure_pg_iam
    setup_moto_a
    setup_moto_b
    write_env
    print_table
}

all_services() { # name|pidfile|expect
    echo "mariadb|$RUN/mariadb.pid|mariadbd"
    echo "mariadb-tls|$RUN/mariadb-tls.pid|mariadbd"
    echo "rds-iam verifier|$RUN/rds-iam.pid|verify.py"
    echo "redis-$REDIS_PORT|$RUN/redis-$REDIS_PORT.pid|redis-server"
    echo "redis-$REDIS_AUTH_PORT|$RUN/redis-$REDIS_AUTH_PORT.pid|redis-server"
    echo "redis-tls|$RUN/redis-$REDIS_TLS_PORT.pid|redis-server"
    local p
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do echo "cluster node $p|$RUN/redis-$p.pid|redis-server"; done
    echo "moto-a|$RUN/moto-a.pid|moto_server"
    echo "moto-b|$RUN/moto-b.pid|moto_server"
}

cmd_down() {
    with_lock
    local name pidfile expect
    while IFS='|' read -r name pidfile expect; do
        if pid_alive "$pidfile" "$expect"; then
            log "stopping $name (pid $(<"$pidfile"))"
            signal_pid "$pidfile" "$expect" # all at once, then wait for each
        fi
    done < <(all_services)
    while IFS='|' read -r name pidfile expect; do
        if pid_alive "$pidfile" "$expect"; then
            stop_pidfile "$name" "$pidfile" "$expect" quiet
        else
            rm -f "$pidfile"
        fi
    done < <(all_services)
    stop_postgres
    log "all private instances stopped"
}

cmd_status() {
    mkdir -p "$RUN"
    local bad=0 p
    printf '%-16s %-26s %-8s %s\n' SERVICE ENDPOINT PID STATE
    row() { # NAME ENDPOINT PIDFILE EXPECT CHECK...
        local name=$1 ep=$2 pidfile=$3 expect=$4 pid=- st
        shift 4
        if pid_alive "$pidfile" "$expect"; then pid=$(<"$pidfile"); fi
        if "$@" >/dev/null 2>&1; then st=up; else
            st=DOWN
            bad=1
        fi
        printf '%-16s %-26s %-8s %s\n' "$name" "$ep" "$pid" "$st"
    }
    if have mariadb; then
        row mariadb "$HOST:$MYSQL_PORT" "$RUN/mariadb.pid" mariadbd mysql_tcp_ping "$MYSQL_PORT"
        row mariadb-tls "$HOST:$MYSQL_TLS_PORT" "$RUN/mariadb-tls.pid" mariadbd mysql_tcp_ping "$MYSQL_TLS_PORT" tls
    else
        echo "mariadb: client not installed"
        bad=1
    fi
    if have redis-cli; then
        row redis "$HOST:$REDIS_PORT" "$RUN/redis-$REDIS_PORT.pid" redis-server \
            redis_ping "$REDIS_PORT" --user "$REDIS_USER" --pass "$REDIS_PASSWORD"
        row redis-auth "$HOST:$REDIS_AUTH_PORT" "$RUN/redis-$REDIS_AUTH_PORT.pid" redis-server \
            redis_ping "$REDIS_AUTH_PORT" -a "$REDIS_DEFAULT_PASSWORD"
        row redis-tls "$HOST:$REDIS_TLS_PORT" "$RUN/redis-$REDIS_TLS_PORT.pid" redis-server \
            redis_ping "$REDIS_TLS_PORT" --tls --cacert "$TLS_DIR/ca.pem"
        for p in "${REDIS_CLUSTER_PORTS[@]}"; do
            row "cluster-$p" "$HOST:$p" "$RUN/redis-$p.pid" redis-server cluster_node_ok "$p"
        done
    else
        echo "redis: redis-cli not installed"
        bad=1
    fi
    row moto "$MOTO_URL" "$RUN/moto-a.pid" moto_server moto_answers "$MOTO_URL"
    row moto-auth "$MOTO_AUTH_URL" "$RUN/moto-b.pid" moto_server moto_answers "$MOTO_AUTH_URL"
    if pg_bin >/dev/null; then
        printf '%-16s %-26s %-8s %s\n' postgres "$HOST:$PG_PORT" "$(pg_pid || echo -)" \
            "$(pg_ready && echo up || echo DOWN)"
        pg_ready || bad=1
    else
        echo "postgres: server not installed"
        bad=1
    fi
    if [[ -f $ENV_FILE ]]; then echo "env file: $ENV_FILE"; else echo "env file: (none; run up)"; fi
    local drift venv lock
    for venv in "$MOTO_VENV" "$CHECKOV_VENV"; do
        lock=$LOCK
        [[ $venv == "$CHECKOV_VENV" ]] && lock=$CHECKOV_LOCK
        if drift=$(venv_matches_lock "$venv" "$lock"); then
            echo "venv: $venv holds exactly $lock"
        else
            echo "venv: $venv differs from $lock:"
            printf '  %s\n' "${drift//$'\n'/$'\n'  }"
            bad=1
        fi
    done
    return "$bad"
}

main() {
    local cmd=${1:-up}
    case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    -h | --help | help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
    *)
        echo "usage: $0 [up|down|status]" >&2
        exit 2
        ;;
    esac
}

main "$@"
