#!/bin/bash
# EC2 user-data for suaicloudapp on Amazon Linux 2023, Debian 12 and Ubuntu 22.04 or newer
# (x86_64 and aarch64/Graviton).
#
# Installs the binary from S3 after checking its SHA-256, points it at its config in S3, installs
# and starts the systemd unit, and (with APP_PORT) waits for /health to answer. Launched by the
# CloudFormation stack (deploy/cloudformation.yaml), it then signals the stack: SUCCESS once
# /health answered, FAILURE with the reason otherwise, so a rolling update stops at the first bad
# instance. The instance role needs s3:GetObject on both keys (and
# s3:ListBucket on the bucket for the /s3 page). cloud-init runs this once per instance and keeps
# its output in /var/log/cloud-init-output.log (and on the console). Running it again is safe:
# it reinstalls and restarts.
#
# Verified install: the binary for this machine's architecture (`uname -m`: x86_64, or aarch64
# on Graviton) is downloaded to a temporary file, its SHA-256 compared with the expected one
# (the line for that file in the release's SHA256SUMS), and only then made executable, run
# (`--version`) and renamed into place. A digest that differs, or none given, stops the script
# before anything is replaced or restarted: the console, cloud-init's log and the journal
# (`journalctl -t suaicloudapp-user-data`) say why, and a previously installed binary keeps
# running.
#
# Settings: edit the defaults below, or set them in the environment.
#   BUCKET              bucket holding the binaries and the config (required)
#   SHA256_X86_64       expected SHA-256 (64 hex digits) of the x86_64 binary
#   SHA256_AARCH64      expected SHA-256 of the aarch64 binary
#                       (the one for this machine's architecture is required)
#   BINARY_KEY_X86_64   key of the x86_64 binary  (default
#                       suaicloudapp/suaicloudapp-x86_64-unknown-linux-musl)
#   BINARY_KEY_AARCH64  key of the aarch64 binary (default
#                       suaicloudapp/suaicloudapp-aarch64-unknown-linux-musl)
#   BINARY_KEY, SHA256  this machine's key and digest, when set: they win over the two pairs
#                       above (one architecture only, as a stack's launch template knows it)
#   CONFIG_KEY          key of config.toml              (default suaicloudapp/config.toml)
#   REGION              region of the bucket            (default: the instance's, from IMDSv2)
#   ROOT                prefix for every installed path (default empty; tests use a scratch dir)
#   SYSTEMCTL           service manager command         (default systemctl)
#   AWS                 AWS CLI command                 (default aws)
#   LOGGER              logger(1) command for the journal (default logger)
#   IMDS                instance metadata endpoint      (default http://169.254.169.254)
#   AWS_ENDPOINT_URL    optional S3 endpoint override (VPC endpoint, emulator): passed to the
#                       CLI as --endpoint-url (older CLIs ignore the variable) and to the service.
#   APP_PORT            the config's [server] port, when known (the stack passes AppPort): the
#                       script waits for /health there before it reports success, and below 1024
#                       it grants the service CAP_NET_BIND_SERVICE (a drop-in, low-port.conf)
#   HEALTH_URL          the /health to wait for (default http://127.0.0.1:APP_PORT/health)
#   HEALTH_WAIT_SECS    how long to wait for it to answer "healthy" (default 60)
#   CFN_STACK, CFN_RESOURCE  the stack and its Auto Scaling group's logical id (the stack sets
#                       both): the outcome is signalled with cfn-signal, or where it is not
#                       installed with `aws cloudformation signal-resource` (which carries no
#                       reason: the console and the journal have it). Unset: no signal.
#   CFN_SIGNAL          cfn-signal command (default cfn-signal)
#   JOURNALCTL          journalctl(1), for the service's last lines in a failure (default journalctl)
set -euo pipefail

BUCKET="${BUCKET:-}"
SHA256_X86_64="${SHA256_X86_64:-}"
SHA256_AARCH64="${SHA256_AARCH64:-}"
BINARY_KEY_X86_64="${BINARY_KEY_X86_64:-suaicloudapp/suaicloudapp-x86_64-unknown-linux-musl}"
BINARY_KEY_AARCH64="${BINARY_KEY_AARCH64:-suaicloudapp/suaicloudapp-aarch64-unknown-linux-musl}"
BINARY_KEY="${BINARY_KEY:-}"
SHA256="${SHA256:-}"
CONFIG_KEY="${CONFIG_KEY:-suaicloudapp/config.toml}"
REGION="${REGION:-}"
ROOT="${ROOT:-}"
SYSTEMCTL="${SYSTEMCTL:-systemctl}"
AWS="${AWS:-aws}"
LOGGER="${LOGGER:-logger}"
IMDS="${IMDS:-http://169.254.169.254}"
APP_PORT="${APP_PORT:-}"
HEALTH_URL="${HEALTH_URL:-}"
HEALTH_WAIT_SECS="${HEALTH_WAIT_SECS:-60}"
CFN_STACK="${CFN_STACK:-}"
CFN_RESOURCE="${CFN_RESOURCE:-}"
CFN_SIGNAL="${CFN_SIGNAL:-cfn-signal}"
JOURNALCTL="${JOURNALCTL:-journalctl}"

NAME=suaicloudapp
IMDS="${IMDS%/}"
# The AWS CLI takes its credentials (the instance role) from the same metadata endpoint; it
# wants the trailing slash.
export AWS_EC2_METADATA_SERVICE_ENDPOINT="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-$IMDS/}"

log() { printf '%s user-data: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
# A failure goes to stdout (cloud-init copies it to the console and its log), to the journal
# at priority err (a machine without a journal, a test's scratch root, still gets the first
# two) and, from a stack's instance, to CloudFormation as the FAILURE signal's reason.
die() {
    log "ERROR: $*"
    "$LOGGER" -t "$NAME-user-data" -p user.err -- "ERROR: $*" 2>/dev/null || true
    signal_stack FAILURE "$*"
    exit 1
}

# Temporary files live next to their destination, so the final mv is an atomic rename (a
# running binary is replaced, never overwritten in place). Whatever stops the script removes
# them; a stop that no die() explained (a command failing under set -e) is still signalled.
tmp_files=()
cleanup() { ((${#tmp_files[@]} == 0)) || rm -f -- "${tmp_files[@]}"; }
on_exit() {
    local status=$?
    cleanup
    if ((status != 0)); then
        signal_stack FAILURE "user-data.sh stopped with exit status $status (the console or /var/log/cloud-init-output.log says where)"
    fi
}
trap on_exit EXIT

# One IMDSv2 value: a session token first, then the GET. Bounded: 2 s to connect, 5 s per call,
# 5 attempts one second apart (the metadata service can be briefly unreachable early in boot).
imds_get() {
    local path=$1 attempt token value
    for attempt in 1 2 3 4 5; do
        if token=$(curl -sSf --connect-timeout 2 --max-time 5 -X PUT \
            -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/latest/api/token") &&
            value=$(curl -sSf --connect-timeout 2 --max-time 5 \
                -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/$path"); then
            printf '%s\n' "$value"
            return 0
        fi
        log "instance metadata $path: attempt $attempt failed" >&2
        ((attempt < 5)) && sleep 1
    done
    return 1
}

# signal_stack SUCCESS|FAILURE REASON: tells CloudFormation how this instance went, once, when the
# stack named itself (CFN_STACK, CFN_RESOURCE); a signal that cannot be sent is logged, and the
# stack's timeout then fails the instance. cfn-signal carries the reason; the AWS CLI's
# signal-resource has no field for it. Never through AWS_ENDPOINT_URL (an S3 endpoint).
SIGNALLED=
signal_stack() {
    local status=$1 reason=$2 region=${REGION:-} id=
    [[ -n $CFN_STACK && -n $CFN_RESOURCE && -z $SIGNALLED ]] || return 0
    SIGNALLED=$status
    # CloudFormation keeps a reason of up to 4,000 characters; the start of a long one says why.
    reason=${reason:0:1000}
    [[ -n $region ]] || region=$(imds_get meta-data/placement/region) || region=
    id=$(imds_get meta-data/instance-id) || id=
    if command -v "$CFN_SIGNAL" >/dev/null 2>&1; then
        local -a args=(--exit-code "$([[ $status == SUCCESS ]] && echo 0 || echo 1)" --reason "$reason"
            --stack "$CFN_STACK" --resource "$CFN_RESOURCE")
        [[ -z $region ]] || args+=(--region "$region")
        [[ -z $id ]] || args+=(--id "$id")
        if env -u AWS_ENDPOINT_URL "$CFN_SIGNAL" "${args[@]}"; then
            log "signalled $status to stack $CFN_STACK ($CFN_RESOURCE) with cfn-signal"
            return 0
        fi
    elif [[ -z $id || -z $region ]]; then
        log "cannot signal $status to stack $CFN_STACK: no instance id or region from $IMDS"
        return 0
    elif env -u AWS_ENDPOINT_URL "$AWS" --region "$region" --only-show-errors cloudformation signal-resource \
        --stack-name "$CFN_STACK" --logical-resource-id "$CFN_RESOURCE" --unique-id "$id" --status "$status"; then
        log "signalled $status to stack $CFN_STACK ($CFN_RESOURCE, $id) with the AWS CLI"
        return 0
    fi
    log "WARNING: could not signal $status to stack $CFN_STACK: it times out this instance instead"
}

[[ -n $BUCKET ]] || die "BUCKET is not set: edit the top of this script or set it in the environment"

# The binary and its digest for this machine's architecture.
machine=$(uname -m)
case $machine in
    x86_64 | amd64) ARCH=x86_64 arch_key=$BINARY_KEY_X86_64 arch_sum=$SHA256_X86_64 ;;
    aarch64 | arm64) ARCH=aarch64 arch_key=$BINARY_KEY_AARCH64 arch_sum=$SHA256_AARCH64 ;;
    *) die "unsupported architecture '$machine' (suaicloudapp ships x86_64 and aarch64)" ;;
esac
BINARY_KEY=${BINARY_KEY:-$arch_key}
SHA256=${SHA256:-$arch_sum}
SHA256=${SHA256,,}
[[ -n $SHA256 ]] ||
    die "no expected SHA-256 for the $ARCH binary: set SHA256_${ARCH^^} (or SHA256) to its line in the release's SHA256SUMS"
[[ $SHA256 =~ ^[0-9a-f]{64}$ ]] ||
    die "the expected SHA-256 for the $ARCH binary is not 64 hex digits: '$SHA256'"
[[ -z $APP_PORT || ($APP_PORT =~ ^[0-9]{1,5}$ && APP_PORT -ge 1 && APP_PORT -le 65535) ]] ||
    die "APP_PORT is not a port number: '$APP_PORT'"
[[ $HEALTH_WAIT_SECS =~ ^[0-9]+$ ]] || die "HEALTH_WAIT_SECS is not a number of seconds: '$HEALTH_WAIT_SECS'"

if [[ -z $REGION ]]; then
    REGION=$(imds_get meta-data/placement/region) || die "cannot read the region from $IMDS"
fi
log "bucket $BUCKET, region $REGION, $ARCH binary $BINARY_KEY (sha256 $SHA256), config $CONFIG_KEY, root '${ROOT:-/}'"

# Amazon Linux 2023 ships the AWS CLI; Debian 12 and Ubuntu's cloud images do not. Debian's and
# Ubuntu 22.04's archives carry it (awscli); Ubuntu 24.04 and later have it as a snap only.
PATH="$PATH:/snap/bin"
if ! command -v "$AWS" >/dev/null 2>&1; then
    [[ $AWS == aws ]] || die "the AWS CLI '$AWS' is not there"
    log "installing the AWS CLI"
    if command -v apt-get >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq update &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq install -y awscli; then
        :
    elif command -v snap >/dev/null 2>&1; then
        snap install aws-cli --classic || true
    fi
    command -v "$AWS" >/dev/null 2>&1 || die "no AWS CLI, and installing one failed: install awscli"
fi

aws_args=(--region "$REGION" --only-show-errors)
if [[ -n ${AWS_ENDPOINT_URL:-} ]]; then
    aws_args+=(--endpoint-url "$AWS_ENDPOINT_URL")
fi

BIN_DIR="$ROOT/usr/local/bin"
ETC_DIR="$ROOT/etc/$NAME"
UNIT_DIR="$ROOT/etc/systemd/system"
install -d -m 0755 "$BIN_DIR" "$ETC_DIR" "$UNIT_DIR"

# A fresh temporary file in DIR. The caller adds it to tmp_files: $(...) runs in a subshell,
# whose additions to the list would be lost (and the file left behind after a refusal).
new_tmp() { mktemp "$1/.$NAME.XXXXXX"; }

log "downloading s3://$BUCKET/$BINARY_KEY"
# mktemp makes the file 0600: not executable until its digest matched.
bin_tmp=$(new_tmp "$BIN_DIR") && tmp_files+=("$bin_tmp")
"$AWS" "${aws_args[@]}" s3 cp "s3://$BUCKET/$BINARY_KEY" "$bin_tmp" ||
    die "cannot download s3://$BUCKET/$BINARY_KEY (does the instance role allow s3:GetObject?)"
actual=$(sha256sum <"$bin_tmp") || die "cannot compute the SHA-256 of the download"
actual=${actual%% *}
if [[ $actual != "$SHA256" ]]; then
    kept="nothing was installed"
    [[ -e $BIN_DIR/$NAME ]] && kept="$BIN_DIR/$NAME was left as it was"
    die "refusing s3://$BUCKET/$BINARY_KEY: its SHA-256 is $actual, expected $SHA256 (a different or corrupted file); $kept and $NAME was not restarted"
fi
log "verified s3://$BUCKET/$BINARY_KEY: sha256 $actual"
chmod 0755 "$bin_tmp"
version=$("$bin_tmp" --version) ||
    die "the downloaded binary does not run (wrong architecture for this $machine machine?)"
mv -f "$bin_tmp" "$BIN_DIR/$NAME"
log "installed $BIN_DIR/$NAME ($version)"

env_tmp=$(new_tmp "$ETC_DIR") && tmp_files+=("$env_tmp")
{
    printf 'SUAICLOUDAPP_CONFIG=s3://%s/%s\n' "$BUCKET" "$CONFIG_KEY"
    printf 'AWS_REGION=%s\n' "$REGION"
    if [[ -n ${AWS_ENDPOINT_URL:-} ]]; then
        printf 'AWS_ENDPOINT_URL=%s\n' "$AWS_ENDPOINT_URL"
    fi
} >"$env_tmp"
chmod 0644 "$env_tmp"
mv -f "$env_tmp" "$ETC_DIR/env"
log "wrote $ETC_DIR/env"

# The unit, byte for byte the repository's systemd/suaicloudapp.service (a test checks it).
unit_tmp=$(new_tmp "$UNIT_DIR") && tmp_files+=("$unit_tmp")
cat >"$unit_tmp" <<'UNIT'
# suaicloudapp: health and diagnostic pages for an AWS web tier (installed by user-data.sh).
#
# Supported: Amazon Linux 2023 (systemd 252), Debian 12 (252), Ubuntu 22.04 (249) and later.
# Every key below exists in systemd 249; the newest are ProcSubset= and ProtectProc= (247),
# which also need Linux 5.8 or later (all three ship newer kernels). Amazon Linux 2 (systemd
# 219, which ignores most of this sandbox and would run the service as root) reached its end
# of support on 2026-06-30 and is not supported. `systemd-analyze security` rates this unit
# 1.2 or lower (tests/deploy/deploy.rs).

[Unit]
Description=suaicloudapp health and probe pages
# The config is fetched from S3 at start: wait for the network to be configured.
Wants=network-online.target
After=network-online.target
# On a baked AMI the unit is enabled before user-data has written its env file: skip (not
# fail and restart-loop) until it exists; user-data then starts it.
ConditionPathExists=/etc/suaicloudapp/env

[Service]
# The binary sends READY=1 once its listener is bound (after the config fetch).
Type=notify
# Written by user-data.sh: SUAICLOUDAPP_CONFIG=s3://BUCKET/KEY and AWS_REGION ("-": optional).
EnvironmentFile=-/etc/suaicloudapp/env
# Where the fetched config copy and its ETag are kept: the last known good config, served at
# a restart when S3 cannot be read (the same directory as StateDirectory= below).
Environment=SUAICLOUDAPP_STATE_DIR=/var/lib/suaicloudapp
ExecStart=/usr/local/bin/suaicloudapp serve
# SIGHUP re-reads the config from S3; a bad one is rejected and the running one kept.
ExecReload=/bin/kill -HUP $MAINPID
# Also restarts after a watchdog timeout or an out-of-memory kill (see below).
Restart=on-failure
RestartSec=2
# The S3 config fetch retries for up to 120 s (SUAICLOUDAPP_CONFIG_DEADLINE_SECS) before READY.
TimeoutStartSec=180
# SIGTERM drains in-flight requests (10 s grace by default) before exit 0.
TimeoutStopSec=30
# Room for [server] max_connections (default 1024) plus backend sockets and the log file;
# systemd's default soft limit is 1024.
LimitNOFILE=65536
# The runtime pings (WATCHDOG=1) every 15 s from a task on its event loop; 30 s without one
# means the loop is wedged, and systemd kills and restarts the service.
WatchdogSec=30

# --- Resources ------------------------------------------------------------------------------
# Measured with the static build: 6.5 MB resident idle and 9.4 MB at peak under /health load
# (bench/RESULTS.md, one CPU); on 2 vCPUs with every probe configured, /health and the
# dashboard under wrk and 30 concurrent /logs?lines=5000 tails: 7.8 MB idle, 45 MB at peak,
# 13 threads.
# Memory: 256M is more than five times that peak, so the cap is reached only by a leak, which
# then ends in an out-of-memory kill and a restart rather than in the web server beside it
# being starved. The page cache of the log files is charged here too, but the kernel reclaims
# it before it kills anything.
MemoryMax=256M
# Threads: the main one, one runtime worker per vCPU (at most 8, src/lib.rs), at most 64
# blocking threads (DNS lookups, log tails, file reads) and the log writer: 74 at most on any
# instance size. 256 leaves room above that ceiling and still stops a thread leak.
TasksMax=256

# --- Identity and files -------------------------------------------------------------------
# A transient unprivileged user, allocated at start: no account to manage, owns nothing else.
DynamicUser=yes
# /var/lib/suaicloudapp (fetched config, 0600) and /var/log/suaicloudapp, owned by that user.
StateDirectory=suaicloudapp
LogsDirectory=suaicloudapp
# The relative [logs] file (output.log) lands in the logs directory.
WorkingDirectory=/var/log/suaicloudapp
# New files (output.log, the config copy) are readable by the service's user only.
UMask=0077

# --- Privileges -----------------------------------------------------------------------------
# No capability at all: the default port, 8080, needs none. A port below 1024 needs
# CAP_NET_BIND_SERVICE, and only that: user-data.sh, given APP_PORT below 1024 (the stack's
# AppPort), grants it in the drop-in /etc/systemd/system/suaicloudapp.service.d/low-port.conf
# (AmbientCapabilities= and CapabilityBoundingSet= both CAP_NET_BIND_SERVICE).
CapabilityBoundingSet=
# No setuid escalation, ever.
NoNewPrivileges=yes

# --- File system ----------------------------------------------------------------------------
# The whole tree is read-only except the state and logs directories above.
ProtectSystem=strict
# No access to /home, /root, /run/user.
ProtectHome=yes
# A private /tmp and /var/tmp.
PrivateTmp=yes
# No physical devices: /dev holds only null, zero, random and the like.
PrivateDevices=yes

# --- Kernel and cgroups ---------------------------------------------------------------------
# Read-only /proc/sys and /sys; no module loading; no kernel log; no clock changes.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectClock=yes
# Read-only cgroup tree.
ProtectControlGroups=yes
# Cannot change the host name.
ProtectHostname=yes
# Other processes are invisible in /proc.
ProtectProc=invisible
# /proc shows only process directories (no /proc/meminfo, /proc/sys, ...): nothing else is read.
ProcSubset=pid
# No new namespaces, no realtime scheduling, no setuid/setgid files, no SysV IPC left behind.
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RemoveIPC=yes
# IPv4/IPv6 for the listener and the backends; Unix sockets for sd_notify and the journal.
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
# No writable-and-executable memory (no JIT here), no personality(2) changes, native syscalls only.
MemoryDenyWriteExecute=yes
LockPersonality=yes
SystemCallArchitectures=native
# Only the system calls a network service makes (@system-service), less the privileged ones
# (setuid, chroot, ...) and resource changes (setrlimit, sched_setaffinity, ...). Those the
# binary makes were checked under load, reload and the prctl/execve of its start
# (tests/serve/least_privilege.rs). A call outside the list fails with EPERM instead of killing
# the process.
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
# Mounts made in the service's namespace stay there.
PrivateMounts=yes

# --- Logs -----------------------------------------------------------------------------------
# stderr carries the same lines as output.log: journalctl -u suaicloudapp.
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=multi-user.target
UNIT
chmod 0644 "$unit_tmp"
mv -f "$unit_tmp" "$UNIT_DIR/$NAME.service"
log "installed $UNIT_DIR/$NAME.service"

# The unit grants no capability (8080, the default port, needs none). A port below 1024 needs
# CAP_NET_BIND_SERVICE: a drop-in grants that one alone, and a re-run with a higher port removes it.
DROPIN_DIR="$UNIT_DIR/$NAME.service.d"
if [[ -n $APP_PORT ]] && ((APP_PORT < 1024)); then
    install -d -m 0755 "$DROPIN_DIR"
    dropin_tmp=$(new_tmp "$DROPIN_DIR") && tmp_files+=("$dropin_tmp")
    cat >"$dropin_tmp" <<'LOWPORT'
# Written by user-data.sh: the config's port (APP_PORT) is below 1024, and binding it takes
# this one capability. Removed again by a run with a port of 1024 or above.
[Service]
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
LOWPORT
    chmod 0644 "$dropin_tmp"
    mv -f "$dropin_tmp" "$DROPIN_DIR/low-port.conf"
    log "installed $DROPIN_DIR/low-port.conf (CAP_NET_BIND_SERVICE for port $APP_PORT)"
elif [[ -e $DROPIN_DIR/low-port.conf ]]; then
    rm -f "$DROPIN_DIR/low-port.conf"
    log "removed $DROPIN_DIR/low-port.conf (port ${APP_PORT:-unknown} needs no capability)"
fi

# The service's last lines, for a failure's reason (best effort: empty without a journal).
service_tail() {
    "$JOURNALCTL" -u "$NAME" -n 5 -o cat --no-pager 2>/dev/null | tr -s '\n' ' ' || true
}

# enable, then restart (which starts a stopped unit): the same as `enable --now` on a first run,
# and on a re-run the new binary and settings take effect. With Type=notify, restart returns
# once the service reported READY=1 (its config fetched and the port bound), or fails.
log "starting $NAME"
"$SYSTEMCTL" daemon-reload
"$SYSTEMCTL" enable "$NAME"
"$SYSTEMCTL" restart "$NAME" || die "$NAME did not start: $(service_tail)(journalctl -u $NAME)"
"$SYSTEMCTL" is-active "$NAME" >/dev/null || die "$NAME is not active: $(service_tail)(journalctl -u $NAME)"
log "$NAME is running"

# Serving: /health answers "healthy" (a shallow check: the process serves, whatever the
# backends do). Only then is the instance reported good.
if [[ -n $APP_PORT || -n $HEALTH_URL ]]; then
    HEALTH_URL=${HEALTH_URL:-http://127.0.0.1:$APP_PORT/health}
    deadline=$((SECONDS + HEALTH_WAIT_SECS))
    until answer=$(curl -sS --connect-timeout 2 --max-time 5 "$HEALTH_URL" 2>&1) && [[ $answer == healthy ]]; do
        ((SECONDS < deadline)) ||
            die "$NAME is running but $HEALTH_URL did not answer \"healthy\" within $HEALTH_WAIT_SECS s (last: ${answer:-nothing}): is APP_PORT the config's [server] port? $(service_tail)"
        sleep 1
    done
    log "$HEALTH_URL answered: $answer"
fi
signal_stack SUCCESS "$NAME serving ($version)"
