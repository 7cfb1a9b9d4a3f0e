#!/usr/bin/env bash
# Boot rehearsal: EC2's boot of suaicloudapp, in a real Linux VM under QEMU on this machine.
#
# Usage: scripts/vm-rehearsal.sh [--binary PATH] [--only SCENARIO[,SCENARIO...]] [--rebuild-image]
#                                [--image-only]
#
#   --binary PATH      the binary to deploy (default: the static release build,
#                      target/x86_64-unknown-linux-musl/release/suaicloudapp; `make static`)
#   --only LIST        scenarios to run, comma-separated (default: good,late-config,denied-credentials)
#   --rebuild-image    build the guest root file system again even when it is cached
#   --image-only       build (or check) the cached image and stop
#
# What it does, all on this machine:
#   1. The guest image: Debian 12 (systemd, cloud-init, Debian's AWS CLI, its own cloud kernel)
#      from debootstrap, cached under ~/.cache/suaicloudapp/vm/ keyed by a hash of the package
#      list; each boot gets a fresh disk made with `mkfs.ext4 -d` (no loop mount).
#   2. The host side on 127.0.0.1: the project's IMDSv2 server (scripts/imds_server.py, through
#      scripts/vm/imds_ec2_paths.py which adds the dated API paths cloud-init asks for) on port
#      80, which the guest sees at 169.254.169.254:80; the test backends of scripts/test-env.sh
#      (moto S3/DynamoDB on 15000, MariaDB 13306, Redis 16379), which the guest sees at
#      169.254.169.254 on the same ports (QEMU user-mode network; nothing is routed further).
#   3. Per boot: the binary and a config.toml in the S3 emulator; user-data.sh exactly as shipped
#      but for the defaults of its settings lines, served as the instance's user-data;
#      qemu-system-x86_64 (TCG, -cpu max) with DMI saying EC2, so cloud-init selects its EC2
#      datasource; pages fetched from the host through a forwarded port; teardown, whatever
#      happens.
#   Scenarios: good; late-config (config.toml uploaded ~20 s after the service first fails to
#   find it); denied-credentials (the metadata server has no role).
#
# This script judges nothing: it records what it saw, and tests/vm/vm_rehearsal.rs (`make
# vm-rehearsal` runs it) holds the expectations, so they are read and changed in one place and
# can be replayed on a recorded run (SUAI_VM_OBSERVATIONS). Under target/vm-rehearsal/:
#   rehearsal.log      a line per phase with elapsed seconds
#   run.json           run id, exit status, the fatal error that stopped the run (if any), the
#                      binary, the image, the scenarios requested
#   SCENARIO/observations.json  every fact of one boot: ids, settings, timestamps (host clock,
#                      microseconds since the epoch), how the wait for the end state ended, the
#                      exit codes and output of the commands run for it, each page fetched
#                      from the guest (status, headers, body, when), and the names of the files
#                      beside it: console.log (serial console), console.stamped (each line with
#                      the host's arrival time), imds.log, qemu.log, user-data.sh, the shipped
#                      copy and the diff between them, config.toml (password masked)
# Exit status: 0 when every requested scenario was booted and observed (whatever the guest
# did), 1 when the rehearsal could not run (the reason is in run.json and on stderr), 2 on bad
# usage.
#
# Needs root (debootstrap, a root-owned tree for mkfs -d, port 80). Installs what is missing:
# qemu-system-x86, debootstrap, e2fsprogs, awscli (Debian's packages).
# Environment: SUAI_VM_CACHE (image cache dir), SUAI_VM_OUT (output dir),
# SUAI_VM_BOOT_TIMEOUT (seconds per boot, default 420), SUAI_VM_MIRROR (Debian mirror),
# SUAI_VM_RUN_ID (the id stamped on run.json and every observations.json).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
# apt_install, pid_matches, stop_pid, free_port from scripts/lib.sh; say and die are this
# script's own (elapsed time, the run log), defined below.
LIB_TAG=vm-rehearsal
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

CACHE="${SUAI_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/suaicloudapp/vm}"
OUT="${SUAI_VM_OUT:-$REPO/target/vm-rehearsal}"
BOOT_TIMEOUT="${SUAI_VM_BOOT_TIMEOUT:-420}"
MIRROR="${SUAI_VM_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
BINARY="$REPO/target/x86_64-unknown-linux-musl/release/suaicloudapp"
DEPLOY=""
SCENARIOS=(good late-config denied-credentials)
REBUILD_IMAGE=0
IMAGE_ONLY=0

# What the guest is: Amazon Linux's stand-ins (systemd, cloud-init, the AWS CLI, curl) plus
# what a bootable Debian needs. The cache key is a hash of this list (and the suite).
GUEST_PACKAGES=(systemd-sysv udev dbus cloud-init python3-cffi-backend curl ca-certificates
    iproute2 ifupdown isc-dhcp-client netbase awscli linux-image-cloud-amd64)

# The guest's view: QEMU's user-mode network, the host at the metadata address.
GUEST_NET=169.254.169.0/24
HOST_IN_GUEST=169.254.169.254
GUEST_PORT=8080
REGION=us-east-1
AZ=us-east-1b
ROLE=suaicloudapp-vm-rehearsal-role
ACCESS_KEY=ASIAVMREHEARSAL00001
LATE_UPLOAD_AFTER=20
AWS_CLI=/usr/bin/aws # Debian's v2; honours --endpoint-url (it ignores AWS_ENDPOINT_URL)

T_START=${EPOCHREALTIME/./}
WORK=""
LOG=""
QEMU_PID=""
CONSOLE_PID=""
IMDS_PID=""
UPLOADED=()
CURRENT=""
FATAL=""
LOCKED=0
RUN_ID=""

# ----------------------------------------------------------------------------------------------
# output

usec() { printf '%s\n' "${EPOCHREALTIME/./}"; }
# Seconds with one decimal between two microsecond counts.
secs() { local d=$(($2 - $1)); printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000)); }

say() {
    local line
    line=$(printf '[vm-rehearsal %6ss] %s' "$(secs "$T_START" "$(usec)")" "$*")
    printf '%s\n' "$line"
    if [[ -n $LOG ]]; then printf '%s\n' "$line" >>"$LOG"; fi
}
phase() { say "== $*"; }
die() {
    FATAL="$*"
    say "ERROR: $*"
    exit 1
}

# ----------------------------------------------------------------------------------------------
# observations: SCENARIO/facts.tsv (KEY, value with \ tab newline escaped) and
# SCENARIO/fetches.tsv (one line per page fetched, its head and body in SCENARIO/http/), turned
# into SCENARIO/observations.json by write_observations

fact() { # KEY VALUE: KEY ending in _usec, _exit, _s or _port is a number
    local v=${2-}
    v=${v//\\/\\\\}
    v=${v//$'\t'/\\t}
    v=${v//$'\n'/\\n}
    v=${v//$'\r'/}
    printf '%s\t%s\n' "$1" "$v" >>"$OUT/$CURRENT/facts.tsv"
}

# ----------------------------------------------------------------------------------------------
# host preparation

need_root() {
    [[ $(id -u) -eq 0 ]] ||
        die "run as root: debootstrap, mkfs.ext4 -d of a root-owned tree and the metadata port 80 need it"
}

# qemu-system-x86 from the suite, or from its backports when the machine already has a
# backported qemu-utils (whose Breaks: forbids the suite's qemu-system-common).
install_qemu() {
    local utils
    utils=$(dpkg-query -W -f='${Status} ${Version}' qemu-utils 2>/dev/null || true)
    if [[ $utils == "install ok installed "* ]] && dpkg --compare-versions "${utils##* }" ge 1:8; then
        local src=/etc/apt/sources.list.d/debian-$SUITE-backports.sources
        if ! grep -rqs "$SUITE-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
            say "qemu-utils ${utils##* } is a backport: adding $SUITE-backports (Debian) for qemu-system-x86"
            printf '%s\n' 'Types: deb' "URIs: $MIRROR" "Suites: $SUITE-backports" 'Components: main' \
                'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >"$src"
        fi
        apt_install -t "$SUITE-backports" qemu-system-x86
    else
        apt_install qemu-system-x86
    fi
}

host_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
    [[ -x $AWS_CLI ]] || missing+=(awscli)
    command -v curl >/dev/null || missing+=(curl)
    command -v python3 >/dev/null || missing+=(python3)
    command -v ss >/dev/null || missing+=(iproute2)
    command -v flock >/dev/null || missing+=(util-linux)
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
    command -v qemu-system-x86_64 >/dev/null || install_qemu
    command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is still missing after the install"
}

# ----------------------------------------------------------------------------------------------
# the guest image

IMAGE_KEY=""
ROOTFS=""
KERNEL=""
INITRD=""

image_key() {
    printf '%s\n' "$SUITE" "$MIRROR" "${GUEST_PACKAGES[@]}" | sha256sum | cut -c1-16
}

# The guest image's own configuration, written over the cached debootstrap tree at every run
# (each file rewritten whole, so a change here needs no image rebuild). This is what an AMI
# bakes in; nothing here knows about suaicloudapp: the application arrives at boot through
# cloud-init's user-data, exactly as on EC2.
guest_files() {
    local root=$1
    install -d -m 0755 "$root/etc/cloud/cloud.cfg.d" "$root/etc/systemd/journald.conf.d" \
        "$root/etc/systemd/system" "$root/etc/network"

    # cloud-init: the EC2 datasource, found the way it is on EC2 (ds-identify reads the DMI
    # product UUID and serial, which QEMU sets to ec2...), talking IMDSv2 to 169.254.169.254 only
    # (no instance-data.: no name look-ups). The network is ifupdown's, below.
    cat >"$root/etc/cloud/cloud.cfg.d/99_boot_rehearsal.cfg" <<'EOF'
# Boot rehearsal image (scripts/vm-rehearsal.sh).
datasource:
  Ec2:
    metadata_urls: ["http://169.254.169.254"]
    timeout: 10
    max_wait: 60
# The network is configured by /etc/network/interfaces: link-local only, no route and no DNS
# server beyond QEMU's host address.
network: {config: disabled}
manage_etc_hosts: localhost
# No locales package: the one locale every Debian has.
locale: C.UTF-8
# Debian's list without "ssh": no SSH server here (the rehearsal reads the serial console and
# a forwarded port), so no host keys to generate.
cloud_init_modules: [migrator, seed_random, bootcmd, write-files, growpart, resizefs,
  disk_setup, mounts, set_hostname, update_hostname, update_etc_hosts, ca-certs, rsyslog,
  users-groups]
EOF

    # QEMU user-mode network 169.254.169.0/24: the host is .254 (its loopback services appear
    # there, the metadata server on port 80 among them); the guest is .15, where hostfwd points.
    # No gateway: nothing is routed beyond that subnet.
    cat >"$root/etc/network/interfaces" <<'EOF'
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 169.254.169.15/24
EOF

    # No name server at all: every address the guest uses is an IP, and no query leaves it
    # (glibc falls back to 127.0.0.1:53, where nothing listens).
    rm -f "$root/etc/resolv.conf"
    printf '%s\n' '# Boot rehearsal: no name server; the guest uses IP addresses only.' \
        'options timeout:1 attempts:1' >"$root/etc/resolv.conf"
    printf '%s\n' '127.0.0.1 localhost' '::1 localhost ip6-localhost ip6-loopback' >"$root/etc/hosts"
    printf 'localhost\n' >"$root/etc/hostname"
    printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
    : >"$root/etc/machine-id"

    # The journal on the serial console as well, so the host reads the service's own lines
    # (retries, READY) without logging in.
    cat >"$root/etc/systemd/journald.conf.d/10-console.conf" <<'EOF'
[Journal]
ForwardToConsole=yes
TTYPath=/dev/ttyS0
MaxLevelConsole=info
EOF

    # Nothing on a timer that would reach for a package mirror.
    local unit
    for unit in apt-daily.timer apt-daily-upgrade.timer; do
        ln -sfn /dev/null "$root/etc/systemd/system/$unit"
    done
}

build_image() {
    local tmp="$CACHE/rootfs-$IMAGE_KEY.tmp"
    rm -rf "$tmp" "$ROOTFS"
    mkdir -p "$CACHE/debs"
    say "debootstrap $SUITE (minbase + ${#GUEST_PACKAGES[@]} packages) into $tmp; log: $OUT/debootstrap.log"
    local includes
    includes=$(
        IFS=,
        echo "${GUEST_PACKAGES[*]}"
    )
    if ! debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$includes" \
        "$SUITE" "$tmp" "$MIRROR" >"$OUT/debootstrap.log" 2>&1; then
        tail -n 20 "$OUT/debootstrap.log" >&2 || true
        die "debootstrap failed (see $OUT/debootstrap.log)"
    fi
    # debootstrap copies the host's resolver and host name in: guest_files replaces them.
    rm -rf "$tmp/var/cache/apt/archives"/*.deb "$tmp/var/lib/apt/lists"/*_Packages
    printf '%s\n' "${GUEST_PACKAGES[@]}" >"$tmp/.suaicloudapp-packages"
    mv "$tmp" "$ROOTFS"
    # Only the current image is kept.
    local old
    for old in "$CACHE"/rootfs-*; do
        [[ $old == "$ROOTFS" || ! -d $old ]] || rm -rf "$old"
    done
}

prepare_image() {
    IMAGE_KEY=$(image_key)
    ROOTFS="$CACHE/rootfs-$IMAGE_KEY"
    if ((REBUILD_IMAGE)) || [[ ! -f $ROOTFS/.suaicloudapp-packages ]]; then
        phase "image: building the guest root file system (cache key $IMAGE_KEY; a few minutes, once)"
        local t0
        t0=$(usec)
        build_image
        IMAGE_STATE="built in $(secs "$t0" "$(usec)") s"
    else
        phase "image: cached guest root file system $ROOTFS"
        IMAGE_STATE=cached
    fi
    guest_files "$ROOTFS"
    KERNEL=$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*-cloud-amd64' | sort -V | tail -n 1)
    INITRD=$(find "$ROOTFS/boot" -maxdepth 1 -name 'initrd.img-*-cloud-amd64' | sort -V | tail -n 1)
    [[ -n $KERNEL && -n $INITRD ]] || die "no cloud kernel/initrd under $ROOTFS/boot: run with --rebuild-image"
    say "image $IMAGE_STATE: $(du -sh "$ROOTFS" | cut -f1), kernel $(basename "$KERNEL")"
}

# ----------------------------------------------------------------------------------------------
# the test backends

ENV_FILE=""
env_get() { # KEY VAR: VAR = a value from .test-env/env (quotes as scripts/test-env.sh writes them)
    local v
    v=$(sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1)
    [[ -n $v ]] || die "$1 missing from $ENV_FILE: run scripts/test-env.sh up"
    v=${v#\"}
    v=${v%\"}
    v=${v#\'}
    v=${v%\'}
    printf -v "$2" '%s' "$v"
}

backends() {
    phase "backends: scripts/test-env.sh up (MariaDB, Redis, moto on 127.0.0.1)"
    "$REPO/scripts/test-env.sh" up >>"$LOG" 2>&1 || die "scripts/test-env.sh up failed (see $LOG)"
    ENV_FILE="$REPO/.test-env/env"
    [[ -f $ENV_FILE ]] || die "$ENV_FILE missing after scripts/test-env.sh up"
    env_get SUAI_TEST_MOTO_URL MOTO_URL
    [[ $MOTO_URL =~ ^http://127\.0\.0\.1:([0-9]+)$ ]] || die "moto is not on 127.0.0.1: $MOTO_URL"
    MOTO_PORT=${BASH_REMATCH[1]}
    env_get SUAI_TEST_BUCKET BUCKET
    env_get SUAI_TEST_TABLE TABLE
    env_get SUAI_TEST_MYSQL_PORT DB_PORT
    env_get SUAI_TEST_MYSQL_USER DB_USER
    env_get SUAI_TEST_MYSQL_PASSWORD DB_PASSWORD
    env_get SUAI_TEST_MYSQL_DB DB_NAME
    env_get SUAI_TEST_REDIS_PORT REDIS_PORT
    GUEST_ENDPOINT="http://$HOST_IN_GUEST:$MOTO_PORT"
}

# The uploader's side (not the instance's): Debian's CLI with moto's static keys, always with
# --endpoint-url pointing at loopback.
host_aws() {
    env -i PATH=/usr/bin:/bin HOME="$WORK/aws-home" AWS_ACCESS_KEY_ID=testing \
        AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null \
        "$AWS_CLI" --endpoint-url "$MOTO_URL" --region "$REGION" "$@"
}

upload() { # FILE KEY
    host_aws s3 cp --only-show-errors "$1" "s3://$BUCKET/$2" >>"$LOG" 2>&1 || die "upload of s3://$BUCKET/$2 to moto failed"
    UPLOADED+=("$2")
}

remove_uploads() {
    local key
    for key in "${UPLOADED[@]}"; do
        host_aws s3 rm --only-show-errors "s3://$BUCKET/$key" >/dev/null 2>&1 || true
    done
    UPLOADED=()
}

guest_config() { # what the instance reads from s3://BUCKET/CONFIG_KEY
    cat <<EOF
# suaicloudapp config for the boot rehearsal: every backend is the host, seen from the guest.
[server]
host = "0.0.0.0"
port = $GUEST_PORT

[aws]
# No region: it comes from instance metadata (user-data.sh reads placement/region).
endpoint_url = "$GUEST_ENDPOINT"

[s3]
bucket = "$BUCKET"

[database]
host = "$HOST_IN_GUEST"
port = $DB_PORT
user = "$DB_USER"
password = "$DB_PASSWORD"
dbname = "$DB_NAME"

[redis]
host = "$HOST_IN_GUEST"
port = $REDIS_PORT

[dynamodb]
table = "$TABLE"
EOF
}

# ----------------------------------------------------------------------------------------------
# user-data: the shipped script, only the defaults of its settings lines changed

SETTING_RE='^([A-Z0-9_]+)="\$\{([A-Z0-9_]+):-([^"]*)\}"$'

# set_setting FILE NAME VALUE: NAME="${NAME:-old}" -> NAME="${NAME:-VALUE}". A setting the
# script reads only from its environment (no such line) gets one, in the same form, at the end
# of the settings block: cloud-init gives user-data no environment of its own.
set_setting() {
    local file=$1 name=$2 value=$3 n
    [[ $value != *[\"\$\`\\\|]* ]] || die "setting $name: unsupported characters in '$value'"
    n=$(grep -cE "^$name=\"\\\$\\{$name:-[^\"]*\\}\"$" "$file" || true)
    if [[ $n == 1 ]]; then
        sed -i -E "s|^$name=\"\\\$\\{$name:-[^\"]*\\}\"$|$name=\"\${$name:-$value}\"|" "$file"
    elif [[ $n == 0 ]]; then
        local last
        last=$(grep -nE "$SETTING_RE" "$file" | tail -n 1 | cut -d: -f1)
        [[ -n $last ]] || die "user-data.sh has no settings block"
        sed -i "${last}a $name=\"\${$name:-$value}\"" "$file"
    else
        die "user-data.sh has $n settings lines for $name"
    fi
}

# What the rehearsal changed in the shipped script (the diff: only settings lines, the test
# holds it to that) and whether ours still parses (bash -n), as facts.
observe_user_data() { # SHIPPED OURS
    local shipped=$1 ours=$2 rc=0 out
    diff --unchanged-line-format= --old-line-format='-%L' --new-line-format='+%L' \
        "$shipped" "$ours" >"$ours.diff" || rc=$?
    fact user_data_diff_exit "$rc"
    rc=0
    out=$(bash -n "$ours" 2>&1) || rc=$?
    fact user_data_syntax_exit "$rc"
    fact user_data_syntax_output "$out"
}

# ----------------------------------------------------------------------------------------------
# the metadata server and the VM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && [[ -z $(ss -Hltn "sport = :$1") ]]; }

start_imds() { # INSTANCE-ID USER-DATA LOG [--deny-credentials]
    local ready="$WORK/imds.port"
    rm -f "$ready"
    port_free 80 || {
        ss -ltnp 'sport = :80' >&2 || true
        die "port 80 on this machine is taken: the metadata server must listen on 127.0.0.1:80 (the guest's 169.254.169.254:80)"
    }
    IMDS_SECRET_ACCESS_KEY="$IMDS_SECRET" python3 "$SCRIPT_DIR/vm/imds_ec2_paths.py" \
        --host 127.0.0.1 --port 80 --instance-id "$1" --region "$REGION" --az "$AZ" \
        --role "$ROLE" --access-key "$ACCESS_KEY" --user-data "$2" --ready-file "$ready" \
        "${@:4}" >/dev/null 2>"$3" 9>&- &
    IMDS_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -s $ready ]] && return 0
        # (kill -0 only: until its exec the child's command line is still this script's)
        kill -0 "$IMDS_PID" 2>/dev/null || die "the metadata server exited: $(tail -n 5 "$3")"
        sleep 0.1
    done
    die "the metadata server did not listen within 10 s"
}

# Serial console lines, as they arrive: raw to console.log, with the host's clock (microseconds
# since the epoch) to console.stamped. Colour escapes and carriage returns are dropped.
stamp_console() { # RAW STAMPED
    local line
    exec 3>>"$1" 4>>"$2"
    while IFS= read -r line || [[ -n $line ]]; do
        printf '%s\n' "$line" >&3
        printf '%s %s\n' "${EPOCHREALTIME/./}" "$line" >&4
    done
}

start_vm() { # BOOT-DIR HOST-PORT SMBIOS-UUID
    local dir=$1 disk="$WORK/disk.img"
    rm -f "$disk" "$WORK/qemu.pid"
    mkfs.ext4 -q -F -L root -d "$ROOTFS" "$disk" 2G >>"$LOG" 2>&1 ||
        die "mkfs.ext4 -d $ROOTFS failed (see $LOG)"
    T_VM=$(usec)
    fact t_vm_usec "$T_VM"
    qemu-system-x86_64 -name "suaicloudapp-$CURRENT" -machine pc -cpu max -smp 2 -m 1024 \
        -nodefaults -display none -serial stdio -no-reboot -rtc base=utc \
        -kernel "$KERNEL" -initrd "$INITRD" \
        -append "console=ttyS0 root=/dev/vda rw net.ifnames=0 panic=-1 SYSTEMD_COLORS=0 systemd.show_status=1" \
        -drive "file=$disk,format=raw,if=virtio" \
        -netdev "user,id=n0,net=$GUEST_NET,host=$HOST_IN_GUEST,hostfwd=tcp:127.0.0.1:$2-:$GUEST_PORT" \
        -device virtio-net-pci,netdev=n0,romfile= \
        -smbios "type=1,manufacturer=Amazon EC2,product=t3.micro,serial=$3,uuid=$3" \
        -pidfile "$WORK/qemu.pid" </dev/null 2>"$dir/qemu.log" 9>&- |
        sed -u -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\r$//' |
        stamp_console "$dir/console.log" "$dir/console.stamped" &
    CONSOLE_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if [[ -s $WORK/qemu.pid ]]; then
            QEMU_PID=$(<"$WORK/qemu.pid")
            return 0
        fi
        kill -0 "$CONSOLE_PID" 2>/dev/null || break
        sleep 0.1
    done
    die "qemu-system-x86_64 did not start: $(tail -n 5 "$dir/qemu.log")"
}

stop_vm() {
    if [[ -n $QEMU_PID ]]; then stop_pid "$QEMU_PID" qemu-system-x86_64; fi
    QEMU_PID=""
    if [[ -n $CONSOLE_PID ]]; then
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "$CONSOLE_PID" 2>/dev/null || break
            sleep 0.1
        done
        wait "$CONSOLE_PID" 2>/dev/null || true
    fi
    CONSOLE_PID=""
    rm -f "$WORK/disk.img"
}

stop_imds() {
    if [[ -n $IMDS_PID ]]; then stop_pid "$IMDS_PID" imds_ec2_paths; fi
    wait "$IMDS_PID" 2>/dev/null || true
    IMDS_PID=""
}

# ----------------------------------------------------------------------------------------------
# reading the console and asking the guest's port: what the waits below need (what the console
# says is judged by the test, from the files)

# First console line matching the ERE: "USEC LINE", or nothing.
console_first() { grep -m1 -E -- "^[0-9]+ .*($1)" "$STAMPED" 2>/dev/null || true; }
console_at() { local l; l=$(console_first "$1"); printf '%s\n' "${l%% *}"; }
console_has() { grep -qE -- "$1" "$CONSOLE" 2>/dev/null; }

# GET on the forwarded port: sets HTTP_CODE (000 when curl failed), HTTP_EXIT (curl's),
# HTTP_HEADERS, and the times around it; the head and body stay in $WORK/http.* for
# record_fetch.
http_get() { # PATH [MAX-TIME]
    local h="$WORK/http.headers" b="$WORK/http.body"
    : >"$h"
    : >"$b"
    HTTP_PATH=$1
    HTTP_MAX=${2:-10}
    HTTP_EXIT=0
    HTTP_T0=$(usec)
    HTTP_CODE=$(curl -sS -o "$b" -D "$h" -w '%{http_code}' --max-time "$HTTP_MAX" \
        "http://127.0.0.1:$HOST_PORT$1" 2>/dev/null) || HTTP_EXIT=$?
    ((HTTP_EXIT == 0)) || HTTP_CODE=000
    HTTP_T1=$(usec)
    HTTP_HEADERS=$(tr -d '\r' <"$h")
}
header() { printf '%s\n' "$HTTP_HEADERS" | sed -n "s/^$1: //Ip" | tail -n 1; }

# Keeps the last http_get as the scenario's fetch number FETCHES, labelled PURPOSE (the test
# looks fetches up by it).
record_fetch() { # PURPOSE
    local dir="$OUT/$CURRENT"
    FETCHES=$((FETCHES + 1))
    mkdir -p "$dir/http"
    cp "$WORK/http.headers" "$dir/http/$FETCHES.headers"
    cp "$WORK/http.body" "$dir/http/$FETCHES.body"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$FETCHES" "$1" "$HTTP_PATH" "$HTTP_MAX" \
        "$HTTP_EXIT" "$HTTP_CODE" "$HTTP_T0" "$HTTP_T1" >>"$dir/fetches.tsv"
}
fetch() { # PURPOSE PATH [MAX-TIME]
    http_get "$2" "${3:-}"
    record_fetch "$1"
}

# ----------------------------------------------------------------------------------------------
# one boot

FINAL_RE="Cloud-init v\. [^ ]+ finished at"

boot() {
    CURRENT=$1
    local dir="$OUT/$CURRENT"
    rm -rf "$dir"
    mkdir -p "$dir"
    FETCHES=0
    CONSOLE="$dir/console.log"
    STAMPED="$dir/console.stamped"
    local hex instance_id uuid prefix binary_key config_key imds_log="$dir/imds.log"
    hex=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    instance_id="i-0${hex:0:16}"
    uuid="ec2${hex:0:5}-${hex:5:4}-${hex:9:4}-${hex:13:4}-${hex:17:12}"
    prefix="vm-rehearsal/$RUN_ID/$CURRENT"
    binary_key="$prefix/suaicloudapp"
    config_key="$prefix/config.toml"
    IMDS_SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
    HOST_PORT=$(free_port)
    fact instance_id "$instance_id"
    fact availability_zone "$AZ"
    fact region "$REGION"
    fact role "$ROLE"
    fact bucket "$BUCKET"
    fact binary_key "$binary_key"
    fact config_key "$config_key"
    fact host_in_guest "$HOST_IN_GUEST"
    fact host_port "$HOST_PORT"
    fact boot_timeout_s "$BOOT_TIMEOUT"
    fact late_upload_after_s "$LATE_UPLOAD_AFTER"

    phase "$CURRENT: S3 (moto): binary and config.toml under s3://$BUCKET/$prefix/"
    upload "$DEPLOY" "$binary_key"
    guest_config >"$WORK/config.toml"
    sed 's/^password = .*/password = "***"/' "$WORK/config.toml" >"$dir/config.toml"
    if [[ $CURRENT == late-config ]]; then
        local head_out head_exit=0
        head_out=$(host_aws s3api head-object --bucket "$BUCKET" --key "$config_key" 2>&1) ||
            head_exit=$?
        fact config_head_object_exit "$head_exit"
        fact config_head_object_output "$head_out"
        say "HeadObject s3://$BUCKET/$config_key before the boot: exit $head_exit"
    else
        upload "$WORK/config.toml" "$config_key"
    fi

    phase "$CURRENT: user-data: user-data.sh as shipped, settings defaults only"
    cp "$REPO/user-data.sh" "$dir/user-data.shipped"
    cp "$REPO/user-data.sh" "$dir/user-data.sh"
    set_setting "$dir/user-data.sh" BUCKET "$BUCKET"
    set_setting "$dir/user-data.sh" BINARY_KEY "$binary_key"
    set_setting "$dir/user-data.sh" CONFIG_KEY "$config_key"
    set_setting "$dir/user-data.sh" AWS_ENDPOINT_URL "$GUEST_ENDPOINT"
    # The verified install: the digest of exactly what was uploaded.
    set_setting "$dir/user-data.sh" SHA256 "$(sha256sum <"$DEPLOY" | cut -d' ' -f1)"
    fact user_data_settings "BUCKET BINARY_KEY CONFIG_KEY AWS_ENDPOINT_URL SHA256"
    observe_user_data "$dir/user-data.shipped" "$dir/user-data.sh"

    local deny=()
    [[ $CURRENT != denied-credentials ]] || deny=(--deny-credentials)
    phase "$CURRENT: metadata server on 127.0.0.1:80 (guest: $HOST_IN_GUEST:80), instance $instance_id${deny:+, no role (credentials refused)}"
    start_imds "$instance_id" "$dir/user-data.sh" "$imds_log" "${deny[@]}"

    phase "$CURRENT: boot: fresh disk (mkfs.ext4 -d), qemu-system-x86_64 -cpu max (TCG), guest :$GUEST_PORT on 127.0.0.1:$HOST_PORT"
    start_vm "$dir" "$HOST_PORT" "$uuid"
    say "qemu pid $QEMU_PID; serial console: $CONSOLE"

    # Poll until the scenario's end state, or the deadline: the host's /health, the console,
    # and (late-config) the upload ~20 s after the service first logged the missing object.
    # How the wait ended is a fact (poll_end); the test judges it.
    local deadline=$((T_VM + BOOT_TIMEOUT * 1000000)) now health_at="" retry_at="" upload_at=""
    local done_at="" seen_kernel=0 seen_ci=0 seen_ud=0 seen_ready=0 end why
    while :; do
        now=$(usec)
        if ((now > deadline)); then
            end=deadline why="no end state within ${BOOT_TIMEOUT} s"
            break
        fi
        if ! pid_matches "$QEMU_PID" qemu-system-x86_64; then
            end=qemu-exited why="qemu exited (see $dir/qemu.log)"
            break
        fi
        if ((!seen_kernel && now - T_VM > 120000000)); then
            end=no-kernel why="no kernel output on the serial console within 120 s"
            break
        fi
        if [[ -z $health_at ]]; then
            http_get /health 1
            if [[ $HTTP_CODE == 200 ]]; then
                health_at=$(usec)
                record_fetch first-health
                fact first_health_200_usec "$health_at"
                say "first /health 200 at +$(secs "$T_VM" "$health_at") s"
            fi
        fi
        if ((!seen_kernel)) && console_has 'Linux version'; then
            seen_kernel=1
            say "kernel up"
        fi
        if ((!seen_ci)) && console_has "running 'init-local'"; then
            seen_ci=1
            say "cloud-init started"
        fi
        if ((!seen_ud)) && console_has 'user-data: bucket '; then
            seen_ud=1
            say "user-data.sh running"
        fi
        if ((!seen_ready)) && console_has 'Started suaicloudapp\.service'; then
            seen_ready=1
            say "suaicloudapp.service READY"
        fi
        if [[ $CURRENT == late-config && -z $upload_at ]]; then
            [[ -n $retry_at ]] || retry_at=$(console_at 'cannot fetch the config')
            if [[ -n $retry_at ]] && ((now - retry_at >= LATE_UPLOAD_AFTER * 1000000)); then
                upload "$WORK/config.toml" "$config_key"
                upload_at=$(usec)
                fact upload_usec "$upload_at"
                say "config.toml uploaded, $(secs "$retry_at" "$upload_at") s after the service's first failed fetch"
            fi
        fi
        if console_has "$FINAL_RE"; then
            [[ -n $done_at ]] || done_at=$now
            # The end states: cloud-init is done and the service answers (or, without
            # credentials, is not there); a few seconds' grace for the first /health.
            if [[ $CURRENT == denied-credentials || -n $health_at ]] || ((now - done_at > 15000000)); then
                end=end-state why="cloud-init finished"
                break
            fi
        fi
        # No use waiting out the deadline once user-data.sh gave up (where it should not).
        if [[ $CURRENT != denied-credentials ]] && console_has 'user-data: ERROR'; then
            end=user-data-error why="user-data.sh logged an ERROR"
            break
        fi
        sleep 0.5
    done
    fact poll_end "$end"
    fact poll_end_usec "$now"
    say "wait ended at +$(secs "$T_VM" "$now") s: $why"

    phase "$CURRENT: pages from the guest's port"
    guest_fetches
    fact observed_usec "$(usec)"

    phase "$CURRENT: teardown (qemu, metadata server, S3 objects, disk)"
    stop_vm
    stop_imds
    remove_uploads
    write_observations "$CURRENT"
    say "observations: $dir/observations.json"
    CURRENT=""
}

# The pages the test judges, fetched while the guest still runs; every try is kept. A page is
# asked again (up to 10 times, the guest is slow under TCG) until it answers 200, and /health
# until it carries X-Instance-Id (the identity look-up runs in the background after start).
guest_fetches() {
    local path i
    if [[ $CURRENT == denied-credentials ]]; then
        fetch final-health /health 5
        return 0
    fi
    for path in /health /database /redis /s3 /dynamodb; do
        for ((i = 1; i <= 10; i++)); do
            fetch page "$path" 15
            [[ $HTTP_CODE != 200 ]] || break
            sleep 1
        done
    done
    for ((i = 0; i < 30; i++)); do
        fetch identity /health 10
        [[ -z $(header X-Instance-Id) ]] || break
        sleep 1
    done
    fetch final-health /health 10
}

# ----------------------------------------------------------------------------------------------
# the observation files

# SCENARIO/observations.json from its facts.tsv and fetches.tsv (file names relative to it).
write_observations() { # SCENARIO
    local dir="$OUT/$1"
    [[ -d $dir ]] || return 0
    python3 - "$dir" "$1" "$RUN_ID" <<'PY'
import json, os, re, sys
where, scenario, run_id = sys.argv[1:4]
def rows(name):
    path = os.path.join(where, name)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace", newline="\n") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip("\n")]
def text(name):
    path = os.path.join(where, name)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")
facts = {}
for key, *value in rows("facts.tsv"):
    v = re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n"}.get(m.group(1), m.group(1)), "\t".join(value))
    if re.search(r"_(usec|exit|s|port)$", key):
        v = int(v) if re.fullmatch(r"-?[0-9]+", v) else None
    facts[key] = v
fetches = []
for seq, purpose, path, max_time, curl_exit, status, start, end in rows("fetches.tsv"):
    fetches.append({
        "seq": int(seq), "purpose": purpose, "path": path, "max_time_s": int(max_time),
        "curl_exit": int(curl_exit), "status": status, "start_usec": int(start), "end_usec": int(end),
        "headers": (text(f"http/{seq}.headers") or "").replace("\r", ""),
        "body": text(f"http/{seq}.body") or "",
    })
names = {"console": "console.log", "console_stamped": "console.stamped", "imds_log": "imds.log",
         "qemu_log": "qemu.log", "user_data": "user-data.sh", "user_data_shipped": "user-data.shipped",
         "user_data_diff": "user-data.sh.diff", "config": "config.toml"}
observations = {
    "run_id": run_id,
    "scenario": scenario,
    "facts": facts,
    "fetches": fetches,
    "files": {k: v for k, v in names.items() if os.path.exists(os.path.join(where, v))},
}
tmp = os.path.join(where, "observations.json.tmp")
with open(tmp, "w") as f:
    json.dump(observations, f, indent=2)
    f.write("\n")
os.replace(tmp, os.path.join(where, "observations.json"))
PY
}

# run.json: this run's id and how it ended; a fatal error's reason is its "error".
# shellcheck disable=SC2317 # (teardown's, which the EXIT trap runs: shellcheck misses that)
write_run() { # EXIT-STATUS
    # Only the run that holds the lock owns the output directory.
    ((LOCKED)) && [[ -d $OUT ]] || return 0
    python3 - "$OUT" "$1" "$FATAL" "$BINARY" "$DEPLOY" "${IMAGE_KEY:-}" "${IMAGE_STATE:-}" \
        "$(secs "$T_START" "$(usec)")" "${SCENARIOS[*]}" "$RUN_ID" <<'PY'
import json, os, sys
out, status, fatal, binary, deployed, image_key, image_state, seconds, scenarios, run_id = sys.argv[1:11]
run = {
    "run_id": run_id,
    "exit_status": int(status),
    "error": fatal or None,
    "binary": binary,
    "deployed": deployed or None,
    "image": {"key": image_key, "state": image_state},
    "seconds": float(seconds),
    "scenarios": scenarios.split(),
    "observations": {name: f"{name}/observations.json" for name in scenarios.split()
                     if os.path.exists(os.path.join(out, name, "observations.json"))},
}
tmp = os.path.join(out, "run.json.tmp")
with open(tmp, "w") as f:
    json.dump(run, f, indent=2)
    f.write("\n")
os.replace(tmp, os.path.join(out, "run.json"))
PY
}

# shellcheck disable=SC2317 # (the EXIT trap's: shellcheck misses that after the final exit)
teardown() {
    local status=$?
    trap - EXIT INT TERM
    stop_vm
    stop_imds
    if ((${#UPLOADED[@]} > 0)); then remove_uploads; fi
    # A boot cut short by a fatal error keeps what it saw until then.
    if [[ -n $CURRENT ]] && ((LOCKED)); then write_observations "$CURRENT" || true; fi
    if [[ -n $WORK ]]; then rm -rf "$WORK"; fi
    write_run "$status" || true
    if [[ -n $LOG ]]; then say "run: $OUT/run.json; log: $LOG"; fi
    exit "$status"
}

# ----------------------------------------------------------------------------------------------

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

main() {
    while (($# > 0)); do
        case $1 in
        --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
        --binary=*) BINARY=${1#*=}; shift ;;
        --only) IFS=, read -r -a SCENARIOS <<<"${2:?--only needs a list}"; shift 2 ;;
        --only=*) IFS=, read -r -a SCENARIOS <<<"${1#*=}"; shift ;;
        --rebuild-image) REBUILD_IMAGE=1; shift ;;
        --image-only) IMAGE_ONLY=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
        esac
    done
    local s
    for s in "${SCENARIOS[@]}"; do
        case $s in good | late-config | denied-credentials) ;; *) echo "unknown scenario: $s" >&2; exit 2 ;; esac
    done

    RUN_ID="${SUAI_VM_RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)-$$}"

    need_root
    mkdir -p "$OUT" "$CACHE"
    trap teardown EXIT
    trap 'FATAL="interrupted (SIGINT)"; exit 130' INT
    trap 'FATAL="interrupted (SIGTERM)"; exit 143' TERM
    # One rehearsal at a time on a machine: port 80, the image cache and the output directory
    # are shared (two clones' test suites may both run this).
    exec 9>"$CACHE/.lock"
    if ! flock -n 9; then
        say "waiting for another vm-rehearsal.sh to finish (lock $CACHE/.lock)"
        flock -w 1800 9 || die "another vm-rehearsal.sh held $CACHE/.lock for 30 minutes"
    fi
    LOCKED=1
    # (checks.tsv, timeline.tsv and summary.json: an older version's verdicts)
    rm -f "$OUT/run.json" "$OUT/rehearsal.log" "$OUT/checks.tsv" "$OUT/timeline.tsv" "$OUT/summary.json"
    LOG="$OUT/rehearsal.log"
    APT_LOG=$LOG
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/suaicloudapp-vm.XXXXXX")
    mkdir -p "$WORK/aws-home"
    [[ $RUN_ID =~ ^[A-Za-z0-9._-]+$ ]] || die "SUAI_VM_RUN_ID: letters, digits, . _ - only"

    phase "host: tools (qemu-system-x86_64, debootstrap, mkfs.ext4, Debian's AWS CLI)"
    host_tools
    say "$(qemu-system-x86_64 --version | head -n 1); $(nproc) cores; /dev/kvm $([[ -e /dev/kvm ]] && echo present || echo absent) (not used: TCG)"

    prepare_image
    if ((IMAGE_ONLY)); then
        SCENARIOS=()
        return 0
    fi

    [[ -f $BINARY && -x $BINARY ]] ||
        die "no binary at $BINARY: build it with 'make static' (scripts/build-static.sh), or pass --binary PATH"
    local kind
    kind=$(file -b "$BINARY" 2>/dev/null || true)
    [[ -z $kind || $kind == *ELF*x86-64* ]] || die "$BINARY is not an x86-64 ELF binary: $kind"
    say "binary $BINARY ($(du -h "$BINARY" | cut -f1); $("$BINARY" --version 2>/dev/null || echo '?'))"
    DEPLOY=$BINARY
    if [[ $kind == *"not stripped"* ]] && command -v strip >/dev/null; then
        # A debug build is hundreds of MB of symbols: the guest downloads a stripped copy.
        strip -o "$WORK/suaicloudapp" "$BINARY"
        DEPLOY="$WORK/suaicloudapp"
        say "not stripped: deploying a stripped copy ($(du -h "$DEPLOY" | cut -f1))"
    fi

    backends

    # A scenario not booted this time leaves no observations behind to be mistaken for new.
    rm -rf "$OUT/good" "$OUT/late-config" "$OUT/denied-credentials"
    for s in "${SCENARIOS[@]}"; do
        boot "$s"
    done
    say "observed ${#SCENARIOS[@]} boot(s); tests/vm/vm_rehearsal.rs judges them (make vm-rehearsal, or SUAI_VM_OBSERVATIONS=$OUT cargo test --test vm)"
}

# One line, read whole before main runs, and nothing read after it: the script can be edited
# while a rehearsal runs.
{ main "$@"; exit; }
